"""The inference handler for deploy_pytorch.py: the SageMaker PyTorch serving contract.

model_fn loads the model from the unpacked model.tar.gz; predict_fn runs it. Requests and
responses are decoded/encoded by the default input_fn/output_fn (JSON or NumPy).
"""

import os

import torch


def model_fn(model_dir):
    model = torch.nn.Linear(4, 1)
    model.load_state_dict(torch.load(os.path.join(model_dir, "model.pth"), map_location="cpu"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval()


def predict_fn(data, model):
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(torch.as_tensor(data, dtype=torch.float32, device=device)).cpu().numpy()
