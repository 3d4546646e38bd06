"""`RBM.fit` chooses XLA for small float32 steps (``jit_compile="auto"``)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dbn
from keras_dbn import rbm as rbm_module
from keras_dbn import units


def _data(n=120, d=12, seed=0):
    return (np.random.default_rng(seed).random((n, d)) < 0.4).astype("float32")


def test_auto_compiles_small_steps_with_xla_and_large_ones_without(monkeypatch):
    x = _data()
    rbm = keras_dbn.RBM(6, seed=0)
    rbm.compile()
    rbm.fit(x, batch_size=20, epochs=1, verbose=0)
    assert rbm.jit_compile is True  # 20 x 12 x 6 multiply-adds
    monkeypatch.setattr(rbm_module, "XLA_MAX_GEMM_SIZE", 20 * 12 * 6 - 1)
    rbm.fit(x, batch_size=20, epochs=1, verbose=0)
    assert rbm.jit_compile is False
    rbm.fit(x, batch_size=10, epochs=1, verbose=0)
    assert rbm.jit_compile is True


def test_auto_keeps_tensorflow_graph_for_unknown_batch_size_and_bfloat16():
    x = _data()
    rbm = keras_dbn.RBM(6, seed=0)
    rbm.compile()
    rbm.fit(tf.data.Dataset.from_tensor_slices(x).batch(50), epochs=1, verbose=0)
    # The last batch is smaller, so the batches have no static size: the
    # whole step in XLA would be compiled again for each size.
    assert rbm.jit_compile is False
    rbm.fit(tf.data.Dataset.from_tensor_slices(x).batch(40, drop_remainder=True),
            epochs=1, verbose=0)
    assert rbm.jit_compile is True
    # The choice is made again for each call, also back to the graph, and
    # for a generator, whose batch shape fit() cannot read beforehand.
    rbm.fit(tf.data.Dataset.from_tensor_slices(x).batch(50), epochs=1, verbose=0)
    assert rbm.jit_compile is False
    rbm.fit(x, batch_size=20, epochs=1, verbose=0)
    assert rbm.jit_compile is True
    rbm.fit(((x[i:i + 20],) for i in range(0, 120, 20)), steps_per_epoch=6, epochs=1, verbose=0)
    assert rbm.jit_compile is False
    mixed = keras_dbn.RBM(6, seed=0, dtype="mixed_bfloat16")
    mixed.fit(x, batch_size=20, epochs=1, verbose=0)
    assert mixed.jit_compile is False


def test_auto_keeps_tensorflow_graph_for_persistent_chains():
    rbm = keras_dbn.RBM(6, persistent=True, num_chains=20, seed=0)
    rbm.compile()
    rbm.fit(_data(), batch_size=20, epochs=1, verbose=0)
    assert rbm.jit_compile is False  # the same step size as above, by PCD


@pytest.mark.parametrize("jit", [False, True])
def test_an_explicit_choice_is_kept(jit):
    rbm = keras_dbn.RBM(6, seed=0)
    rbm.compile(jit_compile=jit)
    rbm.fit(_data(), batch_size=20, epochs=1, verbose=0)
    assert rbm.jit_compile is jit


def test_xla_and_graph_training_agree():
    """Same seed, same samples: XLA changes only the rounding of the step.

    PCD with Adam and a sparsity target covers the variables that are
    created before the first step (persistent chains, optimizer slots),
    which an XLA-compiled step cannot create itself.
    """
    x = _data(200, 16)

    def new_rbm():
        return keras_dbn.RBM(8, k=2, persistent=True, num_chains=20, sparsity_target=0.1,
                             sparsity_cost=0.1, seed=3)

    # The initial weights from a twin built apart: the trained RBMs are
    # left unbuilt, so that fit() itself must build them before an XLA step.
    twin = new_rbm()
    twin.build((None, 16))
    initial = np.array(twin.kernel)

    def train(jit):
        rbm = new_rbm()
        rbm.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit)
        assert not rbm.built
        history = rbm.fit(x, batch_size=20, epochs=3, shuffle=False, verbose=0)
        assert rbm.jit_compile is jit
        assert np.abs(np.array(rbm.kernel) - initial).max() > 0.05  # it learned
        return rbm, history.history

    graph, graph_logs = train(False)
    xla, xla_logs = train(True)
    for a, b in zip(graph.weights, xla.weights):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-4)
    for name in graph_logs:
        np.testing.assert_allclose(graph_logs[name], xla_logs[name], rtol=1e-4, atol=1e-5)


def test_a_loaded_rbm_chooses_again(tmp_path):
    rbm = keras_dbn.RBM(6, seed=0)
    rbm.compile()
    rbm.fit(_data(), batch_size=20, epochs=1, verbose=0)
    rbm.save(tmp_path / "rbm.keras")
    loaded = keras.models.load_model(tmp_path / "rbm.keras")
    assert loaded.get_compile_config()["jit_compile"] == "auto"
    loaded.fit(_data(seed=1), batch_size=20, epochs=1, verbose=0)
    assert loaded.jit_compile is True


# ------------------------------------------------- the "xla_chain" route


def test_drawn_noise_gives_the_draws_of_the_seed_generator():
    """`DrawnNoise` hands out, draw by draw, exactly the numbers that the
    samplers take from a seed generator in the same state: uniforms for
    Bernoulli units (also for a draw of odd size, whose last Philox word is
    half used) and normals for Gaussian ones, interleaved."""

    rng = np.random.default_rng(0)
    shapes = [(4, 7), (3, 5), (2, 9), (3, 3)]
    kinds = ["bernoulli", "gaussian", "bernoulli", "gaussian"]
    means = [rng.random(shape).astype("float32") for shape in shapes]
    generator = keras.random.SeedGenerator(5)
    expected = [np.asarray(units.get(k).sample(m, generator)) for k, m in zip(kinds, means)]
    draws = [("uniform", 28), ("normal", 15), ("uniform", 18), ("normal", 9)]
    halves, normals = units.DrawnNoise.draw(draws, keras.random.SeedGenerator(5))
    assert halves.dtype == tf.uint16 and halves.shape == (46,)
    assert normals.dtype == tf.float32 and normals.shape == (24,)
    drawn = units.DrawnNoise(halves, normals)
    got = [np.asarray(units.get(k).sample(m, drawn, m.shape)) for k, m in zip(kinds, means)]
    assert drawn.draws == draws
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    # The Gaussian draws are real normals around their means.
    assert 0.3 < np.std(np.concatenate([(g - m).ravel() for g, m in zip(got[1::2], means[1::2])]))
    # Different seeds, different draws: the comparisons above can fail.
    other = units.DrawnNoise(*units.DrawnNoise.draw(draws[:2], keras.random.SeedGenerator(6)))
    assert not np.array_equal(np.asarray(units.bernoulli_sample(means[0], other, (4, 7))),
                              expected[0])
    assert not np.array_equal(np.asarray(units.get("gaussian").sample(means[1], other, (3, 5))),
                              expected[1])


def test_drawn_noise_needs_static_shapes_and_its_kinds_of_numbers():
    drawn = units.DrawnNoise(tf.zeros([10], tf.uint16))
    with pytest.raises(ValueError, match="static shapes"):
        drawn.uniform((tf.constant(2), 5), "float32")
    with pytest.raises(ValueError, match="no normals"):
        units.get("gaussian").sample(np.zeros((2, 5), "float32"), drawn, (2, 5))
    with pytest.raises(ValueError, match="kind of draw"):
        units.DrawnNoise.draw([("poisson", 3)], keras.random.SeedGenerator(0))
    halves, normals = units.DrawnNoise.draw([("uniform", 3)], keras.random.SeedGenerator(0))
    assert halves.shape == (3,) and normals.shape == (0,)


def _record_chain_traces(monkeypatch):
    """A list that gets ``(batch shape, padded)`` each time the XLA chain is traced."""
    traced = []
    in_xla = rbm_module.RBM._contrastive_divergence_in_xla

    def recorded(self, v0, data_rows=None):
        traced.append((tuple(v0.shape), data_rows is not None))
        return in_xla(self, v0, data_rows)

    monkeypatch.setattr(rbm_module.RBM, "_contrastive_divergence_in_xla", recorded)
    return traced


def _chain_window(monkeypatch, low=0, high=10**9):
    monkeypatch.setattr(rbm_module, "XLA_CHAIN_GEMM_SIZES", (low, high))


def test_auto_runs_chains_in_xla_within_the_window_only(monkeypatch):
    x = _data()
    _chain_window(monkeypatch)
    cd3 = keras_dbn.RBM(6, k=3, seed=0)
    cd3.compile()
    cd3.fit(x, batch_size=20, epochs=1, verbose=0)
    assert cd3._xla_chain == 20 and cd3.jit_compile is False
    pcd = keras_dbn.RBM(6, persistent=True, num_chains=20, seed=0)
    pcd.compile()
    pcd.fit(x, batch_size=20, epochs=1, verbose=0)
    assert pcd._xla_chain == 20 and pcd.jit_compile is False
    cd1 = keras_dbn.RBM(6, seed=0)  # one layer of draws: the whole step in XLA
    cd1.compile()
    cd1.fit(x, batch_size=20, epochs=1, verbose=0)
    assert cd1._xla_chain == 0 and cd1.jit_compile is True
    # Outside the window CD-k and PCD run in TensorFlow's graph.
    _chain_window(monkeypatch, 20 * 12 * 6 + 1)
    cd3.fit(x, batch_size=20, epochs=1, verbose=0)
    assert cd3._xla_chain == 0 and cd3.jit_compile is False
    pcd.fit(x, batch_size=20, epochs=1, verbose=0)
    assert pcd._xla_chain == 0 and pcd.jit_compile is False


def test_auto_runs_chains_in_xla_for_every_batch_size_of_an_array(monkeypatch):
    """An array's smaller last batch is padded to the full size."""
    _chain_window(monkeypatch)
    traced = _record_chain_traces(monkeypatch)
    rbm = keras_dbn.RBM(6, k=3, persistent=True, num_chains=20, seed=0)
    rbm.compile()
    rbm.fit(_data(130), batch_size=20, epochs=1, verbose=0)  # a last batch of 10
    assert rbm._xla_chain == 20 and rbm.jit_compile is False
    assert set(traced) == {((20, 12), True)}  # one trace, padded, for every batch size
    assert int(rbm.optimizer.iterations) == 7
    # `train_on_batch` reuses fit's step; retraced for several sizes, it
    # pads batches of at least four fifths of fit's and leaves smaller and
    # larger ones to the graph route.
    before = np.array(rbm.kernel)
    for rows in (50, 17, 10, 70):
        logs = rbm.train_on_batch(_data(rows, seed=rows), return_dict=True)
        assert all(np.isfinite(value) for value in logs.values())
    assert int(rbm.optimizer.iterations) == 11
    assert np.abs(np.array(rbm.kernel) - before).max() > 0
    # Fewer rows than the batch size: one batch of all of them.
    rbm.fit(_data(15), batch_size=20, epochs=1, verbose=0)
    assert rbm._xla_chain == 15
    # 150 rows with the last fifth held out for validation: 120 to train.
    rbm.fit(_data(150), batch_size=20, epochs=1, validation_split=0.2, verbose=0)
    assert rbm._xla_chain == 20
    rbm.fit(tf.data.Dataset.from_tensor_slices(_data(130)).batch(20, drop_remainder=True),
            epochs=1, verbose=0)
    assert rbm._xla_chain == 20


