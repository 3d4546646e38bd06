"""Measuring RBMs as generative models: partition functions and likelihoods.

The log-likelihood of an RBM, ``log p(v) = -F(v) - log Z``, needs the
partition function ``Z``, a sum over every joint state. This module computes
``log Z`` exactly for small models (`exact_log_partition`), estimates it by
Annealed Importance Sampling for real ones (`ais_log_partition`), turns either
into an average test log-likelihood (`log_likelihood`), bounds a DBN's
log-likelihood from below (`dbn_log_likelihood_bound`), and provides the
partition-function-free pseudo-likelihood (`pseudo_likelihood`) and a check
of how varied a model's samples are (`sample_class_mix`).

Every energy term comes from the RBM's unit types (``energy`` and
``log_partition``) and its free energy, evaluated in float64 where accuracy
matters; nothing here re-derives a unit's formulas.

References:
    Salakhutdinov & Murray, "On the Quantitative Analysis of Deep Belief
    Networks", ICML 2008.
    Neal, "Annealed Importance Sampling", Statistics and Computing 11, 2001.
    Besag, "Statistical Analysis of Non-Lattice Data", The Statistician 24,
    1975 (pseudo-likelihood).
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_dbn import array_input, user_warnings
from keras_dbn.dbn import DBN
from keras_dbn.rbm import (RBM, _is_dataset, checked_count, checked_sampling_seed,
                           float64_batches, visible_mean)

_F64 = "float64"


# ----------------------------------------------------------------- helpers


def _checked_rbm(rbm, function):
    """Raises unless ``rbm`` is a built `RBM`: a `TypeError` naming what to
    pass instead for anything else (a DBN is several RBMs)."""
    if isinstance(rbm, DBN):
        raise TypeError(
            f"{function} takes one keras_dbn.RBM, got a DBN: pass one of its RBMs "
            "(e.g. dbn.rbms[0]), or use dbn_log_likelihood_bound for the DBN's "
            "log-likelihood."
        )
    if not isinstance(rbm, RBM):
        raise TypeError(f"{function} takes a keras_dbn.RBM, got {type(rbm).__name__}.")
    rbm._require_built()


def _weights(rbm, dtype=_F64):
    """``(kernel, visible_bias, hidden_bias)`` as tensors of ``dtype``.

    Raises:
        ValueError: where they hold NaN or infinite values: every figure
            computed from them would be NaN, or an AIS warning about its
            weights' spread.
    """
    weights = tuple(
        ops.cast(ops.convert_to_tensor(w), dtype)
        for w in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias)
    )
    if not all(np.isfinite(ops.convert_to_numpy(w)).all() for w in weights):
        raise ValueError(
            f"The weights of {rbm.name} hold NaN or infinite values (a diverged fit?); "
            "there is nothing to evaluate."
        )
    return weights


def _dataset_rows(data, name):
    """Every row of a finite `tf.data.Dataset` of ``x`` or ``(x, y)`` batches.

    Batches are read as `visible_mean` reads them; ``name`` names the
    argument in errors.

    Returns:
        NumPy float64 array, the batches' ``x`` concatenated.

    Raises:
        TypeError: for elements that are not tensors (e.g. dicts).
        ValueError: for an endless dataset, one of single examples, or one
            without examples.
    """
    if array_input.is_endless(data):
        raise ValueError(f"{name} is a dataset that never ends (e.g. `.repeat()`): "
                         "pass a finite one, e.g. `dataset.take(num_batches)`.")
    spec = data.element_spec
    spec = spec[0] if isinstance(spec, tuple) and spec else spec
    if not isinstance(spec, tf.TensorSpec):
        raise TypeError(f"{name} must be a dataset of batches `x` or `(x, y)` as tensors, "
                        f"got elements {data.element_spec}.")
    rows = list(float64_batches(data, name))
    if not rows:
        raise ValueError(f"{name} holds no examples.")
    return np.concatenate(rows)


def _as_matrix(x, rbm, binary_for=None):
    """``x`` as float64 rows of the RBM's visible width; clear errors otherwise.

    ``x`` is an array or a `tf.data.Dataset` (`_dataset_rows`). The values
    are checked as `RBM.fit` checks its data: finite, and in [0, 1] for
    Bernoulli visible units. With ``binary_for`` (a ``(function name,
    reason)`` pair) Bernoulli visible units also need every value 0 or 1:
    a Bernoulli RBM's probabilities are of binary states, and its formulas
    at grey levels give numbers without meaning.
    """
    if _is_dataset(x):
        x = _dataset_rows(x, "`x`")
        rbm._check_data(x)  # rank, width and values
    else:
        array_input.refuse_sparse(x, "`x`")
        # Keras' (x, y) of arrays, say: two or three arrays, the first of rows.
        pair = (isinstance(x, (list, tuple)) and 2 <= len(x) <= 3
                and all(hasattr(part, "shape") for part in x) and np.ndim(x[0]) >= 2)
        hint = "A list or tuple is read as the rows of one array: for arrays x and y give x alone."
        try:
            x = np.asarray(x, dtype=np.float64)
        except ValueError as error:
            if not pair or "inhomogeneous" not in str(error):
                raise
            raise ValueError(f"`x` holds rows of different shapes. {hint}") from None
        width = math.prod(x.shape[1:]) if x.ndim >= 2 else None
        if pair and rbm.built and width != rbm.num_visible:
            # (x, x) stacked: a width that names no width the user gave.
            raise ValueError(f"{rbm._width_error(width)} {hint}")
        rbm._check_data(x)  # rank, width and values
    if not len(x):
        raise ValueError("The data holds no examples.")
    if (binary_for is not None and rbm.visible_units.name == "bernoulli"
            and not np.all((x == 0) | (x == 1))):
        name, reason = binary_for
        raise ValueError(
            f"{name} needs binary data for Bernoulli visible units, every value 0 or 1: "
            f"{reason}; binarise the data first, e.g. `x > 0.5` or "
            "`datasets.load_numpy(..., binarize=\"threshold\")`."
        )
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


_PROBABILITIES_OF_BINARY_STATES = "p(v) is a probability of binary states only"


#: Rows per chunk of the float64 evaluations.
_CHUNK_ROWS = 4096


def _free_energy64(rbm, v, weights, batch_size=_CHUNK_ROWS):
    """``F(v)`` in float64 through the RBM's own free energy, in chunks."""
    out = []
    for start in range(0, v.shape[0], batch_size):
        chunk = ops.convert_to_tensor(v[start : start + batch_size], _F64)
        hidden_pre = rbm._hidden_pre(chunk, weights)
        out.append(ops.convert_to_numpy(rbm._free_energy(chunk, hidden_pre, weights)))
    return np.concatenate(out) if out else np.zeros((0,))


