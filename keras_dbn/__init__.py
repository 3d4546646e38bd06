"""keras_dbn: Restricted Boltzmann Machines and Deep Belief Networks for Keras 3."""

import importlib as _importlib
import os as _os
import sys as _sys

__version__ = "0.1.0"

#: The public API: each name and the module of this package that holds it
#: (a name that is its own module is that submodule).
_API = {
    "DBN": "dbn",
    "PseudoLabel": "semi_supervised",
    "RBM": "rbm",
    "SupervisedTrainer": "supervised",
    "TrainingDiverged": "rbm",
    "VirtualAdversarial": "virtual_adversarial",
    "array_dataset": "array_input",
    "array_input": "array_input",
    "as_aligned": "array_input",
    "callbacks": "callbacks",
    "datasets": "datasets",
    "evaluation": "evaluation",
    "export_saved_model": "export",
    "hardware": "hardware",
    "pseudo_label_dataset": "semi_supervised",
    "semi_supervised": "semi_supervised",
    "semi_supervised_dataset": "semi_supervised",
    "supervised": "supervised",
    "tuning": "tuning",
    "units": "units",
    "virtual_adversarial": "virtual_adversarial",
}

__all__ = [*_API, "__version__"]


def __getattr__(name):
    """A name of the public API, imported when first used (PEP 562).

    ``import keras_dbn`` imports the whole API at once; only the command
    line defers it (see below), and then this finds each name on demand.
    """
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _importlib.import_module(f"{__name__}.{module}")
    if name != module:
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))


def import_api():
    """Imports the whole public API, and with it TensorFlow and Keras.

    ``import keras_dbn`` does this itself, except in the ``keras-dbn``
    command, which calls it once its arguments are parsed. Importing the
    API registers keras_dbn's Keras classes, which ``keras.models.load_model``
    needs to read a saved RBM or DBN.
    """
    for name in _API:
        __getattr__(name)


def _run_as_command():
    """Whether this process is the ``keras-dbn`` command or ``python -m keras_dbn``.

    A console script's ``sys.argv[0]`` is the script's path. While
    ``python -m`` locates its module ``sys.argv[0]`` is ``"-m"``, for any
    module, so ``sys.orig_argv`` tells which one runs.
    """
    argv = getattr(_sys, "argv", None) or [""]
    if _os.path.splitext(_os.path.basename(argv[0]))[0] == "keras-dbn":
        return True
    if argv[0] != "-m":
        return False
    orig = list(getattr(_sys, "orig_argv", []))
    return "-m" in orig[:-1] and orig[orig.index("-m") + 1].split(".")[0] == __name__


if _run_as_command():
    # The command quiets TensorFlow's C++ INFO and WARNING lines (CPU
    # features, XLA's start-up, tf.data buffer sizes). TensorFlow reads
    # TF_CPP_MIN_LOG_LEVEL once, when it loads, which the command defers
    # until its arguments are parsed: ``keras-dbn --help`` and a mistyped
    # option answer at once instead of after seconds of imports. Imported as
    # a library, keras_dbn leaves the process's logging alone.
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
else:
    import_api()
