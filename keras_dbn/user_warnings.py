"""Warnings that name the user's line, however deep in keras_dbn they arise."""

import os
import sys
import warnings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _in_package(filename):
    return os.path.abspath(filename).startswith(_PACKAGE_DIR)


def warn(message, category=UserWarning):
    """Issues ``message`` from the first caller outside keras_dbn.

    A fixed ``stacklevel`` names the right line only for one way in: the
    same warning of `RBM.fit` is raised under the user's ``rbm.fit(...)``
    and under `DBN.pretrain`, a trainer or the command line, where it
    named keras_dbn's own line. This counts the package's frames instead
    (as Python 3.12's ``skip_file_prefixes`` does, on 3.10 too).

    Args:
        message: the warning's text.
        category: the `Warning` subclass.

    Returns:
        None.

    Example:

    >>> from keras_dbn import user_warnings
    >>> user_warnings.warn("The RBM is frozen (trainable=False): ...")
    """
    frame, level = sys._getframe(1), 2  # level 2 names this function's caller
    while frame is not None and _in_package(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
