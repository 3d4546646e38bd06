"""`array_dataset` batches, and RBM.fit's NumPy path built on it."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dbn
from keras_dbn import array_input
from keras_dbn.array_input import array_dataset

from spies import record_data


def rows_of(ds):
    return np.concatenate([np.asarray(b) for b in ds])


def test_every_row_once_per_iteration_in_a_new_order():
    x = np.arange(103, dtype="float32")[:, None] * np.ones((1, 3), "float32")
    ds = array_dataset(x, batch_size=10, seed=0)
    assert int(ds.cardinality()) == 11
    first, second = rows_of(ds), rows_of(ds)
    sizes = [len(b) for b in ds]
    assert sizes == [10] * 10 + [3]
    for epoch in (first, second):
        np.testing.assert_array_equal(np.sort(epoch[:, 0]), np.arange(103))
    assert not np.array_equal(first, second)  # reshuffled each iteration
    for batch in ds:  # rows of a batch come in increasing index order
        assert np.all(np.diff(np.asarray(batch)[:, 0]) > 0)


def test_no_shuffle_keeps_order_and_seed_reproduces_order():
    x = np.random.default_rng(0).random((57, 4)).astype("float32")
    np.testing.assert_array_equal(rows_of(array_dataset(x, batch_size=8, shuffle=False)), x)
    a = rows_of(array_dataset(x, batch_size=8, seed=3))
    b = rows_of(array_dataset(x, batch_size=8, seed=3))
    c = rows_of(array_dataset(x, batch_size=8, seed=4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_labels_stay_paired_and_dtype_is_converted_per_batch():
    x = np.arange(40, dtype="uint8").reshape(20, 2)
    y = np.arange(20, dtype="int64")
    ds = array_dataset(x, y, batch_size=6, seed=1)
    for xb, yb in ds:
        assert xb.dtype == tf.float32 and yb.dtype == tf.int64
        np.testing.assert_array_equal(np.asarray(xb), x[np.asarray(yb)].astype("float32"))


def test_batches_are_read_from_the_callers_array_not_a_copy():
    x = np.zeros((30, 2), "float32")
    ds = array_dataset(x, batch_size=7, shuffle=False)
    x[:] = 1.0  # a copy taken when the dataset was made would still hold zeros
    np.testing.assert_array_equal(rows_of(ds), np.ones((30, 2)))


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_do_not_depend_on_how_many_one_read_gathers(monkeypatch, shuffle):
    """Several batches are gathered per read; grouping them differently
    (one per read, three per read with a shorter last read, all at once)
    gives the same batches in the same order."""
    x = np.arange(2 * 47, dtype="float32").reshape(47, 2)
    y = np.arange(47)
    batches = {}
    for read_bytes in (1, 3 * 5 * (2 * 4 + 8), 1 << 20):
        monkeypatch.setattr(array_input, "_READ_BYTES", read_bytes)
        ds = array_dataset(x, y, batch_size=5, shuffle=shuffle, seed=7)
        batches[read_bytes] = [(np.asarray(a), np.asarray(b)) for a, b in ds]
    assert [len(b) for b, _ in batches[1]] == [5] * 9 + [2]
    for grouped in batches.values():
        for (xa, ya), (xb, yb) in zip(grouped, batches[1]):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(xa[:, 0], 2 * ya)
    rows = np.concatenate([b for _, b in batches[1]])
    np.testing.assert_array_equal(np.sort(rows), np.arange(47))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(x=np.zeros((0, 3))), "no examples"),
        (dict(x=np.zeros((5, 3)), batch_size=0), "batch_size"),
        (dict(x=np.zeros((5, 3)), batch_size=2.5), "batch_size"),
        (dict(x=np.zeros((5, 3)), y=np.zeros(4)), "y has 4"),
        (dict(x=np.zeros((5, 3)), batch_size=None), "batch_size"),
        (dict(x=np.zeros((5, 3)), batch_size="3"), "batch_size"),
        (dict(x=np.float32(3)), "got a scalar"),
        # These failed only at the first batch, inside tf.data.
        (dict(x=np.array([["a", "b"]] * 4)), "x must hold numbers, got an array of dtype <U1"),
        (dict(x=np.zeros((4, 2)), y=np.array([1, "a", 2, 3], dtype=object)),
         "y holds Python objects that are not all numbers or all strings"),
        (dict(x=np.array([[1.0], [None]], dtype=object)), "x holds Python objects"),
        (dict(x=np.array([np.zeros(3), np.zeros(2)], dtype=object)), "x holds Python objects"),
        (dict(x=np.zeros((4, 2)), y=np.arange(4).astype("datetime64[D]")),
         "y must hold numbers or strings, got an array of dtype datetime64"),
        (dict(x=np.zeros((4, 2)), y=np.arange(4).astype("timedelta64[s]")),
         "y must hold numbers or strings"),
        # NumPy's or TensorFlow's own messages, not naming the seed, before.
        (dict(x=np.zeros((4, 2)), seed="a"), "`seed` must be an integer or None, got 'a'"),
        (dict(x=np.zeros((4, 2)), seed=1.5), "`seed` must be an integer or None"),
        (dict(x=np.zeros((4, 2)), seed=2**63), r"`seed` must be an integer in \[-2\*\*63"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        array_dataset(**kwargs)


def test_arrays_of_python_numbers_or_strings_are_read_as_such():
    """Labels in an object array (pandas gives them) failed at the first batch."""
    x = np.arange(8, dtype="float32").reshape(4, 2)
    batches = list(array_dataset(x.astype(object), np.array([0, 1, 2, 3], dtype=object),
                                 batch_size=4, shuffle=False))
    np.testing.assert_array_equal(batches[0][0], x)
    np.testing.assert_array_equal(batches[0][1], [0, 1, 2, 3])
    words = list(array_dataset(x, np.array(["a", "b", "c", "d"], dtype=object), batch_size=4,
                               shuffle=False))
    assert words[0][1].numpy().tolist() == [b"a", b"b", b"c", b"d"]
    raw = list(array_dataset(x, np.array([b"a", b"b", b"c", b"d"], dtype=object), batch_size=4,
                             shuffle=False))
    assert raw[0][1].numpy().tolist() == [b"a", b"b", b"c", b"d"]


def binary_data(n=240, v=12, seed=0):
    return (np.random.default_rng(seed).random((n, v)) < 0.3).astype("float32")


def test_rbm_fit_on_arrays_trains_on_the_same_batches_as_keras_would():
    """Without shuffling, fit(array) and fit(dataset of the same batches)
    apply exactly the same updates (same seed, same sampling noise)."""
    x = binary_data()
    weights = []
    for data, kwargs in [
        (x, dict(batch_size=32, shuffle=False)),
        (tf.data.Dataset.from_tensor_slices(x).batch(32), {}),
    ]:
        rbm = keras_dbn.RBM(5, seed=7)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1))
        rbm.fit(data, epochs=2, verbose=0, **kwargs)
        assert int(rbm.optimizer.iterations.numpy()) == 2 * 8
        weights.append(rbm.kernel.numpy())
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-6, atol=1e-7)


def test_rbm_fit_validation_split_holds_out_the_last_rows():
    x = binary_data(200)
    x[160:] = 0.0  # the last 20%: a different distribution from the rest
    rbm = keras_dbn.RBM(4, seed=0)
    history = rbm.fit(x, batch_size=40, epochs=1, verbose=0, validation_split=0.2)
    # 160 training rows at batch 40: 4 updates, never on the held-out rows.
    assert int(rbm.optimizer.iterations.numpy()) == 4
    held_out = float(np.mean(rbm.free_energy(x[160:]).numpy()))
    assert history.history["val_free_energy"][0] == pytest.approx(held_out, rel=1e-5)
    with pytest.raises(ValueError, match="validation_split"):
        rbm.fit(x, epochs=1, verbose=0, validation_split=1.5)
    with pytest.raises(ValueError, match=r"validation_split=0.999 of 200 rows leaves no rows to train"):
        rbm.fit(x, epochs=1, verbose=0, validation_split=0.999)
    with pytest.raises(ValueError, match="positive integer, got '4'"):  # not a comparison's TypeError
        rbm.fit(x, batch_size="4", epochs=1, verbose=0)


def unaligned_copy(x):
    """``x`` copied 4 bytes past a 64-byte boundary: read through NumPy."""
    out = array_input.aligned_empty((x.size + 1,), x.dtype)[1:].reshape(x.shape)
    out[...] = x
    assert not array_input.is_aligned(out)
    return out


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("shuffle", [False, True])
def test_rbm_fit_never_writes_into_the_callers_arrays(shuffle, aligned):
    """Neither input path lets TensorFlow write into the caller's arrays:
    NumPy reads hand TensorFlow copies (an aligned view could be adopted by
    TensorFlow and overwritten in place by an element-wise op; it was, for
    the held-out rows, in a draft), and the zero-copy view of an aligned
    array is only ever read by ``tf.gather``."""
    prepare = array_input.as_aligned if aligned else unaligned_copy
    x = prepare(binary_data(200))
    x[160:] = 0.0
    validation = prepare(binary_data(40, seed=1))
    x_before, validation_before = x.copy(), validation.copy()
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.fit(x, batch_size=40, epochs=2, verbose=0, shuffle=shuffle, validation_split=0.2)
    rbm.fit(x, batch_size=40, epochs=1, verbose=0, shuffle=shuffle,
            validation_data=validation)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(validation, validation_before)


def test_aligned_arrays():
    x = array_input.aligned_empty((7, 5, 3), "float32")
    assert x.shape == (7, 5, 3) and x.dtype == np.float32
    assert array_input.is_aligned(x) and x.flags.writeable
    data = np.arange(60, dtype="float64").reshape(20, 3)
    copy = array_input.as_aligned(data)
    assert array_input.is_aligned(copy) and copy.dtype == np.float32
    np.testing.assert_array_equal(copy, data)
    assert array_input.as_aligned(copy) is copy  # already aligned: no copy
    assert array_input.as_aligned(data, dtype=None).dtype == np.float64
    assert not array_input.is_aligned(copy[1:])  # 12 bytes past the boundary
    assert array_input.aligned_empty(6, "int8").shape == (6,)
    with pytest.raises(ValueError, match="negative dimensions"):  # gave a (0, 3) array
        array_input.aligned_empty((-1, 3))


def spy_on_views(monkeypatch):
    """Records, per array_dataset call, whether it gathered from views."""
    calls = []
    real = array_input._gathered
    monkeypatch.setattr(
        array_input, "_gathered", lambda *args: calls.append(True) or real(*args)
    )
    return calls


@pytest.mark.parametrize("shuffle", [True, False])
def test_aligned_arrays_are_gathered_from_views_in_the_numpy_paths_order(
    monkeypatch, shuffle
):
    """Aligned arrays (here uint8 images converted per batch, and int64
    labels) are gathered from zero-copy views; the batches and their order
    are those NumPy reads of an unaligned copy give, also in later
    iterations, and changes to the array show in the batches."""
    calls = spy_on_views(monkeypatch)
    x = array_input.as_aligned(np.arange(2 * 103).reshape(103, 2) % 251, dtype="uint8")
    y = array_input.as_aligned(np.arange(103), dtype="int64")
    viewed = array_dataset(x, y, batch_size=10, shuffle=shuffle, seed=3)
    assert calls == [True]
    read = array_dataset(unaligned_copy(x), unaligned_copy(y), batch_size=10,
                         shuffle=shuffle, seed=3)
    assert calls == [True]  # the unaligned copy went through NumPy
    assert int(viewed.cardinality()) == 11
    for _ in range(2):  # two iterations: the same new order in both paths
        pairs = list(zip(viewed, read, strict=True))
        assert [len(a) for (a, _), _ in pairs] == [10] * 10 + [3]
        for (xa, ya), (xb, yb) in pairs:
            assert xa.dtype == tf.float32 and ya.dtype == tf.int64
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    x[:] = 7  # a view, not a copy: the change shows in the next batches
    assert np.all(np.asarray(next(iter(viewed))[0]) == 7.0)


@pytest.mark.parametrize("aligned", [True, False])
def test_pipeline_runs_on_one_thread_and_trains_a_keras_classifier(aligned):
    """Both read paths keep the pipeline on one thread (`lean_options`), and
    a plain Keras classifier fits on ``array_dataset(x, y)`` as on arrays."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = (rng.random((400, 6)) < np.where(y[:, None], 0.85, 0.15)).astype("float32")
    x = array_input.as_aligned(x) if aligned else unaligned_copy(x)
    ds = array_dataset(x, y, batch_size=20, seed=0)
    threading = ds.options().threading
    assert threading.private_threadpool_size == 1
    assert threading.max_intra_op_parallelism == 1
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # shuffle=False: no warning that Keras cannot shuffle
        history = model.fit(ds, epochs=8, verbose=0, shuffle=False)
    assert history.history["accuracy"][-1] > 0.9
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.9


