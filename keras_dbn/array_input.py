"""Batches of an in-memory NumPy array as a `tf.data.Dataset`, without copies.

Keras turns a NumPy array passed to ``fit()`` or ``predict()`` into tensors
and a ``tf.data`` pipeline that captures them: measured on MNIST-sized and
larger arrays, that holds about three copies of the data at its peak, and on
a 2-core machine its autotuned parallel map competes with the training step
for the cores, and its autotuning thread may stall the end of an epoch
(`untuned_options`): one epoch in three ran ~1.7x slower. `array_dataset`
instead reads batches straight from the caller's array (one NumPy gather of about
8 MiB, several batches, per ``tf.numpy_function`` call), so the only
full-size copy is the caller's own, and the input pipeline stays on one
thread (`lean_options`). Fine-tuning a classifier on arrays gains from it
too: ``model.fit(array_dataset(x, y, batch_size=100))`` trained the MNIST
DBN classifier ~1.15x faster than ``model.fit(x, y, batch_size=100)`` on 2
cores.

An array whose data starts on a 64-byte boundary (`aligned_empty`,
`as_aligned`, and every array `keras_dbn.datasets.load_numpy` returns) is
read faster still: TensorFlow views its memory without a copy (DLPack) and
each batch is one ``tf.gather`` of the batch's rows, with no NumPy or
Python call per batch.
"""

import math
import numbers
import sys
import types

import numpy as np

#: About how many bytes one read from the arrays gathers: several batches at
#: a time, since each ``tf.numpy_function`` call costs ~0.1 ms of CPU, as much
#: as gathering a 100 x 784 float32 batch.
_READ_BYTES = 8 << 20

#: TensorFlow's CPU kernels assume tensor data on 64-byte boundaries
#: (``EIGEN_MAX_ALIGN_BYTES`` with AVX-512); an imported buffer that is not
#: aborts the process at its first sliced use.
ALIGNMENT = 64


def aligned_empty(shape, dtype="float32"):
    """An uninitialised array whose data starts on a 64-byte boundary.

    NumPy allocates large arrays 16 bytes past such a boundary, and
    TensorFlow can only view 64-byte-aligned memory without copying it.

    Args:
        shape: the array's shape.
        dtype: its dtype.

    Returns:
        A C-contiguous, writeable NumPy array.

    Example:

        >>> x = aligned_empty((60000, 784))
        >>> x.ctypes.data % 64
        0
    """
    dtype = np.dtype(dtype)
    sizes = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(size < 0 for size in sizes):  # NumPy's own refusal; the product would hide it
        raise ValueError(f"negative dimensions are not allowed, got shape {sizes}.")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def as_aligned(x, dtype="float32"):
    """``x`` as a C-contiguous, 64-byte-aligned array, copied only if needed.

    `array_dataset` (and so `RBM.fit` and `DBN.pretrain`) reads the batches
    of such arrays with ``tf.gather`` from a zero-copy view instead of
    through NumPy. Call it once on a training array used for many epochs.

    Args:
        x: array-like.
        dtype: dtype of the result; ``None`` keeps ``x``'s. ``"bfloat16"``
            makes the copy that an RBM with a ``mixed_bfloat16`` policy
            reads as it is (half the memory; exact for binary data).

    Returns:
        ``x`` itself when it already qualifies, else an aligned copy.

    Example:

        >>> x_train = keras_dbn.as_aligned(x_train / 255.0)
        >>> x_bf16 = keras_dbn.as_aligned(x_binary, dtype="bfloat16")
    """
    x = np.asarray(x)
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    if is_aligned(x) and x.dtype == dtype:
        return x
    out = aligned_empty(x.shape, dtype)
    out[...] = x
    return out


def is_aligned(x):
    """Whether NumPy array ``x`` is C-contiguous with 64-byte-aligned data."""
    return bool(x.flags.c_contiguous) and x.ctypes.data % ALIGNMENT == 0


