"""Batches of an in-memory NumPy array as a `tf.data.Dataset`, without copies.

Keras turns a NumPy array passed to ``fit()`` or ``predict()`` into tensors
and a ``tf.data`` pipeline that captures them: measured on MNIST-sized and
larger arrays, that holds about three copies of the data at its peak, and on
a 2-core machine its autotuned parallel map competes with the training step
for the cores (one epoch in three ran ~1.7x slower). `array_dataset` instead
reads batches straight from the caller's array (one NumPy gather of about
8 MiB, several batches, per ``tf.numpy_function`` call), so the only
full-size copy is the caller's own, and `lean_options` keeps the input
pipeline on one thread.
"""

import numpy as np

#: About how many bytes one read from the arrays gathers: several batches at
#: a time, since each ``tf.numpy_function`` call costs ~0.1 ms of CPU, as much
#: as gathering a 100 x 784 float32 batch.
_READ_BYTES = 8 << 20


def array_dataset(x, y=None, batch_size=32, shuffle=True, seed=None, dtype="float32"):
    """A batched, optionally shuffled `tf.data.Dataset` over NumPy arrays.

    Each iteration over the dataset (each Keras epoch) draws a new random
    order when ``shuffle`` is true; every example appears once per
    iteration. The rows of each batch are read in increasing index order
    (faster gathers; the order inside a batch does not change a mean
    gradient). Batches are gathered on demand, about 8 MiB at a time, so
    the arrays are never copied whole.

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
        ValueError: for a batch size below 1, an empty array, or ``y`` of
            another length.

    Example:
        >>> ds = array_dataset(x_train, batch_size=100, seed=0)
        >>> rbm.fit(ds, epochs=10)
    """
    import tensorflow as tf

    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    batch_size = int(batch_size)
    n = len(x)
    if n == 0:
        raise ValueError("The array holds no examples.")
    if y is not None:
        y = np.asarray(y)
        if len(y) != n:
            raise ValueError(f"x has {n} rows but y has {len(y)}.")
    out_dtype = np.dtype(dtype) if dtype is not None else x.dtype
    # (array, dtype of its batches): x, then the labels if any.
    columns = [(x, out_dtype)] + ([] if y is None else [(y, y.dtype)])
    full_batches, tail_rows = divmod(n, batch_size)
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
            cached["order"] = np.random.default_rng(epoch_seed).permutation(n)
        rows = cached["order"][start:stop]
        return np.sort(rows.reshape(count, -1), axis=1).ravel()

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

    # A fresh seed for each iteration (each epoch), reproducible from `seed`.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    ds = seeds.flat_map(epoch)
    ds = ds.apply(tf.data.experimental.assert_cardinality(full_batches + bool(tail_rows)))
    return ds.prefetch(2)


def lean_options():
    """`tf.data.Options` that keep an input pipeline on one thread.

    For in-memory batches the pipeline's work (one gather per batch) is
    small next to a training step; on a machine with few cores, autotuning
    and parallel calls take cores from the step's GEMMs instead. Measured on
    2 cores, ``RBM.fit`` on MNIST, 784x500, batch 1000: whole 3-epoch calls
    ran at ~39,000 samples/s through `array_dataset` with these options and
    ~29,400 through Keras' own array pipeline (``benchmarks/RESULTS.md``).

    Returns:
        A `tf.data.Options` to pass to ``dataset.with_options``.

    Example:
        >>> ds = array_dataset(x_train, batch_size=1000).with_options(lean_options())
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return options
