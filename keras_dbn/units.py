"""Unit types for the two layers of an RBM.

An RBM's energy splits into one term per layer plus the interaction::

    E(v, h) = E_v(v; b) + E_h(h; c) - v^T W h

Each unit type here supplies its own term ``E_u(u; a)`` and everything that
follows from it: the conditional mean given the total input, a sampler, and
the log of the integral (or sum) over the unit's states that marginalising the
layer out produces. Because every RBM formula (free energy, conditionals,
exact partition functions, AIS) is written in terms of these four pieces, a
new unit type only needs to implement them.

References:
    Hinton, "A Practical Guide to Training Restricted Boltzmann Machines",
    UTML TR 2010-003, sections 13.1-13.2 (Gaussian visible units).
    Welling, Rosen-Zvi & Hinton, "Exponential Family Harmoniums with an
    Application to Information Retrieval", NIPS 2004.
"""

import math

import keras
import numpy as np
from keras import backend
from keras import ops
from keras import random

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOW_PRECISION = ("float16", "bfloat16")


def bernoulli_sample(mean, seed, shape=None):
    """Binary states that are 1 with probability ``mean``.

    ``floor(mean + u)`` with ``u ~ U[0, 1)`` is 1 exactly when
    ``u >= 1 - mean``. An add and a floor are about 9x faster on CPU than
    the usual ``cast(u < mean)``: TensorFlow's boolean-to-float cast is not
    vectorised (71 vs 8 microseconds for 100 x 500 units, measured on the
    2-core machine). 16-bit means are sampled in float32: a bfloat16 uniform
    has only 7 random bits, so ``p = 0.001`` would come out as ~0.008.

    With TensorFlow and a `keras.random.SeedGenerator`, each 32-bit word of
    Philox output gives two uniforms of 16 bits, ``u = (k + 1/2) / 2^16``:
    generating the random bits is most of a Bernoulli draw's cost, and this
    halves it (100 x 500 units: 75 instead of 135 microseconds; a CD-1 step
    of a 784x500 RBM ~2-4% faster). Every probability is then rounded to the
    nearest multiple of ``2^-16`` (an error of at most 7.6e-6): 0 and 1 stay
    exact, and ``p < 7.6e-6`` gives no ones. Under a `tf.distribute`
    strategy each replica draws its own numbers (`tensorflow_seed`).

    Args:
        mean: probabilities, any shape, float dtype.
        seed: a `keras.random.SeedGenerator` (or a seed) for the uniforms.
        shape: ``mean``'s shape, when the caller knows it from another
            tensor. In a traced step the random numbers then need not wait
            for the op that computes ``mean`` (a CD step's GEMM) and can be
            drawn beside it (CD-1 at 784x500, batch 100: 1.014x in a paired A/B).

    Returns:
        A tensor of 0.0 / 1.0 with the shape and dtype of ``mean``.
    """
    if backend.standardize_dtype(mean.dtype) in _LOW_PRECISION:
        return ops.cast(bernoulli_sample(ops.cast(mean, "float32"), seed, shape), mean.dtype)
    if shape is None:
        shape = ops.shape(mean)
    if isinstance(seed, DrawnNoise):
        noise = seed.uniform(shape, mean.dtype)
    elif backend.backend() == "tensorflow" and isinstance(seed, random.SeedGenerator):
        noise = _uniform16_tensorflow(shape, mean.dtype, seed)
    else:
        noise = random.uniform(shape, dtype=mean.dtype, seed=seed)
    return bernoulli_from_uniform(mean, noise)


def tensorflow_seed(seed_generator):
    """The generator's next seed as a TensorFlow stateless seed, one per replica.

    Under a `tf.distribute` strategy every replica runs the same step and
    reads the same (mirrored) generator state, so each would draw the same
    random numbers for its share of the batch. The replica's id is folded
    into the seed (``tf.random.experimental.stateless_fold_in``), so that
    replicas draw independent numbers; outside a strategy, or with one
    replica, the seed is the generator's own.

    Args:
        seed_generator: a `keras.random.SeedGenerator`.

    Returns:
        An int64 tensor of shape ``(2,)`` for ``tf.random.stateless_*`` ops.
    """
    import tensorflow as tf

    seed = tf.cast(seed_generator.next(), "int64")
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        replica = tf.cast(context.replica_id_in_sync_group, "int32")
        seed = tf.random.experimental.stateless_fold_in(seed, replica)
    return seed


