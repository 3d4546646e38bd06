"""RBM math against brute-force enumeration, learning, and Keras integration."""

import re
import warnings

import keras
import numpy as np
import pytest

import keras_dbn
from brute_force import all_states, make_rbm, params
from spies import record_progress

# --------------------------------------------------------------- brute force


def joint_log_weights(rbm, v, h):
    """-E(v, h) for every pair of rows (Bernoulli-Bernoulli), shape (len(v), len(h))."""
    w, b, c = params(rbm)
    return v @ b[:, None] + (h @ c)[None, :] + v @ w @ h.T


def exact_log_z(rbm):
    w, b, c = params(rbm)
    lw = joint_log_weights(rbm, all_states(w.shape[0]), all_states(w.shape[1]))
    return np.logaddexp.reduce(lw.ravel())


def exact_log_p(rbm, v):
    """log p(v) by enumerating all hidden states and all joint states."""
    w, _, _ = params(rbm)
    lw = joint_log_weights(rbm, v, all_states(w.shape[1]))
    return np.logaddexp.reduce(lw, axis=1) - exact_log_z(rbm)


def exact_gradient(rbm, data):
    """Exact d mean log p(data) / d(W, b, c) by enumeration."""
    w, b, c = params(rbm)
    vs, hs = all_states(w.shape[0]), all_states(w.shape[1])
    lw = joint_log_weights(rbm, vs, hs)
    p_joint = np.exp(lw - np.logaddexp.reduce(lw.ravel()))
    model_vh = vs.T @ p_joint @ hs
    model_v, model_h = p_joint.sum(1) @ vs, p_joint.sum(0) @ hs
    ph = 1 / (1 + np.exp(-(data @ w + c)))
    data_vh = data.T @ ph / len(data)
    return data_vh - model_vh, data.mean(0) - model_v, ph.mean(0) - model_h


def sample_exact(rbm, n, seed):
    """n exact samples from p(v) of a tiny Bernoulli RBM."""
    w, _, _ = params(rbm)
    vs = all_states(w.shape[0])
    p = np.exp(exact_log_p(rbm, vs))
    idx = np.random.default_rng(seed).choice(len(vs), size=n, p=p / p.sum())
    return vs[idx].astype("float32")


# ---------------------------------------------------------------- exact math


def test_free_energy_matches_enumeration():
    rbm = make_rbm(8, 5, bias_scale=1.0)
    v = all_states(8)
    lw = joint_log_weights(rbm, v, all_states(5))
    expected = -np.logaddexp.reduce(lw, axis=1)
    np.testing.assert_allclose(rbm.free_energy(v.astype("float32")), expected, rtol=1e-5, atol=1e-4)


def test_energy_matches_definition():
    rbm = make_rbm(8, 5, bias_scale=1.0)
    rng = np.random.default_rng(1)
    v = (rng.random((7, 8)) < 0.5).astype("float32")
    h = (rng.random((7, 5)) < 0.5).astype("float32")
    expected = -np.diag(joint_log_weights(rbm, v, h))
    np.testing.assert_allclose(rbm.energy(v, h), expected, rtol=1e-5, atol=1e-4)


def test_conditionals_match_enumeration():
    rbm = make_rbm(8, 5, bias_scale=1.0)
    vs, hs = all_states(8), all_states(5)
    lw = joint_log_weights(rbm, vs, hs)
    p_h_given_v = np.exp(lw - np.logaddexp.reduce(lw, axis=1, keepdims=True))
    np.testing.assert_allclose(
        rbm.hidden_given_visible(vs.astype("float32")), p_h_given_v @ hs, atol=1e-5
    )
    p_v_given_h = np.exp(lw - np.logaddexp.reduce(lw, axis=0, keepdims=True))
    np.testing.assert_allclose(
        rbm.visible_given_hidden(hs.astype("float32")), p_v_given_h.T @ vs, atol=1e-5
    )
    # call() is p(h = 1 | v)
    np.testing.assert_allclose(rbm(vs.astype("float32")), p_h_given_v @ hs, atol=1e-5)


def test_gaussian_visible_free_energy_matches_enumeration():
    rbm = make_rbm(6, 4, scale=0.5, visible="gaussian")
    w, b, c = params(rbm)
    v = np.random.default_rng(2).normal(size=(10, 6))
    hs = all_states(4)
    # -E(v, h) = -||v - b||^2 / 2 + c.h + v W h
    lw = -0.5 * ((v - b) ** 2).sum(1)[:, None] + (hs @ c)[None, :] + v @ w @ hs.T
    np.testing.assert_allclose(
        rbm.free_energy(v.astype("float32")), -np.logaddexp.reduce(lw, axis=1), rtol=1e-5, atol=1e-4
    )
    # p(v | h) is a unit-variance Gaussian with mean b + W h
    np.testing.assert_allclose(rbm.visible_given_hidden(hs.astype("float32")), b + hs @ w.T, atol=1e-5)


def test_gaussian_hidden_free_energy_matches_quadrature():
    rbm = make_rbm(5, 2, scale=0.5, hidden="gaussian")
    w, b, c = params(rbm)
    v = all_states(5)[::3]
    grid = np.linspace(-12, 12, 2001)
    step = grid[1] - grid[0]
    h1, h2 = np.meshgrid(grid, grid, indexing="ij")
    h = np.stack([h1.ravel(), h2.ravel()], axis=1)
    # -E(v, h) = b.v - ||h - c||^2 / 2 + v W h, integrated over h on a grid
    lw = (v @ b)[:, None] - 0.5 * ((h - c) ** 2).sum(1)[None, :] + v @ w @ h.T
    expected = -(np.logaddexp.reduce(lw, axis=1) + 2 * np.log(step))
    np.testing.assert_allclose(rbm.free_energy(v.astype("float32")), expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("persistent", [False, True])
def test_long_chain_statistics_approach_exact_gradient(persistent, dtype):
    """CD-k with long chains (and PCD) estimates the exact likelihood gradient.

    Under a mixed policy too: its conditionals are rounded to bfloat16 and
    its positive and negative sums rounded separately, which must leave the
    estimate unbiased.
    """
    rbm = make_rbm(
        6, 4, scale=0.5, k=30 if not persistent else 1, persistent=persistent,
        num_chains=4000, sample_visible=True, dtype=dtype,
    )
    data = all_states(6)[np.random.default_rng(3).choice(64, 40)].astype("float32")
    batch = np.tile(data, (100, 1))  # 4000 chains starting from the data
    exact = exact_gradient(rbm, data)
    sums, count = None, 0
    for step in range(60 if persistent else 10):
        stats = rbm.contrastive_divergence(keras.ops.convert_to_tensor(batch))
        if persistent:
            rbm.chains.assign(stats["chain_state"])
            if step < 20:  # burn-in of the persistent chains
                continue
        grads = [-np.asarray(g, dtype="float64") for g in stats["gradients"]]
        sums = grads if sums is None else [s + g for s, g in zip(sums, grads)]
        count += 1
    for estimate, truth in zip(sums, exact):
        # 40,000 negative samples per estimate: standard error ~ 0.5 / 200.
        np.testing.assert_allclose(estimate / count, truth, atol=0.02)
    # The gradient is not trivially small: the check above has power.
    assert max(np.abs(g).max() for g in exact) > 0.1


@pytest.mark.parametrize("sample_visible", [True, False])
def test_persistent_chains_hold_hidden_states_drawn_from_the_model(sample_visible):
    """PCD's chains carry hidden states whose distribution is the model's p(h).

    With the weights fixed, the chains' states after burn-in are compared
    state by state with p(h) by enumeration, also where the statistics read
    the visible means (the chains must still go on from visible samples).
    """
    rbm = make_rbm(6, 4, scale=1.0, bias_scale=1.0, k=1, persistent=True, num_chains=4000,
                   sample_visible=sample_visible, seed=5)
    assert tuple(rbm.chains.shape) == (4000, 4)
    lw = joint_log_weights(rbm, all_states(6), all_states(4))
    exact = np.exp(np.logaddexp.reduce(lw, axis=0) - np.logaddexp.reduce(lw.ravel()))
    data = keras.ops.convert_to_tensor(all_states(6)[:40].astype("float32"))
    counts = np.zeros(16)
    for step in range(30):
        rbm.chains.assign(rbm.contrastive_divergence(data)["chain_state"])
        if step >= 10:
            states = np.asarray(rbm.chains, dtype="int64")
            np.add.at(counts, states @ (2 ** np.arange(3, -1, -1)), 1)
    np.testing.assert_allclose(counts / counts.sum(), exact, atol=0.01)
    # p(h) is far from uniform, so the check has power.
    assert np.abs(exact - 1 / 16).max() > 0.05


def test_sparsity_penalty_moves_hidden_activity_towards_target():
    rng = np.random.default_rng(0)
    x = (rng.random((1000, 20)) < 0.5).astype("float32")
    rbm = keras_dbn.RBM(10, sparsity_target=0.05, sparsity_cost=5.0, seed=0)
    rbm.fit(x, epochs=5, batch_size=50, verbose=0)
    assert float(np.mean(rbm.predict(x, verbose=0))) < 0.25


# ------------------------------------------------------------------- learning


def test_training_on_exact_samples_increases_exact_log_likelihood():
    teacher = make_rbm(8, 4, scale=1.5, bias_scale=1.5, seed=7)
    train = sample_exact(teacher, 3000, seed=1)
    test = sample_exact(teacher, 3000, seed=2)
    student = keras_dbn.RBM(6, k=1, seed=0)
    student.build((None, 8))
    before = exact_log_p(student, test).mean()
    student.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5))
    student.fit(train, epochs=30, batch_size=20, verbose=0)
    after = exact_log_p(student, test).mean()
    best = exact_log_p(teacher, test).mean()
    # Starting near the uniform distribution (8 log 2 = 5.55 nats), training
    # must close most of the gap to the teacher's own log-likelihood.
    assert after > before + 0.5
    assert after > best - 0.25 * (best - before)


