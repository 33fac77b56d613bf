"""Runs inside the job: one MirroredStrategy replica per GPU of the instance.

TensorFlow sees exactly the GPUs the instance type has (CUDA_VISIBLE_DEVICES); without
CUDA (a demo server with fake GPUs) MirroredStrategy falls back to one CPU replica.
"""

import os

import numpy as np
import tensorflow as tf

strategy = tf.distribute.MirroredStrategy()
print("instance GPUs (SM_NUM_GPUS):", os.environ.get("SM_NUM_GPUS"))
print("replicas in sync:", strategy.num_replicas_in_sync)

rng = np.random.default_rng(0)
x = rng.normal(size=(256, 8)).astype("float32")
y = x.sum(axis=1, keepdims=True)
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.Input(shape=(8,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
# the global batch is split across the replicas
model.fit(x, y, epochs=2, batch_size=32 * strategy.num_replicas_in_sync, verbose=2)
model.save(os.path.join(os.environ["SM_MODEL_DIR"], "model.keras"))