def _binary_states(start, stop, n):
    """Rows ``start..stop-1`` of the ``2**n`` binary states, as float64."""
    codes = np.arange(start, stop, dtype=np.int64)[:, None]
    return ((codes >> np.arange(n, dtype=np.int64)) & 1).astype(np.float64)


def _logsumexp(x):
    x = np.asarray(x, dtype=np.float64)
    top = np.max(x)
    return float(top + np.log(np.sum(np.exp(x - top))))


# ------------------------------------------------------- exact partition


def exact_log_partition(rbm, enumerate_layer=None, max_units=20, chunk_size=2**14):
    """Exact ``log Z`` by summing over every state of one Bernoulli layer.

    With ``n`` binary units enumerated, the other layer is summed or
    integrated out analytically by its unit type's ``log_partition``:

        log Z = logsumexp_h [ -E_h(h; c) + log_partition_v(b + W h, b) ]

    when the hidden layer is enumerated, and ``logsumexp_v [-F(v)]`` when the
    visible one is. The cost is ``2**n`` times one layer's conditional, so
    this is for small models (tests, toy problems): by default the smaller
    Bernoulli layer is enumerated and at most ``max_units`` units are
    allowed. Works for Bernoulli-Bernoulli RBMs and for RBMs with one
    Gaussian layer (the Bernoulli one is enumerated). Computed in float64, in
    chunks of ``chunk_size`` states to bound memory.

    Args:
        rbm: a built `keras_dbn.RBM`.
        enumerate_layer: ``"visible"``, ``"hidden"`` or ``None`` (the smaller
            Bernoulli layer).
        max_units: the largest layer that may be enumerated.
        chunk_size: states processed at once.

    Returns:
        ``log Z`` as a Python float.

    Raises:
        ValueError: if the layer to enumerate is not binary or is larger than
            ``max_units``, for a ``max_units`` or ``chunk_size`` that is
            not an integer >= 1, or for weights that are not finite.

    Example:

    >>> rbm = keras_dbn.RBM(10); rbm.build((None, 20))
    >>> log_z = keras_dbn.evaluation.exact_log_partition(rbm)  # 2**10 states

    References:
        Salakhutdinov & Murray, ICML 2008, section 2 (eq. 3-4).
    """
    _checked_rbm(rbm, "exact_log_partition")
    max_units = checked_count(max_units, "`max_units`", 1)
    chunk_size = checked_count(chunk_size, "`chunk_size`", 1)
    layers = {"visible": rbm.visible_units, "hidden": rbm.hidden_units}
    sizes = {"visible": rbm.num_visible, "hidden": rbm.units}
    if enumerate_layer is None:
        candidates = [name for name in ("hidden", "visible") if layers[name].discrete]
        enumerate_layer = min(candidates, key=lambda name: sizes[name])
    if enumerate_layer not in layers:
        raise ValueError(
            f"`enumerate_layer` must be 'visible', 'hidden' or None, got {enumerate_layer!r}."
        )
    if not layers[enumerate_layer].discrete:
        raise ValueError(
            f"Cannot enumerate the {enumerate_layer} layer: its "
            f"{layers[enumerate_layer].name} units are not binary."
        )
    n = sizes[enumerate_layer]
    if n > max_units:
        raise ValueError(
            f"Exact log Z would enumerate 2**{n} states of the {enumerate_layer} "
            f"layer (limit: {max_units} units); "
            + ("use ais_log_partition instead." if rbm.hidden_units.discrete else
               f"raise `max_units` if 2**{n} states are affordable (ais_log_partition "
               f"needs Bernoulli hidden units, and these are {rbm.hidden_units.name}).")
        )
    weights = _weights(rbm)
    kernel, visible_bias, hidden_bias = weights
    chunk_log_sums = []
    for start in range(0, 2**n, chunk_size):
        states = ops.convert_to_tensor(_binary_states(start, min(start + chunk_size, 2**n), n))
        if enumerate_layer == "visible":
            terms = -rbm._free_energy(states, rbm._hidden_pre(states, weights), weights)
        else:
            visible_pre = rbm._visible_pre(states, weights)
            terms = -rbm.hidden_units.energy(states, hidden_bias) + rbm.visible_units.log_partition(
                visible_pre, visible_bias
            )
        chunk_log_sums.append(_logsumexp(ops.convert_to_numpy(terms)))
    return _logsumexp(chunk_log_sums)


# ---------------------------------------------------------------- AIS


