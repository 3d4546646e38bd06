"""State saved beside the Keras variables (`keras_dbn.extra_state`): the
random streams of the layers inside a model, which Keras does not save."""

import keras
import numpy as np
import tensorflow as tf

import keras_dbn
from classifier_toys import batches
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
    names = [name for name in trainer._extra_state() if name.startswith("seed_generator_state:")]
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