def resident_mib():
    """This process's resident memory in MiB, or None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def test_rbm_fit_on_a_viewed_array_holds_no_copy_of_it():
    """Reading an aligned array through its view copies nothing whole.

    tf.data serialises a pipeline to rewrite it, and a view captured by the
    pipeline would go into that graph as a constant: a full copy of the
    array, resident while the dataset lives (so during fit()).
    """
    if resident_mib() is None:
        pytest.skip("needs /proc/self/status")
    x = array_input.aligned_empty((65536, 1024), "float32")  # 256 MiB
    x[:] = 0.0
    x[::3] = 1.0
    rbm = keras_dbn.RBM(2, seed=0)
    # TensorFlow's graph, not XLA (which `fit` would choose at this size):
    # the input pipeline under test is the same for both, but XLA's step
    # buffers settle later than the graph's, and in a long test process
    # they added ~67 MiB in the measured fit, which would blur a bound
    # meant to catch a 256 MiB copy. Batches of 4 MiB for the same reason:
    # a few batch-sized buffers of the pipeline and the allocator are
    # still resident when the epoch ends, which with 16 MiB batches added
    # 7-55 MiB alone and 84 MiB once in a full run; with 4 MiB ones -9 to
    # 24 MiB.
    rbm.compile(jit_compile=False)
    rbm.fit(x[:8192], batch_size=1024, verbose=0)  # built and traced
    during = []

    class Resident(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            during.append(resident_mib())

    before = resident_mib()
    rbm.fit(x, batch_size=1024, epochs=1, verbose=0, callbacks=[Resident()])
    assert during[0] - before < 64, (before, during)


def test_arrays_that_cannot_be_viewed_are_read_through_numpy(monkeypatch):
    calls = spy_on_views(monkeypatch)
    base = array_input.as_aligned(np.arange(256, dtype="float32").reshape(64, 4))
    read_only = array_input.as_aligned(base.copy())
    read_only.flags.writeable = False
    labels_unaligned = unaligned_copy(np.arange(64))
    for x, y in [(base[1:], None), (read_only, None), (base, labels_unaligned),
                 (base.astype(">f4"), None)]:
        batches = [np.asarray(b[0] if y is not None else b)
                   for b in array_dataset(x, y, batch_size=8, shuffle=False)]
        np.testing.assert_array_equal(np.concatenate(batches), x)
    assert calls == []


def spy_on_indexed_batches(monkeypatch):
    """Records, per indexed_batches call (also of `ReusedRowOrders`, which
    `RBM.fit` calls), whether it returned a dataset."""
    calls = []
    real, reused = array_input.indexed_batches, array_input.ReusedRowOrders.indexed_batches

    def spy(*args, **kwargs):
        ds = real(*args, **kwargs)
        calls.append(ds is not None)
        return ds

    def reused_spy(self, *args, **kwargs):
        ds = reused(self, *args, **kwargs)
        calls.append(ds is not None)
        return ds

    monkeypatch.setattr(array_input, "indexed_batches", spy)
    monkeypatch.setattr(array_input.ReusedRowOrders, "indexed_batches", reused_spy)
    return calls


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("shuffle", [True, False])
def test_rbm_fit_trains_identically_on_aligned_and_unaligned_arrays(
    monkeypatch, shuffle, jit_compile
):
    """The same values, aligned or not (read by NumPy): the same batches in
    the same order, so with the same seed the same weights and the same
    logs. An aligned array reaches TensorFlow's graph step as row indices
    that the step gathers from a zero-copy view, and an XLA step as batches
    gathered by the pipeline."""
    calls = spy_on_indexed_batches(monkeypatch)
    x = binary_data(250)
    validation = binary_data(50, seed=2)
    weights, logs = [], []
    for prepare in (array_input.as_aligned, unaligned_copy):
        rbm = keras_dbn.RBM(5, seed=11)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile)
        history = rbm.fit(prepare(x), batch_size=32, epochs=2, verbose=0, shuffle=shuffle,
                          validation_data=prepare(validation))
        weights.append([v.numpy() for v in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias)])
        logs.append(history.history)
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    assert logs[0] == logs[1]
    assert calls == ([] if jit_compile else [True, False])


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("batch_size", [None, 32])
def test_rbm_fit_with_steps_per_epoch_reads_arrays_as_keras_does_without_its_copy(
    monkeypatch, batch_size, jit_compile
):
    """With ``steps_per_epoch`` NumPy input still goes through keras_dbn's
    pipeline (no Keras copy of the array), with Keras' batches: where no
    batch size is given, the one that covers the rows in
    ``steps_per_epoch`` steps. Every epoch makes exactly the steps asked
    for, running on into the next pass over the data (250 rows at batch 32
    are 8 batches: the third epoch of 3 steps ends the first pass after 2
    and takes 1 from the second; Keras alone would cut it short, with a
    warning that the input ran out of data). The same updates, unshuffled,
    as Keras' own reading of the same batches from a repeated dataset."""
    calls, streamed = spy_on_indexed_batches(monkeypatch), spy_on_views(monkeypatch)
    x = binary_data(250)
    keras_batch = batch_size or -(-250 // 3)
    weights, updates = [], []
    for data in (array_input.as_aligned(x),
                 tf.data.Dataset.from_tensor_slices(x).batch(keras_batch).repeat()):
        rbm = keras_dbn.RBM(5, seed=11)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile,
                    steps_per_execution=1)  # Keras' epochs then have the steps asked for
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rbm.fit(data, batch_size=None if isinstance(data, tf.data.Dataset) else batch_size,
                    steps_per_epoch=3, epochs=4, verbose=0, shuffle=False)
        assert not [w for w in caught if "ran out of data" in str(w.message)]
        weights.append([v.numpy() for v in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias)])
        updates.append(int(rbm.optimizer.iterations.numpy()))
    assert updates == [12, 12]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert calls == ([] if jit_compile else [True])
    assert streamed == ([True] if jit_compile else [])
    for bad in (0, -1, 2.5, "3"):
        with pytest.raises(ValueError, match="steps_per_epoch"):
            rbm.fit(array_input.as_aligned(x), batch_size=batch_size, steps_per_epoch=bad,
                    verbose=0)