@dataclasses.dataclass
class AISResult:
    """The outcome of `ais_log_partition`.

    Attributes:
        log_z: the estimate ``log Z_A + log mean(w)``.
        log_z_low, log_z_high: ``log(Z_hat -/+ 3 std(Z_hat))``, the paper's
            interval (``log_z_low`` is ``-inf`` when the lower end is <= 0).
        log_z_base: ``log Z_A`` of the base-rate model.
        log_weights: the ``num_chains`` log importance weights (only with
            ``return_details=True``).
        samples: final states of the chains, approximate samples from the
            RBM (only with ``return_details=True``).

    Example:

    >>> result = keras_dbn.evaluation.ais_log_partition(rbm, data=x_train, seed=0,
    ...                                                 return_details=True)
    >>> result.log_z, result.log_z_high - result.log_z_low  # the estimate, its interval's width
    >>> result.log_weights.shape  # one per chain
    (100,)
    """

    log_z: float
    log_z_low: float
    log_z_high: float
    log_z_base: float
    log_weights: np.ndarray = None
    samples: np.ndarray = None


def paper_betas(num_steps=14500):
    """The inverse-temperature schedule of Salakhutdinov & Murray (2008).

    ``beta`` rises uniformly from 0 to 0.5 in 500 steps, to 0.9 in 4,000 and
    to 1.0 in 10,000: 14,500 steps and 14,501 values, with spacing 1e-3,
    1e-4 and 1e-5, ever finer where the distributions change fastest.
    ``num_steps`` scales the three segments in the same proportions, for
    shorter runs.

    Args:
        num_steps: total number of steps (at least 3).

    Returns:
        A float64 array of ``num_steps + 1`` values from 0 to 1.

    Raises:
        ValueError: for a ``num_steps`` that is not an integer >= 3.

    Example:

    >>> betas = keras_dbn.evaluation.paper_betas(1450)  # a tenth of the paper's steps
    >>> len(betas), float(betas[50]), float(betas[450])
    (1451, 0.5, 0.9)
    >>> result = keras_dbn.evaluation.ais_log_partition(rbm, betas=betas, data=x_train, seed=0)

    References:
        Salakhutdinov & Murray, ICML 2008, section 4.1.
    """
    num_steps = checked_count(num_steps, "`num_steps`", 3)
    first = max(1, round(num_steps * 500 / 14500))
    second = max(1, round(num_steps * 4000 / 14500))
    third = num_steps - first - second
    return np.concatenate(
        [
            np.linspace(0.0, 0.5, first, endpoint=False),
            np.linspace(0.5, 0.9, second, endpoint=False),
            np.linspace(0.9, 1.0, third + 1),
        ]
    )


class _StepSeed(keras.random.SeedGenerator):
    """A fixed stateless seed in the form the unit types' samplers take.

    The samplers draw through `keras.random`, which accepts integers or seed
    generators; this stand-in hands over a per-step ``(2,)`` seed tensor
    instead of advancing a variable, so a `tf.while_loop` body stays
    stateless and the whole run is reproducible.
    """

    def __init__(self, seed):  # noqa: D107 - no state to create
        self._seed = seed

    def next(self, ordered=True):
        return self._seed


@tf.function(autograph=False, reduce_retracing=True)
def _ais_loop(visible, hidden, kernel, visible_bias, hidden_bias, base_bias, betas, seed, num_chains):
    """The compiled AIS run; returns the log weights and the final states.

    ``kernel`` is in the compute dtype of the matrix products; biases,
    ``betas`` and the weights are float64. One trace serves every call with
    the same unit types, dtypes and ``num_chains``.
    """
    dtype = kernel.dtype
    num_steps = tf.shape(betas)[0] - 1

    def log_p_star(beta, v64, hidden_in64):
        # log p*_k(v) = -(1 - b) E_v(v; b_A) - b E_v(v; b_B)
        #               + log_partition_h(b (v W + c))     (eq. 11-12)
        return (
            -(1.0 - beta) * visible.energy(v64, base_bias)
            - beta * visible.energy(v64, visible_bias)
            + hidden.log_partition(beta * hidden_in64, beta * hidden_bias)
        )

    def step_seed(k, which):
        return _StepSeed(tf.stack([seed, 2 * k + which]))

    base_c, visible_bias_c, hidden_bias_c = (
        ops.cast(x, dtype) for x in (base_bias, visible_bias, hidden_bias)
    )
    v0_mean = visible.mean(ops.zeros((num_chains, tf.shape(kernel)[0]), dtype) + base_c)
    v0 = visible.sample(v0_mean, step_seed(tf.constant(0), 0))

    def body(k, v, log_w):
        # Weight update at the state left by T_{k-1}, then one Gibbs step
        # that leaves p_k invariant (Neal 2001, section 3).
        product = ops.matmul(v, kernel)
        hidden_in = product + hidden_bias_c
        hidden_in64 = ops.cast(product, "float64") + hidden_bias
        v64 = ops.cast(v, "float64")
        beta, previous = betas[k], betas[k - 1]
        log_w += log_p_star(beta, v64, hidden_in64) - log_p_star(previous, v64, hidden_in64)
        beta_c = ops.cast(beta, dtype)
        h = hidden.sample(hidden.mean(beta_c * hidden_in), step_seed(k, 0))
        # The mixed visible energy has bias (1 - b) b_A + b (b_B + W h).
        visible_pre = (1.0 - beta_c) * base_c + beta_c * (
            visible_bias_c + ops.matmul(h, ops.transpose(kernel))
        )
        v = visible.sample(visible.mean(visible_pre), step_seed(k, 1))
        return k + 1, v, log_w

    _, v, log_w = tf.while_loop(
        lambda k, v, log_w: k <= num_steps,
        body,
        (tf.constant(1), v0, tf.zeros((num_chains,), tf.float64)),
        parallel_iterations=1,
    )
    return log_w, v


