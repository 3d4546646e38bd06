"""Recording what a method is given, for tests of what reaches Keras."""


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
