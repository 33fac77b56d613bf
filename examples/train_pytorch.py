"""Train a PyTorch model with the SageMaker SDK's PyTorch estimator.

Run against sageport:  eval "$(sageport env)" && python examples/train_pytorch.py

The data goes to the default bucket (sageport's own S3), the job runs jobs/train_torch.py
on this machine, and the model lands in S3 as model.tar.gz, exactly as on SageMaker.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import sagemaker
from sagemaker.pytorch import PyTorch

session = sagemaker.Session()

# A tiny regression data set: y = x . [1, 2, 3, 4]
rng = np.random.default_rng(0)
x = rng.normal(size=(128, 4)).astype("float32")
y = x @ np.array([[1.0], [2.0], [3.0], [4.0]], dtype="float32")
with tempfile.TemporaryDirectory() as tmp:
    np.savez(os.path.join(tmp, "train.npz"), x=x, y=y)
    train_uri = session.upload_data(tmp, key_prefix="examples/train-pytorch/data")

estimator = PyTorch(
    entry_point="train_torch.py",
    source_dir=str(Path(__file__).parent / "jobs"),
    framework_version="2.1",
    py_version="py310",
    instance_type="ml.m5.xlarge",  # a CPU instance; ml.g5.xlarge would get a GPU
    instance_count=1,
    hyperparameters={"epochs": 2, "lr": 0.1},
    sagemaker_session=session,
    base_job_name="train-pytorch",
)
estimator.fit({"train": train_uri}, logs=True)
print("model artifact:", estimator.model_data)
