"""Runs inside the job: fit a tiny linear model to the `train` channel and save it.

The SageMaker PyTorch container contract: hyperparameters arrive as `--name value`
arguments, the data in SM_CHANNEL_TRAIN, and whatever lands in SM_MODEL_DIR becomes
model.tar.gz in S3.
"""

import argparse
import os

import numpy as np
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()

data = np.load(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.npz"))
x = torch.from_numpy(data["x"]).float()
y = torch.from_numpy(data["y"]).float()
device = "cuda" if torch.cuda.is_available() else "cpu"
model = torch.nn.Linear(x.shape[1], 1).to(device)
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
for epoch in range(args.epochs):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x.to(device)), y.to(device))
    loss.backward()
    opt.step()
    print(f"epoch={epoch} loss={loss.item():.4f}")

torch.save(model.state_dict(), os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"))
