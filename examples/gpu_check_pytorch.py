"""Which GPUs does a training job get? A PyTorch job on a GPU instance type reports them.

Run against sageport:  eval "$(sageport env)" && python examples/gpu_check_pytorch.py

ml.g5.xlarge has one GPU: sageport gives the job one GPU of this machine, exclusively, and
the job's log (printed here) names it. Set INSTANCE_TYPE to try another type.
"""

import os
from pathlib import Path

import sagemaker
from sagemaker.pytorch import PyTorch

session = sagemaker.Session()  # bucket and role come from the config `sageport env` points at

estimator = PyTorch(
    entry_point="gpu_check_torch.py",
    source_dir=str(Path(__file__).parent / "jobs"),
    framework_version="2.1",
    py_version="py310",
    instance_type=os.environ.get("INSTANCE_TYPE", "ml.g5.xlarge"),
    instance_count=1,
    sagemaker_session=session,
    base_job_name="gpu-check-pytorch",
)
estimator.fit(logs=True)  # waits, printing the job's log
