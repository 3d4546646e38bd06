"""quiet_keras_retracing drops only the warnings about Keras' own functions."""

import json
import os
import subprocess
import sys

# Imported while the test file is collected: importing keras_dbn loads
# TensorFlow, whose own start-up lines would otherwise land in the output a
# test below captures, when this file runs alone.
from keras_dbn.tf_logging import (
    _KerasRetracingFilter,
    quiet_tensorflow_startup,
)

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


def test_startup_lines_hidden_by_level_everything_else_passes(monkeypatch, capfd):

    # absl's lines as TensorFlow writes them while it loads, and others.
    written = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796307230.403508    5752 port.cc:153] oneDNN custom operations are on.\n"
        "W0000 00:00:1796307230.404024    5752 stub.cc:31] a warning\n"
        "E0000 00:00:1796307230.404024    5752 stub.cc:31] an error\n"
        "Traceback (most recent call last): a Python error\n"
    )
    monkeypatch.delitem(sys.modules, "tensorflow")  # as if it had not loaded yet
    for level, kept in [("1", [2, 3, 4]), ("2", [3, 4]), ("0", [0, 1, 2, 3, 4])]:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
        with quiet_tensorflow_startup():
            os.write(2, written.encode())
            print("from Python", file=sys.stderr)
        err = capfd.readouterr().err.splitlines()
        lines = written.splitlines()
        assert [line for line in err if line != "from Python"] == [lines[i] for i in kept]
        assert "from Python" in err


def test_gpu_probe_error_hidden_only_where_tensorflow_found_no_cuda_drivers(monkeypatch, capfd):

    no_drivers = ("I0000 00:00:1796362342.519552   15169 cudart_stub.cc:31] Could not find cuda "
                  "drivers on your machine, GPU will not be used.\n")
    probe = ("E0000 00:00:1796362346.000172   15169 cuda_platform.cc:52] failed call to cuInit: "
             "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
    other_error = "E0000 00:00:1796362346.000172   15169 stub.cc:31] an error\n"
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as if not loaded yet
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    for written, shown in [
        (no_drivers + probe + other_error, other_error),  # nothing new in the probe's error
        (probe + other_error, probe + other_error),  # drivers found: a GPU failed to start
    ]:
        with quiet_tensorflow_startup():
            os.write(2, written.encode())
        assert capfd.readouterr().err == shown


def test_a_malformed_log_call_passes_the_filter_to_its_handler():
    """A user's log call with bad arguments raised from the filter (which
    formats the message outside the handlers' error handling) and ended
    `DBN.pretrain`; its handler reports it instead, as without the filter."""
    import logging

    record = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1,
                               "epoch %d done", ("one",), None)
    assert _KerasRetracingFilter().filter(record) is True
