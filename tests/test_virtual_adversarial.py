"""Virtual adversarial training (Miyato et al. 2019): perturbation, exact updates, saving."""

import keras
import numpy as np
import pytest

import keras_dbn
from classifier_toys import (
    B0, W0, batches, blob_test_accuracy, check_out_of_range_labels_stop_the_xla_step,
    saved_and_loaded, softmax, tiny_classifier,
)
from keras_dbn import VirtualAdversarial, semi_supervised_dataset
from keras_dbn.virtual_adversarial import kl_divergence


# ------------------------------------------------------------ perturbation


def test_perturbation_follows_the_top_eigenvector_of_the_divergence_hessian():
    # For a linear softmax classifier, KL(p(x) || p(x + r)) = r^T H r / 2 +
    # O(|r|^3) with H = W (diag(p) - p p^T) W^T; the power iteration must
    # converge to H's top eigenvector, per example, scaled to norm epsilon
    # over all of the example's axes (here a 2 x 2 "image").
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 2, 2)).astype("float32")
    vat = VirtualAdversarial(tiny_classifier(input_shape=(2, 2)), epsilon=1.5, xi=1e-3,
                             power_iterations=30, seed=0)
    r = np.asarray(vat.virtual_adversarial_perturbation(x)).reshape(6, 4)
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.5, rtol=1e-5)
    p = softmax(x.reshape(6, 4) @ W0 + B0)
    for i in range(6):
        hessian = W0 @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ W0.T
        values, vectors = np.linalg.eigh(hessian)
        assert values[-1] > 1.5 * values[-2]  # a clear top direction to find
        assert abs(r[i] @ vectors[:, -1]) / 1.5 > 0.9999

    # One iteration from a random start is only a step towards it, but the
    # default probe length still finds a direction the divergence rises along.
    vat = VirtualAdversarial(tiny_classifier(), epsilon=1.5, seed=0)
    x = x.reshape(6, 4)
    r = np.asarray(vat.virtual_adversarial_perturbation(x))
    random = rng.normal(size=r.shape)
    random *= 1.5 / np.linalg.norm(random, axis=1, keepdims=True)
    model = vat.classifier

    def divergence(shift):
        return float(kl_divergence(p, model(x + shift.astype("float32"))))

    assert divergence(r) > 1.5 * divergence(random)


