"""keras_dbn: Restricted Boltzmann Machines and Deep Belief Networks for Keras 3."""

import os as _os
import sys as _sys


def _run_as_command():
    """Whether this process is ``keras-dbn`` or ``python -m keras_dbn``.

    While ``python -m`` locates its module, ``sys.argv[0]`` is ``"-m"``;
    a console script's is the script's path.
    """
    argv = getattr(_sys, "argv", None) or [""]
    return _os.path.splitext(_os.path.basename(argv[0]))[0] in ("keras-dbn", "-m")


# The command quiets TensorFlow's C++ INFO and WARNING lines (CPU features,
# XLA's start-up, tf.data buffer sizes). TensorFlow reads TF_CPP_MIN_LOG_LEVEL
# once, when the imports below load it, before any of the command's own code
# runs, so this is the one place where setting it works. Imported as a
# library, keras_dbn leaves the process's logging alone.
if _run_as_command():
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_dbn import array_input
from keras_dbn import callbacks
from keras_dbn import datasets
from keras_dbn import evaluation
from keras_dbn import hardware
from keras_dbn import semi_supervised
from keras_dbn import supervised
from keras_dbn import tuning
from keras_dbn import units
from keras_dbn import virtual_adversarial
from keras_dbn.array_input import array_dataset, as_aligned
from keras_dbn.dbn import DBN
from keras_dbn.export import export_saved_model
from keras_dbn.rbm import RBM
from keras_dbn.semi_supervised import PseudoLabel, pseudo_label_dataset, semi_supervised_dataset
from keras_dbn.supervised import SupervisedTrainer
from keras_dbn.virtual_adversarial import VirtualAdversarial

__version__ = "0.1.0"

__all__ = [
    "DBN",
    "PseudoLabel",
    "RBM",
    "array_dataset",
    "array_input",
    "as_aligned",
    "callbacks",
    "datasets",
    "evaluation",
    "export_saved_model",
    "hardware",
    "pseudo_label_dataset",
    "semi_supervised",
    "semi_supervised_dataset",
    "supervised",
    "SupervisedTrainer",
    "tuning",
    "units",
    "virtual_adversarial",
    "VirtualAdversarial",
    "__version__",
]
