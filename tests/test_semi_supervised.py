"""Pseudo-label fine-tuning (Lee 2013): schedule, exact updates, data, saving."""

import keras
import numpy as np
import pytest

import keras_dbn
from classifier_toys import (
    B0, W0, batches, blob_test_accuracy, check_out_of_range_labels_stop_the_xla_step,
    saved_and_loaded, softmax, tiny_classifier,
)
from keras_dbn import PseudoLabel, pseudo_label_dataset

def manual_loss_and_gradients(w, b, x_l, y_l, x_u, alpha):
    """CE_l + alpha * CE_u with argmax pseudo-labels and its gradient, in float64."""
    w, b = w.astype("float64"), b.astype("float64")
    p_l = softmax(x_l @ w + b)
    p_u = softmax(x_u @ w + b)
    onehot_l = np.eye(3)[y_l]
    onehot_u = np.eye(3)[p_u.argmax(axis=1)]
    ce_l = -np.mean(np.log((p_l * onehot_l).sum(axis=1)))
    ce_u = -np.mean(np.log((p_u * onehot_u).sum(axis=1)))
    # d CE / d logits of a softmax is (p - onehot), averaged over the batch.
    d_l = (p_l - onehot_l) / len(x_l)
    d_u = (p_u - onehot_u) / len(x_u)
    grad_w = x_l.T @ d_l + alpha * x_u.T @ d_u
    grad_b = d_l.sum(axis=0) + alpha * d_u.sum(axis=0)
    return ce_l, ce_u, grad_w, grad_b


def formula(t, alpha_f, t1, t2):
    if t < t1:
        return 0.0
    if t < t2:
        return alpha_f * (t - t1) / (t2 - t1)
    return alpha_f


# ------------------------------------------------------------------ schedule


@pytest.mark.parametrize("t1, t2", [(10, 30), (0, 4), (5, 5)])
def test_alpha_schedule_follows_eq16(t1, t2):
    pseudo = PseudoLabel(tiny_classifier(), alpha=3.0, ramp_start=t1, ramp_end=t2)
    for t in [0, 1, 4, 5, 6, 9, 10, 11, 15, 20, 29, 30, 31, 1000]:
        expected = formula(t, 3.0, t1, t2)
        assert float(pseudo.alpha_at(t)) == pytest.approx(expected, abs=1e-6), t


def test_alpha_logged_during_fit_counts_updates():
    x_l, y_l, x_u = batches()
    pseudo = PseudoLabel(tiny_classifier(), alpha=3.0, ramp_start=1, ramp_end=3)
    pseudo.compile(optimizer=keras.optimizers.SGD(0.01))
    data = pseudo_label_dataset(x_l, y_l, x_u, seed=0)
    history = pseudo.fit(data, steps_per_epoch=1, epochs=5, verbose=0, shuffle=False)
    # Update t (0-based) uses alpha(t): 0, 0, 1.5, 3, 3.
    np.testing.assert_allclose(history.history["alpha"], [0.0, 0.0, 1.5, 3.0, 3.0], atol=1e-6)
    assert int(pseudo.optimizer.iterations) == 5


