"""Warnings that name the user's line, however deep in keras_dbn they arise."""

import os
import sys
import warnings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
#: The package's own callers that stand for a user: the ``keras-dbn``
#: command has no line of the user's to name, so it names its own.
_COMMAND_FILES = frozenset(os.path.join(_PACKAGE_DIR, name) for name in ("cli.py", "__main__.py"))
#: Libraries through which keras_dbn's code is called back (Keras' fit loop,
#: callbacks and loading; keras-tuner's search; Python's ``-m``).
_LIBRARIES = ("keras", "tensorflow", "keras_tuner")


def _library_dirs():
    dirs = [_PACKAGE_DIR]
    for name in _LIBRARIES:
        module = sys.modules.get(name)  # only those already loaded: nothing is imported here
        path = getattr(module, "__file__", None)
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)))
    return tuple(directory + os.sep for directory in dirs)


def _passes_through(filename, library_dirs):
    """Whether a frame of ``filename`` is library code between the user and the warning."""
    if filename.startswith("<frozen") or os.path.basename(filename) == "runpy.py":
        return True
    path = os.path.abspath(filename)
    return path not in _COMMAND_FILES and path.startswith(library_dirs)


def warn(message, category=UserWarning):
    """Issues ``message`` from the line that called into keras_dbn.

    A fixed ``stacklevel`` names the right line only for one way in: the
    same warning of `RBM.fit` is raised under the user's ``rbm.fit(...)``
    and under `DBN.pretrain`, a trainer or a keras-tuner search, and a
    callback's or a loaded model's warning under Keras' own frames. This
    walks out past keras_dbn, Keras, TensorFlow and keras-tuner to the
    user's line; under the ``keras-dbn`` command (which has none), to the
    command's.

    Args:
        message: the warning's text.
        category: the `Warning` subclass.

    Returns:
        None.

    Example:

    >>> from keras_dbn import user_warnings
    >>> user_warnings.warn("The RBM is frozen (trainable=False): ...")
    """
    library_dirs = _library_dirs()
    frame, level = sys._getframe(1), 2  # level 2 names this function's caller
    while frame is not None and _passes_through(frame.f_code.co_filename, library_dirs):
        frame, level = frame.f_back, level + 1
    if frame is None:  # called by library code alone (e.g. one of its threads)
        level = 2
    warnings.warn(message, category, stacklevel=level)
