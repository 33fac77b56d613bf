"""Runs inside the job: fit a tiny Keras model to the `train` channel and save it.

The SageMaker TensorFlow container contract: hyperparameters as `--name value`, data in
SM_CHANNEL_TRAIN; a SavedModel under SM_MODEL_DIR/1 is what TensorFlow Serving loads.
"""

import argparse
import os

import numpy as np
import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
args, _ = parser.parse_known_args()  # the TF estimator also passes --model_dir

data = np.load(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.npz"))
model = tf.keras.Sequential([tf.keras.Input(shape=(data["x"].shape[1],)), tf.keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(data["x"], data["y"], epochs=args.epochs, batch_size=16, verbose=2)

model.export(os.path.join(os.environ["SM_MODEL_DIR"], "1"))  # SavedModel, version 1