@pytest.mark.slow
def test_mnist_reconstruction_error_falls(mnist_manual_dir, tfds_data_dir):
    x, _ = keras_dbn.datasets.load_numpy(
        "mnist", split="train", data_dir=tfds_data_dir, manual_dir=mnist_manual_dir, limit=6000
    )
    assert x.shape == (6000, 784)
    rbm = keras_dbn.RBM(200, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    start = rbm.evaluate(x[5000:], batch_size=500, verbose=0, return_dict=True)
    history = rbm.fit(x[:5000], epochs=3, batch_size=50, validation_data=x[5000:], verbose=0)
    end = history.history["val_reconstruction_error"][-1]
    assert end < 0.4 * start["reconstruction_error"], (start, history.history)
    assert history.history["reconstruction_error"][-1] < history.history["reconstruction_error"][0]


def test_gaussian_visible_units_learn_real_valued_data():
    rng = np.random.default_rng(0)
    codes = (rng.random((3000, 3)) < 0.5).astype("float32")
    mixing = rng.normal(0, 1.5, (3, 12))
    x = codes @ mixing + 0.3 * rng.normal(size=(3000, 12))
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    rbm = keras_dbn.RBM(16, visible="gaussian", seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    start = rbm.evaluate(x, verbose=0, return_dict=True)["reconstruction_error"]
    rbm.fit(x, epochs=10, batch_size=50, verbose=0)
    end = rbm.evaluate(x, verbose=0, return_dict=True)["reconstruction_error"]
    assert end < 0.5 * start
    # The model prefers data to the same values with features shuffled.
    shuffled = np.stack([rng.permutation(col) for col in x.T], axis=1)
    assert np.mean(rbm.free_energy(x)) < np.mean(rbm.free_energy(shuffled)) - 1.0


# ---------------------------------------------------------- Keras integration


def test_update_goes_through_the_optimizer():
    """One fit() step of plain SGD moves the weights by -lr times the CD gradient."""
    x = (np.random.default_rng(0).random((64, 10)) < 0.5).astype("float32")
    a = keras_dbn.RBM(4, seed=3)
    b = keras_dbn.RBM(4, seed=3)
    a.build((None, 10))
    b.build((None, 10))
    start = [np.array(w) for w in (a.kernel, a.visible_bias, a.hidden_bias)]
    a.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    a.fit(x, batch_size=64, epochs=1, shuffle=False, verbose=0)
    grads = b.contrastive_divergence(keras.ops.convert_to_tensor(x))["gradients"]
    for before, after, grad in zip(start, (a.kernel, a.visible_bias, a.hidden_bias), grads):
        np.testing.assert_allclose(np.array(after) - before, -0.5 * np.array(grad), atol=1e-6)


@pytest.mark.parametrize("visible, hidden, rate", [
    ("bernoulli", "bernoulli", 0.1),
    ("gaussian", "bernoulli", 0.01),
    ("bernoulli", "gaussian", 0.01),
])
def test_the_default_optimizer_takes_a_smaller_rate_for_gaussian_units(visible, hidden, rate):
    """Practical guide 13.2: Gaussian units need 10-100x the smaller rate;
    at 0.1 MNIST RBMs with a Gaussian layer reach NaN in one epoch."""
    rbm = keras_dbn.RBM(3, visible=visible, hidden=hidden)
    rbm.compile()
    assert isinstance(rbm.optimizer, keras.optimizers.SGD)
    assert float(rbm.optimizer.learning_rate) == pytest.approx(rate)
    assert float(rbm.optimizer.momentum) == pytest.approx(0.5)


class _RateSchedule(keras.callbacks.Callback):
    """A gentle rate for two epochs, then one that makes CD's updates blow up;
    keeps the weights after the second epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(0.01 if epoch < 2 else 1000.0)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            self.weights = self.model.get_weights()
            self.optimizer_state = [np.array(v.numpy()) for v in self.model.optimizer.variables]
        self.last_epoch = epoch


def test_a_diverging_fit_stops_restores_the_epochs_start_and_raises():
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")
    rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    schedule = _RateSchedule()
    with pytest.raises(FloatingPointError, match=r"diverged in epoch 3(.|\n)*rate \(now 1e\+03\),"):
        rbm.fit(x, epochs=6, batch_size=20, verbose=0, callbacks=[schedule])
    # Stopped in the epoch that diverged; its start's weights are back, so
    # the first two epochs' work is kept. Later callbacks do not see the
    # rolled-back epoch end; the history holds its logs.
    assert schedule.last_epoch == 1
    history = rbm.history.history["reconstruction_error"]
    assert len(history) == 3 and np.isfinite(history[:2]).all() and not np.isfinite(history[2])
    for kept, now in zip(schedule.weights, rbm.get_weights()):
        np.testing.assert_array_equal(kept, now)
    assert all(np.isfinite(w).all() for w in rbm.get_weights())
    # So is the optimizer's state (momenta, iterations), but not the rate:
    # at a gentle rate again, training goes on from the second epoch's end.
    assert float(rbm.optimizer.learning_rate) == 1000.0
    for kept, now in zip(schedule.optimizer_state, rbm.optimizer.variables):
        if now is not rbm.optimizer._learning_rate:
            np.testing.assert_array_equal(kept, now.numpy())
    assert int(rbm.optimizer.iterations) == 2 * 10
    rbm.optimizer.learning_rate = 0.01
    rbm.fit(x, epochs=1, batch_size=20, verbose=0)
    assert all(np.isfinite(w).all() for w in rbm.get_weights())


def test_weight_decay_spares_biases():
    x = (np.random.default_rng(0).random((40, 5)) < 0.5).astype("float32")

    def train(weight_decay):
        rbm = keras_dbn.RBM(3, seed=0)
        rbm.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, weight_decay=weight_decay))
        rbm.fit(x, batch_size=40, shuffle=False, verbose=0)
        return [np.array(w) for w in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias)]

    (k0, b0, c0), (k1, b1, c1) = train(None), train(0.5)
    np.testing.assert_array_equal(b0, b1)
    np.testing.assert_array_equal(c0, c1)
    assert not np.allclose(k0, k1)


def test_fit_accepts_datasets_with_labels_and_validation_logs():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = (rng.random((400, 16)) < 0.3).astype("float32")
    y = rng.integers(0, 3, 400)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(40)
    rbm = keras_dbn.RBM(8, seed=0)
    history = rbm.fit(
        ds, epochs=3, validation_data=(x[:100], y[:100]), verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_reconstruction_error", mode="min", patience=5)],
    )
    logs = history.history
    for key in ("reconstruction_error", "free_energy", "val_reconstruction_error", "val_free_energy"):
        assert len(logs[key]) == 3 and np.all(np.isfinite(logs[key]))
    # The gap compares with the training examples at the final weights.
    training = rbm.evaluate(x, verbose=0, return_dict=True)["free_energy"]
    gap = logs["val_free_energy"][-1] - training
    assert logs["free_energy_gap"][-1] == pytest.approx(gap, abs=1e-5)


def test_free_energy_gap_compares_validation_and_training_data_at_the_same_weights():
    x = (np.random.default_rng(3).random((400, 16)) < 0.3).astype("float32")
    rbm = keras_dbn.RBM(8, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.2, momentum=0.9))
    # Validated on its own training data, the model has no gap (Hinton's
    # practical guide, section 6), though it learns during each epoch.
    logs = rbm.fit(x, batch_size=20, epochs=3, validation_data=x, verbose=0).history
    assert logs["free_energy"][-1] != pytest.approx(logs["val_free_energy"][-1], abs=0.05)
    np.testing.assert_allclose(logs["free_energy_gap"], 0.0, atol=1e-5)
    # The examples held out by `validation_split` are not training examples.
    logs = rbm.fit(x, batch_size=20, epochs=1, validation_split=0.25, verbose=0).history
    training = rbm.evaluate(x[:300], verbose=0, return_dict=True)["free_energy"]
    gap = logs["val_free_energy"][-1] - training
    assert logs["free_energy_gap"][-1] == pytest.approx(gap, abs=1e-5)


@pytest.mark.parametrize("visible, dtype", [("bernoulli", "mixed_bfloat16"),
                                             ("gaussian", "float32")])
def test_free_energy_gap_of_images_is_the_mean_free_energy_of_the_training_rows(visible, dtype):
    rng = np.random.default_rng(5)
    if visible == "gaussian":
        x = rng.normal(size=(310, 4, 4)).astype("float32")
    else:
        x = (rng.random((310, 4, 4)) < 0.3).astype("uint8")
    rbm = keras_dbn.RBM(6, visible=visible, dtype=dtype, seed=0)
    logs = rbm.fit(x, batch_size=40, epochs=2, validation_split=0.2, verbose=0).history
    # Compiled, as the gap's figures are: under a mixed policy an eager
    # `free_energy` rounds its bfloat16 GEMM's results differently.
    training = rbm.evaluate(x[:248], verbose=0, return_dict=True)["free_energy"]
    assert logs["free_energy_gap"][-1] == pytest.approx(logs["val_free_energy"][-1] - training,
                                                        abs=1e-4)
    assert logs["free_energy_gap"][-1] != pytest.approx(logs["free_energy_gap"][0], abs=1e-6)


def test_the_gap_compares_like_with_like_for_a_subclass_and_repeated_fits(caplog):
    """The training side went through a subclass's own `free_energy`, where
    `val_free_energy` comes from the test step; and a compiled function per
    `fit` call set off TensorFlow's warning of frequent retracing."""
    import gc
    import logging
    import weakref

    from keras_dbn import rbm as rbm_module

    class Shifted(keras_dbn.RBM):
        def free_energy(self, v):
            return super().free_energy(v) + 100.0

    x = (np.random.default_rng(2).random((2500, 12)) < 0.3).astype("float32")
    caplog.set_level(logging.WARNING, logger="tensorflow")
    for _ in range(6):  # a trace for each RBM, as in a search over many
        keras_dbn.RBM(3, seed=0).fit(x[:50], validation_data=x[50:60], verbose=0)
    rbm = Shifted(5, seed=0)
    for _ in range(5):
        logs = rbm.fit(x[:2000], validation_data=x[2000:], epochs=1, batch_size=100,
                       verbose=0).history
    training = rbm.evaluate(x[:2000], verbose=0, return_dict=True)["free_energy"]
    assert logs["free_energy_gap"][-1] == pytest.approx(logs["val_free_energy"][-1] - training,
                                                        abs=1e-4)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    assert rbm in rbm_module._FREE_ENERGY_SUMS
    alive = weakref.ref(rbm)
    del rbm
    gc.collect()
    assert alive() is None  # its compiled function does not keep it alive


def test_a_csv_log_has_the_gap_when_the_first_epoch_does_not_validate(tmp_path):
    """Keras' CSVLogger takes its columns from the first epoch's logs (and
    adds the `val_` ones): with ``validation_freq=2`` the gap was left out."""
    import csv

    x = (np.random.default_rng(3).random((200, 8)) < 0.3).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0)
    path = tmp_path / "log.csv"
    logs = rbm.fit(x[:150], epochs=4, batch_size=50, validation_data=x[150:],
                   validation_freq=2, verbose=0, callbacks=[
                       keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate * 0.5),
                       keras.callbacks.CSVLogger(str(path))]).history
    rows = list(csv.DictReader(path.open()))
    # The columns other callbacks add stay.
    np.testing.assert_allclose([float(row["learning_rate"]) for row in rows],
                               [0.05, 0.025, 0.0125, 0.00625])
    assert [row["free_energy_gap"] for row in rows[::2]] == ["NA", "NA"]
    np.testing.assert_allclose([float(row["free_energy_gap"]) for row in rows[1::2]],
                               logs["free_energy_gap"], rtol=1e-6)
    np.testing.assert_allclose([float(row["val_free_energy"]) for row in rows[1::2]],
                               logs["val_free_energy"], rtol=1e-6)


def test_validation_leaves_a_reshuffling_dataset_s_epochs_as_they_are():
    import tensorflow as tf

    x = (np.random.default_rng(4).random((300, 16)) < 0.3).astype("float32")
    kernels, logs = [], None
    for validation in (None, x[:50]):
        # A reshuffling pipeline's order depends on how often it was read.
        ds = tf.data.Dataset.from_tensor_slices(x).shuffle(300, seed=1).batch(30)
        rbm = keras_dbn.RBM(8, seed=0)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1))
        logs = rbm.fit(ds, epochs=2, validation_data=validation, verbose=0).history
        kernels.append(rbm.kernel.numpy())
    np.testing.assert_array_equal(kernels[0], kernels[1])
    # The gap's training examples are all 300 rows, as training read them.
    training = rbm.evaluate(x, verbose=0, return_dict=True)["free_energy"]
    assert logs["free_energy_gap"][-1] == pytest.approx(logs["val_free_energy"][-1] - training,
                                                        abs=1e-5)


def test_validation_data_given_as_rows_in_a_list_validates_on_those_rows():
    x = (np.random.default_rng(1).random((90, 6)) < 0.4).astype("float32")
    validations = {"array": x[60:], "(array,)": (x[60:],), "list of rows": x[60:].tolist(),
                   "tuple of two rows": (x[60], x[61]), "list of one row": [x[60].tolist()]}
    logs = {}
    for name, validation in validations.items():
        rbm = keras_dbn.RBM(3, seed=2)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1))
        logs[name] = rbm.fit(x[:60], batch_size=20, epochs=2, shuffle=False, verbose=0,
                             validation_data=validation).history
    for name in ("(array,)", "list of rows"):
        assert logs[name].keys() == logs["array"].keys()
        for key, values in logs["array"].items():
            np.testing.assert_allclose(logs[name][key], values, rtol=1e-6)
    for name, rows in (("tuple of two rows", x[60:62]), ("list of one row", x[60:61])):
        rbm = keras_dbn.RBM(3, seed=2)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1))
        rbm.fit(x[:60], batch_size=20, epochs=2, shuffle=False, verbose=0)
        assert logs[name]["val_free_energy"][-1] == pytest.approx(
            rbm.evaluate(rows, verbose=0, return_dict=True)["free_energy"], rel=1e-6)


def test_progress_bar_counts_no_further_than_the_epoch(monkeypatch):
    # 100 batches at the default 32 steps per execution: Keras itself would
    # show 128/100 for the last, partial execution.
    shown = record_progress(monkeypatch)
    x = (np.random.default_rng(0).random((1000, 12)) < 0.3).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0)
    calls = {
        "fit": lambda: rbm.fit(x, batch_size=10, verbose=1, validation_data=x[:100]),
        "evaluate": lambda: rbm.evaluate(x, batch_size=10, verbose=1),
        "predict": lambda: rbm.predict(x, batch_size=10, verbose=1),
    }
    for name, call in calls.items():
        shown.clear()
        call()
        assert shown == [(32, 100), (64, 100), (96, 100), (100, 100), (100, 100)], name
    shown.clear()
    rbm.fit(x, batch_size=10, verbose=0)  # silent: no progress bar at all, as in Keras
    assert shown == []
    # A progress bar of the caller's own replaces the clamped one.
    own = keras.callbacks.ProgbarLogger()
    shown.clear()
    rbm.fit(x, batch_size=10, verbose=1, callbacks=[own])
    assert len(shown) == 5 and own.progbar is not None and own.seen > 96


@pytest.mark.parametrize(
    "counts, expected",
    [([5], 5), ([64], 32), ([100], 25), ([37], 1), ([None], 32), ([100, 30], 10), ([], 32),
     ([np.int64(12)], 12), ([0], 32), ([2.5], 32), ([True], 32)],
)
def test_steps_per_execution_divides_the_steps_asked_for(counts, expected):
    from keras_dbn.rbm import _steps_per_execution_for

    assert _steps_per_execution_for(32, counts) == expected
    assert _steps_per_execution_for(1, counts) == 1


@pytest.mark.parametrize("steps", [3, 5, 12])
def test_array_epochs_run_on_into_the_next_pass(steps):
    """130 rows at batch size 32 make 5 batches a pass: every epoch still
    makes exactly ``steps`` updates (Keras alone cuts an epoch short at the
    end of a pass: 3 + 2 + 3 + 2, or 5 where 12 were asked for), and each
    pass visits every row once."""
    x = _data(rows=130)
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.05))
    updates, seen = [], []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            updates.append(int(self.model.optimizer.iterations.numpy()))

    rbm.fit(x, batch_size=32, steps_per_epoch=steps, epochs=4, verbose=0, callbacks=[Count()])
    assert updates == [steps * (epoch + 1) for epoch in range(4)]
    # The batches the stream sends, two passes of 5: every row once a pass,
    # in a new order each pass.
    from keras_dbn import array_input

    stream = iter(array_input.indexed_batches(keras_dbn.as_aligned(x), batch_size=32,
                                               seed=0).repeat())
    for _ in range(2):
        seen.append(np.concatenate([np.asarray(next(stream)[array_input.ROWS]) for _ in range(5)]))
    for rows in seen:
        assert sorted(rows.tolist()) == list(range(130))
    assert seen[0].tolist() != seen[1].tolist()