def test_unit_of_a_zero_row_is_zero_under_xla_too():
    # XLA merged the two divisions of the old normalisation into one by the
    # product of its guards (1e-30 * 1e-12), which underflowed: NaN.
    import tensorflow as tf

    from keras_dbn.virtual_adversarial import _unit

    d = np.zeros((3, 2, 4), "float32")
    d[1] = 1e-20
    d[2] = np.arange(8).reshape(2, 4)
    for unit in (_unit, tf.function(_unit, jit_compile=True)):
        u = np.asarray(unit(d))
        np.testing.assert_array_equal(u[0], 0.0)
        np.testing.assert_allclose(np.linalg.norm(u[1:].reshape(2, 8), axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(u[2], d[2] / np.linalg.norm(d[2]), rtol=1e-6)


@pytest.mark.parametrize("kernel", ["small", "zero"])
def test_every_example_gets_norm_epsilon_and_xla_training_stays_finite(kernel):
    # With small weights the probe of length xi moves the logits by less
    # than the float32 resolution of the probabilities: the divergence of
    # the probabilities had a gradient of exactly 0 (rows of norm 0, and NaN
    # under XLA), that of the logits has not. Where nothing moves the output
    # (a zero kernel) the gradient is 0 and the random start is kept.
    import tensorflow as tf

    x_l, y_l, x_u = batches()
    weights = (W0 * 1e-3, B0) if kernel == "small" else (np.zeros_like(W0), B0)
    vat = VirtualAdversarial(tiny_classifier(weights), epsilon=1.5, seed=0)
    xla = tf.function(vat.virtual_adversarial_perturbation, jit_compile=True)
    for r in (vat.virtual_adversarial_perturbation(x_u), xla(x_u)):
        np.testing.assert_allclose(np.linalg.norm(np.asarray(r), axis=1), 1.5, rtol=1e-5)
    vat.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    history = vat.fit(semi_supervised_dataset(x_l, y_l, x_u, seed=0), steps_per_epoch=2,
                      epochs=1, verbose=0)
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert all(np.isfinite(w).all() for w in vat.classifier.get_weights())


def test_kl_divergence_matches_the_formula():
    p = softmax(np.array([[0.2, 1.0, -0.5], [2.0, 0.0, 0.1]]))
    q = softmax(np.array([[0.0, 0.7, 0.3], [1.0, 1.0, -1.0]]))
    expected = np.mean(np.sum(p * np.log(p / q), axis=1))
    assert float(kl_divergence(p, q)) == pytest.approx(expected, rel=1e-5)
    assert float(kl_divergence(p, p)) == pytest.approx(0.0, abs=1e-7)


# ------------------------------------------------------------- exact update


def manual_update(x_l, y_l, x_u, r, weight, lr):
    """One SGD step on CE_l + weight * KL(p(x_u) || p(x_u + r)), r fixed."""
    w, b = W0.astype("float64"), B0.astype("float64")
    p_l = softmax(x_l @ w + b)
    p_u = softmax(x_u @ w + b)
    q = softmax((x_u + r) @ w + b)
    onehot = np.eye(3)[y_l]
    ce = -np.mean(np.log((p_l * onehot).sum(axis=1)))
    lds = np.mean(np.sum(p_u * np.log(p_u / q), axis=1))
    # d KL(p || softmax(z)) / dz = softmax(z) - p, with p held constant.
    d_l = (p_l - onehot) / len(x_l)
    d_u = weight * (q - p_u) / len(x_u)
    grad_w = x_l.T @ d_l + (x_u + r).T @ d_u
    grad_b = d_l.sum(axis=0) + d_u.sum(axis=0)
    return w - lr * grad_w, b - lr * grad_b, ce, lds


@pytest.mark.parametrize("semi_supervised", [True, False])
def test_one_sgd_step_matches_manual_update(semi_supervised):
    x_l, y_l, x_u = batches()
    if not semi_supervised:  # (x, y) batches: the smoothness term on x itself
        x_u = x_l
    lr, weight = 0.1, 2.0
    # The same seed draws the same probe direction, so a twin model gives r.
    twin = VirtualAdversarial(tiny_classifier(), epsilon=0.8, weight=weight, seed=3)
    r = np.asarray(twin.virtual_adversarial_perturbation(x_u), dtype="float64")
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 0.8, rtol=1e-5)

    classifier = tiny_classifier()
    vat = VirtualAdversarial(classifier, epsilon=0.8, weight=weight, seed=3)
    vat.compile(optimizer=keras.optimizers.SGD(lr))
    batch = ((x_l, y_l), x_u) if semi_supervised else (x_l, y_l)
    logs = vat.train_on_batch(*([batch] if semi_supervised else batch), return_dict=True)

    w_new, b_new, ce, lds = manual_update(x_l, y_l, x_u, r, weight, lr)
    w, b = classifier.get_weights()
    np.testing.assert_allclose(w, w_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, b_new, rtol=1e-5, atol=1e-6)
    assert lds > 1e-3  # the smoothness term is not negligible in this check
    assert logs["labelled_crossentropy"] == pytest.approx(ce, rel=1e-5)
    assert logs["lds"] == pytest.approx(lds, rel=1e-4)
    assert logs["loss"] == pytest.approx(ce + weight * lds, rel=1e-5)
    accuracy = np.mean(softmax(x_l @ W0 + B0).argmax(axis=1) == y_l)
    assert logs["accuracy"] == pytest.approx(accuracy)


def test_weight_zero_with_sample_weights_equals_keras_supervised_training():
    x_l, y_l, _ = batches()
    sample_weight = np.array([1.0, 0.0, 2.0, 0.5, 1.0], dtype="float32")
    classifier = tiny_classifier()
    vat = VirtualAdversarial(classifier, weight=0.0, seed=0)
    vat.compile(optimizer=keras.optimizers.SGD(0.1))
    supervised = tiny_classifier()
    supervised.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    for _ in range(3):
        vat.train_on_batch(x_l, y_l, sample_weight=sample_weight)
        supervised.train_on_batch(x_l, y_l, sample_weight=sample_weight)
    for a, b in zip(classifier.get_weights(), supervised.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_fit_on_arrays_and_on_the_semi_supervised_stream_logs_every_term():
    x_l, y_l, x_u = batches()
    vat = VirtualAdversarial(tiny_classifier(), epsilon=0.5, seed=0)
    vat.compile(optimizer=keras.optimizers.Adam(0.01))
    history = vat.fit(x_l, y_l, batch_size=5, epochs=2, verbose=0)
    data = semi_supervised_dataset(x_l, y_l, x_u, seed=0)
    history_u = vat.fit(data, steps_per_epoch=3, epochs=2, verbose=0, shuffle=False)
    for logs in (history.history, history_u.history):
        assert set(logs) == {"loss", "labelled_crossentropy", "lds", "accuracy"}
        assert all(np.isfinite(v).all() and len(v) == 2 for v in logs.values())
        assert min(logs["lds"]) > 0
    assert int(vat.optimizer.iterations) == 2 + 6
    result = vat.evaluate(x_l, y_l, verbose=0, return_dict=True)
    p = vat.predict(x_l, verbose=0)
    assert result["accuracy"] == pytest.approx(np.mean(p.argmax(axis=1) == y_l))


def test_dataset_labels_outside_the_classes_stop_the_xla_step():
    check_out_of_range_labels_stop_the_xla_step(VirtualAdversarial(tiny_classifier(), seed=0))


def test_compile_refuses_a_loss_or_metrics():
    vat = VirtualAdversarial(tiny_classifier())
    for kwargs in ({"loss": "mse"}, {"metrics": ["accuracy"]}):
        with pytest.raises(ValueError, match="VirtualAdversarial minimises its own loss"):
            vat.compile(optimizer="sgd", **kwargs)


def test_unlabelled_batches_without_labels_raise():
    x_l, _, _ = batches()
    vat = VirtualAdversarial(tiny_classifier())
    vat.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="x_labelled, y_labelled"):
        vat.fit(x_l, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="x_labelled, y_labelled"):
        vat.fit(x_l, sample_weight=np.ones(len(x_l)), epochs=1, verbose=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epsilon": 0.0},
        {"epsilon": -1.0},
        {"epsilon": float("inf")},
        {"epsilon": "2"},
        {"xi": 0.0},
        {"weight": -0.5},
        {"weight": float("nan")},
        {"power_iterations": 0},
        {"power_iterations": 1.0},
        {"seed": 1.5},
        {"classifier": "not a model"},
    ],
)
def test_bad_arguments_raise(kwargs):
    kwargs = {"classifier": tiny_classifier(), **kwargs}
    with pytest.raises(ValueError):
        VirtualAdversarial(**kwargs)


