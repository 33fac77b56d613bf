"""Deploy a TensorFlow (Keras) SavedModel and predict with TensorFlow Serving's JSON format.

Run against sageport:  eval "$(sageport env)" && python examples/deploy_tensorflow.py

The model is built on the spot and exported as model/1/ (the layout TensorFlow Serving
reads). deploy() starts a model server process on this machine; requests are
{"instances": [...]} and answers {"predictions": [...]}, as with the TFS container.
Needs TensorFlow here and in the server's Python.
"""

import os
import tarfile
import tempfile

import sagemaker
import tensorflow as tf
from sagemaker.tensorflow import TensorFlowModel

session = sagemaker.Session()

# 1. a tiny Keras model, exported as a SavedModel under 1/, packed as model.tar.gz
model = tf.keras.Sequential(
    [tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(1, kernel_initializer="ones")]
)
with tempfile.TemporaryDirectory() as tmp:
    model.export(os.path.join(tmp, "export", "1"))
    with tarfile.open(os.path.join(tmp, "model.tar.gz"), "w:gz") as tar:
        tar.add(os.path.join(tmp, "export", "1"), arcname="1")
    model_data = session.upload_data(
        os.path.join(tmp, "model.tar.gz"), key_prefix="examples/deploy-tf"
    )

# 2. the endpoint
tf_model = TensorFlowModel(
    model_data=model_data, framework_version="2.13", sagemaker_session=session
)
predictor = tf_model.deploy(initial_instance_count=1, instance_type="ml.m5.large")

# 3. predict (the TensorFlow predictor sends and reads JSON)
try:
    result = predictor.predict({"instances": [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0]]})
    print("endpoint:", predictor.endpoint_name)
    print("prediction:", result)  # {"predictions": [[10.0], [1.0]]} with the all-ones kernel
finally:
    predictor.delete_endpoint()
    tf_model.delete_model()
