"""Tiny RBMs and exhaustive enumeration, shared by the tests."""

import itertools

import numpy as np

import keras_dbn


def all_states(n):
    """Every binary vector of length ``n``, shape ``(2**n, n)``."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def make_rbm(num_visible, num_hidden, scale=1.0, bias_scale=0.5, seed=0, **kwargs):
    """A built RBM with N(0, scale) weights and N(0, bias_scale) biases."""
    rng = np.random.default_rng(seed)
    rbm = keras_dbn.RBM(num_hidden, seed=seed, **kwargs)
    rbm.build((None, num_visible))
    rbm.kernel.assign(rng.normal(0, scale, (num_visible, num_hidden)))
    rbm.visible_bias.assign(rng.normal(0, bias_scale, num_visible))
    rbm.hidden_bias.assign(rng.normal(0, bias_scale, num_hidden))
    return rbm


def params(rbm):
    """``(W, b, c)`` as float64 NumPy arrays."""
    return tuple(
        np.asarray(w, dtype="float64") for w in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias)
    )
