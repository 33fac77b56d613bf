"""Runs inside the processing job: summarise the CSV files of the input, on the GPU if any.

Inputs are staged at /opt/ml/processing/input/...; whatever this writes under
/opt/ml/processing/output is uploaded to S3 when it ends.
"""

import glob
import json
import os

import numpy as np
import torch

device = "cuda" if torch.cuda.is_available() else "cpu"
print("CUDA_VISIBLE_DEVICES:", os.environ.get("CUDA_VISIBLE_DEVICES"), "- computing on", device)
if device == "cpu":
    print("no GPU visible to PyTorch")

files = sorted(glob.glob("/opt/ml/processing/input/data/*.csv"))
rows = torch.from_numpy(np.concatenate([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])).to(
    device
)
summary = {"files": len(files), "rows": rows.shape[0], "mean": rows.mean(dim=0).tolist()}
print(summary)

os.makedirs("/opt/ml/processing/output", exist_ok=True)
with open("/opt/ml/processing/output/summary.json", "w") as f:
    json.dump(summary, f)
