"""Keras' progress bar, counting no further than an epoch's steps."""

import keras


class StepProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, counting no further than the known number of steps.

    With ``steps_per_execution`` > 1 (32 by default for an RBM) Keras
    reports each execution's last step as if the execution were full, so a
    600-step epoch run 32 steps at a time showed 608/600 before its final
    600/600 (keras-team/keras issue 20861). This logger clamps the count.
    """

    # As Keras' own progress bar, it may run off the training loop's thread.
    async_safe = True

    def _clamped(self, batch):
        return batch if self.target is None else min(batch, self.target - 1)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(self._clamped(batch), logs)

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(self._clamped(batch), logs)

    def on_predict_batch_end(self, batch, logs=None):
        super().on_predict_batch_end(self._clamped(batch), logs)


def callback_list(callbacks):
    """``callbacks`` as a list: Keras' ``fit`` also takes one callback
    alone, and None.

    Example:

    >>> callback_list(keras.callbacks.History())  # [<History ...>]
    """
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    return list(callbacks or [])


def with_step_progbar(callbacks, verbose):
    """``callbacks`` as a list, with `StepProgbarLogger` where Keras would add its bar.

    That is, unless ``verbose`` is 0 or the list has a progress bar. A
    `keras.callbacks.CallbackList` (``fit`` passes its own to the
    validation ``evaluate``) is returned as it is.

    Args:
        callbacks: the ``callbacks`` argument of ``fit``, ``evaluate`` or
            ``predict`` (``None``, a list, or a CallbackList).
        verbose: their ``verbose`` argument.

    Returns:
        The callbacks to pass on to Keras.

    Example:

    >>> model.fit(x, y, callbacks=with_step_progbar(callbacks, verbose), verbose=verbose)
    """
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    callbacks = callback_list(callbacks)
    if verbose != 0 and not any(isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks):
        callbacks.append(StepProgbarLogger())
    return callbacks