def test_rbm_fit_makes_one_input_iterator_per_epoch(monkeypatch):
    """Keras makes an iterator at each epoch's start and another, never read,
    at its end, unless ``steps_per_epoch`` is set; `RBM.fit` sets it to the
    dataset's number of batches (tf.data instantiates the pipeline's
    functions for every iterator), for the same epochs."""
    made = []
    real = tf.data.Dataset.__iter__
    monkeypatch.setattr(tf.data.Dataset, "__iter__", lambda ds: made.append(1) or real(ds))
    x = binary_data(250)
    for data in (array_input.as_aligned(x), x, tf.data.Dataset.from_tensor_slices(x).batch(32)):
        made.clear()
        rbm = keras_dbn.RBM(5, seed=0)
        history = rbm.fit(data, batch_size=None if isinstance(data, tf.data.Dataset) else 32,
                          epochs=5, verbose=0)
        assert int(rbm.optimizer.iterations.numpy()) == 5 * 8 and history.epoch == list(range(5))
        assert len(made) == 5 + 1, len(made)  # the first, then one at each epoch's end


@pytest.mark.parametrize("shuffle", [True, False])
def test_indexed_batches_stand_for_array_datasets_batches(shuffle):
    """`take_batch` of each element gives `array_dataset`'s batch, in the
    same order, also in a second iteration; the elements hold the view, not
    a copy; arrays that cannot be viewed give None."""
    x = array_input.as_aligned(np.arange(3 * 53).reshape(53, 3) % 7, dtype="uint8")
    indexed = array_input.indexed_batches(x, batch_size=10, shuffle=shuffle, seed=5)
    batches = array_dataset(x, batch_size=10, shuffle=shuffle, seed=5, dtype=None)
    assert int(indexed.cardinality()) == 6
    for _ in range(2):
        pairs = list(zip(indexed, batches, strict=True))
        assert [len(b) for _, b in pairs] == [10] * 5 + [3]
        for element, batch in pairs:
            assert element[array_input.SOURCE].shape == x.shape
            taken = array_input.take_batch(element)
            assert taken.dtype == tf.uint8
            np.testing.assert_array_equal(taken, batch)
    x[:] = 4  # a view: the change shows in the next batch
    assert np.all(np.asarray(array_input.take_batch(next(iter(indexed)))) == 4)
    batch = tf.ones((2, 3))
    assert array_input.take_batch(batch) is batch
    assert array_input.indexed_batches(unaligned_copy(x), batch_size=10) is None
    assert array_input.indexed_batches(x[:0], batch_size=10) is None
    with pytest.raises(ValueError, match="batch_size"):
        array_input.indexed_batches(x, batch_size=0)


def _row_passes(dataset, passes):
    """The row indices of the first ``passes`` iterations of an `indexed_batches`."""
    return [np.concatenate([np.asarray(e[array_input.ROWS]) for e in dataset]).tolist()
            for _ in range(passes)]


