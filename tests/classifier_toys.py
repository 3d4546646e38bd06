"""Small classifiers and data shared by the tests of the classifier trainers
(`keras_dbn.PseudoLabel`, `keras_dbn.VirtualAdversarial`)."""

import json

import keras
import numpy as np

from keras_dbn import semi_supervised_dataset

#: Weights and biases of the 4 -> 3 softmax classifier of `tiny_classifier`.
W0 = np.array(
    [[0.3, -0.2, 0.5], [-0.4, 0.1, 0.2], [0.6, 0.3, -0.5], [-0.1, -0.6, 0.4]], dtype="float32"
)
B0 = np.array([0.1, -0.2, 0.05], dtype="float32")


def tiny_classifier(weights=(W0, B0), input_shape=(4,)):
    """Dense softmax 4 -> 3 with fixed weights, no dropout (after a Flatten
    for inputs of more than one axis)."""
    layers = [keras.Input(input_shape)]
    if len(input_shape) > 1:
        layers.append(keras.layers.Flatten())
    model = keras.Sequential(layers + [keras.layers.Dense(3, activation="softmax")])
    model.set_weights([np.array(w) for w in weights])
    return model


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def batches(seed=0):
    """A labelled batch of 5 and an unlabelled batch of 7 for `tiny_classifier`."""
    rng = np.random.default_rng(seed)
    x_l = rng.normal(size=(5, 4)).astype("float32")
    y_l = np.array([0, 2, 1, 1, 0])
    x_u = rng.normal(size=(7, 4)).astype("float32") * 2
    return x_l, y_l, x_u


def two_blobs(rng, n):
    """Class 0 around x = -2, class 1 around x = +2, elongated along y."""
    y = np.arange(n) % 2
    x = np.stack([np.where(y == 0, -2.0, 2.0) + 0.7 * rng.normal(size=n),
                  2.0 * rng.normal(size=n)], axis=1)
    return x.astype("float32"), y


def blob_test_accuracy(trainer, steps=400):
    """Test accuracy of ``trainer`` after ``steps`` SGD updates on two blobs
    with four labelled points off-centre (class 0 far left, class 1 near
    the gap) and 1,000 unlabelled points; the labelled points alone put the
    boundary inside class 0's cluster."""
    rng = np.random.default_rng(0)
    x_u, _ = two_blobs(rng, 1000)
    x_test, y_test = two_blobs(rng, 1000)
    x_l = np.array([[-4.0, 1.0], [-3.5, -1.0], [0.0, 1.0], [0.5, -1.0]], dtype="float32")
    y_l = np.array([0, 0, 1, 1])
    trainer.compile(optimizer=keras.optimizers.SGD(0.5), steps_per_execution=50)
    data = semi_supervised_dataset(x_l, y_l, x_u, labelled_batch_size=4,
                                   unlabelled_batch_size=128, seed=0)
    trainer.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    assert int(trainer.optimizer.iterations) == steps
    return trainer.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]


def saved_and_loaded(trainer, path):
    """``trainer`` after one Adam update on `batches`, saved to ``path`` and
    loaded back; checks what every trainer must keep: its class, its config,
    its predictions, the optimizer's update count and a plain Keras
    classifier inside."""
    x_l, y_l, x_u = batches()
    trainer.compile(optimizer=keras.optimizers.Adam(0.01))
    trainer.train_on_batch(((x_l, y_l), x_u))
    trainer.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(trainer)

    def as_json(config):  # JSON turns the tuples of the config into lists
        return json.loads(json.dumps(config))

    assert as_json(loaded.get_config()) == as_json(trainer.get_config())
    np.testing.assert_allclose(loaded.predict(x_u, verbose=0), trainer.predict(x_u, verbose=0),
                               rtol=1e-6)
    assert int(loaded.optimizer.iterations) == 1  # training resumes where it stopped
    assert type(loaded.classifier) is keras.Sequential
    return loaded


def check_out_of_range_labels_stop_the_xla_step(trainer):
    """Fits ``trainer`` (holding `tiny_classifier`) under XLA on a stream of
    `batches` whose labels go up to 3 of 3 classes: the step must stop with
    a clear error and leave the weights as they were (XLA would turn such
    labels into NaN weights, as for `SupervisedTrainer`)."""
    import pytest
    import tensorflow as tf

    x_l, y_l, x_u = batches()
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    data = semi_supervised_dataset(x_l, y_l + 1, x_u, seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"class labels in \[0, 3\)"):
        trainer.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    # Float labels with a fraction, which a cast would silently round down
    # (`semi_supervised_dataset` refuses them; a hand-made stream has them).
    data = tf.data.Dataset.from_tensors(((x_l, (y_l + 0.5).astype("float32")), x_u)).repeat()
    with pytest.raises(tf.errors.InvalidArgumentError, match="with a fraction"):
        trainer.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    for w, w0 in zip(trainer.classifier.get_weights(), (W0, B0)):
        np.testing.assert_array_equal(w, w0)
