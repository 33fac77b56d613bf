"""Runs inside the job: report which GPUs TensorFlow can see, and use them if there are any."""

import os

import tensorflow as tf

print("instance GPUs (SM_NUM_GPUS):", os.environ.get("SM_NUM_GPUS"))
print("CUDA_VISIBLE_DEVICES:", os.environ.get("CUDA_VISIBLE_DEVICES"))
gpus = tf.config.list_physical_devices("GPU")
if gpus:
    for gpu in gpus:
        print("GPU:", gpu.name)
    with tf.device("/GPU:0"):
        x = tf.ones((1024, 1024))
        print("matmul on GPU 0:", float(tf.reduce_sum(x @ x)))
else:
    print("no GPU visible to TensorFlow")
