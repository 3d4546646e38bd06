"""`SupervisedTrainer`: Keras' fine-tuning with dropout masks drawn outside XLA."""

import json

import keras
import numpy as np
import pytest

import keras_dbn
from classifier_toys import B0, W0, batches, softmax, tiny_classifier
from keras_dbn import SupervisedTrainer
from spies import record_progress


def dropout_classifier(rate=0.5, seed=0):
    """4 -> Dense(6, sigmoid) -> Dropout -> Dense(3, softmax), fixed weights."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(6, activation="sigmoid"),
        keras.layers.Dropout(rate),
        keras.layers.Dense(3, activation="softmax"),
    ])
    return model


def labelled(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, n)


@pytest.mark.parametrize("jit_compile", ["auto", False])
def test_one_sgd_step_without_dropout_is_keras_own(jit_compile):
    """No dropout: the update and logs of Keras' compile/fit with the
    sparse cross-entropy, checked against the closed-form gradient."""
    x, y, _ = batches()
    lr = 0.1
    classifier = tiny_classifier()
    trainer = SupervisedTrainer(classifier)
    trainer.compile(optimizer=keras.optimizers.SGD(lr), jit_compile=jit_compile)
    logs = trainer.train_on_batch(x, y, return_dict=True)
    p = softmax(x.astype("float64") @ W0 + B0)
    onehot = np.eye(3)[y]
    d = (p - onehot) / len(x)
    w, b = classifier.get_weights()
    np.testing.assert_allclose(w, W0 - lr * x.T @ d, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, B0 - lr * d.sum(axis=0), rtol=1e-5, atol=1e-6)
    ce = -np.mean(np.log(p[np.arange(len(y)), y]))
    assert logs["loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["labelled_crossentropy"] == pytest.approx(ce, rel=1e-5)
    assert logs["accuracy"] == pytest.approx(np.mean(p.argmax(axis=1) == y))


def test_drawn_masks_keep_units_at_one_minus_the_rate_and_scale_them():
    trainer = SupervisedTrainer(dropout_classifier(rate=0.3), seed=4)
    trainer.build((None, 4))
    keeps = trainer.dropout_keeps(np.zeros((2000, 4), "float32"))
    assert len(keeps) == 1 and tuple(keeps[0].shape) == (2000, 6)
    keep = np.asarray(keeps[0])
    values = np.unique(keep)
    assert len(values) == 2 and values[0] == 0 and values[1] == pytest.approx(1 / 0.7)
    kept = np.mean(keep > 0)
    assert abs(kept - 0.7) < 4 * np.sqrt(0.7 * 0.3 / keep.size)  # 4 standard errors
    again = SupervisedTrainer(dropout_classifier(rate=0.3), seed=4)
    again.build((None, 4))
    np.testing.assert_array_equal(np.asarray(again.dropout_keeps(np.zeros((2000, 4))))[0], keep)
    assert not np.array_equal(np.asarray(trainer.dropout_keeps(np.zeros((2000, 4))))[0], keep)


def test_a_step_applies_its_masks_exactly():
    """The masked forward pass, loss and SGD update of one step equal a
    float64 computation with the masks the step drew (same seed)."""
    x, y = labelled(8)
    lr = 0.5
    classifier = dropout_classifier(rate=0.5)
    w1, b1, w2, b2 = [w.astype("float64") for w in classifier.get_weights()]
    trainer = SupervisedTrainer(classifier, seed=11)
    trainer.compile(optimizer=keras.optimizers.SGD(lr))
    twin = SupervisedTrainer(dropout_classifier(rate=0.5), seed=11)
    twin.build((None, 4))
    keep = np.asarray(twin.dropout_keeps(x)[0], "float64")  # the masks of the first step
    assert 0 < np.mean(keep > 0) < 1
    logs = trainer.train_on_batch(x, y, return_dict=True)

    hidden = 1 / (1 + np.exp(-(x @ w1 + b1)))
    dropped = hidden * keep
    p = softmax(dropped @ w2 + b2)
    ce = -np.mean(np.log(p[np.arange(len(y)), y]))
    d2 = (p - np.eye(3)[y]) / len(x)
    d1 = (d2 @ w2.T) * keep * hidden * (1 - hidden)
    expected = [w1 - lr * x.T @ d1, b1 - lr * d1.sum(0), w2 - lr * dropped.T @ d2,
                b2 - lr * d2.sum(0)]
    assert logs["loss"] == pytest.approx(ce, rel=1e-5)
    for got, want in zip(classifier.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_xla_and_graph_steps_train_identically_and_match_keras_in_quality():
    """Same seed: the XLA step and the graph step give the same weights over
    several Adam epochs with dropout; both learn a separable problem as
    well as Keras' own fit does."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 3))).argmax(axis=1)  # linearly separable
    weights, accuracies = [], []
    for jit_compile in ("auto", False):
        classifier = dropout_classifier(rate=0.2)
        trainer = SupervisedTrainer(classifier, seed=3)
        trainer.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=jit_compile,
                        steps_per_execution=4)
        trainer.fit(keras_dbn.array_dataset(x, y, batch_size=50, seed=1), epochs=5,
                    verbose=0, shuffle=False)
        weights.append(classifier.get_weights())
        accuracies.append(trainer.evaluate(x, y, verbose=0, return_dict=True)["accuracy"])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    reference = dropout_classifier(rate=0.2)
    reference.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    reference.fit(x, y, batch_size=50, epochs=5, verbose=0)
    keras_accuracy = reference.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    assert keras_accuracy > 0.85
    assert accuracies[0] == pytest.approx(accuracies[1]) and accuracies[0] > keras_accuracy - 0.05


