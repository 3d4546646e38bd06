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
