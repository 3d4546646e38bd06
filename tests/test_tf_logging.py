"""quiet_keras_retracing drops only the warnings about Keras' own functions."""

import json
import os
import subprocess
import sys

# Run in a fresh process: TensorFlow warns at most twice per traced Python
# function for the whole process, so other tests could have used them up.
SCENARIO = r"""
import json, logging
import keras, numpy as np, tensorflow as tf
from keras_dbn.tf_logging import quiet_keras_retracing

messages = []
class Records(logging.Handler):
    def emit(self, record):
        if "triggered tf.function retracing" in record.getMessage():
            messages.append(record.getMessage())
logging.getLogger("tensorflow").addHandler(Records())

def new_models(method, count=8):
    x = np.zeros((4, 3), "float32")
    for _ in range(count):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(loss="mse")
        getattr(model, method)(x, x[:, :2], verbose=0) if method == "evaluate" else \
            model.predict(x, verbose=0)

def plus_one(x):
    return x + 1

seen = {}
with quiet_keras_retracing():
    new_models("predict")
    seen["keras_inside"] = list(messages); messages.clear()
    for _ in range(8):
        tf.function(plus_one)(tf.constant(1.0))  # a new tf.function each time
    seen["user_inside"] = list(messages); messages.clear()
new_models("evaluate")
seen["keras_after"] = list(messages)
print(json.dumps(seen))
"""


def test_new_models_warn_only_outside_the_block():
    result = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["keras_inside"] == []
    # A user's own function that retraces is still reported...
    assert seen["user_inside"] and all("plus_one" in m for m in seen["user_inside"])
    # ...and after the block, Keras' functions are again.
    assert seen["keras_after"]
    assert all("TensorFlowTrainer." in m for m in seen["keras_after"])