def _uniform16_tensorflow(shape, dtype, seed_generator):
    """Uniforms ``(k + 1/2) / 2^16`` of this shape, two per Philox word."""
    import tensorflow as tf

    shape = tf.cast(tf.stack(shape) if isinstance(shape, (tuple, list)) else shape, "int32")
    return _uniform16_from_halves(_philox_halves(tf.reduce_prod(shape), seed_generator), shape, dtype)


def _philox_halves(size, seed_generator):
    """``size`` 16-bit random integers from TensorFlow's Philox kernel, two per
    32-bit word, drawn with the generator's next seed."""
    import tensorflow as tf

    words = tf.random.stateless_uniform(
        [(size + 1) // 2],
        seed=tensorflow_seed(seed_generator),
        minval=None,
        maxval=None,
        dtype=tf.uint32,
    )
    return tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]


def _normal_tensorflow(shape, dtype, seed_generator):
    """Standard normals of this shape from TensorFlow's Philox kernel, drawn
    with the generator's next seed (the same numbers for any shape of the
    same size: they fill it in row-major order)."""
    import tensorflow as tf

    return tf.random.stateless_normal(shape, seed=tensorflow_seed(seed_generator), dtype=dtype)


def _uniform16_from_halves(halves, shape, dtype):
    """The uniforms ``(k + 1/2) / 2^16`` of 16-bit integers ``k``, in ``shape``."""
    import tensorflow as tf

    scale = 1.0 / 65536.0
    return tf.reshape(tf.cast(halves, dtype) * scale + 0.5 * scale, shape)


class DrawnNoise:
    """A compiled step's random numbers, made ahead by TensorFlow and handed out in order.

    Stands in for the `keras.random.SeedGenerator` given to `Units.sample`
    inside a computation compiled with XLA, whose own Philox runs on one
    thread at ~2.5x TensorFlow's cost per word (benchmarks/RESULTS.md,
    twenty-fifth session). Tracing the computation with a ``DrawnNoise``
    records the kind and size of each draw (`draws`; the shapes must be
    static): the uniforms of a Bernoulli draw, the standard normals of a
    Gaussian one. `draw` then makes exactly those numbers outside the
    compiled computation, with TensorFlow's Philox kernels and one seed of
    the generator per draw in the traced order, as `bernoulli_sample` and
    `GaussianUnits.sample` would have: each draw gets the same numbers
    either way.

    Args:
        halves: the flat uint16 tensor of 16-bit integers from `draw`, for
            the uniforms (during tracing, a placeholder of any length).
        normals: the flat float32 tensor of standard normals from `draw`
            (``None`` where the computation draws none).

    Example:

        >>> generator = keras.random.SeedGenerator(0)
        >>> drawn = DrawnNoise(*DrawnNoise.draw([("uniform", 6)], generator))
        >>> states = bernoulli_sample(keras.ops.full((2, 3), 0.5), drawn, (2, 3))
        >>> drawn.draws
        [('uniform', 6)]
    """

    UNIFORM, NORMAL = "uniform", "normal"

    def __init__(self, halves, normals=None):
        self.halves = halves
        self.normals = normals
        self.draws = []

    def _next(self, kind, shape):
        """The offset of the next draw of ``kind`` and ``prod(shape)`` numbers."""
        if not all(isinstance(d, (int, np.integer)) for d in shape):
            raise ValueError(f"DrawnNoise needs static shapes, got {shape}.")
        size = math.prod(shape)
        offset = sum(n for k, n in self.draws if k == kind)
        self.draws.append((kind, size))
        return offset, size

    def uniform(self, shape, dtype):
        """The next ``prod(shape)`` uniforms ``(k + 1/2) / 2^16``, of this static shape."""
        offset, size = self._next(self.UNIFORM, shape)
        return _uniform16_from_halves(self.halves[offset : offset + size], shape, dtype)

    def normal(self, shape, dtype):
        """The next ``prod(shape)`` standard normals, of this static shape."""
        if self.normals is None:
            raise ValueError("This DrawnNoise holds no normals (`draw` made none).")
        offset, size = self._next(self.NORMAL, shape)
        return ops.cast(ops.reshape(self.normals[offset : offset + size], shape), dtype)

    @classmethod
    def draw(cls, draws, seed_generator):
        """The numbers for these draws: the 16-bit integers and the normals.

        Args:
            draws: the `draws` a traced ``DrawnNoise`` recorded, ``(kind,
                size)`` pairs in the order of the draws.
            seed_generator: the `keras.random.SeedGenerator` that the
                samplers would have used; one seed per draw, in order.

        Returns:
            ``(halves, normals)``: a flat uint16 tensor of all the uniform
            draws' sizes together, and a flat float32 tensor of all the
            normal ones' (empty where there are none).
        """
        import tensorflow as tf

        halves, normals = [], []
        for kind, size in draws:
            if kind == cls.UNIFORM:
                halves.append(_philox_halves(size, seed_generator))
            elif kind == cls.NORMAL:
                normals.append(_normal_tensorflow([size], "float32", seed_generator))
            else:
                raise ValueError(f"Unknown kind of draw {kind!r}.")

        def joined(parts, dtype):
            return tf.concat(parts, axis=0) if parts else tf.zeros([0], dtype)

        return joined(halves, tf.uint16), joined(normals, tf.float32)


