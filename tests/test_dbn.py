"""DBN: greedy pretraining, conversion to a classifier, generation, saving."""

import os
import subprocess
import warnings
import sys

import keras
import numpy as np
import pytest

import keras_dbn
from keras_dbn import dbn as dbn_module

from brute_force import all_states
from spies import record_data


@pytest.fixture(scope="module")
def mnist_small(mnist_manual_dir, tfds_data_dir):
    x, y = keras_dbn.datasets.load_numpy(
        "mnist", split="train", data_dir=tfds_data_dir, manual_dir=mnist_manual_dir, limit=3000
    )
    return x, y


def test_layers_are_rbms_with_per_layer_options():
    dbn = keras_dbn.DBN([20, 10, 5], k=[1, 5, 10], persistent=[False, False, True], seed=3)
    assert [type(layer) for layer in dbn.layers] == [keras_dbn.RBM] * 3
    assert [rbm.k for rbm in dbn.rbms] == [1, 5, 10]
    assert [rbm.persistent for rbm in dbn.rbms] == [False, False, True]
    assert [rbm.seed for rbm in dbn.rbms] == [3, 4, 5]
    custom = keras_dbn.RBM(7, visible="gaussian")
    mixed = keras_dbn.DBN([custom, 4])
    assert mixed.rbms[0] is custom and mixed.rbms[1].units == 4


@pytest.mark.parametrize(
    "args, kwargs",
    [(([],), {}), (([10, 5],), {"k": [1]}),
     # An RBM given whole keeps its units: Bernoulli visible on Gaussian hidden.
     (([keras_dbn.RBM(5, hidden="gaussian"), keras_dbn.RBM(3)],), {}),
     (([keras_dbn.RBM(5, hidden="gaussian"), 3],), {"hidden": "gaussian"})],
)
def test_bad_construction_raises(args, kwargs):
    with pytest.raises(ValueError):
        keras_dbn.DBN(*args, **kwargs)


def test_greedy_layers_train_on_probabilities_of_the_layer_below(mnist_small):
    """Layer 2 of pretrain() equals an RBM fitted by hand on p(h | v) of layer 1."""
    x = mnist_small[0][:1000]
    dbn = keras_dbn.DBN([40, 20], seed=11)
    histories = dbn.pretrain(x, epochs=2, batch_size=50, verbose=0, shuffle=False)
    assert [h.layer_name for h in histories] == ["rbm_0", "rbm_1"]
    assert all(len(h.history["reconstruction_error"]) == 2 for h in histories)

    first = keras_dbn.RBM(40, seed=11).initialize_visible_bias(x)
    first.fit(x, epochs=2, batch_size=50, shuffle=False, verbose=0)
    np.testing.assert_allclose(np.array(first.kernel), np.array(dbn.rbms[0].kernel), atol=1e-6)
    hidden = first.predict(x, verbose=0)
    second = keras_dbn.RBM(20, seed=12).initialize_visible_bias(hidden)
    second.fit(hidden, epochs=2, batch_size=50, shuffle=False, verbose=0)
    np.testing.assert_allclose(np.array(second.kernel), np.array(dbn.rbms[1].kernel), atol=1e-5)
    np.testing.assert_allclose(dbn(x[:5]), second(first(x[:5])), atol=1e-5)


def test_streamed_upper_layers_match_cached_ones(mnist_small, monkeypatch):
    """With no room to cache activations, upper layers stream batch by batch."""
    x = mnist_small[0][:600]
    options = dict(epochs=2, batch_size=50, verbose=0, shuffle=False, init_visible_bias=False)
    cached = keras_dbn.DBN([30, 10], seed=5)
    cached.pretrain(x, **options)

    seen = []
    original = dbn_module.DBN._propagate

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        seen.append(type(out).__name__)
        return out

    monkeypatch.setattr(dbn_module.DBN, "_propagate", spy)
    streamed = keras_dbn.DBN([30, 10], seed=5)
    streamed.pretrain(x, cache_bytes=0, **options)
    assert seen and "ndarray" not in seen  # a tf.data pipeline, not a materialised array
    for a, b in zip(streamed.weights, cached.weights):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-4)
    for bad in (-1, "1", True, float("nan")):
        with pytest.raises(ValueError, match="cache_bytes"):
            keras_dbn.DBN([3]).pretrain(x, cache_bytes=bad)


@pytest.mark.parametrize("cache_bytes", [None, 0])
def test_sampled_upper_layer_input_is_binary_with_the_layer_probabilities(cache_bytes):
    """``pretrain(sample=True)`` feeds the layer above Bernoulli samples of
    p(h | v), whether the activations are cached or streamed."""
    x = (np.random.default_rng(0).random((4000, 12)) < 0.3).astype("float32")
    dbn = keras_dbn.DBN([6, 4], seed=0)
    dbn.pretrain(x, epochs=1, batch_size=100, verbose=0)
    bottom = dbn.rbms[0]
    samples = np.concatenate([
        np.asarray(batch)
        for batch in dbn._propagate(x, bottom, True, 100, shuffle=False, cache_bytes=cache_bytes)
    ])
    assert samples.shape == (4000, 6)
    assert set(np.unique(samples)) <= {0.0, 1.0}
    p = np.asarray(bottom.hidden_given_visible(x))
    # Per unit, the sample mean is within 4 standard errors of the mean of p.
    tolerance = 4 * np.sqrt(np.mean(p * (1 - p), axis=0) / len(x))
    np.testing.assert_array_less(np.abs(samples.mean(axis=0) - p.mean(axis=0)), tolerance)


@pytest.mark.parametrize("cache_bytes", [None, 0])
def test_sampled_gaussian_hidden_states_are_the_means_plus_standard_normal_noise(cache_bytes):
    x = (np.random.default_rng(1).random((4000, 12)) < 0.3).astype("float32")
    dbn = keras_dbn.DBN([6, 4], hidden=["gaussian", "bernoulli"], seed=0)
    dbn.pretrain(x, epochs=1, batch_size=100, verbose=0)
    bottom = dbn.rbms[0]
    samples = np.concatenate([
        np.asarray(batch)
        for batch in dbn._propagate(x, bottom, True, 100, shuffle=False, cache_bytes=cache_bytes)
    ])
    noise = samples - np.asarray(bottom.hidden_given_visible(x))
    assert noise.shape == (4000, 6)
    # Standard normal per unit: mean within 4 standard errors of 0, and
    # variance within 4 of 1 (the variance of a sample variance is ~2/n).
    np.testing.assert_array_less(np.abs(noise.mean(axis=0)), 4 / np.sqrt(len(x)))
    np.testing.assert_array_less(np.abs(noise.var(axis=0) - 1), 4 * np.sqrt(2 / len(x)))


