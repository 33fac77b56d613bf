"""Which GPUs does a training job get? A TensorFlow job on a GPU instance type reports them.

Run against sageport:  eval "$(sageport env)" && python examples/gpu_check_tensorflow.py

Needs TensorFlow in the Python that runs the job (the server's, unless sageport.toml maps
tensorflow-training images to another interpreter). Set INSTANCE_TYPE to try another type.
"""

import os
from pathlib import Path

import sagemaker
from sagemaker.tensorflow import TensorFlow

session = sagemaker.Session()

estimator = TensorFlow(
    entry_point="gpu_check_tf.py",
    source_dir=str(Path(__file__).parent / "jobs"),
    framework_version="2.13",
    py_version="py310",
    instance_type=os.environ.get("INSTANCE_TYPE", "ml.g5.xlarge"),
    instance_count=1,
    sagemaker_session=session,
    base_job_name="gpu-check-tf",
)
estimator.fit(logs=True)
