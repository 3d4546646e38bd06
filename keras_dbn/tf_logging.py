"""Quiets TensorFlow's messages that tell a user nothing.

`quiet_keras_retracing` drops the retracing warning about Keras' own
training functions. Every Keras model traces its own ``tf.function`` for ``fit``, ``evaluate``
and ``predict``, and TensorFlow counts the traces of all of them together
(they share one Python code object). A process that builds more than about
five models (a DBN's RBMs, its classifier, a baseline, tuning trials) is
told that ``multi_step_on_iterator`` "triggered tf.function retracing",
although no function traced more than once for its own model. The
entry points (``keras-dbn``, the tuning search, the examples) drop that one
message; every other message, the retracing warnings of a user's own
functions included, passes.

Example:

```python
from keras_dbn.tf_logging import quiet_keras_retracing

with quiet_keras_retracing():
    for seed in range(10):
        model = build(seed)
        model.fit(x, y)
```

`quiet_tensorflow_startup` hides the C++ lines that TensorFlow writes while
it loads, which ``TF_CPP_MIN_LOG_LEVEL`` is meant to hide but does not.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile

# What TensorFlow's warning names: Keras' trainer closures, e.g.
# "TensorFlowTrainer._make_function.<locals>.multi_step_on_iterator".
_KERAS_TRAINER = "TensorFlowTrainer."
_RETRACING = "triggered tf.function retracing"


class _KerasRetracingFilter(logging.Filter):
    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: its handler reports it, as without the filter
            return True
        return not (_RETRACING in message and _KERAS_TRAINER in message)


@contextlib.contextmanager
def quiet_keras_retracing():
    """Drops TensorFlow's retracing warning for Keras' trainer functions.

    Only within the block, and only the warnings that name Keras' own
    ``fit``/``evaluate``/``predict`` functions: a function of the user's
    that retraces is still reported.

    Returns:
        A context manager.

    Example:

    >>> with quiet_keras_retracing():
    ...     scores = [train_and_score(seed) for seed in range(10)]
    """
    # TensorFlow logs through the standard "tensorflow" logger; naming it
    # does not import TensorFlow.
    logger = logging.getLogger("tensorflow")
    quiet = _KerasRetracingFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


# While TensorFlow loads, absl writes its first lines (oneDNN's custom
# operations, the missing CUDA drivers) before TensorFlow's logging reads
# TF_CPP_MIN_LOG_LEVEL, so that variable does not hide them; they open with
# this preamble and the level letter, e.g. "I0000 00:00:17... port.cc:153]".
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
_ABSL_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d\d")
_LEVELS = "IWEF"  # TF_CPP_MIN_LOG_LEVEL 1 hides I, 2 also W, 3 also E
# On a machine without CUDA drivers TensorFlow says so as it loads (an INFO
# line), then logs its probe for a GPU, when the devices are first listed,
# as an error that adds nothing. Where drivers were found the error is kept:
# there it means a GPU that failed to start.
_NO_CUDA_DRIVERS = "Could not find cuda drivers"
_CUINIT_FAILED = "failed call to cuInit"


def _min_log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _shown(line, level, no_cuda_drivers=False):
    if line.startswith(_ABSL_PREAMBLE) or (no_cuda_drivers and _CUINIT_FAILED in line):
        return False
    match = _ABSL_LINE.match(line)
    return match is None or _LEVELS.index(match.group(1)) >= level


@contextlib.contextmanager
def quiet_tensorflow_startup():
    """Hides TensorFlow's start-up lines as ``TF_CPP_MIN_LOG_LEVEL`` asks,
    where the block loads TensorFlow.

    TensorFlow's first log lines come before its logging reads that
    variable. With the variable at 1 or more and TensorFlow not yet loaded,
    the block's writes to the process's stderr (file descriptor 2) are
    captured and written back afterwards, all but the lines of the levels
    the variable hides; Python's warnings and errors pass unchanged. On a
    machine without CUDA drivers, which TensorFlow reports as it loads, its
    error line for the failed GPU probe ("failed call to cuInit") is hidden
    too, where the block also lists the devices (the probe's moment).

    Returns:
        A context manager.

    Example:

    >>> os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    >>> with quiet_tensorflow_startup():
    ...     import tensorflow as tf
    ...     tf.config.list_physical_devices()
    """
    level = _min_log_level()
    if level <= 0 or "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            no_drivers = any(_NO_CUDA_DRIVERS in line for line in lines)
            sys.stderr.write("".join(line for line in lines if _shown(line, level, no_drivers)))
            sys.stderr.flush()