def test_auto_runs_chains_in_xla_for_pipelines_that_show_their_batch_size(monkeypatch):
    """A dataset whose batches have no static size (the last may be smaller)
    takes the chain route, padded, at the batch size its pipeline shows
    (`array_input.batch_rows`), and trains as its array does."""
    _chain_window(monkeypatch)
    traced = _record_chain_traces(monkeypatch)
    x = _data(130, 16)
    kwargs = dict(k=3, seed=3)
    twin = keras_dbn.RBM(8, **kwargs)
    twin.build((None, 16))

    def trained(data, **fit_kwargs):
        rbm = keras_dbn.RBM(8, **kwargs)
        rbm.compile(optimizer=keras.optimizers.Adam(1e-2))
        rbm.fit(data, epochs=2, verbose=0, **fit_kwargs)
        assert rbm._xla_chain == 20 and rbm.jit_compile is False
        assert int(rbm.optimizer.iterations) == 14
        return rbm

    from_array = trained(x, batch_size=20, shuffle=False)
    pipeline = tf.data.Dataset.from_tensor_slices(x).batch(20).map(lambda v: v).prefetch(2)
    assert pipeline.element_spec.shape[0] is None
    traced.clear()
    from_pipeline = trained(pipeline)
    assert set(traced) == {((20, 16), True)}  # one trace for every batch size
    assert np.abs(np.array(from_pipeline.kernel) - np.array(twin.kernel)).max() > 0.05
    for a, b in zip(from_array.weights, from_pipeline.weights):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-5)
    # Batches under four fifths of the size shown take the graph route.
    shrunk = tf.data.Dataset.from_tensor_slices(x).batch(20).map(lambda v: v[:9])
    traced.clear()
    rbm = keras_dbn.RBM(8, **kwargs)
    rbm.compile()
    rbm.fit(shrunk, epochs=1, verbose=0)
    assert rbm._xla_chain == 20 and int(rbm.optimizer.iterations) == 7
    assert all(np.isfinite(np.array(w)).all() for w in rbm.weights)
    # A pipeline that does not show its batch size keeps TensorFlow's graph.
    rebatched = tf.data.Dataset.from_tensor_slices(x).batch(20).rebatch(10).apply(
        tf.data.experimental.assert_cardinality(13))
    rbm.fit(rebatched, epochs=1, verbose=0)
    assert rbm._xla_chain == 0


