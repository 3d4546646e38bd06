"""State saved beside the Keras variables (`keras_dbn.extra_state`): the
random streams of the layers inside a model, which Keras does not save."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dbn
from classifier_toys import batches
from keras_dbn import extra_state
from keras_dbn.extra_state import ExtraStateMixin


def _dropout_classifier():
    """4 -> 8 -> 3 softmax with a seeded Dropout layer between, fixed weights."""
    init = keras.initializers.GlorotUniform(seed=0)
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu", kernel_initializer=init),
        keras.layers.Dropout(0.5, seed=3),
        keras.layers.Dense(3, activation="softmax", kernel_initializer=init),
    ], name="classifier")


def _trainer(kind, classifier):
    if kind == "PseudoLabel":  # the unlabelled term counts from the first update
        return keras_dbn.PseudoLabel(classifier, alpha=1.0, ramp_start=0, ramp_end=0)
    return keras_dbn.VirtualAdversarial(classifier, seed=1)


def _data():
    x_l, y_l, x_u = batches()
    return tf.data.Dataset.from_tensors(((x_l, y_l), x_u)).repeat(3)


def _dropout_states(model):
    return [keras.ops.convert_to_numpy(layer.seed_generator.state)
            for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.Dropout)]


def test_a_loaded_trainer_with_dropout_trains_on_exactly_as_the_saved_one(tmp_path):
    # Keras saves no SeedGenerator state; before the layers' states were
    # saved here, the loaded classifier's dropout masks restarted.
    # (VirtualAdversarial: tests/test_keras_conventions.py.)
    trainer = _trainer("PseudoLabel", _dropout_classifier())
    trainer.compile(optimizer="sgd")
    trainer.fit(_data(), epochs=1, verbose=0)
    trainer.save(tmp_path / "trainer.keras")
    loaded = keras.models.load_model(tmp_path / "trainer.keras")
    for each in (trainer, loaded):
        each.fit(_data(), epochs=1, verbose=0)
    for a, b in zip(trainer.classifier.get_weights(), loaded.classifier.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_dropout_states(trainer), _dropout_states(loaded)):
        np.testing.assert_array_equal(a, b)


def test_layers_of_the_same_name_in_nested_models_keep_their_own_streams(tmp_path):
    def block(name, seed):
        return keras.Sequential([keras.layers.Dense(4, activation="relu"),
                                 keras.layers.Dropout(0.5, seed=seed, name="dropout")],
                                name=name)

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="softmax")(
        block("second", 8)(block("first", 7)(inputs)))
    trainer = keras_dbn.PseudoLabel(keras.Model(inputs, outputs, name="classifier"),
                                    ramp_start=0)
    names = [name for name in trainer._extra_state() if name.startswith("seed_generator_state:")
             and name != "seed_generator_state:order"]
    assert names == ["seed_generator_state:classifier.first.dropout:0",
                     "seed_generator_state:classifier.second.dropout:0"]
    trainer.compile(optimizer="sgd")
    trainer.fit(_data(), epochs=1, verbose=0)
    trainer.save(tmp_path / "nested.keras")
    loaded = keras.models.load_model(tmp_path / "nested.keras")
    saved = _dropout_states(trainer)
    assert not np.array_equal(*saved)  # distinct streams, each back in its own layer
    for a, b in zip(saved, _dropout_states(loaded)):
        np.testing.assert_array_equal(a, b)


def test_files_saved_without_the_layers_streams_still_load(tmp_path, monkeypatch):
    trainer = _trainer("VirtualAdversarial", _dropout_classifier())
    trainer.compile(optimizer="sgd")
    trainer.fit(_data(), epochs=1, verbose=0)
    with monkeypatch.context() as patch:  # as saved before the layers' entries existed
        patch.setattr(ExtraStateMixin, "_extra_state", lambda self: {
            "seed_generator_state": keras.ops.convert_to_numpy(self.seed_generator.state)})
        trainer.save(tmp_path / "old.keras")
    loaded = keras.models.load_model(tmp_path / "old.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.seed_generator.state),
                                  keras.ops.convert_to_numpy(trainer.seed_generator.state))
    for a, b in zip(trainer.classifier.get_weights(), loaded.classifier.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The Dropout layer's stream starts where a new one does, as it used to.
    np.testing.assert_array_equal(_dropout_states(loaded)[0],
                                  _dropout_states(_dropout_classifier())[0])


def _two_dropout_classifier(names=(None, None)):
    """4 -> 8 -> 3 softmax with two Dropout layers of distinct seeds."""
    init = keras.initializers.GlorotUniform(seed=0)
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu", kernel_initializer=init),
        keras.layers.Dropout(0.5, seed=3, name=names[0]),
        keras.layers.Dropout(0.5, seed=4, name=names[1]),
        keras.layers.Dense(3, activation="softmax", kernel_initializer=init),
    ], name="classifier")


def test_training_resumed_by_backup_and_restore_in_the_same_process_is_uninterrupted(tmp_path):
    # Each new model's layers are named anew (dropout_1, dropout_2, ...):
    # the Dropout stream saved under the old name was dropped, silently.
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("interrupted")

    def fit(callbacks):
        trainer = _trainer("PseudoLabel", _dropout_classifier())
        trainer.compile(optimizer="adam")
        trainer.fit(_data(), epochs=3, verbose=0, callbacks=callbacks)
        return trainer

    uninterrupted = fit([])
    with pytest.raises(RuntimeError, match="interrupted"):
        fit([keras.callbacks.BackupAndRestore(tmp_path), Interrupt()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        resumed = fit([keras.callbacks.BackupAndRestore(tmp_path)])
    for a, b in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_layer_streams_load_by_position_into_a_model_named_otherwise(tmp_path):
    # Saved walk order (b, a) is not the sorted-name order HDF5 lists them in.
    trainer = _trainer("PseudoLabel", _two_dropout_classifier(names=("b", "a")))
    trainer.compile(optimizer="sgd")
    trainer.fit(_data(), epochs=1, verbose=0)
    trainer.save_weights(tmp_path / "trainer.weights.h5")
    fresh = _trainer("PseudoLabel", _two_dropout_classifier())  # dropout_<n>, dropout_<n+1>
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fresh.load_weights(tmp_path / "trainer.weights.h5")
    saved = _dropout_states(trainer)
    assert not np.array_equal(*saved)
    for a, b in zip(saved, _dropout_states(fresh)):
        np.testing.assert_array_equal(a, b)


def test_layer_streams_that_match_no_layer_are_reported_not_dropped(tmp_path):
    trainer = _trainer("PseudoLabel", _dropout_classifier())
    trainer.save_weights(tmp_path / "one.weights.h5")
    other = _trainer("PseudoLabel", _two_dropout_classifier())
    with pytest.warns(UserWarning,
                      match=r"were not restored.*holds 1 of them and this model has 2"):
        other.load_weights(tmp_path / "one.weights.h5")


def test_full_model_checkpoints_in_hdf5_are_refused_before_training():
    check = extra_state.check_checkpoint_formats
    checkpoint = keras.callbacks.ModelCheckpoint
    rbm = keras_dbn.RBM(3)
    with pytest.raises(ValueError, match=r"'ck.h5'\) would fail at the end of the first epoch"):
        check([None, checkpoint("ck.h5")], rbm)
    with pytest.raises(ValueError, match="after the first 10 batches"):
        check([checkpoint("ck.h5", save_freq=10)], rbm)
    check(None, rbm)
    check([checkpoint("ck.keras"), checkpoint("ck.weights.h5", save_weights_only=True)], rbm)
    check([checkpoint("ck.h5")], keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def _supervised_trainer():
    trainer = keras_dbn.SupervisedTrainer(_dropout_classifier())
    trainer.compile(optimizer="adam")
    return trainer


def test_a_trainer_saved_untrained_loads_without_an_optimizer_warning(tmp_path):
    # Its optimizer was built before Keras loaded the saved, unbuilt one's
    # two variables: "Skipping variable loading for optimizer ...".
    _supervised_trainer().save(tmp_path / "untrained.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras.models.load_model(tmp_path / "untrained.keras")
    assert not [w for w in caught if "optimizer" in str(w.message)]


def test_a_trained_trainer_loads_its_optimizer_state(tmp_path):
    trainer = _supervised_trainer()
    x_l, y_l, _ = batches()
    trainer.fit(x_l, y_l, batch_size=5, epochs=2, verbose=0)
    trainer.save(tmp_path / "trained.keras")
    loaded = keras.models.load_model(tmp_path / "trained.keras")
    assert int(loaded.optimizer.iterations) == 2
    saved = [keras.ops.convert_to_numpy(v) for v in trainer.optimizer.variables]
    assert len(saved) > 2  # Adam's moments too
    restored = [keras.ops.convert_to_numpy(v) for v in loaded.optimizer.variables]
    assert len(restored) == len(saved)
    for a, b in zip(saved, restored):
        np.testing.assert_array_equal(a, b)


def test_files_without_the_layers_walk_order_load_by_name_and_warn_otherwise(
        tmp_path, monkeypatch):
    trainer = _trainer("PseudoLabel", _dropout_classifier())
    trainer.compile(optimizer="sgd")
    trainer.fit(_data(), epochs=1, verbose=0)
    current = ExtraStateMixin._extra_state
    with monkeypatch.context() as patch:  # as saved before the order was
        patch.setattr(ExtraStateMixin, "_extra_state", lambda self: {
            name: value for name, value in current(self).items()
            if name != extra_state._LAYER_SEED_ORDER})
        trainer.save_weights(tmp_path / "old.weights.h5")
    saved = _dropout_states(trainer)
    trainer.fit(_data(), epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        trainer.load_weights(tmp_path / "old.weights.h5")  # the same names
    np.testing.assert_array_equal(_dropout_states(trainer)[0], saved[0])
    fresh = _trainer("PseudoLabel", _dropout_classifier())
    with pytest.warns(UserWarning, match="does not record their order"):
        fresh.load_weights(tmp_path / "old.weights.h5")
