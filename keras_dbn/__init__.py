"""keras_dbn: Restricted Boltzmann Machines and Deep Belief Networks for Keras 3."""

from keras_dbn import units
from keras_dbn.rbm import RBM

__version__ = "0.1.0"

__all__ = ["RBM", "units", "__version__"]