@pytest.mark.parametrize("steps_per_execution", [1, 4, 5])
def test_array_fit_iterates_its_pipeline_once_where_executions_end_each_pass(
        monkeypatch, steps_per_execution):
    """120 rows at batch size 10 make 12 batches a pass, 40 validation rows
    4. Where whole executions end every pass (1 or 4 steps each), a call
    iterates the training pipeline once for all its epochs and the
    validation pipeline once an epoch: Keras made an iterator of the
    training data for every epoch and one more when the last ended, and two
    of the validation data an epoch, the second never read (~3 ms each).
    With 5 steps an execution it still does. The epochs read the same
    batches in the same orders either way."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = (rng.random((160, 12)) < np.linspace(0.1, 0.9, 160)[:, None]).astype("float32")
    iterators = []
    real_iter = tf.data.Dataset.__iter__

    def counted(dataset):
        iterators.append(dataset)
        return real_iter(dataset)

    monkeypatch.setattr(tf.data.Dataset, "__iter__", counted)
    rbm = keras_dbn.RBM(5, seed=3)
    rbm.compile(optimizer=keras.optimizers.SGD(0.1), steps_per_execution=steps_per_execution)
    history = rbm.fit(keras_dbn.as_aligned(x[:120]), batch_size=10, epochs=3, verbose=0,
                      validation_data=x[120:])
    assert len(iterators) == (1 + 3 if steps_per_execution != 5 else 3 + 1 + 3 * 2)
    assert int(rbm.optimizer.iterations.numpy()) == 36
    assert rbm.steps_per_execution == steps_per_execution
    monkeypatch.undo()
    # The same figures and weights as through the iterator per epoch.
    expected = keras_dbn.RBM(5, seed=3)
    expected.compile(optimizer=keras.optimizers.SGD(0.1), steps_per_execution=5)
    expected_history = expected.fit(keras_dbn.as_aligned(x[:120]), batch_size=10, epochs=3,
                                    verbose=0, validation_data=x[120:])
    for mine, theirs in zip(rbm.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert history.history == expected_history.history


def _endless_batches(x, batch_size):
    while True:
        for first in range(0, len(x), batch_size):
            yield (x[first:first + batch_size],)


@pytest.mark.parametrize("source", ["array", "dataset", "generator"])
def test_fit_makes_exactly_steps_per_epoch_updates(source):
    # 64 batches of 100; Keras alone rounds each epoch up to whole executions
    # of 32 steps (5 steps an epoch became 32).
    import warnings

    import tensorflow as tf

    x = (np.random.default_rng(0).random((6400, 12)) < 0.3).astype("float32")
    data = {
        "array": lambda: x,
        "dataset": lambda: tf.data.Dataset.from_tensor_slices(x).batch(100).repeat(),
        "generator": lambda: _endless_batches(x, 100),
    }[source]()
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.05))
    batch_size = 100 if source == "array" else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = rbm.fit(data, batch_size=batch_size, steps_per_epoch=5, epochs=3, verbose=0)
    # A generator or dataset cannot be shuffled; Keras warns where `shuffle`
    # keeps its default.
    assert not [w for w in caught if "shuffle" in str(w.message)]
    assert int(rbm.optimizer.iterations.numpy()) == 15
    assert len(history.history["free_energy"]) == 3
    if source == "array":
        rbm.fit(x, batch_size=100, epochs=1, verbose=0)  # whole epochs, 32 steps at a time again
        assert int(rbm.optimizer.iterations.numpy()) == 15 + 64
        assert rbm.steps_per_execution == 32
    # A number of steps per execution the caller sets is kept where it divides.
    rbm.steps_per_execution = 6
    rbm.fit(data, batch_size=batch_size, steps_per_epoch=12, epochs=1, verbose=0)
    assert rbm.steps_per_execution == 6
    rbm.fit(data, batch_size=batch_size, steps_per_epoch=8, epochs=1, verbose=0)
    assert rbm.steps_per_execution == 4
    assert int(rbm.optimizer.iterations.numpy()) == 15 + (64 if source == "array" else 0) + 12 + 8


def test_evaluate_predict_and_validation_read_exactly_the_steps_asked_for():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    # Rows grow denser down the array, so every batch has its own free energy.
    x = (rng.random((6400, 12)) < np.linspace(0.05, 0.95, 6400)[:, None]).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(100)
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.05))
    history = rbm.fit(x, batch_size=100, epochs=1, verbose=0, validation_data=ds,
                      validation_steps=3)

    def free_energy(data, **kwargs):
        return rbm.evaluate(data, verbose=0, return_dict=True, **kwargs)["free_energy"]

    three = free_energy(ds.take(3))
    assert three != pytest.approx(free_energy(ds.take(32)), rel=1e-3)
    assert free_energy(ds, steps=3) == pytest.approx(three, rel=1e-6)
    assert history.history["val_free_energy"][-1] == pytest.approx(three, rel=1e-6)
    assert rbm.predict(ds, steps=3, verbose=0).shape == (300, 4)
    assert rbm.predict(ds, verbose=0).shape == (6400, 4)
    # A callback's `predict` during a fit with its own steps leaves the
    # training loop alone.
    predicted, counted = [], []

    def read(epoch, logs):
        predicted.append(rbm.predict(x[:200], verbose=0))
        # ... and reads the steps it asks for too.
        counted.append((rbm.predict(x[:200], batch_size=7, steps=3, verbose=0).shape,
                        free_energy(x[:200], batch_size=100, steps=1),
                        rbm.predict(ds, steps=2, verbose=0).shape))

    probe = keras.callbacks.LambdaCallback(on_epoch_end=read)
    iterations = int(rbm.optimizer.iterations.numpy())
    rbm.fit(ds.repeat(), steps_per_epoch=5, epochs=2, verbose=0, callbacks=[probe])
    assert len(predicted) == 2 and predicted[0].shape == (200, 4)
    assert int(rbm.optimizer.iterations.numpy()) == iterations + 10
    assert counted[-1][0] == (21, 4) and counted[-1][2] == (200, 4)
    assert counted[-1][1] == pytest.approx(free_energy(x[:100]), rel=1e-6)


def test_save_load_round_trip_and_continued_training(tmp_path):
    x = (np.random.default_rng(0).random((300, 12)) < 0.4).astype("float32")
    rbm = keras_dbn.RBM(6, k=2, persistent=True, num_chains=10, sparsity_target=0.1, sparsity_cost=0.1, seed=4)
    rbm.compile(optimizer=keras.optimizers.Adam(1e-2))
    rbm.fit(x, epochs=2, batch_size=30, verbose=0)
    path = str(tmp_path / "rbm.keras")
    rbm.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, keras_dbn.RBM)
    assert loaded.get_config() == rbm.get_config()
    for a, b in zip(rbm.weights, loaded.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    for a, b in zip(rbm.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    kernel = np.array(loaded.kernel)
    loaded.fit(x, epochs=1, batch_size=30, verbose=0)
    assert not np.allclose(kernel, np.array(loaded.kernel))


def test_chains_saved_as_visible_states_load_as_hidden_draws():
    """Persistent RBMs saved while the chains held visible states still load."""
    rbm = keras_dbn.RBM(3, persistent=True, num_chains=8, seed=0)
    rbm.build((None, 5))
    rng = np.random.default_rng(1)
    kernel = rng.choice([-20.0, 20.0], (5, 3)).astype("float32")  # p(h | v) is 0 or 1
    hidden_bias = np.array([-10.0, 10.0, 30.0], "float32")  # |total input| >= 10
    visible_chains = (rng.random((8, 5)) < 0.5).astype("float32")
    rbm.load_own_variables({"0": kernel, "1": np.zeros(5, "float32"), "2": hidden_bias,
                            "3": visible_chains})
    np.testing.assert_array_equal(np.array(rbm.kernel), kernel)
    np.testing.assert_array_equal(np.array(rbm.hidden_bias), hidden_bias)
    expected = (visible_chains @ kernel + hidden_bias > 0).astype("float32")
    np.testing.assert_array_equal(np.array(rbm.chains), expected)


def test_rbm_as_a_layer_in_sequential(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((500, 20)) < 0.5).astype("float32")
    y = (x[:, :10].sum(1) > x[:, 10:].sum(1)).astype("int64")
    rbm = keras_dbn.RBM(16, seed=0)
    model = keras.Sequential([keras.Input((20,)), rbm, keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    kernel = np.array(rbm.kernel)
    history = model.fit(x, y, epochs=15, batch_size=50, verbose=0)
    assert history.history["accuracy"][-1] > 0.8
    assert not np.allclose(kernel, np.array(rbm.kernel))  # fine-tuned by backprop
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_same_seed_reproduces_training_and_other_seed_differs():
    x = (np.random.default_rng(0).random((200, 10)) < 0.5).astype("float32")

    def train(seed):
        rbm = keras_dbn.RBM(5, k=2, seed=seed)
        rbm.fit(x, epochs=2, batch_size=20, shuffle=False, verbose=0)
        return np.array(rbm.kernel), rbm.sample(4, gibbs_steps=5)

    (k1, s1), (k2, s2), (k3, _) = train(1), train(1), train(2)
    np.testing.assert_array_equal(k1, k2)
    np.testing.assert_array_equal(s1, s2)
    assert not np.allclose(k1, k3)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_compiled_gibbs_chain_draws_what_single_steps_draw(visible):
    # `gibbs` runs its chain as one graph loop; its states must be those of
    # the same steps taken one by one through the public conditionals, from
    # the same seed.
    a, b = (make_rbm(9, 4, bias_scale=1.0, seed=3, visible=visible) for _ in range(2))
    v = all_states(9)[::37].astype("float32")
    chained = np.asarray(a.gibbs(v, steps=6))
    stepped = v
    for _ in range(6):
        h = b.hidden_given_visible(stepped, sample=True)
        stepped = b.visible_given_hidden(h, sample=True)
    if visible == "bernoulli":
        np.testing.assert_array_equal(chained, np.asarray(stepped))
    else:
        np.testing.assert_allclose(chained, np.asarray(stepped), rtol=1e-5, atol=1e-5)
    # The generators advanced alike, so the next draws agree as well.
    np.testing.assert_array_equal(np.asarray(a.seed_generator.state), np.asarray(b.seed_generator.state))
    assert not np.array_equal(np.asarray(a.gibbs(v, steps=6)), chained)


def test_a_seed_repeats_the_samples_and_leaves_the_rbm_stream_alone():
    rbm = keras_dbn.RBM(6, seed=1)
    rbm.build((None, 10))
    never_sampled = keras_dbn.RBM(6, seed=1)
    never_sampled.build((None, 10))
    first = rbm.sample(5, gibbs_steps=3, return_mean=False, seed=7)
    again = rbm.sample(5, gibbs_steps=3, return_mean=False, seed=7)
    np.testing.assert_array_equal(again, first)
    # The RBM's own draws go on as if it had never sampled.
    np.testing.assert_array_equal(rbm.hidden_given_visible(first, sample=True),
                                  never_sampled.hidden_given_visible(first, sample=True))
    assert not np.array_equal(rbm.sample(5, gibbs_steps=3, return_mean=False, seed=8), first)
    # The draws of a new generator of that seed.
    fresh = keras_dbn.RBM(6, seed=7)
    fresh.build((None, 10))
    for mine, theirs in zip(fresh._parameters(), rbm._parameters()):
        mine.assign(theirs)
    np.testing.assert_array_equal(fresh.sample(5, gibbs_steps=3, return_mean=False), first)
    with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 2\*\*31\)"):
        rbm.sample(2, gibbs_steps=1, seed=-1)


def test_rbm_samples_follow_the_exact_distribution():
    rbm = make_rbm(4, 3, scale=1.5, bias_scale=1.0, seed=5)
    v = all_states(4)
    p_v = np.exp(exact_log_p(rbm, v))
    samples = rbm.sample(20000, gibbs_steps=30, return_mean=False)
    assert set(np.unique(samples)) <= {0.0, 1.0}
    index = (samples @ (2 ** np.arange(3, -1, -1))).astype(int)
    empirical = np.bincount(index, minlength=16) / len(samples)
    assert np.array_equal(v[index[:50]], samples[:50])  # the index order is all_states'
    # Total variation of 20,000 samples over 16 states is ~0.01 by chance.
    assert 0.5 * np.abs(empirical - p_v).sum() < 0.03
    assert 0.5 * np.abs(np.full(16, 1 / 16) - p_v).sum() > 0.1  # the check has power


def test_gibbs_rejects_negative_steps_and_returns_the_start_for_zero():
    rbm = make_rbm(9, 4)
    v = all_states(9)[:3].astype("float32")
    np.testing.assert_array_equal(np.asarray(rbm.gibbs(v, steps=0)), v)
    with pytest.raises(ValueError, match="steps"):
        rbm.gibbs(v, steps=-1)


def test_sampling_api_shapes_and_values():
    rbm = make_rbm(9, 4, bias_scale=1.0)
    v = all_states(9)[:5].astype("float32")
    assert rbm.sample(7, gibbs_steps=3).shape == (7, 9)
    states = np.asarray(rbm.gibbs(v, steps=4))
    assert states.shape == (5, 9) and set(np.unique(states)) <= {0.0, 1.0}
    recon = np.asarray(rbm.reconstruct(v))
    assert recon.shape == (5, 9) and np.all((recon > 0) & (recon < 1))
    h = np.asarray(rbm.hidden_given_visible(v, sample=True))
    assert set(np.unique(h)) <= {0.0, 1.0}
    # images are flattened
    assert rbm.free_energy(v.reshape(5, 3, 3)).shape == (5,)


def test_initialize_visible_bias_from_data():
    x = np.zeros((100, 4), dtype="float32")
    x[:25, 0] = 1
    x[:50, 1] = 1
    rbm = keras_dbn.RBM(3).initialize_visible_bias(x)
    np.testing.assert_allclose(rbm.visible_bias[:2], [np.log(0.25 / 0.75), 0.0], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [dict(units=0), dict(units=3, k=0), dict(units=3, visible="poisson"),
     dict(units=3, visible="gaussian", hidden="gaussian"), dict(units=3, sparsity_target=1.5),
     dict(units=3, sample_visible="no")],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        keras_dbn.RBM(**kwargs)


def test_bad_data_raises_clear_errors():
    rbm = keras_dbn.RBM(3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rbm.fit(np.full((10, 4), 255.0, dtype="float32"), verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        rbm.fit(np.full((10, 4), np.nan, dtype="float32"), verbose=0)
    one_bad = np.zeros((10, 4), dtype="float32")
    one_bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rbm.fit(one_bad, verbose=0)
    one_bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        keras_dbn.RBM(3, visible="gaussian").fit(one_bad, verbose=0)


def test_data_of_the_wrong_width_raise_clear_errors():
    rbm = keras_dbn.RBM(3)
    rbm.fit(np.zeros((10, 4), dtype="float32"), verbose=0)
    wrong = np.zeros((5, 6), dtype="float32")
    for call in (lambda: rbm.predict(wrong, verbose=0), lambda: rbm.free_energy(wrong),
                 lambda: rbm.fit(wrong, verbose=0)):
        with pytest.raises(ValueError, match="4 visible units, but the data has 6 values"):
            call()
    # Images of the right size are flattened, not refused.
    assert rbm.predict(np.zeros((5, 2, 2), dtype="float32"), verbose=0).shape == (5, 3)


def test_data_without_an_example_axis_raise_clear_errors():
    import tensorflow as tf

    row = np.zeros(4, dtype="float32")  # one example without its batch axis
    unbatched = tf.data.Dataset.from_tensor_slices(np.zeros((10, 4), dtype="float32"))
    calls = (
        lambda: keras_dbn.RBM(3).fit(row, verbose=0),
        lambda: keras_dbn.RBM(3).fit(unbatched, verbose=0),
        lambda: keras_dbn.RBM(3).predict(row, verbose=0),
        lambda: keras_dbn.RBM(3)(row),
        lambda: keras_dbn.DBN([3, 2]).pretrain(row, verbose=0),
        lambda: keras_dbn.DBN([3, 2]).pretrain(unbatched, verbose=0),
    )
    for call in calls:
        with pytest.raises(ValueError, match=r"one example per row.*got shape \(4,\)"):
            call()


def test_evaluation_refuses_data_of_the_wrong_shape():
    from keras_dbn import evaluation

    rbm = keras_dbn.RBM(3)
    rbm.build((None, 4))
    calls = (
        lambda x: evaluation.log_likelihood(rbm, x, log_z=0.0),
        lambda x: evaluation.pseudo_likelihood(rbm, x, seed=0),
        lambda x: evaluation.ais_log_partition(rbm, num_chains=2, betas=[0.0, 1.0], data=x),
    )
    for call in calls:
        with pytest.raises(ValueError, match="one example per row"):
            call(np.zeros(4, dtype="float32"))
    for call in calls[:2]:
        with pytest.raises(ValueError, match="4 visible units, but the data has 6 values"):
            call(np.zeros((5, 6), dtype="float32"))
        assert np.all(np.isfinite(call(np.zeros((5, 2, 2), dtype="float32"))))


@pytest.mark.parametrize(
    "call",
    [
        lambda rbm: rbm.sample(-1),
        lambda rbm: rbm.sample(2.5),
        lambda rbm: rbm.sample(2, gibbs_steps=-1),
        lambda rbm: rbm.gibbs(np.zeros((2, 4), "float32"), -1),
    ],
)
def test_sampling_refuses_negative_counts(call):
    rbm = keras_dbn.RBM(3)
    rbm.build((None, 4))
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        call(rbm)


@pytest.mark.parametrize(
    "method",
    [
        lambda rbm, v: rbm.free_energy(v),
        lambda rbm, v: rbm.hidden_given_visible(v),
        lambda rbm, v: rbm.energy(v, np.ones((len(v), 3), "float32")),
        lambda rbm, v: rbm.reconstruct(v),
        lambda rbm, v: rbm.gibbs(v, steps=2),
    ],
)
def test_methods_given_visible_data_build_the_rbm_from_it(method):
    v = all_states(6)[::7].astype("float32").reshape(-1, 2, 3)  # images are flattened
    fresh = keras_dbn.RBM(3, seed=4)
    built = keras_dbn.RBM(3, seed=4)
    built.build((None, 6))
    result = np.asarray(method(fresh, v))
    assert fresh.built and fresh.num_visible == 6
    np.testing.assert_array_equal(fresh.kernel, built.kernel)
    np.testing.assert_array_equal(result, np.asarray(method(built, v)))


def test_contrastive_divergence_draws_from_an_integer_seed_as_from_its_seed_generator():
    # An integer handed to Keras's random ops would draw the same numbers
    # for every state of the chain, biasing CD-k.
    rbm = make_rbm(4, 3, k=3, seed=1)
    v = all_states(4).astype("float32")
    by_int, again = (rbm.contrastive_divergence(v, seed=7)["gradients"] for _ in range(2))
    by_generator = rbm.contrastive_divergence(v, seed=keras.random.SeedGenerator(7))["gradients"]
    for a, b, c in zip(by_int, again, by_generator):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    with pytest.raises(ValueError, match="`seed` must be an integer"):
        rbm.contrastive_divergence(v, seed=True)


@pytest.mark.parametrize("persistent, num_chains, dtype", [
    (False, None, "float32"), (True, 40, "float32"), (True, 16, "float32"),
    (False, None, "mixed_bfloat16"),
])
def test_weight_statistics_of_static_and_unknown_batch_sizes_agree(persistent, num_chains, dtype):
    """A float32 batch of static size over ``V / 2`` rows scales the
    difference of CD's weight statistics once
    (`rbm._scales_weight_statistics_once`); outside `fit`, a batch of
    unknown size scales each GEMM's operand. Same draws, same statistics;
    with a zero kernel CD-1's are known exactly."""
    import tensorflow as tf

    from keras_dbn import rbm as rbm_lib

    chains = {"persistent": True, "num_chains": num_chains} if persistent else {}
    rbm = make_rbm(6, 3, seed=2, dtype=dtype, **chains)
    v = np.random.default_rng(3).random((40, 6)).astype("float32")

    def statistics(rows):
        seed = keras.random.SeedGenerator(5)
        step = tf.function(lambda x: rbm.contrastive_divergence(x, seed=seed),
                           input_signature=[tf.TensorSpec((rows, 6), tf.float32)])
        return step(v)

    static, unknown = statistics(40), statistics(None)
    for a, b in zip(static["gradients"], unknown["gradients"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(static["gradients"][0])).max() > 0.01
    once = rbm_lib._scales_weight_statistics_once(40, 6, num_chains)
    assert once == (num_chains in (None, 40))
    assert not rbm_lib._scales_weight_statistics_once(None, 6)  # unknown: per operand
    assert not rbm_lib._scales_weight_statistics_once(3, 6)  # 2 * 3 rows: not over V
    # Mixed steps widen both products anyway; PCD needs as many chains as rows.
    assert rbm_lib._scales_weight_statistics_once(None, 6, mixed=True)
    assert not rbm_lib._scales_weight_statistics_once(None, 6, chains=40, mixed=True)
    if not persistent:
        rbm.kernel.assign(np.zeros((6, 3)))
        _, b, c = params(rbm)
        sig_b, sig_c = 1 / (1 + np.exp(-b)), 1 / (1 + np.exp(-c))
        grad_w = np.asarray(rbm.contrastive_divergence(v, seed=5)["gradients"][0])
        # bfloat16 keeps 8 significant bits of the means and of each mean
        # product (at most 1), of which the statistics are a difference.
        atol = 1e-6 if dtype == "float32" else 2.0**-7
        np.testing.assert_allclose(grad_w, np.outer(sig_b - v.mean(axis=0), sig_c), atol=atol)


def test_bias_statistics_of_a_large_float64_batch_keep_float64_sums():
    # With W = 0, CD-1's visible-bias gradient is exactly sigmoid(b) - mean(v).
    rng = np.random.default_rng(0)
    rbm = make_rbm(4, 3, dtype="float64")
    rbm.kernel.assign(np.zeros((4, 3)))
    v = (rng.random((60_000, 4)) < 0.7).astype("float64")
    b = np.asarray(rbm.visible_bias, "float64")
    grad_b = np.asarray(rbm.contrastive_divergence(v)["gradients"][1], "float64")
    # The gradient is float32: one rounding, not 60,000 rounded additions.
    np.testing.assert_allclose(grad_b, 1 / (1 + np.exp(-b)) - v.mean(axis=0), rtol=0, atol=1e-7)


def test_fit_on_images_then_on_flat_rows_trains_as_on_flat_rows_twice():
    # The second fit retraces the step for a batch of another rank, which
    # TensorFlow then gives it as a tensor of unknown rank.
    v = np.tile(all_states(6), (3, 1)).astype("float32")
    first, second = keras_dbn.RBM(3, seed=4), keras_dbn.RBM(3, seed=4)
    logs = {}
    for rbm, shapes in ((first, ((-1, 2, 3), (-1, 6), (-1, 2, 3))), (second, ((-1, 6),) * 3)):
        rbm.compile(optimizer=keras.optimizers.SGD(0.1))
        logs[rbm] = [rbm.fit(v.reshape(shape), batch_size=64, epochs=1, shuffle=False,
                             verbose=0).history["reconstruction_error"] for shape in shapes]
    np.testing.assert_allclose(first.kernel, second.kernel, rtol=1e-6)
    np.testing.assert_allclose(logs[first], logs[second], rtol=1e-6)


@pytest.mark.parametrize(
    "call",
    [
        lambda rbm: rbm.visible_given_hidden(np.ones((2, 3), "float32")),
        lambda rbm: rbm.sample(2),
        lambda rbm: rbm.num_visible,
    ],
)
def test_calls_without_visible_data_need_a_built_rbm(call):
    rbm = keras_dbn.RBM(3)
    with pytest.raises(ValueError, match=r"no weights yet: fit it, call it on data, or build"):
        call(rbm)
    assert not rbm.built


def test_compile_refuses_losses_and_metrics_and_fit_class_weights():
    rbm = keras_dbn.RBM(3, seed=0)
    for given in ({"loss": "mse"}, {"metrics": ["mae"]}, {"loss_weights": [1.0]}):
        with pytest.raises(ValueError, match=f"`{next(iter(given))}` would have no effect"):
            rbm.compile(optimizer="sgd", **given)
    with pytest.raises(ValueError, match="`class_weight` does not apply"):
        rbm.fit(all_states(4).astype("float32"), class_weight={0: 1.0}, verbose=0)
    # A compile config saved with a loss (accepted before) still restores the optimizer.
    rbm.compile_from_config({"optimizer": keras.optimizers.serialize(keras.optimizers.SGD(0.3)),
                             "loss": "mse", "metrics": None})
    assert float(rbm.optimizer.learning_rate) == pytest.approx(0.3)


def test_compile_refuses_loss_scaling_which_would_stall_training(tmp_path):
    rbm = keras_dbn.RBM(3, seed=0)
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="no loss to scale.*inner_optimizer"):
        rbm.compile(optimizer=scaled)
    with pytest.raises(ValueError, match="no loss to scale"):
        rbm.compile(optimizer="sgd", auto_scale_loss=True)
    # An optimizer's own factor divided every update by it, silently.
    with pytest.raises(ValueError, match="loss_scale_factor=128.0 would divide its CD updates"):
        rbm.compile(optimizer=keras.optimizers.SGD(0.1, loss_scale_factor=128.0))
    with pytest.raises(ValueError, match="loss_scale_factor=8"):
        rbm.compile(optimizer={"class_name": "Adam", "config": {"loss_scale_factor": 8}})
    # The inner optimizer trains as it would alone.
    rbm.compile(optimizer=scaled.inner_optimizer)
    # A file saved while `compile` took a factor loads, without it.
    old = keras_dbn.RBM(3, seed=0)
    old.compile(optimizer=keras.optimizers.SGD(0.1))
    old.fit(all_states(4).astype("float32"), epochs=1, shuffle=False, verbose=0)
    old.optimizer.loss_scale_factor = 4.0
    old.save(tmp_path / "scaled.keras")
    with pytest.warns(UserWarning, match="saved with an optimizer whose loss_scale_factor=4.0 "
                                         "divided its CD updates"):
        loaded = keras.models.load_model(tmp_path / "scaled.keras")  # it failed to load
    assert loaded.optimizer.loss_scale_factor is None
    np.testing.assert_array_equal(loaded.kernel.numpy(), old.kernel.numpy())
    # So does one saved while `compile` took a LossScaleOptimizer.
    old._compile_config.config["optimizer"] = keras.optimizers.serialize(
        keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.3)))
    old.save(tmp_path / "loss_scale_optimizer.keras")
    with pytest.warns(UserWarning, match="saved with a LossScaleOptimizer, which divided its CD "
                                         "updates by its loss scale; it loads with the inner"):
        loaded = keras.models.load_model(tmp_path / "loss_scale_optimizer.keras")
    assert type(loaded.optimizer) is keras.optimizers.SGD
    plain = keras_dbn.RBM(3, seed=0)
    plain.compile(optimizer=keras.optimizers.SGD(0.1))
    for model in (rbm, plain):
        model.fit(all_states(4).astype("float32"), epochs=3, shuffle=False, verbose=0)
    np.testing.assert_array_equal(rbm.kernel.numpy(), plain.kernel.numpy())


