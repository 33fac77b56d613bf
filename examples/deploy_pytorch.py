"""Deploy a PyTorch model with an inference.py handler, predict, and clean up.

Run against sageport:  eval "$(sageport env)" && python examples/deploy_pytorch.py

The model here is built on the spot (a 4-in, 1-out linear layer) and packed as
model.tar.gz; jobs/inference.py says how to load and run it. deploy() starts a model
server process on this machine and waits until the endpoint is InService (the SDK polls
every 30 s, so this takes about half a minute).
"""

import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import sagemaker
import torch
from sagemaker.pytorch import PyTorchModel

session = sagemaker.Session()

# 1. model.tar.gz with the weights, in the default bucket
torch.manual_seed(0)
weights = torch.nn.Linear(4, 1).state_dict()
with tempfile.TemporaryDirectory() as tmp:
    torch.save(weights, os.path.join(tmp, "model.pth"))
    with tarfile.open(os.path.join(tmp, "model.tar.gz"), "w:gz") as tar:
        tar.add(os.path.join(tmp, "model.pth"), arcname="model.pth")
    model_data = session.upload_data(
        os.path.join(tmp, "model.tar.gz"), key_prefix="examples/deploy-pytorch"
    )

# 2. the model and its endpoint
model = PyTorchModel(
    model_data=model_data,
    entry_point="inference.py",
    source_dir=str(Path(__file__).parent / "jobs"),
    framework_version="2.1",
    py_version="py310",
    sagemaker_session=session,
)
predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large")

# 3. predict: NumPy in, NumPy out (the PyTorch predictor's default serializers)
try:
    batch = np.ones((2, 4), dtype="float32")
    print("endpoint:", predictor.endpoint_name)
    print("prediction:", predictor.predict(batch).tolist())
    with torch.no_grad():
        model_local = torch.nn.Linear(4, 1)
        model_local.load_state_dict(weights)
        print("same model, run here:", model_local(torch.from_numpy(batch)).numpy().tolist())
finally:
    predictor.delete_endpoint()
    model.delete_model()