def bernoulli_from_uniform(mean, noise):
    """``floor(mean + noise)``: 1 with probability ``mean`` for ``noise ~ U[0, 1)``.

    The rule `bernoulli_sample` applies, for callers that draw their own
    uniforms (e.g. unseeded ones inside a ``tf.data`` pipeline).

    Args:
        mean: probabilities, float32 or wider.
        noise: uniforms in [0, 1) of the same shape and dtype.

    Returns:
        A tensor of 0.0 / 1.0 with the shape and dtype of ``mean``.
    """
    return ops.floor(mean + noise)


class Units:
    """Base class of a unit type. Subclasses are stateless singletons.

    Every method works on batches: ``bias`` has shape ``(n,)`` and states and
    total inputs ``(batch, n)``. The total input (pre-activation) of a unit is
    its bias plus the input from the other layer (``c + v @ W`` for hidden
    units, ``b + h @ W.T`` for visible units).
    """

    name = None
    #: Whether states are binary, so a layer of these units can be enumerated.
    discrete = False
    #: The Keras activation whose output is `mean` (e.g. ``"sigmoid"``), for
    #: the Dense layers of `DBN.to_classifier`; ``None`` where none is.
    keras_activation = None

    def mean(self, pre_activation):
        """Conditional mean E[u | total input] given ``bias + inputs``."""
        raise NotImplementedError

    def sample(self, mean, seed, shape=None):
        """Draws states from the conditional distribution with this mean.

        16-bit means are sampled in float32; the states come back in the
        means' dtype.

        ``shape`` is ``mean``'s shape, when the caller can give it without
        reading ``mean`` (see `bernoulli_sample`).
        """
        raise NotImplementedError

    #: The noise `states_from_noise` reads: ``"uniform"`` in [0, 1) or
    #: ``"normal"`` (standard normal).
    noise = None

    def states_from_noise(self, mean, noise):
        """The states `sample` draws, from noise the caller drew itself.

        For callers that draw their own random numbers (e.g. stateless
        ones inside a ``tf.data`` pipeline), of the kind `noise` names.

        Args:
            mean: conditional means, float32 or wider.
            noise: random numbers of `noise`'s kind, shaped as ``mean``.

        Returns:
            The states, with the shape and dtype of ``mean``.
        """
        raise NotImplementedError

    def energy(self, states, bias):
        """The unit's own energy term ``E_u(u; a)``, summed over units.

        Returns:
            A tensor of shape ``(batch,)``.
        """
        raise NotImplementedError

    def log_partition(self, pre_activation, bias):
        """``sum_i log integral exp(-E_u(u_i; a_i) + u_i x_i) du_i``.

        This is what marginalising a layer out of ``exp(-E)`` leaves, where
        ``x`` is the input from the other layer and ``a`` the bias.

        Args:
            pre_activation: the total input ``a + x``, shape ``(batch, n)``.
            bias: the bias ``a``, shape ``(n,)``.

        Returns:
            A tensor of shape ``(batch,)``.
        """
        raise NotImplementedError

    def log_partition_given_mean(self, pre_activation, bias, mean):
        """`log_partition` when ``mean(pre_activation)`` is already at hand.

        Units whose formula can reuse the mean override this to save work in
        the training step; the result is the same.
        """
        return self.log_partition(pre_activation, bias)

    def mean_energy(self, states, bias, states_mean):
        """The batch mean of `energy`.

        Args:
            states: unit states, shape ``(batch, n)``.
            bias: the bias, shape ``(n,)``.
            states_mean: ``mean(states, axis=0)``, which units whose energy
                is linear in the states use instead of ``states``.

        Returns:
            A scalar tensor.
        """
        return ops.mean(self.energy(states, bias))

    def mean_log_partition(self, mean, bias, pre_activation, mean_total_input):
        """The batch mean of `log_partition`, given the conditional means.

        The training step's monitor calls this: where the total inputs are
        not needed, the GEMM that produces them can be fused with the
        activation and never write them out.

        Args:
            mean: the conditional means, `mean` of the total inputs, shape
                ``(batch, n)``.
            bias: the bias, shape ``(n,)``.
            pre_activation: callable returning the total inputs; called
                only by units that need them (it may cost another GEMM).
            mean_total_input: callable returning the batch mean of the total
                input summed over the units, a scalar (a cheap GEMV).

        Returns:
            A scalar tensor.
        """
        return ops.mean(self.log_partition_given_mean(pre_activation(), bias, mean))

    def bias_from_mean(self, data_mean):
        """The bias that makes an RBM with zero weights match ``data_mean``.

        Hinton's practical guide, section 8.1, for Bernoulli units.
        """
        raise NotImplementedError

    def get_config(self):
        """Keras' config of a unit type: empty, as the built-in types hold no
        state; a custom type with constructor arguments returns them."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}()"


class BernoulliUnits(Units):
    """Binary units: ``E_u = -a u`` with ``u`` in {0, 1}."""

    name = "bernoulli"
    discrete = True
    keras_activation = "sigmoid"

    def mean(self, pre_activation):
        return ops.sigmoid(pre_activation)

    def sample(self, mean, seed, shape=None):
        return bernoulli_sample(mean, seed, shape)

    noise = "uniform"

    def states_from_noise(self, mean, noise):
        return bernoulli_from_uniform(mean, noise)

    def energy(self, states, bias):
        return -ops.sum(states * bias, axis=-1)

    def log_partition(self, pre_activation, bias):
        return ops.sum(ops.softplus(pre_activation), axis=-1)

    def log_partition_given_mean(self, pre_activation, bias, mean):
        # softplus(x) = x - log(sigmoid(x)): a log is several times cheaper
        # than a softplus on CPU. Where sigmoid(x) underflows (x < -87) the
        # true softplus is below 1e-38, and the clamp at 0 is that close.
        tiny = float(np.finfo("float32").tiny)
        softplus = pre_activation - ops.log(ops.maximum(mean, tiny))
        return ops.sum(ops.maximum(softplus, 0.0), axis=-1)

    def mean_energy(self, states, bias, states_mean):
        return -ops.sum(states_mean * bias)

    def mean_log_partition(self, mean, bias, pre_activation, mean_total_input):
        # sum_j softplus(x_j) = sum_j x_j - sum_j log sigmoid(x_j), and the
        # sum of the total inputs needs no per-unit x_j. Where a sigmoid
        # underflows to 0 (x < -87 in float32) its log is -inf, and the
        # per-unit formula runs on recomputed total inputs instead.
        log_mean_sum = ops.sum(ops.log(mean))
        batch = ops.cast(ops.shape(mean)[0], log_mean_sum.dtype)
        return ops.cond(
            ops.isfinite(log_mean_sum),
            lambda: ops.cast(mean_total_input(), log_mean_sum.dtype) - log_mean_sum / batch,
            lambda: ops.mean(self.log_partition_given_mean(pre_activation(), bias, mean)),
        )

    def bias_from_mean(self, data_mean):
        p = ops.clip(data_mean, 1e-3, 1.0 - 1e-3)
        return ops.log(p) - ops.log(1.0 - p)


class GaussianUnits(Units):
    """Real-valued units of unit variance: ``E_u = (u - a)^2 / 2``.

    Meant for data standardised to zero mean and unit variance per feature,
    as Hinton's practical guide (section 13.2) recommends.
    """

    name = "gaussian"
    discrete = False
    keras_activation = "linear"

    def mean(self, pre_activation):
        return pre_activation

    def sample(self, mean, seed, shape=None):
        if backend.standardize_dtype(mean.dtype) in _LOW_PRECISION:
            # The noise is drawn and added in float32, as for Bernoulli units.
            return ops.cast(self.sample(ops.cast(mean, "float32"), seed, shape), mean.dtype)
        shape = ops.shape(mean) if shape is None else shape
        if isinstance(seed, DrawnNoise):
            noise = seed.normal(shape, mean.dtype)
        elif backend.backend() == "tensorflow" and isinstance(seed, random.SeedGenerator):
            noise = _normal_tensorflow(shape, mean.dtype, seed)
        else:
            noise = random.normal(shape, dtype=mean.dtype, seed=seed)
        return self.states_from_noise(mean, noise)

    noise = "normal"

    def states_from_noise(self, mean, noise):
        return mean + noise

    def energy(self, states, bias):
        return 0.5 * ops.sum(ops.square(states - bias), axis=-1)

    def log_partition(self, pre_activation, bias):
        # integral exp(-(u - a)^2 / 2 + u x) du = sqrt(2 pi) exp(((a + x)^2 - a^2) / 2)
        n = ops.cast(ops.shape(pre_activation)[-1], pre_activation.dtype)
        quadratic = ops.sum(ops.square(pre_activation) - ops.square(bias), axis=-1)
        return 0.5 * quadratic + n * _HALF_LOG_2PI

    def mean_log_partition(self, mean, bias, pre_activation, mean_total_input):
        # The mean of a linear unit is its total input.
        return ops.mean(self.log_partition(mean, bias))

    def bias_from_mean(self, data_mean):
        return data_mean


_UNITS = {cls.name: cls() for cls in (BernoulliUnits, GaussianUnits)}


def serialize(units):
    """A unit type as an RBM's config holds it: the name of a built-in type,
    or Keras' config of a registered custom type.

    Args:
        units: a `Units` instance.

    Returns:
        A name (``"bernoulli"``, ``"gaussian"``) or a dict for `get`.

    Raises:
        ValueError: for a custom type that Keras could not load again: it
            needs ``@keras.saving.register_keras_serializable()``. Saved by
            name alone, it would come back as another type.

    Example:

    >>> keras_dbn.units.serialize(keras_dbn.units.get("gaussian"))
    'gaussian'
    """
    cls = type(units)
    if cls is type(_UNITS.get(units.name)):
        return units.name
    if keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is not cls:
        raise ValueError(
            f"The unit type {cls.__name__} cannot be saved with its RBM: decorate the class "
            "with @keras.saving.register_keras_serializable() (and give it get_config if "
            "its constructor takes arguments), so that loading finds it again."
        )
    return keras.saving.serialize_keras_object(units)


def get(identifier):
    """Returns the unit type named ``identifier`` (or ``identifier`` itself).

    Args:
        identifier: ``"bernoulli"``, ``"gaussian"``, a `Units` instance, or
            the config of a registered custom type (`serialize`).

    Returns:
        A `Units` instance.

    Example:

    >>> keras_dbn.units.get("bernoulli")
    BernoulliUnits()
    """
    if isinstance(identifier, Units):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _UNITS:
        return _UNITS[identifier.lower()]
    if isinstance(identifier, dict):
        units = keras.saving.deserialize_keras_object(identifier)
        if isinstance(units, Units):
            return units
    raise ValueError(
        f"Unknown unit type {identifier!r}; expected one of {sorted(_UNITS)}."
    )