def test_fit_on_an_endless_dataset_needs_its_step_counts():
    import tensorflow as tf

    x = all_states(4).astype("float32")
    endless = tf.data.Dataset.from_tensor_slices(x).batch(4).repeat()
    rbm = keras_dbn.RBM(3, seed=0)
    with pytest.raises(ValueError, match="RBM.fit: the dataset never ends.*steps_per_epoch"):
        rbm.fit(endless, verbose=0)
    with pytest.raises(ValueError, match="validation dataset never ends: pass validation_steps"):
        rbm.fit(x, validation_data=endless, verbose=0)
    history = rbm.fit(endless, steps_per_epoch=3, validation_data=endless, validation_steps=2,
                      epochs=2, verbose=0).history
    assert int(rbm.optimizer.iterations) == 6 and len(history["val_free_energy"]) == 2


def test_evaluate_and_predict_refuse_arrays_without_examples():
    rbm = keras_dbn.RBM(3, seed=0)
    rbm.build((None, 4))
    for call in (rbm.evaluate, rbm.predict):
        with pytest.raises(ValueError, match="holds no examples"):
            call(np.zeros((0, 4), dtype="float32"), verbose=0)


def test_evaluate_compiles_an_uncompiled_rbm_as_fit_does():
    x = all_states(6).astype("float32")
    rbm = keras_dbn.RBM(3, seed=0)
    logs = rbm.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    assert rbm.compiled and rbm.built
    assert set(logs) == {"reconstruction_error", "free_energy"}
    np.testing.assert_allclose(logs["free_energy"], np.mean(rbm.free_energy(x)), rtol=1e-5)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_an_rbm_compiled_in_a_strategy_scope_fits_outside_it(jit_compile):
    """As a Keras model does: compiled in the scope, trained anywhere (the
    optimizer and an XLA step's weights are built before the first step)."""
    import tensorflow as tf

    x = all_states(6).astype("float32")
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        rbm = keras_dbn.RBM(3, seed=0)
        rbm.compile(jit_compile=jit_compile)
    rbm.fit(x, batch_size=16, epochs=1, verbose=0)
    rbm.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), epochs=1, verbose=0)
    assert int(rbm.optimizer.iterations.numpy()) == 8


def test_training_under_the_jax_backend_raises_a_clear_error(monkeypatch):
    x = all_states(4).astype("float32")
    rbm = keras_dbn.RBM(3, seed=0)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    for train in (rbm.fit, rbm.evaluate, keras_dbn.DBN([3], seed=0).pretrain):
        with pytest.raises(NotImplementedError, match="KERAS_BACKEND=tensorflow"):
            train(x, verbose=0)
    assert not rbm.built and not rbm.compiled