def test_auto_runs_chains_of_gaussian_units_in_xla_but_not_explicit_choices(monkeypatch):
    x = _data()
    _chain_window(monkeypatch)
    for visible, hidden in (("gaussian", "bernoulli"), ("bernoulli", "gaussian")):
        rbm = keras_dbn.RBM(6, k=3, visible=visible, hidden=hidden, seed=0)
        rbm.compile()
        rbm.fit(x, batch_size=20, epochs=1, verbose=0)
        assert rbm._xla_chain == 20 and rbm.jit_compile is False

    class Other(units.BernoulliUnits):  # a unit type whose sampler may not take DrawnNoise
        name = "other"

    rbm = keras_dbn.RBM(6, k=3, visible=Other(), seed=0)
    rbm.compile()
    rbm.fit(x, batch_size=20, epochs=1, verbose=0)
    assert rbm._xla_chain == 0
    for jit in (False, True):
        rbm = keras_dbn.RBM(6, k=3, seed=0)
        rbm.compile(jit_compile=jit)
        rbm.fit(x, batch_size=20, epochs=1, verbose=0)
        assert rbm._xla_chain == 0 and rbm.jit_compile is jit


@pytest.mark.parametrize("visible,hidden,sample_visible,jit", [
    ("gaussian", "bernoulli", None, True),  # only the hidden units are sampled
    ("gaussian", "bernoulli", True, False),
    ("bernoulli", "gaussian", None, False),
])
def test_auto_keeps_cd1_steps_that_sample_gaussian_units_out_of_xla(visible, hidden,
                                                                      sample_visible, jit):
    """XLA's own normal draws made such a CD-1 step 3-4x slower than the graph."""
    rbm = keras_dbn.RBM(6, visible=visible, hidden=hidden, sample_visible=sample_visible, seed=0)
    rbm.compile()
    rbm.fit(_data(), batch_size=20, epochs=1, verbose=0)
    assert rbm.jit_compile is jit and rbm._xla_chain == 0