@pytest.mark.parametrize("cache_bytes", [None, 0])
@pytest.mark.parametrize("sample", [False, True])
def test_mixed_bfloat16_upper_layers_read_bfloat16_activations(monkeypatch, sample, cache_bytes):
    """Under ``mixed_bfloat16`` the layer below predicts bfloat16 and the
    layer above reads bfloat16: the activations are kept in bfloat16 (half
    the memory, the same values), cached or streamed."""
    x = (np.random.default_rng(0).random((600, 12)) < 0.3).astype("float32")
    calls = record_data(monkeypatch, keras_dbn.RBM, "fit")

    def seen():  # (layer, dtype of its input, the input where an array)
        return [(rbm.name, str(data.dtype), data) if isinstance(data, np.ndarray)
                else (rbm.name, data.element_spec.dtype.name, None) for rbm, data in calls]

    dbn = keras_dbn.DBN([8, 4], seed=0, dtype="mixed_bfloat16")
    assert [rbm.dtype_policy.name for rbm in dbn.rbms] == ["mixed_bfloat16"] * 2
    dbn.pretrain(x, epochs=1, batch_size=100, verbose=0, sample=sample, cache_bytes=cache_bytes,
                 validation_data=x[:100])
    (first, first_dtype, _), (second, second_dtype, features) = seen()
    assert (first, first_dtype) == ("rbm_0", "float32")
    assert (second, second_dtype) == ("rbm_1", "bfloat16")
    if features is not None:  # cached probabilities: predict()'s own values
        # At the cache's batch shape (pretrain predicts up to 1,000 rows at
        # a time): oneDNN's bfloat16 kernels may round a conditional mean
        # differently at another batch size (by one bfloat16 step on Zen 4).
        predicted = dbn.rbms[0].predict(x, batch_size=len(x), verbose=0)
        np.testing.assert_array_equal(features.astype("float32"), predicted.astype("float32"))
    float32 = keras_dbn.DBN([8, 4], seed=0)
    float32.pretrain(x, epochs=1, batch_size=100, verbose=0, sample=sample,
                     cache_bytes=cache_bytes)
    assert seen()[-1][:2] == ("rbm_1", "float32")


def test_pretrain_accepts_a_dataset_with_labels(mnist_small):
    import tensorflow as tf

    x, y = mnist_small
    ds = tf.data.Dataset.from_tensor_slices((x[:500].reshape(-1, 28, 28), y[:500])).batch(50)
    dbn = keras_dbn.DBN([16, 8], seed=0)
    histories = dbn.pretrain(ds, epochs=1, verbose=0)
    assert len(histories) == 2 and dbn.num_visible == 784


@pytest.mark.parametrize("source", ["dataset", "streamed", "sampled"])
def test_every_layer_of_a_pipeline_runs_its_chain_in_xla(monkeypatch, source):
    """Streamed upper layers and dataset input, whose batches have no
    static size, keep the batch size for `RBM.fit`'s XLA chain route."""
    import tensorflow as tf

    from keras_dbn import rbm as rbm_module

    monkeypatch.setattr(rbm_module, "XLA_CHAIN_GEMM_SIZES", (0, 10**9))
    routes = []
    original = keras_dbn.RBM.fit

    def spy(self, *args, **kwargs):
        history = original(self, *args, **kwargs)
        routes.append((self._xla_chain, self.jit_compile))
        return history

    monkeypatch.setattr(keras_dbn.RBM, "fit", spy)
    x = (np.random.default_rng(0).random((130, 12)) < 0.3).astype("float32")
    dbn = keras_dbn.DBN([8, 4], k=3, seed=0)
    if source == "dataset":
        dbn.pretrain(tf.data.Dataset.from_tensor_slices(x).batch(20), epochs=1, verbose=0)
    else:
        dbn.pretrain(x, epochs=1, batch_size=20, verbose=0, cache_bytes=0,
                     sample=source == "sampled")
    assert routes == [(20, False), (20, False)]
    assert all(int(rbm.optimizer.iterations) == 7 for rbm in dbn.rbms)