def test_gaussian_units_warn_about_unstandardised_data():
    import warnings

    rng = np.random.default_rng(0)
    x = rng.normal(50.0, 10.0, (200, 5)).astype("float32")
    with pytest.warns(UserWarning) as record:
        keras_dbn.RBM(3, visible="gaussian").fit(x, verbose=0)
    # One warning: standardising also centres the data, which lie far off too.
    assert [re.search(r"standard deviation 1\d\.\d.*Standardise", str(w.message)) is not None
            for w in record] == [True]
    # Reading data (not training) is not judged: a few rows of standardised
    # data spread wider than all of them.
    rbm = keras_dbn.RBM(3, visible="gaussian", seed=0)
    rbm.build((None, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        rbm.reconstruct(x[:12])
    standardised = (x - x.mean(0)) / x.std(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        keras_dbn.RBM(3, visible="gaussian").fit(standardised, verbose=0)
        keras_dbn.RBM(3).fit((x > 50).astype("float32"), verbose=0)  # Bernoulli: no check


def test_gaussian_units_warn_about_data_far_from_their_biases():
    """Unit-variance data shifted by 10 saturated every hidden unit; the
    biases set from the data's mean (as DBN.pretrain sets them) take it."""
    import warnings

    x = np.random.default_rng(0).normal(size=(300, 6)).astype("float32") + 10.0
    with pytest.warns(UserWarning, match=r"mean lies 1\d\.\d+ from its bias"):
        keras_dbn.RBM(3, visible="gaussian", seed=0).fit(x, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        keras_dbn.RBM(3, visible="gaussian", seed=0).initialize_visible_bias(x).fit(x, verbose=0)
        keras_dbn.DBN([3, 2], visible="gaussian", seed=0).pretrain(x, epochs=1, verbose=0)
        keras_dbn.RBM(3, visible="gaussian", seed=0).fit(x, epochs=0, verbose=0)  # no training
    # Sorted data: the rows read come from the whole array, not its start.
    centred = np.random.default_rng(1).normal(size=(30_000, 2)).astype("float32")
    centred[10_000:] += 5.0  # mean 3.3, standard deviation 2.5
    with pytest.warns(UserWarning, match="from its bias"):
        keras_dbn.RBM(2, visible="gaussian", seed=0).fit(centred, epochs=1, batch_size=1000,
                                                        verbose=0)


def test_warnings_name_the_callers_line_however_deep_they_arise():
    """A warning of `RBM.fit` raised under `DBN.pretrain` (or the trainers,
    or the command line) named keras_dbn's own line, a fixed stacklevel
    above it; it names the line outside the package that called in."""
    x = np.random.default_rng(0).normal(0.0, 10.0, (200, 5)).astype("float32")
    calls = {
        "RBM.fit": lambda: keras_dbn.RBM(3, visible="gaussian", seed=0).fit(x, verbose=0),
        "DBN.pretrain": lambda: keras_dbn.DBN([3, 2], visible="gaussian", seed=0).pretrain(
            x, epochs=1, verbose=0),
    }
    for name, call in calls.items():
        with pytest.warns(UserWarning, match="standard deviation") as record:
            call()
        found = [w for w in record if "standard deviation" in str(w.message)]
        assert [w.filename for w in found] == [__file__], name
    frozen = keras_dbn.RBM(3, seed=0)
    frozen.trainable = False
    with pytest.warns(UserWarning, match="frozen") as record:
        frozen.fit((x > 0).astype("float32"), verbose=0)
    assert {w.filename for w in record if "frozen" in str(w.message)} == {__file__}


def test_warnings_under_the_command_name_the_commands_line():
    """The `keras-dbn` command has no line of the user's: its warnings named
    `<frozen runpy>` under ``python -m keras_dbn``; they name the command's."""
    from keras_dbn import cli, user_warnings

    # A call made from a line of cli.py, as the command makes its calls.
    command_line = compile("user_warnings.warn('from the command')", cli.__file__, "exec")
    with pytest.warns(UserWarning, match="from the command") as record:
        exec(command_line, {"user_warnings": user_warnings})
    assert [w.filename for w in record] == [cli.__file__]


@pytest.mark.parametrize("name", ["bernoulli", "gaussian"])
def test_log_partition_shortcut_from_the_mean_is_exact(name):
    units = keras_dbn.units.get(name)
    pre = np.linspace(-120, 60, 37, dtype="float32").reshape(1, -1)
    bias = np.linspace(-1, 1, 37, dtype="float32")
    mean = units.mean(keras.ops.convert_to_tensor(pre))
    np.testing.assert_allclose(
        units.log_partition_given_mean(pre, bias, mean), units.log_partition(pre, bias), rtol=1e-6
    )


@pytest.mark.parametrize(
    "visible, hidden, hidden_shift",
    [
        ("bernoulli", "bernoulli", 0.0),
        # Sigmoids that underflow to 0 take the per-unit formula instead.
        ("bernoulli", "bernoulli", -150.0),
        ("gaussian", "bernoulli", 0.0),
        ("bernoulli", "gaussian", 0.0),
    ],
)
def test_logged_training_free_energy_is_that_of_the_batch(visible, hidden, hidden_shift):
    rng = np.random.default_rng(0)
    x = (rng.random((50, 12)) < 0.5).astype("float32")
    if visible == "gaussian":
        x = rng.normal(size=(50, 12)).astype("float32")
    rbm = make_rbm(12, 6, scale=0.3 if hidden == "gaussian" else 2.0, visible=visible, hidden=hidden)
    c = np.asarray(rbm.hidden_bias)
    c[:3] += hidden_shift
    rbm.hidden_bias.assign(c)
    stats = rbm.contrastive_divergence(keras.ops.convert_to_tensor(x))
    expected = float(np.mean(rbm.free_energy(x)))
    assert np.isfinite(expected)
    np.testing.assert_allclose(float(stats["free_energy"]), expected, rtol=1e-5)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Inside a compiled step, where the choice of formula is a graph op.
        stats = tf.function(rbm.contrastive_divergence)(keras.ops.convert_to_tensor(x))
        np.testing.assert_allclose(float(stats["free_energy"]), expected, rtol=1e-5)
        # An XLA-compiled step takes the hidden term from the total inputs.
        rbm.jit_compile = True
        step = tf.function(rbm.contrastive_divergence, jit_compile=True)
        stats = step(keras.ops.convert_to_tensor(x))
        np.testing.assert_allclose(float(stats["free_energy"]), expected, rtol=1e-5)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_mixed_policy_statistics_match_float32_where_the_chain_is_deterministic(visible):
    """With a zero kernel every conditional mean is the bias's, whatever
    the samples, so CD-1's statistics and monitors are deterministic: the
    mixed step (bfloat16 GEMMs and means, statistics subtracted in
    float32) must give float32's up to bfloat16 rounding."""
    rng = np.random.default_rng(1)
    x = rng.random((300, 12)).astype("float32")
    if visible == "gaussian":
        x = rng.normal(size=(300, 12)).astype("float32")
    stats = {}
    for dtype in ("float32", "mixed_bfloat16"):
        rbm = make_rbm(12, 5, visible=visible, dtype=dtype)
        rbm.kernel.assign(np.zeros((12, 5)))
        stats[dtype] = rbm.contrastive_divergence(keras.ops.convert_to_tensor(x))
    exact, mixed = stats["float32"], stats["mixed_bfloat16"]
    for e, m in zip(exact["gradients"], mixed["gradients"]):
        e, m = np.asarray(e), np.asarray(m)
        assert m.dtype == np.float32
        # Relative to the largest entry: bfloat16 keeps 8 significant bits.
        np.testing.assert_allclose(m, e, atol=2e-2 * np.abs(e).max())
    assert np.abs(np.asarray(exact["gradients"][0])).max() > 0.05  # not trivially zero
    for name in ("reconstruction_error", "free_energy"):
        np.testing.assert_allclose(float(mixed[name]), float(exact[name]), rtol=1e-2)


@pytest.mark.parametrize("jit_compile, persistent",
                         [(False, False), (True, False), (False, True), ("auto", True)])
def test_training_monitors_of_large_batches_read_their_first_rows(jit_compile, persistent):
    """Above `MONITOR_ROWS` rows the monitors estimate; the update does not.
    PCD's reconstruction error, which costs it a GEMM of its own, reads the
    first `PCD_MONITOR_ROWS`.

    With a zero kernel the reconstruction is ``sigmoid(b)`` whatever the
    hidden sample, and the free energy's hidden term is the same for every
    row, so both monitors are known exactly: the reconstruction error of the
    first rows, and the free energy of the whole batch (its visible term
    comes from the batch's column means). One SGD step of rate 1 still moves
    the visible biases by the whole batch's statistics. TensorFlow's graph
    and XLA take the free energy's hidden term by different formulas.
    """
    rows = keras_dbn.rbm.MONITOR_ROWS
    rng = np.random.default_rng(0)
    # Grey levels near 0.5 first (reconstructed almost exactly), then binary.
    x = np.concatenate([
        rng.uniform(0.4, 0.6, (rows, 6)), rng.random((3 * rows, 6)) < 0.2
    ]).astype("float32")
    rbm = make_rbm(6, 4, scale=0.0, persistent=persistent)
    rbm.visible_bias.assign(np.zeros(6))
    expected_energy = float(np.mean(rbm.free_energy(x)))
    rbm.compile(optimizer=keras.optimizers.SGD(1.0), jit_compile=jit_compile)
    history = rbm.fit(x, batch_size=len(x), epochs=1, shuffle=False, verbose=0).history
    if not persistent:  # PCD's negative statistics come from its chains
        np.testing.assert_allclose(np.asarray(rbm.visible_bias), x.mean(0) - 0.5, atol=1e-6)
    read = keras_dbn.rbm.PCD_MONITOR_ROWS if persistent else rows
    first, whole = np.mean((0.5 - x[:read]) ** 2), np.mean((0.5 - x) ** 2)
    assert abs(first - whole) > 0.05
    np.testing.assert_allclose(history["reconstruction_error"][0], first, rtol=1e-6)
    np.testing.assert_allclose(history["free_energy"][0], expected_energy, rtol=1e-6)
    # Evaluation reads every row.
    rbm.kernel.assign(np.zeros((6, 4)))
    rbm.visible_bias.assign(np.zeros(6))
    logs = rbm.evaluate(x, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["reconstruction_error"], whole, rtol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_monitors_average_over_examples_whatever_the_last_batch(jit_compile):
    """Each batch's monitors count by its rows, as Keras weighs its loss by
    the batch size: a last batch of one row counts for one row, not for as
    much as a full batch. With a zero kernel the reconstruction is
    ``sigmoid(b)`` whatever the hidden sample, so both monitors are known
    exactly; a learning rate of 0 keeps the weights through the epoch."""
    rng = np.random.default_rng(0)
    x = (rng.random((33, 6)) < 0.3).astype("float32")
    x[32] = 1.0  # unlike the rest, and alone in the last batch of 32
    rbm = make_rbm(6, 4, scale=0.0)
    bias = np.full(6, 2.0)
    rbm.visible_bias.assign(bias)
    expected = {
        "free_energy": float(np.mean(rbm.free_energy(x))),
        "reconstruction_error": float(np.mean((1.0 / (1.0 + np.exp(-bias)) - x) ** 2)),
    }
    batch_means = [float(np.mean(rbm.free_energy(x[:32]))), float(rbm.free_energy(x[32:])[0])]
    assert abs(np.mean(batch_means) - expected["free_energy"]) > 1.0  # the weighting shows
    rbm.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=jit_compile)
    history = rbm.fit(x, batch_size=32, epochs=1, shuffle=False, validation_data=x,
                      verbose=0).history
    logs = rbm.evaluate(x, batch_size=32, verbose=0, return_dict=True)
    for name, value in expected.items():
        np.testing.assert_allclose(history[name][0], value, rtol=1e-5)
        np.testing.assert_allclose(history[f"val_{name}"][0], value, rtol=1e-5)
        np.testing.assert_allclose(logs[name], value, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bernoulli_samples_are_binary_with_the_given_probabilities(dtype):
    p = np.array([0.0, 1e-3, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0], dtype="float32")
    n = 40_000
    mean = keras.ops.cast(keras.ops.convert_to_tensor(np.tile(p, (n, 1))), dtype)
    samples = keras_dbn.units.bernoulli_sample(mean, keras.random.SeedGenerator(3))
    assert keras.backend.standardize_dtype(samples.dtype) == dtype
    samples = np.asarray(keras.ops.cast(samples, "float32"))
    assert set(np.unique(samples)) <= {0.0, 1.0}
    assert not np.any(np.signbit(samples))  # no -0.0 states
    p_used = np.asarray(keras.ops.cast(mean[0], "float32"))  # p rounded to dtype
    # Four standard errors of a mean of n Bernoulli draws.
    tolerance = 4 * np.sqrt(p_used * (1 - p_used) / n) + 1e-6
    np.testing.assert_array_less(np.abs(samples.mean(axis=0) - p_used), tolerance)
    assert samples[:, 0].sum() == 0 and samples[:, -1].sum() == n


@pytest.mark.parametrize("unit_type", ["bernoulli", "gaussian"])
def test_samples_with_a_given_shape_equal_those_shaped_like_the_mean(unit_type):
    # CD passes the shape taken from its input batch so that the random
    # numbers need not wait for the means; the draws must not change.
    units = keras_dbn.units.get(unit_type)
    mean = keras.ops.convert_to_tensor(np.random.default_rng(0).random((37, 11), dtype="float32"))
    plain = units.sample(mean, keras.random.SeedGenerator(9))
    shaped = units.sample(mean, keras.random.SeedGenerator(9), (37, 11))
    np.testing.assert_array_equal(np.asarray(shaped), np.asarray(plain))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Traced with an unknown batch size, the shape given by another tensor.
        generator = keras.random.SeedGenerator(9)

        @tf.function(input_signature=[tf.TensorSpec((None, 11)), tf.TensorSpec((None, 5))])
        def traced(mean, other):
            return units.sample(mean, generator, (tf.shape(other)[0], 11))

        out = traced(mean, tf.zeros((37, 5)))
        np.testing.assert_array_equal(np.asarray(out), np.asarray(plain))


def test_gaussian_samples_of_bfloat16_means_keep_dtype_and_distribution():
    # A mixed-policy CD step hands the units bfloat16 means.
    mean = keras.ops.cast(keras.ops.full((40_000, 3), 0.3), "bfloat16")
    units = keras_dbn.units.get("gaussian")
    samples = units.sample(mean, keras.random.SeedGenerator(4))
    assert keras.backend.standardize_dtype(samples.dtype) == "bfloat16"
    samples = np.asarray(keras.ops.cast(samples, "float32"), dtype="float64")
    p = float(keras.ops.cast(mean[0, 0], "float32"))
    # Mean and variance within five standard errors of 40,000 draws.
    np.testing.assert_allclose(samples.mean(axis=0), p, atol=5 / np.sqrt(40_000))
    np.testing.assert_allclose(samples.var(axis=0), 1.0, atol=5 * np.sqrt(2 / 40_000))


def test_bernoulli_probabilities_round_to_sixteen_bits():
    # Each uniform has 16 random bits, (k + 1/2) / 2^16: p rounds to the
    # nearest multiple of 2^-16, so p below 2^-17 never gives a one and p
    # above 1 - 2^-17 always does; just above 2^-17, p gives ones at 2^-16.
    p = np.array([5e-6, 1.0 - 5e-6, 1.2e-5], dtype="float32")
    n = 1 << 20
    mean = keras.ops.convert_to_tensor(np.tile(p, (n, 1)))
    samples = np.asarray(keras_dbn.units.bernoulli_sample(mean, keras.random.SeedGenerator(5)))
    counts = samples.sum(axis=0)
    assert counts[0] == 0 and counts[1] == n
    expected = n / 65536  # 16 ones on average
    assert abs(counts[2] - expected) < 5 * np.sqrt(expected)


@pytest.mark.parametrize("shape", [(7, 5), (1, 1), (4, 6), (3, 2, 5)])
def test_bernoulli_samples_have_the_shape_of_the_mean_and_vary(shape):
    mean = keras.ops.full(shape, 0.5)
    generator = keras.random.SeedGenerator(11)
    first = np.asarray(keras_dbn.units.bernoulli_sample(mean, generator))
    draws = [first] + [np.asarray(keras_dbn.units.bernoulli_sample(mean, generator)) for _ in range(30)]
    assert first.shape == shape
    # Every position is 1 in some draws and 0 in others: no position is
    # stuck, and both halves of each 32-bit word are used.
    stacked = np.stack(draws)
    assert np.all(stacked.max(axis=0) == 1) and np.all(stacked.min(axis=0) == 0)
    # The same seed gives the same draws.
    again = keras_dbn.units.bernoulli_sample(mean, keras.random.SeedGenerator(11))
    np.testing.assert_array_equal(np.asarray(again), first)


def test_mixed_policy_statistics_use_the_unrounded_data():
    """Under ``mixed_bfloat16`` only the GEMMs read the data rounded.

    With a zero kernel and zero visible biases the CD-1 reconstruction is
    exactly 0.5 whatever the hidden sample, so one SGD step of rate 1 sets
    the visible biases to the data's column means minus 0.5. Grey levels
    rounded to bfloat16 would move those means by ~1e-3.
    """
    x = np.random.default_rng(0).random((64, 6)).astype("float32")
    rounded = np.asarray(keras.ops.cast(keras.ops.cast(x, "bfloat16"), "float32"))
    assert np.abs(rounded.mean(0) - x.mean(0)).max() > 1e-4
    rbm = make_rbm(6, 4, scale=0.0, dtype="mixed_bfloat16")
    rbm.visible_bias.assign(np.zeros(6))
    rbm.compile(optimizer=keras.optimizers.SGD(1.0))
    history = rbm.fit(x, batch_size=64, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(np.asarray(rbm.visible_bias), x.mean(0) - 0.5, atol=1e-6)
    expected_error = np.mean((0.5 - x) ** 2)
    np.testing.assert_allclose(history.history["reconstruction_error"][0], expected_error, rtol=1e-6)


def test_column_means_of_bfloat16_states_accumulate_in_float32():
    """1000 rows of 0.3: a bfloat16 running sum would stop growing at 128
    (where half its spacing exceeds 0.3), far from 300; a float32 one
    rounded once gives 0.3 to bfloat16's precision."""
    x = keras.ops.cast(np.full((1000, 7), 0.3, "float32"), "bfloat16")
    means = np.asarray(keras_dbn.rbm._column_means(x))
    assert means.dtype == np.float32
    np.testing.assert_allclose(means, 0.3, rtol=2**-8)


def test_mixed_policy_free_energy_sums_in_float32():
    """784x500 with MNIST-sized free energies (~-370 nats): under
    ``mixed_bfloat16`` only the GEMM is rounded, so `free_energy` and
    `evaluate` match a float32 RBM with the same (rounded) kernel to a
    fraction of a nat; 16-bit sums were off by up to ~3 nats, and
    ``np.mean`` of bfloat16 values by ~30."""
    rng = np.random.default_rng(0)
    x = (rng.random((200, 784)) < 0.15).astype("float32")
    kernel = np.asarray(keras.ops.cast(keras.ops.cast(
        rng.normal(0, 0.1, (784, 500)).astype("float32"), "bfloat16"), "float32"))
    weights = [kernel, rng.normal(-1, 1, 784).astype("float32"),
               rng.normal(0, 1, 500).astype("float32")]
    rbms = {}
    for dtype in ("float32", "mixed_bfloat16"):
        rbms[dtype] = keras_dbn.RBM(500, dtype=dtype, seed=0)
        rbms[dtype].build((None, 784))
        rbms[dtype].set_weights(weights)
        rbms[dtype].compile()
    exact = np.asarray(rbms["float32"].free_energy(x), "float64")
    mixed = np.asarray(rbms["mixed_bfloat16"].free_energy(x))
    assert mixed.dtype == np.float32
    assert np.abs(mixed - exact).max() < 0.5
    assert abs(np.mean(mixed) - np.mean(exact)) < 0.05
    scores = {d: rbm.evaluate(x, verbose=0, return_dict=True) for d, rbm in rbms.items()}
    assert abs(scores["mixed_bfloat16"]["free_energy"] - scores["float32"]["free_energy"]) < 0.05
    # The joint energy too (in bfloat16 it was off by up to ~2.6 nats).
    h = (rng.random((200, 500)) < 0.3).astype("float32")
    exact = np.asarray(rbms["float32"].energy(x, h), "float64")
    mixed = np.asarray(rbms["mixed_bfloat16"].energy(x, h))
    assert mixed.dtype == np.float32 and np.abs(mixed - exact).max() < 1e-3
    # And predict gives float32 arrays, as transform does (bfloat16 ones are
    # not numbers to scikit-learn or np.savez).
    for rbm in rbms.values():
        assert rbm.predict(x, verbose=0).dtype == np.float32
    dbn = keras_dbn.DBN([rbms["mixed_bfloat16"]])
    dbn.build((None, 784))
    predicted = dbn.predict(x, verbose=0)
    assert predicted.dtype == np.float32
    np.testing.assert_allclose(predicted, rbms["mixed_bfloat16"].predict(x, verbose=0))


def bfloat16_copy(x):
    return keras_dbn.as_aligned(x, dtype="bfloat16")


def test_mixed_policy_reads_bfloat16_data_as_they_are():
    """bfloat16 data under ``mixed_bfloat16``: the zero-kernel step of the
    test above gives the data's column means and the reconstruction error
    exactly. Grey levels in quarters over 16 rows have sums that bfloat16
    holds exactly, whichever way the step rounds them."""
    x = np.random.default_rng(0).integers(0, 5, (16, 6)).astype("float32") / 4
    rbm = make_rbm(6, 4, scale=0.0, dtype="mixed_bfloat16")
    rbm.visible_bias.assign(np.zeros(6))
    rbm.compile(optimizer=keras.optimizers.SGD(1.0))
    history = rbm.fit(bfloat16_copy(x), batch_size=16, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(np.asarray(rbm.visible_bias), x.mean(0) - 0.5, atol=1e-6)
    expected_error = np.mean((0.5 - x) ** 2)
    np.testing.assert_allclose(history.history["reconstruction_error"][0], expected_error, rtol=1e-6)


@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_mixed_policy_trains_alike_on_binary_data_in_float32_and_bfloat16(visible, persistent):
    """Binary data are exact in bfloat16: the same batches, seeds and GEMM
    inputs, so training follows the float32 data's (column means summed
    in another order: equal to float32 rounding)."""
    x = (np.random.default_rng(1).random((256, 12)) < 0.3).astype("float32")
    results = []
    for data in (keras_dbn.as_aligned(x), bfloat16_copy(x)):
        rbm = make_rbm(12, 8, scale=0.1, dtype="mixed_bfloat16", visible=visible,
                       persistent=persistent)
        rbm.compile(optimizer=keras.optimizers.SGD(0.05))
        history = rbm.fit(data, batch_size=64, epochs=3, verbose=0)
        results.append(([np.asarray(w) for w in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias)],
                         history.history))
    (weights32, logs32), (weights16, logs16) = results
    for a, b in zip(weights32, weights16):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for name in ("reconstruction_error", "free_energy"):
        np.testing.assert_allclose(logs32[name], logs16[name], rtol=1e-4)


def test_bfloat16_data_are_checked_like_float32_data():
    rbm = keras_dbn.RBM(3)
    for bad, message in (([[0.0, 2.0]], r"in \[0, 1\]"), ([[0.0, -0.5]], r"in \[0, 1\]"),
                         ([[0.0, np.nan]], "NaN"), ([[np.inf, 0.0]], "NaN")):
        with pytest.raises(ValueError, match=message):
            rbm.fit(bfloat16_copy(np.array(bad)), verbose=0)
    gaussian = keras_dbn.RBM(3, visible="gaussian")
    gaussian.fit(bfloat16_copy(np.random.default_rng(0).normal(size=(64, 2))), verbose=0)
    assert gaussian.built


@pytest.fixture
def cpu_without_bfloat16(monkeypatch):
    from keras_dbn import hardware

    monkeypatch.setattr(hardware, "_warned", False)
    monkeypatch.setattr(hardware, "native_bfloat16", lambda cpuinfo=None: False)
    monkeypatch.setattr(hardware, "_has_accelerator", lambda: False)
    return hardware


def test_mixed_bfloat16_on_a_cpu_without_bfloat16_warns_once(cpu_without_bfloat16):
    x = np.zeros((32, 4), "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_dbn.RBM(3).fit(x, verbose=0)  # float32: nothing to say
        assert not caught
        keras_dbn.RBM(3, dtype="mixed_bfloat16").fit(x, verbose=0)
        keras_dbn.RBM(3, dtype="mixed_bfloat16").fit(x, verbose=0)
    messages = [str(w.message) for w in caught if "bfloat16 instructions" in str(w.message)]
    assert len(messages) == 1 and "dtype='float32'" in messages[0]


def test_mixed_bfloat16_on_a_cpu_with_bfloat16_does_not_warn(cpu_without_bfloat16, monkeypatch):
    monkeypatch.setattr(cpu_without_bfloat16, "native_bfloat16", lambda cpuinfo=None: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_dbn.RBM(3, dtype="mixed_bfloat16").fit(np.zeros((32, 4), "float32"), verbose=0)
    assert not [w for w in caught if "bfloat16 instructions" in str(w.message)]


@pytest.mark.parametrize(
    "cpuinfo, native",
    [
        ("processor\t: 0\nflags\t\t: fpu sse avx2 fma\n", False),
        ("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n", True),
        ("processor\t: 0\nflags\t\t: fpu amx_bf16 amx_tile\n", True),
        ("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n", True),
        ("processor\t: 0\nFeatures\t: fp asimd\n", False),
        ("", None),
    ],
)
def test_native_bfloat16_reads_the_cpu_flags(cpuinfo, native):
    from keras_dbn import hardware

    assert hardware.native_bfloat16(cpuinfo) is native


# ------------------------------------------------ shapes, policies, freezing


def _data(rows=300, width=12, seed=0):
    return (np.random.default_rng(seed).random((rows, width)) < 0.4).astype("float32")


def test_predictions_take_any_image_shape_of_the_visible_units_in_any_order():
    x = _data()
    rbm = keras_dbn.RBM(5, seed=0)
    rbm.fit(x, epochs=1, verbose=0)
    flat = rbm.predict(x, verbose=0)
    for shape in ((3, 4), (12,), (4, 3), (2, 2, 3)):
        got = rbm.predict(x.reshape((len(x),) + shape), verbose=0)
        np.testing.assert_allclose(got, flat, rtol=1e-6, atol=1e-7)
        assert np.isfinite(rbm.evaluate(x.reshape((len(x),) + shape), verbose=0)).all()


def test_a_step_traced_for_several_widths_checks_the_width_when_it_runs():
    import tensorflow as tf

    x = _data()
    rbm = keras_dbn.RBM(5, seed=0)
    rbm.fit(x, epochs=1, verbose=0)
    rbm.predict_on_batch(tf.constant(x[:20]))
    rbm.predict_on_batch(tf.constant(x[:30]))
    # The graph's message, or XLA's (which has no assertions) for the shape.
    message = r"12 visible units, but the data has|\[20,10\] is not compatible with .*\[\?,12\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        rbm.predict_on_batch(tf.constant(x[:20, :10]))
    rbm.compile(optimizer="sgd", jit_compile=False)
    for rows in (20, 30):
        rbm.predict_on_batch(tf.constant(x[:rows]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="12 visible units, but the data has"):
        rbm.predict_on_batch(tf.constant(x[:20, :10]))
    with pytest.raises(ValueError, match="build it first"):
        keras_dbn.RBM(5).build((None, None))
    with pytest.raises(ValueError, match="no features"):
        keras_dbn.RBM(5).fit(np.zeros((10, 0), "float32"), verbose=0)


def test_batch_methods_check_numpy_batches_as_fit_does():
    x = _data()
    rbm = keras_dbn.RBM(5, seed=0)
    rbm.fit(x, epochs=1, verbose=0)
    before = [w.copy() for w in rbm.get_weights()]
    for call in (rbm.train_on_batch, rbm.test_on_batch):
        with pytest.raises(ValueError, match="NaN or infinite"):
            call(np.full((3, 12), np.nan, "float32"))
        with pytest.raises(ValueError, match="12 visible units, but the data has 10"):
            call(x[:20, :10])
    for w, w0 in zip(rbm.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    with pytest.raises(ValueError, match=r"shape \(batch, 5\)"):
        rbm.visible_given_hidden(np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match=r"shape \(batch, 5\)"):
        rbm.energy(x[:2], np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match="`v` holds 3 rows but `h` holds 2"):
        rbm.energy(x[:3], np.ones((2, 5), "float32"))


def test_dataset_batches_are_checked_as_arrays_are():
    import tensorflow as tf

    x = _data()

    def batches(values):
        return tf.data.Dataset.from_tensor_slices(values).batch(50)

    rbm = keras_dbn.RBM(5, seed=0)
    rbm.fit(x, epochs=1, verbose=0)  # an array, checked whole beforehand
    before = [w.copy() for w in rbm.get_weights()]
    pixels = (x * 255).astype("uint8")  # as TFDS gives images
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"need data in \[0, 1\]"):
        rbm.fit(batches(pixels), epochs=1, verbose=0)
    for w, w0 in zip(rbm.get_weights(), before):
        np.testing.assert_array_equal(w, w0)  # refused at the first batch
    for use in (rbm.evaluate, rbm.predict):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"need data in \[0, 1\]"):
            use(batches(pixels), verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        rbm.fit(x, validation_data=batches(np.full_like(x, np.nan)), epochs=1, verbose=0)
    rbm.fit(batches((x, x[:, 0])), epochs=1, verbose=0)  # (x, y) pairs: y is left alone
    gaussian = keras_dbn.RBM(5, visible="gaussian", seed=0)
    gaussian.fit(batches(x * 3 - 1), epochs=1, verbose=0)  # any finite values
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        gaussian.fit(batches(np.full_like(x, np.inf)), epochs=1, verbose=0)


def test_tensors_are_checked_and_read_as_arrays_are():
    """Keras takes tensors wherever it takes arrays; so does the RBM, with
    the same checks and the same input pipeline."""
    import tensorflow as tf

    x = _data()
    pixels, nans = tf.constant(x * 255), tf.constant(np.full((4, 12), np.nan, "float32"))
    rbm = keras_dbn.RBM(5, seed=0)
    for use in (lambda v: rbm.fit(v, epochs=1, verbose=0),
                lambda v: rbm.fit(x, validation_data=v, epochs=1, verbose=0),
                lambda v: rbm.fit(x, validation_data=(v, None), epochs=1, verbose=0),
                rbm.train_on_batch, rbm.test_on_batch, rbm.initialize_visible_bias,
                lambda v: rbm.evaluate(v, verbose=0), lambda v: rbm.predict(v, verbose=0)):
        with pytest.raises(ValueError, match=r"need data in \[0, 1\]"):
            use(pixels)
        with pytest.raises(ValueError, match="NaN or infinite"):
            use(nans)
    assert int(rbm.optimizer.iterations.numpy()) == 0  # nothing trained on them
    weights = {}
    for name, data in (("array", x), ("tensor", tf.constant(x))):
        model = keras_dbn.RBM(5, seed=0)
        model.fit(data, epochs=2, batch_size=50, validation_data=data, verbose=0)
        weights[name] = model.get_weights()
    for a, b in zip(weights["array"], weights["tensor"]):
        np.testing.assert_array_equal(a, b)


def test_conditionals_energies_and_chains_check_numpy_data_as_fit_does():
    x = _data()
    rbm = keras_dbn.RBM(5, seed=0)
    rbm.fit(x, epochs=1, verbose=0)
    h = np.zeros((len(x), 5), "float32")
    for use in (rbm.free_energy, rbm.hidden_given_visible, rbm.reconstruct,
                lambda v: rbm.gibbs(v, steps=0), lambda v: rbm.energy(v, h),
                lambda v: rbm.sample(None, 0, initial=v)):
        with pytest.raises(ValueError, match=r"need data in \[0, 1\]"):
            use(x * 255)
        with pytest.raises(ValueError, match="NaN or infinite"):
            use(np.full_like(x, np.nan))
        assert np.all(np.isfinite(use(x)))


def test_batch_methods_and_the_statistics_work_on_a_new_rbm():
    x = _data()
    trained = keras_dbn.RBM(5, seed=0)
    logs = trained.train_on_batch(x[:50], return_dict=True)  # compiles, as fit does
    assert trained.optimizer.iterations.numpy() == 1
    assert set(logs) == {"reconstruction_error", "free_energy"}
    assert keras_dbn.RBM(5, seed=0).test_on_batch(x[:50], return_dict=True).keys() == logs.keys()
    fresh = keras_dbn.RBM(5, seed=0)
    stats = fresh.contrastive_divergence(x[:50])  # builds, as the conditionals do
    assert [tuple(g.shape) for g in stats["gradients"]] == [(12, 5), (12,), (5,)]
    with pytest.raises(ValueError, match=r"shape \(batch, 12\), got \(50, 10\)"):
        fresh.contrastive_divergence(x[:50, :10])


def test_mixed_float16_trains_like_float32():
    """A float16 policy's loss scaling would divide the CD update by its scale."""
    x = _data()
    deltas = {}
    for dtype in ("float32", "mixed_float16"):
        rbm = keras_dbn.RBM(5, seed=0, dtype=dtype)
        rbm.build((None, 12))
        start = np.asarray(rbm.kernel).copy()
        rbm.compile(optimizer=keras.optimizers.SGD(0.1))
        rbm.fit(x, epochs=1, batch_size=30, shuffle=False, verbose=0)
        assert not isinstance(rbm.optimizer, keras.optimizers.LossScaleOptimizer)
        deltas[dtype] = np.asarray(rbm.kernel) - start
    np.testing.assert_allclose(deltas["mixed_float16"], deltas["float32"], atol=5e-3)
    assert np.abs(deltas["float32"]).mean() > 0.01


def test_visible_biases_are_set_only_from_data_fit_accepts():
    x = _data()
    for bad, message in ((np.full((3, 12), np.nan), "NaN or infinite"),
                         ((x * 255).astype("uint8"), r"\[0, 1\]"),
                         (np.zeros((0, 12)), "no examples")):
        rbm = keras_dbn.RBM(5)
        with pytest.raises(ValueError, match=message):
            rbm.initialize_visible_bias(bad)
    rbm = keras_dbn.RBM(5).initialize_visible_bias(list(x))
    p = np.clip(x.mean(axis=0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(np.asarray(rbm.visible_bias), np.log(p / (1 - p)), rtol=1e-4)
    # A dataset's batches are checked as `fit` checks them.
    import tensorflow as tf

    def batches(values):
        return tf.data.Dataset.from_tensor_slices(values).batch(50)

    from_batches = keras_dbn.RBM(5).initialize_visible_bias(batches(x))
    np.testing.assert_allclose(np.asarray(from_batches.visible_bias), np.log(p / (1 - p)),
                               rtol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"need data in \[0, 1\]"):
        keras_dbn.RBM(5).initialize_visible_bias(batches(x * 255))
    with pytest.raises(ValueError, match="5 visible units, but the data has 12"):
        keras_dbn.RBM(3).initialize_visible_bias(x[:, :5]).initialize_visible_bias(batches(x))


def test_a_sparsity_target_needs_a_cost():
    with pytest.raises(ValueError, match="has no effect with `sparsity_cost=0`"):
        keras_dbn.RBM(5, sparsity_target=0.05)
    with pytest.raises(ValueError, match="`sparsity_cost` must be >= 0"):
        keras_dbn.RBM(5, sparsity_target=0.05, sparsity_cost=float("nan"))
    keras_dbn.RBM(5, sparsity_target=0.05, sparsity_cost=0.1)
    with pytest.raises(ValueError, match="has no effect without a `sparsity_target`"):
        keras_dbn.RBM(5, sparsity_cost=0.1)
    # A probability of binary units: Gaussian hidden means are real-valued.
    with pytest.raises(ValueError, match="'gaussian' hidden units have real-valued means"):
        keras_dbn.RBM(5, hidden="gaussian", sparsity_target=0.05, sparsity_cost=0.1)
    keras_dbn.RBM(5, visible="gaussian", sparsity_target=0.05, sparsity_cost=0.1)
    # Saved before that was refused, such an RBM still loads as it was.
    config = dict(keras_dbn.RBM(5, hidden="gaussian").get_config(),
                  sparsity_target=0.05, sparsity_cost=0.1)
    with pytest.warns(UserWarning, match="loads with its penalty as saved"):
        loaded = keras_dbn.RBM.from_config(config)
    assert (loaded.sparsity_target, loaded.sparsity_cost) == (0.05, 0.1)
    assert loaded.get_config()["sparsity_target"] == 0.05
    with pytest.raises(ValueError, match="must lie in"):  # the values are still checked
        keras_dbn.RBM.from_config(dict(config, sparsity_target=5.0))


def test_evaluate_and_predict_refuse_an_endless_dataset_without_steps():
    import tensorflow as tf

    x = _data()
    rbm = keras_dbn.RBM(5, seed=0)
    rbm.fit(x, epochs=1, verbose=0)
    endless = tf.data.Dataset.from_tensor_slices(x).batch(50).repeat()
    for use in (rbm.evaluate, rbm.predict):
        with pytest.raises(ValueError, match="never ends"):
            use(endless, verbose=0)  # Keras alone would read it forever
    assert rbm.predict(endless, steps=2, verbose=0).shape == (100, 5)
    assert len(rbm.evaluate(endless, steps=2, verbose=0)) == 2


def test_datasets_of_dicts_are_refused_and_a_dataset_builds_the_rbm(tmp_path):
    import tensorflow as tf

    x = _data()
    dicts = tf.data.Dataset.from_tensor_slices({"pixels": x}).batch(50)
    rbm = keras_dbn.RBM(5, seed=0)
    for use in (lambda d: rbm.fit(d, epochs=1, verbose=0),
                lambda d: rbm.fit(x, validation_data=d, epochs=1, verbose=0),
                lambda d: rbm.evaluate(d, verbose=0), rbm.initialize_visible_bias):
        with pytest.raises(TypeError, match="reads one input"):
            use(dicts)
    # Built from the dataset's shape before Keras' loop, as for an array: a
    # callback's `on_train_begin` may need the weights.
    seen = []

    class Weights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append([tuple(w.shape) for w in self.model.get_weights()][:3])

    batches = tf.data.Dataset.from_tensor_slices(x).batch(50)
    rbm.fit(batches, epochs=1, verbose=0,
            callbacks=[Weights(), keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    assert seen == [[(12, 5), (12,), (5,)]]


def test_a_frozen_rbm_reports_its_monitors_and_keeps_its_weights():
    x = _data()
    for persistent in (False, True):
        fitted = keras_dbn.RBM(5, seed=0, persistent=persistent)
        fitted.fit(x, epochs=1, verbose=0)
        built = keras_dbn.RBM(5, seed=0, persistent=persistent)
        built.build((None, 12))
        for rbm in (fitted, built):
            rbm.trainable = False
            before = [np.asarray(w).copy() for w in rbm.weights]
            with pytest.warns(UserWarning, match="frozen"):
                history = rbm.fit(x, epochs=1, verbose=0)
            assert np.isfinite(history.history["reconstruction_error"]).all()
            for w, w0 in zip(rbm.weights, before):
                np.testing.assert_array_equal(np.asarray(w), w0)
            rbm.trainable = True
            rbm.fit(x, epochs=1, verbose=0)
            assert not np.array_equal(np.asarray(rbm.kernel), before[0])


def test_the_seed_also_draws_initial_weights_of_a_named_initializer():
    def kernel(**kwargs):
        rbm = keras_dbn.RBM(5, seed=7, **kwargs)
        rbm.build((None, 12))
        return np.asarray(rbm.kernel)

    np.testing.assert_array_equal(kernel(kernel_initializer="glorot_uniform"),
                                  kernel(kernel_initializer="glorot_uniform"))
    config = {"class_name": "RandomUniform", "config": {"minval": -0.1, "maxval": 0.1}}
    np.testing.assert_array_equal(kernel(kernel_initializer=config),
                                  kernel(kernel_initializer=config))
    assert not np.array_equal(kernel(kernel_initializer="glorot_uniform"),
                              kernel(kernel_initializer=config))


def test_models_saved_before_building_load_persistent_chains_included(tmp_path):
    x = (np.random.default_rng(0).random((64, 12)) > 0.5).astype("float32")
    for name, model in [("rbm", keras_dbn.RBM(8, persistent=True, num_chains=10, seed=0)),
                        ("dbn", keras_dbn.DBN([8, 4], persistent=[False, True], seed=0))]:
        path = tmp_path / f"{name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        assert not loaded.built
        # It trains as a new model would.
        if name == "rbm":
            loaded.compile(optimizer="sgd")
            loaded.fit(x, epochs=1, batch_size=32, verbose=0)
            assert tuple(loaded.chains.shape) == (10, 8)
        else:
            loaded.pretrain(x, epochs=1, batch_size=32, verbose=0)
            assert tuple(loaded.rbms[1].chains.shape) == (loaded.rbms[1].num_chains, 4)


def test_methods_check_tensors_and_lists_as_they_check_arrays():
    import tensorflow as tf

    rbm = make_rbm(6, 4)
    pixels = np.full((3, 6), 255.0, "float32")
    for data in (pixels, tf.constant(pixels), pixels.tolist()):
        for method in (rbm.hidden_given_visible, rbm.free_energy, rbm.reconstruct):
            with pytest.raises(ValueError, match=r"need data in \[0, 1\]"):
                method(data)
        with pytest.raises(ValueError, match=r"need data in \[0, 1\]"):
            rbm.sample(None, gibbs_steps=1, initial=data)
    # Good values pass whatever holds them.
    scaled = pixels / 255.0
    expected = np.asarray(rbm.hidden_given_visible(scaled))
    np.testing.assert_array_equal(np.asarray(rbm.hidden_given_visible(tf.constant(scaled))), expected)
    np.testing.assert_array_equal(np.asarray(rbm.hidden_given_visible(scaled.tolist())), expected)


def test_fit_evaluate_and_predict_read_lists_as_arrays():
    x = (np.random.default_rng(0).random((40, 6)) < 0.5).astype("float32")
    weights = {}
    for given in (x, x.tolist()):
        rbm = keras_dbn.RBM(3, seed=0)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1))
        rbm.fit(given, batch_size=10, epochs=1, shuffle=False, verbose=0)
        weights[type(given)] = (np.asarray(rbm.kernel), rbm.predict(given, verbose=0),
                                rbm.evaluate(given, verbose=0, return_dict=True))
    (kernel_a, predicted_a, logs_a), (kernel_l, predicted_l, logs_l) = weights.values()
    np.testing.assert_array_equal(kernel_l, kernel_a)
    np.testing.assert_array_equal(predicted_l, predicted_a)
    assert logs_l == logs_a
    with pytest.raises(ValueError, match="list must hold rows of one length"):
        rbm.predict([[0.0, 1.0], [1.0]], verbose=0)
    with pytest.raises(ValueError, match=r"need data in \[0, 1\]"):
        rbm.fit((x * 255).tolist(), verbose=0)


def test_fit_warns_of_a_dataset_shorter_than_steps_per_epoch(tmp_path):
    """Keras ends an epoch when a finite dataset runs out, and says so only
    at one step per execution; the RBM runs several."""
    import warnings

    import tensorflow as tf

    x = (np.random.default_rng(0).random((200, 6)) < 0.5).astype("float32")
    rbm = keras_dbn.RBM(3, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.1))
    data = tf.data.Dataset.from_tensor_slices(x).batch(20)  # 10 batches
    with pytest.warns(UserWarning, match="holds 10 batches, fewer than steps_per_epoch=15: "
                                         "each epoch ends when they run out, after 10 updates"):
        rbm.fit(data, steps_per_epoch=15, epochs=2, verbose=0)
    assert int(rbm.optimizer.iterations) == 20
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        rbm.fit(data, steps_per_epoch=10, epochs=1, verbose=0)
        rbm.fit(data.repeat(), steps_per_epoch=15, epochs=1, verbose=0)
    assert int(rbm.optimizer.iterations) == 45
    # TensorBoard's weight histograms read sublayers, and an RBM has none.
    with pytest.warns(UserWarning, match="WeightHistograms logs an RBM's weights"):
        rbm.fit(data, epochs=1, verbose=0,
                callbacks=[keras.callbacks.TensorBoard(tmp_path, histogram_freq=1)])


def test_seeds_may_be_numpy_integers_and_nothing_else():
    a, b = keras_dbn.RBM(5, seed=np.int64(3)), keras_dbn.RBM(5, seed=3)
    a.build((None, 7))
    b.build((None, 7))
    np.testing.assert_array_equal(np.asarray(a.kernel), np.asarray(b.kernel))
    assert a.get_config()["seed"] == 3 and type(a.get_config()["seed"]) is int
    assert keras_dbn.DBN([4, 3], seed=np.int32(2)).rbms[1].seed == 3
    for bad in (1.5, "3", True):
        with pytest.raises(ValueError, match="`seed` must be an integer or None"):
            keras_dbn.RBM(5, seed=bad)
        with pytest.raises(ValueError, match="`seed` must be an integer or None"):
            keras_dbn.DBN([4], seed=bad)



def test_seeds_a_random_generator_cannot_hold_are_refused_by_name():
    """Seeds past int64, and seeds whose derived seeds (layer i's seed + i,
    the dropout layers', the unlabelled shuffle's) would pass it, used to
    fail inside TensorFlow with "out-of-range integer"; the largest that fit
    are accepted."""
    for bad in (2**63, -(2**63) - 1):
        with pytest.raises(ValueError, match=r"`seed` must be an integer in \[-2\*\*63, 2\*\*63\)"):
            keras_dbn.RBM(5, seed=bad)
        with pytest.raises(ValueError, match=r"`seed` must be an integer in \[-2\*\*63, 2\*\*63\)"):
            keras_dbn.SupervisedTrainer(keras.Sequential([keras.layers.Dense(2, "softmax")]), seed=bad)
    assert keras_dbn.RBM(5, seed=2**63 - 1).seed == 2**63 - 1
    with pytest.raises(ValueError, match=r"`seed` must be under 2\*\*63 - 2 for 3 layers"):
        keras_dbn.DBN([4, 3, 2], seed=2**63 - 2)
    dbn = keras_dbn.DBN([4, 3], seed=2**63 - 2)
    assert [rbm.seed for rbm in dbn.rbms] == [2**63 - 2, 2**63 - 1]
    dbn.build((None, 5))
    with pytest.raises(ValueError, match=r"`seed` must be under 2\*\*63 - 3 \(the dropout"):
        dbn.to_classifier(2, dropout=0.5, seed=2**63 - 3)
    dbn.to_classifier(2, dropout=0.5, input_dropout=0.1, seed=2**63 - 4)
    x = np.zeros((4, 5), "float32")
    with pytest.raises(ValueError, match=r"`seed` must be under 2\*\*63 - 1, got"):
        keras_dbn.semi_supervised_dataset(x, [0, 1, 0, 1], x, seed=2**63 - 1)
    keras_dbn.semi_supervised_dataset(x, [0, 1, 0, 1], x, seed=2**63 - 2)
    for bad in (2**31, -1, 1.0, None):
        with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 2\*\*31\)"):
            keras_dbn.tuning.DBNHyperModel(3, input_dim=5, seed=bad)

def test_sampling_without_gibbs_steps_returns_where_the_chains_start():
    rbm = make_rbm(6, 4)
    rate = 1.0 / (1.0 + np.exp(-np.asarray(rbm.visible_bias, "float64")))
    means = rbm.sample(5, gibbs_steps=0, seed=0)
    np.testing.assert_allclose(means, np.broadcast_to(rate, (5, 6)), rtol=1e-6)
    states = rbm.sample(2000, gibbs_steps=0, return_mean=False, seed=0)
    assert set(np.unique(states)) <= {0.0, 1.0}
    np.testing.assert_allclose(states.mean(axis=0), rate, atol=0.05)
    start = (np.random.default_rng(0).random((3, 6)) > 0.5).astype("float32")
    np.testing.assert_array_equal(rbm.sample(None, gibbs_steps=0, initial=start), start)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_draws_of_probabilities_near_one_are_right_under_a_mixed_policy(dtype):
    """A sigmoid rounded to bfloat16 is 1 above 1 - 2^-9: a unit with
    p(off) = 0.0015 was never drawn off under mixed_bfloat16. The sampling
    methods draw from float32 means."""
    rbm = keras_dbn.RBM(1, dtype=dtype, seed=0)
    rbm.build((None, 1))
    rbm.kernel.assign([[0.0]])
    rbm.visible_bias.assign([6.5])
    rbm.hidden_bias.assign([6.5])
    p_off = 1 / (1 + np.exp(6.5))
    n = 100_000
    zeros = np.zeros((n, 1), "float32")
    draws = {
        "sample": rbm.sample(n, gibbs_steps=1, return_mean=False, seed=0),
        "gibbs": rbm.gibbs(zeros, steps=1),
        "hidden_given_visible": rbm.hidden_given_visible(zeros, sample=True),
        "visible_given_hidden": rbm.visible_given_hidden(zeros, sample=True),
        "DBN.generate": keras_dbn.DBN([rbm]).generate(n, gibbs_steps=1, return_mean=False,
                                                     seed=1),
    }
    for name, drawn in draws.items():
        off = 1 - float(np.mean(np.asarray(drawn, "float64")))
        # Binomial standard error ~1.2e-4: 5 of them either side.
        assert abs(off - p_off) < 5 * np.sqrt(p_off / n), (name, off, p_off)


def test_fit_refuses_a_checkpoint_it_could_not_save_before_training(tmp_path):
    x = (np.random.default_rng(0).random((40, 5)) < 0.5).astype("float32")
    rbm = keras_dbn.RBM(3, seed=0)
    rbm.compile()
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "rbm.h5"))
    with pytest.raises(ValueError, match=r"would fail at the end of the first epoch"):
        rbm.fit(x, epochs=2, verbose=0, callbacks=[checkpoint])
    assert int(rbm.optimizer.iterations) == 0
    dbn = keras_dbn.DBN([3, 2], seed=0)
    with pytest.raises(ValueError, match=r"would fail at the end of the first epoch"):
        dbn.pretrain(x, epochs=2, verbose=0, callbacks=[checkpoint])
    assert int(dbn.rbms[0].optimizer.iterations) == 0


@pytest.mark.parametrize("trained", [False, True])
def test_an_rbm_saved_compiled_loads_its_optimizer_without_warnings(trained, tmp_path):
    x = (np.random.default_rng(0).random((40, 5)) < 0.5).astype("float32")
    rbm = keras_dbn.RBM(3, seed=0)
    rbm.build((None, 5))
    rbm.compile(optimizer="adam")
    if trained:
        rbm.fit(x, epochs=1, batch_size=10, verbose=0)
    rbm.save(tmp_path / "rbm.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = keras.models.load_model(tmp_path / "rbm.keras")
    assert len(loaded.optimizer.variables) == len(rbm.optimizer.variables)
    for a, b in zip(rbm.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("save_freq", ["epoch", 4])
def test_a_diverged_epoch_leaves_backups_and_checkpoints_of_the_finished_ones(tmp_path,
                                                                              save_freq):
    """The retry the error advises resumes from the backup at the epoch that
    diverged: the backup was neither deleted nor marked past that epoch nor
    left with weights backed up during it (``save_freq=4``), and no
    checkpoint holds the rolled-back weights under its number."""
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")

    def gaussian_rbm():
        rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
        rbm.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        return rbm

    rbm, schedule = gaussian_rbm(), _RateSchedule()
    backup = tmp_path / "backup"
    csv = tmp_path / "log.csv"
    with pytest.raises(FloatingPointError, match="diverged in epoch 3"):
        rbm.fit(x, epochs=4, batch_size=20, verbose=0, callbacks=[
            schedule, keras.callbacks.BackupAndRestore(str(backup), save_freq=save_freq),
            keras.callbacks.ModelCheckpoint(str(tmp_path / "rbm_{epoch}.keras")),
            keras.callbacks.CSVLogger(str(csv))])
    assert sorted(p.name for p in tmp_path.glob("rbm_*")) == ["rbm_1.keras", "rbm_2.keras"]
    assert len(csv.read_text().splitlines()) == 3  # a header, two epochs; the file closed
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "rbm_2.keras").kernel,
                                  schedule.weights[0])
    # A new process at a gentle rate: the backup's weights, from epoch 3.
    seen = []
    resumed = gaussian_rbm()
    resumed.fit(x, epochs=4, batch_size=20, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(backup)),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(
            (epoch, resumed.kernel.numpy().copy())))])
    assert [epoch for epoch, _ in seen] == [2, 3]
    np.testing.assert_array_equal(seen[0][1], schedule.weights[0])
    assert int(resumed.optimizer.iterations) == 4 * 10
    assert all(np.isfinite(w).all() for w in resumed.get_weights())
    assert not backup.exists()  # deleted once the call ends well


def test_bad_values_past_a_datasets_checked_rows_are_named_as_a_possible_cause():
    """A dataset's batches are checked on their first 256 rows: a NaN after
    them made training diverge, and the error blamed the learning rate
    alone. Bad validation arrays are named as such."""
    import tensorflow as tf

    x = (np.random.default_rng(0).random((600, 8)) < 0.3).astype("float32")
    bad = x.copy()
    bad[300, 2] = np.nan
    rbm = keras_dbn.RBM(4, seed=0)
    with pytest.raises(FloatingPointError, match="first 256 rows only"):
        rbm.fit(tf.data.Dataset.from_tensor_slices(bad).batch(600), verbose=0)
    with pytest.raises(FloatingPointError) as error:
        keras_dbn.RBM(4, visible="gaussian", seed=0).fit(
            np.random.default_rng(0).normal(size=(200, 6)).astype("float32"), epochs=3,
            verbose=0, callbacks=[_Sabotage()])
    assert "first 256 rows" not in str(error.value)
    with pytest.raises(ValueError, match="The validation data contains NaN"):
        keras_dbn.RBM(4, seed=0).fit(x, validation_data=bad, verbose=0)
    with pytest.raises(ValueError, match="The validation data: Bernoulli visible units"):
        keras_dbn.RBM(4, seed=0).fit(x, validation_data=x * 2, verbose=0)
    with pytest.raises(ValueError, match="The validation data: RBM data must be numeric"):
        keras_dbn.RBM(4, seed=0).fit(x, validation_data=np.full((5, 8), "a"), verbose=0)
    with pytest.raises(ValueError, match="The validation data: The RBM has 8 visible units, but the data has 6"):
        keras_dbn.RBM(4, seed=0).fit(x, validation_data=x[:, :6], verbose=0)


def test_sample_weights_in_a_dataset_are_ignored_with_a_warning():
    import tensorflow as tf

    x = (np.random.default_rng(0).random((100, 8)) < 0.3).astype("float32")
    weights = np.zeros(100, "float32")
    weights[:10] = 1.0
    rbm = keras_dbn.RBM(4, seed=0)
    with pytest.warns(UserWarning, match=r"sample weights \(x, y, w\), which RBM.fit ignores"):
        rbm.fit(tf.data.Dataset.from_tensor_slices((x, np.zeros(100), weights)).batch(20),
                verbose=0)
    assert int(rbm.optimizer.iterations) == 5  # every batch trained, weights or not


def test_an_rbm_built_by_a_diverging_epoch_raises_the_divergence():
    """Built by its first step (a PyDataset's or a generator's batch), the
    RBM had no weights to put back, and putting back none failed with
    Keras' "set_weights ... length 0" instead of the divergence."""
    x = 50 * np.random.default_rng(0).normal(size=(200, 6)).astype("float32")

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return (x[index * 50:(index + 1) * 50],)

    rbm = keras_dbn.RBM(3, visible="gaussian", seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(1e6))
    with pytest.raises(FloatingPointError, match=r"built by that epoch's first step(.|\n)*"
                                                 r"generator or PyDataset are not checked"):
        rbm.fit(Batches(), epochs=2, verbose=0)


def test_a_diverged_epoch_keeps_the_history_columns_even():
    """The rolled-back epoch was logged without the figures of callbacks
    after the guard (the gap, a scheduler's rate): columns of unequal
    lengths, the gap's last entry another epoch's."""
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")
    rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    with pytest.raises(FloatingPointError, match="diverged in epoch 3"):
        rbm.fit(x, epochs=4, batch_size=20, validation_data=x[:40], verbose=0, callbacks=[
            keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate), _Sabotage()])
    logs = rbm.history.history
    assert {len(values) for values in logs.values()} == {3}
    assert np.isnan(logs["free_energy_gap"][2]) and np.isfinite(logs["free_energy_gap"][:2]).all()
    # An epoch that would not have validated gets no validation figures.
    rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    with pytest.raises(FloatingPointError, match="diverged in epoch 3"):
        rbm.fit(x, epochs=4, batch_size=20, validation_data=x[:40], validation_freq=2,
                verbose=0, callbacks=[_Sabotage()])
    logs = rbm.history.history
    assert len(logs["free_energy"]) == 3 and len(logs["val_free_energy"]) == 1
    assert len(logs["free_energy_gap"]) == 1
    # The first epoch that validates diverged: its gap is NaN, not missing.
    rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    with pytest.raises(FloatingPointError, match="diverged in epoch 3"):
        rbm.fit(x, epochs=4, batch_size=20, validation_data=x[:40], validation_freq=3,
                verbose=0, callbacks=[_Sabotage()])
    gaps = rbm.history.history["free_energy_gap"]
    assert len(gaps) == 1 and np.isnan(gaps[0])


def test_an_overflowing_free_energy_is_a_divergence():
    """Weights of ~1e38 gave a finite reconstruction error but an infinite
    free energy, and training went on."""
    x = (np.random.default_rng(0).random((200, 8)) < 0.3).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(1e38))
    with pytest.raises(FloatingPointError, match="the free energy NaN or infinite"):
        rbm.fit(x, epochs=3, batch_size=20, verbose=0)
    assert all(np.isfinite(w).all() for w in rbm.get_weights())


class _RateSpy(keras.callbacks.Callback):
    """Records each epoch's number and learning rate as it begins."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append((epoch, float(self.model.optimizer.learning_rate.numpy())))


class _Sabotage(keras.callbacks.Callback):
    """Makes the third epoch's updates blow up, the rate left as it is."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            self.model.kernel.assign(self.model.kernel * 1e30)


@pytest.mark.parametrize("retry", ["same model", "new process"])
def test_a_retry_at_a_lower_rate_resumes_from_the_backup_at_that_rate(tmp_path, retry):
    """The backup holds the optimizer's rate, which Keras loaded over the
    lowered one: the retry that the error advises ran at the rate that
    diverged."""
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")

    def gaussian_rbm(rate):
        rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
        rbm.compile(optimizer=keras.optimizers.SGD(rate, momentum=0.9))
        return rbm

    backup = tmp_path / "backup"
    rbm = gaussian_rbm(0.02)
    with pytest.raises(FloatingPointError, match="resumes at that epoch, at the new rate"):
        rbm.fit(x, epochs=4, batch_size=20, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(str(backup)), _Sabotage()])
    if retry == "same model":
        rbm.optimizer.learning_rate.assign(0.002)
    else:
        rbm = gaussian_rbm(0.002)
    spy = _RateSpy()
    rbm.fit(x, epochs=4, batch_size=20, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(str(backup)), spy])
    assert spy.seen == [(2, pytest.approx(0.002)), (3, pytest.approx(0.002))]
    assert not backup.exists()