@pytest.mark.parametrize("persistent,visible,hidden", [
    (False, "bernoulli", "bernoulli"), (True, "bernoulli", "bernoulli"),
    (False, "gaussian", "bernoulli"), (True, "gaussian", "bernoulli"),
    (False, "bernoulli", "gaussian"), (True, "bernoulli", "gaussian"),
])
def test_chains_in_xla_train_as_the_graph_does(monkeypatch, persistent, visible, hidden):
    """Same seed, same draws: the route changes only the rounding.

    Adam, and a sparsity target for Bernoulli hidden units. Gaussian
    visible units learn correlated real-valued data of unit variance and
    sample each visible state of the chain (normal draws), Gaussian hidden
    ones each hidden state.
    """
    if visible == "gaussian":
        rng = np.random.default_rng(0)
        x = rng.standard_normal((120, 3)) @ rng.standard_normal((3, 16))
        x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    else:
        x = _data(120, 16)
    kwargs = dict(k=3, seed=3, visible=visible, hidden=hidden)
    if hidden == "bernoulli":
        kwargs.update(sparsity_target=0.1, sparsity_cost=0.1)
    if persistent:
        kwargs.update(persistent=True, num_chains=20)
    twin = keras_dbn.RBM(8, **kwargs)
    twin.build((None, 16))
    initial = np.array(twin.kernel)
    traced = _record_chain_traces(monkeypatch)
    _chain_window(monkeypatch)

    def train(jit):
        rbm = keras_dbn.RBM(8, **kwargs)
        rbm.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit)
        history = rbm.fit(x, batch_size=20, epochs=3, shuffle=False, verbose=0)
        assert np.abs(np.array(rbm.kernel) - initial).max() > 0.02  # it learned (200x atol)
        return rbm, history.history

    graph, graph_logs = train(False)
    assert not traced and graph._xla_chain == 0
    chain, chain_logs = train("auto")
    assert chain._xla_chain == 20 and chain.jit_compile is False
    assert ((20, 16), False) in traced  # the full batches ran the XLA route
    for a, b in zip(graph.weights, chain.weights):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-4)
    for name in graph_logs:
        np.testing.assert_allclose(graph_logs[name], chain_logs[name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("persistent", [False, True])
def test_padding_rows_leave_the_statistics_and_monitors_unchanged(persistent, visible):
    """13 rows of data padded to 20 give the statistics of the 13 rows alone.

    Each draw of the padded batch gets the 13-row run's numbers (uniforms,
    and normals for Gaussian visible units) in its data rows (PCD's chains,
    7 rows in either run, get the same ones), so both runs sample the same
    states; the padding rows draw other numbers, and their states must not
    count.
    """
    n, full, width = 13, 20, 16
    if visible == "gaussian":
        data = np.random.default_rng(4).standard_normal((full, width)).astype("float32")
        x, padded = data[:n], data
    else:
        x = _data(n, width, seed=4)
        padded = np.concatenate([x, _data(full - n, width, seed=5)])
    kwargs = dict(k=3, sparsity_target=0.1, sparsity_cost=0.1, seed=3, visible=visible)
    if persistent:
        kwargs.update(persistent=True, num_chains=7)
    rbm = keras_dbn.RBM(8, **kwargs)
    rbm.build((None, width))
    rbm.hidden_bias.assign(np.linspace(-1, 1, 8).astype("float32"))
    if persistent:
        rbm.chains.assign((np.random.default_rng(6).random((7, 8)) < 0.5).astype("float32"))

    def draws(rows):
        drawn = units.DrawnNoise(tf.zeros([10**5], tf.uint16), tf.zeros([10**5]))
        rbm.contrastive_divergence(tf.constant(padded[:rows]), seed=drawn)
        return drawn.draws

    rng = np.random.default_rng(7)

    def numbers(kind, size):
        if kind == "uniform":
            return rng.integers(0, 2**16, size).astype("uint16")
        return rng.standard_normal(size).astype("float32")

    short = {"uniform": [], "normal": []}
    long = {"uniform": [], "normal": []}
    kinds = set()
    for (kind, size_n), (kind_full, size_full) in zip(draws(n), draws(full)):
        assert kind == kind_full
        kinds.add(kind)
        draw = numbers(kind, size_n)
        short[kind].append(draw)
        if size_n == size_full:  # PCD's chains
            long[kind].append(draw)
        else:
            columns = size_n // n
            assert size_full == full * columns
            long[kind].append(np.concatenate([draw, numbers(kind, (full - n) * columns)]))
    assert kinds == ({"uniform", "normal"} if visible == "gaussian" else {"uniform"})

    def noise(parts):
        return units.DrawnNoise(
            tf.constant(np.concatenate(parts["uniform"])),
            tf.constant(np.concatenate(parts["normal"] or [np.zeros(0, "float32")])),
        )

    alone = rbm.contrastive_divergence(tf.constant(x), seed=noise(short))
    with_padding = rbm.contrastive_divergence(
        tf.constant(padded), seed=noise(long), data_rows=tf.constant(n)
    )
    for a, b in zip(alone["gradients"], with_padding["gradients"]):
        assert np.abs(np.array(a)).max() > 1e-3
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)
    for name in ("reconstruction_error", "free_energy"):
        np.testing.assert_allclose(float(alone[name]), float(with_padding[name]), rtol=1e-5)
    if persistent:
        np.testing.assert_array_equal(alone["chain_state"], with_padding["chain_state"])
    # Counted as data, the padding rows change the statistics: the check
    # above can fail.
    unmasked = rbm.contrastive_divergence(tf.constant(padded), seed=noise(long))
    assert np.abs(np.array(unmasked["gradients"][1]) - np.array(alone["gradients"][1])).max() > 1e-2
