"""The Restricted Boltzmann Machine as a Keras model."""

import contextlib
import functools
import math
import os
import weakref

import keras
import numpy as np
from keras import ops

from keras_dbn import array_input
from keras_dbn import hardware
from keras_dbn import units as units_lib
from keras_dbn import user_warnings
from keras_dbn.extra_state import ExtraStateMixin, check_checkpoint_formats
from keras_dbn.monitor_modes import check_monitors, resolve_monitor_modes
from keras_dbn.progress import callback_list, with_step_progbar


#: ``steps_per_execution`` of `RBM.compile` when the caller sets none.
DEFAULT_STEPS_PER_EXECUTION = 32

#: About the most bytes of input batches that one execution of
#: `RBM.predict` holds (see `_predict_steps_per_execution`).
#
# Keras' predict loop takes an execution's input batches into a Python list
# before it runs them: with the default 32 steps, batches of 4096 rows of an
# unaligned 392 MiB float32 array held all of it at once (+443 MiB of peak
# resident memory for a 784 -> 16 RBM; +77 to +92 MiB with this budget).
# Batches of 1 MiB or less (e.g. 784 float32 at batch 334) still run 32
# steps per execution.
PREDICT_EXECUTION_BYTES = 32 << 20

#: `RBM.fit` compiles the CD step with XLA (on a CPU-only TensorFlow, float32,
#: not PCD, unless the caller chose ``jit_compile``) when one GEMM of the step,
#: ``batch x visible x hidden`` multiply-adds, is at most this large.
#
# XLA fuses the step's element-wise work into a few loops, which pays where
# the GEMMs are small; at larger GEMMs TensorFlow's own oneDNN GEMMs (with
# the sigmoid fused in) are faster than XLA's. Measured on the 2-core machine
# (benchmarks/RESULTS.md, eleventh session): 784x500 at batch 100 and 200
# ran 10% and 6% faster with XLA (3.9e7 and 7.8e7), at batch 500 and 1000
# 2% and 4% slower, and 784x2000 at batch 100 (1.6e8) 9% slower; 500x500
# and 500x2000 at batch 100 (a DBN's upper layers) ran 1.15x and 1.00x.
# Mixed bfloat16 is slower with XLA at every size (no bfloat16 GEMM with a
# float32 result on the CPU).
XLA_MAX_GEMM_SIZE = 10**8

#: `RBM.fit` runs the Gibbs chain of a float32 CD-k (k >= 2) or PCD step
#: between Bernoulli or Gaussian layers in XLA, with TensorFlow drawing its
#: random numbers (`units.DrawnNoise`), when one GEMM of the step, ``batch x
#: visible x hidden`` multiply-adds, lies within these bounds.
#
# XLA's own Philox runs on one thread at ~2.5x TensorFlow's cost per word,
# so a step that draws many layers of random numbers lost in XLA (PCD-1
# 0.69-0.96x, benchmarks/RESULTS.md, twenty-fifth session; CD-2 at 784x100,
# batch 100, 0.84-0.90x, twenty-seventh session); with TensorFlow drawing
# them, XLA's fused sigmoids and draws and its GEMMs at 100-200 rows made
# CD-2 to CD-20 and PCD 1.03-1.64x faster than TensorFlow's graph within
# these bounds, from 784x200 at batch 100 to 784x500 at batch 500
# (twenty-seventh session, Zen 3). At 784x100, batch 100 (7.8e6) it was
# 0.89-1.00x, and at batch 1000 (784x500, 3.9e8) 0.87-0.91x for CD-2 and
# PCD-1. Outside these bounds CD-k and PCD run in TensorFlow's graph.
XLA_CHAIN_GEMM_SIZES = (10**7, 2 * 10**8)

# The unit types whose samplers take their numbers from a `units.DrawnNoise`
# (not their subclasses, which may sample otherwise).
_DRAWN_NOISE_UNITS = (units_lib.BernoulliUnits, units_lib.GaussianUnits)

_MEAN_BLOCK_ROWS = 8192

#: The training step's monitors (reconstruction error, free energy) read at
#: most this many rows of each batch: the leading rows of a batch of
#: shuffled rows are a random sample of it, so each epoch's means stay
#: unbiased, while their element-wise passes (a log, a squared difference
#: and two full reductions) shrink: CD-1 at 784x500, batch 1000 ran
#: 1.02-1.03x faster in float32 (benchmarks/RESULTS.md, seventeenth
#: session). `RBM.evaluate` reads every row.
MONITOR_ROWS = 256
#: PCD's reconstruction error, which its chains do not compute on the way
#: (CD's first reconstruction is its chain's first step), reads at most this
#: many rows of each batch: its extra GEMM and draws made PCD-1 at 784x500,
#: batch 100, 1.05-1.12x slower with 256 (benchmarks/RESULTS.md,
#: forty-eighth session); an epoch's mean reads 32 rows of every batch
#: (19,200 for 60,000 images at batch 100).
PCD_MONITOR_ROWS = 32

#: Learning rates of `RBM.compile`'s default optimizer, ``SGD(rate,
#: momentum=0.5)``: for two Bernoulli layers, and for an RBM with a Gaussian
#: layer, which needs one or two orders of magnitude less (practical guide,
#: section 13.2).
#
# At 0.1 RBMs of 200 Gaussian hidden units on binarised MNIST and of 200
# Bernoulli hidden units on standardised MNIST (10,000 images, batch 100)
# reached NaN weights in their first epoch; at 0.01 both trained (3 epochs:
# reconstruction error 0.104 -> 0.037 and 0.406 -> 0.251).
DEFAULT_LEARNING_RATE = 0.1
GAUSSIAN_LEARNING_RATE = 0.01

#: `RBM.fit` warns when a feature of the data given to Gaussian visible units
#: has a larger standard deviation than this, over the first rows.
_GAUSSIAN_MAX_STD = 3.0
_SCALE_CHECK_ROWS = 10_000
#: `free_energy_gap` compares the validation data with this many training
#: rows (at most), evaluated in batches of `_GAP_BATCH_SIZE`.
_GAP_ROWS = 10_000
_GAP_BATCH_SIZE = 1000


@functools.cache
def _compiled_gibbs_chain():
    """`RBM.gibbs`'s chain as one TensorFlow graph loop (TensorFlow backend).

    Run step by step from Python, each Gibbs step of a 784x500 RBM on 64
    chains took ~14 ms of op dispatch for well under 1 ms of arithmetic
    (1,000 steps: ~14 s); the graph loop runs the same ops, drawing from
    the same seed generator in the same order. One trace serves an RBM for
    every number of steps; ``parallel_iterations=1`` keeps the generator's
    reads and updates in step order.
    """
    import tensorflow as tf

    def chain(rbm, v, weights, steps):
        return tf.while_loop(
            lambda i, v: i < steps,
            lambda i, v: (i + 1, rbm._gibbs_step(v, weights)),
            (tf.constant(0), v),
            parallel_iterations=1,
        )[1]

    return tf.function(chain, autograph=False, reduce_retracing=True)


