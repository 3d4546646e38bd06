"""`RBM.fit` chooses XLA for small float32 steps (``jit_compile="auto"``)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dbn
from keras_dbn import rbm as rbm_module


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
    assert rbm.jit_compile is False  # the last batch is smaller: no static size
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