def test_reused_row_orders_give_new_pipelines_orders_and_trace_once(monkeypatch):
    """`ReusedRowOrders` builds the shuffled rows once for arrays of one
    length and batch size, and each call (restarted with its seed) reads
    the orders of a new `indexed_batches` of that seed: the same sequence
    again for the same seed, another for another. A call with
    ``reuse=False`` (a `fit` inside another's callback) leaves the reused
    pipeline's sequence where it was."""
    built = []
    real = array_input._shuffled_row_batches
    monkeypatch.setattr(array_input, "_shuffled_row_batches",
                        lambda *args: built.append(args[:2]) or real(*args))
    x = array_input.as_aligned(np.zeros((53, 3), "float32"))
    other = array_input.as_aligned(np.ones((53, 3), "float32"))
    orders = array_input.ReusedRowOrders()
    expected = {seed: _row_passes(array_input.indexed_batches(x, 10, seed=seed), 3)
                for seed in (5, 6, None)}
    built.clear()
    for seed in (5, 6, 5):
        assert _row_passes(orders.indexed_batches(x, 10, True, seed), 3) == expected[seed]
    assert _row_passes(orders.indexed_batches(other, 10, True, 6), 3) == expected[6]
    assert built == [(53, 10)]  # once, for all four calls
    assert expected[5][0] != expected[5][1] != expected[5][2] and expected[5] != expected[6]
    # Unseeded calls draw fresh orders each time, each pass a permutation.
    fresh = [_row_passes(orders.indexed_batches(x, 10, True, None), 2) for _ in range(2)]
    assert fresh[0] != fresh[1] and fresh[0][0] != expected[None][0]
    assert all(sorted(rows) == list(range(53)) for rows in fresh[0] + fresh[1])
    # A pipeline still being read keeps its sequence past a call not to reuse it.
    reused = iter(orders.indexed_batches(x, 10, True, 5))
    first = np.concatenate([np.asarray(next(reused)[array_input.ROWS]) for _ in range(6)])
    assert _row_passes(orders.indexed_batches(x, 10, True, 6, reuse=False), 1) == expected[6][:1]
    assert first.tolist() == expected[5][0] and len(built) == 2
    # Other lengths or batch sizes rebuild; unshuffled rows are never traced.
    assert _row_passes(orders.indexed_batches(x[:50], 10, True, 5), 1) == _row_passes(
        array_input.indexed_batches(x[:50], 10, seed=5), 1)
    assert _row_passes(orders.indexed_batches(x, 10, False, 5), 1) == [list(range(53))]
    assert orders.indexed_batches(unaligned_copy(x), 10, True, 5) is None
    assert built[2:] == [(50, 10), (50, 10)]


def test_pass_seeds_take_any_int64_seed():
    """Negative seeds too (NumPy's SeedSequence takes none), each its own sequence."""
    def two_draws(seed):
        seeds = array_input._PassSeeds(seed)
        return [seeds.draw(), seeds.draw()]

    draws = {seed: two_draws(seed) for seed in (-(2**63), -1, 0, 1, 2**63 - 1)}
    assert len({tuple(d) for d in draws.values()}) == len(draws)
    assert all(0 <= d < 2**63 for pair in draws.values() for d in pair)
    assert two_draws(-1) == draws[-1] and draws[-1][0] != draws[-1][1]
    with pytest.raises(ValueError, match="seed"):
        array_input._PassSeeds(1.5)