def test_fit_warns_when_every_update_comes_before_ramp_start():
    import warnings

    x_l, y_l, x_u = batches()
    data = pseudo_label_dataset(x_l, y_l, x_u, seed=0)
    pseudo = PseudoLabel(tiny_classifier(), alpha=3.0, ramp_start=10, ramp_end=20)
    pseudo.compile(optimizer=keras.optimizers.SGD(0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pseudo.fit(data, steps_per_epoch=2, epochs=0, verbose=0)  # no update: nothing to say
    with pytest.warns(UserWarning, match=r"updates 0 to 5, none after update 10 "
                                         r"\(ramp_start=10, ramp_end=20\)"):
        history = pseudo.fit(data, steps_per_epoch=2, epochs=3, verbose=0)
    assert history.history["alpha"] == [0.0, 0.0, 0.0]
    # A finite dataset counts by its length; the count goes on from the
    # updates already applied (6 + 2 * 2 = 10 <= ramp_start).
    with pytest.warns(UserWarning, match=r"updates 6 to 9, none after"):
        pseudo.fit(data.take(2), epochs=2, verbose=0)
    # Update 10, ramp_start itself, still has weight 0 on a ramp (it was not warned of).
    with pytest.warns(UserWarning, match=r"updates 10 to 10, none after update 10"):
        history = pseudo.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    assert history.history["alpha"] == [0.0]
    pseudo.optimizer.iterations.assign(10)
    # Runs that reach ramp_start, and alpha=0 runs, are not warned about.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = pseudo.fit(data, steps_per_epoch=2, epochs=2, verbose=0)
        assert history.history["alpha"][-1] > 0
        quiet = PseudoLabel(tiny_classifier(), alpha=0.0, ramp_start=10, ramp_end=20)
        quiet.compile(optimizer=keras.optimizers.SGD(0.01))
        quiet.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
        # A step (equal bounds) gives update ramp_start its full weight.
        step = PseudoLabel(tiny_classifier(), alpha=3.0, ramp_start=2, ramp_end=2)
        step.compile(optimizer=keras.optimizers.SGD(0.01))
        history = step.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
        assert history.history["alpha"] == [3.0]
    with pytest.warns(UserWarning, match=r"updates 0 to 1, none after update 1"):
        step = PseudoLabel(tiny_classifier(), alpha=3.0, ramp_start=2, ramp_end=2)
        step.compile(optimizer=keras.optimizers.SGD(0.01))
        step.fit(data, steps_per_epoch=2, epochs=1, verbose=0)


@pytest.mark.parametrize("source", ["dataset", "generator"])
def test_fit_on_a_stream_does_not_ask_keras_to_shuffle(source):
    import warnings

    x_l, y_l, x_u = batches()
    data = pseudo_label_dataset(x_l, y_l, x_u, seed=0)
    if source == "generator":
        data = (batch for batch in data.as_numpy_iterator())
    pseudo = PseudoLabel(tiny_classifier(), alpha=3.0, ramp_start=1, ramp_end=3)
    pseudo.compile(optimizer=keras.optimizers.SGD(0.01))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pseudo.fit(data, steps_per_epoch=1, epochs=2, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]
    assert int(pseudo.optimizer.iterations) == 2
    if source == "dataset":
        # A `shuffle` the caller gives reaches Keras unchanged, by name or by position.
        with pytest.warns(UserWarning, match="shuffle"):
            pseudo.fit(data, steps_per_epoch=1, epochs=1, verbose=0, shuffle=True)
        with pytest.warns(UserWarning, match="shuffle"):
            pseudo.fit(data, None, None, 1, 0, None, 0.0, None, True, steps_per_epoch=1)
        assert int(pseudo.optimizer.iterations) == 4


# ------------------------------------------------------------- exact update


def test_one_sgd_step_matches_manual_update():
    x_l, y_l, x_u = batches()
    lr, alpha = 0.1, 2.0
    classifier = tiny_classifier()
    pseudo = PseudoLabel(classifier, alpha=alpha, ramp_start=0, ramp_end=0)
    pseudo.compile(optimizer=keras.optimizers.SGD(lr))
    logs = pseudo.train_on_batch(((x_l, y_l), x_u), return_dict=True)

    ce_l, ce_u, grad_w, grad_b = manual_loss_and_gradients(W0, B0, x_l, y_l, x_u, alpha)
    # The pseudo-labels must be hard (argmax) labels that differ from y_l's
    # pattern, or the check would not test them.
    assert len(set(softmax(x_u @ W0 + B0).argmax(axis=1))) > 1
    w, b = classifier.get_weights()
    np.testing.assert_allclose(w, W0 - lr * grad_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, B0 - lr * grad_b, rtol=1e-5, atol=1e-6)
    assert logs["labelled_crossentropy"] == pytest.approx(ce_l, rel=1e-5)
    assert logs["unlabelled_crossentropy"] == pytest.approx(ce_u, rel=1e-5)
    assert logs["loss"] == pytest.approx(ce_l + alpha * ce_u, rel=1e-5)
    assert logs["alpha"] == pytest.approx(alpha)
    accuracy = np.mean(softmax(x_l @ W0 + B0).argmax(axis=1) == y_l)
    assert logs["accuracy"] == pytest.approx(accuracy)


def test_alpha_zero_ignores_unlabelled_data_and_equals_supervised_training():
    x_l, y_l, x_u = batches()
    results = []
    for unlabelled in (x_u, -3 * x_u + 1):
        classifier = tiny_classifier()
        pseudo = PseudoLabel(classifier, alpha=0.0, ramp_start=0, ramp_end=0)
        pseudo.compile(optimizer=keras.optimizers.SGD(0.1))
        for _ in range(3):
            pseudo.train_on_batch(((x_l, y_l), unlabelled))
        results.append(classifier.get_weights())
    supervised = tiny_classifier()
    supervised.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    for _ in range(3):
        supervised.train_on_batch(x_l, y_l)
    for a, b, c in zip(*results, supervised.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-7)


def test_evaluate_and_predict_take_plain_data():
    x_l, y_l, _ = batches()
    pseudo = PseudoLabel(tiny_classifier())
    pseudo.compile(optimizer="sgd")
    p = softmax(x_l @ W0 + B0)
    np.testing.assert_allclose(pseudo.predict(x_l, verbose=0), p, rtol=1e-5)
    result = pseudo.evaluate(x_l, y_l, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(-np.mean(np.log(p[np.arange(5), y_l])), rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(p.argmax(axis=1) == y_l))


# ------------------------------------------------------------------ dataset


def test_dataset_structure_and_coverage():
    n_l, n_u = 10, 9
    x_l = np.repeat(np.arange(n_l, dtype="float32")[:, None], 4, axis=1)
    y_l = np.arange(n_l) % 3
    x_u = np.repeat(100 + np.arange(n_u, dtype="float32")[:, None], 4, axis=1)
    data = pseudo_label_dataset(x_l, y_l, x_u, labelled_batch_size=4,
                                unlabelled_batch_size=3, seed=1)
    stream = [(xl.numpy(), yl.numpy(), xu.numpy()) for (xl, yl), xu in data.take(10)]
    for xl, yl, xu in stream:
        assert xl.shape == (4, 4) and yl.shape == (4,) and xu.shape == (3, 4)
        np.testing.assert_array_equal(yl, xl[:, 0].astype(int) % 3)  # pairs kept together
    labelled = np.concatenate([s[0][:, 0] for s in stream]).astype(int)
    unlabelled = np.concatenate([s[2][:, 0] for s in stream]).astype(int) - 100
    # Each pass is a permutation and batches run on across passes: the first
    # ceil(10 / 4) = 3 batches hold all 10 labelled examples, 40 draws hold
    # each exactly 4 times; the 30 unlabelled draws are 3 permutations of 9 + 3.
    assert set(labelled[:n_l]) == set(range(n_l))
    assert set(labelled[:12]) == set(range(n_l))
    np.testing.assert_array_equal(np.bincount(labelled, minlength=n_l), [4] * n_l)
    for k in range(3):
        assert sorted(unlabelled[k * n_u:(k + 1) * n_u]) == list(range(n_u))
    passes = [tuple(labelled[k * n_l:(k + 1) * n_l]) for k in range(4)]
    assert len(set(passes)) > 1  # reshuffled between passes
    same_seed = pseudo_label_dataset(x_l, y_l, x_u, labelled_batch_size=4,
                                     unlabelled_batch_size=3, seed=1)
    for ((xl, _), xu), (a, _, b) in zip(same_seed.take(10), stream):
        np.testing.assert_array_equal(xl.numpy(), a)
        np.testing.assert_array_equal(xu.numpy(), b)


def test_dataset_with_fewer_labels_than_batch():
    x_l = np.arange(3, dtype="float32")[:, None]
    data = pseudo_label_dataset(x_l, [0, 1, 2], np.zeros((5, 1), "float32"), seed=0)
    (xl, yl), xu = next(iter(data))
    assert xl.shape == (3, 1) and xu.shape == (5, 1)
    assert sorted(xl.numpy()[:, 0].tolist()) == [0, 1, 2]
    np.testing.assert_array_equal(yl.numpy(), xl.numpy()[:, 0].astype(int))


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": -1.0},
        {"alpha": float("nan")},
        {"alpha": "3"},
        {"alpha": True},
        {"ramp_start": -1},
        {"ramp_start": 1.5},
        {"ramp_start": 10, "ramp_end": 5},
        {"ramp_end": None},
        {"classifier": "not a model"},
    ],
)
def test_bad_arguments_raise(kwargs):
    kwargs = {"classifier": tiny_classifier(), **kwargs}
    with pytest.raises(ValueError):
        PseudoLabel(**kwargs)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((np.zeros((3, 4)), [0, 1], np.zeros((5, 4))), {}),
        ((np.zeros((0, 4)), [], np.zeros((5, 4))), {}),
        ((np.zeros((3, 4)), [0, 1, 2], np.zeros((0, 4))), {}),
        ((np.zeros((3, 4)), [0, 1, 2], np.zeros((5, 3))), {}),
        ((np.zeros((3, 4)), np.eye(3), np.zeros((5, 4))), {}),
        ((np.zeros((3, 4)), [0.5, 1, 2], np.zeros((5, 4))), {}),
        ((np.zeros((3, 4)), [0, -1, 2], np.zeros((5, 4))), {}),
        ((np.zeros((3, 4)), [0, 1, 2], np.zeros((5, 4))), {"labelled_batch_size": 0}),
        ((np.zeros((3, 4)), [0, 1, 2], np.zeros((5, 4))), {"unlabelled_batch_size": 2.0}),
    ],
)
def test_bad_dataset_arguments_raise(args, kwargs):
    with pytest.raises(ValueError):
        pseudo_label_dataset(*args, **kwargs)