def ais_log_partition(
    rbm,
    num_chains=100,
    betas=None,
    base_rate=None,
    data=None,
    seed=None,
    return_details=False,
):
    """Estimates ``log Z`` of an RBM by Annealed Importance Sampling.

    AIS anneals from a base-rate model A, an RBM with zero weights whose
    visible biases match the data's mean (``bias_from_mean``), to the RBM B
    through the distributions

        p_k(v) ∝ exp(-(1 - β_k) E_v(v; b_A) - β_k E_v(v; b_B))
                 * Σ_h exp(β_k (c^T h + v^T W h))

    (the paper's eq. 10-12; A's hidden units only add a constant and are
    left out). Each chain starts with an exact sample of A, takes one Gibbs
    step at each ``β_k``, and accumulates the log importance weight
    ``Σ_k log p*_k(v_k) - log p*_{k-1}(v_k)``; then
    ``Z_B / Z_A ≈ mean(w)``. The whole run is one compiled `tf.while_loop`
    with stateless per-step random numbers: a fixed ``seed`` reproduces it.
    Matrix products run in the RBM's compute dtype; weights are accumulated
    in float64. The paper's setting (100 chains, 14,500 steps) on a 784x500
    RBM takes about a minute on a 2-core CPU.

    The estimate of ``Z`` is unbiased, so ``log_z`` tends to underestimate
    ``log Z`` (Jensen) when the weights vary a lot: too few ``betas``, or a
    base model far from the RBM, make log-likelihoods look better than they
    are. By Markov's inequality ``log_z`` exceeds ``log Z`` by ``t`` nats
    with probability at most ``exp(-t)``: of several runs (more betas or
    chains, with and without ``data``) the highest is the most credible.
    Compare ``log_z_high - log_z_low`` across runs; a wide interval means
    more betas or chains.

    Applies to RBMs with Bernoulli hidden units and Bernoulli or Gaussian
    (unit-variance) visible units; for Gaussian visible units the base model
    is the Gaussian ``N(data mean, I)`` (``N(0, I)`` without data).

    Args:
        rbm: a built `keras_dbn.RBM`.
        num_chains: number of independent AIS runs ``M``, at least 2: the
            interval comes from the spread of their weights, which one run
            cannot show.
        betas: increasing inverse temperatures from 0 to 1; by default the
            paper's 14,500-step schedule (`paper_betas`).
        base_rate: mean activity of the base model's visible units, shape
            ``(num_visible,)`` (pixel-on probabilities for Bernoulli units)
            or one number for every unit; overrides ``data``.
        data: training data (NumPy array or iterable of batches) whose mean
            gives the base rate; with neither, the base model has zero biases.
        seed: integer seed; ``None`` draws one.
        return_details: also return the log weights and final chain states.

    Returns:
        An `AISResult` with ``log_z``, ``log_z_low``, ``log_z_high`` and
        ``log_z_base`` (Python floats), plus ``log_weights`` and ``samples``
        with ``return_details=True``.

    Raises:
        ValueError: for Gaussian hidden units, malformed ``betas``, a
            base rate (``base_rate`` or the mean of ``data``) that is not
            finite, or outside [0, 1] for Bernoulli visible units, ``data``
            (any of its batches) that `RBM.fit` would refuse, a dataset
            that never ends, or weights that are not finite.

    Warns:
        UserWarning: where the interval has no lower end (``log_z_low`` is
            ``-inf``: three standard errors of the weights' mean exceed the
            mean): the estimate may lie far below ``log Z``. Either base
            model can fall short: a 784x64 RBM trained 2 epochs
            (``compile()``'s defaults, batch 100) on 10,000 binarised MNIST
            images gave, with the default schedule, 337.5 without ``data``
            (interval 337.4-337.6) and 315.9 with it (and this warning);
            one trained otherwise 254.8 without ``data`` (and this warning)
            and 275.0 with it (interval 274.6-275.3).

    Example:

    >>> result = keras_dbn.evaluation.ais_log_partition(rbm, data=x_train, seed=0)
    >>> result.log_z, (result.log_z_low, result.log_z_high)

    References:
        Salakhutdinov & Murray, "On the Quantitative Analysis of Deep Belief
        Networks", ICML 2008, section 3.1 (eq. 10-13) and 4.1.
        Neal, "Annealed Importance Sampling", Statistics and Computing 11,
        2001.
    """
    _checked_rbm(rbm, "ais_log_partition")
    if not rbm.hidden_units.discrete:
        raise ValueError(
            "ais_log_partition needs Bernoulli hidden units: tempering "
            f"{rbm.hidden_units.name} hidden units also changes their variance, "
            "which this annealing path does not model. For a small Bernoulli visible "
            "layer, exact_log_partition(rbm) gives log Z (pass it as `log_z` where a "
            "function takes one)."
        )
    betas = paper_betas() if betas is None else np.asarray(betas, dtype=np.float64)
    if (betas.ndim != 1 or betas.shape[0] < 2 or betas[0] != 0.0 or betas[-1] != 1.0
            or not np.all(np.isfinite(betas)) or np.any(np.diff(betas) < 0)):
        raise ValueError("`betas` must rise monotonically from 0.0 to 1.0 (at least two values).")
    num_chains = checked_count(num_chains, "`num_chains`", 2)
    num_visible = rbm.num_visible
    base_mean = None
    if base_rate is not None:
        base_mean = np.asarray(base_rate, np.float64)
        if base_mean.shape not in ((), (num_visible,)):
            raise ValueError(f"`base_rate` must be a number or hold one rate per visible unit "
                             f"({num_visible}), got shape {base_mean.shape}.")
        base_mean = np.broadcast_to(base_mean, (num_visible,))
    elif data is not None:
        # Every array or batch checked as `fit` checks its data: values
        # outside [0, 1] can still have column means inside it.
        base_mean = visible_mean(data, check=rbm._check_data)
        if base_mean.shape != (num_visible,):
            raise ValueError(
                f"`data` has {base_mean.shape[0]} features; the RBM has "
                f"{num_visible} visible units."
            )
    if base_mean is None:
        base_bias = np.zeros(num_visible)
    else:
        if not np.all(np.isfinite(base_mean)):
            raise ValueError("`base_rate` or `data` holds NaN or infinite values.")
        if rbm.visible_units.name == "bernoulli" and (base_mean.min() < 0 or base_mean.max() > 1):
            raise ValueError(
                "Bernoulli visible units need a base rate in [0, 1], from data in [0, 1] "
                f"(got means in [{base_mean.min():.3g}, {base_mean.max():.3g}])."
            )
        base_bias = ops.convert_to_numpy(
            rbm.visible_units.bias_from_mean(ops.convert_to_tensor(base_mean, _F64))
        )
    seed = checked_sampling_seed(seed, allow_none=True)
    if seed is None:
        seed = int(np.random.randint(0, 2**31))

    compute_dtype = rbm.compute_dtype
    if compute_dtype not in ("float32", "float64"):
        compute_dtype = "float32"  # half precision would swamp the weights
    kernel, visible_bias, hidden_bias = _weights(rbm)
    log_w, samples = _ais_loop(
        rbm.visible_units,
        rbm.hidden_units,
        ops.cast(kernel, compute_dtype),
        visible_bias,
        hidden_bias,
        ops.convert_to_tensor(base_bias, _F64),
        tf.constant(betas, tf.float64),
        tf.constant(seed, tf.int32),
        num_chains,
    )
    log_w = ops.convert_to_numpy(log_w).astype(np.float64)

    # log Z_A: A's visible units alone plus its untempered hidden units
    # (p*_0 includes log_partition_h(0), a constant, see log_p_star).
    zeros_h = ops.zeros((1, rbm.units), _F64)
    base = ops.convert_to_tensor(base_bias[None, :], _F64)
    log_z_base = float(
        ops.convert_to_numpy(
            rbm.visible_units.log_partition(base, base[0])
            + rbm.hidden_units.log_partition(zeros_h, zeros_h[0])
        )[0]
    )
    log_z, log_z_low, log_z_high = _log_mean_interval(log_w)
    if not math.isfinite(log_z_low):
        user_warnings.warn(
            "AIS: the importance weights spread so widely (three standard errors of their "
            "mean exceed it) that the interval has no lower end (log_z_low = -inf; "
            f"log_z_high - log_z = {log_z_high - log_z:.3g}): the estimate may lie far "
            "below log Z, which makes log-likelihoods look better than they are. An AIS "
            "estimate rarely overshoots (by t nats with probability at most exp(-t)), so "
            "compare runs with more betas or chains and with the other base model (with "
            "or without data=): the highest estimate is the most credible."
        )
    return AISResult(
        log_z=float(log_z_base + log_z),
        log_z_low=float(log_z_base + log_z_low),
        log_z_high=float(log_z_base + log_z_high),
        log_z_base=log_z_base,
        log_weights=log_w if return_details else None,
        samples=ops.convert_to_numpy(samples) if return_details else None,
    )


