"""Runs inside the job: report which GPUs PyTorch can see, and use them if there are any."""

import os

import torch

print("instance GPUs (SM_NUM_GPUS):", os.environ.get("SM_NUM_GPUS"))
print("CUDA_VISIBLE_DEVICES:", os.environ.get("CUDA_VISIBLE_DEVICES"))
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        print(f"GPU {i}: {torch.cuda.get_device_name(i)}")
    x = torch.ones(1024, 1024, device="cuda")
    print("matmul on GPU 0:", (x @ x).sum().item())
else:
    # e.g. a demo server with SAGEPORT_FAKE_GPUS on a machine without CUDA
    print("no GPU visible to PyTorch")
