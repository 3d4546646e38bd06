"""Which way a keras_dbn model's own metrics improve, for Keras' monitors."""


def resolve_monitor_modes(callbacks, metrics):
    """Tells ``mode="auto"`` callbacks which way the model's own metrics improve.

    Keras' `EarlyStopping`, `ModelCheckpoint` and `ReduceLROnPlateau` find
    the direction of a monitored metric only among metrics passed to
    ``compile``, and refuse the names of a model's own trackers (an RBM's
    ``reconstruction_error``, a trainer's ``accuracy``). For each callback
    whose ``mode`` is ``"auto"`` and that monitors one of ``metrics`` (or
    its ``val_`` twin), this sets ``mode`` to ``"max"`` for metrics that
    grow as the model improves (accuracies) and ``"min"`` for the rest
    (means of losses, errors and free energies). Others are left alone.

    Args:
        callbacks: the callbacks given to ``fit``, or ``None``.
        metrics: the model's metric objects (``model.metrics``).

    Example:

    >>> stop = keras.callbacks.EarlyStopping("val_reconstruction_error")
    >>> resolve_monitor_modes([stop], rbm.metrics)
    >>> stop.mode
    'min'
    """
    names = {metric.name: metric for metric in metrics}
    for callback in getattr(callbacks, "callbacks", callbacks) or ():  # a CallbackList too
        monitor = getattr(callback, "monitor", None)
        if getattr(callback, "mode", None) != "auto" or not isinstance(monitor, str):
            continue
        metric = names.get(monitor.removeprefix("val_"))
        if monitor.removeprefix("val_") == "free_energy_gap":
            callback.mode = "min"  # logged by the RBM beside its metrics
        elif metric is not None:
            callback.mode = "max" if getattr(metric, "_direction", None) == "up" else "min"


def check_monitors(callbacks, logged, model_name):
    """Refuses Keras callbacks that would watch a figure the model never logs.

    Keras' `EarlyStopping`, `ReduceLROnPlateau` and `ModelCheckpoint` with
    ``save_best_only`` only warn when their ``monitor`` is missing from the
    logs, and then never stop, never reduce, or never save. Their default
    monitor, ``"val_loss"``, is such a figure for an RBM, which has no loss.

    Args:
        callbacks: the callbacks given to ``fit``, or ``None``.
        logged: names of the figures this ``fit`` logs at each epoch's end.
        model_name: how the error names the model, e.g. ``"an RBM"``.

    Raises:
        ValueError: naming the callback, its monitor and the figures logged.

    Example:

    >>> check_monitors([keras.callbacks.EarlyStopping()],
    ...                ["reconstruction_error", "free_energy"], "an RBM")
    Traceback (most recent call last):
    ValueError: EarlyStopping monitors 'val_loss', which an RBM's fit() does not log ...
    """
    import keras

    for callback in getattr(callbacks, "callbacks", callbacks) or ():
        watches = isinstance(callback, (keras.callbacks.EarlyStopping,
                                        keras.callbacks.ReduceLROnPlateau)) or (
            isinstance(callback, keras.callbacks.ModelCheckpoint) and callback.save_best_only)
        monitor = getattr(callback, "monitor", None)
        if watches and monitor not in logged:
            hint = ""
            if monitor.removeprefix("val_") in logged:
                hint = " Its val_ figures need validation_data or validation_split."
            elif monitor.removeprefix("val_") == "loss":
                hint = " Contrastive divergence follows no loss it can compute."
            raise ValueError(
                f"{type(callback).__name__} monitors {monitor!r}, which {model_name}'s fit() "
                f"does not log, so it would never act. This fit() logs: "
                f"{', '.join(sorted(logged))}.{hint}"
            )
