"""`array_dataset` batches, and RBM.fit's NumPy path built on it."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dbn
from keras_dbn import array_input
from keras_dbn.array_input import array_dataset


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
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        array_dataset(**kwargs)


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


def aligned_copy(x, alignment=64):
    """``x`` copied into memory aligned to ``alignment`` bytes."""
    raw = np.empty(x.nbytes + alignment, np.uint8)
    offset = -raw.ctypes.data % alignment
    out = raw[offset:offset + x.nbytes].view(x.dtype).reshape(x.shape)
    out[...] = x
    return out


@pytest.mark.parametrize("shuffle", [False, True])
def test_rbm_fit_never_writes_into_the_callers_arrays(shuffle):
    """Batches handed to TensorFlow are copies: an aligned view of the
    caller's array could be adopted by TensorFlow and overwritten in place
    by an element-wise op (it was, for the held-out rows, in a draft)."""
    x = aligned_copy(binary_data(200))
    x[160:] = 0.0
    validation = aligned_copy(binary_data(40, seed=1))
    x_before, validation_before = x.copy(), validation.copy()
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.fit(x, batch_size=40, epochs=2, verbose=0, shuffle=shuffle, validation_split=0.2)
    rbm.fit(x, batch_size=40, epochs=1, verbose=0, shuffle=shuffle,
            validation_data=validation)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(validation, validation_before)


def test_rbm_fit_checks_validation_arrays_and_datasets_do_not_warn():
    x = binary_data()
    rbm = keras_dbn.RBM(4, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rbm.fit(x, epochs=1, verbose=0, validation_data=(x * 3, None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rbm.fit(tf.data.Dataset.from_tensor_slices(x).batch(20), epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]