def test_plain_batches_in_fit_raise():
    x_l, y_l, _ = batches()
    pseudo = PseudoLabel(tiny_classifier())
    pseudo.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="x_labelled, y_labelled"):
        pseudo.fit(x_l, y_l, epochs=1, verbose=0)


def test_dataset_labels_outside_the_classes_stop_the_xla_step():
    pseudo = PseudoLabel(tiny_classifier(), ramp_start=0, ramp_end=0)
    check_out_of_range_labels_stop_the_xla_step(pseudo)
    x_l, y_l, x_u = batches()  # labels in range train on
    pseudo.fit(pseudo_label_dataset(x_l, y_l, x_u, seed=0), steps_per_epoch=2, verbose=0)
    assert int(pseudo.optimizer.iterations) == 2


def test_compile_refuses_a_loss_or_metrics():
    pseudo = PseudoLabel(tiny_classifier())
    for kwargs in ({"loss": "mse"}, {"metrics": ["accuracy"]}):
        with pytest.raises(ValueError, match=f"PseudoLabel minimises its own loss.*`{next(iter(kwargs))}`"):
            pseudo.compile(optimizer="sgd", **kwargs)
    with pytest.raises(ValueError, match="jit_compile"):
        pseudo.compile(optimizer="sgd", jit_compile="xla")