def test_rbm_fit_reuses_its_rows_pipeline_but_not_inside_another_fit(monkeypatch):
    """Calls of a seeded RBM train as a new pipeline per call would: two
    RBMs of one seed, one fitted on both arrays of one length, the other
    given a new pipeline object before each call, end with the same
    weights; a `fit` from a callback of another asks for no reuse."""
    asked = []
    real = array_input.ReusedRowOrders.indexed_batches

    def spy(self, *args, reuse=True, **kwargs):
        asked.append(reuse)
        return real(self, *args, reuse=reuse, **kwargs)

    monkeypatch.setattr(array_input.ReusedRowOrders, "indexed_batches", spy)
    x, other = array_input.as_aligned(binary_data(90)), array_input.as_aligned(binary_data(90, seed=3))
    rbms = [keras_dbn.RBM(4, seed=2) for _ in range(2)]
    for index, rbm in enumerate(rbms):
        # TensorFlow's graph: XLA steps read `array_dataset`s, not row indices.
        rbm.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        for data in (x, other, x):
            if index:
                rbm._row_orders = array_input.ReusedRowOrders()
            rbm.fit(data, batch_size=20, epochs=2, verbose=0)
    for a, b in zip(rbms[0].get_weights(), rbms[1].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert asked == [True] * 6
    asked.clear()

    class FitAgain(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch < 2:
                self.model.fit(other, batch_size=20, epochs=1, verbose=0)

    # The second inner call too: the first one's end left the outer call's
    # flag cleared, and the second restarted the outer call's pipeline.
    rbms[0].fit(x, batch_size=20, epochs=3, verbose=0, callbacks=[FitAgain()])
    assert asked == [True, False, False]


def test_unseeded_shuffles_follow_keras_global_seed():
    """Without a seed the orders come from TensorFlow's global random state,
    as `tf.data.Dataset.random` gave them: the same after
    `keras.utils.set_random_seed(0)`, other ones without it (drawing from
    the OS's entropy, a draft made unseeded runs irreproducible)."""
    x = array_input.as_aligned(np.zeros((53, 3), "float32"))
    orders = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        fresh = _row_passes(array_input.indexed_batches(x, 10), 2)
        keras.utils.set_random_seed(0)
        reused = _row_passes(array_input.ReusedRowOrders().indexed_batches(x, 10, True, None), 2)
        orders.append((fresh, reused))
    assert orders[0] == orders[1]
    assert orders[0][0] == orders[0][1]  # the same draw through either pipeline
    assert _row_passes(array_input.indexed_batches(x, 10), 2) != orders[0][0]
    assert _row_passes(array_input.indexed_batches(x, 10), 2) != orders[0][0]


def test_rbm_fit_checks_validation_arrays_and_datasets_do_not_warn():
    x = binary_data()
    rbm = keras_dbn.RBM(4, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rbm.fit(x, epochs=1, verbose=0, validation_data=(x * 3, None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rbm.fit(tf.data.Dataset.from_tensor_slices(x).batch(20), epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]


def test_rbm_evaluates_and_fits_on_indexed_batches_passed_directly():
    """Indexed batches are a dataset like any other for an RBM's graph steps:
    evaluating on them gives the logs of the batches they stand for, and
    training on them the weights of training on those batches."""
    x = array_input.as_aligned(binary_data(90))
    logs, weights = [], []
    for data in (array_input.indexed_batches(x, batch_size=30, shuffle=False),
                 tf.data.Dataset.from_tensor_slices(x).batch(30)):
        rbm = keras_dbn.RBM(4, seed=3)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        rbm.fit(data, epochs=2, verbose=0)
        logs.append(rbm.evaluate(data, verbose=0, return_dict=True))
        weights.append(rbm.kernel.numpy())
    np.testing.assert_array_equal(weights[0], weights[1])
    assert logs[0] == pytest.approx(logs[1], rel=1e-6)


def test_steps_for_batches_of_unknown_size_scale_as_fit_s_full_batches():
    """A CD step traced for batches of unknown size scales its weight
    statistics as a step for `fit`'s full batches would (once, above V / 2
    rows), bit for bit, and is traced again when a later `fit`'s batches
    call for the other form."""
    x = array_input.as_aligned(binary_data(90))
    weights = []
    for static in (True, False):
        rbm = keras_dbn.RBM(4, seed=3)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        for rows in (2, 30):  # 2 * 2 < 6 visible units < 2 * 30
            data = (array_input.indexed_batches(x, batch_size=rows, shuffle=False) if static
                    else tf.data.Dataset.from_tensor_slices(x).batch(rows))
            assert (data.element_spec[array_input.ROWS].shape[0] if static
                    else data.element_spec.shape[0]) == (rows if static else None)
            rbm.fit(data, epochs=1, verbose=0)
        weights.append(rbm.kernel.numpy())
    np.testing.assert_array_equal(weights[0], weights[1])


def test_batch_rows_reads_the_batch_size_of_a_pipeline():
    x = np.zeros((130, 4), "float32")
    slices = tf.data.Dataset.from_tensor_slices(x)
    rows = array_input.batch_rows
    assert slices.batch(20).element_spec.shape[0] is None  # the last has 10 rows
    # Through transformations that keep batches whole.
    kept = (slices.shuffle(10).batch(20).map(lambda v: v * 2).filter(lambda v: True)
            .prefetch(1).cache().repeat().skip(1).take(5).with_options(tf.data.Options()))
    assert rows(kept) == 20
    assert rows(slices.padded_batch(9)) == rows(slices.batch(9, num_parallel_calls=2)) == 9
    assert rows(slices.batch(20).unbatch().batch(7)) == 7  # the last batching counts
    for dtype in ("float32", "float64"):  # gathered from a view, or read by NumPy
        ds = array_dataset(x.astype(dtype), batch_size=30)
        assert rows(ds) == rows(ds.map(lambda v: v)) == 30
    assert rows(array_input.indexed_batches(array_input.as_aligned(x), 30)) == 30
    seeds = tf.data.Dataset.random(seed=0)
    assert rows(tf.data.Dataset.zip((slices.batch(20), seeds))) == 20
    # Unknown: no batching, batches remade, zipped parts that disagree.
    assert rows(slices) is None
    assert rows(slices.batch(20).unbatch()) is None
    assert rows(slices.batch(20).rebatch(10)) is None
    assert rows(slices.batch(20).flat_map(tf.data.Dataset.from_tensors)) is None
    assert rows(tf.data.Dataset.zip((slices.batch(20), slices.batch(10)))) is None
    assert rows(tf.data.Dataset.from_generator(lambda: iter([x]), output_signature=tf.TensorSpec((None, 4)))) is None


def test_evaluation_input_reads_arrays_in_order_without_autotuning():
    """NumPy input of evaluate/predict becomes an unshuffled `array_dataset`
    with tf.data's autotuning off (whose model thread can stall the end of
    every Keras call), a dataset loses its autotuning; floats become
    float32, integers keep their type, and anything else passes through
    untouched."""
    x = np.arange(23 * 3, dtype="float64").reshape(23, 3)
    y = np.arange(23, dtype="int64") % 4
    data, no_y, no_batch = array_input.evaluation_input(x, y, batch_size=10)
    assert no_y is None and no_batch is None
    assert data.options().autotune.enabled is False
    batches = list(data)
    assert [len(b[0]) for b in batches] == [10, 10, 3]
    assert batches[0][0].dtype == tf.float32 and batches[0][1].dtype == tf.int64
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    tokens = np.arange(40, dtype="int32").reshape(10, 4)
    data, _, _ = array_input.evaluation_input(tokens)  # Keras' default batch of 32
    np.testing.assert_array_equal(rows_of(data), tokens)
    assert next(iter(data)).dtype == tf.int32
    stream = tf.data.Dataset.from_tensor_slices(x).batch(5)
    untuned, same_y, same_batch = array_input.evaluation_input(stream, y, 5)
    assert untuned.options().autotune.enabled is False and same_y is y and same_batch == 5
    np.testing.assert_array_equal(rows_of(untuned), x)
    for args in ((x.tolist(), None, 5), (x, y[:4], 5), (x[:0], None, None)):
        passed = array_input.evaluation_input(*args)
        assert all(a is b for a, b in zip(passed, args))


def test_validation_input_converts_arrays_and_datasets_and_keeps_the_rest():
    x, y = binary_data(50), np.arange(50) % 3
    pair = array_input.validation_input((x, y), 20)
    assert pair.options().autotune.enabled is False
    assert [len(b[0]) for b in pair] == [20, 20, 10]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in pair]), y)
    alone = array_input.validation_input(x)
    np.testing.assert_array_equal(rows_of(alone), x)
    stream = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    assert array_input.validation_input(stream).options().autotune.enabled is False
    weighted = (x, y, np.ones(50))
    for kept in (weighted, None, (x, y[:3])):
        assert array_input.validation_input(kept, 20) is kept


def autotuned_iterations(monkeypatch, rows=None):
    """A list that records, for each tf.data iterator made from now on (of
    a pipeline of batches of ``rows`` rows where given), whether its
    pipeline has autotuning on."""
    seen = []
    real = tf.data.Dataset.__iter__

    def spy(ds):
        if rows is None or array_input.batch_rows(ds) == rows:
            seen.append(ds.options().autotune.enabled is not False)
        return real(ds)

    monkeypatch.setattr(tf.data.Dataset, "__iter__", spy)
    return seen


def test_rbm_evaluates_and_predicts_arrays_as_the_same_batches_in_order(monkeypatch):
    """`RBM.evaluate` and `RBM.predict` on NumPy arrays give what they give
    on a pipeline of the same batches, read by iterators without tf.data's
    autotuning; labels and sample weights passed with arrays are still
    ignored; a last smaller batch keeps every row."""
    x = binary_data(95)
    trained = keras_dbn.RBM(4, seed=2)
    trained.fit(x, epochs=1, batch_size=20, verbose=0)
    twins = []  # same weights, same fresh random state (reconstructions sample)
    for _ in range(2):
        twins.append(keras_dbn.RBM(4, seed=7))
        twins[-1].build((None, 12))
        twins[-1].set_weights(trained.get_weights())
        twins[-1].compile()
    batches = tf.data.Dataset.from_tensor_slices(x).batch(20)
    expected = twins[0].evaluate(batches, verbose=0, return_dict=True)
    autotuned = autotuned_iterations(monkeypatch)
    got = twins[1].evaluate(x, np.zeros(95), batch_size=20, verbose=0, return_dict=True)
    assert got == pytest.approx(expected, rel=1e-6)
    rbm = trained
    predicted = rbm.predict(x, batch_size=20, verbose=0)
    assert autotuned and not any(autotuned)
    assert predicted.shape == (95, 4)
    np.testing.assert_allclose(predicted, np.asarray(rbm.hidden_given_visible(x)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rbm.predict(x * 3, verbose=0)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_rbm_predicts_an_aligned_array_from_row_indices(monkeypatch, jit_compile):
    """Keras' predict loop holds each execution's batches (32 here) in a
    list: for an aligned array it holds row indices into a view instead
    (with large batches it held up to the whole array, as float32)."""
    x = array_input.as_aligned(binary_data(95))
    rbm = keras_dbn.RBM(4, seed=2)
    rbm.compile(jit_compile=jit_compile)
    rbm.fit(x, epochs=1, batch_size=20, verbose=0)
    given = record_data(monkeypatch, keras_dbn.RBM, "_predict_array")
    expected = np.asarray(rbm.hidden_given_visible(x))
    np.testing.assert_allclose(rbm.predict(x, batch_size=20, verbose=0), expected, rtol=1e-6)
    assert set(given[0][1].element_spec) == {array_input.ROWS, array_input.SOURCE}
    np.testing.assert_allclose(rbm.predict(x, verbose=0, steps=2), expected[:64], rtol=1e-6)
    unaligned = unaligned_copy(x)  # read through NumPy batches, as before
    np.testing.assert_allclose(rbm.predict(unaligned, batch_size=20, verbose=0), expected,
                               rtol=1e-6)
    assert not isinstance(given[-1][1].element_spec, dict)


_PREDICT_PEAK = """
import resource, sys
import numpy as np
import keras_dbn

aligned = sys.argv[1] == "aligned"
x = (np.random.default_rng(0).random((100_000, 8)) < 0.5).astype("float32")
if aligned:
    x = keras_dbn.as_aligned(x)
else:  # 4 bytes past a 64-byte boundary: read through NumPy batches
    raw = np.empty(x.nbytes + 68, np.uint8)
    start = (-raw.ctypes.data) % 64 + 4
    x, values = raw[start:start + x.nbytes].view(np.float32).reshape(x.shape), x
    x[:] = values
rbm = keras_dbn.RBM(1000, seed=0)
rbm.predict(x[:2000], batch_size=1000, verbose=0)  # traced, TensorFlow's pools warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
predicted = rbm.predict(x, batch_size=1000, verbose=0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - before) * 1024 / predicted.nbytes, predicted.shape, predicted.dtype)
"""


@pytest.mark.parametrize("layout", ["aligned", "unaligned"])
def test_rbm_predict_of_an_array_peaks_at_about_its_result(layout):
    """Keras' predict loop kept every execution's output, then their
    concatenation, then its NumPy copy: predicting 100,000 rows of 1,000
    hidden means (400 MB) raised the peak resident memory by ~3x the
    result. Each execution's predictions now go into the result as they
    come. (Measured in a fresh process: ``ru_maxrss`` only grows.)"""
    import subprocess
    import sys

    ran = subprocess.run([sys.executable, "-c", _PREDICT_PEAK, layout], capture_output=True,
                         text=True, timeout=300, check=True)
    ratio, shape = ran.stdout.split(maxsplit=1)
    assert shape.strip() == "(100000, 1000) float32"
    assert float(ratio) < 1.5, ran.stdout


def test_rbm_predict_of_an_array_calls_callbacks_as_keras_does():
    """The array loop calls predict callbacks as Keras' loop does, with
    exact steps, stops where a callback sets ``stop_predicting``, and
    returns the rows predicted so far."""
    x = array_input.as_aligned(binary_data(95))
    rbm = keras_dbn.RBM(4, seed=2)
    rbm.compile(steps_per_execution=2)
    calls = []
    spy = keras.callbacks.LambdaCallback(
        on_predict_begin=lambda logs: calls.append("begin"),
        on_predict_batch_begin=lambda step, logs: calls.append(("batch", step)),
        on_predict_batch_end=lambda step, logs: calls.append((step, len(logs["outputs"]))),
        on_predict_end=lambda logs: calls.append("end"))
    expected = np.asarray(rbm.hidden_given_visible(x))
    predicted = rbm.predict(x, batch_size=20, verbose=0, callbacks=[spy])
    np.testing.assert_allclose(predicted, expected, rtol=1e-6)
    assert calls == ["begin", ("batch", 0), (1, 40), ("batch", 2), (3, 40), ("batch", 4),
                     (4, 15), "end"]

    class StopAfterOne(keras.callbacks.Callback):
        def on_predict_batch_end(self, step, logs=None):
            self.model.stop_predicting = True

    partial = rbm.predict(x, batch_size=20, verbose=0, callbacks=[StopAfterOne()])
    np.testing.assert_array_equal(partial, predicted[:40])
    assert partial.flags.owndata  # not a view holding all 95 rows
    # A batch size of 20.0 is 20 (as in `fit`); `steps` of 0 or below, which
    # Keras read as every batch (and an array's `predict` here as none), or
    # not an integer are refused.
    np.testing.assert_array_equal(rbm.predict(x, batch_size=20.0, verbose=0), predicted)
    for steps in (0, -1, 2.0, True):
        for call in (rbm.predict, rbm.evaluate):
            with pytest.raises(ValueError, match=rf"`steps` must be a positive integer or "
                                                 rf"None, got {steps!r}"):
                call(x, batch_size=20, steps=steps, verbose=0)
        # fit's validation_steps, before any training (Keras' validation
        # would call evaluate with them only when the first epoch ends).
        iterations = int(rbm.optimizer.iterations.numpy())
        with pytest.raises(ValueError, match=rf"`validation_steps` must be a positive integer "
                                             rf"or None, got {steps!r}"):
            rbm.fit(x, batch_size=20, verbose=0, validation_data=x, validation_steps=steps)
        assert int(rbm.optimizer.iterations.numpy()) == iterations
    # One step per execution (2 do not divide 3): other rounding.
    np.testing.assert_allclose(rbm.predict(x, batch_size=20.0, steps=3, verbose=0),
                               predicted[:60], rtol=1e-6)

    class StopAtOnce(keras.callbacks.Callback):
        def on_predict_begin(self, logs=None):
            self.model.stop_predicting = True

    # Read after each execution, as Keras reads it.
    first = rbm.predict(x, batch_size=20, verbose=0, callbacks=[StopAtOnce()])
    np.testing.assert_array_equal(first, predicted[:40])


def test_batch_footprint_counts_every_tensor_of_a_batch_but_a_shared_view():
    x, y = np.zeros((10, 6), "float32"), np.zeros(10, "int64")
    assert array_input.batch_footprint(array_dataset(x, batch_size=4)) == (4, 96)
    assert array_input.batch_footprint(array_dataset(x, y, batch_size=4)) == (4, 128)
    sliced = tf.data.Dataset.from_tensor_slices((x, y)).batch(5).prefetch(1)
    assert array_input.batch_footprint(sliced) == (5, 5 * (6 * 4 + 8))
    fixed = tf.data.Dataset.from_tensor_slices(x).batch(3, drop_remainder=True)
    assert array_input.batch_footprint(fixed) == (3, 72)
    # Only the row indices: the view is the same tensor in every element.
    indexed = array_input.indexed_batches(array_input.as_aligned(x), 4, shuffle=False)
    assert array_input.batch_footprint(indexed) == (4, 32)
    unknown = tf.data.Dataset.from_generator(
        lambda: iter([x]), output_signature=tf.TensorSpec((None, 6), tf.float32))
    assert array_input.batch_footprint(unknown) is None
    assert array_input.batch_footprint(tf.data.Dataset.range(3)) is None  # no batches


def rows_per_execution():
    """A callback and the list of the rows each execution of Keras' predict
    loop returned, i.e. (its steps) x (rows per batch)."""
    rows = []
    return keras.callbacks.LambdaCallback(
        on_predict_batch_end=lambda step, logs: rows.append(len(logs["outputs"]))), rows


def test_rbm_predict_holds_few_large_batches_of_an_unaligned_array_at_once():
    """Keras' predict loop takes an execution's input batches (32 by
    default here) into a list before running them: for an array read
    through NumPy batches, one execution at batch 4096 of 784 float32 held
    up to 392 MiB. It now runs as many steps as keep an execution's
    batches within `PREDICT_EXECUTION_BYTES` (32 MiB), with the
    same predictions, and the compiled number comes back afterwards."""
    rng = np.random.default_rng(0)
    x = (rng.random((3 * 4096 + 5, 784)) < 0.3).astype("float32")
    unaligned = unaligned_copy(x)
    rbm = keras_dbn.RBM(8, seed=0)
    rbm.compile()
    assert rbm.steps_per_execution == 32
    spy, rows = rows_per_execution()
    predicted = rbm.predict(unaligned, batch_size=4096, verbose=0, callbacks=[spy])
    # A batch holds 4096 x 784 x 4 bytes: two fit in 32 MiB (the old loop
    # held all four batches, 12293 rows, at once).
    assert rows == [8192, 4101]
    assert max(rows) * 784 * 4 <= 32 << 20
    assert rbm.steps_per_execution == 32
    aligned = rbm.predict(array_input.as_aligned(x), batch_size=4096, verbose=0)
    np.testing.assert_array_equal(predicted, aligned)
    np.testing.assert_allclose(predicted, np.asarray(rbm.hidden_given_visible(x)), rtol=1e-6)
    # A dataset of such batches is held the same way.
    rows.clear()
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4096)
    np.testing.assert_array_equal(rbm.predict(dataset, verbose=0, callbacks=[spy]), predicted)
    assert rows == [8192, 4101]
    # Small batches keep the compiled 32 steps per execution.
    rows.clear()
    small = rbm.predict(unaligned[:1000], batch_size=20, verbose=0, callbacks=[spy])
    assert rows == [640, 360]
    np.testing.assert_array_equal(small, rbm.predict(x[:1000], batch_size=20, verbose=0))


def test_rbm_predict_with_fewer_steps_gives_the_same_predictions(monkeypatch):
    """`predict`'s fewer steps per execution still divide its ``steps``, and
    leave a step alone in an execution only where the compiled number
    would (TensorFlow's graph optimiser fuses such a step's GEMM, bias and
    sigmoid, which rounds differently), so the predictions are exactly
    those of the compiled 32 steps. (Exactly where a batch holds a multiple
    of 16 hidden means, as here: TensorFlow takes the sigmoid of an
    execution's concatenated batches at once, and its last few values,
    outside whole SIMD packets, may round differently.)"""
    import keras_dbn.rbm as rbm_module

    x = unaligned_copy(binary_data(99))
    rbm = keras_dbn.RBM(16, seed=2)
    rbm.compile()
    spy, rows = rows_per_execution()
    expected = {size: rbm.predict(x, batch_size=size, verbose=0, callbacks=[spy])
                for size in (3, 10)}
    assert rows == [96, 3, 99]  # 33 batches of 3 rows: the last runs alone
    # 3 x 12 x 4 bytes per batch: 3 fit, yet 33 batches in executions of 3
    # would leave none alone; in executions of 2 the last is alone.
    monkeypatch.setattr(rbm_module, "PREDICT_EXECUTION_BYTES", 3 * 144, raising=False)
    rows.clear()
    np.testing.assert_array_equal(
        rbm.predict(x, batch_size=3, verbose=0, callbacks=[spy]), expected[3])
    assert rows == [6] * 16 + [3]
    rows.clear()
    np.testing.assert_array_equal(
        rbm.predict(x, batch_size=3, steps=9, verbose=0, callbacks=[spy]), expected[3][:27])
    assert rows == [9] * 3  # 3 steps per execution divide the 9 asked for
    rows.clear()
    np.testing.assert_array_equal(
        rbm.predict(x, batch_size=3, steps=4, verbose=0, callbacks=[spy]), expected[3][:12])
    assert rows == [6, 6]  # 2 steps, not 3, divide the 4 asked for
    # 10 x 48 bytes per batch: 3 fit, but 10 batches would leave the last alone.
    monkeypatch.setattr(rbm_module, "PREDICT_EXECUTION_BYTES", 3 * 480, raising=False)
    rows.clear()
    np.testing.assert_array_equal(
        rbm.predict(x, batch_size=10, verbose=0, callbacks=[spy]), expected[10])
    assert rows == [20] * 4 + [19]
    assert rbm.steps_per_execution == 32


def test_rbm_predict_of_one_step_per_execution_keeps_the_multi_step_function(monkeypatch):
    """A `predict` that lowers the steps per execution to 1 leaves a predict
    function that still runs every step of the compiled 32 (Keras' function
    built for one step would take only the first batch of each execution),
    and `fit` keeps its own number."""
    import keras_dbn.rbm as rbm_module

    x = unaligned_copy(binary_data(95))
    rbm = keras_dbn.RBM(4, seed=2)
    rbm.compile()
    expected = np.asarray(rbm.hidden_given_visible(x))
    monkeypatch.setattr(rbm_module, "_predict_steps_per_execution", lambda *args: 1,
                        raising=False)
    spy, rows = rows_per_execution()
    np.testing.assert_allclose(rbm.predict(x, batch_size=40, verbose=0, callbacks=[spy]),
                               expected, rtol=1e-6)
    assert rows == [40, 40, 15] and rbm.steps_per_execution == 32
    monkeypatch.undo()
    rows.clear()
    np.testing.assert_allclose(rbm.predict(x, batch_size=2, verbose=0, callbacks=[spy]),
                               expected, rtol=1e-6)
    assert rows == [64, 31]
    iterations = int(rbm.optimizer.iterations.numpy())
    rbm.fit(x, batch_size=5, epochs=1, verbose=0)
    assert rbm.steps_per_execution == 32
    assert int(rbm.optimizer.iterations.numpy()) == iterations + 19


def test_rbm_iterates_datasets_without_autotuning_unless_they_set_it(monkeypatch):
    """`RBM.fit`, `evaluate` and `predict` turn tf.data's autotuning off in
    a pipeline that leaves it at TensorFlow's default (its thread may stall
    the end of each epoch), train on the same batches, and keep a
    pipeline's own explicit choice."""
    x = binary_data(60)
    plain = tf.data.Dataset.from_tensor_slices(x).batch(20).prefetch(tf.data.AUTOTUNE)
    tuned_options = tf.data.Options()
    tuned_options.autotune.enabled = True
    tuned = plain.with_options(tuned_options)
    assert array_input.without_autotuning(tuned) is tuned
    assert array_input.without_autotuning(x) is x
    assert array_input.without_autotuning(plain).options().autotune.enabled is False
    weights = []
    for data, expect_autotuned in ((plain, False), (tuned, True)):
        rbm = keras_dbn.RBM(4, seed=3)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        # The caller's pipeline, not the RBM's own over the training rows
        # that `free_energy_gap` evaluates.
        autotuned = autotuned_iterations(monkeypatch, rows=20)
        rbm.fit(data, epochs=2, verbose=0, validation_data=data)
        rbm.evaluate(data, verbose=0)
        rbm.predict(data, verbose=0)
        assert autotuned and set(autotuned) == {expect_autotuned}
        monkeypatch.undo()
        weights.append(rbm.kernel.numpy())
    np.testing.assert_array_equal(weights[0], weights[1])


@pytest.mark.parametrize("aligned", [True, False])
def test_arrays_in_the_other_byte_order_are_read_as_their_values(aligned):
    x = np.arange(24, dtype="float32").reshape(8, 3)
    y = np.arange(8) % 3
    swapped_x, swapped_y = x.astype(">f4"), y.astype(">i8")
    if aligned:
        swapped_x = keras_dbn.as_aligned(swapped_x, dtype=None)
    for dtype in ("float32", None):
        ds = array_dataset(swapped_x, swapped_y, batch_size=3, shuffle=False, dtype=dtype)
        got_x = np.concatenate([np.asarray(b[0]) for b in ds])
        got_y = np.concatenate([np.asarray(b[1]) for b in ds])
        np.testing.assert_array_equal(got_x, x)
        np.testing.assert_array_equal(got_y, y)


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("block_bytes", [8, 100, 2**19])
def test_value_range_reads_blocks_as_whole_reductions_would(monkeypatch, block_bytes, threaded):
    """The range is read block by block, by one thread or (large arrays, a
    second core free) by two, one half each; every block counts, NaN and
    infinities show, whatever the layout or dtype."""
    monkeypatch.setattr(array_input, "_MIN_MAX_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(array_input, "_MIN_MAX_THREADED_BYTES", 0 if threaded else 2**62)
    monkeypatch.setattr(array_input, "_free_cores", lambda: 2)
    rng = np.random.default_rng(0)
    x = rng.random((37, 5, 3)).astype("float32")
    cases = [x, x.T, x[::3], x.astype("float64"), (x * 255).astype("uint8"), x[:1],
             np.float32(0.25) * np.ones(())]
    for values in cases:
        assert array_input.value_range(values) == (float(np.min(values)), float(np.max(values)))
    late = x.copy()
    late[-1, -1, -1] = -2.0
    late[30, 0, 0] = 7.0
    assert array_input.value_range(late) == (-2.0, 7.0)
    early = x.copy()
    early[0, 0, 0], early[17, 4, 2] = 9.0, -4.0  # both in the first half
    assert array_input.value_range(early) == (-4.0, 9.0)
    late[36, 4, 1] = np.inf
    assert array_input.value_range(late) == (-2.0, np.inf)
    late[35, 0, 0] = np.nan
    assert all(np.isnan(array_input.value_range(late)))
    # A masked array's data are read, as Keras reads them (a block wholly
    # masked gave NaN); Fortran order is read as its transpose.
    masked = np.ma.masked_array(x, mask=np.zeros(x.shape, bool))
    masked.mask[:20] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert array_input.value_range(masked) == (float(x.min()), float(x.max()))
    assert array_input.value_range(np.asfortranarray(late[:31])) == (float(np.min(late[:31])), 7.0)
    half = x.astype(tf.bfloat16.as_numpy_dtype)
    half[20, 1, 1] = 3.0
    assert array_input.value_range(half) == (float(np.min(half.astype("float32"))), 3.0)
    half[21, 2, 0] = -1.0  # the sign bit set: read from float32
    assert array_input.value_range(half) == (-1.0, 3.0)


def test_value_range_raises_a_second_threads_error_in_the_caller(monkeypatch):
    """An error in the thread that reduces the second half (here a made-up
    MemoryError) reaches the caller, after both threads have finished."""
    monkeypatch.setattr(array_input, "_MIN_MAX_THREADED_BYTES", 0)
    monkeypatch.setattr(array_input, "_free_cores", lambda: 2)
    real, x = array_input._min_max_blocks, np.arange(40.0).reshape(10, 4)

    def failing_on_the_second_half(part):
        if part[0, 0] == x[5, 0]:
            raise MemoryError("made up")
        return real(part)

    monkeypatch.setattr(array_input, "_min_max_blocks", failing_on_the_second_half)
    with pytest.raises(MemoryError, match="made up"):
        array_input.value_range(x)
    monkeypatch.setattr(array_input, "_min_max_blocks", real)
    assert array_input.value_range(x) == (0.0, 39.0)


def test_sparse_matrices_are_refused_with_the_way_to_pass_them():
    """NumPy read a SciPy matrix as a 0-d object array: "must be numeric,
    got dtype object", also from inside `RBM.call` in `predict`."""
    sparse = pytest.importorskip("scipy.sparse")
    from keras_dbn import evaluation

    x = (np.random.default_rng(0).random((200, 30)) < 0.1).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.compile()
    rbm.fit(x, epochs=1, verbose=0)
    dbn = keras_dbn.DBN([4], seed=0)
    betas = np.linspace(0.0, 1.0, 5)
    matrix = (r"a sparse matrix \(csr_matrix, shape \(200, 30\)\), which keras_dbn does not "
              r"read: pass it dense \(23 KiB in float32\): `.toarray\(\)`.$")
    calls = {
        "The data is ": [lambda m: rbm.fit(m, verbose=0), lambda m: rbm.evaluate(m, verbose=0),
                         lambda m: rbm.predict(m, verbose=0),
                         lambda m: dbn.pretrain(m, epochs=1, verbose=0)],
        "The validation data is ": [lambda m: rbm.fit(x, validation_data=(m,), verbose=0),
                                    lambda m: dbn.pretrain(x, validation_data=m, verbose=0)],
        "x is ": [lambda m: array_dataset(m)],
        "`x` is ": [lambda m: evaluation.pseudo_likelihood(rbm, m)],
        # In a list or pair: NumPy's "setting an array element with a sequence".
        "`x` holds ": [lambda m: evaluation.pseudo_likelihood(rbm, (m, np.zeros(200)))],
        "`data` is ": [lambda m: evaluation.ais_log_partition(rbm, data=m, betas=betas)],
        "`data` holds ": [lambda m: evaluation.ais_log_partition(rbm, data=[m], betas=betas)],
        "The data holds ": [lambda m: keras_dbn.RBM(3).initialize_visible_bias([m, m])],
    }
    for start, group in calls.items():
        for call in group:
            with pytest.raises(TypeError, match="^" + start + matrix):
                call(sparse.csr_matrix(x))
    with pytest.raises(TypeError, match=r"SparseTensor, shape \(200, 30\)\).*\(23 KiB in "
                                        r"float32\): `tf.sparse.to_dense`"):
        rbm.fit(tf.sparse.from_dense(x), verbose=0)

    @tf.function(input_signature=[tf.SparseTensorSpec([None, 30], tf.float32)])
    def traced(v):
        return rbm.free_energy(v)

    with pytest.raises(TypeError, match=r"SparseTensor, shape \(None, 30\)\)"):  # not int(None)
        traced(tf.sparse.from_dense(x))
    with pytest.raises(TypeError, match=r"pass it dense \(48 bytes in float32\)"):
        rbm.predict(sparse.csr_array(x[:1, :12]), verbose=0)
    # Labels are not data: sparse ones beside dense rows are read as before.
    labels = sparse.csr_matrix(np.eye(3)[np.arange(200) % 3])
    batches = [(x[:100], labels[:100]), (x[100:], labels[100:])]
    np.testing.assert_allclose(keras_dbn.rbm.visible_mean(batches), x.mean(axis=0), rtol=1e-6)
    assert np.isfinite(evaluation.ais_log_partition(rbm, data=batches, betas=betas).log_z)
    rbm.fit(x, validation_data=(x, labels), epochs=1, verbose=0)


def test_datasets_of_sparse_or_ragged_batches_are_refused_with_the_way_to_map_them():
    """A dataset of `tf.SparseTensor` batches failed inside the training step
    ("'SparseTensor' object is not subscriptable"); ragged ones alike."""
    x = (np.random.default_rng(0).random((60, 30)) < 0.1).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.compile()
    sparse = tf.data.Dataset.from_tensor_slices(x).batch(20).map(tf.sparse.from_dense)
    ragged = tf.data.Dataset.from_tensor_slices(x).batch(20).map(
        lambda v: tf.RaggedTensor.from_tensor(v))
    labelled = tf.data.Dataset.zip((sparse, tf.data.Dataset.range(3)))
    calls = [lambda d: rbm.fit(d, verbose=0), lambda d: rbm.evaluate(d, verbose=0),
             lambda d: rbm.predict(d, verbose=0),
             lambda d: rbm.fit(x, validation_data=d, verbose=0)]
    for data, kind, dense in ((sparse, "sparse", r"tf\.sparse\.to_dense\(x\)"),
                              (labelled, "sparse", r"tf\.sparse\.to_dense\(x\)"),
                              (ragged, "ragged",
                               r"x\.to_tensor\(shape=\[None, 30\]\)")):
        for call in calls:
            with pytest.raises(TypeError, match=rf"visible data are {kind} tensors .*{dense}"):
                call(data)
    # An eager ragged tensor: NumPy made an object array of it ("len() of
    # unsized object").
    dbn = keras_dbn.DBN([4], seed=0)
    dbn.pretrain(x, epochs=1, verbose=0)
    for call in calls[:3] + [lambda d: dbn.pretrain(d, epochs=1, verbose=0), dbn.transform]:
        with pytest.raises(TypeError, match=r"is a tf\.RaggedTensor \(shape \(60, 30\)\).*"
                                            r"\.to_tensor\(shape=\[None, width\]\)\)"):
            call(tf.RaggedTensor.from_tensor(x))
    # A DBN's hint for dict elements named TFDS' {"image": ...}.
    indexed = array_input.indexed_batches(array_input.as_aligned(x), 20)
    with pytest.raises(TypeError, match="not `array_input.indexed_batches`' row indices"):
        keras_dbn.DBN([4]).pretrain(indexed, epochs=1, verbose=0)
    mapped = labelled.map(lambda v, *rest: (tf.sparse.to_dense(v), *rest))
    rbm.fit(mapped, epochs=1, verbose=0)  # the way the message gives
    assert int(rbm.optimizer.iterations.numpy()) == 3
    # Ragged rows of other lengths: to_tensor() alone pads each batch to its
    # longest row only; the message's full width reads them all.
    lengths = np.full(60, 30)
    lengths[:20] = 25
    rows = tf.RaggedTensor.from_tensor(x, lengths=lengths)
    short = tf.data.Dataset.range(3).map(lambda i: rows[i * 20:(i + 1) * 20])
    with pytest.raises(TypeError, match=r"shape \(None, None\)\).*x\.to_tensor\(shape=\[None, "
                                        r"<visible units>\]\)"):
        rbm.fit(short, verbose=0)
    padded = short.map(lambda v, *rest: (v.to_tensor(shape=[None, 30]), *rest))
    np.testing.assert_allclose(rbm.predict(padded, verbose=0), rbm.predict(
        np.where(np.arange(30) < lengths[:, None], x, 0.0), verbose=0), rtol=1e-6)
