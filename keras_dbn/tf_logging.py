"""Quiets TensorFlow's retracing warning about Keras' own training functions.

Every Keras model traces its own ``tf.function`` for ``fit``, ``evaluate``
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
"""

import contextlib
import logging

# What TensorFlow's warning names: Keras' trainer closures, e.g.
# "TensorFlowTrainer._make_function.<locals>.multi_step_on_iterator".
_KERAS_TRAINER = "TensorFlowTrainer."
_RETRACING = "triggered tf.function retracing"


class _KerasRetracingFilter(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
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