def test_an_endless_dataset_needs_steps_per_epoch():
    x_l, y_l, x_u = batches()
    pseudo = PseudoLabel(tiny_classifier(), ramp_start=0, ramp_end=4)
    pseudo.compile(optimizer="sgd")
    data = pseudo_label_dataset(x_l, y_l, x_u, seed=0)
    with pytest.raises(ValueError, match="PseudoLabel.fit: the dataset never ends.*steps_per_epoch"):
        pseudo.fit(data, epochs=1, verbose=0)
    assert int(pseudo.optimizer.iterations) == 0
    pseudo.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
    assert int(pseudo.optimizer.iterations) == 2


def test_classifiers_must_end_in_softmax():
    logits = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="last layer 'dense.*' has activation 'linear'"):
        PseudoLabel(logits)
    with pytest.raises(ValueError, match="activation 'sigmoid'"):
        keras_dbn.SupervisedTrainer(
            keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")]))
    PseudoLabel(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Softmax()]))


def _ending_in(*layers, functional=False):
    if functional:
        outputs = inputs = keras.Input((4,))
        for layer in layers:
            outputs = layer(outputs)
        return keras.Model(inputs, outputs)
    return keras.Sequential([keras.Input((4,)), *layers])


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("layers, refused", [
    ([keras.layers.Dense(3), keras.layers.ReLU()], "'re_lu.*' has activation 'relu'"),
    ([keras.layers.Dense(3), keras.layers.LeakyReLU()], "activation 'leaky_relu'"),
    ([keras.layers.Dense(3), keras.layers.ELU()], "activation 'elu'"),
    ([keras.layers.Dense(3), keras.layers.PReLU()], "activation 'prelu'"),
    ([keras.layers.Dense(3), keras.layers.Dropout(0.5)],
     r"'dense.*' \(followed by 'dropout.*'\) has activation 'linear'"),
    ([keras.layers.Dense(3, "relu"), keras.layers.GaussianNoise(0.1), keras.layers.Dropout(0.5)],
     r"'dense.*' \(followed by 'gaussian_noise.*', 'dropout.*'\) has activation 'relu'"),
    ([keras.layers.Dense(3), keras.layers.Softmax(), keras.layers.ReLU()], "activation 'relu'"),
    ([keras.layers.Dense(3, "softmax"), keras.layers.Dropout(0.5)], None),
    ([keras.layers.Dense(3), keras.layers.Softmax(), keras.layers.AlphaDropout(0.1)], None),
    ([keras.layers.Dense(3), keras.layers.Activation("softmax"), keras.layers.Identity()], None),
])
def test_the_layer_that_decides_the_output_is_judged(layers, refused, functional):
    """Activation layers are judged like activations; layers that are the
    identity at inference are looked through."""
    model = _ending_in(*(layer.__class__.from_config(layer.get_config()) for layer in layers),
                       functional=functional)
    if refused:
        with pytest.raises(ValueError, match=refused):
            PseudoLabel(model)
    else:
        PseudoLabel(model)