def test_a_retry_interrupted_before_its_backup_is_saved_again_keeps_its_rate(tmp_path):
    """The marker of a diverged call went at the retry's first epoch end,
    though with an integer ``save_freq`` no backup had been saved since:
    resumed again, the retry ran at the rate that diverged."""
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")

    def gaussian_rbm(rate):
        rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
        rbm.compile(optimizer=keras.optimizers.SGD(rate, momentum=0.9),
                    steps_per_execution=1)
        return rbm

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt

    backup = str(tmp_path / "backup")
    with pytest.raises(FloatingPointError):
        gaussian_rbm(0.02).fit(x, epochs=4, batch_size=20, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(backup, save_freq=1000), _Sabotage()])
    with pytest.raises(KeyboardInterrupt):  # epoch 3 ends with no backup saved
        gaussian_rbm(0.002).fit(x, epochs=4, batch_size=20, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(backup, save_freq=1000), Interrupt()])
    spy = _RateSpy()
    gaussian_rbm(0.002).fit(x, epochs=4, batch_size=20, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(backup, save_freq=1000), spy])
    assert [rate for _, rate in spy.seen] == [pytest.approx(0.002)] * len(spy.seen)


def test_a_resumed_interruption_keeps_the_backups_learning_rate(tmp_path):
    """Only a diverged call's backup gives way to the caller's rate: an
    interrupted one resumes at the rate it had (here lowered by a callback,
    as `ReduceLROnPlateau` would)."""
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")

    class LowerThenInterrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(0.001)
            if epoch == 1:
                raise KeyboardInterrupt

    def gaussian_rbm():
        rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
        rbm.compile(optimizer=keras.optimizers.SGD(0.01))
        return rbm

    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        gaussian_rbm().fit(x, epochs=4, batch_size=20, verbose=0, callbacks=[
            LowerThenInterrupt(), keras.callbacks.BackupAndRestore(backup)])
    spy = _RateSpy()
    gaussian_rbm().fit(x, epochs=4, batch_size=20, verbose=0,
                       callbacks=[keras.callbacks.BackupAndRestore(backup), spy])
    assert spy.seen == [(1, pytest.approx(0.001)), (2, pytest.approx(0.001)),
                        (3, pytest.approx(0.001))]


