"""Recording what reaches Keras: a method's data, a progress bar's counts."""


def record_data(monkeypatch, owner, method):
    """Makes ``owner.method(self, data, ...)`` record ``(self, data)`` and run as before.

    Args:
        monkeypatch: pytest's fixture, which undoes the change after the test.
        owner: the class whose method is watched, e.g. ``keras.Model``.
        method: the method's name, e.g. ``"predict"``.

    Returns:
        The list the calls are appended to, in order.
    """
    calls = []
    original = getattr(owner, method)

    def spy(self, data, *args, **kwargs):
        calls.append((self, data))
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(owner, method, spy)
    return calls


def record_progress(monkeypatch):
    """Makes Keras' progress bars record each ``(current, target)`` they show.

    Args:
        monkeypatch: pytest's fixture, which undoes the change after the test.

    Returns:
        The list the updates are appended to, in order.
    """
    import keras

    shown = []
    update = keras.utils.Progbar.update

    def recording_update(self, current, values=None, finalize=None):
        shown.append((current, self.target))
        return update(self, current, values, finalize)

    monkeypatch.setattr(keras.utils.Progbar, "update", recording_update)
    return shown