# ----------------------------------------------------------------- saving


def test_save_and_load_round_trip(tmp_path):
    pseudo = PseudoLabel(tiny_classifier(), alpha=1.5, ramp_start=2, ramp_end=7, name="pl")
    loaded = saved_and_loaded(pseudo, tmp_path / "pseudo.keras")
    assert (loaded.alpha, loaded.ramp_start, loaded.ramp_end) == (1.5, 2, 7)
    assert keras_dbn.semi_supervised.PseudoLabel is PseudoLabel
    assert keras_dbn.pseudo_label_dataset is keras_dbn.semi_supervised_dataset


# ---------------------------------------------------------- real behaviour


def test_pseudo_labels_move_the_boundary_into_the_gap():
    # From the four off-centre labelled points alone the boundary lies inside
    # class 0's cluster (about 89% test accuracy); the pseudo-labels pull it
    # into the low-density gap at x = 0 (about 99%). Same start, batches and
    # updates.
    accuracy = {}
    for alpha in (0.0, 3.0):
        classifier = keras.Sequential(
            [keras.Input((2,)), keras.layers.Dense(2, activation="softmax")]
        )
        classifier.set_weights([np.zeros((2, 2), "float32"), np.zeros(2, "float32")])
        accuracy[alpha] = blob_test_accuracy(
            PseudoLabel(classifier, alpha=alpha, ramp_start=100, ramp_end=200))
    assert accuracy[0.0] < 0.93
    assert accuracy[3.0] > 0.97
    assert accuracy[3.0] > accuracy[0.0] + 0.05


def test_evaluate_and_validation_read_arrays_in_order_with_any_batch_size(monkeypatch):
    """Arrays handed to `evaluate` and as ``validation_data`` are read as
    unshuffled batches without tf.data's autotuning
    (`array_input.evaluation_input`), as is the training stream: the same
    figures as one whole batch, and a validation pass that reports them."""
    import tensorflow as tf

    autotuned = []
    real = tf.data.Dataset.__iter__
    monkeypatch.setattr(tf.data.Dataset, "__iter__", lambda ds: autotuned.append(
        ds.options().autotune.enabled is not False) or real(ds))
    x_l, y_l, _ = batches()
    pseudo = PseudoLabel(tiny_classifier())
    pseudo.compile(optimizer="sgd")
    whole = pseudo.evaluate(x_l, y_l, batch_size=len(x_l), verbose=0, return_dict=True)
    assert autotuned and not any(autotuned)
    split = pseudo.evaluate(x_l, y_l, batch_size=2, verbose=0, return_dict=True)
    assert split == pytest.approx(whole, rel=1e-5)
    np.testing.assert_allclose(pseudo.predict(x_l, batch_size=2, verbose=0),
                               softmax(x_l @ W0 + B0), rtol=1e-5)
    pseudo = PseudoLabel(tiny_classifier(), alpha=0.0)
    pseudo.compile(optimizer=keras.optimizers.SGD(0.0))  # weights stay W0, B0
    data = pseudo_label_dataset(x_l, y_l, x_l, labelled_batch_size=5, unlabelled_batch_size=5)
    history = pseudo.fit(data, steps_per_epoch=1, epochs=1, verbose=0,
                         validation_data=(x_l, y_l), validation_batch_size=2)
    assert history.history["val_accuracy"][0] == pytest.approx(whole["accuracy"])
    assert history.history["val_loss"][0] == pytest.approx(whole["loss"], rel=1e-5)
    assert not any(autotuned)  # nor the training stream