def test_classifier_is_plain_keras_initialised_from_rbms(mnist_small, tmp_path):
    x, y = mnist_small
    dbn = keras_dbn.DBN([64, 32], seed=0)
    dbn.pretrain(x, epochs=5, batch_size=50, verbose=0, optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    clf = dbn.to_classifier(10, dropout=0.1)
    dense = [layer for layer in clf.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == 3
    for layer, rbm in zip(dense, dbn.rbms):
        np.testing.assert_array_equal(layer.kernel, rbm.kernel)
        np.testing.assert_array_equal(layer.bias, rbm.hidden_bias)
    features = keras.Model(clf.inputs, dense[1].output)
    np.testing.assert_allclose(features.predict(x[:20], verbose=0), dbn(x[:20]), atol=1e-5)

    clf.compile(keras.optimizers.Adam(5e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    clf.fit(x[:2500], y[:2500], epochs=10, batch_size=50, verbose=0)
    accuracy = clf.evaluate(x[2500:], y[2500:], verbose=0, return_dict=True)["accuracy"]
    assert accuracy > 0.85

    path = tmp_path / "clf.keras"
    clf.save(path)
    expected = clf.predict(x[:10], verbose=0)
    np.save(tmp_path / "x.npy", x[:10])
    np.save(tmp_path / "expected.npy", expected)
    script = (
        "import sys, numpy as np, keras\n"
        f"m = keras.models.load_model({str(path)!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r}); e = np.load({str(tmp_path / 'expected.npy')!r})\n"
        "assert 'keras_dbn' not in sys.modules\n"
        "np.testing.assert_allclose(m.predict(x, verbose=0), e, atol=1e-5)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_generate_is_exact_ancestral_sampling():
    """Samples of a 3-RBM DBN follow sum_h p_top(h2) p(h1 | h2) p(v | h1)."""
    rng = np.random.default_rng(0)
    sizes = [4, 3, 3, 2]
    dbn = keras_dbn.DBN(sizes[1:], seed=1)
    dbn.build((None, sizes[0]))
    for rbm in dbn.rbms:
        rbm.kernel.assign(rng.normal(0, 1.5, rbm.kernel.shape))
        rbm.visible_bias.assign(rng.normal(0, 1.0, rbm.visible_bias.shape))
        rbm.hidden_bias.assign(rng.normal(0, 1.0, rbm.hidden_bias.shape))

    def conditional(rbm, h):  # p(v | h) for every v and every h row
        v = all_states(rbm.num_visible)
        mean = np.asarray(rbm.visible_given_hidden(h.astype("float32")), dtype="float64")
        return np.prod(np.where(v[None] == 1, mean[:, None], 1 - mean[:, None]), axis=-1)

    top = dbn.rbms[-1]
    h2 = all_states(3)
    p_h2 = np.exp(-np.asarray(top.free_energy(h2.astype("float32")), dtype="float64"))
    p_h2 /= p_h2.sum()
    p_v = p_h2 @ conditional(dbn.rbms[1], h2) @ conditional(dbn.rbms[0], all_states(3))

    samples = dbn.generate(20000, gibbs_steps=30, return_mean=False)
    assert set(np.unique(samples)) <= {0.0, 1.0}
    index = samples @ (2 ** np.arange(3, -1, -1))
    empirical = np.bincount(index.astype(int), minlength=16) / len(samples)
    # Total variation of 20,000 samples over 16 states is ~0.01 by chance.
    assert 0.5 * np.abs(empirical - p_v).sum() < 0.03
    uniform = np.full(16, 1 / 16)
    assert 0.5 * np.abs(uniform - p_v).sum() > 0.1  # the check has power


def test_save_load_and_generate(mnist_small, tmp_path):
    x = mnist_small[0][:500]
    dbn = keras_dbn.DBN([32, 16], seed=0)
    dbn.pretrain(x, epochs=1, batch_size=50, verbose=0)
    dbn.save(tmp_path / "dbn.keras")
    loaded = keras.models.load_model(tmp_path / "dbn.keras")
    assert isinstance(loaded, keras_dbn.DBN) and len(loaded.layers) == 2
    np.testing.assert_allclose(loaded(x[:10]), dbn(x[:10]), atol=1e-6)
    images = loaded.generate(6, gibbs_steps=20)
    assert images.shape == (6, 784) and np.all((images >= 0) & (images <= 1))
    # A seed restarts every RBM's draws: the same call, the same samples,
    # in the trained DBN and in its loaded copy alike.
    a = dbn.generate(6, gibbs_steps=5, return_mean=False, seed=3)
    np.testing.assert_array_equal(loaded.generate(6, gibbs_steps=5, return_mean=False, seed=3), a)
    assert not np.array_equal(dbn.generate(6, gibbs_steps=5, return_mean=False, seed=4), a)
    assert not np.array_equal(dbn.generate(6, gibbs_steps=5, return_mean=False), a)
    for seed in (-1, 2**31, 1.5, True, "3"):
        with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 2\*\*31\)"):
            dbn.generate(2, gibbs_steps=1, seed=seed)
    dbn.generate(2, gibbs_steps=1, seed=2**31 - 1)  # the upper RBMs' seeds wrap around


def test_fit_points_to_pretrain():
    with pytest.raises(TypeError, match="pretrain"):
        keras_dbn.DBN([4]).fit(np.zeros((2, 3)))


def test_transform_and_generate_refuse_bad_counts():
    dbn = keras_dbn.DBN([3, 2])
    dbn.build((None, 4))
    x = np.zeros((5, 4), dtype="float32")
    assert dbn.transform(x, num_layers=0).shape == (5, 4)
    assert dbn.transform(x, num_layers=1).shape == (5, 3)
    with pytest.raises(ValueError, match="`num_layers` is 3, but the DBN has 2 RBMs"):
        dbn.transform(x, num_layers=3)
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        dbn.transform(x, num_layers=-1)
    with pytest.raises(ValueError, match="one example per row"):
        dbn.transform(x[0])
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        dbn.generate(-1, gibbs_steps=2)
    with pytest.raises(ValueError, match="one example per row"):
        dbn.generate(1, gibbs_steps=2, initial=x[0])


def test_pretrain_refuses_epochs_that_are_not_counts():
    x = np.zeros((10, 4), dtype="float32")
    for epochs in (-1, 1.5, [1, -2]):
        dbn = keras_dbn.DBN([3, 2], seed=0)
        with pytest.raises(ValueError, match="`epochs` must be an integer >= 0"):
            dbn.pretrain(x, epochs=epochs, verbose=0)
        assert not any(rbm.built for rbm in dbn.rbms)  # refused before any layer trained


def test_transform_checks_the_width_and_maps_no_rows_to_no_rows():
    dbn = keras_dbn.DBN([3, 2], seed=0)
    dbn.build((None, 4))
    with pytest.raises(ValueError, match="4 visible units, but the data has 5 values"):
        dbn.transform(np.zeros((6, 5), dtype="float32"))
    assert dbn.transform(np.zeros((0, 4), dtype="float32")).shape == (0, 2)
    assert dbn.transform(np.zeros((0, 2, 2), dtype="float32"), num_layers=1).shape == (0, 3)
    with pytest.raises(ValueError, match="holds no examples"):
        keras_dbn.DBN([3], seed=0).pretrain(np.zeros((0, 4), dtype="float32"), verbose=0)


def test_classifier_before_pretraining_raises():
    with pytest.raises(ValueError, match="Pretrain"):
        keras_dbn.DBN([4]).to_classifier(3)


def test_features_before_pretraining_raise_instead_of_coming_from_random_weights():
    dbn = keras_dbn.DBN([3, 2], seed=0)
    x = np.zeros((5, 4), dtype="float32")
    for features in (dbn.transform, lambda x: dbn.predict(x, verbose=0)):
        with pytest.raises(ValueError, match="no weights yet: pretrain it first"):
            features(x)
    assert dbn.transform(x, num_layers=0).shape == (5, 4)  # no layer: the data itself
    assert not any(rbm.built for rbm in dbn.rbms)


def test_pretrain_given_labels_says_it_takes_none():
    x = np.zeros((10, 4), dtype="float32")
    dbn = keras_dbn.DBN([3], seed=0)
    with pytest.raises(TypeError, match="takes no labels.*to_classifier"):
        dbn.pretrain(x, np.arange(10) % 2)
    assert dbn.pretrain(x, np.int64(1), verbose=0)  # a NumPy integer is still a count


def _binary(rows=200, width=12, seed=0):
    return (np.random.default_rng(seed).random((rows, width)) < 0.4).astype("float32")


def test_transform_refuses_bad_batch_sizes_and_data_the_rbm_refuses():
    import tensorflow as tf

    x = _binary()
    dbn = keras_dbn.DBN([8, 4], seed=0)
    dbn.build((None, 12))
    for batch_size in (0, -1, 2.0):
        with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1"):
            dbn.transform(x, batch_size=batch_size)
    with pytest.raises(ValueError, match=r"need data in \[0, 1\].*x / 255"):
        dbn.transform(x * 255)
    with pytest.raises(ValueError, match="NaN or infinite"):
        dbn.transform(np.full((2, 12), np.nan, "float32"))
    with pytest.raises(TypeError, match="not a tf.data.Dataset"):
        dbn.transform(tf.data.Dataset.from_tensor_slices(x).batch(20))


@pytest.mark.parametrize("dtype", ["uint8", "bool", "float64"])
def test_pretrain_and_transform_read_arrays_in_their_own_dtype(monkeypatch, dtype):
    """An array of another dtype than float32 is read batch by batch as it
    is, not converted whole first (a float32 copy of uint8 images is four
    times their size), and trains and transforms as its float32 values do."""
    x = _binary()
    given = x.astype(dtype)
    received = record_data(monkeypatch, keras_dbn.RBM, "fit")
    dbns = [keras_dbn.DBN([8, 4], seed=0) for _ in range(2)]
    dbns[0].pretrain(x, epochs=2, batch_size=50, verbose=0)
    dbns[1].pretrain(given, epochs=2, batch_size=50, verbose=0, validation_data=given[:40])
    assert np.shares_memory(received[2][1], given)  # the first layer of the second DBN
    for a, b in zip(dbns[0].weights, dbns[1].weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dbns[1].transform(given), dbns[1].transform(x), rtol=1e-6)
    assert dbns[1].transform(given, num_layers=0).dtype == np.float32
    with pytest.raises(ValueError, match="must be numeric"):
        keras_dbn.DBN([3], seed=0).pretrain(x.astype(str), verbose=0)


@pytest.mark.parametrize("options", [{"sample": True}, {"cache_bytes": 0},
                                     {"sample": True, "cache_bytes": 0}])
def test_seeded_pretraining_is_reproducible_when_sampling_or_streaming(options):
    x = _binary()

    def pretrained():
        dbn = keras_dbn.DBN([8, 4], seed=0)
        dbn.pretrain(x, epochs=2, batch_size=50, verbose=0, **options)
        return [np.asarray(w) for w in dbn.rbms[1].weights]

    for a, b in zip(pretrained(), pretrained()):
        np.testing.assert_array_equal(a, b)


def test_sampled_activations_are_new_in_each_epoch_and_fixed_by_the_seed():
    x = _binary()
    dbn = keras_dbn.DBN([8, 4], seed=0)
    dbn.build(x.shape)

    def epochs(seed):
        data = dbn._propagate(x, dbn.rbms[0], True, 50, cache_bytes=0, seed=seed)
        return [np.concatenate([np.asarray(b) for b in data]) for _ in range(2)]

    first, second = epochs(3)
    assert not np.array_equal(first, second)
    for a, b in zip(epochs(3), (first, second)):
        np.testing.assert_array_equal(a, b)


def test_pretraining_again_keeps_trained_visible_biases(tmp_path):
    x = _binary()
    dbn = keras_dbn.DBN([8, 4], seed=0)
    dbn.pretrain(x, epochs=1, batch_size=50, verbose=0)
    trained = [np.asarray(rbm.visible_bias).copy() for rbm in dbn.rbms]
    dbn.pretrain(x, epochs=0, optimizer="sgd", verbose=0)  # fresh optimizers
    dbn.save_weights(tmp_path / "dbn.weights.h5")
    loaded = keras_dbn.DBN([8, 4], seed=0)
    loaded.build(x.shape)
    loaded.load_weights(tmp_path / "dbn.weights.h5")
    loaded.pretrain(x, epochs=0, verbose=0)
    for model in (dbn, loaded):
        for rbm, bias in zip(model.rbms, trained):
            np.testing.assert_array_equal(np.asarray(rbm.visible_bias), bias)
    fresh = keras_dbn.DBN([8, 4], seed=0)
    fresh.pretrain(x, epochs=0, verbose=0)  # untrained: biases from the data
    np.testing.assert_allclose(
        np.asarray(fresh.rbms[0].visible_bias),
        np.asarray(keras_dbn.RBM(8).initialize_visible_bias(x).visible_bias),
    )


@pytest.mark.parametrize("options", [{}, {"cache_bytes": 0}, {"sample": True}])
def test_validation_split_holds_out_the_last_rows_for_every_layer(options):
    x = _binary()

    def pretrained(x, **kwargs):
        dbn = keras_dbn.DBN([8, 4], seed=0)
        histories = dbn.pretrain(x, epochs=2, batch_size=50, verbose=0, **options, **kwargs)
        return dbn, [h.history for h in histories]

    split, split_logs = pretrained(x, validation_split=0.2)
    held, held_logs = pretrained(x[:160], validation_data=x[160:])
    assert all("val_free_energy" in logs for logs in split_logs)
    assert split_logs == held_logs
    for a, b in zip(split.weights, held.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_validation_data_may_be_a_dataset():
    import tensorflow as tf

    x = _binary()
    train = tf.data.Dataset.from_tensor_slices(x[:160]).batch(40)
    held_out = tf.data.Dataset.from_tensor_slices((x[160:], np.zeros(40))).batch(20)
    histories = keras_dbn.DBN([8, 4], seed=0).pretrain(
        train, epochs=1, validation_data=held_out, verbose=0
    )
    arrays = keras_dbn.DBN([8, 4], seed=0).pretrain(
        x[:160], epochs=1, batch_size=40, shuffle=False, init_visible_bias=False,
        validation_data=x[160:], verbose=0,
    )
    for streamed, array in zip(histories, arrays):
        np.testing.assert_allclose(
            streamed.history["val_free_energy"], array.history["val_free_energy"], rtol=1e-5
        )
    with pytest.raises(ValueError, match="`validation_split` needs NumPy data"):
        keras_dbn.DBN([8, 4]).pretrain(train, validation_split=0.2, verbose=0)


def test_validation_leaves_the_sampled_states_of_upper_layers_as_they_are():
    x = (np.random.default_rng(5).random((200, 12)) < 0.3).astype("float32")
    kernels = []
    for validation in (None, x[:40]):
        dbn = keras_dbn.DBN([8, 6], seed=0)
        dbn.pretrain(x, epochs=2, batch_size=20, sample=True, validation_data=validation,
                     verbose=0)
        kernels.append([rbm.kernel.numpy() for rbm in dbn.rbms])
    for without, with_validation in zip(*kernels):
        np.testing.assert_array_equal(without, with_validation)


def test_validation_data_may_be_a_list_of_rows():
    x = _binary()
    histories = {
        name: keras_dbn.DBN([8, 4], seed=0).pretrain(
            x[:160], epochs=1, batch_size=40, validation_data=held_out, verbose=0)
        for name, held_out in (("array", x[160:]), ("list", x[160:].tolist()))
    }
    for listed, array in zip(histories["list"], histories["array"]):
        np.testing.assert_allclose(
            listed.history["val_free_energy"], array.history["val_free_energy"], rtol=1e-6
        )


def test_classifier_options_take_numpy_integers_and_refuse_non_numbers():
    dbn = keras_dbn.DBN([8, 4], seed=0)
    dbn.build((None, 12))
    assert dbn.to_classifier(np.int64(3)).output_shape == (None, 3)
    for dropout in (None, "0.2", True):
        with pytest.raises(ValueError, match="Dropout rates must be numbers"):
            dbn.to_classifier(3, dropout=dropout)


@pytest.mark.parametrize("sizes", [[8], [8, 4]])
def test_generate_counts_its_initial_rows_and_returns_float32(sizes):
    x = _binary()
    dbn = keras_dbn.DBN(sizes, seed=0, dtype="mixed_bfloat16")
    dbn.pretrain(x, epochs=1, batch_size=50, verbose=0)
    assert dbn.generate(3, gibbs_steps=2).dtype == np.float32
    assert dbn.rbms[-1].sample(3, gibbs_steps=2).dtype == np.float32
    assert dbn.generate(None, gibbs_steps=2, initial=x[:5]).shape == (5, 12)
    assert dbn.generate(5, gibbs_steps=2, initial=x[:5]).shape == (5, 12)
    with pytest.raises(ValueError, match="`n` is 3, but `initial` starts 5 chains"):
        dbn.generate(3, gibbs_steps=2, initial=x[:5])
    with pytest.raises(ValueError, match="`n` is 3, but `initial` starts 5 chains"):
        dbn.rbms[0].sample(3, gibbs_steps=2, initial=x[:5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dbn.generate(None, gibbs_steps=2, initial=x[:5] * 255)


def test_a_best_only_checkpoint_saves_every_layer_by_its_own_best(tmp_path):
    """Keras' ModelCheckpoint keeps its best figure across fit() calls; in
    pretraining each layer's figures are compared with that layer's best.
    With the first layer's error far below the second's (sparse data below,
    sampled binary states above), the second layer is still saved, at its
    best epoch."""
    path = tmp_path / "best.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(path, monitor="reconstruction_error",
                                                 save_best_only=True)
    dbn = keras_dbn.DBN([16, 2], seed=0)
    sparse = (np.random.default_rng(0).random((200, 12)) < 0.03).astype("float32")
    histories = dbn.pretrain(sparse, epochs=2, batch_size=50, sample=True, verbose=0,
                             callbacks=[checkpoint])
    first, second = (h.history["reconstruction_error"] for h in histories)
    assert min(second) > max(first)  # the second layer's best is worse than the first's
    saved = keras.models.load_model(path)
    assert (saved.name, saved.units) == (dbn.rbms[1].name, 2)
    assert checkpoint.best == min(second)


def test_the_classifier_of_a_global_mixed_policy_outputs_float32():
    """Without ``dtype`` the layers follow Keras' global policy; under a
    mixed one the softmax still computes in float32, as with ``dtype``."""
    dbn = keras_dbn.DBN([6, 4], seed=0)
    dbn.build((None, 10))
    x = np.random.default_rng(0).random((50, 10)).astype("float32")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        classifier = dbn.to_classifier(3)
    finally:
        keras.config.set_dtype_policy(previous)
    assert classifier.layers[0].dtype_policy.name == "mixed_bfloat16"
    assert classifier.layers[-1].dtype_policy.name == "float32"
    probabilities = classifier.predict(x, verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_a_generator_is_refused_with_the_inputs_that_work():
    dbn = keras_dbn.DBN([4], seed=0)
    dbn.build((None, 6))
    rows = (np.zeros((2, 6), "float32") for _ in range(3))
    for call in (lambda: dbn.pretrain(rows, epochs=1), lambda: dbn.transform(iter([]))):
        with pytest.raises(TypeError, match="Got a .*: pass a NumPy array .*from_generator"):
            call()


def test_each_layer_may_have_callbacks_of_its_own(tmp_path):
    """A list of lists gives each layer its own callbacks: a TensorBoard per
    layer writes one run each, where a shared one draws the layers' epochs
    over each other (and warns)."""
    from keras_dbn.callbacks import ImageGridCallback

    x = (np.random.default_rng(0).random((100, 16)) < 0.4).astype("float32")
    seen = []

    class Names(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.model.name)

    dbn = keras_dbn.DBN([6, 4], seed=0)
    boards = [keras.callbacks.TensorBoard(tmp_path / rbm.name) for rbm in dbn.rbms]
    shared = Names()
    # The first layer's own ImageGridCallback needs no rbm=: it sees that layer only.
    grids = ImageGridCallback(tmp_path / "grids", num_samples=4, gibbs_steps=1,
                              tensorboard=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        dbn.pretrain(x, epochs=2, batch_size=50, verbose=0,
                     callbacks=[[boards[0], shared, grids], [boards[1], shared]])
    assert seen == ["rbm_0", "rbm_1"]
    for rbm in dbn.rbms:
        assert (tmp_path / rbm.name / "train").is_dir()
    assert sorted(os.listdir(tmp_path / "grids")) == [
        "filters_epoch001.png", "filters_epoch002.png", "samples_epoch001.png",
        "samples_epoch002.png"]
    with pytest.warns(UserWarning, match="TensorBoard callback shared by the layers"):
        dbn.pretrain(x, epochs=[1, 0], batch_size=50, verbose=0,
                     callbacks=[keras.callbacks.TensorBoard(tmp_path / "shared")])
    with pytest.raises(ValueError, match="has 1 per-layer lists for 2 layers"):
        dbn.pretrain(x, epochs=0, callbacks=[[shared]])
    with pytest.raises(ValueError, match="mixes both"):
        dbn.pretrain(x, epochs=0, callbacks=[[shared], shared])
    with pytest.raises(ValueError, match="needs rbm=dbn"):
        dbn.pretrain(x, epochs=0, callbacks=[None, [grids]])


@pytest.mark.parametrize("options", [dict(), dict(sample=True), dict(cache_bytes=0)])
def test_every_layer_makes_exactly_steps_per_epoch_updates_from_an_array(options):
    """Every layer's input comes from the array, cached or streamed: every
    epoch makes the updates asked for, as `RBM.fit` of an array does
    (130 rows at batch size 32 are 5 batches a pass)."""
    dbn = keras_dbn.DBN([6, 4], seed=0)
    updates = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            updates.append(int(self.model.optimizer.iterations.numpy()))

    dbn.pretrain(_binary(rows=130), epochs=3, batch_size=32, steps_per_epoch=4, verbose=0,
                 callbacks=[Count()], **options)
    assert updates == [4, 8, 12] * 2


class _ReluUnits(keras_dbn.units.GaussianUnits):
    """Gaussian units with a rectified mean, named by their Keras activation."""

    keras_activation = "relu"

    def mean(self, pre_activation):
        return keras.ops.relu(pre_activation)


class _HalfTemperatureUnits(keras_dbn.units.BernoulliUnits):
    """Inherits "sigmoid", which does not give its mean."""

    def mean(self, pre_activation):
        return keras.ops.sigmoid(pre_activation / 2.0)


def test_classifier_layers_take_the_activation_of_their_hidden_units():
    dbn = keras_dbn.DBN([keras_dbn.RBM(6, hidden=_ReluUnits(), seed=0)], seed=0)
    dbn.build((None, 5))
    dbn.rbms[0].hidden_bias.assign(np.linspace(-1, 1, 6))
    classifier = dbn.to_classifier(3)
    activations = [layer.activation.__name__ for layer in classifier.layers]
    assert activations == ["relu", "softmax"]
    x = np.random.default_rng(0).random((7, 5)).astype("float32")
    np.testing.assert_allclose(np.asarray(classifier.layers[0](x)),
                               np.asarray(dbn.rbms[0].hidden_given_visible(x)), atol=1e-6)
    mismatched = keras_dbn.DBN([keras_dbn.RBM(6, hidden=_HalfTemperatureUnits(), seed=0)])
    mismatched.build((None, 5))
    with pytest.raises(ValueError, match="_HalfTemperatureUnits names 'sigmoid', which does not"):
        mismatched.to_classifier(3)


def test_an_upper_layer_sees_the_units_below_as_its_visible_ones(tmp_path):
    """Gaussian hidden units below the top: the RBM above models their real
    activations with Gaussian visible units (it used to be built Bernoulli
    and the DBN refused its own stack)."""
    x = (np.random.default_rng(0).random((200, 12)) > 0.5).astype("float32")
    dbn = keras_dbn.DBN([6, 4], hidden=["gaussian", "bernoulli"], seed=0)
    assert [(rbm.visible, rbm.hidden) for rbm in dbn.rbms] == [
        ("bernoulli", "gaussian"), ("gaussian", "bernoulli")]
    for rbm in dbn.rbms:
        rbm.compile(optimizer=keras.optimizers.SGD(0.01))
    dbn.pretrain(x, epochs=1, batch_size=50, verbose=0)
    assert all(np.isfinite(np.asarray(rbm.kernel)).all() for rbm in dbn.rbms)
    dbn.save(tmp_path / "dbn.keras")
    loaded = keras.models.load_model(tmp_path / "dbn.keras")
    assert [(rbm.visible, rbm.hidden) for rbm in loaded.rbms] == [
        (rbm.visible, rbm.hidden) for rbm in dbn.rbms]
    assert dbn.generate(3, gibbs_steps=2, seed=0).shape == (3, 12)
    # Gaussian units on both sides of one RBM have no distribution.
    with pytest.raises(ValueError, match="Layer 1 would be a Gaussian-Gaussian RBM"):
        keras_dbn.DBN([6, 4], hidden="gaussian")


@pytest.mark.parametrize("options", [{}, {"cache_bytes": 0}, {"sample": True}])
def test_every_layer_reads_its_own_batch_size_cached_or_streamed(options):
    x = (np.random.default_rng(0).random((600, 30)) > 0.6).astype("float32")
    dbn = keras_dbn.DBN([12, 8, 6], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. Keras' "input ran out of data"
        dbn.pretrain(x, epochs=2, batch_size=[100, 50, 200], verbose=0, **options)
    assert [int(rbm.optimizer.iterations) for rbm in dbn.rbms] == [12, 24, 6]


def test_streamed_layers_start_from_their_inputs_mean_as_cached_ones_do(monkeypatch):
    x = (np.random.default_rng(0).random((600, 30)) > 0.6).astype("float32")
    biases = {}
    initialize = keras_dbn.RBM.initialize_visible_bias

    def recorded(rbm, data):
        result = initialize(rbm, data)
        if rbm.name == "rbm_1":  # the start, before the layer's epochs
            biases[cache_bytes] = np.asarray(rbm.visible_bias).copy()
        return result

    monkeypatch.setattr(keras_dbn.RBM, "initialize_visible_bias", recorded)
    for cache_bytes in (None, 0):
        dbn = keras_dbn.DBN([12, 8], seed=0)
        dbn.pretrain(x, epochs=[3, 1], batch_size=100, verbose=0, cache_bytes=cache_bytes)
    assert np.abs(biases[None]).max() > 0.01  # set, not left at zero
    np.testing.assert_allclose(biases[0], biases[None], atol=1e-5)


def test_a_seeded_classifier_starts_and_drops_out_alike():
    dbn = keras_dbn.DBN([6, 4], seed=0)
    dbn.build((None, 5))
    x = np.random.default_rng(0).random((8, 5)).astype("float32")
    a, b, c = (dbn.to_classifier(3, dropout=0.5, input_dropout=0.2, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.get_weights()[-2], b.get_weights()[-2])
    assert not np.array_equal(a.get_weights()[-2], c.get_weights()[-2])
    np.testing.assert_array_equal(np.asarray(a(x, training=True)), np.asarray(b(x, training=True)))
    with pytest.raises(ValueError, match="`seed` must be an integer or None"):
        dbn.to_classifier(3, seed=1.5)


def test_pretrain_gives_each_layer_the_default_optimizer_of_its_units():
    """A Gaussian first layer takes the smaller default rate; the Bernoulli
    layer above it the usual one."""
    x = np.random.default_rng(0).normal(size=(40, 5)).astype("float32")
    dbn = keras_dbn.DBN([4, 3], visible="gaussian", seed=0)
    dbn.pretrain(x, epochs=1, batch_size=20, verbose=0)
    rates = [float(rbm.optimizer.learning_rate) for rbm in dbn.rbms]
    assert rates == pytest.approx([0.01, 0.1])


def test_a_dbn_of_rbms_trained_on_their_own_transforms_generates_and_classifies():
    """RBMs trained (or loaded) on their own make a DBN that needs no
    pretraining: it is built from them, its widths checked."""
    x = (np.random.default_rng(0).random((60, 8)) < 0.5).astype("float32")
    below = keras_dbn.RBM(5, seed=0)
    below.fit(x, epochs=1, batch_size=20, verbose=0)
    top = keras_dbn.RBM(3, seed=1)
    top.fit(below.predict(x, verbose=0), epochs=1, batch_size=20, verbose=0)
    dbn = keras_dbn.DBN([below, top])
    np.testing.assert_allclose(
        dbn.transform(x), top.predict(below.predict(x, verbose=0), verbose=0), rtol=1e-6)
    assert dbn.generate(4, gibbs_steps=3, seed=0).shape == (4, 8)
    assert dbn.to_classifier(2).predict(x[:3], verbose=0).shape == (3, 2)
    wrong = keras_dbn.DBN([below, keras_dbn.RBM(2)])
    wrong.rbms[1].build((None, 7))
    with pytest.raises(ValueError, match="expects 7 inputs but the layer below gives 5"):
        wrong.generate(2, gibbs_steps=1)
    narrow = keras_dbn.DBN([keras_dbn.RBM(5), keras_dbn.RBM(2)])
    narrow.build((None, 8))
    with pytest.raises(ValueError, match="rbm.* expects 8 inputs but the data give 6"):
        keras_dbn.DBN(narrow.rbms).build((None, 6))


@pytest.mark.parametrize("options", [{}, {"cache_bytes": 0}, {"sample": True},
                                     {"sample": True, "cache_bytes": 0}])
def test_a_pretraining_split_into_calls_and_a_save_ends_as_one_call_would(tmp_path, options):
    """The README's resume: layer by layer, saved between, ``epochs=0`` for
    the layers done, the same optimizer given again. The loaded RBMs keep
    their optimizers' state, and calls of no epochs draw no shuffling seed.
    Upper layers fed by a stream (``cache_bytes=0``, ``sample=True``) read
    the same orders and samples: their streams are built afresh for each
    layer, and the visible biases' start reads a copy (it used to take the
    stream's first pass, and so the first epoch's shuffle and draws, only in
    the call that set it; the layer above read the stream where the layer
    below's epochs left it). With three layers, the first call must leave
    the top layer's visible biases alone: they would be set from the
    untrained middle layer's activations, and the resumed call would take
    the layer for trained."""
    x = _binary()

    def optimizer():
        schedule = keras.optimizers.schedules.PolynomialDecay(0.1, 8, end_learning_rate=0.0)
        return keras.optimizers.SGD(schedule, momentum=0.9)

    whole = keras_dbn.DBN([8, 4, 3], seed=0)
    whole.pretrain(x, epochs=2, batch_size=25, optimizer=optimizer(), verbose=0, **options)
    split = keras_dbn.DBN([8, 4, 3], seed=0)
    split.pretrain(x, epochs=[2, 0, 0], batch_size=25, optimizer=optimizer(), verbose=0,
                   **options)
    split.save(tmp_path / "dbn.keras")
    split = keras.models.load_model(tmp_path / "dbn.keras")
    # A call of no epochs must not set the top layer's biases either: the
    # middle one's were set by the first call, but it made no update.
    split.pretrain(x, epochs=0, batch_size=25, optimizer=optimizer(), verbose=0, **options)
    split.pretrain(x, epochs=[0, 2, 0], batch_size=25, optimizer=optimizer(), verbose=0,
                   **options)
    split.pretrain(x, epochs=[0, 0, 2], batch_size=25, optimizer=optimizer(), verbose=0,
                   **options)
    for a, b in zip(whole.rbms, split.rbms):
        assert int(a.optimizer.iterations) == int(b.optimizer.iterations) == 16
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    # Another optimizer replaces a compiled one.
    split.pretrain(x, epochs=0, optimizer="adam", verbose=0)
    assert all(isinstance(rbm.optimizer, keras.optimizers.Adam) for rbm in split.rbms)


def test_a_dbn_saved_during_a_call_resumes_as_one_call_would(tmp_path):
    """A save in a callback after the bottom layer recorded every layer of
    the call as called (the counts seed the upper layers' streams): the
    loaded DBN resumed with other samples than one call draws."""
    x = _binary()
    options = dict(batch_size=25, verbose=0, sample=True)
    whole = keras_dbn.DBN([8, 4, 3], seed=0)
    whole.pretrain(x, epochs=1, **options)

    dbn = keras_dbn.DBN([8, 4, 3], seed=0)

    class SaveAfterTheBottomLayer(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            dbn.save(tmp_path / "mid.keras")

    class Crash(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dbn.pretrain(x, epochs=1, callbacks=[[SaveAfterTheBottomLayer()], [Crash()], []],
                     **options)
    loaded = keras.models.load_model(tmp_path / "mid.keras")
    assert loaded._layer_pretrain_calls() == dbn._layer_pretrain_calls() == [1, 0, 0]
    # A call of no epochs from a callback left the stopped call's count to the
    # layers it never trained.
    nested = keras_dbn.DBN([8, 4, 3], seed=0)

    class PretrainAgain(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            nested.pretrain(x, epochs=0, **options)

    with pytest.raises(KeyboardInterrupt):
        nested.pretrain(x, epochs=1, callbacks=[[PretrainAgain()], [Crash()], []], **options)
    assert nested._layer_pretrain_calls() == [1, 0, 0]
    for resumed in (loaded, dbn):
        resumed.pretrain(x, epochs=[0, 1, 1], **options)
        for a, b in zip(whole.rbms, resumed.rbms):
            for wa, wb in zip(a.get_weights(), b.get_weights()):
                np.testing.assert_array_equal(wa, wb)


def test_an_upper_layers_start_is_set_in_the_call_that_trains_it():
    """A call of no epochs for a layer above a trained one set its start,
    except where the layer below had been given a new optimizer (no updates
    yet): the start now comes in the call that trains the layer, from the
    layer below as it then is, whatever the calls before did."""
    x = _binary()
    kwargs = dict(batch_size=25, verbose=0, optimizer=["sgd", "adam", "adam"])
    whole = keras_dbn.DBN([8, 4, 3], seed=0)
    whole.pretrain(x, epochs=2, **kwargs)
    split = keras_dbn.DBN([8, 4, 3], seed=0)
    split.pretrain(x, epochs=[2, 0, 0], **kwargs)
    assert not np.any(np.asarray(split.rbms[1].visible_bias))  # not started yet
    split.pretrain(x, epochs=0, batch_size=25, verbose=0, optimizer="adam")  # replaced
    assert not np.any(np.asarray(split.rbms[1].visible_bias))
    split.pretrain(x, epochs=[0, 2, 0], **kwargs)
    split.pretrain(x, epochs=[0, 0, 2], **kwargs)
    for a, b in zip(whole.rbms, split.rbms):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)


def test_sampled_layers_compute_the_cached_activations_below_once(monkeypatch):
    """Each upper layer's sampled stream is built afresh, and the visible
    biases' start reads a copy of it: the bottom layer's cached
    activations are computed (and held) once, not for every stream."""
    from keras_dbn import dbn as dbn_module

    calls = []
    predicted = dbn_module._predicted

    def counted(rbm, data, *args, **kwargs):
        calls.append((rbm.name, len(data)))
        return predicted(rbm, data, *args, **kwargs)

    monkeypatch.setattr(dbn_module, "_predicted", counted)
    x = _binary()
    dbn = keras_dbn.DBN([8, 4, 3], seed=0)
    dbn.pretrain(x[:160], epochs=1, batch_size=20, sample=True, verbose=0,
                 validation_data=x[160:])
    assert sorted(calls) == [("rbm_0", 40), ("rbm_0", 160)]


def test_generate_from_data_checks_the_data_not_the_dbns_own_states():
    """A Gaussian hidden layer's states are not data to standardise: only
    ``initial`` itself is checked."""
    x = _binary(rows=40, width=6)
    dbn = keras_dbn.DBN([4, 3], hidden=["gaussian", "bernoulli"], seed=0)
    dbn.build(x.shape)
    dbn.rbms[0].kernel.assign(np.full((6, 4), 8.0, "float32"))  # states spread far beyond 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dbn.generate(None, gibbs_steps=2, initial=x, seed=0).shape == x.shape
    with pytest.raises(ValueError, match=r"need data in \[0, 1\]"):
        dbn.generate(None, gibbs_steps=2, initial=x + 2.0)
    with pytest.raises(ValueError, match="`gibbs_steps`"):
        dbn.generate(None, gibbs_steps=-1, initial=x)


def test_a_dbn_saved_with_one_pretraining_count_for_all_layers_loads(tmp_path, monkeypatch):
    """Files written before the counts were per layer hold `pretrain_calls`,
    one number: it loads as every layer's count."""
    x = _binary()
    dbn = keras_dbn.DBN([8, 4], seed=0)
    dbn.pretrain(x, epochs=1, batch_size=50, verbose=0)
    dbn.pretrain(x, epochs=1, batch_size=50, verbose=0)
    base = keras_dbn.DBN.__mro__[1]._extra_state  # ExtraStateMixin's

    def earlier_format(self):
        return dict(base(self), pretrain_calls=np.asarray(2, "int64"))

    monkeypatch.setattr(keras_dbn.DBN, "_extra_state", earlier_format)
    dbn.save(tmp_path / "earlier.keras")
    monkeypatch.undo()
    loaded = keras.models.load_model(tmp_path / "earlier.keras")
    assert loaded._layer_pretrain_calls() == [2, 2]
    for a, b in zip(dbn.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_pretraining_a_deep_dbn_with_validation_logs_no_retracing_warning(caplog):
    """Each layer's RBM traces Keras' functions anew, which TensorFlow
    reported as retracing, twice per message, from the third trace on."""
    rng = np.random.default_rng(0)
    x = (rng.random((600, 30)) < 0.3).astype("float32")
    dbn = keras_dbn.DBN([16, 12, 8, 6], seed=0)
    with caplog.at_level("WARNING", logger="tensorflow"):
        dbn.pretrain(x[:500], epochs=2, batch_size=50, validation_data=x[500:], verbose=0)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


@pytest.mark.parametrize("cache_bytes", [None, 0])
def test_a_diverging_upper_layer_is_named_and_its_input_not_blamed(cache_bytes):
    """The error named no layer, and with the activations streamed to the
    layer above (a dataset) told the user to check data that `pretrain`
    had checked whole."""
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")
    dbn = keras_dbn.DBN([keras_dbn.RBM(4, visible="gaussian", seed=0),
                         keras_dbn.RBM(3, hidden="gaussian", seed=1)])
    with pytest.raises(FloatingPointError,
                       match=r"^DBN.pretrain, layer 2 of 2 \(.*\): RBM training diverged") as error:
        dbn.pretrain(x, epochs=2, batch_size=20, verbose=0, cache_bytes=cache_bytes,
                     optimizer=[keras.optimizers.SGD(1e-3), keras.optimizers.SGD(1e6)])
    assert "check the data" not in str(error.value)
    assert "a lower rate for that layer in its `optimizer`" in str(error.value)
    assert "0 `epochs` for the layers below it" in str(error.value)
    assert "compiling again" not in str(error.value)  # RBM.fit's advice, undone by pretrain
    assert isinstance(error.value, keras_dbn.TrainingDiverged) and error.value.epoch == 1
    assert all(np.isfinite(w).all() for w in dbn.rbms[1].get_weights())

    class Raises(keras.callbacks.Callback):  # a user's own error goes through as it is
        def on_epoch_end(self, epoch, logs=None):
            raise FloatingPointError("mine")

    with pytest.raises(FloatingPointError, match="^mine$"):
        keras_dbn.DBN([3, 2], seed=0).pretrain((x > 0).astype("float32"), epochs=1,
                                                verbose=0, callbacks=[Raises()])


def _kernels(dbn):
    return [np.asarray(rbm.kernel) for rbm in dbn.rbms]


def test_a_refused_call_leaves_a_seeded_dbn_or_rbm_training_as_it_would_have():
    """The calls were counted (for the shuffling's and sampling's seeds)
    before the call was refused: the next call drew otherwise than a first
    one, also where the refused call had given a layer a new optimizer."""
    x = _binary(rows=300)
    options = dict(epochs=1, batch_size=30, verbose=0, sample=True)
    plain = keras_dbn.DBN([8, 6], seed=0)
    plain.pretrain(x, **options)
    plain.pretrain(x, **dict(options, epochs=[0, 1], optimizer=[None, "adam"]))
    refused = keras_dbn.DBN([8, 6], seed=0)
    with pytest.raises(ValueError, match="The validation data"):
        refused.pretrain(x, **options, validation_data=x[:20, :5])
    with pytest.raises(TypeError, match="shufle"):
        refused.pretrain(x, **options, shufle=False)
    refused.pretrain(x, **options)
    never_stops = keras.callbacks.EarlyStopping("val_nothing")
    with pytest.raises(ValueError, match="val_nothing"):
        refused.pretrain(x, **dict(options, epochs=[0, 1], optimizer=[None, "adam"]),
                         callbacks=[[], [never_stops]])
    refused.pretrain(x, **dict(options, epochs=[0, 1], optimizer=[None, "adam"]))
    for a, b in zip(_kernels(plain), _kernels(refused)):
        np.testing.assert_array_equal(a, b)
    rbm, again = keras_dbn.RBM(8, seed=0), keras_dbn.RBM(8, seed=0)
    with pytest.raises(TypeError, match="shufle"):
        again.fit(x, epochs=1, batch_size=30, verbose=0, shufle=False)
    for model in (rbm, again):
        model.fit(x, epochs=1, batch_size=30, verbose=0)
    np.testing.assert_array_equal(np.asarray(rbm.kernel), np.asarray(again.kernel))


@pytest.mark.parametrize("options, message", [
    (dict(batch_size=[30, 0]), "batch_size must be a positive integer, got 0"),
    (dict(batch_size=[30, 2.5], cache_bytes=0), "batch_size must be a positive integer"),
    (dict(optimizer=["sgd", "sgdd"]), "sgdd"),
])
def test_every_layers_options_are_checked_before_any_layer_trains(options, message):
    """The upper layer's were checked when it started: after the first
    layer's whole training."""
    dbn = keras_dbn.DBN([8, 6], seed=0)
    with pytest.raises(ValueError, match=message):
        dbn.pretrain(_binary(), epochs=1, verbose=0, **options)
    assert [rbm._update_count()[1] for rbm in dbn.rbms] == [0, 0]


def test_a_batch_size_of_none_is_fit_s_default_on_every_input_path():
    """None worked where the upper layer's input was cached, and failed
    after the first layer's training where it was streamed."""
    x = _binary(rows=200)
    kernels = []
    for options in (dict(batch_size=None), dict(batch_size=None, cache_bytes=0),
                    dict(batch_size=32)):
        dbn = keras_dbn.DBN([8, 6], seed=0)
        dbn.pretrain(x, epochs=1, verbose=0, shuffle=False, **options)
        kernels.append(_kernels(dbn))
    for other in kernels[1:]:
        for a, b in zip(kernels[0], other):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_bad_validation_dataset_is_refused_before_any_layer_trains():
    import tensorflow as tf

    x = _binary()
    for bad, message in ((x[:40, :5], "12 visible units, but the data has 5"),
                         (x[:40] * 255, r"need data in \[0, 1\]")):
        dbn = keras_dbn.DBN([8, 6], seed=0)
        with pytest.raises(ValueError, match="The validation data: .*" + message):
            dbn.pretrain(x, epochs=1, verbose=0,
                         validation_data=tf.data.Dataset.from_tensor_slices(bad).batch(20))
        assert [rbm._update_count()[1] for rbm in dbn.rbms] == [0, 0]


def test_pretrain_reads_what_keras_fit_reads_or_says_what_it_cannot():
    import tensorflow as tf

    x = _binary()
    dicts = tf.data.Dataset.from_tensor_slices({"image": x, "label": np.zeros(len(x))}).batch(20)
    with pytest.raises(TypeError, match="give the dataset's elements as x or \\(x, y\\)"):
        keras_dbn.DBN([8, 6]).pretrain(dicts, epochs=1, verbose=0)
    stop = keras.callbacks.EarlyStopping("reconstruction_error")
    histories = keras_dbn.DBN([8, 6]).pretrain(x, epochs=1, verbose=0, callbacks=stop)
    assert len(histories) == 2  # one callback, not in a list, as Keras' fit takes it
    assert len(keras_dbn.RBM(4).fit(x, verbose=0, callbacks=stop).history["free_energy"]) == 1
    trainer = keras_dbn.SupervisedTrainer(_tiny_classifier())
    trainer.compile("adam")
    history = trainer.fit(x, np.arange(len(x)) % 3, epochs=1, verbose=0,
                          callbacks=keras.callbacks.EarlyStopping("loss"))
    assert len(history.history["loss"]) == 1
    epochs = keras_dbn.DBN([8, 6], seed=0).pretrain(x, np.array([2, 1]), verbose=0)
    assert [len(h.history["free_energy"]) for h in epochs] == [2, 1]  # one count per layer


def _tiny_classifier():
    dbn = keras_dbn.DBN([8], seed=0)
    dbn.build((None, 12))
    return dbn.to_classifier(3)


def test_a_call_that_runs_no_epoch_leaves_the_layers_as_epochs_of_zero_do():
    """With initial_epoch at epochs nothing trained, yet the upper layer's
    visible biases were set from the untrained layer below, and then kept."""
    x = _binary(rows=300)
    plain = keras_dbn.DBN([8, 6], seed=0)
    plain.pretrain(x, epochs=2, batch_size=30, verbose=0)
    split = keras_dbn.DBN([8, 6], seed=0)
    split.pretrain(x, epochs=1, initial_epoch=1, batch_size=30, verbose=0)
    split.pretrain(x, epochs=2, batch_size=30, verbose=0)
    for a, b in zip([*_kernels(plain), np.asarray(plain.rbms[1].visible_bias)],
                    [*_kernels(split), np.asarray(split.rbms[1].visible_bias)]):
        np.testing.assert_array_equal(a, b)


def test_sampled_upper_layers_are_validated_on_sampled_states_too(mnist_small):
    """Validation data went up as means while the layer trained on sampled
    states: given the training data as validation data, the top layer's
    reconstruction error was a third of the training one's. Now they agree
    within 1% over seeds 0-5, and the free-energy gap stays within the
    ±0.2 nats of the two streams' sampling noise."""
    x = mnist_small[0][:1000]
    histories = keras_dbn.DBN([64, 32], seed=0).pretrain(
        x, epochs=2, batch_size=100, sample=True, validation_data=x, verbose=0)
    top = histories[1].history
    assert abs(top["free_energy_gap"][-1]) < 0.3
    assert top["val_reconstruction_error"][-1] == pytest.approx(
        top["reconstruction_error"][-1], rel=0.05)


def test_transform_of_no_layers_checks_the_data_as_transform_does():
    dbn = keras_dbn.DBN([8, 6], seed=0)
    dbn.pretrain(_binary(), epochs=1, verbose=0)
    for bad, message in ((np.full((3, 5), 0.5), "12 visible units"),
                         (np.full((3, 12), 255.0), r"in \[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            dbn.transform(bad, num_layers=0)


def test_options_that_an_rbm_given_as_a_layer_would_override_are_refused():
    for options in (dict(k=[5, 1]), dict(persistent=[True, False]),
                    dict(hidden=["gaussian", "bernoulli"])):
        with pytest.raises(ValueError, match="Layer 0 is an RBM given as is"):
            keras_dbn.DBN([keras_dbn.RBM(8), 6], **options)
    dbn = keras_dbn.DBN([keras_dbn.RBM(8, k=3), 6], k=[None, 2])
    assert [rbm.k for rbm in dbn.rbms] == [3, 2]
    rbm = keras_dbn.RBM(8)
    with pytest.raises(ValueError, match="given as two layers"):
        keras_dbn.DBN([rbm, rbm])