def test_other_classifiers_run_their_own_layers():
    """A functional model, and a Dropout with a noise_shape, are called as
    they are (no drawn masks), and still train."""
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.Dropout(0.2)(keras.layers.Dense(6, activation="sigmoid")(inputs)))
    functional = keras.Model(inputs, outputs)
    shaped = dropout_classifier()
    shaped.layers[1].noise_shape = (None, 1)
    x, y = labelled(60)
    for classifier in (functional, shaped):
        trainer = SupervisedTrainer(classifier, seed=0)
        trainer.compile(optimizer=keras.optimizers.Adam(0.05))
        assert trainer.dropout_keeps(x) is None
        history = trainer.fit(x, y, batch_size=20, epochs=8, verbose=0)
        assert history.history["loss"][-1] < history.history["loss"][0]


def test_logs_match_keras_fit_with_a_smaller_last_batch_and_validation():
    """33 examples in batches of 10: Keras' epoch loss weights each batch's
    by its size; so do the trainer's figures, as its updates are Keras'; the
    training and validation figures carry Keras' names and values."""
    x, y = labelled(33, seed=2)
    x_val, y_val = labelled(17, seed=3)
    trainer = SupervisedTrainer(tiny_classifier())
    trainer.compile(optimizer=keras.optimizers.SGD(0.5))
    history = trainer.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0,
                          validation_data=(x_val, y_val)).history
    reference = tiny_classifier()
    reference.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    keras_history = reference.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0,
                                  validation_data=(x_val, y_val)).history
    # Keras' names, so that TensorBoard and callbacks pair training and validation.
    assert set(history) == set(keras_history) | {"labelled_crossentropy"}
    for name in keras_history:
        np.testing.assert_allclose(history[name], keras_history[name], rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(history["labelled_crossentropy"], keras_history["loss"], rtol=1e-6)


@pytest.mark.parametrize("jit_compile", ["auto", False])
def test_dict_inputs_train_as_the_tensor_in_them(jit_compile):
    """A dataset of `({"inputs": x}, y)`, which Keras' fit takes, trains as
    one of `(x, y)` does: the same masks and updates."""
    import tensorflow as tf

    x, y = labelled()
    weights = []
    for wrap in (lambda x: {"inputs": x}, lambda x: x):
        trainer = SupervisedTrainer(dropout_classifier(), seed=0)
        trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile)
        data = tf.data.Dataset.from_tensor_slices((wrap(x), y)).batch(20)
        assert len(trainer.dropout_keeps(wrap(x))) == 1
        history = trainer.fit(data, epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        weights.append(trainer.classifier.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_and_batches_raise():
    with pytest.raises(ValueError, match="seed"):
        SupervisedTrainer(tiny_classifier(), seed=1.5)
    trainer = SupervisedTrainer(tiny_classifier())
    for given in ({"loss": "mse"}, {"metrics": ["accuracy"]}, {"jit_compile": "xla"}):
        with pytest.raises(ValueError, match="loss|metrics|jit_compile"):
            trainer.compile(optimizer="sgd", **given)
    trainer.compile(optimizer="sgd")
    x_l, y_l, x_u = batches()
    with pytest.raises(ValueError, match="labelled batches"):
        trainer.train_on_batch(((x_l, y_l), x_u))


@pytest.mark.parametrize("jit_compile", ["auto", False])
def test_array_labels_outside_the_classes_raise_before_training(jit_compile):
    x, y = labelled()
    trainer = SupervisedTrainer(dropout_classifier(), seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile)
    before = [w.copy() for w in trainer.classifier.get_weights()]
    for labels, message in (
        (y + 1, r"class labels in \[0, 3\), got labels from 1 to 3"),
        (y - 1, r"class labels in \[0, 3\), got labels from -1 to 1"),
        (keras.utils.to_categorical(y, 3), r"got shape \(40, 3\) \(one-hot labels\?"),
        (y + 0.5, "must hold integer class labels"),
    ):
        for call in (trainer.fit, trainer.evaluate):
            with pytest.raises(ValueError, match=message):
                call(x, labels, verbose=0)
    for w, w0 in zip(trainer.classifier.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    # integral float labels of shape (n, 1) are labels
    trainer.fit(x, y[:, None].astype("float32"), epochs=1, verbose=0)


def test_one_hot_labels_of_a_dataset_are_named_as_labels():
    x, y = labelled()
    trainer = SupervisedTrainer(dropout_classifier(), seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    data = keras_dbn.array_dataset(x, keras.utils.to_categorical(y, 3), batch_size=10)
    for call in (trainer.fit, trainer.evaluate):
        with pytest.raises(ValueError, match=r"one integer class per example.*\(10, 3\).*"
                                             r"one-hot labels\? pass y.argmax"):
            call(data, verbose=0)


def test_callbacks_that_would_fail_or_never_act_are_refused_before_training(tmp_path):
    x, y = labelled()
    trainer = SupervisedTrainer(dropout_classifier(), seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [w.copy() for w in trainer.classifier.get_weights()]
    with pytest.raises(ValueError, match="would fail at the end of the first epoch"):
        trainer.fit(x, y, epochs=2, verbose=0,
                    callbacks=[keras.callbacks.ModelCheckpoint(str(tmp_path / "ck.h5"))])
    with pytest.raises(ValueError, match="EarlyStopping monitors 'val_accuracy'"):
        trainer.fit(x, y, epochs=2, verbose=0,
                    callbacks=[keras.callbacks.EarlyStopping("val_accuracy")])
    for w, w0 in zip(trainer.classifier.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    # With validation data the figure is logged, and the run stops on it.
    history = trainer.fit(x, y, epochs=50, verbose=0, validation_data=(x, y),
                          callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=0)])
    assert len(history.history["val_accuracy"]) < 50


def test_progress_bar_counts_no_further_than_the_epoch(monkeypatch):
    """As an RBM's (tests/test_rbm.py): 100 batches at 32 steps per
    execution showed 128/100 for the last, partial execution."""
    shown = record_progress(monkeypatch)
    x, y = labelled(1000)
    trainer = SupervisedTrainer(dropout_classifier(), seed=5)
    trainer.compile(optimizer="sgd", steps_per_execution=32)
    calls = {
        "fit": lambda: trainer.fit(x, y, batch_size=10, verbose=1, validation_data=(x, y)),
        "evaluate": lambda: trainer.evaluate(x, y, batch_size=10, verbose=1),
        "predict": lambda: trainer.predict(x, batch_size=10, verbose=1),
        # The same options passed by position, in Keras' order.
        "fit by position": lambda: trainer.fit(x, y, 10, 1, 1, None, 0.0, (x, y)),
        "evaluate by position": lambda: trainer.evaluate(x, y, 10, 1),
        "predict by position": lambda: trainer.predict(x, 10, 1),
    }
    for name, call in calls.items():
        shown.clear()
        call()
        assert shown == [(32, 100), (64, 100), (96, 100), (100, 100), (100, 100)], name


def test_options_given_twice_or_too_many_are_refused_as_python_would():
    x, y = labelled(20)
    trainer = SupervisedTrainer(dropout_classifier(), seed=5)
    trainer.compile(optimizer="sgd")
    with pytest.raises(TypeError, match="multiple values for argument 'epochs'"):
        trainer.fit(x, y, 10, 2, epochs=3)
    with pytest.raises(TypeError, match="multiple values for argument 'verbose'"):
        trainer.predict(x, 10, 0, verbose=1)
    with pytest.raises(TypeError, match="takes at most"):
        trainer.evaluate(x, y, 10, 0, None, None, None, False, "extra")
    assert int(trainer.optimizer.iterations) == 0


def test_save_and_load_round_trip(tmp_path):
    x, y = labelled(20)
    trainer = SupervisedTrainer(dropout_classifier(), seed=5)
    trainer.compile(optimizer=keras.optimizers.Adam(0.01))
    trainer.train_on_batch(x, y)
    path = str(tmp_path / "trainer.keras")
    trainer.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is SupervisedTrainer and loaded.seed == 5
    assert json.dumps(loaded.get_config()) == json.dumps(trainer.get_config())
    np.testing.assert_allclose(loaded.predict(x, verbose=0), trainer.predict(x, verbose=0),
                               rtol=1e-6)
    assert int(loaded.optimizer.iterations) == 1
    assert isinstance(loaded.classifier, keras.Sequential)


def test_dataset_labels_outside_the_classes_stop_the_xla_step():
    """Array labels are checked before training; labels that arrive in a
    dataset are checked beside the XLA step, which would otherwise turn
    them into NaN weights without an error."""
    import tensorflow as tf

    x, y = labelled()
    trainer = SupervisedTrainer(dropout_classifier(), seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [w.copy() for w in trainer.classifier.get_weights()]
    for labels in (y + 3, y - 1):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"class labels in \[0, 3\)"):
            trainer.fit(keras_dbn.array_dataset(x, labels, batch_size=20), epochs=1, verbose=0)
    for w, w0 in zip(trainer.classifier.get_weights(), before):
        np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fractional_dataset_labels_stop_training_and_evaluation(jit_compile):
    """Array labels with a fraction are refused before training; in a
    dataset they were cast down (3.5 trained as class 3) while the accuracy,
    comparing them unrounded, read 0."""
    import tensorflow as tf

    x, y = labelled()
    trainer = SupervisedTrainer(dropout_classifier(), seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile)
    before = [w.copy() for w in trainer.classifier.get_weights()]
    halves = tf.data.Dataset.from_tensor_slices((x, y.astype("float32") * 0.5)).batch(20)
    with pytest.raises(tf.errors.InvalidArgumentError, match="with a fraction"):
        trainer.fit(halves, epochs=1, verbose=0)
    for w, w0 in zip(trainer.classifier.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="with a fraction"):
        trainer.evaluate(halves, verbose=0)
    # Whole numbers as floats train as their integers do.
    whole = tf.data.Dataset.from_tensor_slices((x, y.astype("float32"))).batch(20)
    assert trainer.fit(whole, epochs=1, verbose=0).history["accuracy"][0] > 0.0
    with pytest.raises(ValueError, match="holds no examples"):
        trainer.fit(x[:0], y[:0], verbose=0)


def test_data_with_nan_is_refused_before_training():
    """One NaN pixel made every weight NaN within an update, and training
    went on, epoch after epoch."""
    x, y = labelled()
    bad = x.copy()
    bad[3, 1] = np.nan
    trainer = SupervisedTrainer(dropout_classifier(), seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    import tensorflow as tf

    for given in (bad, tf.constant(bad), np.ma.masked_invalid(bad)):
        with pytest.raises(ValueError, match="`x` contains NaN or infinite values"):
            trainer.fit(given, y, verbose=0)
    weights = np.ones(len(y))
    weights[2] = np.nan
    with pytest.raises(ValueError, match="`sample_weight` contains NaN"):
        trainer.fit(x, y, sample_weight=weights, verbose=0)
    with pytest.raises(ValueError, match="validation data contains NaN"):
        trainer.fit(x, y, validation_data=(np.where(bad == bad, bad, np.inf), y), verbose=0)
    with pytest.raises(ValueError, match="validation sample_weight contains NaN"):
        trainer.fit(x, y, validation_data=(x, y, weights), verbose=0)
    for labelled_x, unlabelled_x, name in ((bad, x, "x_labelled"), (x, bad, "x_unlabelled")):
        with pytest.raises(ValueError, match=f"`{name}` contains NaN"):
            keras_dbn.semi_supervised_dataset(labelled_x, y, unlabelled_x, seed=0)
    assert int(trainer.optimizer.iterations) == 0
    trainer.fit(x.astype("float16"), y, verbose=0)  # other float dtypes read as well


def test_a_trainer_without_validation_data_is_told_its_val_figures_need_it():
    trainer = SupervisedTrainer(dropout_classifier(), seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    x, y = labelled()
    with pytest.raises(ValueError, match="monitors 'val_loss'") as error:
        trainer.fit(x, y, callbacks=[keras.callbacks.ReduceLROnPlateau()], verbose=0)
    assert "validation_data" in str(error.value) and "Contrastive" not in str(error.value)


def test_validation_labels_are_checked_before_training():
    x, y = labelled()
    trainer = SupervisedTrainer(dropout_classifier(), seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\), got labels from 3 to 5"):
        trainer.fit(x, y, validation_data=(x, y + 3), verbose=0)
    assert int(trainer.optimizer.iterations) == 0


def test_weighted_evaluation_is_keras_own():
    """The loss of `evaluate` with sample weights (and a regularisation
    penalty) and its accuracy are those of Keras' compiled classifier."""
    x, y = labelled(50, seed=3)
    weights = np.linspace(0, 1, 50).astype("float32")
    weights[:10] = 0  # a batch of zero weights
    for regularizer in (None, keras.regularizers.L2(0.01)):
        keras.utils.set_random_seed(0)
        classifier = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(6, activation="sigmoid", kernel_regularizer=regularizer),
            keras.layers.Dense(3, activation="softmax"),
        ])
        trainer = SupervisedTrainer(classifier)
        trainer.compile(optimizer="sgd")
        loss, accuracy = trainer.evaluate(x, y, sample_weight=weights, batch_size=10, verbose=0)
        classifier.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        keras_loss, keras_accuracy = classifier.evaluate(
            x, y, sample_weight=weights, batch_size=10, verbose=0
        )
        assert loss == pytest.approx(keras_loss, rel=1e-5)
        assert accuracy == pytest.approx(keras_accuracy)


def test_a_sequential_without_an_input_draws_its_masks():
    x, y = labelled()
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([
        keras.layers.Dense(6, activation="sigmoid"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(3, activation="softmax"),
    ])
    trainer = SupervisedTrainer(classifier, seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    keeps = trainer.dropout_keeps(x)
    assert len(keeps) == 1 and tuple(keeps[0].shape) == (40, 6)
    history = trainer.fit(x, y, epochs=2, batch_size=20, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_refused_batches_are_named_for_the_trainer():
    trainer = SupervisedTrainer(tiny_classifier())
    trainer.compile(optimizer="sgd")
    x, _, _ = batches()
    with pytest.raises(ValueError, match=r"expects batches `\(x, y\)` or `\(x, y, sample_weight\)`"):
        trainer.train_on_batch(x)


def test_spatial_dropout_keeps_its_own_channel_masks():
    """SpatialDropout1D subclasses Dropout but drops whole channels: the
    trainer leaves it to its own call instead of drawing element masks."""
    classifier = keras.Sequential([
        keras.Input((8, 4)), keras.layers.SpatialDropout1D(0.5), keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax")])
    trainer = SupervisedTrainer(classifier, seed=0)
    x = np.ones((2, 8, 4), "float32")
    assert trainer.dropout_keeps(x) is None
    trainer.compile(optimizer="sgd")
    history = trainer.fit(x, np.array([0, 1]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("jit_compile", ["auto", False])
def test_integer_inputs_are_scaled_by_the_dropout_keep_as_floats_are(jit_compile):
    """uint8 inputs with a Dropout on the input: the kept ones are scaled by
    1 / (1 - rate) = 1.25, which a mask cast to the inputs' dtype made 1."""
    x = (np.random.default_rng(0).random((8, 4)) > 0.5).astype("uint8")
    y = np.arange(8) % 3
    weights = []
    for data in (x, x.astype("float32")):
        keras.utils.set_random_seed(0)
        classifier = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.2),
                                       keras.layers.Dense(3, activation="softmax")])
        trainer = SupervisedTrainer(classifier, seed=0)
        trainer.compile(optimizer=keras.optimizers.SGD(1.0), jit_compile=jit_compile)
        trainer.fit(data, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        weights.append(classifier.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_array_functions_given_a_dataset_say_so():
    """NumPy read the dataset as a scalar: "holds no examples", "got a scalar"."""
    import tensorflow as tf

    x, y = labelled()
    dataset = tf.data.Dataset.from_tensor_slices(x)
    with pytest.raises(TypeError, match="semi_supervised_dataset takes arrays, not a "
                                        "tf.data.Dataset, for `x_labelled`"):
        keras_dbn.semi_supervised_dataset(dataset, y, x, seed=0)
    with pytest.raises(TypeError, match="for `x_unlabelled`"):
        keras_dbn.semi_supervised_dataset(x, y, dataset, seed=0)
    with pytest.raises(TypeError, match="array_dataset takes arrays, not a tf.data.Dataset"):
        keras_dbn.array_dataset(dataset, batch_size=10)


def test_a_seeded_to_classifier_trains_reproducibly_without_a_trainer_seed():
    """`to_classifier(seed=...)` seeds its Dropout layers, which Keras' own
    `fit` draws from; the trainer drew from an unseeded generator instead."""
    x, y = labelled()
    dbn = keras_dbn.DBN([6, 5], seed=0)
    dbn.build((None, 4))

    def trained():
        classifier = dbn.to_classifier(3, dropout=0.5, seed=7)
        trainer = SupervisedTrainer(classifier)
        trainer.compile(optimizer=keras.optimizers.SGD(0.5))
        trainer.fit(x, y, epochs=2, batch_size=20, shuffle=False, verbose=0)
        return trainer, classifier.get_weights()

    trainer, first = trained()
    assert trainer.seed == 9  # dropout_0's, the first seeded Dropout layer's
    for a, b in zip(first, trained()[1]):
        np.testing.assert_array_equal(a, b)
    assert SupervisedTrainer(dropout_classifier()).seed is None  # unseeded layers
    assert SupervisedTrainer(dbn.to_classifier(3, dropout=0.5, seed=7), seed=1).seed == 1


@pytest.mark.parametrize("jit_compile", ["auto", False])
@pytest.mark.parametrize("trainer_class", [SupervisedTrainer, keras_dbn.VirtualAdversarial])
def test_labels_of_another_rank_in_a_later_call_train_as_the_first(trainer_class, jit_compile):
    """Keras retraces with the labels' rank unknown; the step failed on it."""
    x, y = labelled()
    trainer = trainer_class(dropout_classifier(), seed=0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile)
    trainer.fit(x, y, epochs=1, batch_size=20, verbose=0)
    history = trainer.fit(x, y[:, None], epochs=1, batch_size=20, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert trainer.evaluate(x, y[:, None], verbose=0) == trainer.evaluate(x, y, verbose=0)