def _replicas_in_sync():
    """How many replicas sum their updates (1 outside `tf.distribute`)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def _replica_shares(gradients, rows, replicas, in_xla=False):
    """One replica's part of a batch's CD statistics under `tf.distribute`.

    The replicas' updates are summed. Each replica's means are weighted by
    its share of the batch's data rows: a batch split unevenly (the last,
    small batch of an epoch) then sums to the whole batch's means, and a
    replica left without rows (a batch of fewer rows than replicas), whose
    means are 0/0, adds nothing. (With PCD every replica reads the same
    chains, so their negative statistics average out alike.) Inside XLA,
    where the replicas' row counts are not summed, each takes ``1 /
    replicas``.

    Args:
        gradients: this replica's statistics.
        rows: its number of data rows (a scalar tensor).
        replicas: the number of replicas in sync.
        in_xla: whether the statistics are traced into an XLA function.

    Returns:
        The statistics to sum over the replicas.
    """
    if in_xla:
        return [g / replicas for g in gradients]
    import tensorflow as tf

    rows = ops.cast(rows, "float32")
    share = rows / tf.distribute.get_replica_context().all_reduce("sum", rows)
    return [ops.where(rows > 0, g, ops.zeros_like(g)) * share for g in gradients]


def _monitor_value(value, rows):
    """A batch's monitor for a weighted mean: 0 where the batch has no rows
    (a replica's empty share of a small batch), whose NaN a zero weight
    would not cancel."""
    return ops.where(rows > 0, value, ops.zeros_like(value))


def export_signature(model, input_signature=None):
    """``input_signature``, or for a built RBM or DBN without one, a batch
    of rows of its ``num_visible`` values (float64 under a float64 policy,
    else float32), for `keras.Model.export`."""
    if input_signature is not None or not model.built:
        return input_signature
    dtype = "float64" if model.compute_dtype == "float64" else "float32"
    return [keras.InputSpec(shape=(None, model.num_visible), dtype=dtype)]


def export_model(model, export, filepath, format="tf_saved_model", verbose=None,
                 input_signature=None, **kwargs):
    """`RBM.export` and `DBN.export`: ``export`` (Keras') with `export_signature`.

    The SavedModel's ``serve`` endpoint (and its ``serving_default``
    signature) takes rows named ``inputs`` (unless an ``input_signature``
    names them), as `export_saved_model`'s does. Under a 16-bit policy it casts the output
    to float32, as ``predict`` returns it (Keras' own export would serve
    the compute dtype). The SavedModel is written aside and moved into
    ``filepath`` once complete (`export.write_saved_model_folder`): an
    earlier one there is replaced, a folder holding other files refused.

    Args:
        model: a built RBM or DBN.
        export: the bound ``keras.Model.export`` of ``model``.
        filepath, format, verbose, input_signature, **kwargs: as for
            `keras.Model.export`.
    """
    signature = export_signature(model, input_signature)
    # Keras' TensorFlow export ignores other keyword arguments (those it
    # reads are for JAX), as this one does.
    if format != "tf_saved_model" or signature is None:
        return export(filepath, format=format, verbose=verbose, input_signature=signature,
                      **kwargs)
    import tensorflow as tf

    from keras_dbn.export import INPUT_NAME, write_saved_model_folder

    top = model.rbms[-1] if getattr(model, "rbms", None) else model  # whose output it serves
    low = keras.backend.standardize_dtype(top.compute_dtype) in ("bfloat16", "float16")
    signature = signature if isinstance(signature, (list, tuple)) else [signature]
    # Unnamed inputs are `inputs` whatever the policy (Keras' export named
    # them `args_0`, this endpoint's argument `x`).
    specs = [tf.TensorSpec(s.shape, s.dtype or "float32", name=s.name or INPUT_NAME)
             if isinstance(s, (keras.InputSpec, tf.TensorSpec)) else s for s in signature]
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(inputs):
        outputs = model(inputs)
        return ops.cast(outputs, "float32") if low else outputs

    archive.add_endpoint("serve", serve, input_signature=specs)
    # Keras' own message would name the hidden folder it is written in.
    write_saved_model_folder(lambda path: archive.write_out(path, verbose=False), filepath)
    if verbose is None or verbose:
        print(f"Saved artifact at '{filepath}'. Its endpoint 'serve' (also its "
              f"'serving_default' signature) takes {', '.join(map(str, specs))}.")


def _is_multi_replica(model):
    """Whether ``model`` trains under a `tf.distribute` strategy with more
    than one replica."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy is not None and strategy.num_replicas_in_sync > 1


def _under_strategy(model):
    """Whether ``model`` runs under a `tf.distribute` strategy: its own (it
    was created in a strategy's scope) or the one whose scope is open."""
    import tensorflow as tf

    return getattr(model, "_distribute_strategy", None) is not None or tf.distribute.has_strategy()


def _default_steps_per_execution(model):
    """`RBM.compile`'s ``steps_per_execution`` where the caller sets none.

    `DEFAULT_STEPS_PER_EXECUTION`, except under a `tf.distribute` strategy
    with more than one replica, where Keras' multi-step training loop fails
    ("You must feed a value for placeholder tensor", keras-team/keras#19246;
    a plain `keras.Sequential` fails the same way with Keras 3.15).
    """
    return 1 if _is_multi_replica(model) else DEFAULT_STEPS_PER_EXECUTION


def _steps_per_execution_for(compiled, step_counts):
    """The steps per execution that run exactly the given numbers of steps.

    Keras runs whole executions of ``steps_per_execution`` steps, so a
    ``steps_per_epoch``, ``validation_steps`` or ``steps`` that is not a
    multiple of it is rounded up to one (with 32 steps per execution,
    ``fit(steps_per_epoch=5, epochs=2)`` made 60 updates and
    ``predict(steps=3)`` returned 32 batches, as a plain Keras model does).

    Args:
        compiled: the ``steps_per_execution`` given to `RBM.compile`.
        step_counts: the numbers of steps asked for; ``None`` entries (that
            loop runs to the end of its data) and anything but a positive
            integer (left for Keras to reject) are ignored.

    Returns:
        ``compiled`` where it divides every count, else the largest number
        below it that does (1 at worst).
    """
    counts = [
        int(c) for c in step_counts
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0
    ]
    if compiled <= 1 or not counts:
        return compiled
    common = math.gcd(*counts)
    return max(d for d in range(1, compiled + 1) if common % d == 0)


def _predict_steps_per_execution(compiled, step_bytes, steps=None, batches=None):
    """The steps per execution with which `RBM.predict` holds little at once.

    Where ``compiled`` steps would hold more than `PREDICT_EXECUTION_BYTES`,
    fewer, chosen to give the predictions of ``compiled`` steps: a step that
    runs alone in its execution returns its batch rounded differently
    (TensorFlow's graph optimiser, its remapper, then fuses the step's ops
    otherwise: up to 2 ulp apart), so one runs alone only where it would
    with ``compiled`` (a last batch left over), where ``batches`` is known.

    Args:
        compiled: the steps per execution that `predict` would use.
        step_bytes: the bytes of one step's input batch, or ``None`` where
            unknown.
        steps: ``predict``'s ``steps``; the result divides it (see
            `_steps_per_execution_for`).
        batches: the batches that `predict` reads, where known.

    Returns:
        ``compiled`` where its steps hold at most `PREDICT_EXECUTION_BYTES`
        (or ``step_bytes`` is unknown), else the most steps that do and
        give the same predictions, failing that the fewest above them that
        do (at worst ``compiled``).
    """
    if compiled <= 1 or not step_bytes:
        return compiled
    within = max(1, PREDICT_EXECUTION_BYTES // step_bytes)
    if within >= compiled:
        return compiled
    if steps is not None:
        batches = steps

    def same_predictions(count):
        if steps is not None and steps % count:
            return False
        return batches is None or (batches % count == 1) == (batches % compiled == 1)

    for count in (*range(within, 1, -1), *range(within + 1, compiled + 1)):
        if same_predictions(count):
            return count
    return _steps_per_execution_for(within, [steps])  # `compiled` does not divide `steps`


def _step_route(model, batch_size, num_visible):
    """How `RBM.fit` runs the CD step under ``jit_compile="auto"``.

    Args:
        model: a compiled `RBM`.
        batch_size: rows per training batch, or ``None`` where unknown.
        num_visible: visible units of the data.

    Returns:
        ``"xla_chain"``: the Gibbs chain and the statistics compiled with
        XLA and their random numbers drawn by TensorFlow
        (`units.DrawnNoise`), for float32 CD-k with k >= 2 and PCD between
        Bernoulli or Gaussian layers whose GEMMs lie within
        `XLA_CHAIN_GEMM_SIZES` (a smaller last batch is padded,
        `RBM._training_statistics`);
        ``"xla"``: the whole step compiled with XLA, for a float32 CD-1
        step whose GEMMs are at most `XLA_MAX_GEMM_SIZE` and that samples
        no Gaussian units (`_draws_normals`);
        ``"graph"``: TensorFlow's graph, otherwise. Both XLA routes need
        TensorFlow without an accelerator (where Keras' own ``"auto"`` turns
        XLA off), a known batch size and no `tf.distribute` replicas
        (`_input_route` says which batch size `fit`'s input has).
    """
    if (keras.backend.backend() != "tensorflow" or batch_size is None or model.run_eagerly
            or model.compute_dtype != "float32"):
        return "graph"
    import tensorflow as tf

    if any(d.device_type != "CPU" for d in tf.config.list_physical_devices()):
        return "graph"
    if _is_multi_replica(model):
        return "graph"
    size = batch_size * num_visible * model.units
    if model.k > 1 or model.persistent:
        if (XLA_CHAIN_GEMM_SIZES[0] <= size <= XLA_CHAIN_GEMM_SIZES[1]
                and type(model.visible_units) in _DRAWN_NOISE_UNITS
                and type(model.hidden_units) in _DRAWN_NOISE_UNITS):
            return "xla_chain"
        # Their many draws by XLA's Philox cost more than XLA's fusion saves.
        return "graph"
    if _draws_normals(model):
        # XLA's own normal draws are slow: CD-1 with Gaussian hidden units
        # at 784x500 and 784x200, batch 100, ran at 0.22-0.30x the speed of
        # TensorFlow's graph (the chain route 0.92-1.03x, no gain worth its
        # compilation; benchmarks/RESULTS.md, thirtieth session).
        return "graph"
    return "xla" if size <= XLA_MAX_GEMM_SIZE else "graph"


def _draws_normals(model):
    """Whether a CD-1 step of ``model`` samples Gaussian units: its hidden
    states, or its visible ones where ``sample_visible`` is set."""
    gaussian = units_lib.GaussianUnits
    return isinstance(model.hidden_units, gaussian) or (
        isinstance(model.visible_units, gaussian) and bool(model.sample_visible)
    )


def _input_route(model, x, batch_size, validation_split=0.0, validation_data=None):
    """`_step_route` for `fit`'s input, and the rows of its full batches.

    Args:
        model: a compiled `RBM`.
        x, batch_size, validation_split, validation_data: `fit`'s arguments.

    Returns:
        ``(route, rows)``: the route, and the rows of a full batch (``None``
        where unknown). A dataset whose batches have no static size takes
        its batch size from its pipeline (`array_input.batch_rows`), for
        the chain route only, which pads smaller batches.
    """
    shape = _batch_shape(x, batch_size)
    if shape is None:
        return "graph", None
    rows = shape[0]
    if isinstance(x, np.ndarray):  # its one batch may be smaller
        rows = max(1, min(rows, _training_rows(len(x), validation_split, validation_data)))
    elif rows is None:
        rows = array_input.batch_rows(x)
    route = _step_route(model, rows, int(np.prod(shape[1:])))
    if route == "xla" and shape[0] is None:
        # Compiled whole, the step would be compiled again for every batch
        # size the pipeline makes.
        route = "graph"
    return route, rows


def _batch_shape(x, batch_size):
    """``(batch, *features)`` of `fit`'s batches; ``None`` where not known.

    The batch size is ``None`` for a dataset whose batches have no static
    size (e.g. a last, smaller batch).
    """
    if _is_dataset(x):
        spec = x.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        shape = getattr(spec, "shape", None)
        if shape is None or shape.rank is None or shape.rank < 2:
            return None
        shape = tuple(shape)
    elif hasattr(x, "shape") and len(x.shape) > 1:
        shape = (32 if batch_size is None else batch_size,) + tuple(x.shape[1:])
    else:  # a generator or a PyDataset
        return None
    if any(d is None for d in shape[1:]):
        return None
    return shape


def _training_rows(rows, validation_split, validation_data):
    """How many of an array's ``rows`` `fit` trains on: Keras' split point.

    ``validation_split`` holds out the last rows unless ``validation_data``
    is given.
    """
    if validation_split and validation_data is None:
        return int(rows * (1 - validation_split))
    return rows


def split_validation(x, validation_split):
    """``x`` split as Keras' ``fit(validation_split=...)`` splits arrays.

    Args:
        x: NumPy array, rows are examples.
        validation_split: the fraction of rows held out, in (0, 1).

    Returns:
        ``(training rows, validation rows)``: the last rows, before any
        shuffling, are held out.

    Raises:
        ValueError: for a fraction outside (0, 1), or one that leaves no
            rows on either side.
    """
    if isinstance(validation_split, bool) or not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be in (0, 1), got {validation_split!r}.")
    split_at = _training_rows(len(x), validation_split, None)
    if not 0 < split_at < len(x):
        raise ValueError(
            f"validation_split={validation_split!r} of {len(x)} rows leaves "
            f"{'no rows to train on' if not split_at else 'no validation rows'}.")
    return x[:split_at], x[split_at:]


def _checked_steps(steps, name="steps"):
    """The ``steps`` of `evaluate` or `predict` (or ``fit``'s
    ``steps_per_epoch`` or ``validation_steps``, its ``name``): ``None``
    or a positive integer.

    Keras read 0 and negative numbers as every batch (a negative one with
    a warning that the data ran out); an array's `predict` then returned
    no rows.
    """
    if steps is not None and (isinstance(steps, bool) or not isinstance(
            steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"`{name}` must be a positive integer or None, got {steps!r}.")
    return steps


def _array_batch_size(rows, steps, validation_split, validation_data):
    """The batch size Keras would give ``fit`` on an array of ``rows`` rows.

    ``None`` (Keras' default, 32) without ``steps`` (``steps_per_epoch``);
    with it, the size at which the epoch's steps cover the training rows
    once.
    """
    if _checked_steps(steps, "steps_per_epoch") is None:
        return None
    rows = _training_rows(rows, validation_split, validation_data)
    return max(1, -(-rows // int(steps)))


def _matmul_transposed(a, b, transpose_a=False, transpose_b=False):
    """``op(a) @ op(b)`` without materialising a transposed copy.

    With TensorFlow the transposition is a flag of the GEMM; other backends
    get ``ops.transpose``.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.linalg.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    if transpose_a:
        a = ops.transpose(a)
    if transpose_b:
        b = ops.transpose(b)
    return ops.matmul(a, b)


def _scales_weight_statistics_once(rows, width, chains=None, data_rows=None, mixed=False):
    """Whether CD's weight statistics are scaled after their difference.

    ``(v^T h - v0^T h0) / n`` scales the ``V x H`` difference once. In
    float32 the alternative scales each GEMM's ``B x H`` operand, two
    passes over ``B x H`` values: the difference is cheaper for batches
    of more than ``V / 2`` rows. Under a mixed policy, whose products are
    widened to float32 before their difference, it saves one pass over
    ``V x H`` values at any batch size. Both need the data and the chains
    to count the same rows: CD's chains start from the data, PCD's must be
    as many as the batch's rows.

    Args:
        rows: rows of the batch (``B``), or of `fit`'s full batches where a
            traced step's batch size is unknown; ``None`` where unknown.
        width: visible units (``V``).
        chains: PCD's number of chains; ``None`` for CD.
        data_rows: `RBM.contrastive_divergence`'s ``data_rows``.
        mixed: whether the step runs under a mixed policy.

    Returns:
        ``True`` for one scaling of the difference.
    """
    if chains is not None and (data_rows is not None or chains != rows):
        return False
    if mixed:
        return True
    return rows is not None and 2 * rows > width


def _add_bias(x, bias):
    """``x + bias``; with TensorFlow a ``BiasAdd``, which Grappler fuses into
    the preceding GEMM (and its activation) on oneDNN CPUs."""
    if keras.backend.backend() == "tensorflow" and len(x.shape) == 2:
        import tensorflow as tf

        return tf.nn.bias_add(x, bias)
    return x + bias


def _column_means(x):
    """Column means of a 16-bit matrix, in float32, as a GEMV with a row of ones.

    oneDNN sums in float32 and rounds each sum once; a reduction would
    first need a float32 copy of the whole matrix.
    """
    sums = ops.matmul(ops.ones((1, ops.shape(x)[0]), x.dtype), x)
    return ops.cast(sums[0], "float32") * (1.0 / ops.cast(ops.shape(x)[0], "float32"))


def _mean_in(x, dtype):
    """Column means of ``x`` summed in ``dtype`` (the statistics dtype), in float32.

    Under a float64 policy the sums of a large batch keep float64's
    precision: summed in float32, the means of 60,000 rows were off by
    ~3e-4.
    """
    return ops.cast(ops.mean(ops.cast(x, dtype), axis=0), "float32")


def _restart(seed_generator, seed):
    """Puts ``seed_generator`` where a new ``SeedGenerator(seed)`` starts."""
    state = seed_generator.state
    state.assign(ops.convert_to_tensor([int(seed), 0], dtype=state.dtype))


def checked_count(value, name, minimum=0):
    """``value`` as an int, or a clear error when it is no integer >= ``minimum``.

    Args:
        value: the caller's argument.
        name: how the error names it.
        minimum: the smallest allowed value.

    Returns:
        ``value`` as a Python int.

    Raises:
        ValueError: for a bool, a non-integer or a value below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def checked_seed(seed):
    """``seed`` as a Python int, or ``None``; a clear error for anything else.

    NumPy integers are accepted (Keras' own seed checks refuse them).

    Raises:
        ValueError: for a bool, a float or any other non-integer, and for an
            integer a random generator's int64 state cannot hold.
    """
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an integer or None, got {seed!r}.")
    if not -(2**63) <= seed < 2**63:
        raise ValueError(f"`seed` must be an integer in [-2**63, 2**63), got {seed!r}.")
    return int(seed)


def checked_sampling_seed(seed, allow_none=False):
    """``seed`` as a Python int in ``[0, 2**31)``, the seeds keras_dbn's
    samplers take (or ``None`` where ``allow_none``); a clear error for
    anything else.

    Raises:
        ValueError: for a bool, a non-integer or an integer out of range.
    """
    if seed is None and allow_none:
        return None
    if (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))
            or not 0 <= seed < 2**31):
        raise ValueError(f"`seed` must be {'None or ' if allow_none else ''}an integer in "
                         f"[0, 2**31), got {seed!r}.")
    return int(seed)


def _seeded_initializer(identifier, seed):
    """`keras.initializers.get` of ``identifier``; one named by a string or
    config that takes a seed and has none gets ``seed``."""
    initializer = keras.initializers.get(identifier)
    if (
        seed is not None
        and not isinstance(identifier, keras.initializers.Initializer)
        and "seed" in initializer.get_config()
        and initializer.get_config()["seed"] is None
    ):
        initializer = initializer.__class__.from_config({**initializer.get_config(), "seed": seed})
    return initializer


def checked_sample_count(n, initial):
    """The number of samples of a chain started at ``initial``: ``len(initial)``.

    Args:
        n: the caller's count, ``None`` or ``len(initial)``.
        initial: the chains' starting states, one row per chain.

    Returns:
        ``len(initial)`` as an int.

    Raises:
        ValueError: for an ``n`` that names another number.
    """
    rows = int(ops.shape(initial)[0])
    if n is not None and checked_count(n, "`n` (number of samples)") != rows:
        raise ValueError(
            f"`n` is {n}, but `initial` starts {rows} chains; pass n=None or n={rows}."
        )
    return rows


def visible_mean(data, check=None):
    """The mean visible vector of a dataset, in float64.

    Args:
        data: a NumPy array (rows are examples, images are flattened), or an
            iterable of batches such as a `tf.data.Dataset` or a list of
            2-D arrays, each batch ``x`` or ``(x, y)``.
        check: called with the array, or with each batch as a NumPy array,
            before it is summed (e.g. `RBM._check_data`, which raises).

    Returns:
        NumPy float64 array of shape ``(features,)``.

    Raises:
        ValueError: when ``data`` holds no examples, yields single
            examples instead of batches, is a dataset that never ends, or
            is ragged (arrays of different lengths, e.g. ``(x, y)``).

    Example:

    >>> visible_mean(x_train).shape
    (784,)
    >>> np.allclose(visible_mean([x_train[:100], x_train[100:]]), visible_mean(x_train))
    True
    """
    array_input.refuse_sparse(data, "`data`")
    batches = isinstance(data, (list, tuple)) and len(data) > 0 and all(
        isinstance(batch, tuple) or np.ndim(batch) >= 2 for batch in data)
    if array_input.is_endless(data):
        raise ValueError("`data` is a dataset that never ends (e.g. `.repeat()`): pass a "
                         "finite one, e.g. `dataset.take(num_batches)`.")
    if not (batches or hasattr(data, "__next__") or _is_dataset(data)):
        try:
            data = np.asarray(data)
        except ValueError:  # ragged: e.g. Keras' (x, y) of arrays
            raise ValueError(
                "`data` must be an array of rows, or a list or dataset of batches (each "
                "x or (x, y)); for arrays x and y give x alone, or [(x, y)]."
            ) from None
        array_input.check_rank(data.shape)
        if check is not None:
            check(data)
        if not len(data):
            raise ValueError("The data holds no examples.")
        data = data.reshape(len(data), -1)
        # Summed in float64 a block of rows at a time: a float64 copy of the
        # whole array would take twice the memory of float32 data.
        total = np.zeros(data.shape[1], dtype="float64")
        for start in range(0, len(data), _MEAN_BLOCK_ROWS):
            total += data[start:start + _MEAN_BLOCK_ROWS].sum(axis=0, dtype="float64")
        return total / len(data)
    _refuse_batches_of_other_widths(data)
    total, count = 0.0, 0
    for batch in float64_batches(data, "`data`"):
        if check is not None:
            check(batch)
        total, count = total + batch.reshape(len(batch), -1).sum(axis=0), count + len(batch)
    if not count:
        raise ValueError("The data holds no examples.")
    return total / count


def _refuse_batches_of_other_widths(data):
    """Refuses a list or tuple of arrays (batches, to `visible_mean`) whose
    rows have other widths: Keras' ``(x, y)`` with one-hot ``y``, say, whose
    second "batch" would be named as data of the labels' width."""
    if not isinstance(data, (list, tuple)) or len(data) < 2:
        return
    if not all(hasattr(batch, "shape") and len(batch.shape) >= 2 for batch in data):
        return
    widths = [math.prod(batch.shape[1:]) for batch in data]
    if len(set(widths)) > 1:
        raise ValueError(
            f"`data` holds arrays of rows of other widths ({', '.join(map(str, widths))}): a "
            "list or tuple is read as batches; for arrays x and y give x alone, or [(x, y)]."
        )


def float64_batches(data, name):
    """The batches of ``data`` as float64 arrays.

    Args:
        data: an iterable of batches (a `tf.data.Dataset`, a list of 2-D
            arrays), each ``x`` or ``(x, y)``.
        name: how errors name ``data``.

    Yields:
        NumPy float64 arrays of shape ``(rows, ...)``.

    Raises:
        ValueError: where ``data`` yields single examples, not batches.
    """
    for batch in data:
        batch = batch[0] if isinstance(batch, (tuple, list)) else batch
        batch = np.asarray(ops.convert_to_numpy(batch), dtype="float64")
        if batch.ndim < 2:
            raise ValueError(f"{name} yields an example of shape {batch.shape}, not a batch of "
                             "examples: batch it first, e.g. `dataset.batch(1000)`.")
        yield batch


def _as_float32(x):
    """``x`` in float32 where it is in a 16-bit float dtype."""
    if keras.backend.standardize_dtype(x.dtype) in units_lib._LOW_PRECISION:
        return ops.cast(x, "float32")
    return x


def _host_array(data, name="The data"):
    """``data`` as a NumPy array where it is an eager tensor or a list;
    anything else as it is.

    Keras takes tensors wherever it takes arrays. Converted, they get the
    checks (`RBM._check_data`) and the input pipeline of arrays; a tensor
    in host memory is shared, not copied. A list of rows becomes the array
    it spells (Keras would refuse it, printing all of it).
    """
    array_input.refuse_sparse(data, name)
    if isinstance(data, list):
        try:
            return np.asarray(data)
        except ValueError:
            raise ValueError("RBM data given as a list must hold rows of one length "
                             "(or be a NumPy array).") from None
    if data is None or isinstance(data, np.ndarray) or not ops.is_tensor(data):
        return data
    try:
        return np.asarray(data)
    except (NotImplementedError, TypeError, ValueError):  # symbolic, inside a traced function
        return data


def _host_validation_data(validation_data):
    """`fit`'s ``validation_data`` with an eager tensor of inputs as an array.

    Keras reads a tuple or list as ``(x_val,)``, ``(x_val, y_val)`` or
    ``(x_val, y_val, sample_weight)``. One of more than three items, or
    whose first item is a single row, is a list of rows instead, the
    validation examples themselves.
    """
    name = "The validation data"
    if isinstance(validation_data, (tuple, list)) and validation_data:
        first = validation_data[0]
        if len(validation_data) > 3 or (
                not _is_dataset(first) and np.ndim(_host_array(first, name)) < 2):
            return _host_array(list(validation_data), name)
        return type(validation_data)([_host_array(first, name), *validation_data[1:]])
    return _host_array(validation_data, name)


def _warn_of_short_epochs(x, steps_per_epoch):
    """Warns where a dataset of known length holds fewer batches than
    ``steps_per_epoch``: Keras ends each epoch when they run out, after
    fewer updates, and says so only at one step per execution."""
    if steps_per_epoch is None:
        return
    batches = int(x.cardinality())
    if 0 <= batches < steps_per_epoch:
        user_warnings.warn(
            f"The dataset holds {batches} batches, fewer than steps_per_epoch="
            f"{steps_per_epoch}: each epoch ends when they run out, after {batches} updates. "
            f"Add .repeat() to the dataset to run {steps_per_epoch} steps in every epoch."
        )


def _warn_of_layer_histograms(callbacks):
    """Warns of a TensorBoard asked for weight histograms or images, which
    Keras draws from a model's sublayers: an RBM has none."""
    for callback in callbacks or []:
        if isinstance(callback, keras.callbacks.TensorBoard) and (
                callback.histogram_freq or callback.write_images):
            user_warnings.warn(
                "TensorBoard's histogram_freq and write_images log the weights of a model's "
                "sublayers, and an RBM has none (its weights are its own): they write "
                "nothing here. keras_dbn.callbacks.WeightHistograms logs an RBM's weights."
            )


def _refuse_endless(data, steps, caller):
    """Raises where `evaluate` or `predict` would read an endless dataset forever."""
    if steps is None and array_input.is_endless(data):
        raise ValueError(f"RBM.{caller}: the dataset never ends (e.g. `.repeat()`): pass "
                         "steps, the number of batches to read.")


def _dataset_input_spec(dataset):
    """The spec of the inputs (``x``) in a dataset's elements.

    Raises:
        TypeError: where ``x`` is a dict (other than `array_input.indexed_batches`'
            row indices): an RBM reads one input; and where it is a
            `tf.SparseTensor` or `tf.RaggedTensor`, which the training step
            cannot slice (it failed there with "'SparseTensor' object is
            not subscriptable").
    """
    import tensorflow as tf

    spec = dataset.element_spec
    if isinstance(spec, tuple):
        spec = spec[0] if spec else None
    # `array_input.indexed_batches`' elements are row indices into a view.
    if isinstance(spec, dict) and set(spec) != {array_input.ROWS, array_input.SOURCE}:
        raise TypeError("An RBM reads one input: its dataset must yield the visible data "
                        "(or (x, y) pairs) as tensors, not dicts.")
    if isinstance(spec, (tf.SparseTensorSpec, tf.RaggedTensorSpec)):
        kind, dense = "sparse", "tf.sparse.to_dense(x)"
        if isinstance(spec, tf.RaggedTensorSpec):
            # Padded to the full width: `to_tensor()` pads each batch only
            # to its longest row.
            width = spec.shape[-1] if spec.shape.rank == 2 and spec.shape[-1] else "<visible units>"
            kind, dense = "ragged", f"x.to_tensor(shape=[None, {width}])"
        raise TypeError(
            f"The dataset's visible data are {kind} tensors ({type(spec).__name__} of shape "
            f"{spec.shape}), which an RBM does not read: map them to dense ones first, e.g. "
            f"dataset.map(lambda x, *rest: ({dense}, *rest)).")
    return spec


def _is_dataset(data):
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(data, tf.data.Dataset)


def _back_up_epoch_start(backup, epoch, rate):
    """Has a `keras.callbacks.BackupAndRestore` hold the weights restored at
    the start of ``epoch``, the epoch to resume at.

    Saving per epoch, it already holds the previous epoch's end: the same
    weights, optimizer state and learning rate. Saving every N batches (an
    int ``save_freq``), it may have backed up the diverged weights during
    the epoch: it saves again, with the learning rate the epoch began with
    (``rate``: the optimizer's rate variable and that value, or ``None``).
    Where Keras' private interface is not found, its ``on_train_end`` runs
    (the backup is deleted, as after any finished call) rather than a NaN
    backup be kept.
    """
    if backup.save_freq == "epoch":
        return
    if not (hasattr(backup, "_save_model") and hasattr(backup, "_current_epoch")):
        backup.on_train_end()
        return
    backup._current_epoch, backup._last_batch_seen = epoch, 0
    variable, value = rate or (None, None)
    current = None if variable is None else np.array(variable.numpy())
    if variable is not None:
        variable.assign(value)
    try:
        backup._save_model()
    finally:
        if variable is not None:
            variable.assign(current)


#: Left in a `keras.callbacks.BackupAndRestore`'s folder by a diverged `fit`:
#: the retry takes the caller's learning rate over the backup's.
_DIVERGED_MARKER = "keras_dbn_diverged.json"


def _mark_diverged_backup(backup, epoch, rate):
    """Marks ``backup``'s folder as left by a `fit` that diverged in ``epoch``
    (0-based) at the learning rate ``rate`` (a float or ``None``), where
    the folder holds a backup."""
    import json

    import tensorflow as tf

    if not tf.io.gfile.isdir(backup.backup_dir):  # nothing backed up: a retry starts afresh
        return
    with tf.io.gfile.GFile(os.path.join(backup.backup_dir, _DIVERGED_MARKER), "w") as file:
        file.write(json.dumps({"diverged_in_epoch": epoch + 1, "learning_rate": rate}))


class _RetryRate(keras.callbacks.Callback):
    """Keeps the caller's learning rate where a `BackupAndRestore` resumes
    a `fit` that diverged.

    The backup holds the optimizer's variables, its learning rate among
    them, and Keras loads them all: the retry that `RBM.fit`'s error
    advises, at a lower rate, would have run at the rate that diverged.
    Where the backup's folder holds `_DIVERGED_MARKER`, the rate the
    optimizer had when `fit` was called is put back after the backup's
    (a schedule's rate is not a variable, and is left alone). Backups of
    interrupted calls keep their own rate (a `ReduceLROnPlateau` may have
    lowered it). The marker goes once the backup has been saved again
    (its training metadata rewritten) by the end of an epoch: the backup
    then holds the new rate.

    Args:
        backup: the `keras.callbacks.BackupAndRestore` this follows.
        optimizer: the model's optimizer.
    """

    def __init__(self, backup, optimizer):
        super().__init__()
        self.backup = backup
        rate = getattr(optimizer, "_learning_rate", None)
        self._rate = (rate, np.array(rate.numpy())) if isinstance(rate, keras.Variable) else None

    def _marker(self):
        import tensorflow as tf

        path = os.path.join(self.backup.backup_dir, _DIVERGED_MARKER)
        return path if tf.io.gfile.exists(path) else None

    def _backup_saved(self):
        """When the backup's training metadata were last written, or None."""
        import tensorflow as tf

        path = getattr(self.backup, "_training_metadata_path", None)
        if path is None or not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as file:
            return tf.io.gfile.stat(path).mtime_nsec, file.read()

    def on_train_begin(self, logs=None):
        self._saved_at = self._backup_saved()
        if self._rate is not None and self._marker():
            variable, value = self._rate
            variable.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        marker = self._marker()
        if marker and self._backup_saved() != self._saved_at:
            tf.io.gfile.remove(marker)


class _Diverged(Exception):
    """Ends Keras' loop from `_DivergenceGuard.on_epoch_end`."""


class TrainingDiverged(FloatingPointError):
    """`RBM.fit`'s error where its updates blew up (`_DivergenceGuard`); a
    `FloatingPointError`, so that callers catch it as one.

    Args:
        message: the whole message.
        epoch: the epoch that diverged, counted from 1.
        what: the message's account of what happened and what was put back,
            without advice (for callers that advise otherwise: `DBN.pretrain`,
            the command line).
        data_note: its sentence on data not checked whole, or "".
        layer, layers: in `DBN.pretrain`, the layer that diverged (counted
            from 1) and the number of layers; else ``None``.
    """

    def __init__(self, message, epoch=None, what=None, data_note="", layer=None, layers=None):
        super().__init__(message)
        self.epoch, self.what, self.data_note = epoch, what or message, data_note
        self.layer, self.layers = layer, layers


class _DivergenceGuard(keras.callbacks.Callback):
    """Stops `RBM.fit` at the first epoch whose updates made a weight or the
    reconstruction error NaN or infinite, and puts back the weights the RBM
    had when that epoch began.

    Too large a learning rate (Gaussian units, practical guide 13.2) makes
    CD's updates grow without bound; once a weight overflows, every later
    update is NaN, so training on would only hide the failure. The guard
    copies the RBM's weights (parameters, chains) and its optimizer's
    state (iterations, momenta; not the learning rate, which the caller is
    to lower) at the start of each epoch, one copy at a time, and
    `RBM.fit` raises `FloatingPointError`. The later callbacks do not see
    the rolled-back epoch end, and all but `BackupAndRestore` see training
    end (`end_training`): a backup keeps the finished epochs for the retry,
    where Keras' `TerminateOnNaN` would have it deleted. The random
    stream's position is not put back: a retry draws new numbers.
    """

    def __init__(self):
        super().__init__()
        self.diverged_epoch, self.diverged_logs = None, None
        self.restored_best = []  # EarlyStopping callbacks that put back their best weights
        self.unrestored = False  # diverged in the epoch that built the RBM
        self._saved = self._saved_rate = None

    def _optimizer_state(self):
        """The optimizer's variables but its learning rate (none unbuilt)."""
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not optimizer.built:
            return []
        rate = getattr(optimizer, "_learning_rate", None)
        return [v for v in optimizer.variables if v is not rate]

    def on_train_begin(self, logs=None):
        self.diverged_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        # Here, not at the start of training: `BackupAndRestore` puts its
        # backup's weights back in its own `on_train_begin`.
        # An RBM first built by the epoch's first step (from a generator or
        # a PyDataset) has no weights from before it to put back.
        self._saved = (self.model.get_weights(),
                       [np.array(v.numpy()) for v in self._optimizer_state()]
                       ) if self.model.weights else None
        rate = getattr(getattr(self.model, "optimizer", None), "_learning_rate", None)
        self._saved_rate = None
        if isinstance(rate, keras.Variable):  # not a schedule
            self._saved_rate = (rate, np.array(rate.numpy()))

    def on_epoch_end(self, epoch, logs=None):
        # An overflowing free energy too: weights of ~1e38 give a finite
        # reconstruction error but an infinite free energy.
        monitors = [(logs or {}).get(name, 0.0) for name in ("reconstruction_error",
                                                              "free_energy")]
        if np.all(np.isfinite(monitors)) and all(np.isfinite(np.sum(w.numpy(), dtype="float64"))
                                                  for w in self.model.weights):
            return
        self.unrestored = self._saved is None
        if not self.unrestored:
            weights, optimizer_state = self._saved
            self.model.set_weights(weights)
            variables = self._optimizer_state()
            # An optimizer built during the epoch started from zeros.
            values = optimizer_state or [np.zeros(v.shape, v.dtype) for v in variables]
            for variable, value in zip(variables, values):
                variable.assign(value)
        self.diverged_epoch, self.diverged_logs = epoch, dict(logs or {})
        # Out of Keras' loop at once: the callbacks after this one must not
        # take the rolled-back epoch for a finished one (a BackupAndRestore
        # would mark it done, a ModelCheckpoint save the restored weights
        # under its number).
        raise _Diverged()

    def end_training(self, model, callbacks, history_before):
        """What Keras' loop would have done after the epoch that diverged.

        The epoch's logs go into the call's `keras.callbacks.History` (a new
        one where no epoch ended, ``model.history`` still being
        ``history_before``), the progress bars end their line and every
        callback but `BackupAndRestore` gets ``on_train_end``: the backup of
        the finished epochs stays for the retry, which resumes at the
        epoch that diverged.

        Returns:
            The `keras.callbacks.History` of the call.
        """
        history = getattr(model, "history", None)
        if history is history_before or not isinstance(history, keras.callbacks.History):
            history = keras.callbacks.History()
            history.set_model(model)
            history.on_train_begin()
        # Figures that later callbacks add (the gap, a scheduler's rate) are
        # NaN for the rolled-back epoch: the columns keep their lengths.
        validated = any(key.startswith("val_") for key in self.diverged_logs)
        keys = list(history.history)
        if validated and any(isinstance(c, _FreeEnergyGap) for c in callbacks):
            keys.append("free_energy_gap")  # a first validating epoch that diverged
        for key in keys:
            if validated or not (key.startswith("val_") or key == "free_energy_gap"):
                self.diverged_logs.setdefault(key, float("nan"))
        history.on_epoch_end(self.diverged_epoch, self.diverged_logs)
        for callback in callbacks:
            if isinstance(callback, keras.callbacks.ProgbarLogger):
                callback.on_epoch_end(self.diverged_epoch, self.diverged_logs)
        for callback in callbacks:
            if isinstance(callback, keras.callbacks.BackupAndRestore):
                _back_up_epoch_start(callback, self.diverged_epoch, self._saved_rate)
                _mark_diverged_backup(callback, self.diverged_epoch, self._rate_value())
            elif not isinstance(callback, _DivergenceGuard):
                callback.on_train_end(self.diverged_logs)
        self.restored_best = [
            callback for callback in callbacks
            if isinstance(callback, keras.callbacks.EarlyStopping)
            and callback.restore_best_weights and callback.best_weights is not None
        ]
        return history

    def _rate_value(self):
        """The learning rate as a float (the epoch's, where it was a
        variable), or ``None`` for a schedule."""
        if self._saved_rate is not None:
            return float(self._saved_rate[1])
        return None

    def raise_if_diverged(self, optimizer, data_note=""):
        """Raises `FloatingPointError` if the last `fit` diverged.

        ``data_note``: a sentence for data that were not checked whole (a
        dataset's, a generator's), whose bad values may have caused it.
        """
        if self.diverged_epoch is None:
            return
        rate = getattr(optimizer, "learning_rate", None)
        rate = "" if rate is None else f" ({_describe_rate(rate)})"
        epoch = self.diverged_epoch + 1
        what = (f"RBM training diverged in epoch {epoch}: its updates made weights, the "
                "reconstruction error or the free energy NaN or infinite.")
        if self.unrestored:
            what += (" The RBM was built by that epoch's first step, so it had no weights "
                     "before it to put back: they are the diverged ones.")
            advice = (" Build a new RBM (calling `rbm.build((None, num_visible))` before "
                      "`fit` lets a divergence put its first weights back), and train it "
                      f"at a lower rate{rate}.")
        else:
            what += (" The weights and the optimizer's state are restored to where they "
                     "were when that epoch began")
            if self.restored_best:
                what += (" (then EarlyStopping(restore_best_weights=True) put back the "
                         "weights of its best epoch)")
            what += "."
            advice = (
                " `rbm.history` holds the epochs' logs. Lower the learning "
                f"rate{rate}, by compiling again or setting `rbm.optimizer.learning_rate`, "
                "and fit again (a BackupAndRestore backup then resumes at that epoch, "
                "at the new rate): Gaussian units usually need 10-100x less than Bernoulli "
                "ones (practical guide, section 13.2)."
            )
        raise TrainingDiverged(what + advice + data_note, epoch=epoch, what=what,
                               data_note=data_note)


def _describe_rate(rate):
    """A learning rate for a message: its value, or its schedule's name."""
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return f"a {type(rate).__name__} schedule"
    try:
        return f"now {float(keras.ops.convert_to_numpy(rate)):.3g}"
    except (TypeError, ValueError):
        return "now a tensor"


def _gap_rows(x, validation_split, validation_data):
    """The training examples `free_energy_gap` compares with the validation data.

    Up to `_GAP_ROWS` rows spread evenly over an array's training rows
    (those before a ``validation_split``); for a dataset a `_RowTap`, which
    keeps the first rows that training reads from it; ``None`` for other
    input.
    """
    if isinstance(x, np.ndarray):
        rows = _training_rows(len(x), validation_split, validation_data)
        if not 0 < rows <= len(x):  # a bad split, which `fit` refuses later
            return None
        return x[np.linspace(0, rows - 1, min(rows, _GAP_ROWS)).round().astype(np.int64)]
    return _RowTap() if _is_dataset(x) else None


class _RowTap:
    """Keeps the first `_GAP_ROWS` rows that training reads from a dataset.

    Reading them before `fit` would start one more iteration of the
    dataset, which moves its per-iteration randomness (a reshuffling
    ``shuffle``, ``Dataset.random``): training would then see other epochs
    than without validation data. The tap copies the rows as training
    reads them instead, in the input pipeline, until `rows` is first
    called.
    """

    def __init__(self):
        self._batches, self._count, self._frozen = [], 0, None

    def _record(self, batch):
        if self._frozen is None and self._count < _GAP_ROWS:
            batch = np.asarray(batch)[: _GAP_ROWS - self._count]
            self._batches.append(batch.copy())
            self._count += len(batch)
        return np.int32(0)

    def wrap(self, dataset):
        """`dataset`, whose first rows are copied here as they are read."""
        import tensorflow as tf

        def tapped(*element):
            copied = tf.py_function(self._record, [element[0]], tf.int32)
            with tf.control_dependencies([copied]):
                first = tf.identity(element[0])
            return first if len(element) == 1 else (first,) + element[1:]

        return dataset.map(tapped)

    def rows(self):
        """The rows copied so far, from now on fixed; ``None`` if none."""
        if self._frozen is None:
            self._frozen = np.concatenate(self._batches) if self._batches else False
            self._batches = []
        return None if self._frozen is False else self._frozen


#: Each RBM's compiled `_free_energy_sum_function`, for as long as it lives.
_FREE_ENERGY_SUMS = weakref.WeakKeyDictionary()


def _free_energy_sum_function(rbm):
    """A compiled function of a batch of rows: the sum of their free
    energies under ``rbm``, in float64 (the mean of 10,000 rows keeps
    float32's digits).

    It computes them as `RBM.test_step` does, so that the gap compares like
    with like (under a mixed policy the compiled and eager routes round
    differently), and by the private `RBM._free_energy_of`, not by a
    subclass's `free_energy`. One function per RBM, traced
    once for each shape of rows (one per `fit` call set TensorFlow's
    warning of frequent retracing off after a few calls); it holds the RBM
    weakly.
    """
    function = _FREE_ENERGY_SUMS.get(rbm)
    if function is None:
        import tensorflow as tf

        model = weakref.ref(rbm)

        def free_energy_sum(v):
            return ops.sum(ops.cast(model()._free_energy_of(v), "float64"))

        function = tf.function(free_energy_sum, reduce_retracing=True)
        # TensorFlow counts the traces of one Python function over all its
        # tf.functions: a trace per RBM (a tuner's trials, a DBN's layers,
        # on few rows) would set off its warning of retracing "in a loop".
        # Its own flag for that; an attribute without effect where missing.
        function._omit_frequent_tracing_warning = True
        _FREE_ENERGY_SUMS[rbm] = function
    return function


class _GapColumn(keras.callbacks.Callback):
    """Gives a `keras.callbacks.CSVLogger`, which it runs just before, a
    ``free_energy_gap`` column where the first epoch does not validate.

    The logger takes its columns from the first epoch's logs and adds the
    ``val_`` ones (``validation_freq`` above 1 leaves them out of that
    epoch); the gap, a validation figure without that prefix, was left out
    of the file. Run just before it, this sees the logs that it sees.

    Args:
        logger: the `keras.callbacks.CSVLogger`.
    """

    def __init__(self, logger):
        super().__init__()
        self.logger = logger

    def on_epoch_end(self, epoch, logs=None):
        if self.logger.keys is None and logs and "free_energy_gap" not in logs:
            keys = sorted(logs)
            if not any(key.startswith("val_") for key in keys):
                keys += [f"val_{key}" for key in keys]
            self.logger.keys = sorted(keys + ["free_energy_gap"])


class _FreeEnergyGap(keras.callbacks.Callback):
    """Adds ``free_energy_gap`` to the logs: ``val_free_energy`` minus the
    mean free energy of training examples, both at the epoch's final weights.

    Hinton's practical guide (section 6) monitors overfitting by the gap
    between the average free energy of validation data and of a
    representative subset of the training data: a growing gap means the
    model assigns relatively less probability to held-out data. The logged
    ``free_energy`` does not serve, as it averages the epoch's batches, each
    before its update. Those training rows (`_gap_rows`) go through the
    free energy alone, by one compiled function per RBM: `RBM.evaluate`
    would also reconstruct them, which doubled the call's GEMMs (it took ~8%
    of an epoch at 784x500 with a tenth of MNIST held out).

    Args:
        training_rows: the training examples to compare with.
    """

    def __init__(self, training_rows):
        super().__init__()
        self.training_rows = training_rows

    def _mean_free_energy(self, rows):
        """The mean free energy of `rows` at the model's weights now."""
        function = _free_energy_sum_function(self.model)
        total = 0.0
        for start in range(0, len(rows), _GAP_BATCH_SIZE):
            total += float(function(rows[start:start + _GAP_BATCH_SIZE]))
        return total / len(rows)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or "val_free_energy" not in logs:
            return
        rows = self.training_rows
        if isinstance(rows, _RowTap):
            rows = rows.rows()
        if rows is not None:
            logs["free_energy_gap"] = logs["val_free_energy"] - self._mean_free_energy(rows)


def _require_tensorflow_trainer(method):
    """Raises unless Keras' TensorFlow trainer will run `fit` or `evaluate`.

    The RBM's `train_step` and `test_step` update its variables in place
    and its input paths are TensorFlow's. The JAX trainer calls a
    stateless ``train_step(state, data)`` instead, and would otherwise fail
    with a bare ``TypeError`` about the number of arguments; the other
    backends' trainers are untested.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise NotImplementedError(
            f"RBM.{method} trains and evaluates with the TensorFlow backend only, "
            f"not {backend!r} (the JAX trainer needs a stateless train_step and "
            "test_step, which keras_dbn does not have yet). Set "
            "KERAS_BACKEND=tensorflow. An RBM built or loaded under this backend "
            "still computes its conditionals, free energy and samples."
        )


def _refuse_weights(method, sample_weight=None, class_weight=None):
    """CD's statistics weigh every example alike: weights would be ignored."""
    if class_weight is not None:
        raise ValueError(f"An RBM learns without labels: `class_weight` does not apply "
                         f"to RBM.{method}.")
    if sample_weight is not None:
        raise ValueError(f"An RBM weighs every example alike: `sample_weight` does not "
                         f"apply to RBM.{method} (drop it, or repeat the rows to weigh).")


@keras.saving.register_keras_serializable(package="keras_dbn")
class RBM(ExtraStateMixin, keras.Model):
    """A Restricted Boltzmann Machine trained by contrastive divergence.

    The energy of a visible vector ``v`` and hidden vector ``h`` is

        E(v, h) = E_v(v; b) + E_h(h; c) - v^T W h

    with one term per layer from its units: ``-b^T v`` for Bernoulli units,
    ``||v - b||^2 / 2`` for Gaussian ones of unit variance (and likewise
    ``-c^T h`` or ``||h - c||^2 / 2`` for the hidden layer). ``fit()``
    follows the gradient of the log-likelihood approximated by CD-k
    (Hinton 2002): the positive statistics ``<v h^T>`` are taken with ``h``
    given the data, the negative ones after ``k`` steps of block Gibbs
    sampling started at the data, or, with ``persistent=True``, at the
    hidden states of ``num_chains`` persistent chains that carry over between
    updates (PCD, Tieleman 2008). The update
    ``-(positive - negative)`` is handed to the compiled optimizer as the
    gradient, so every Keras optimizer, learning-rate schedule, momentum,
    weight decay and clipping option applies unchanged.

    Following Hinton's practical guide, the hidden states that drive the
    chain are sampled, and the statistics use hidden probabilities; the last
    visible state is the conditional mean for CD and a sample for PCD (see
    ``sample_visible``).

    ``call(v)`` returns ``p(h = 1 | v)`` (the hidden means), so an RBM is also
    a feature extractor inside other Keras models. Like a Keras layer, the
    RBM takes its number of visible units from the first data it sees: from
    ``fit``, a call, or any method given visible data (``free_energy``,
    ``hidden_given_visible``, ``gibbs``, ...); ``build((None, num_visible))``
    sets it beforehand. Training and evaluation need the TensorFlow backend.

    Args:
        units: number of hidden units.
        visible: visible unit type, ``"bernoulli"`` for data in [0, 1] or
            ``"gaussian"`` for real-valued data standardised to zero mean and
            unit variance per feature.
        hidden: hidden unit type, ``"bernoulli"`` (default) or ``"gaussian"``
            (linear units with unit-variance noise).
        k: number of Gibbs steps per update (CD-k).
        persistent: use persistent contrastive divergence. Its chains explore
            the model quickly only while the weights move under them
            (Tieleman & Hinton 2009), so for a model to sample from, let the
            learning rate fall to zero by the end of training (e.g.
            ``keras.optimizers.schedules.PolynomialDecay(0.01, updates,
            end_learning_rate=0.0)``): at a constant rate the MNIST DBN's
            samples fell into 1.4-3.8 digit classes effectively, with the
            rate annealed 6.4-8.4 (``benchmarks/RESULTS.md``, section 7).
        num_chains: number of persistent chains (PCD only); fixed so that the
            chains do not depend on the size of the last batch. Under a
            `tf.distribute` strategy every replica starts each update
            from the same chains, which then go on from the first
            replica's draws.
        sample_visible: whether the last visible state of the negative phase
            is a sample (``True``) or the conditional mean (``False``).
            ``None`` picks the mean for CD and a sample for PCD.
        sparsity_target: desired mean activation of each hidden unit, in
            (0, 1); ``None`` disables the sparsity penalty.
        sparsity_cost: weight of the sparsity penalty, > 0 with a
            ``sparsity_target``; its gradient with
            respect to a hidden unit's total input is ``q - sparsity_target``
            with ``q`` the unit's mean activation on the batch (Hinton's
            practical guide, section 11; Lee et al. 2008).
        kernel_initializer: initializer of ``W``; by default normal with
            standard deviation 0.01 (practical guide, section 8). One given
            by name or config draws from ``seed``; an instance keeps its own.
        seed: integer seed for the initial weights and every random draw;
            a fixed seed makes training reproducible on CPU.
        **kwargs: passed to `keras.Model` (``name``, ``dtype``, ...).
            ``dtype="mixed_bfloat16"`` keeps the weights and the optimizer
            in float32 and runs the GEMMs, with the conditional means
            fused into them, in bfloat16 (about 1.5-1.6x faster training
            at batch 1000 on a CPU with AVX512-BF16, where the GEMMs
            dominate; at batch 100 no faster than float32). The Bernoulli
            draws compare float32 uniforms with the means, the CD
            statistics are summed in the GEMM's float32 accumulator and
            subtracted and scaled in float32, and the data's column
            means and the monitors read the data unrounded.

    Example:

    ```python
    rbm = keras_dbn.RBM(64, k=1, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5))
    rbm.fit(x_train, epochs=5, batch_size=100, validation_data=x_val)
    features = rbm.predict(x_test)          # p(h = 1 | v)
    fantasies = rbm.sample(16, gibbs_steps=1000)
    ```

    References:
        Hinton, "Training Products of Experts by Minimizing Contrastive
        Divergence", Neural Computation 14(8), 2002.
        Tieleman, "Training Restricted Boltzmann Machines using
        Approximations to the Likelihood Gradient", ICML 2008.
        Hinton, "A Practical Guide to Training Restricted Boltzmann
        Machines", UTML TR 2010-003.
    """

    def __init__(
        self,
        units,
        visible="bernoulli",
        hidden="bernoulli",
        k=1,
        persistent=False,
        num_chains=100,
        sample_visible=None,
        sparsity_target=None,
        sparsity_cost=0.0,
        kernel_initializer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        seed = checked_seed(seed)
        checked_count(units, "`units`", 1)
        checked_count(k, "`k` (Gibbs steps per update)", 1)
        checked_count(num_chains, "`num_chains`", 1)
        if sample_visible is not None and not isinstance(sample_visible, (bool, np.bool_)):
            raise ValueError(f"`sample_visible` must be True, False or None, got "
                             f"{sample_visible!r}.")
        if sparsity_target is not None and not 0.0 < sparsity_target < 1.0:
            raise ValueError(f"`sparsity_target` must lie in (0, 1), got {sparsity_target!r}.")
        if not sparsity_cost >= 0:
            raise ValueError(f"`sparsity_cost` must be >= 0, got {sparsity_cost!r}.")
        if sparsity_target is not None and not sparsity_cost > 0:
            raise ValueError(
                "A `sparsity_target` has no effect with `sparsity_cost=0`: give the "
                "penalty a weight too (e.g. sparsity_cost=0.1)."
            )
        if sparsity_target is None and sparsity_cost > 0:
            raise ValueError(
                "A `sparsity_cost` has no effect without a `sparsity_target`: give the "
                "mean activation to aim at too (e.g. sparsity_target=0.05)."
            )
        self.visible_units = units_lib.get(visible)
        self.hidden_units = units_lib.get(hidden)
        if not (self.visible_units.discrete or self.hidden_units.discrete):
            raise ValueError(
                "A Gaussian-Gaussian RBM has no normalisable distribution; "
                "make at least one layer Bernoulli."
            )
        if sparsity_target is not None and not self.hidden_units.discrete:
            raise ValueError(
                "`sparsity_target` is the mean activation, a probability, of binary "
                f"hidden units; {self.hidden_units.name!r} hidden units have real-valued "
                "means, which the penalty would only pull towards it. Use Bernoulli "
                "hidden units, or leave sparsity_target and sparsity_cost unset."
            )
        self.units = int(units)
        self.visible = self.visible_units.name
        self.hidden = self.hidden_units.name
        self.k = int(k)
        self.persistent = bool(persistent)
        self.num_chains = int(num_chains)
        self.sample_visible = sample_visible
        self.sparsity_target = sparsity_target
        self.sparsity_cost = float(sparsity_cost)
        self.kernel_initializer = _seeded_initializer(
            kernel_initializer or keras.initializers.RandomNormal(stddev=0.01, seed=seed), seed
        )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        # `evaluate` (and validation) draws its hidden samples from its own
        # stream, restarted at each call: evaluating neither changes
        # training nor gives two answers for the same weights and data.
        base = seed if seed is not None else int(np.array(self.seed_generator.state.numpy())[0])
        self._evaluation_seed = (int(base) + 1) % 2**31
        self.evaluation_seed_generator = keras.random.SeedGenerator(
            self._evaluation_seed, name="evaluation_seed_generator")
        # Rows per batch where `fit` chose the "xla_chain" route (`_step_route`), else 0.
        self._xla_chain = 0
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_error")
        self.free_energy_tracker = keras.metrics.Mean(name="free_energy")

    # ------------------------------------------------------------------ build

    def build(self, input_shape):
        array_input.check_rank(input_shape)
        features = tuple(input_shape)[1:]
        if None in features:
            raise ValueError(
                f"The RBM cannot take its number of visible units from data of shape "
                f"{tuple(input_shape)}; build it first with `build((None, num_visible))`."
            )
        num_visible = int(math.prod(features))
        if num_visible < 1:
            raise ValueError(f"The data have no features (shape {tuple(input_shape)}).")
        self.kernel = self.add_weight(
            shape=(num_visible, self.units),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.visible_bias = self.add_weight(
            shape=(num_visible,), initializer="zeros", name="visible_bias"
        )
        self.hidden_bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="hidden_bias"
        )
        if self.persistent:
            self.chains = self.add_weight(
                shape=(self.num_chains, self.units),
                initializer=self._initial_chains,
                trainable=False,
                # Under a `tf.distribute` strategy every replica takes the
                # first replica's next states: one set of chains, which a
                # saved file holds whole, rather than one per replica.
                aggregation="only_first_replica",
                name="persistent_chains",
            )
        self.built = True

    def _initial_chains(self, shape, dtype=None):
        # The chains' hidden states start at random states of an RBM with
        # zero weights.
        mean = self.hidden_units.mean(ops.zeros(shape, dtype=dtype))
        return self.hidden_units.sample(mean, keras.random.SeedGenerator(self.seed))

    def load_own_variables(self, store):
        """Loads the weights, and chains saved as visible states.

        Persistent RBMs saved before the chains carried hidden states hold
        the chains' visible states, shape ``(num_chains, num_visible)``;
        the chains then go on from hidden states drawn from ``p(h | v)``
        with the loaded weights, the next half of the same Gibbs sweep.

        Args:
            store: the saved variables, keyed by position (Keras' format).
        """
        if self.persistent and self.built:  # an RBM saved unbuilt has no chains yet
            variables = self._trainable_variables + self._non_trainable_variables
            key = str(next(i for i, v in enumerate(variables) if v is self.chains))
            saved_shape = tuple(store[key].shape) if key in store.keys() else None
            if saved_shape == (self.num_chains, self.num_visible) != tuple(self.chains.shape):
                values = {k: np.asarray(store[k]) for k in store.keys()}
                visible_chains = values[key]
                values[key] = keras.ops.convert_to_numpy(self.chains)
                super().load_own_variables(values)
                self.chains.assign(self.hidden_given_visible(visible_chains, sample=True))
                return
        super().load_own_variables(store)

    def _extra_state(self):
        return dict(super()._extra_state(),
                    array_fit_calls=np.asarray(getattr(self, "_array_fit_calls", 0), "int64"),
                    # Drawn at random for seed=None: evaluation then gives the
                    # same figures after loading.
                    evaluation_seed=np.asarray(self._evaluation_seed, "int64"))

    def _load_extra_state(self, values):
        super()._load_extra_state(values)
        if "evaluation_seed" in values:
            self._evaluation_seed = int(values["evaluation_seed"])
        if "array_fit_calls" in values:
            self._array_fit_calls = int(values["array_fit_calls"])

    def _ensure_built(self, x):
        # train_step and test_step do not go through __call__, which is
        # where Keras builds a layer on first use.
        if not self.built:
            if getattr(x.shape, "rank", 0) is None:
                raise ValueError(
                    "The RBM cannot take its number of visible units from data of "
                    "unknown shape; build it first with `build((None, num_visible))`."
                )
            self.build(tuple(x.shape))

    @property
    def num_visible(self):
        """Number of visible units (known once the model is built)."""
        self._require_built()
        return int(self.kernel.shape[0])

    @property
    def metrics(self):
        return [self.reconstruction_tracker, self.free_energy_tracker]

    # ------------------------------------------------------------------- math

    @property
    def _statistics_dtype(self):
        """The dtype of the training data and of the CD statistics.

        Under a mixed policy the GEMMs, and the bias adds and conditional
        means that oneDNN fuses into them, run in the low-precision compute
        dtype; float32 data, the Bernoulli sampling (float32 uniforms), the
        statistics' scaling and differences and the monitors run in
        float32, which also keeps float32 data's column means unrounded.
        """
        dtype = self.compute_dtype
        return "float32" if dtype in units_lib._LOW_PRECISION else dtype

    @property
    def _sampling_dtype(self):
        """The dtype of the sampling methods' arithmetic (`gibbs`, `sample`,
        the conditionals with ``sample=True``, and so `DBN.generate`).

        Under a mixed policy it is float32: a sigmoid rounded to bfloat16
        is 1 for every probability above 1 - 2^-9, so a unit with p(on) =
        0.9985 would never be drawn off (in float32, 0.15% of the time),
        and chains of a small RBM drew states far from its exact
        distribution. Training keeps the fused 16-bit means for speed.
        """
        return self._statistics_dtype

    def _flatten(self, v, dtype=None):
        """``v`` as ``(batch, num_visible)`` in ``dtype`` (the compute dtype).

        An RBM not built yet is built for ``v``'s width here, as a Keras
        layer is on its first call. Values at hand (a NumPy array, a list, an
        eager tensor; not a traced one) are checked as `fit` checks its data
        (`_check_data`): the conditionals, energies and chains of unscaled
        data would be silently meaningless.
        """
        if _is_dataset(v):
            raise TypeError(
                "This RBM method reads visible states as an array or tensor, not a "
                "tf.data.Dataset: pass the rows themselves, or use predict or evaluate, "
                "which read datasets.")
        v = np.asarray(v) if isinstance(v, (list, tuple)) else _host_array(v)
        if isinstance(v, np.ndarray):
            self._check_data(v)
        v = ops.cast(v, self.compute_dtype if dtype is None else dtype)
        array_input.check_rank(v.shape)
        self._ensure_built(v)
        known_rank = getattr(v.shape, "rank", 0) is not None  # TensorFlow's may be unknown
        features = tuple(v.shape)[1:] if known_rank else (None,)
        if None not in features:
            width = int(math.prod(features))
            if width != self.num_visible:
                raise self._width_error(width)
            return v if len(features) == 1 else ops.reshape(v, (-1, width))
        # A trace for batches of several shapes (Keras relaxes a retraced
        # step's shape) checks the width when it runs.
        import tensorflow as tf

        v = tf.reshape(v, (tf.shape(v)[0], -1))
        check = tf.debugging.Assert(
            tf.equal(tf.shape(v)[1], self.num_visible),
            [f"The RBM has {self.num_visible} visible units, but the data has", tf.shape(v)[1],
             "values per example."],
        )
        with tf.control_dependencies([check]):
            return tf.ensure_shape(tf.identity(v), (None, self.num_visible))

    def _parameters(self):
        """The weights CD trains, in the order of its statistics; trainable
        or not (a frozen RBM's optimizer still knows them)."""
        return [self.kernel, self.visible_bias, self.hidden_bias]

    def _hidden_states(self, h, dtype=None):
        """``h`` in ``dtype`` (the compute dtype), after a check of its width."""
        h = ops.cast(h, self.compute_dtype if dtype is None else dtype)
        self._require_built()
        if len(h.shape) != 2 or h.shape[-1] not in (None, self.units):
            raise ValueError(
                f"Hidden states must have shape (batch, {self.units}) for this RBM, "
                f"got {tuple(h.shape)}."
            )
        return h

    def _width_error(self, width):
        return ValueError(
            f"The RBM has {self.num_visible} visible units, but the data has "
            f"{width} values per example."
        )

    def _require_built(self):
        if not self.built:
            raise ValueError(
                "The RBM has no weights yet: fit it, call it on data, or build "
                "it with `build((None, num_visible))` first."
            )

    def _weights(self, dtype=None):
        """The kernel and biases in ``dtype`` (the compute dtype)."""
        self._require_built()
        dtype = self.compute_dtype if dtype is None else dtype
        return (
            ops.cast(self.kernel, dtype),
            ops.cast(self.visible_bias, dtype),
            ops.cast(self.hidden_bias, dtype),
        )

    def _hidden_pre(self, v, weights):
        kernel, _, hidden_bias = weights
        return _add_bias(ops.matmul(v, kernel), hidden_bias)

    def _visible_pre(self, h, weights):
        kernel, visible_bias, _ = weights
        return _add_bias(_matmul_transposed(h, kernel, transpose_b=True), visible_bias)

    def hidden_given_visible(self, v, sample=False):
        """The conditional ``p(h | v)``: its mean, or a sample from it.

        Args:
            v: visible states, shape ``(batch, num_visible)`` (or images,
                which are flattened).
            sample: return a sample instead of the mean.

        Returns:
            Tensor of shape ``(batch, units)``, in the compute dtype; a
            sample is drawn, and returned, in float32 under a mixed policy
            (16-bit means would round probabilities above 1 - 2^-9 to 1).

        Example:

        >>> h = rbm.hidden_given_visible(x_test[:10])  # p(h = 1 | v), shape (10, 64)
        >>> h_states = rbm.hidden_given_visible(x_test[:10], sample=True)  # binary states
        """
        dtype = self._sampling_dtype if sample else None
        return self._hidden_given(self._flatten(v, dtype), sample)

    def _hidden_given(self, v, sample):
        """`hidden_given_visible` of flattened ``v`` (in `_sampling_dtype`
        to sample), which it does not check: states of a DBN's layer below,
        not data (a Gaussian layer's states need not be standardised)."""
        dtype = self._sampling_dtype if sample else None
        if dtype is not None:
            v = ops.cast(v, dtype)
        mean = self.hidden_units.mean(self._hidden_pre(v, self._weights(dtype)))
        return self.hidden_units.sample(mean, self.seed_generator) if sample else mean

    def visible_given_hidden(self, h, sample=False):
        """The conditional ``p(v | h)``: its mean, or a sample from it.

        Args:
            h: hidden states, shape ``(batch, units)``.
            sample: return a sample instead of the mean.

        Returns:
            Tensor of shape ``(batch, num_visible)``, in the compute dtype;
            a sample is drawn, and returned, in float32 under a mixed
            policy, as in `hidden_given_visible`.

        Example:

        >>> h = rbm.hidden_given_visible(x_test[:10], sample=True)
        >>> v = rbm.visible_given_hidden(h)  # p(v = 1 | h), shape (10, 784)
        >>> v_states = rbm.visible_given_hidden(h, sample=True)
        """
        dtype = self._sampling_dtype if sample else None
        h = self._hidden_states(h, dtype)
        mean = self.visible_units.mean(self._visible_pre(h, self._weights(dtype)))
        return self.visible_units.sample(mean, self.seed_generator) if sample else mean

    def energy(self, v, h):
        """The joint energy ``E(v, h)``, shape ``(batch,)``.

        Under a mixed policy it runs in float32, as `free_energy`'s sums
        do: in bfloat16 the energies of an MNIST RBM were off by up to
        2.6 nats.

        Example:

        >>> h = rbm.hidden_given_visible(x_test[:10], sample=True)
        >>> e = rbm.energy(x_test[:10], h)  # shape (10,)
        """
        dtype = self._statistics_dtype  # float32 under a mixed policy
        v = self._flatten(v, dtype)
        kernel, visible_bias, hidden_bias = (
            ops.cast(w, dtype) for w in (self.kernel, self.visible_bias, self.hidden_bias))
        h = ops.cast(self._hidden_states(h), dtype)
        if None not in (v.shape[0], h.shape[0]) and v.shape[0] != h.shape[0]:
            raise ValueError(f"`v` holds {v.shape[0]} rows but `h` holds {h.shape[0]}: "
                             "energy pairs them row by row.")
        interaction = ops.sum(ops.matmul(v, kernel) * h, axis=-1)
        return (
            self.visible_units.energy(v, visible_bias)
            + self.hidden_units.energy(h, hidden_bias)
            - interaction
        )

    def _free_energy(self, v, hidden_pre, weights):
        """`free_energy` from the hidden layer's total inputs ``hidden_pre``.

        Under a mixed policy only the GEMM behind ``hidden_pre`` runs in the
        16-bit compute dtype. The energies are sums over hundreds of units of
        terms up to ~100 nats, which bfloat16 would round by up to ~1 nat
        (free energies of an MNIST RBM were off by 1.5): they run in
        float32, with the float32 visible bias.
        """
        _, visible_bias, hidden_bias = weights
        if keras.backend.standardize_dtype(hidden_pre.dtype) in units_lib._LOW_PRECISION:
            f32 = "float32"
            v, hidden_pre, hidden_bias = (ops.cast(t, f32) for t in (v, hidden_pre, hidden_bias))
            visible_bias = ops.cast(self.visible_bias, f32)
        return self.visible_units.energy(v, visible_bias) - self.hidden_units.log_partition(
            hidden_pre, hidden_bias
        )

    def free_energy(self, v):
        """The free energy ``F(v) = -log sum_h exp(-E(v, h))``.

        ``p(v) = exp(-F(v)) / Z``. For Gaussian units the sum is an integral
        and ``p(v)`` a density.

        Args:
            v: visible states, shape ``(batch, num_visible)``.

        Returns:
            Tensor of shape ``(batch,)``; float32 under a mixed policy, where
            the input to the hidden units comes from a bfloat16 GEMM: called
            eagerly, as here, it rounds differently from the compiled
            `evaluate` and `fit` (which log ``free_energy`` and the gap), by
            up to ~1e-4 relative in a 784x32 RBM on MNIST.

        Example:

        >>> f = rbm.free_energy(x_test)  # shape (len(x_test),)
        >>> gap = np.mean(rbm.free_energy(x_val)) - np.mean(rbm.free_energy(x_train[:len(x_val)]))
        """
        return self._free_energy_of(v)

    def _free_energy_of(self, v):
        """`free_energy`, which a subclass may override, as `test_step` and
        `free_energy_gap` compute it."""
        v = self._flatten(v, self._statistics_dtype)
        weights = self._weights()
        hidden_pre = self._hidden_pre(ops.cast(v, self.compute_dtype), weights)
        return self._free_energy(v, hidden_pre, weights)

    def call(self, inputs):
        """Returns the hidden means ``p(h = 1 | v)``."""
        return self.hidden_given_visible(inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None,
               **kwargs):
        """`keras.Model.export` of `call` (the hidden means), for rows of
        ``num_visible`` values unless ``input_signature`` says otherwise.

        Keras infers a subclassed model's signature from its first call,
        which training by `fit` never makes. Under a mixed policy the
        SavedModel serves float32, as `predict` returns (`export_model`).
        """
        return export_model(self, super().export, filepath, format, verbose,
                            input_signature, **kwargs)

    def contrastive_divergence(self, v0, seed=None, data_rows=None):
        """One CD-k (or PCD) estimate of the log-likelihood gradient.

        This is the single place where the learning statistics are computed.

        Args:
            v0: a batch of visible data, shape ``(batch, num_visible)``.
                Under a mixed policy float32 data are used unrounded by the
                data's column means and the monitors; data in the compute
                dtype are read as they are (their column sums are then
                rounded once to it, like the model's statistics).
            seed: where the random draws come from: the RBM's
                ``seed_generator`` by default, a `keras.random.SeedGenerator`,
                a `units.DrawnNoise`, or an integer (the draws of a new
                ``SeedGenerator(seed)``: the same estimate on each call).
            data_rows: ``None`` where every row of ``v0`` is data; else a
                scalar tensor ``n``: only the first ``n`` rows are, and the
                rest pad the batch to a static size (the last, smaller batch
                of an epoch on `fit`'s ``"xla_chain"`` route). Padding rows
                run through the chain like data but are left out of the
                statistics and the monitors.

        Returns:
            A dict with ``gradients`` (the negated update for ``kernel``,
            ``visible_bias`` and ``hidden_bias``, in float32),
            ``chain_state`` (PCD only, else ``None``: the chains' next
            hidden states, drawn from the last visible sample),
            ``reconstruction_error`` (mean squared error of the one-step
            reconstruction of ``v0``) and ``free_energy`` (mean ``F(v0)``);
            these two monitors are estimated from the first `MONITOR_ROWS`
            rows of larger batches (PCD's reconstruction error from the
            first `PCD_MONITOR_ROWS`), but for the visible term of the free
            energy, which reads every row.

        Example:

        >>> stats = rbm.contrastive_divergence(x_train[:100])
        >>> grad_w, grad_b, grad_c = stats["gradients"]  # shapes (784, 64), (784,), (64,)
        >>> float(stats["reconstruction_error"])
        """
        self._ensure_built(v0)  # called directly, outside `fit`, it may come first
        shape = tuple(v0.shape) if getattr(v0.shape, "rank", 0) is not None else None
        if shape is not None and (len(shape) != 2 or shape[1] not in (None, self.num_visible)):
            raise ValueError(f"contrastive_divergence takes a batch of shape (batch, "
                             f"{self.num_visible}), got {shape}.")
        weights = self._weights()
        visible, hidden = self.visible_units, self.hidden_units
        if seed is None:
            seed = self.seed_generator
        elif isinstance(seed, (int, np.integer)):
            # Keras's random ops would draw the same numbers for every
            # state of the chain from an integer seed.
            seed = keras.random.SeedGenerator(checked_seed(seed))
        # `_contrastive_divergence_in_xla` traces this into XLA with drawn noise.
        in_xla = self._jit_compile or isinstance(seed, units_lib.DrawnNoise)
        f32 = "float32"
        dtype, statistics_dtype = self.compute_dtype, self._statistics_dtype
        mixed = dtype != statistics_dtype

        # Every state and conditional mean is in the compute dtype, the
        # GEMMs' (16-bit means are sampled in float32, `Units.sample`). In
        # TensorFlow's graph each conditional mean is then fused into its
        # GEMM: a total input used only by the sigmoid is never written out.
        def up(states):
            return hidden.mean(self._hidden_pre(states, weights))

        def down(states):
            return visible.mean(self._visible_pre(states, weights))

        # Sample shapes from the input, not from the means: the random numbers
        # then need not wait for the GEMMs that compute the means.
        batch = ops.shape(v0)[0]
        h_shape, v_shape = (batch, self.units), (batch, ops.shape(v0)[1])
        if data_rows is None:
            row_weights = None
        else:
            # 1 for a data row, 0 for padding.
            row_weights = ops.expand_dims(ops.cast(ops.arange(batch) < data_rows, f32), 1)

        def data_only(x):
            """``x`` (a state or mean per row of the batch) with padding rows zeroed."""
            return x if row_weights is None else x * ops.cast(row_weights, x.dtype)
        # 16-bit data (a mixed policy's compute dtype) are read as they
        # are: their column means are a GEMV and only the monitors' rows
        # are widened, so the step makes no float32 copy of the batch.
        low_data = mixed and keras.backend.standardize_dtype(v0.dtype) == dtype
        v0_low = ops.cast(v0, dtype)
        h0_pre = self._hidden_pre(v0_low, weights)
        h0_mean = hidden.mean(h0_pre)
        sample_last = self.persistent if self.sample_visible is None else self.sample_visible
        # `reconstruction`: the one-step reconstruction of the data, Hinton's
        # cheap monitor.
        if self.persistent:
            # PCD's chains do not start from the reconstruction, so it covers
            # only the rows its monitor reads.
            reconstruction_rows = slice(0, self._reconstruction_monitor_rows)
            rows_shape = (ops.shape(v0[reconstruction_rows])[0], self.units)
            reconstruction = down(hidden.sample(h0_mean[reconstruction_rows], seed, rows_shape))
            # The chains carry their hidden states, drawn at the end of the
            # previous update, so each update's chain starts with a visible
            # draw: one GEMM fewer than re-drawing h from stored visible
            # states, as scikit-learn's BernoulliRBM also does. Either half
            # of a block Gibbs sweep leaves the current model's distribution
            # invariant, so both are PCD (Tieleman 2008). PCD-1 at
            # 500x2000, batch 100, trained 1.15-1.4x faster
            # (benchmarks/RESULTS.md, twenty-fifth session).
            h = ops.cast(self.chains, dtype)
            h_shape, v_shape = tuple(self.chains.shape), (self.num_chains, ops.shape(v0)[1])
        else:
            reconstruction_rows = slice(0, self._reconstruction_monitor_rows)
            h = hidden.sample(h0_mean, seed, h_shape)
            reconstruction = down(h)  # also the chain's first visible means
        for step in range(self.k):
            last = step == self.k - 1
            v_mean = reconstruction if step == 0 and not self.persistent else down(h)
            v = v_mean if last and not sample_last else visible.sample(v_mean, seed, v_shape)
            h_mean = up(v)
            if not last:
                h = hidden.sample(h_mean, seed, h_shape)
        chain_state = None
        if self.persistent:
            # The chains go on from a visible sample even where the
            # statistics read the visible means (``sample_visible=False``).
            h_next = h_mean if sample_last else up(visible.sample(v_mean, seed, v_shape))
            chain_state = hidden.sample(h_next, seed, h_shape)

        n_pos = ops.cast(ops.shape(v0)[0] if data_rows is None else data_rows, statistics_dtype)
        n_neg = ops.cast(ops.shape(v)[0], statistics_dtype)
        # A padded batch's means over all its rows, padding zeroed, times
        # `pos_scale` (rows / data rows) are the means over its data rows.
        pos_scale = neg_scale = None
        if data_rows is not None:
            pos_scale = ops.cast(batch, f32) / ops.cast(n_pos, f32)
            if not self.persistent:
                # CD's chains start from the data rows: padding rows' chains
                # are padding too.
                n_neg, neg_scale = n_pos, pos_scale
                v, h_mean = data_only(v), data_only(h_mean)

        h0_data = data_only(h0_mean)

        def rescaled(means, scale):
            return means if scale is None else means * scale

        scaled_once = _scales_weight_statistics_once(
            *self._statistics_rows(v0), data_rows=data_rows, mixed=mixed)
        # The statistics <v h^T>_model - <v h^T>_data, scaled by reciprocals
        # (a multiply is cheaper than a division).
        if mixed:
            # Each sum is accumulated in the 16-bit GEMM's float32
            # accumulator (oneDNN's), rounded once to the compute dtype,
            # widened and subtracted (then scaled once where the data and
            # the chains count the same rows); the bias statistics of the
            # states are GEMVs, which read the 16-bit states as they are.
            # Rounding the two sums before their difference adds an
            # unbiased error of ~9% of the statistics' own sampling noise
            # (rms, 784x500 at batch 1000 on MNIST): 0.7% more variance,
            # for no copy of the operands into one GEMM with an inner
            # dimension of 2 * batch. Together with the fused means this
            # made mixed bfloat16 `fit()` 1.06-1.17x faster at 784x500 and
            # 784x2000, batch 1000, in five of six paired A/Bs
            # (benchmarks/RESULTS.md, eighteenth session).
            model_vh = ops.cast(_matmul_transposed(v, h_mean, transpose_a=True), f32)
            data_vh = ops.cast(_matmul_transposed(v0_low, h0_data, transpose_a=True), f32)
            if scaled_once:
                # Mixed bfloat16 CD-1 at 784x500, batch 1000: 1.01x in a
                # paired A/B (benchmarks/RESULTS.md, fifty-fourth session).
                grad_w = (model_vh - data_vh) * (1.0 / n_pos)
            else:
                grad_w = model_vh * (1.0 / n_neg) - data_vh * (1.0 / n_pos)
            v_model_mean = rescaled(_column_means(v), neg_scale)
            h_model_mean = rescaled(_column_means(h_mean), neg_scale)
            h0_batch_mean = rescaled(_column_means(h0_data), pos_scale)
        else:
            # Two GEMMs plus an addition are faster than copying the operands
            # together for one GEMM: 1.03-1.06x for the whole step at
            # 784x500, batch 500 and 1000, in TensorFlow's graph
            # (benchmarks/RESULTS.md, seventeenth session), and 3-5% under
            # XLA at batch 100.
            if scaled_once:
                # CD-1 at 784x500, batch 1000: 1.02-1.025x in two paired
                # A/Bs of whole `fit()` calls (benchmarks/RESULTS.md,
                # fifty-fourth session).
                grad_w = ops.cast(
                    (_matmul_transposed(v, h_mean, transpose_a=True)
                     - _matmul_transposed(v0_low, h0_data, transpose_a=True)) * (1.0 / n_pos),
                    f32,
                )
            else:
                grad_w = ops.cast(
                    _matmul_transposed(v, h_mean * (1.0 / n_neg), transpose_a=True)
                    + _matmul_transposed(v0_low, h0_data * (-1.0 / n_pos), transpose_a=True),
                    f32,
                )
            v_model_mean = rescaled(_mean_in(v, statistics_dtype), neg_scale)
            h_model_mean = rescaled(_mean_in(h_mean, statistics_dtype), neg_scale)
            h0_batch_mean = rescaled(_mean_in(h0_data, statistics_dtype), pos_scale)
        # Units whose energy is linear in the states read only `v0_mean`;
        # TensorFlow's graph then drops the unused float32 copy of 16-bit data.
        v0_32 = ops.cast(v0, f32)
        v0_mean = rescaled(
            _column_means(data_only(v0_low)) if low_data
            else _mean_in(data_only(v0), statistics_dtype),
            pos_scale,
        )
        grad_b = v_model_mean - v0_mean
        grad_c = h_model_mean - h0_batch_mean
        if self.sparsity_target is not None and self.sparsity_cost > 0:
            penalty = self.sparsity_cost * (h0_batch_mean - self.sparsity_target)
            grad_c = grad_c + penalty
            grad_w = grad_w + ops.expand_dims(v0_mean, 1) * ops.expand_dims(penalty, 0)

        # The mean free energy of the batch: the mean visible energy from the
        # column means, and the hidden layer's term from the total inputs and
        # the means at hand. TensorFlow's graph, whose GEMM has not written
        # the total inputs out, takes them from the sigmoids plus one GEMV
        # (`Units.mean_log_partition`). XLA writes every GEMM's result out
        # anyway, and the conditional in that route made it copy the kernel
        # in every step (the step ran 1.09-1.12x faster without it at
        # 784x500, batch 100).
        # Both monitors read the batch's first `MONITOR_ROWS` rows (`rows`;
        # PCD's reconstruction error its first `PCD_MONITOR_ROWS`); the column
        # means they share with the statistics cover the whole batch, which
        # keeps the estimates unbiased.
        rows = slice(0, MONITOR_ROWS)
        v0_rows = ops.cast(v0[rows], f32) if low_data else v0_32[rows]
        visible_bias32 = ops.cast(self.visible_bias, f32)
        hidden_bias32 = ops.cast(self.hidden_bias, f32)
        h0_rows = ops.cast(h0_mean[rows], f32)

        def rows_mean(values, per_row_axis=None, read=rows):
            """The mean of a monitor's values for the rows ``read`` over
            their data rows.

            ``per_row_axis``: an axis of values per row, averaged first.
            """
            if row_weights is None:
                return ops.mean(values)
            if per_row_axis is not None:
                values = ops.mean(values, axis=per_row_axis)
            weights = row_weights[read][:, 0]
            return ops.sum(values * weights) / ops.sum(weights)

        if in_xla or row_weights is not None:
            hidden_term = rows_mean(
                hidden.log_partition_given_mean(ops.cast(h0_pre[rows], f32), hidden_bias32, h0_rows)
            )
        else:
            kernel32 = ops.cast(self.kernel, f32)
            hidden_term = hidden.mean_log_partition(
                h0_rows,
                hidden_bias32,
                lambda: ops.cast(self._hidden_pre(v0_low[rows], weights), f32),
                # sum_j (m W)_j as m . (row sums of W): 31 against 110 us
                # for oneDNN's 1 x 784 x 500 GEMV.
                lambda: ops.sum(v0_mean * ops.sum(kernel32, axis=1)) + ops.sum(hidden_bias32),
            )
        if row_weights is None:
            visible_term = visible.mean_energy(v0_32, visible_bias32, v0_mean)
        else:
            visible_term = ops.sum(visible.energy(v0_32, visible_bias32) * row_weights[:, 0]) / (
                ops.cast(n_pos, f32)
            )
        free_energy = visible_term - hidden_term

        replicas = _replicas_in_sync()
        gradients = [grad_w, grad_b, grad_c]
        if replicas > 1:
            gradients = _replica_shares(gradients, n_pos, replicas, in_xla)
        return {
            "gradients": gradients,
            "chain_state": chain_state,
            "reconstruction_error": rows_mean(
                ops.square(ops.cast(reconstruction[reconstruction_rows], f32)
                           - v0_rows[reconstruction_rows]),
                per_row_axis=-1, read=reconstruction_rows,
            ),
            "free_energy": free_energy,
        }

    # --------------------------------------------------------------- training

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = array_input.take_batch(x)  # `fit` on an aligned array sends row indices
        self._ensure_built(x)
        # Under a mixed policy float32 data stay float32 for the statistics
        # and monitors, and only the GEMMs read them rounded; data already
        # in the compute dtype are used as they are, without a copy.
        dtype = self._statistics_dtype
        if keras.backend.standardize_dtype(x.dtype) == self.compute_dtype:
            dtype = self.compute_dtype
        v0 = self._flatten(x, dtype)  # of known rank, where a retraced step's `x` may not be
        stats = self._training_statistics(v0)
        if self.trainable:  # a frozen RBM (trainable=False) only reports its monitors
            self.optimizer.apply(stats["gradients"], self._parameters())
            if self.persistent:
                self.chains.assign(ops.cast(stats["chain_state"], self.chains.dtype))
        # Each batch counts by the rows its monitors read, as Keras weighs
        # its loss by the batch size: a small last batch counts for less.
        rows = ops.cast(ops.minimum(ops.shape(v0)[0], MONITOR_ROWS), "float32")
        reconstruction_rows = ops.cast(
            ops.minimum(ops.shape(v0)[0], self._reconstruction_monitor_rows), "float32")
        self.reconstruction_tracker.update_state(
            _monitor_value(stats["reconstruction_error"], reconstruction_rows),
            sample_weight=reconstruction_rows)
        self.free_energy_tracker.update_state(
            _monitor_value(stats["free_energy"], rows), sample_weight=rows)
        return {m.name: m.result() for m in self.metrics}

    def _statistics_rows(self, v0):
        """``(rows, width, chains)`` of a batch, for `_scales_weight_statistics_once`.

        A CD step traced for batches of unknown size (a dataset's, or an
        array's whose last batch is smaller) takes the rows of `fit`'s full
        batches: CD's statistics may be scaled either way for any batch,
        and the last one counts little. PCD's chains must match a static
        batch size.
        """
        rows = v0.shape[0]
        if self.persistent:
            return rows, self.num_visible, self.num_chains
        if rows is None:
            rows = getattr(self, "_fit_batch_rows", None)
        return rows, self.num_visible, None

    @property
    def _reconstruction_monitor_rows(self):
        """Rows of each batch the training `reconstruction_error` reads."""
        return PCD_MONITOR_ROWS if self.persistent else MONITOR_ROWS

    def _training_statistics(self, v0):
        """`contrastive_divergence` of a batch, by the route `fit` chose."""
        if not self._xla_chain or self.jit_compile:
            return self.contrastive_divergence(v0)
        if None not in v0.shape:
            return self._contrastive_divergence_in_xla(v0)
        # XLA needs a static number of random draws. A step traced for
        # batches of several sizes (the last batch of an array or a
        # dataset is smaller) pads a smaller batch to `fit`'s batch size.
        import tensorflow as tf

        rows, full = tf.shape(v0)[0], self._xla_chain

        def padded():
            batch = tf.pad(v0, [[0, full - rows], [0, 0]])
            batch = tf.ensure_shape(batch, (full, v0.shape[1]))
            return self._contrastive_divergence_in_xla(batch, data_rows=rows)

        # A larger batch (`train_on_batch` after `fit`) takes the graph
        # route, and so does one under four fifths of the full size: the
        # chain route runs full batches 1.1-1.24x faster than the graph
        # (benchmarks/RESULTS.md), so padding pays only for batches nearly
        # full (e.g. a dataset whose `map` shrinks the batches that
        # `array_input.batch_rows` read from its pipeline would not).
        fits = tf.logical_and(rows <= full, 5 * rows >= 4 * full)
        return tf.cond(fits, padded, lambda: self.contrastive_divergence(v0))

    def _contrastive_divergence_in_xla(self, v0, data_rows=None):
        """`contrastive_divergence` compiled with XLA, its random numbers drawn outside.

        The route ``"xla_chain"`` of `_step_route`. Tracing the XLA function
        records the kind and size of every draw (`units.DrawnNoise`: the
        uniforms of Bernoulli units, the normals of Gaussian ones);
        TensorFlow's Philox kernels then draw them in the traced step, each
        with the seed that the unit's sampler would have taken, so the step
        samples exactly the states of TensorFlow's graph route, and XLA
        fuses the chain's conditionals and draws around its GEMMs.

        Args:
            v0: a batch of visible data of static shape.
            data_rows: as for `contrastive_divergence` (a padded batch).

        Returns:
            `contrastive_divergence`'s dict.
        """
        import tensorflow as tf

        drawn = []
        rows = () if data_rows is None else (data_rows,)  # an argument only if given

        def statistics(v0, halves, normals, *rows):
            drawn.append(units_lib.DrawnNoise(halves, normals))
            return self.contrastive_divergence(v0, seed=drawn[-1], data_rows=(rows or [None])[0])

        compiled = tf.function(statistics, jit_compile=True, autograph=False)
        compiled = compiled.get_concrete_function(
            tf.TensorSpec(v0.shape, v0.dtype),
            tf.TensorSpec([None], "uint16"),
            tf.TensorSpec([None], "float32"),
            *[tf.TensorSpec([], n.dtype) for n in rows],
        )
        halves, normals = units_lib.DrawnNoise.draw(drawn[-1].draws, self.seed_generator)
        return compiled(v0, halves, normals, *rows)

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = array_input.take_batch(x)
        self._ensure_built(x)
        # Data and monitors in float32 under a mixed policy, as in `train_step`.
        v0 = self._flatten(x, self._statistics_dtype)
        weights = self._weights()
        hidden_pre = self._hidden_pre(ops.cast(v0, self.compute_dtype), weights)
        h_sample = self.hidden_units.sample(self.hidden_units.mean(hidden_pre),
                                            self.evaluation_seed_generator)
        reconstruction = self.visible_units.mean(self._visible_pre(h_sample, weights))
        # Weighted by its rows, each batch's mean adds up to the mean over
        # every example, whatever the batch size.
        rows = ops.cast(ops.shape(v0)[0], "float32")
        self.reconstruction_tracker.update_state(
            _monitor_value(ops.mean(ops.square(
                ops.cast(reconstruction, "float32") - ops.cast(v0, "float32"))), rows),
            sample_weight=rows,
        )
        self.free_energy_tracker.update_state(
            _monitor_value(ops.mean(ops.cast(
                self._free_energy(v0, hidden_pre, weights), "float32")), rows),
            sample_weight=rows,
        )
        return {m.name: m.result() for m in self.metrics}

    def compile(self, optimizer=None, **kwargs):
        """Configures the optimizer that applies the CD updates.

        Args:
            optimizer: any Keras optimizer or its name; by default
                ``SGD(learning_rate=0.1, momentum=0.5)``, and with a learning
                rate of 0.01 (`GAUSSIAN_LEARNING_RATE`) where a layer is
                Gaussian: Gaussian units need one or two orders of magnitude
                less (practical guide, section 13.2), and at 0.1 RBMs with
                Gaussian visible or hidden units on MNIST diverged within an
                epoch (`fit` then stops and raises). Where it has a
                ``weight_decay``, the biases are excluded from it (practical
                guide, section 10).
            **kwargs: passed to `keras.Model.compile` (``steps_per_execution``,
                ``jit_compile``, ...). A ``loss``, ``metrics`` or
                ``loss_weights`` is refused: training follows the CD
                statistics and logs the RBM's own monitors, so they would
                have no effect. ``steps_per_execution`` defaults
                to 32 here (Keras' default is 1): a CD step is a few GEMMs,
                so running 32 of them per call of the compiled function
                removes most of the per-batch Python overhead (``fit()`` on
                MNIST at batch 100 ran about 1.4x faster). Batch-level
                callbacks are then called every 32 batches; pass
                ``steps_per_execution=1`` to get every batch. A
                ``steps_per_epoch`` or ``steps`` that it does not divide
                runs with the largest number that does (see `fit`). Under a
                `tf.distribute` strategy with several replicas the default
                is 1, since Keras cannot run several steps per call there.
                ``jit_compile="auto"`` (the default) lets each `fit` call
                choose: on a TensorFlow without an accelerator, a float32
                CD-1 step with small GEMMs (batch x visible x hidden at
                most `XLA_MAX_GEMM_SIZE`, e.g. 784x500 at batch 100) that
                samples no Gaussian units is compiled with XLA, which
                fuses the step's element-wise work (6-10% faster there);
                for float32 CD-k with k >= 2 and PCD between Bernoulli or
                Gaussian layers (GEMMs within
                `XLA_CHAIN_GEMM_SIZES`, e.g. 784x1000 at batch 200; a
                last batch of at least four fifths of the size padded, a
                smaller one run in the graph), XLA compiles the Gibbs
                chain and the statistics while TensorFlow's faster Philox
                kernels draw their random numbers (the same numbers;
                1.03-1.64x faster); other CD-k and PCD steps, other CD-1 steps,
                bfloat16 and inputs of unknown batch size keep TensorFlow's
                graph. A `tf.data` pipeline whose batches have no static
                size (``batch`` without ``drop_remainder``) has the batch
                size its pipeline shows (`array_input.batch_rows`), for the
                chain route only. ``True`` (the whole step in XLA) or
                ``False`` (no XLA) fixes the choice.

        Example:

        >>> rbm.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=2e-4))
        >>> rbm.compile(optimizer="adam", steps_per_execution=1)  # callbacks see every batch
        """
        for given in ("loss", "metrics", "loss_weights", "weighted_metrics"):
            if kwargs.get(given) is not None:
                raise ValueError(
                    f"An RBM trains by its CD statistics and logs its own monitors "
                    f"(reconstruction_error, free_energy); `{given}` would have no "
                    "effect, so do not pass it."
                )
        asked = kwargs.get("steps_per_execution")
        kwargs.setdefault("steps_per_execution", _default_steps_per_execution(self))
        if kwargs["steps_per_execution"] != 1 and _is_multi_replica(self):
            # Also an RBM saved with a number of one device's (32 before
            # the default went unsaved), loaded in a strategy's scope.
            user_warnings.warn(
                f"steps_per_execution={kwargs['steps_per_execution']} fails under a "
                "tf.distribute strategy with several replicas (Keras' multi-step loop: "
                "keras-team/keras#19246); the RBM runs one step per execution."
            )
            kwargs["steps_per_execution"] = 1
        # The CD statistics are the update itself, not the gradient of a
        # scaled loss: loss scaling would only divide them by its scale
        # (32768 at first), and training would silently stall.
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError(
                "An RBM has no loss to scale: a LossScaleOptimizer would divide its CD "
                "updates by the loss scale. Pass its inner optimizer "
                "(`optimizer.inner_optimizer`) instead."
            )
        if kwargs.get("auto_scale_loss"):
            raise ValueError("An RBM has no loss to scale: `auto_scale_loss=True` would "
                             "divide its CD updates by the loss scale; leave it False.")
        kwargs.setdefault("auto_scale_loss", False)
        self._jit_auto = kwargs.get("jit_compile", "auto") == "auto"
        self._xla_chain = 0  # an "auto" `fit` chooses it
        # In the scope of the strategy the RBM was made under, as Keras
        # builds it: an optimizer made outside it could not be built there.
        with self.distribute_strategy.scope():
            if optimizer is None:
                optimizer = self._default_optimizer()
            optimizer = keras.optimizers.get(optimizer)
        if getattr(optimizer, "loss_scale_factor", None) is not None:
            # Keras divides the updates by it as if they were a scaled loss's gradients.
            raise ValueError(
                f"An RBM has no loss to scale: loss_scale_factor="
                f"{optimizer.loss_scale_factor} would divide its CD updates by that "
                "factor. Make the optimizer without it."
            )
        if getattr(optimizer, "weight_decay", None) and not optimizer.built:
            optimizer.exclude_from_weight_decay(var_names=["bias"])
        super().compile(optimizer=optimizer, **kwargs)
        self._compiled_steps_per_execution = self.steps_per_execution
        self._exact_steps_per_execution = self.steps_per_execution
        if self._jit_auto:  # saved as "auto", so a loaded RBM chooses again
            self._compile_config.config["jit_compile"] = "auto"
        # Saved as asked: a default is chosen again where the RBM is loaded
        # (one step per execution under several replicas, else 32), and a
        # number one strategy cannot run is kept for where it can.
        if asked is None:
            self._compile_config.config.pop("steps_per_execution", None)
        else:
            self._compile_config.config["steps_per_execution"] = asked

    def _default_optimizer(self):
        gaussian = "gaussian" in (self.visible_units.name, self.hidden_units.name)
        rate = GAUSSIAN_LEARNING_RATE if gaussian else DEFAULT_LEARNING_RATE
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.5)

    def compile_from_config(self, config):
        """Restores the optimizer of a loaded RBM so that training continues."""
        config = keras.saving.deserialize_keras_object(config)
        # RBMs saved while `compile` still accepted a loss or metrics load.
        for ignored in ("loss", "metrics", "loss_weights", "weighted_metrics"):
            config.pop(ignored, None)
        optimizer = config.get("optimizer")
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = config["optimizer"] = optimizer.inner_optimizer
            user_warnings.warn(
                f"{self.name} was saved with a LossScaleOptimizer, which divided its CD "
                "updates by its loss scale; it loads with the inner optimizer, whose state "
                "(iterations, momentum) is not restored: the weights are the saved ones."
            )
        factor = getattr(optimizer, "loss_scale_factor", None)
        if factor is not None:
            # `compile` refuses it now; the file's weights still load.
            optimizer.loss_scale_factor = None
            user_warnings.warn(
                f"{self.name} was saved with an optimizer whose loss_scale_factor={factor} "
                "divided its CD updates by that factor; it loads without it, so further "
                "training updates at the optimizer's own learning rate."
            )
        self.compile(**config)
        if self.built:  # a frozen RBM's optimizer still holds all its weights' slots
            self._build_optimizer_as_saved(self._parameters())

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        **kwargs,
    ):
        """Trains the RBM by CD-k or PCD; the arguments are `keras.Model.fit`'s.

        Labels (``y``) are accepted and ignored, so labelled datasets can be
        passed as they are (so are the weights in a dataset's ``(x, y, w)``
        elements, with a warning); a ``sample_weight`` or ``class_weight``
        argument is refused, since CD's statistics weigh every example alike. An RBM
        that was not compiled is compiled with the default optimizer. With validation data the logs
        hold ``val_reconstruction_error``, ``val_free_energy`` and
        ``free_energy_gap``: ``val_free_energy`` minus the mean free energy
        of up to 10,000 training examples at the same, final weights of the
        epoch (Hinton's overfitting monitor). The training figures of
        batches larger than `MONITOR_ROWS` (256) are estimates: the
        reconstruction error and the hidden layer's term of the free energy
        come from their first 256 rows (PCD's reconstruction error from the
        first 32 rows of batches larger than that, `PCD_MONITOR_ROWS`), the
        visible term from every row; where the rows are shuffled, the first
        rows are a random sample and the estimates unbiased. Validation
        reads every row.

        A `tf.data.Dataset` is iterated with tf.data's autotuning off,
        unless its options set it (`array_input.without_autotuning`: the
        autotuning thread may stall the end of every epoch).

        NumPy input (with the TensorFlow backend) is read batch by batch from
        the caller's array by `array_input.array_dataset` instead of Keras'
        array pipeline, which copies it: training holds no second copy of
        the data, and the input pipeline stays on one thread (faster on
        machines with few cores). Arrays with 64-byte-aligned data (every
        array from `datasets.load_numpy`, or `array_input.as_aligned`) are
        read fastest: each batch is one ``tf.gather`` from a zero-copy
        view, done inside TensorFlow's graph step itself (the pipeline then
        sends only row indices, `array_input.indexed_batches`).
        ``shuffle``, ``validation_split`` and ``steps_per_epoch`` keep their
        Keras meaning, and an epoch makes exactly ``steps_per_epoch``
        updates, running on into the next (reshuffled) pass over the rows
        where one pass holds fewer batches. Where it or ``validation_steps``
        is not a multiple of
        ``steps_per_execution``, the RBM runs the largest number of steps
        per execution that divides them (Keras alone rounds each epoch up to
        whole executions), which retraces the step once.

        Under a mixed policy (``dtype="mixed_bfloat16"``) the GEMMs read the
        data rounded to bfloat16. Float32 data stay unrounded for the data's
        column means and the monitors; data already in bfloat16 (e.g.
        ``as_aligned(x, dtype="bfloat16")``, exact for binary data) are read
        as they are, with half the memory and no float32 copy of each batch.
        On a CPU without bfloat16 instructions such a policy trains more
        slowly than float32, and ``fit`` warns once
        (`hardware.warn_if_emulated`).

        An eager tensor (``x`` or validation data) is read as the NumPy
        array it holds, with the same checks and input pipeline.

        Keras' `BackupAndRestore` resumes an interrupted call at its last
        finished epoch with the weights, optimizer state and random stream
        it backed up; the resumed epochs of a shuffled array take new
        orders, so a seeded run resumed that way ends with other weights
        than an uninterrupted one, as do those of a dataset that reshuffles
        each pass. Unshuffled arrays and datasets that do not reshuffle give
        the same, except with a ``steps_per_epoch`` whose epochs end inside
        a pass over the data (the resumed call starts a new pass, where the
        uninterrupted one would have gone on in the middle of one) and with
        an integer ``save_freq`` (Keras then restarts the epoch of the
        backup from its first batch, so the batches before the backup train
        twice). A call that diverged (`FloatingPointError`) leaves its
        backup for the retry, which resumes at the epoch that diverged at
        the learning rate the optimizer has when `fit` is called, not the
        backup's.

        Raises:
            ValueError: for NumPy data (or a tensor) that is not finite, or
                outside [0, 1] for Bernoulli visible units, and for a ``steps_per_epoch``
                that is not a positive integer.
            tf.errors.InvalidArgumentError: for a batch of a
                `tf.data.Dataset` (``x`` or validation data) whose values
                `_check_data` would refuse in a NumPy array, at that batch
                (`_checked_dataset`, which reads each batch's first 256
                rows: bad values beyond them may show as a divergence).
            ValueError: for an `EarlyStopping`, `ReduceLROnPlateau` or
                best-only `ModelCheckpoint` monitoring a figure this call
                does not log (`monitor_modes.check_monitors`).
            ValueError: for a ``class_weight``, which needs labels;
                for a `tf.data.Dataset` that never ends without
                ``steps_per_epoch`` (or endless validation data without
                ``validation_steps``): the epoch would never end.
            NotImplementedError: with a backend other than TensorFlow
                (`_require_tensorflow_trainer`).
            FloatingPointError: when an epoch's updates made a weight or the
                reconstruction error NaN or infinite (too large a learning
                rate): training stops after that epoch, the RBM gets back the
                weights and optimizer state it had when the epoch began, and
                the error is raised once the callbacks but `BackupAndRestore`
                have seen training end, no later callback having seen the
                epoch end (``rbm.history`` holds the logs; a backup keeps
                the finished epochs).

        Example:

        >>> history = rbm.fit(x_train, epochs=10, batch_size=100, validation_data=x_val)
        >>> history.history["free_energy_gap"][-1]
        """
        calls_before, updates_before = getattr(self, "_array_fit_calls", 0), self._update_count()
        try:
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split,
                             validation_data, **kwargs)
        except BaseException:
            # A call refused before any update (a bad argument, bad
            # validation data) leaves a seeded RBM shuffling as it would have.
            if not self._updated_since(updates_before):
                self._array_fit_calls = calls_before
            raise

    def _update_count(self):
        """``(optimizer, its update count)``, for `_updated_since`."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None or not optimizer.built:
            return optimizer, 0
        return optimizer, int(optimizer.iterations.numpy())

    def _updated_since(self, count):
        """Whether the RBM made an update since `_update_count` gave ``count``
        (a new optimizer, compiled since, counts from 0)."""
        optimizer, updates = self._update_count()
        return updates != (count[1] if optimizer is count[0] else 0)

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
             validation_data, **kwargs):
        """`fit`'s work."""
        callbacks = callback_list(callbacks)
        _require_tensorflow_trainer("fit")
        _refuse_weights("fit", kwargs.get("sample_weight"), kwargs.get("class_weight"))
        if isinstance(x, dict):
            raise TypeError("An RBM reads one input: pass the visible data as an array or "
                            "a dataset, not a dict.")
        x, validation_data = _host_array(x), _host_validation_data(validation_data)
        # Checked before training: the validation's `evaluate` would refuse
        # it only when the first epoch ends.
        _checked_steps(kwargs.get("validation_steps"), "validation_steps")
        data_note = ""  # for a divergence: how much of the data was checked
        if getattr(self, "_input_from_below", False):  # `DBN.pretrain`'s activations
            pass
        elif _is_dataset(x):
            data_note = (f" A dataset's batches are checked for NaN, infinite or out-of-range "
                         f"values in their first {MONITOR_ROWS} rows only: if a lower rate "
                         "does not help, check the data.")
        elif not isinstance(x, (np.ndarray, list, tuple)) and x is not None:
            data_note = (" Data from a generator or PyDataset are not checked for NaN, "
                         "infinite or out-of-range values: if a lower rate does not help, "
                         "check the data.")
        array_input.check_ends(dict(kwargs, validation_data=validation_data), x, "RBM.fit")
        hardware.warn_if_emulated(self.dtype_policy)
        _warn_of_layer_histograms(callbacks)
        if not self.trainable:
            user_warnings.warn(
                "The RBM is frozen (trainable=False): fit() reports its monitors but "
                "changes no weights."
            )
        if isinstance(x, np.ndarray):
            self._check_data(x)
            # Built before Keras' loop, so that callbacks' `on_train_begin`
            # sees the weights; in the strategy's scope, as Keras builds.
            with self.distribute_strategy.scope():
                self._ensure_built(x)
            if epochs > kwargs.get("initial_epoch", 0):
                self._warn_of_unscaled_data(x)
            keras_batch_size = _array_batch_size(
                len(x), kwargs.get("steps_per_epoch"), validation_split, validation_data
            )
            if batch_size is not None:
                batch_size = array_input.checked_batch_size(batch_size)
            batch_size = keras_batch_size if batch_size is None else batch_size
        elif _is_dataset(x):
            _warn_of_short_epochs(x, kwargs.get("steps_per_epoch"))
            if isinstance(x.element_spec, tuple) and len(x.element_spec) == 3:
                user_warnings.warn(
                    "The dataset's elements hold sample weights (x, y, w), which RBM.fit "
                    "ignores: CD's statistics weigh every example alike. Repeat or drop "
                    "examples to weigh them."
                )
            shape = getattr(_dataset_input_spec(x), "shape", None)
            if not self.built and shape is not None and shape.rank and None not in shape[1:]:
                # Built from the dataset's shape, as for arrays: a callback's
                # `on_train_begin` (e.g. BackupAndRestore's) needs the weights.
                with self.distribute_strategy.scope():
                    self.build(tuple(shape))
        if _is_dataset(validation_data):
            _dataset_input_spec(validation_data)
        if not self.compiled:
            self.compile()
        callbacks = with_step_progbar(callbacks, verbose)
        resolve_monitor_modes(callbacks, self.metrics)
        logged = [metric.name for metric in self.metrics]
        training_rows = None
        if validation_data is not None or validation_split:
            logged += [f"val_{name}" for name in logged]
            if epochs > kwargs.get("initial_epoch", 0):
                training_rows = _gap_rows(x, validation_split, validation_data)
            if training_rows is not None:
                logged.append("free_energy_gap")
                for index in reversed(range(len(callbacks))):
                    if isinstance(callbacks[index], keras.callbacks.CSVLogger):
                        callbacks.insert(index, _GapColumn(callbacks[index]))
                callbacks.insert(0, _FreeEnergyGap(training_rows))
        check_monitors(callbacks, logged, "an RBM")
        check_checkpoint_formats(callbacks, self)
        # First, so that later callbacks (checkpoints, early stopping) see
        # the restored weights of a diverged epoch.
        guard = _DivergenceGuard()
        callbacks.insert(0, guard)
        for index in reversed(range(len(callbacks))):
            if isinstance(callbacks[index], keras.callbacks.BackupAndRestore):
                callbacks.insert(index + 1, _RetryRate(callbacks[index], self.optimizer))
        if array_input.is_stream(x):
            kwargs.setdefault("shuffle", False)  # Keras warns that it cannot shuffle one
        self._prepare_jit_compile(x, batch_size, validation_split, validation_data)
        self._run_exact_steps(kwargs.get("steps_per_epoch"), kwargs.get("validation_steps"))
        if getattr(self, "_traced_trainable", self.trainable) != self.trainable:
            self.train_function = None  # `train_step` reads `trainable` while tracing
        self._traced_trainable = self.trainable
        # NumPy data were checked whole; a dataset's batches are checked as they come.
        if _is_dataset(x):
            x = self._checked_dataset(x)
            if isinstance(training_rows, _RowTap):
                x = training_rows.wrap(x)
        if _is_dataset(validation_data):
            validation_data = self._checked_dataset(validation_data)
        if isinstance(x, np.ndarray) and array_input.fit_can_stream(kwargs):
            x, validation_data = self._array_inputs(
                x, batch_size, validation_split, validation_data, kwargs,
                trains=epochs > kwargs.get("initial_epoch", 0),
            )
            y, batch_size, validation_split = None, None, 0.0
        if _is_dataset(x):
            # tf.data's autotuning thread may stall the end of every epoch
            # (array_input.untuned_options); a pipeline that sets it keeps it.
            x = array_input.without_autotuning(x)
        if _is_dataset(validation_data):
            validation_data = array_input.without_autotuning(validation_data)
        if _is_dataset(x) and not kwargs.get("steps_per_epoch"):
            # Keras then makes one iterator per epoch instead of two (one at
            # each epoch's start, one at its end that is never read), for the
            # same epochs. tf.data instantiates the pipeline's functions for
            # each iterator: ~8-10 ms for `array_dataset`'s.
            batches = int(x.cardinality())
            if batches > 0:
                kwargs["steps_per_epoch"] = batches
        # A `fit` from a callback of another leaves the outer call's flag set.
        fitting_before = getattr(self, "_fitting", False)
        self._fitting = True  # see `_run_exact_steps`
        history_before = getattr(self, "history", None)
        try:
            history = super().fit(
                x=x,
                y=y,
                batch_size=batch_size,
                epochs=epochs,
                verbose=verbose,
                callbacks=callbacks,
                validation_split=validation_split,
                validation_data=validation_data,
                **kwargs,
            )
        except _Diverged:
            history = guard.end_training(self, callbacks, history_before)
        finally:
            self._fitting = fitting_before
        guard.raise_if_diverged(self.optimizer, data_note)
        return history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, **kwargs):
        """`keras.Model.evaluate`: the mean reconstruction error and free energy.

        Args:
            x, y, batch_size, verbose, sample_weight, steps, callbacks,
                **kwargs: as for `keras.Model.evaluate`; labels are
                accepted and ignored, a ``sample_weight`` is refused (as by
                `fit`). ``steps`` batches are read
                exactly, as in `fit`; with ``verbose`` the progress bar
                counts no further than them (Keras' own overshoots with
                ``steps_per_execution`` > 1). An RBM that was not compiled
                is compiled with the default optimizer, as by `fit`.

        Returns:
            ``[reconstruction_error, free_energy]``, or a dict of them with
            ``return_dict=True``.

        Raises:
            ValueError: for an array that holds no examples, or whose
                width is not the RBM's number of visible units, and for a
                dataset that never ends without ``steps``.
            NotImplementedError: with a backend other than TensorFlow, as
                in `fit`.

        Example:

        >>> rbm.evaluate(x_test, verbose=0, return_dict=True)["reconstruction_error"]
        """
        _require_tensorflow_trainer("evaluate")
        _refuse_weights("evaluate", sample_weight)
        steps = _checked_steps(steps)
        _refuse_endless(x, steps, "evaluate")
        if not self.compiled:
            self.compile()
        self._run_exact_steps(steps)
        x, batch_size, converted = self._evaluation_input(x, batch_size)
        x = self._first_steps(x, steps)
        if converted:
            y = sample_weight = None  # ignored by an RBM; Keras rejects them beside a dataset
        _restart(self.evaluation_seed_generator, self._evaluation_seed)
        return super().evaluate(x, y, batch_size=batch_size, verbose=verbose,
                                sample_weight=sample_weight, steps=steps,
                                callbacks=with_step_progbar(callbacks, verbose), **kwargs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """`keras.Model.train_on_batch`: one CD update on the batch ``x``.

        Compiles the RBM with its defaults first if it is not compiled, as
        `fit` does.

        Raises:
            ValueError: for a NumPy batch or tensor that `fit` refuses (not
                finite, outside [0, 1] for Bernoulli units, of the wrong width).

        Example:

        >>> rbm.train_on_batch(x_train[:100], return_dict=True)
        >>> rbm.train_on_batch(x_train[:100])  # [reconstruction_error, free_energy]
        """
        _refuse_weights("train_on_batch", sample_weight, class_weight)
        x = _host_array(x)
        if isinstance(x, np.ndarray):
            self._check_data(x)
        if not self.compiled:
            self.compile()
        return super().train_on_batch(x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """`keras.Model.test_on_batch`: the monitors of the batch ``x``.

        Compiles the RBM with its defaults first if it is not compiled, as
        `evaluate` does.

        Raises:
            ValueError: for a NumPy batch or tensor that `evaluate` refuses.

        Example:

        >>> rbm.test_on_batch(x_test[:100], return_dict=True)["reconstruction_error"]
        """
        _refuse_weights("test_on_batch", sample_weight)
        x = _host_array(x)
        if isinstance(x, np.ndarray):
            self._check_data(x)
        if not self.compiled:
            self.compile()
        return super().test_on_batch(x, y, sample_weight, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """`keras.Model.predict`: the hidden means ``p(h = 1 | v)`` of ``x``.

        Args:
            x, batch_size, verbose, steps, callbacks: as for
                `keras.Model.predict`; ``steps`` batches are read exactly,
                as in `fit`.

        Returns:
            A NumPy array of shape ``(examples, units)``, float32 under a
            mixed policy too (float64 under a float64 one). For array
            input (with TensorFlow, outside a `tf.distribute` strategy)
            each execution's predictions are written into it as they
            come (`_predict_array`): Keras' own loop held them all in a
            list, then their concatenation, then a NumPy copy of it.

        Raises:
            ValueError: for an array that holds no examples, or whose
                width is not the RBM's number of visible units, and for a
                dataset that never ends without ``steps``.

        Example:

        >>> features = rbm.predict(x_train, batch_size=1000, verbose=0)
        """
        steps = _checked_steps(steps)
        _refuse_endless(x, steps, "predict")
        self._run_exact_steps(steps)
        x = _host_array(x)
        # Keras' predict loop holds an execution's batches in a list (32 of
        # them by default here): with large batches, that was up to the
        # whole array. Row indices into a view of it hold nothing.
        data, rows, converted = self._evaluation_input(x, batch_size, indexed=True)
        data = self._first_steps(data, steps)
        callbacks = with_step_progbar(callbacks, verbose)
        with self._few_steps_per_prediction(data, steps):
            if converted and not _under_strategy(self):
                per_batch = 32 if batch_size is None else array_input.checked_batch_size(batch_size)
                examples = len(x) if steps is None else min(len(x), steps * per_batch)
                return self._predict_array(data, examples, verbose, steps, callbacks)
            return super().predict(data, batch_size=rows, verbose=verbose, steps=steps,
                                   callbacks=callbacks)

    def _predict_array(self, data, examples, verbose, steps, callbacks):
        """Keras' predict loop over ``data`` (an array's batches, at most
        ``steps`` of them), writing each execution's predictions into one
        array of ``examples`` rows allocated for them.

        Keras' loop keeps every execution's output in a list, concatenates
        them (a second copy) and converts that to NumPy (a third, which
        peaked at ~3x the result: 1.2 GB more than the result for 100,000
        rows of 1,000 units). Callbacks and the progress bar see the same
        calls as in Keras' loop, their steps counted exactly.
        """
        import tensorflow as tf

        batches = int(data.cardinality())
        if steps is not None:
            batches = min(batches, steps)
        if not isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks = keras.callbacks.CallbackList(
                callbacks, add_progbar=verbose != 0, verbose=verbose, epochs=1,
                steps=batches, model=self)
        self.make_predict_function()
        self.stop_predicting = False
        callbacks.on_predict_begin()
        result, filled, step = None, 0, 0
        iterator = iter(data)
        while step < batches:
            execution = []
            for _ in range(min(self.steps_per_execution, batches - step)):
                try:
                    execution.append(next(iterator))
                except (StopIteration, tf.errors.OutOfRangeError):
                    break
            if not execution:
                break
            callbacks.on_predict_batch_begin(step)
            outputs = self.predict_function(execution)
            values = keras.ops.convert_to_numpy(outputs)
            if result is None:
                result = np.empty((examples,) + values.shape[1:], values.dtype)
            result[filled:filled + len(values)] = values
            filled += len(values)
            step += len(execution)
            callbacks.on_predict_batch_end(step - 1, {"outputs": outputs})
            del outputs, values
            if self.stop_predicting:  # set by a callback, read where Keras reads it
                break
        callbacks.on_predict_end()
        if result is None:  # no batch at all
            dtype = "float64" if self.compute_dtype == "float64" else "float32"
            return np.zeros((0, self.units), dtype)
        return result if filled == examples else result[:filled].copy()

    @contextlib.contextmanager
    def _few_steps_per_prediction(self, data, steps):
        """Runs `predict` with no more steps per execution than hold about
        `PREDICT_EXECUTION_BYTES` of input batches, then restores the
        number (`fit` and `evaluate` read their batches one at a time, in
        the compiled loop, and keep theirs).

        Keras' predict loop takes an execution's batches into a list first:
        with the default 32 steps and batches of data (an array that
        `array_input.indexed_batches` cannot view, or a dataset of large
        batches), one execution held up to 32 of them. Only the number of
        steps that Keras' loop reads changes: Keras' predict function for
        several steps (built here first where it was not yet) takes
        executions of any length, also of one step.
        """
        footprint = array_input.batch_footprint(data) if _is_dataset(data) else None
        compiled = self.steps_per_execution
        fewer = compiled
        if footprint is not None:
            batches = int(data.cardinality())
            fewer = _predict_steps_per_execution(
                compiled, footprint[1], steps, batches if batches >= 0 else None)
        if fewer >= compiled:
            yield
            return
        self.make_predict_function()
        self.steps_per_execution = fewer
        try:
            yield
        finally:
            self.steps_per_execution = compiled

    def predict_step(self, data):
        """`keras.Model.predict_step`; also for `array_input.indexed_batches`' row indices."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        # float32 under a mixed policy too: bfloat16 NumPy arrays are not
        # numbers to most NumPy-side tools (scikit-learn, np.savez).
        return _as_float32(self(array_input.take_batch(x)))

    def _evaluation_input(self, x, batch_size, indexed=False):
        """NumPy ``x`` of `evaluate` or `predict` as an unshuffled `array_dataset`,
        and a `tf.data.Dataset` without autotuning unless it sets it. With
        ``indexed``, an array that can be viewed becomes unshuffled
        `array_input.indexed_batches` instead (the step gathers its rows).

        Returns ``(x, batch_size, converted)``; see
        `array_input.evaluation_input` for why (a stall at the end of each
        call of an autotuned pipeline, such as Keras' own for arrays).
        """
        x = _host_array(x)
        if isinstance(x, np.ndarray) and not len(x):
            # Keras' own `evaluate` would return [] and `predict` fail
            # with an UnboundLocalError.
            raise ValueError("The data holds no examples.")
        if keras.backend.backend() != "tensorflow":
            return x, batch_size, False
        if isinstance(x, np.ndarray):
            self._check_data(x)
            # A strategy would split the view of `indexed_batches` too.
            if indexed and not _under_strategy(self):
                rows = array_input.indexed_batches(
                    x, 32 if batch_size is None else batch_size, shuffle=False)
                if rows is not None:
                    return rows, None, True
        elif _is_dataset(x):
            _dataset_input_spec(x)
            x = self._checked_dataset(x)
        data, _, batch_size = array_input.evaluation_input(x, None, batch_size)
        return data, batch_size, data is not x and isinstance(x, np.ndarray)

    def _prepare_jit_compile(self, x, batch_size, validation_split=0.0, validation_data=None):
        """Chooses ``jit_compile`` for this `fit` call and readies XLA.

        With ``jit_compile="auto"`` (see `compile`) the choice follows
        `_step_route`. The rows of the call's full batches are kept for
        steps traced for batches of unknown size (`_statistics_rows`). An
        XLA-compiled step cannot create variables, so for XLA the RBM
        (weights, persistent chains) and its optimizer (slot variables) are
        built here, before the first step. The optimizer of a built RBM is
        built here on every route.
        """
        shape = _batch_shape(x, batch_size)
        route, rows = _input_route(self, x, batch_size, validation_split, validation_data)
        previous = getattr(self, "_fit_batch_rows", None)
        # `indexed_batches` passed directly have no batch in their elements.
        self._fit_batch_rows = rows if rows or not _is_dataset(x) else array_input.batch_rows(x)
        # A mixed CD step scales once whatever its rows.
        float_cd = self.built and not self.persistent and self.compute_dtype == self._statistics_dtype
        if float_cd and (_scales_weight_statistics_once(self._fit_batch_rows, self.num_visible)
                         != _scales_weight_statistics_once(previous, self.num_visible)):
            # A step traced for batches of unknown size read the previous
            # call's rows (`_statistics_rows`).
            self.train_function = None
        if getattr(self, "_jit_auto", False):
            jit = route == "xla"
            chain = rows if route == "xla_chain" else 0
            if jit != self.jit_compile or chain != self._xla_chain:
                self.jit_compile, self._xla_chain = jit, chain
                # Keras keeps the traced functions: trace them again.
                self.train_function = self.test_function = self.predict_function = None
        # In the strategy's scope, as Keras builds: an RBM compiled in a
        # `tf.distribute` scope may be fit outside it.
        with self.distribute_strategy.scope():
            if self.jit_compile and shape is not None and not self.built:
                self.build((None,) + tuple(shape[1:]))
            if self.built and not self.optimizer.built:
                # Keras would build it for the trainable variables: none for
                # a frozen RBM, which could then never be trained again.
                self.optimizer.build(self._parameters())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras' build before a loop, without reading the data when nothing needs it.

        For a model made in a `tf.distribute` scope, Keras' TensorFlow
        trainer reads one batch from a new iteration of the data to build
        what is unbuilt, even when everything is built. That iteration
        moves a dataset's per-iteration randomness (a reshuffling
        ``shuffle``: training would see other epochs than without a
        strategy) and, prefetching, reads several batches that `_RowTap`
        would take for training's. A built RBM (`fit` builds it from an
        array's or a dataset's shape) has no compiled loss or metrics to
        build, so the batch is read only where the RBM is unbuilt.
        """
        if iterator is not None and self.built:
            iterator = None  # `_symbolic_build` then builds only the optimizer
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _run_exact_steps(self, *step_counts):
        """Sets ``steps_per_execution`` so that each loop runs the steps asked for.

        See `_steps_per_execution_for`. The traced functions are dropped
        when the number changes (Keras reads it while tracing), also when
        the caller set a new one on the model since the last call, which is
        then taken as the compiled one.
        """
        compiled = getattr(self, "_compiled_steps_per_execution", None)
        # Inside `fit` (its validation, or a callback's `predict`) the
        # training loop's function must stay as `fit` set it up.
        if compiled is None or getattr(self, "_fitting", False):
            return
        current = self._exact_steps_per_execution  # set with the compiled number
        if self.steps_per_execution != current:
            compiled = self._compiled_steps_per_execution = self.steps_per_execution
        exact = _steps_per_execution_for(compiled, step_counts)
        self._exact_steps_per_execution = exact
        if exact != current:
            self.steps_per_execution = exact
            self.train_function = self.test_function = self.predict_function = None

    def _first_steps(self, data, steps):
        """The first ``steps`` batches of a dataset read inside `fit` (by a
        callback), where `_run_exact_steps` leaves `fit`'s number of steps
        per execution, which Keras' loops would read instead."""
        if steps is None or not getattr(self, "_fitting", False) or not _is_dataset(data):
            return data
        return data.take(steps)

    def _array_inputs(self, x, batch_size, validation_split, validation_data, kwargs,
                      trains=True):
        """``fit()``'s NumPy input as lean `array_input` datasets.

        Splits off ``validation_split`` the way Keras does (the last rows,
        before shuffling) and updates ``kwargs`` in place: ``shuffle`` moves
        into the dataset, ``sample_weight`` (ignored by an RBM) and
        ``validation_batch_size`` are consumed. ``trains``: whether the call
        runs any epoch (only such calls count for the shuffling's seed).
        """
        batch_size = 32 if batch_size is None else batch_size
        shuffle = bool(kwargs.get("shuffle", True))
        kwargs["shuffle"] = False  # the dataset shuffles; Keras would warn
        kwargs.pop("sample_weight", None)
        val_batch_size = kwargs.pop("validation_batch_size", None) or batch_size
        if validation_split and validation_data is None:
            x, validation_data = split_validation(x, validation_split)
        # A seeded RBM shuffles reproducibly, yet differently on each call
        # that trains: one of no epochs (a DBN layer already done) leaves
        # the next call's order as it would have been.
        self._array_fit_calls = getattr(self, "_array_fit_calls", 0) + bool(trains)
        seed = None
        if self.seed is not None:
            seed = (self.seed * 1_000_003 + self._array_fit_calls) % (2**31 - 1)
        # Aligned arrays: TensorFlow's graph step gathers its batch from a
        # zero-copy view (XLA's gather was slower than the pipeline's). Not
        # under a `tf.distribute` strategy, which would split the view too.
        train = None
        if not self.jit_compile and not _under_strategy(self):
            if getattr(self, "_row_orders", None) is None:
                self._row_orders = array_input.ReusedRowOrders()
            # Not the pipeline of a `fit` still running (this one called
            # from its callback): restarting it would change its orders.
            train = self._row_orders.indexed_batches(
                x, batch_size=batch_size, shuffle=shuffle, seed=seed,
                reuse=not getattr(self, "_fitting", False),
            )
        if train is None:
            train = array_input.array_dataset(
                x, batch_size=batch_size, shuffle=shuffle, seed=seed
            )
        if kwargs.get("steps_per_epoch"):
            # Every epoch makes exactly `steps_per_epoch` updates, running on
            # into the next pass over the rows (each pass shuffled anew)
            # where one pass holds fewer batches; Keras would cut such an
            # epoch short at the end of a pass.
            train = train.repeat()
        else:
            train = self._one_iterator_per_call(train, kwargs, "steps_per_epoch")
        if isinstance(validation_data, (tuple, list)):
            validation_data = validation_data[0]
        if isinstance(validation_data, np.ndarray):
            self._check_data(validation_data, "The validation data")
            validation_data = array_input.array_dataset(
                validation_data, batch_size=val_batch_size, shuffle=False
            )
            if not kwargs.get("validation_steps"):
                validation_data = self._one_iterator_per_call(
                    validation_data, kwargs, "validation_steps")
        return train, validation_data

    def _one_iterator_per_call(self, dataset, kwargs, steps_key):
        """``dataset`` (one pass over an array) repeated, with ``kwargs[steps_key]``
        set to its batches per pass, where whole executions of the compiled
        ``steps_per_execution`` end each pass.

        Of a dataset of known length Keras makes a new iterator when each
        epoch (or validation) begins and one more when it ends, which the
        next epoch reads or nobody does (~3 ms each for
        `array_input.indexed_batches`' pipeline, on 2 cores, mostly the
        instantiation of its functions). An endless dataset with a number
        of steps is iterated once per call of `fit` (once per validation,
        which Keras restarts). Each pass of the repetition starts its
        pipeline anew as a new iterator would: the epochs read the same
        batches in the same orders. Measured: 5-epoch calls over 3,000
        MNIST images at batch size 1,000 took 135 ms instead of 178 ms.
        """
        batches = int(dataset.cardinality())
        if batches <= 0 or batches % self.steps_per_execution:
            return dataset  # an execution would read on into the next pass
        kwargs[steps_key] = batches
        return dataset.repeat()

    def _checked_dataset(self, dataset):
        """``dataset``, each batch's first `MONITOR_ROWS` rows checked as
        `_check_data` checks a NumPy array whole (a batch of 0-255 pixels, as
        TFDS gives images, shows in any row).

        The checks run in the input pipeline, one batch ahead of the
        training step and whether or not XLA compiles it, and fail with a
        `tf.errors.InvalidArgumentError` naming the problem.
        """
        import tensorflow as tf

        bernoulli = self.visible_units.name == "bernoulli"

        def checked(x):
            if isinstance(x, dict):  # `array_input.indexed_batches`' row indices
                return x
            rows = tf.cast(x[:MONITOR_ROWS], "float32")
            # Messages of strings alone: TensorFlow then adds no conditional
            # around the Assert, which made every batch ~2 ms slower.
            checks = [tf.debugging.Assert(tf.math.is_finite(tf.reduce_sum(rows)),
                                          ["RBM data contains NaN or infinite values."])]
            if bernoulli:
                checks.append(tf.debugging.Assert(
                    (tf.reduce_min(rows) >= 0.0) & (tf.reduce_max(rows) <= 1.0),
                    ["Bernoulli visible units need data in [0, 1], but a batch holds values "
                     "outside it; scale the data (e.g. x / 255) or use visible='gaussian' "
                     "for standardised real-valued data."]))
            with tf.control_dependencies(checks):
                return tf.identity(x)

        def check_element(*element):
            if len(element) == 1:
                return checked(element[0])
            return (checked(element[0]),) + element[1:]  # (x, y) or (x, y, weights)

        # One batch checked ahead, beside the step: checked on demand, a
        # streamed MNIST pipeline trained ~4% slower at batch 1000 (2 cores),
        # and 0.97-1.0x as fast as without the check this way.
        return dataset.map(check_element).prefetch(1)

    def _check_data(self, x, name=None):
        """Refuses data the RBM cannot read; ``name`` (e.g. "The validation
        data") says which, where it is not the data the call reads."""
        try:
            if not array_input.is_numeric(x.dtype):
                raise ValueError(f"RBM data must be numeric, got dtype {x.dtype}.")
            array_input.check_rank(x.shape)
            width = math.prod(x.shape[1:])
            if self.built and width != self.num_visible:
                raise self._width_error(width)
        except ValueError as error:
            if name is None:
                raise
            raise ValueError(f"{name}: {error}") from None
        if not x.size:
            return
        low, high = array_input.value_range(x)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{name or 'RBM data'} contains NaN or infinite values.")
        if self.visible_units.name == "bernoulli" and (low < 0 or high > 1):
            raise ValueError(
                ("" if name is None else f"{name}: ")
                + "Bernoulli visible units need data in [0, 1] (got values in "
                f"[{low}, {high}]); scale the data (e.g. x / 255) or use "
                "visible='gaussian' for standardised real-valued data."
            )

    def _warn_of_unscaled_data(self, x):
        """Warns where Gaussian visible units will train on data far from
        unit variance, or (a frozen RBM aside) whose mean lies far from
        their biases.

        The units model unit-variance data around their biases (practical
        guide 13.2), which start at zero: data shifted by 10 made every
        hidden unit saturate from the first updates, and `fit` ended with
        the independent Gaussian of the data's mean (the review's 8-feature
        test: -11.36 nats per example, against -11.12 for the centred
        data). `initialize_visible_bias` (which `DBN.pretrain` calls) moves
        the biases to the data's mean. Only data to train on are judged: a
        few rows of standardised data can spread much wider (a rarely lit
        pixel).
        """
        if self.visible_units.name != "gaussian" or not x.size:
            return
        # A sample of rows from the whole array (sorted data's first rows
        # may differ from the rest) is enough to see scale and offset.
        rows = x[::-(-len(x) // _SCALE_CHECK_ROWS)]
        rows = rows.reshape(len(rows), -1)
        spread = float(np.max(np.std(rows, axis=0, dtype="float64")))
        if spread > _GAUSSIAN_MAX_STD:
            user_warnings.warn(
                "Gaussian visible units model data of unit variance (practical "
                f"guide 13.2), but a feature of these data has standard deviation "
                f"{spread:.3g}: an RBM fits such data poorly. Standardise each "
                "feature first, e.g. (x - x.mean(0)) / (x.std(0) + 1e-8) (constant features "
                "become 0)."
            )
            return
        if not self.trainable:
            return
        offset = np.abs(rows.mean(axis=0, dtype="float64")
                        - np.asarray(self.visible_bias, dtype="float64"))
        if offset.max() > _GAUSSIAN_MAX_STD:
            user_warnings.warn(
                "Gaussian visible units model data of unit variance around their "
                f"biases, but a feature's mean lies {offset.max():.3g} from its bias: "
                "the hidden units would saturate and learn nothing. Centre each feature "
                "(x - x.mean(0)) or call rbm.initialize_visible_bias(x) before fit."
            )

    # -------------------------------------------------------------- sampling

    def initialize_visible_bias(self, x):
        """Sets the visible biases from the data's mean (practical guide 8.1).

        For Bernoulli units ``b_i = log(p_i / (1 - p_i))`` with ``p_i`` the
        fraction of examples where unit ``i`` is on; for Gaussian units the
        mean itself. Call before training.

        Args:
            x: NumPy array or `tf.data.Dataset` of visible vectors (batched
                datasets of ``x`` or ``(x, y)`` are accepted).

        Returns:
            The RBM itself.

        Raises:
            ValueError: for arrays or tensors that `fit` refuses (not
                finite, outside [0, 1] for Bernoulli units, of the wrong
                width or without rows), and for a dataset of the wrong
                width.
            tf.errors.InvalidArgumentError: for a dataset batch that `fit`
                refuses, as `fit` does.

        Example:

        >>> rbm = keras_dbn.RBM(64, seed=0).initialize_visible_bias(x_train)
        >>> rbm.fit(x_train, epochs=10, batch_size=100)
        """
        x = _host_array(x)
        if isinstance(x, (np.ndarray, list)):
            x = np.asarray(x)
            self._check_data(x)
            if not x.size:
                raise ValueError("The data holds no examples.")
        elif _is_dataset(x):
            _dataset_input_spec(x)
            x = self._checked_dataset(x)
        data_mean = visible_mean(x)
        if not self.built:
            self.build((None, data_mean.shape[0]))
        elif data_mean.shape[0] != self.num_visible:
            raise self._width_error(data_mean.shape[0])
        self.visible_bias.assign(
            ops.cast(self.visible_units.bias_from_mean(ops.convert_to_tensor(data_mean)), self.visible_bias.dtype)
        )
        return self

    def _gibbs_step(self, v, weights):
        """One step v -> h -> v of block Gibbs sampling, from sampled states."""
        h = self.hidden_units.sample(self.hidden_units.mean(self._hidden_pre(v, weights)), self.seed_generator)
        return self.visible_units.sample(self.visible_units.mean(self._visible_pre(h, weights)), self.seed_generator)

    def gibbs(self, v, steps=1):
        """Runs ``steps`` full steps of block Gibbs sampling v -> h -> v.

        With the TensorFlow backend the chain runs as one compiled graph
        loop (traced once per RBM; the first call pays a second or so), with
        the same random numbers as steps run one by one.

        Args:
            v: starting visible states, shape ``(batch, num_visible)``, or
                examples of any shape with ``num_visible`` values (images).
            steps: number of Gibbs steps, ``>= 0``.

        Returns:
            The visible sample after the last step, shape ``(batch,
            num_visible)`` (images come back as rows), a backend tensor (a
            `tf.Tensor` with TensorFlow; `sample` returns NumPy); the chain
            runs in float32 under a mixed policy (`_sampling_dtype`).

        Raises:
            ValueError: on a negative number of steps.

        Example:

        >>> v = rbm.gibbs(x_test[:16], steps=100)  # 16 chains started at data, (16, 784)
        """
        steps = checked_count(steps, "`steps`")
        return self._gibbs_chain(self._flatten(v, self._sampling_dtype), steps)

    def _gibbs_chain(self, v, steps):
        """`gibbs` from flattened visible states ``v`` (checked already, or the
        chain's own samples, which need no check), in `_sampling_dtype`."""
        weights = self._weights(self._sampling_dtype)
        v = ops.cast(v, self._sampling_dtype)
        if steps and keras.backend.backend() == "tensorflow":
            return _compiled_gibbs_chain()(self, v, weights, ops.convert_to_tensor(steps, "int32"))
        for _ in range(steps):
            v = self._gibbs_step(v, weights)
        return v

    def reconstruct(self, v):
        """Deterministic reconstruction: ``E[v | h = p(h | v)]``.

        Args:
            v: visible data, shape ``(batch, num_visible)``, or examples of
                any shape with ``num_visible`` values (images).

        Returns:
            The mean visible state given the hidden means, shape ``(batch,
            num_visible)``: images come back as rows. Computed and returned
            in float32 under a mixed policy, as `gibbs` and `free_energy`
            are: NumPy sums bfloat16 values in bfloat16, so that the mean
            squared error below came out ~400 times too small.

        Example:

        >>> x_hat = rbm.reconstruct(x_test[:10])  # shape (10, 784)
        >>> error = np.mean((rbm.reconstruct(x_test) - x_test.reshape(len(x_test), -1)) ** 2)
        """
        dtype = self._sampling_dtype
        v = self._flatten(v, dtype)  # builds an RBM not built yet
        weights = self._weights(dtype)
        hidden = self.hidden_units.mean(self._hidden_pre(v, weights))
        return self.visible_units.mean(self._visible_pre(hidden, weights))

    def restart_seed_generator(self, seed):
        """Restarts ``seed_generator``, the source of every draw, from ``seed``.

        The generator then gives what a new ``SeedGenerator(seed)`` would:
        the draws that follow (sampling, CD statistics) repeat from run to
        run. (The generator's state is saved with the RBM, so a loaded RBM
        also goes on drawing where the saved one would have.)

        Args:
            seed: an integer in ``[0, 2**31)``.

        Raises:
            ValueError: for anything else.

        Example:

        >>> rbm.restart_seed_generator(7)
        >>> a = rbm.sample(4, gibbs_steps=10)
        >>> rbm.restart_seed_generator(7)
        >>> np.array_equal(a, rbm.sample(4, gibbs_steps=10))
        True
        """
        _restart(self.seed_generator, checked_sampling_seed(seed))

    @contextlib.contextmanager
    def drawing_from(self, seed):
        """Within the block, draws come from a new stream of ``seed``.

        ``seed_generator`` restarts from ``seed`` and is put back as it was
        afterwards, so that seeded sampling (`sample`, `DBN.generate`,
        `ImageGridCallback`) neither changes what training draws next nor
        depends on it. ``None`` leaves the generator alone.

        Args:
            seed: ``None`` or an integer in ``[0, 2**31)``.

        Returns:
            A context manager.

        Raises:
            ValueError: for a ``seed`` that is neither.

        Example:

        >>> with rbm.drawing_from(7):
        ...     v = rbm.gibbs(v0, steps=100)
        """
        if seed is None:
            yield
            return
        state = self.seed_generator.state
        saved = np.array(state.numpy())
        self.restart_seed_generator(seed)
        try:
            yield
        finally:
            state.assign(ops.convert_to_tensor(saved, state.dtype))

    def sample(self, n, gibbs_steps=1000, initial=None, return_mean=True, seed=None):
        """Draws ``n`` fantasies from the model by a long Gibbs chain.

        Chains start at ``initial`` or, by default, at random states of the
        visible biases alone, and run ``gibbs_steps`` steps.

        Args:
            n: number of samples; ``None`` or ``len(initial)`` when
                ``initial`` is given.
            gibbs_steps: steps of block Gibbs sampling; 0 returns where
                the chains start (``initial``, or the visible biases' states,
                or with ``return_mean`` their means).
            initial: optional starting visible states.
            return_mean: return ``E[v | h]`` of the last step (smoother
                pictures) instead of the sampled states.
            seed: optional integer: the samples are drawn as a new
                generator of that seed would draw them, so the same call
                draws the same samples, and the RBM's ``seed_generator`` is
                left as it was (`drawing_from`): training draws the same
                after seeded sampling as without it. By default the
                generator goes on from its state.

        Returns:
            float32 NumPy array of shape ``(n, num_visible)``, whatever the
            dtype policy.

        Raises:
            ValueError: before the RBM is built, for a negative ``n`` or
                ``gibbs_steps``, for an ``n`` other than ``len(initial)``,
                and for a ``seed`` that is not an integer in ``[0, 2**31)``.

        Example:

        >>> fantasies = rbm.sample(16, gibbs_steps=1000, seed=0)
        >>> fantasies.shape
        (16, 784)
        >>> chains = rbm.sample(None, gibbs_steps=100, initial=x_test[:16])
        """
        gibbs_steps = checked_count(gibbs_steps, "`gibbs_steps`")
        with self.drawing_from(seed):
            return self._sample(n, gibbs_steps, initial, return_mean)

    def _sample(self, n, gibbs_steps, initial, return_mean, check_initial=True):
        """`sample` without its seed; ``check_initial=False`` takes ``initial``
        as a DBN's own states of the layer below (flat, not checked as data)."""
        dtype = self._sampling_dtype
        weights = self._weights(dtype)
        if initial is None:
            n = checked_count(n, "`n` (number of samples)")
            start_mean = self.visible_units.mean(
                ops.zeros((int(n), self.num_visible), dtype) + weights[1]
            )
            v = self.visible_units.sample(start_mean, self.seed_generator)
            if gibbs_steps < 1 and return_mean:
                v = start_mean
        else:
            v = self._flatten(initial, dtype) if check_initial else ops.cast(initial, dtype)
            checked_sample_count(n, v)
        if gibbs_steps < 1:
            return ops.convert_to_numpy(ops.cast(v, "float32"))
        v = self._gibbs_chain(v, gibbs_steps - 1)
        h = self.hidden_units.sample(self.hidden_units.mean(self._hidden_pre(v, weights)), self.seed_generator)
        v = self.visible_units.mean(self._visible_pre(h, weights))
        if not return_mean:
            v = self.visible_units.sample(v, self.seed_generator)
        return ops.convert_to_numpy(ops.cast(v, "float32"))

    # --------------------------------------------------------- serialization

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "units": self.units,
            "visible": units_lib.serialize(self.visible_units),
            "hidden": units_lib.serialize(self.hidden_units),
            "k": self.k,
            "persistent": self.persistent,
            "num_chains": self.num_chains,
            "sample_visible": self.sample_visible,
            "sparsity_target": self.sparsity_target,
            "sparsity_cost": self.sparsity_cost,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "seed": self.seed,
        }
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["kernel_initializer"] = keras.initializers.deserialize(config["kernel_initializer"])
        if (config.get("sparsity_target") is not None
                and not units_lib.get(config.get("hidden", "bernoulli")).discrete):
            # Saved before such RBMs were refused: they load as they were,
            # their values checked as a Bernoulli layer's would be.
            sparsity = config["sparsity_target"], config.get("sparsity_cost", 0.0)
            cls(5, sparsity_target=sparsity[0], sparsity_cost=sparsity[1])
            user_warnings.warn(
                "This RBM was saved with a sparsity_target for real-valued hidden "
                "units, which new RBMs refuse (the target is a probability of binary "
                "units); it loads with its penalty as saved."
            )
            rbm = cls(**dict(config, sparsity_target=None, sparsity_cost=0.0))
            rbm.sparsity_target, rbm.sparsity_cost = sparsity
            return rbm
        return cls(**config)