def _log_mean_interval(log_w, num_std=3.0):
    """``log mean(w)`` and ``log(mean(w) -/+ num_std * std(w) / sqrt(M))``."""
    top = np.max(log_w)
    w = np.exp(log_w - top)
    mean = w.mean()
    spread = num_std * w.std(ddof=1) / math.sqrt(w.size)  # two weights or more
    low = np.log(mean - spread) if mean > spread else -np.inf
    return top + np.log(mean), top + low, top + np.log(mean + spread)


# ----------------------------------------------------------- likelihoods


def log_likelihood(rbm, x, log_z=None, **ais_kwargs):
    """Average log-probability of ``x`` under the RBM, in nats.

    ``mean_n log p(v_n) = -mean_n F(v_n) - log Z``, for binary ``v`` with
    Bernoulli visible units (e.g. MNIST binarised as in Salakhutdinov &
    Murray 2008, whose figures are of such data). The free energies are
    exact (float64); ``log Z`` is estimated by `ais_log_partition` unless
    given, so the result is an estimate whose uncertainty is that of
    ``log Z`` (see ``log_z_low``/``log_z_high`` of the AIS result). For
    Gaussian visible units it is a log-density.

    Args:
        rbm: a built `keras_dbn.RBM`.
        x: data, shape ``(n, num_visible)`` (images are flattened), or a
            finite, batched `tf.data.Dataset` of ``x`` or ``(x, y)``, whose
            rows are read into memory.
        log_z: a known ``log Z``: a number (from `exact_log_partition`) or
            the `AISResult` of an earlier AIS run.
        **ais_kwargs: passed to `ais_log_partition` when ``log_z`` is None
            (``data=x_train`` for the paper's base-rate model).

    Returns:
        The average log-likelihood as a Python float.

    Raises:
        ValueError: for data that `RBM.fit` would refuse (not finite, of
            the wrong width, or outside [0, 1] for Bernoulli visible
            units, or without rows), for Bernoulli visible units data
            other than 0 and 1 (binarise grey levels first), a dataset
            that never ends or yields single examples, a ``log_z`` that is
            not a finite number, AIS options beside a given ``log_z``, and
            weights that are not finite.
        TypeError: for a dataset whose elements are not tensors (e.g.
            dicts).

    Example:

    >>> x_binary = (x_test > 0.5).astype("float32")  # binary data, as trained on
    >>> keras_dbn.evaluation.log_likelihood(rbm, x_binary, data=x_train, seed=0)

    References:
        Salakhutdinov & Murray, ICML 2008, section 4.1 (table 1).
    """
    _checked_rbm(rbm, "log_likelihood")
    v = _as_matrix(x, rbm, binary_for=("log_likelihood", _PROBABILITIES_OF_BINARY_STATES))
    log_z = _known_or_estimated_log_z(rbm, log_z, ais_kwargs)
    return float(-np.mean(_free_energy64(rbm, v, _weights(rbm))) - log_z)