def fit_can_stream(fit_kwargs):
    """Whether a Keras ``fit(**fit_kwargs)`` can take NumPy input as `array_dataset`.

    That path needs the TensorFlow backend; inside a `tf.distribute`
    strategy callers leave NumPy input to Keras' own array handling. With
    ``steps_per_epoch`` Keras treats the datasets as it treats arrays (both
    have a known number of batches): an epoch may end inside a pass over
    the data, and the next epoch continues that pass.

    Args:
        fit_kwargs: the other keyword arguments of the ``fit()`` call.

    Returns:
        bool.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.distribute.has_strategy()


def refuse_dataset(value, name, function):
    """Raises where ``value`` is a `tf.data.Dataset` given for an array.

    NumPy reads a dataset as a scalar object array, so the errors that
    follow speak of a scalar or of no examples.

    Args:
        value: what was given.
        name: how the error names it (e.g. "`x_labelled`").
        function: the function or method that takes arrays.

    Raises:
        TypeError: for a dataset.
    """
    tf = sys.modules.get("tensorflow")  # no Dataset exists unless it is imported
    if tf is not None and isinstance(value, tf.data.Dataset):
        raise TypeError(f"{function} takes arrays, not a tf.data.Dataset, for {name}: "
                        "pass NumPy arrays (or tensors) of the examples.")


def refuse_sparse(value, name):
    """Raises where ``value`` is a sparse matrix (SciPy's, or a
    `tf.SparseTensor`), or a list or tuple holding one as an item or as the
    ``x`` of an ``(x, y)`` item (a list of batches), or a `tf.RaggedTensor`,
    which keras_dbn does not read.

    NumPy reads a SciPy matrix as a scalar object array, so the errors that
    follow spoke of data that "must be numeric" or of no examples.

    Args:
        value: what was given.
        name: how the error names it (e.g. "`x`").

    Raises:
        TypeError: for a sparse matrix or a ragged tensor, saying how to
            pass it densely.
    """
    if type(value).__name__ == "RaggedTensor":  # NumPy made an object array of it
        raise TypeError(
            f"{name} is a tf.RaggedTensor (shape {value.shape}), which keras_dbn does not "
            f"read: pass it dense, each row padded to the full width (its "
            f".to_tensor(shape=[None, width])).")
    sparse = _sparse_in(value)
    if sparse is None:
        return
    shape = getattr(sparse, "shape", None)
    dims = None
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):  # a traced tensor's unknown dimensions
        pass
    size = ""
    if dims is not None:
        nbytes = math.prod(dims) * 4
        size = " (" + (f"{nbytes:,} bytes" if nbytes < 1024 else f"{nbytes / 1024:,.0f} KiB"
                       if nbytes < 2**20 else f"{nbytes / 2**20:,.1f} MiB" if nbytes < 10 * 2**20
                       else f"{nbytes / 2**20:,.0f} MiB") + " in float32)"
    remedy = ("`.toarray()`" if hasattr(sparse, "toarray")
              else "`tf.sparse.to_dense`, or where a tf.data.Dataset is taken, one mapped by it")
    verb = "is" if sparse is value else "holds"
    raise TypeError(
        f"{name} {verb} a sparse matrix ({type(sparse).__name__}, shape "
        f"{dims if dims is not None else shape}), which keras_dbn does not read: pass it "
        f"dense{size}: {remedy}."
    )


def _sparse_in(value):
    """``value`` where it is a sparse matrix, else the first among its items
    as a list or tuple, or among the first items of the tuples there (the
    ``x`` of ``[(x, y)]``; labels are not data), else None. One check per
    item: rows of numbers are not looked into."""
    if _is_sparse(value):
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            first = item[0] if isinstance(item, tuple) and item else None
            for candidate in (item, first):
                if _is_sparse(candidate):
                    return candidate
    return None


def _is_sparse(value):
    """Whether ``value`` is a SciPy sparse matrix or array, or a `tf.SparseTensor`."""
    scipy_sparse = sys.modules.get("scipy.sparse")  # none exists unless it is imported
    tf = sys.modules.get("tensorflow")
    return ((scipy_sparse is not None and scipy_sparse.issparse(value))
            or (tf is not None and isinstance(value, tf.sparse.SparseTensor)))


def is_stream(data):
    """Whether ``data`` is a `tf.data.Dataset` or a generator.

    Keras reads such input as it comes and cannot shuffle it: its ``fit``
    warns when ``shuffle=True`` (its default) meets one, so keras_dbn's
    ``fit`` methods default ``shuffle`` to False for them.

    Args:
        data: the ``x`` given to ``fit``.

    Returns:
        bool.
    """
    if isinstance(data, types.GeneratorType):
        return True
    tf = sys.modules.get("tensorflow")  # no Dataset exists unless it is imported
    return tf is not None and isinstance(data, tf.data.Dataset)


def is_endless(data):
    """Whether ``data`` is a `tf.data.Dataset` that never ends (``.repeat()``).

    Args:
        data: anything a Keras ``fit`` takes.

    Returns:
        bool; ``False`` where TensorFlow is not loaded.

    Example:

    >>> is_endless(tf.data.Dataset.range(3).repeat()), is_endless(np.zeros(3))
    (True, False)
    """
    tf = sys.modules.get("tensorflow")
    return (tf is not None and isinstance(data, tf.data.Dataset)
            and int(data.cardinality()) == int(tf.data.INFINITE_CARDINALITY))


def check_ends(fit_kwargs, x=None, caller="fit"):
    """Raises where ``fit`` would read an endless `tf.data.Dataset` forever.

    Keras ends an epoch of a dataset when the dataset ends, so an endless
    one (``.repeat()``, `semi_supervised_dataset`) without
    ``steps_per_epoch`` would train without end, and endless validation
    data without ``validation_steps`` would never finish validating.

    Args:
        fit_kwargs: the other arguments of ``fit`` (``steps_per_epoch``,
            ``validation_data``, ``validation_steps``).
        x: the training data.
        caller: how the error names the method.

    Raises:
        ValueError: for such a dataset without its step count.
    """
    if is_endless(x) and not fit_kwargs.get("steps_per_epoch"):
        raise ValueError(
            f"{caller}: the dataset never ends (e.g. `.repeat()` or "
            "`semi_supervised_dataset`), so an epoch would never end either: "
            "pass steps_per_epoch, the updates per epoch."
        )
    if is_endless(fit_kwargs.get("validation_data")) and not fit_kwargs.get("validation_steps"):
        raise ValueError(
            f"{caller}: the validation dataset never ends: pass validation_steps."
        )


def is_bfloat16(dtype):
    """Whether ``dtype`` is bfloat16 (NumPy knows it through ``ml_dtypes``)."""
    return getattr(dtype, "name", None) == "bfloat16"


def value_range(x):
    """``(min, max)`` of a non-empty NumPy array as floats; NaN if it holds one.

    min and max propagate NaN and show infinities, without the temporary
    array that ``np.isfinite`` would allocate. They run block by block
    (`_min_max`), so the data are read from memory once. NumPy's
    reductions over bfloat16 are not vectorised (~0.5 s for MNIST's 60,000
    images), so bfloat16 data are read as their 16-bit words where that
    settles it: without the sign bit set, words order like the values they
    encode, and those below ``0x7F80`` are finite.

    Args:
        x: a non-empty NumPy array of numbers.

    Returns:
        ``(low, high)`` as Python floats.

    Example:

    >>> value_range(np.array([[0.0, 2.5], [1.0, -1.0]]))
    (-1.0, 2.5)
    """
    x = np.asarray(x)  # a masked array's data, as Keras reads them
    if is_bfloat16(x.dtype):
        low, high = _min_max(x.view(np.uint16))
        if high < 0x7F80:  # no negative, infinite or NaN value
            low, high = np.array([low, high], np.uint16).view(x.dtype).astype("float32")
            return float(low), float(high)
        x = x.astype("float32")  # rare: a slow path is fine
    low, high = _min_max(x)
    return float(low), float(high)


#: Bytes of an array that `_min_max` reduces at a time: blocks that stay in
#: the cache between the two reductions.
_MIN_MAX_BLOCK_BYTES = 2**19

#: Arrays of at least this many bytes are reduced by two threads (see `_min_max`).
_MIN_MAX_THREADED_BYTES = 2**24


def _min_max(x):
    """``(x.min(), x.max())`` of a non-empty NumPy array (NaN propagates),
    reading it from memory once: block by block over its first axis, each
    block reduced twice while it is in the cache. Two whole passes took
    22-25 ms for MNIST's 60,000 float32 images on 2 cores, this 19.5 ms,
    and 13 ms with its halves reduced on two threads at once (NumPy's
    reductions release the GIL; one thread's reads leave part of the
    memory's bandwidth unused), as arrays of `_MIN_MAX_THREADED_BYTES` or
    more are where a second core is free. An array in neither C nor
    Fortran order is read by two whole reductions: its blocks could be
    strided gathers."""
    if x.ndim == 0:
        return x[()], x[()]
    if not x.flags.c_contiguous:
        if not x.flags.f_contiguous:
            return x.min(), x.max()
        x = x.T  # the same values, its blocks contiguous
    if x.nbytes < _MIN_MAX_THREADED_BYTES or len(x) < 2 or _free_cores() < 2:
        return _min_max_blocks(x)
    import threading

    half, other = len(x) // 2, {}

    def reduce_second_half():
        try:
            other["range"] = _min_max_blocks(x[half:])
        except BaseException as error:  # raised in the caller's thread
            other["error"] = error

    worker = threading.Thread(target=reduce_second_half, name="keras_dbn-min-max")
    worker.start()
    try:
        low, high = _min_max_blocks(x[:half])
    finally:
        worker.join()
    if "error" in other:
        raise other["error"]
    return np.minimum(low, other["range"][0]), np.maximum(high, other["range"][1])


def _min_max_blocks(x):
    """`_min_max` of a non-empty C-contiguous array, on the caller's thread."""
    rows = max(1, _MIN_MAX_BLOCK_BYTES // max(1, x[:1].nbytes))
    low, high = x[:rows].min(), x[:rows].max()
    for first in range(rows, len(x), rows):
        block = x[first:first + rows]
        low, high = np.minimum(low, block.min()), np.maximum(high, block.max())
    return low, high


def _free_cores():
    """The CPU cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_finite(x, name):
    """Refuses arrays or tensors of floats that hold NaN or infinite values.

    Training on one such value makes every weight NaN within an update,
    silently where no divergence check watches (a classifier's `fit`).

    Args:
        x: a NumPy array, an eager tensor, or a dict, list or tuple of them
            (a multi-input model's); other values, and integer data, pass.
        name: how the error names ``x``.

    Raises:
        ValueError: naming ``x``.

    Example:

    >>> check_finite(np.array([[0.0, np.nan]]), "`x`")
    Traceback (most recent call last):
    ValueError: `x` contains NaN or infinite values.
    """
    leaves = list(x.values()) if isinstance(x, dict) else (
        list(x) if isinstance(x, (list, tuple)) else [x])
    for leaf in leaves:
        if isinstance(leaf, (dict, list, tuple)):
            check_finite(leaf, name)
            continue
        if not isinstance(leaf, np.ndarray) and hasattr(leaf, "numpy"):
            try:
                leaf = leaf.numpy()  # an eager tensor; a symbolic one has no values
            except (AttributeError, NotImplementedError, ValueError):
                continue
        if not isinstance(leaf, np.ndarray) or not leaf.size:
            continue
        if not _all_finite(np.asarray(leaf)):  # a masked array's data, as Keras reads them
            raise ValueError(f"{name} contains NaN or infinite values.")


def _all_finite(x):
    """Whether the NumPy array ``x`` holds no NaN or infinite number."""
    if is_bfloat16(x.dtype) or x.dtype == np.float16:
        # Their reductions are not vectorised (float16: ~0.2-0.6 s for
        # MNIST's images): a 16-bit word without its sign bit is finite
        # below the all-ones exponent.
        exponent = 0x7F80 if is_bfloat16(x.dtype) else 0x7C00
        words = x.view(np.uint16)
        return all(int(np.max(np.bitwise_and(block, 0x7FFF))) < exponent
                   for block in np.array_split(words.reshape(-1), max(1, words.size // 2**22)))
    if np.issubdtype(x.dtype, np.complexfloating):
        return bool(np.isfinite(x).all())
    if not np.issubdtype(x.dtype, np.floating):
        return True
    low, high = value_range(x)
    return bool(np.isfinite(low) and np.isfinite(high))


def check_rank(shape):
    """Raises a clear error for data without an example axis and a feature axis.

    Args:
        shape: the data's shape (a tuple or a `TensorShape`).

    Raises:
        ValueError: when ``shape`` has fewer than two axes (a shape of
            unknown rank passes).
    """
    rank = shape.rank if hasattr(shape, "rank") else len(shape)
    if rank is not None and rank < 2:
        raise ValueError(
            "Data must hold one example per row, shape (examples, features) "
            f"or (examples, height, width, ...); got shape {tuple(shape)}. For a "
            "single example use x[None]; batch a tf.data.Dataset with .batch(n)."
        )


def _without_objects(array, name):
    """``array`` as a NumPy array; one of Python objects (pandas' labels,
    say) converted to the numbers or strings it holds, which tf.data reads
    (it fails on objects only at the first batch)."""
    array = np.asarray(array)
    if array.dtype != object:
        return array
    try:
        converted = np.asarray(array.tolist())
    except ValueError:  # ragged: rows of other lengths
        converted = array
    kind = {"U": str, "S": bytes}.get(converted.dtype.kind)
    mixed = kind is not None and not all(isinstance(v, kind) for v in array.flat)
    if converted.dtype == object or converted.shape != array.shape or mixed:
        raise ValueError(f"{name} holds Python objects that are not all numbers or all "
                         "strings; convert it to a numeric array first.")
    return converted


def is_numeric(dtype):
    """Whether arrays of ``dtype`` hold numbers: bool, integer, float or bfloat16."""
    dtype = np.dtype(dtype)
    return dtype.kind in "biuf" or is_bfloat16(dtype)


def _tensor_view(x):
    """A TensorFlow tensor that shares ``x``'s memory, or None.

    Only for non-empty, writeable numeric arrays that `is_aligned` accepts
    (DLPack cannot mark a view read-only); the tensor keeps ``x`` alive.
    DLPack has no bfloat16 for NumPy, so a bfloat16 array is viewed as its
    16-bit words and reinterpreted by ``tf.bitcast``, which copies nothing.
    """
    import tensorflow as tf

    bfloat16 = isinstance(x, np.ndarray) and is_bfloat16(x.dtype)
    if not (
        isinstance(x, np.ndarray)
        and (x.dtype.kind in "iuf" or bfloat16)
        and x.dtype.byteorder in "=|"
        and x.size
        and x.flags.writeable
        and is_aligned(x)
    ):
        return None
    try:
        if bfloat16:
            words = tf.experimental.dlpack.from_dlpack(x.view(np.uint16).__dlpack__())
            return tf.bitcast(words, tf.bfloat16)
        return tf.experimental.dlpack.from_dlpack(x.__dlpack__())
    except (BufferError, TypeError, ValueError, RuntimeError):
        return None


def checked_batch_size(batch_size):
    """``batch_size`` as an int.

    Args:
        batch_size: rows per batch.

    Returns:
        ``int(batch_size)``.

    Raises:
        ValueError: unless it is a positive integer (not a bool).
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Real)
        or int(batch_size) != batch_size
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


def _is_array_pair(x, y):
    return isinstance(x, np.ndarray) and (
        y is None or (isinstance(y, np.ndarray) and len(y) == len(x))
    ) and len(x) > 0


def evaluation_input(x, y=None, batch_size=None):
    """Input of ``evaluate()`` or ``predict()`` without tf.data's autotuning.

    Keras reads NumPy arrays through a ``tf.data`` pipeline with
    TensorFlow's default options, autotuning on. Each such iterator runs a
    model thread that wakes 10, 30, 70, ... ms after the iterator starts,
    and its destruction (at the end of every ``evaluate``, ``predict`` and
    epoch) often waits for that thread's next wake: up to as long again as
    the iterator lived. NumPy arrays become an unshuffled `array_dataset`,
    which runs without autotuning (`lean_options`), and a `tf.data.Dataset`
    goes through `without_autotuning`; ``benchmarks/input_pipelines.py``
    measures the difference.

    Args:
        x: the ``x`` argument; converted when a non-empty NumPy array or a
            `tf.data.Dataset`.
        y: ``None`` or a NumPy array of labels of the same length; otherwise
            arrays are not converted.
        batch_size: rows per batch of arrays (Keras' default 32 when ``None``).

    Returns:
        ``(x, y, batch_size)`` to pass on to Keras: for arrays an
        `array_dataset` with ``y`` and ``batch_size`` ``None``; otherwise
        the arguments, a dataset without autotuning in place of ``x``.

    Example:

        >>> data, y, batch_size = evaluation_input(x_test, y_test, batch_size=1000)
        >>> classifier.evaluate(data, y, batch_size=batch_size)
    """
    if not _is_array_pair(x, y):
        return without_autotuning(x), y, batch_size
    # Floats become float32, as Keras makes them; integers (token ids) stay.
    dtype = "float32" if np.issubdtype(x.dtype, np.floating) else None
    data = array_dataset(x, y, batch_size=32 if batch_size is None else batch_size,
                         shuffle=False, dtype=dtype)
    return data, None, None


def validation_input(validation_data, batch_size=None):
    """``fit(validation_data=...)`` without tf.data's autotuning.

    Keras evaluates NumPy validation data every epoch through a fresh
    default-option pipeline, whose destruction may stall as described in
    `evaluation_input`.

    Args:
        validation_data: ``(x, y)`` or ``x`` alone; NumPy arrays become an
            unshuffled `array_dataset`, a `tf.data.Dataset` goes through
            `without_autotuning`. Anything else (``(x, y,
            sample_weight)``, tensors) is returned unchanged.
        batch_size: rows per validation batch (32 when ``None``, as Keras).

    Returns:
        The validation data to pass to ``fit``.

    Example:

        >>> classifier.fit(train, validation_data=validation_input((x_val, y_val), 1000))
    """
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        x, y = validation_data
    elif isinstance(validation_data, np.ndarray):
        x, y = validation_data, None
    else:
        return without_autotuning(validation_data)
    data, _, _ = evaluation_input(x, y, batch_size)
    return validation_data if data is x else data


def _epoch_order(n, batch_size, epoch_seed):
    """The rows of one shuffled epoch: a permutation, sorted within each batch.

    Sorted rows make faster gathers, and the order inside a batch does not
    change a mean gradient.
    """
    order = np.random.default_rng(epoch_seed).permutation(n)
    full = n - n % batch_size
    order[:full] = np.sort(order[:full].reshape(-1, batch_size), axis=1).ravel()
    order[full:] = np.sort(order[full:])
    return order


def array_dataset(x, y=None, batch_size=32, shuffle=True, seed=None, dtype="float32"):
    """A batched, optionally shuffled `tf.data.Dataset` over NumPy arrays.

    Each iteration over the dataset (each Keras epoch) draws a new random
    order when ``shuffle`` is true; every example appears once per
    iteration. The rows of each batch are read in increasing index order
    (faster gathers; the order inside a batch does not change a mean
    gradient). Batches are gathered on demand, so the arrays are never
    copied whole: by ``tf.gather`` from a zero-copy tensor view where the
    arrays allow one (C-contiguous, 64-byte aligned, writeable, numeric:
    see `as_aligned`), else by NumPy, about 8 MiB at a time. On 2 cores,
    ``RBM.fit`` on MNIST ran 1.01-1.02x faster through the view than
    through NumPy in paired A/Bs (``benchmarks/RESULTS.md``).

    The pipeline stays on one thread (`lean_options`), which suits
    in-memory batches on machines with few cores; ``ds.with_options``
    overrides that. Pass it to any Keras model's ``fit()`` in place of
    ``x, y, batch_size=...``, e.g. to fine-tune a DBN's classifier.

    Args:
        x: NumPy array, rows are examples (any trailing shape).
        y: optional NumPy array of labels with ``len(y) == len(x)``; batches
            are then ``(x_batch, y_batch)``.
        batch_size: rows per batch; the last batch may be smaller.
        shuffle: draw a new order each iteration; ``False`` keeps the rows'
            order.
        seed: an int; the same seed gives the same sequence of orders.
        dtype: dtype of the ``x`` batches (each batch is converted on its
            own; ``None`` keeps the array's dtype).

    Returns:
        A `tf.data.Dataset` with known cardinality ``ceil(len(x) /
        batch_size)``.

    Raises:
        ValueError: for a batch size below 1, an empty array, ``y`` of
            another length or of dates, or a seed that is not an integer.
        TypeError: for a `tf.data.Dataset` given as ``x`` or ``y``.

    Example:

        >>> ds = array_dataset(x_train, batch_size=100, seed=0)
        >>> rbm.fit(ds, epochs=10)
        >>> classifier.compile("adam", "sparse_categorical_crossentropy")
        >>> classifier.fit(array_dataset(x_train, y_train, batch_size=100), epochs=20,
        ...                shuffle=False)  # it shuffles itself; Keras would warn
    """
    import tensorflow as tf

    from keras_dbn.rbm import checked_seed  # rbm imports this module

    refuse_dataset(x, "x", "array_dataset")
    refuse_dataset(y, "y", "array_dataset")
    refuse_sparse(x, "x")
    refuse_sparse(y, "y")
    x = _without_objects(x, "x")
    batch_size = checked_batch_size(batch_size)
    if x.ndim == 0:
        raise ValueError(f"x must be an array of examples, got a scalar {x!r}.")
    if not is_numeric(x.dtype):
        # It would fail only at the first batch, inside tf.data.
        raise ValueError(f"x must hold numbers, got an array of dtype {x.dtype}.")
    n = len(x)
    if n == 0:
        raise ValueError("The array holds no examples.")
    if y is not None:
        y = _without_objects(y, "y")
        if y.ndim == 0 or len(y) != n:
            raise ValueError(f"x has {n} rows but y has {len(y) if y.ndim else 'none'}.")
        if not (is_numeric(y.dtype) or y.dtype.kind in "cUS"):
            # datetime64 and the like: tf.data would fail only at the first batch.
            raise ValueError(f"y must hold numbers or strings, got an array of dtype "
                             f"{y.dtype}; convert it (e.g. y.astype('int64')) first.")
    seed = checked_seed(seed)
    out_dtype = np.dtype(dtype) if dtype is not None else x.dtype
    # (array, dtype of its batches): x, then the labels if any; batches in
    # the machine's byte order, which is the only one TensorFlow reads.
    columns = [(x, out_dtype.newbyteorder("="))]
    if y is not None:
        columns.append((y, y.dtype.newbyteorder("=")))
    full_batches, tail_rows = divmod(n, batch_size)
    views = [_tensor_view(array) for array, _ in columns]
    if all(view is not None for view in views):
        return _marked(_gathered(views, columns, n, batch_size, shuffle, seed), batch_size)
    row_bytes = sum(kind.itemsize * int(np.prod(array.shape[1:])) for array, kind in columns)
    per_read = max(1, _READ_BYTES // max(1, batch_size * row_bytes))
    cached = {}  # the order of the last seed seen: one permutation per epoch

    def rows_for(epoch_seed, first, count):
        """Rows of batches ``first .. first + count - 1``, each batch sorted."""
        start, stop = first * batch_size, min(n, (first + count) * batch_size)
        if not shuffle:
            return slice(start, stop)
        if cached.get("seed") != epoch_seed:
            cached["seed"] = epoch_seed
            cached["order"] = _epoch_order(n, batch_size, epoch_seed)
        return cached["order"][start:stop]

    def read(epoch_seed, first, count):
        rows = rows_for(int(epoch_seed), int(first), int(count))
        if isinstance(rows, slice):
            # A copy, never a view: TensorFlow may adopt a returned buffer
            # that is suitably aligned without copying it, and then reuse
            # it for the output of an element-wise op, which would write
            # into the caller's array.
            return [np.array(array[rows], dtype=kind) for array, kind in columns]
        # np.take (~10% faster than fancy indexing) returns new arrays.
        parts = [np.take(array, rows, axis=0) for array, _ in columns]
        return [np.asarray(part, dtype=kind) for part, (_, kind) in zip(parts, columns)]

    def read_op(epoch_seed, first, count):
        # numpy_function rather than Dataset.from_generator: on glibc, after
        # a from_generator pipeline had run, every large NumPy allocation
        # of the process page-faulted afresh (measured: scikit-learn's
        # BernoulliRBM.fit ran ~1.6x slower in the same process afterwards).
        parts = tf.numpy_function(
            read, [epoch_seed, first, count], [tf.as_dtype(kind) for _, kind in columns]
        )
        for part, (array, _) in zip(parts, columns):
            part.set_shape((None,) + array.shape[1:])
        return parts

    def as_element(parts):
        return parts[0] if y is None else tuple(parts)

    def full_batches_read_together(epoch_seed, index):
        first = index * per_read
        count = tf.minimum(tf.constant(per_read, tf.int64), full_batches - first)
        parts = read_op(epoch_seed, first, count)
        parts = [
            tf.reshape(part, (-1, batch_size) + array.shape[1:])
            for part, (array, _) in zip(parts, columns)
        ]
        return tf.data.Dataset.from_tensor_slices(as_element(parts))

    def epoch(epoch_seed):
        batches = None
        if full_batches:
            reads = tf.data.Dataset.range(-(-full_batches // per_read))
            batches = reads.flat_map(lambda index: full_batches_read_together(epoch_seed, index))
        if tail_rows:  # the last, shorter batch on its own

            def last_batch(_):
                first = tf.constant(full_batches, tf.int64)
                return as_element(read_op(epoch_seed, first, tf.constant(1, tf.int64)))

            tail = tf.data.Dataset.range(1).map(last_batch)
            batches = tail if batches is None else batches.concatenate(tail)
        return batches

    return _marked(_per_epoch(epoch, seed, full_batches + bool(tail_rows)), batch_size)


def _gathered(views, columns, n, batch_size, shuffle, seed):
    """`array_dataset`'s batches of ``n`` rows as ``tf.gather`` from zero-copy views."""
    import tensorflow as tf

    def gather(rows):
        parts = [
            tf.cast(tf.gather(view, rows), tf.as_dtype(kind))
            for view, (_, kind) in zip(views, columns)
        ]
        return parts[0] if len(parts) == 1 else tuple(parts)

    return _from_rows(_row_batches(n, batch_size, shuffle, seed).map(gather), n, batch_size)


#: The keys of an `indexed_batches` element.
ROWS, SOURCE = "keras_dbn_rows", "keras_dbn_source"


def indexed_batches(x, batch_size=32, shuffle=True, seed=None):
    """`array_dataset`'s batches as row indices into a zero-copy view of ``x``.

    For a training step that gathers its own batch (`take_batch`): the
    gather then runs inside the step, on the step's threads and beside its
    other work, instead of in the input pipeline between steps. Measured on
    2 cores, ``RBM.fit`` on MNIST (784x500) in TensorFlow's graph, paired
    A/Bs of whole ``fit()`` calls: 1.02x with mixed bfloat16 at batch 100
    and 1000, 1.015x in float32 at batch 1000 (``benchmarks/RESULTS.md``).
    An XLA-compiled step gathered more slowly than the pipeline (0.89-0.98x
    at batch 100), so `RBM.fit` uses this only for the graph. The rows and
    their order are `array_dataset`'s.

    Args:
        x: NumPy array, rows are examples.
        batch_size: rows per batch; the last batch may be smaller.
        shuffle: draw a new order each iteration.
        seed: an int; the same seed gives the same sequence of orders.

    Returns:
        A `tf.data.Dataset` whose elements are dicts holding a batch's row
        indices (``ROWS``) and the view (``SOURCE``, the same tensor in
        every element, so nothing is copied), or ``None`` where ``x`` cannot
        be viewed without a copy (see `as_aligned`).

    Example:

        >>> ds = indexed_batches(as_aligned(x_train), batch_size=100, seed=0)
        >>> batch = take_batch(next(iter(ds)))  # rows of x_train
    """
    view = _tensor_view(x)  # None for anything but a viewable NumPy array
    if view is None:
        return None
    n, batch_size = len(x), checked_batch_size(batch_size)
    return _indexed(view, n, batch_size, _row_batches(n, batch_size, shuffle, seed))


def _indexed(view, n, batch_size, rows):
    """`indexed_batches` of the batches of ``n`` rows that ``rows`` (`_row_batches`) sends."""
    import tensorflow as tf

    # Zipped, not mapped on: one function less to instantiate per epoch. The
    # view is held by reference, not copied.
    sources = tf.data.Dataset.from_tensors(view).repeat()
    indexed = _from_rows(tf.data.Dataset.zip({ROWS: rows, SOURCE: sources}), n, batch_size)
    return _marked(indexed, batch_size)


class ReusedRowOrders:
    """`indexed_batches` for a caller that reads arrays of one length again
    and again (`RBM.fit`, once per call): the shuffled rows' part of the
    pipeline is built once and restarted with each call's seed.

    Building it took ~11 of the ~16 ms that `indexed_batches` took for
    MNIST on 2 cores (tracing its function), at every ``fit`` call. Its
    orders are those of a new `indexed_batches` of the same seed: each
    pass draws its seed from `_PassSeeds` as it starts. A pipeline still
    being read (a ``fit`` called inside another one's callback) must not be
    restarted: pass ``reuse=False`` for it.
    """

    def __init__(self):
        self._length = self._rows = self._seeds = None

    def indexed_batches(self, x, batch_size, shuffle, seed, reuse=True):
        """`indexed_batches` (same arguments), reusing the last call's rows
        where ``x`` has as many rows and the batch size is the same."""
        view = _tensor_view(x)
        if view is None:
            return None
        n, batch_size = len(x), checked_batch_size(batch_size)
        if not shuffle or not reuse:  # unshuffled rows are slices: nothing to trace
            return _indexed(view, n, batch_size, _row_batches(n, batch_size, shuffle, seed))
        if self._length != (n, batch_size):
            self._seeds = _PassSeeds(seed)
            self._rows = _shuffled_row_batches(n, batch_size, self._seeds)
            self._length = (n, batch_size)
        else:
            self._seeds.restart(seed)
        return _indexed(view, n, batch_size, self._rows)


def take_batch(data):
    """The batch an `indexed_batches` element stands for; other data unchanged.

    Args:
        data: an element of `indexed_batches`, or any batch.

    Returns:
        ``tf.gather`` of the element's rows from its view (in the view's
        dtype), or ``data`` itself.
    """
    if isinstance(data, dict) and set(data) == {ROWS, SOURCE}:
        import tensorflow as tf

        return tf.gather(data[SOURCE], data[ROWS])
    return data


def _row_batches(n, batch_size, shuffle, seed):
    """The row indices of each batch of ``n`` rows, as `int64` vectors.

    The rows and their order are those of `array_dataset`'s NumPy path: one
    order per epoch from `_epoch_order`, computed once per epoch from the
    seed `_PassSeeds` draws for it, or the rows in order without
    ``shuffle``. tf.data instantiates every function
    of a pipeline anew for each iterator, i.e. each Keras epoch (~2.5 ms
    each on 2 cores), so the pipeline holds few: none without ``shuffle``,
    and with it the epoch's order and the one that ``rebatch`` maps on
    (which cuts the order into batches, where a dataset made inside a
    ``flat_map`` would add the instantiation of its own functions).
    """
    import tensorflow as tf

    if not shuffle:  # slices, without the function that `rebatch` maps on
        full = n - n % batch_size
        rows = tf.data.Dataset.from_tensor_slices(
            np.arange(full, dtype=np.int64).reshape(-1, batch_size))
        if full < n:
            rows = rows.concatenate(tf.data.Dataset.from_tensors(np.arange(full, n, dtype=np.int64)))
        return rows

    return _shuffled_row_batches(n, batch_size, _PassSeeds(seed))


def _shuffled_row_batches(n, batch_size, seeds):
    """`_row_batches` with ``shuffle``, each pass's order drawn from ``seeds``
    (a `_PassSeeds`) as the pass starts."""
    import tensorflow as tf

    def order(_):
        return _epoch_order(n, batch_size, seeds.draw()).astype(np.int64)

    def epoch_rows(trigger):
        rows = tf.numpy_function(order, [trigger], tf.int64)
        rows.set_shape((n,))
        return rows

    return tf.data.Dataset.from_tensors(np.int64(0)).map(epoch_rows).rebatch(batch_size)


def _from_rows(ds, n, batch_size):
    """A pipeline over `_row_batches` as `array_dataset` and `indexed_batches` return it.

    It has its known cardinality and `lean_options`, without prefetch and
    without tf.data's graph rewrites:

    - No prefetch: the gather is cheap, and run ahead on a pipeline thread
      it slowed the step's GEMMs more than it saved (paired A/Bs of
      ``RBM.fit`` on MNIST without it: 1.07x at batch 1000, 1.03-1.05x at
      batch 100).
    - No rewrites (they include the injected prefetch): to rewrite a
      pipeline, tf.data serialises it, and the array views it holds go into
      that graph as constants, i.e. a full copy of the arrays, made when the
      first iterator of each new dataset (each ``fit()`` call) is created
      and held as long as the dataset lives. Measured: a 717 MiB array
      added 753 MiB to the resident memory of its first ``RBM.fit`` call,
      and the copy took 30-40 ms for MNIST and ~100 ms for 240,000 images.
      The pipeline is already what a rewrite would make it.
    """
    import tensorflow as tf

    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size)))
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.experimental_optimization.inject_prefetch = False
    return ds.with_options(lean_options()).with_options(options)


class _PassSeeds:
    """The seed of each pass over an array's rows (each iteration of its
    pipeline, i.e. each Keras epoch), drawn as the pass starts.

    The k-th pass after a start from ``seed`` gets the same seed whichever
    pipeline draws it, so one pipeline, built once, serves calls of other
    seeds (`restart`, `ReusedRowOrders`), where `tf.data.Dataset.random`
    fixes its seed when the pipeline is built. Without a seed each start
    draws one from TensorFlow's global random state, as an unseeded
    `tf.data.Dataset.random` does: runs are reproducible after
    `keras.utils.set_random_seed` (or `tf.random.set_seed`).
    """

    def __init__(self, seed=None):
        import threading

        self._lock = threading.Lock()  # drawn on tf.data's threads
        self.restart(seed)

    def restart(self, seed):
        """Starts the sequence of ``seed`` (an int or None) again, at its first pass."""
        from keras_dbn.rbm import checked_seed  # rbm imports this module

        seed = checked_seed(seed)
        if seed is None:
            import tensorflow as tf

            seed = int(tf.random.uniform((), 0, 2**62, dtype=tf.int64))
        # SeedSequence takes no negative seeds; int64 ones stay distinct.
        start = np.random.SeedSequence(seed % 2**64).entropy
        with self._lock:
            self._start, self._passes = start, 0

    def draw(self):
        """The next pass's seed, an int below ``2**63`` (an int64 tensor carries it)."""
        with self._lock:
            words = np.random.SeedSequence([self._start, self._passes]).generate_state(
                2, np.uint32)
            self._passes += 1
        return (int(words[0]) << 31) ^ int(words[1])


def _per_epoch(epoch, seed, cardinality):
    """``epoch(epoch_seed)``'s batches, with a fresh seed for each iteration.

    Each iteration over the result (each Keras epoch) draws a new seed,
    reproducible from ``seed``, and the result has a known cardinality;
    two batches are prepared ahead. The pipeline runs on one thread
    (`lean_options`).
    """
    import tensorflow as tf

    seeds = _PassSeeds(seed)

    def drawn_epoch(_):
        epoch_seed = tf.numpy_function(lambda: np.int64(seeds.draw()), [], tf.int64)
        epoch_seed.set_shape(())
        return epoch(epoch_seed)

    ds = tf.data.Dataset.from_tensors(np.int64(0)).flat_map(drawn_epoch)
    ds = ds.apply(tf.data.experimental.assert_cardinality(cardinality))
    return ds.prefetch(2).with_options(lean_options())


#: The attribute that holds the rows per batch of an `array_dataset`.
_BATCH_ROWS_ATTRIBUTE = "_keras_dbn_batch_rows"

#: tf.data transformations whose elements are their input's elements, or a
#: function of one element (map), so that their batches are the input's.
_BATCH_KEEPING = frozenset({
    "_AssertCardinalityDataset", "CacheDataset", "_FilterDataset", "_IgnoreErrorsDataset",
    "_MapDataset", "_MemoryCacheDataset", "_OptionsDataset", "_ParallelMapDataset",
    "_PrefetchDataset", "_RepeatDataset", "_ShuffleDataset", "_SkipDataset", "_TakeDataset",
})

#: tf.data's batching transformations, which hold their ``_batch_size``.
_BATCHING = frozenset({"_BatchDataset", "_PaddedBatchDataset", "_ParallelBatchDataset"})


def _marked(dataset, batch_size):
    setattr(dataset, _BATCH_ROWS_ATTRIBUTE, batch_size)
    return dataset


def batch_rows(dataset):
    """The most rows a batch of ``dataset`` holds, where its pipeline shows it.

    A dataset batched by ``Dataset.batch(n)`` without ``drop_remainder``
    has batches of unknown size in its ``element_spec`` (the last may be
    smaller), although every other batch has ``n`` rows. This follows the
    pipeline back from its last transformation to that ``batch`` (or
    ``padded_batch``, `array_dataset`, `indexed_batches`) through the
    transformations that keep batches whole: ``map``, ``prefetch``,
    ``shuffle``, ``cache``, ``repeat``, ``take``, ``skip``, ``filter``,
    ``with_options`` and ``zip`` (whose batched parts must agree). It
    reads tf.data's private attributes (``_input_dataset``,
    ``_batch_size``); a pipeline it cannot read, including one built by
    another version of TensorFlow, gives ``None``. A ``map`` is taken to
    keep the rows of its batches: the result is a hint for speed
    (`RBM.fit`'s XLA routes, `RBM.predict`'s steps per execution), not a
    promise.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        The rows of a full batch as an int, or ``None`` where unknown.

    Example:

        >>> ds = tf.data.Dataset.from_tensor_slices(x_small).batch(100).prefetch(2)
        >>> batch_rows(ds)
        100
    """
    import tensorflow as tf

    found = set()
    pending = [dataset]
    while pending and len(found) <= 1:
        ds = pending.pop()
        kind = type(ds).__name__
        marked = getattr(ds, _BATCH_ROWS_ATTRIBUTE, None)
        if marked is not None:
            found.add(int(marked))
        elif kind in _BATCHING:
            rows = tf.get_static_value(getattr(ds, "_batch_size", None))
            if rows is None or rows < 1:
                return None
            found.add(int(rows))
        elif kind == "_ZipDataset":
            pending.extend(tf.nest.flatten(getattr(ds, "_datasets", ())))
        elif kind in _BATCH_KEEPING and hasattr(ds, "_input_dataset"):
            pending.append(ds._input_dataset)
        elif kind != "_RandomDataset":  # zipped random seeds have no batches
            return None
    return found.pop() if len(found) == 1 else None


def batch_footprint(dataset):
    """The rows of a full batch of ``dataset`` and the bytes its tensors hold.

    The rows are the batch dimension of ``element_spec`` where it is
    static, else `batch_rows`; the bytes add up every tensor of the element
    (inputs, labels, weights). An `indexed_batches` element counts its row
    indices only: its view is the same tensor in every element, so holding
    many elements holds one view.

    Args:
        dataset: a `tf.data.Dataset` of batches.

    Returns:
        ``(rows, nbytes)`` as ints, or ``None`` where unknown: rows that the
        pipeline does not show, an element that is not made of plain
        tensors of rank 1 or more, or a non-batch dimension that is not
        static.

    Example:

        >>> batch_footprint(array_dataset(np.zeros((10, 784), "float32"), batch_size=4))
        (4, 12544)
    """
    import tensorflow as tf

    spec = dataset.element_spec
    if isinstance(spec, dict) and set(spec) == {ROWS, SOURCE}:
        spec = spec[ROWS]
    specs = tf.nest.flatten(spec)
    row_bytes, static_rows = 0, set()
    for part in specs:
        if (not isinstance(part, tf.TensorSpec) or part.shape.rank in (None, 0)
                or not part.shape[1:].is_fully_defined() or not part.dtype.is_numpy_compatible
                or part.dtype == tf.string):
            return None
        row_bytes += part.dtype.size * part.shape[1:].num_elements()
        static_rows.add(part.shape[0])
    rows = static_rows.pop() if len(static_rows) == 1 else None
    if rows is None:
        rows = batch_rows(dataset)
    return None if rows is None else (int(rows), int(rows) * row_bytes)


def lean_options():
    """`tf.data.Options` that keep an input pipeline on one thread.

    For in-memory batches the pipeline's work (one gather per batch) is
    small next to a training step; on a machine with few cores, autotuning
    and parallel calls take cores from the step's GEMMs instead. Measured on
    2 cores, ``RBM.fit`` on MNIST, 784x500, batch 1000: whole 3-epoch calls
    ran at ~39,000 samples/s through `array_dataset` with these options and
    ~29,400 through Keras' own array pipeline (``benchmarks/RESULTS.md``).
    `array_dataset` applies them itself.

    Returns:
        A `tf.data.Options` to pass to ``dataset.with_options``.

    Example:

        >>> ds = tf.data.Dataset.from_tensor_slices(x_small).batch(100)
        >>> ds = ds.with_options(lean_options())
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return options


def untuned_options():
    """`tf.data.Options` that turn tf.data's autotuning off, threads unchanged.

    An autotuned pipeline (TensorFlow's default) runs a model thread that
    wakes 10, 30, 70, ..., 10 * (2**n - 1) ms after its iterator starts;
    the iterator's destruction, at the end of every Keras epoch and of
    every ``fit``, ``evaluate`` and ``predict`` call, often waits for that
    thread's next wake, up to as long again as the iterator lived.
    Measured on 2 cores (``benchmarks/input_pipelines.py``): 3 of 16
    two-epoch fine-tuning calls with autotuning took 1.5-2x as long as the
    others, none of 16 without. Parallel stages keep their
    parallelism (``AUTOTUNE`` then means one call per core); only the
    tuning of buffer sizes and parallelism while running is lost.

    Returns:
        A `tf.data.Options` to pass to ``dataset.with_options``.

    Example:

        >>> ds = ds.with_options(untuned_options())
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def without_autotuning(dataset):
    """``dataset`` with tf.data's autotuning off, unless its options set it.

    What `keras_dbn` does to the datasets it iterates (`untuned_options`
    says why); a pipeline whose ``options().autotune.enabled`` is set
    either way is returned as it is. Anything that is not a
    `tf.data.Dataset` is returned unchanged.

    Args:
        dataset: a `tf.data.Dataset`, or any other ``fit`` input.

    Returns:
        The dataset to iterate.

    Example:

        >>> rbm.fit(without_autotuning(ds), epochs=10)  # what RBM.fit does itself
    """
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset) or dataset.options().autotune.enabled is not None:
        return dataset
    return dataset.with_options(untuned_options())