def test_the_divergence_message_says_when_early_stopping_put_back_its_best_weights():
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")
    rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    schedule = _RateSchedule()
    stop = keras.callbacks.EarlyStopping("reconstruction_error", patience=5,
                                         restore_best_weights=True)
    with pytest.raises(FloatingPointError, match=r"put back the weights of its best epoch"):
        rbm.fit(x, epochs=6, batch_size=20, verbose=0, callbacks=[schedule, stop])
    for best, now in zip(stop.best_weights, rbm.get_weights()):
        np.testing.assert_array_equal(best, now)


def test_a_fit_resumed_by_backup_and_restore_that_diverges_keeps_the_backup(tmp_path):
    """The divergence guard copies the weights when each epoch begins, after
    `BackupAndRestore` has put its backup back: a resumed run that diverges
    at once returns to the backup, not to the new model's random start."""
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.weights = self.model.get_weights()
                raise KeyboardInterrupt

    def gaussian_rbm():
        rbm = keras_dbn.RBM(4, visible="gaussian", seed=0)
        rbm.compile(optimizer=keras.optimizers.SGD(0.01))
        return rbm

    interrupt = Interrupt()
    with pytest.raises(KeyboardInterrupt):
        gaussian_rbm().fit(x, epochs=4, batch_size=20, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(str(tmp_path)), interrupt])

    class Blowup(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(1000.0)

    resumed = gaussian_rbm()
    with pytest.raises(FloatingPointError, match="diverged in epoch 3"):
        resumed.fit(x, epochs=4, batch_size=20, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(str(tmp_path)), Blowup()])
    for backed_up, now in zip(interrupt.weights, resumed.get_weights()):
        np.testing.assert_array_equal(backed_up, now)


def test_reconstruct_under_a_mixed_policy_returns_float32_that_numpy_averages_rightly():
    """It returned bfloat16: NumPy's mean of the squared error, summed in
    bfloat16, came out ~400 times too small."""
    x = (np.random.default_rng(0).random((2000, 12)) < 0.3).astype("float32")
    mixed = keras_dbn.RBM(5, seed=0, dtype="mixed_bfloat16")
    exact = keras_dbn.RBM(5, seed=0)
    for rbm in (mixed, exact):
        rbm.build((None, 12))
    exact.set_weights(mixed.get_weights())
    reconstruction = mixed.reconstruct(x)
    assert keras.backend.standardize_dtype(reconstruction.dtype) == "float32"
    np.testing.assert_allclose(np.asarray(reconstruction), np.asarray(exact.reconstruct(x)),
                               rtol=1e-6, atol=1e-7)
    error = np.mean((np.asarray(reconstruction) - x) ** 2)
    assert error == pytest.approx(np.mean((np.asarray(exact.reconstruct(x), "float64") - x) ** 2),
                                  rel=1e-5)