def _known_or_estimated_log_z(rbm, log_z, ais_kwargs):
    """``log_z`` (a finite number, or an `AISResult`'s) when given, else
    `ais_log_partition`'s estimate."""
    if log_z is None:
        return ais_log_partition(rbm, **ais_kwargs).log_z
    if ais_kwargs:
        raise ValueError(
            f"AIS options ({', '.join(sorted(ais_kwargs))}) have no effect with a given "
            "`log_z`."
        )
    value = np.asarray(log_z.log_z if isinstance(log_z, AISResult) else log_z)
    if value.shape != () or value.dtype.kind not in "iuf" or not np.isfinite(value):
        raise ValueError(f"`log_z` must be a finite number or an AISResult, got {log_z!r}.")
    return float(value)


def log_conditional(units, states, pre_activation, bias):
    """``log p(u | x)`` of one layer's states given the input from the other.

    ``p(u | x) = exp(-E_u(u; a) + u^T x) / exp(log_partition(a + x, a))``,
    from the unit type's own ``energy`` and ``log_partition``: for
    Bernoulli units ``u^T (a + x) - sum softplus(a + x)``, for Gaussian
    units the unit-variance normal log-density around ``a + x``.

    Args:
        units: a `keras_dbn.units.Units`.
        states: the layer's states, shape ``(batch, n)``.
        pre_activation: their total input ``a + x``, shape ``(batch, n)``.
        bias: the layer's bias ``a``, shape ``(n,)``.

    Returns:
        A tensor of shape ``(batch,)``, in the widest dtype of the three.

    Example:

    >>> h = rbm.hidden_given_visible(x_test[:10], sample=True)
    >>> pre = keras.ops.matmul(h, keras.ops.transpose(rbm.kernel)) + rbm.visible_bias
    >>> log_p = keras_dbn.evaluation.log_conditional(  # log p(v | h), shape (10,)
    ...     rbm.visible_units, x_test[:10], pre, rbm.visible_bias)
    """
    tensors = [ops.convert_to_tensor(t) for t in (states, pre_activation, bias)]
    # One dtype, the widest (float64 data, x / 255., with float32 weights).
    dtype = keras.backend.result_type(*(t.dtype for t in tensors))
    states, pre_activation, bias = (ops.cast(t, dtype) for t in tensors)
    interaction = ops.sum(states * (pre_activation - bias), axis=-1)
    return -units.energy(states, bias) + interaction - units.log_partition(pre_activation, bias)


