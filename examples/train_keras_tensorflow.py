"""Train a Keras model with the SageMaker SDK's TensorFlow estimator.

Run against sageport:  eval "$(sageport env)" && python examples/train_keras_tensorflow.py

Needs TensorFlow in the Python that runs the job. The model is exported as a SavedModel
(model/1/) inside model.tar.gz, the layout TensorFlow Serving and deploy() expect.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import sagemaker
from sagemaker.tensorflow import TensorFlow

session = sagemaker.Session()

rng = np.random.default_rng(0)
x = rng.normal(size=(128, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
with tempfile.TemporaryDirectory() as tmp:
    np.savez(os.path.join(tmp, "train.npz"), x=x, y=y)
    train_uri = session.upload_data(tmp, key_prefix="examples/train-keras/data")

estimator = TensorFlow(
    entry_point="train_keras.py",
    source_dir=str(Path(__file__).parent / "jobs"),
    framework_version="2.13",
    py_version="py310",
    instance_type="ml.m5.xlarge",
    instance_count=1,
    hyperparameters={"epochs": 2},
    sagemaker_session=session,
    base_job_name="train-keras",
)
estimator.fit({"train": train_uri}, logs=True)
print("model artifact:", estimator.model_data)