# ----------------------------------------------------------------- saving


def test_save_and_load_round_trip(tmp_path):
    vat = VirtualAdversarial(tiny_classifier(), epsilon=1.2, xi=1e-5, weight=0.7,
                             power_iterations=2, seed=4, name="vat")
    loaded = saved_and_loaded(vat, tmp_path / "vat.keras")
    assert (loaded.epsilon, loaded.xi, loaded.weight, loaded.power_iterations, loaded.seed) == (
        1.2, 1e-5, 0.7, 2, 4)
    assert keras_dbn.virtual_adversarial.VirtualAdversarial is VirtualAdversarial


# ---------------------------------------------------------- real behaviour


def test_smoothness_on_unlabelled_data_moves_the_boundary_into_the_gap():
    # As for pseudo-labels: from the four off-centre labelled points alone a
    # small network puts the boundary inside class 0's cluster (about 94%
    # test accuracy); the smoothness term on the unlabelled points, which
    # penalises a prediction that changes within epsilon of a point, pushes
    # it into the low-density gap at x = 0 (about 99.8%). (A linear softmax
    # can instead lower the term by shrinking its weights, so the check
    # needs a hidden layer.)
    accuracy = {}
    for weight in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        classifier = keras.Sequential([
            keras.Input((2,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(2, activation="softmax"),
        ])
        accuracy[weight] = blob_test_accuracy(
            VirtualAdversarial(classifier, epsilon=1.0, weight=weight, seed=0))
    assert accuracy[0.0] < 0.96
    assert accuracy[1.0] > 0.99


def test_a_classifier_computing_in_16_bits_is_refused():
    """A probe of length xi (1e-6) is below bfloat16's resolution: the power
    iteration returned the same direction of rounding errors whatever the
    seed or number of steps."""
    dbn = keras_dbn.DBN([5], seed=0)
    dbn.build((None, 4))
    for policy in ("mixed_bfloat16", "mixed_float16"):
        with pytest.raises(ValueError, match="computes in float32, but layers of this one "
                                             "compute in (b)?float16"):
            VirtualAdversarial(dbn.to_classifier(3, dtype=policy))
    VirtualAdversarial(dbn.to_classifier(3, dtype="float32"))


def test_a_float32_classifier_is_accepted_and_loads_under_a_mixed_global_policy(tmp_path):
    """Its model and input layer take the global policy but compute nothing."""
    dbn = keras_dbn.DBN([5], seed=0)
    dbn.build((None, 4))
    path = str(tmp_path / "vat.keras")
    VirtualAdversarial(dbn.to_classifier(3, dtype="float32"), seed=0).save(path)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        VirtualAdversarial(dbn.to_classifier(3, dtype="float32"), seed=0)
        assert isinstance(keras.models.load_model(path), VirtualAdversarial)
        with pytest.raises(ValueError, match="compute in bfloat16"):
            VirtualAdversarial(dbn.to_classifier(3))  # the global policy's
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("trainer", ["pseudo_label", "vat"])
def test_class_weight_with_labelled_and_unlabelled_batches_is_refused(trainer):
    x_l, y_l = np.zeros((6, 4), "float32"), np.array([0, 1, 2, 0, 1, 2])
    data = semi_supervised_dataset(x_l, y_l, np.zeros((20, 4), "float32"), seed=0)
    model = (keras_dbn.PseudoLabel(tiny_classifier(), ramp_start=0, ramp_end=1)
             if trainer == "pseudo_label"
             else VirtualAdversarial(tiny_classifier(), seed=0))
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"cannot apply `class_weight` to batches"):
        model.fit(data, steps_per_epoch=2, class_weight={0: 1.0, 1: 2.0, 2: 1.0}, verbose=0)
    assert int(model.optimizer.iterations) == 0