def dbn_log_likelihood_bound(
    dbn, x, log_z=None, samples=10, seed=None, batch_size=4096, **ais_kwargs
):
    """Average variational lower bound on ``log p(v)`` under a DBN, in nats.

    A DBN of ``L`` RBMs defines ``p(v) = sum p(v | h_1) ... p(h_{L-2} |
    h_{L-1}) p_L(h_{L-1})``: the directed conditionals of the lower RBMs
    and the top RBM's marginal over its visible layer. With the lower
    RBMs' hidden conditionals as the approximate posterior
    ``Q(h_1, ..., h_{L-1} | v)`` (one pass up, sampling each layer),

        log p(v) >= E_Q[ sum_l log p(h_{l-1} | h_l) - F_L(h_{L-1})
                         - sum_l log Q(h_l | h_{l-1}) ] - log Z_L

    with ``h_0 = v`` (the variational bound of Hinton, Osindero & Teh
    2006, estimated as in Salakhutdinov & Murray 2008's lower bounds for
    DBNs, here for any number of layers). The expectation is estimated
    from ``samples`` passes up per example, so the result is an unbiased
    estimate of the bound; ``log Z_L`` is the top RBM's (AIS unless given), so its error
    carries over as in `log_likelihood`. For a one-RBM DBN the bound is the
    RBM's log-likelihood. Computed in float64.

    Args:
        dbn: a built `keras_dbn.DBN`.
        x: data, shape ``(n, num_visible)`` (images are flattened), or a
            finite, batched `tf.data.Dataset` of ``x`` or ``(x, y)``, whose
            rows are read into memory.
        log_z: the top RBM's ``log Z``, if known: a number or an
            `AISResult`.
        samples: passes up per example.
        seed: seed of the samples, and of AIS where ``log_z`` is not
            given (unless ``ais_kwargs`` names one): the bound is
            reproducible when set.
        batch_size: rows (example-sample pairs) per chunk, which bound
            the memory the samples take.
        **ais_kwargs: passed to `ais_log_partition` for the top RBM when
            ``log_z`` is None; its ``data`` should be the top RBM's input,
            e.g. ``dbn.transform(x_train, num_layers=len(dbn.rbms) - 1)``.

    Returns:
        The average bound as a Python float.

    Raises:
        TypeError: when ``dbn`` is not a `keras_dbn.DBN`, or for a dataset
            whose elements are not tensors.
        ValueError: for data or a ``log_z`` that `log_likelihood` refuses,
            a ``samples`` or ``batch_size`` that is not an integer >= 1, a
            ``seed`` that is neither None nor an integer (NumPy's too) in
            ``[0, 2**31)``, as AIS takes it, and a DBN whose RBMs are not
            all built or whose widths do not chain.

    Example:

    >>> top_input = dbn.transform(x_train, num_layers=len(dbn.rbms) - 1)
    >>> x_binary = (x_test > 0.5).astype("float32")  # binary data, as trained on
    >>> keras_dbn.evaluation.dbn_log_likelihood_bound(dbn, x_binary, data=top_input, seed=0)

    References:
        Salakhutdinov & Murray, "On the Quantitative Analysis of Deep
        Belief Networks", ICML 2008 (lower bounds for DBNs).
        Hinton, Osindero & Teh, "A Fast Learning Algorithm for Deep Belief
        Nets", Neural Computation 18, 2006 (the variational bound).
    """
    if not isinstance(dbn, DBN):
        raise TypeError(
            f"dbn_log_likelihood_bound takes a keras_dbn.DBN, got {type(dbn).__name__}; "
            "for an RBM use log_likelihood."
        )
    dbn._require_weights()  # its RBMs built, and their widths in a chain
    rbms = list(dbn.rbms)
    samples = checked_count(samples, "`samples`", 1)
    batch_size = checked_count(batch_size, "`batch_size`", 1)
    # Before AIS, which may run for minutes; AIS's range whether or not it runs.
    seed = checked_sampling_seed(seed, allow_none=True)
    if seed is not None and log_z is None:
        ais_kwargs.setdefault("seed", seed)  # the whole bound reproducible
    top = rbms[-1]
    v = _as_matrix(x, rbms[0], binary_for=("dbn_log_likelihood_bound",
                                           _PROBABILITIES_OF_BINARY_STATES))
    log_z = _known_or_estimated_log_z(top, log_z, ais_kwargs)
    weights = [_weights(rbm) for rbm in rbms]
    seed_generator = keras.random.SeedGenerator(seed)
    bounds = []
    # Row r of the chunks is example r // samples: each chunk gathers its
    # rows, so memory grows with batch_size, not with n * samples.
    for start in range(0, v.shape[0] * samples, batch_size):
        stop = min(start + batch_size, v.shape[0] * samples)
        below = ops.convert_to_tensor(v[np.arange(start, stop) // samples], _F64)
        total = ops.zeros((below.shape[0],), _F64)
        for rbm, layer_weights in zip(rbms[:-1], weights[:-1]):
            _, visible_bias, hidden_bias = layer_weights
            hidden_pre = rbm._hidden_pre(below, layer_weights)
            hidden = rbm.hidden_units.sample(rbm.hidden_units.mean(hidden_pre), seed_generator)
            visible_pre = rbm._visible_pre(hidden, layer_weights)
            total += log_conditional(rbm.visible_units, below, visible_pre, visible_bias)
            total -= log_conditional(rbm.hidden_units, hidden, hidden_pre, hidden_bias)
            below = hidden
        top_pre = top._hidden_pre(below, weights[-1])
        total -= top._free_energy(below, top_pre, weights[-1])
        bounds.append(ops.convert_to_numpy(total))
    per_row = np.concatenate(bounds).reshape(v.shape[0], samples)
    return float(np.mean(per_row) - log_z)


def pseudo_likelihood(rbm, x, seed=None, all_bits=False, batch_size=None):
    """Pseudo-log-likelihood of binary data, per example.

    ``log p(v_i | v_-i) = log σ(F(v with bit i flipped) - F(v))`` needs no
    partition function. By default this matches scikit-learn's
    `BernoulliRBM.score_samples`: one random bit ``i`` per example and
    ``num_visible * log p(v_i | v_-i)``, a stochastic estimate of the
    pseudo-log-likelihood; with an integer ``seed`` the flipped bits are the
    ones ``BernoulliRBM(random_state=seed).score_samples`` flips. With
    ``all_bits=True`` it is the exact sum over every bit,
    ``Σ_i log p(v_i | v_-i)``, at ``num_visible`` times the cost.

    Args:
        rbm: a built `keras_dbn.RBM` with Bernoulli visible units.
        x: binary data (0 or 1), shape ``(n, num_visible)``, or a finite,
            batched `tf.data.Dataset` of ``x`` or ``(x, y)``, whose rows are
            read into memory.
        seed: ``None``, an integer seed or a `np.random.RandomState`,
            choosing the bits.
        all_bits: sum over all bits instead of sampling one.
        batch_size: examples per chunk for ``all_bits``, whose memory grows
            as ``batch_size * num_visible * max(num_visible, units)``; by
            default chunks of about 4M values.

    Returns:
        NumPy float64 array of shape ``(n,)``.

    Raises:
        ValueError: for visible units that are not Bernoulli, for data
            that are not all 0 or 1, of the wrong width or without rows,
            for a dataset that never ends or yields single examples, for a
            ``seed`` of another kind, for a ``batch_size`` that is not
            an integer >= 1, and for weights that are not finite.
        TypeError: for a dataset whose elements are not tensors (e.g.
            dicts).

    Example:

    >>> x_binary = (x_test > 0.5).astype("float32")  # binary data, as scikit-learn's
    >>> keras_dbn.evaluation.pseudo_likelihood(rbm, x_binary, seed=0).mean()

    References:
        Besag, The Statistician 24, 1975.
        scikit-learn, `sklearn.neural_network.BernoulliRBM.score_samples`.
    """
    _checked_rbm(rbm, "pseudo_likelihood")
    if rbm.visible_units.name != "bernoulli":
        raise ValueError(
            "pseudo_likelihood needs Bernoulli visible units (got "
            f"{rbm.visible_units.name}): flipping a bit is meaningless otherwise."
        )
    if batch_size is not None:
        batch_size = checked_count(batch_size, "`batch_size`", 1)
    if not (seed is None or isinstance(seed, np.random.RandomState)
            or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool))):
        raise ValueError(
            f"`seed` must be None, an integer or a np.random.RandomState, got {seed!r}."
        )
    v = _as_matrix(x, rbm, binary_for=("pseudo_likelihood",
                                       "flipping a bit of other values is meaningless"))
    n, num_visible = v.shape
    weights = _weights(rbm)
    kernel = weights[0]
    # A flip of bit i adds (1 - 2 v_i) W_i to the example's hidden input: a
    # row of the kernel, where a GEMM of the flipped copies took ~4.5x the
    # time of the whole estimate (one random bit) and num_visible times the
    # FLOPs of the free energies (every bit).
    if not all_bits:
        rng = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
        flip = rng.randint(0, num_visible, n)
        gaps = []
        for start in range(0, n, _CHUNK_ROWS):
            chunk, bits = v[start:start + _CHUNK_ROWS], flip[start:start + _CHUNK_ROWS]
            rows = np.arange(len(chunk))
            flipped = chunk.copy()
            flipped[rows, bits] = 1.0 - chunk[rows, bits]
            chunk, flipped = (ops.convert_to_tensor(a, _F64) for a in (chunk, flipped))
            hidden_pre = rbm._hidden_pre(chunk, weights)
            step = ops.convert_to_tensor((1.0 - 2.0 * v[start + rows, bits])[:, None], _F64)
            flipped_pre = hidden_pre + step * ops.take(kernel, bits, axis=0)
            gaps.append(ops.convert_to_numpy(
                rbm._free_energy(flipped, flipped_pre, weights)
                - rbm._free_energy(chunk, hidden_pre, weights)))
        return -num_visible * np.logaddexp(0.0, -np.concatenate(gaps))

    if batch_size is None:
        batch_size = max(1, 2**22 // (num_visible * max(num_visible, rbm.units)))
    eye = np.eye(num_visible)
    totals = []
    for start in range(0, n, batch_size):
        chunk = v[start : start + batch_size]
        b = chunk.shape[0]
        # All num_visible one-bit flips of each example: (b, V, V), and
        # their hidden inputs: the example's plus (1 - 2 v_i) W_i, (b, V, H).
        steps = 1.0 - 2.0 * chunk
        flipped = ops.convert_to_tensor(
            (chunk[:, None, :] + eye[None] * steps[:, None, :]).reshape(b * num_visible,
                                                                       num_visible))
        tensor = ops.convert_to_tensor(chunk, _F64)
        hidden_pre = rbm._hidden_pre(tensor, weights)
        flipped_pre = ops.reshape(
            hidden_pre[:, None, :] + ops.convert_to_tensor(steps[:, :, None]) * kernel[None],
            (b * num_visible, -1))
        flipped_energy = ops.convert_to_numpy(rbm._free_energy(flipped, flipped_pre, weights))
        energy = ops.convert_to_numpy(rbm._free_energy(tensor, hidden_pre, weights))
        gap = flipped_energy.reshape(b, num_visible) - energy[:, None]
        totals.append(-np.logaddexp(0.0, -gap).sum(axis=1))
    return np.concatenate(totals)


@dataclasses.dataclass
class ClassMix:
    """How generated samples spread over the classes a classifier sees in them.

    Attributes:
        frequencies: NumPy array ``(num_classes,)``, the fraction of samples
            predicted as each class (sums to 1).
        entropy: entropy of ``frequencies`` in nats; ``log(num_classes)`` when
            every class is equally frequent, 0 when all samples share one.
        effective_classes: ``exp(entropy)``, the number of equally frequent
            classes with the same entropy (between 1 and ``num_classes``).
        confidence: the classifier's mean top probability on the samples (low
            values flag samples it cannot read as any class).

    Example:

    >>> mix = keras_dbn.evaluation.sample_class_mix(classifier, dbn.generate(1000, seed=0))
    >>> mix.frequencies.shape  # one fraction per class
    (10,)
    >>> mix.effective_classes, mix.confidence
    """

    frequencies: np.ndarray
    entropy: float
    effective_classes: float
    confidence: float


def sample_class_mix(classifier, samples, batch_size=1000):
    """Measures how varied a generative model's samples are, through a classifier.

    A model whose Gibbs chains fall into a few modes draws samples of a few
    classes only, however sharp each sample looks. Reading the samples with
    a classifier trained on labelled data (e.g. the fine-tuned
    ``DBN.to_classifier()``) turns that into numbers: the class frequencies
    and their entropy. For MNIST, a model that draws every digit equally
    often has ``effective_classes`` 10; one that draws only 1s has 1.

    Args:
        classifier: a Keras model mapping samples to class probabilities.
        samples: NumPy array of samples, e.g. from `DBN.generate`, or a
            finite, batched `tf.data.Dataset` of ``x`` or ``(x, y)``, whose
            rows are read into memory.
        batch_size: rows per forward pass.

    Returns:
        A `ClassMix`.

    Raises:
        ValueError: when ``samples`` holds no examples, is a dataset that
            never ends or yields single examples, or the classifier does
            not give one probability per class (two columns or more), or
            gives NaN or infinite probabilities.
        TypeError: for a dataset whose elements are not tensors (e.g.
            dicts).

    Example:

    >>> mix = keras_dbn.evaluation.sample_class_mix(classifier, dbn.generate(1000))
    >>> mix.frequencies, mix.effective_classes
    """
    samples = _dataset_rows(samples, "`samples`") if _is_dataset(samples) else np.asarray(samples)
    array_input.check_rank(samples.shape)
    if not len(samples):
        raise ValueError("`samples` holds no examples.")
    data, _, batch = array_input.evaluation_input(samples, None, batch_size)
    # float64: NumPy sums a bfloat16 classifier's outputs in bfloat16, whose
    # sum stops growing at 256.
    probabilities = np.asarray(classifier.predict(data, batch_size=batch, verbose=0),
                               dtype="float64")
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(
            "sample_class_mix reads one probability per class, at least two columns; "
            f"the classifier gives shape {probabilities.shape} (for a one-column "
            "sigmoid output give it a two-class softmax)."
        )
    if not np.isfinite(probabilities).all():
        raise ValueError(
            "The classifier gives NaN or infinite probabilities for "
            f"{int(np.sum(~np.isfinite(probabilities).all(axis=1)))} of the {len(probabilities)} "
            "samples; are the samples finite, and is the classifier trained?"
        )
    counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
    frequencies = counts / counts.sum()
    present = frequencies[frequencies > 0]
    entropy = float(-np.sum(present * np.log(present))) + 0.0  # 0.0, not -0.0, for one class
    return ClassMix(
        frequencies=frequencies,
        entropy=entropy,
        effective_classes=float(np.exp(entropy)),
        confidence=float(probabilities.max(axis=1).mean()),
    )
