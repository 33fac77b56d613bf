"""Data-parallel training on every GPU of one instance with tf.distribute.MirroredStrategy.

Run against sageport:  eval "$(sageport env)" && python examples/multi_gpu_mirrored.py

ml.g5.12xlarge has four GPUs: sageport gives the job four GPUs of this machine (it queues
until four are free) and MirroredStrategy makes one replica per GPU. SageMaker local mode
cannot do this (local_gpu is one container, all GPUs, no instance types).
"""

import os
from pathlib import Path

import sagemaker
from sagemaker.tensorflow import TensorFlow

session = sagemaker.Session()

estimator = TensorFlow(
    entry_point="mirrored.py",
    source_dir=str(Path(__file__).parent / "jobs"),
    framework_version="2.13",
    py_version="py310",
    instance_type=os.environ.get("INSTANCE_TYPE", "ml.g5.12xlarge"),
    instance_count=1,
    sagemaker_session=session,
    base_job_name="mirrored",
)
estimator.fit(logs=True)
