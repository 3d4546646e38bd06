"""Supervised fine-tuning with the step in XLA and dropout drawn beside it.

Fine-tuning a DBN's classifier (`keras_dbn.DBN.to_classifier`: Dense layers
with dropout) with Keras' own ``fit()`` runs the step in TensorFlow's graph,
where each Dense layer's GEMM, bias, activation and their gradients are
separate ops, and Adam a dozen element-wise passes per weight. XLA fuses
those; but compiled whole (``jit_compile=True``), the Dropout layers draw
their random numbers with XLA's own generator, which on CPUs is slow (a
step 7x slower, ``benchmarks/RESULTS.md``). `SupervisedTrainer` draws each
Dropout layer's keep mask with TensorFlow's Philox kernel in the graph and
runs the rest of the step, forward and backward passes, the optimizer's
update and the metrics, as one XLA function of those masks: the technique
`keras_dbn.units.DrawnNoise` applies to the RBM's Gibbs chain.

Example:

```python
clf = dbn.to_classifier(10, dropout=0.2)
trainer = keras_dbn.SupervisedTrainer(clf, seed=0)
trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
trainer.fit(keras_dbn.array_dataset(x_train, y_train, batch_size=100), epochs=20,
            shuffle=False)
trainer.evaluate(x_test, y_test, return_dict=True)  # {"accuracy": ..., "loss": ...}
keras_dbn.export_saved_model(clf, "models/dbn", version=1)   # the plain classifier
```

Reference:
    Nitish Srivastava, Geoffrey Hinton, Alex Krizhevsky, Ilya Sutskever and
    Ruslan Salakhutdinov, "Dropout: A Simple Way to Prevent Neural Networks
    from Overfitting", JMLR 15, 2014, section 4 (each unit kept
    independently with probability ``1 - rate``; Keras, and this trainer,
    scale the kept ones by ``1 / (1 - rate)`` while training instead of
    scaling the weights at test time).
"""

import keras
from keras import ops

from keras_dbn.rbm import checked_seed
from keras_dbn.semi_supervised import ClassifierTrainer, _checked_integer_labels


def _drawn_dropouts(classifier):
    """The Dropout layers of ``classifier`` whose masks can be drawn outside,
    or None when the classifier is not a `keras.Sequential` or has a
    Dropout with a ``noise_shape`` or of a subclass (e.g. `SpatialDropout2D`,
    whose masks drop whole channels), which then keeps Keras' own call."""
    if not isinstance(classifier, keras.Sequential):
        return None
    dropouts = [layer for layer in classifier.layers if isinstance(layer, keras.layers.Dropout)]
    if any(layer.noise_shape is not None or type(layer) is not keras.layers.Dropout
           for layer in dropouts):
        return None
    return dropouts


def _single_input(x):
    """The one tensor of a batch of inputs ``x``, however nested (``{"inputs":
    x}`` included), or None for inputs of several tensors."""
    leaves = keras.tree.flatten(x)
    return leaves[0] if len(leaves) == 1 else None


def _dropout_input_shapes(classifier, input_shape):
    """The shapes without the batch axis of the inputs of a Sequential
    ``classifier``'s Dropout layers for inputs of ``input_shape``, or None
    where one is not fully known (such Dropout layers then draw their own
    masks). Derived layer by layer, so the classifier need not have been
    called yet."""
    shapes = []
    shape = tuple(input_shape)
    for layer in classifier.layers:
        if isinstance(layer, keras.layers.Dropout):
            shapes.append(shape[1:])
            if None in shape[1:]:
                return None
        try:
            shape = tuple(layer.compute_output_shape(shape))
        except NotImplementedError:
            return None
    return shapes


@keras.saving.register_keras_serializable(package="keras_dbn")
class SupervisedTrainer(ClassifierTrainer):
    """Fine-tunes a classifier on labelled batches by its cross-entropy.

    The same loss and updates as ``classifier.compile(optimizer,
    "sparse_categorical_crossentropy", metrics=["accuracy"])`` then
    ``classifier.fit(...)``, with a faster step: for a `keras.Sequential`
    (such as `DBN.to_classifier`'s), the keep masks of its Dropout layers
    are drawn in TensorFlow's graph (uniforms from a seeded
    `keras.random.SeedGenerator`, a unit kept where its uniform is at least
    the rate, as Keras' Dropout does, and scaled by ``1 / (1 - rate)``),
    and with ``jit_compile`` the rest of the step runs as one XLA function
    of them. Other classifiers are called as they are, in the graph.

    Logs ``loss`` (with the classifier's regularisation losses),
    ``labelled_crossentropy`` and ``accuracy`` (on the training batches,
    dropout active), averaged over the epoch with each batch weighted by
    its size, as Keras does; ``evaluate`` and validation give ``loss`` and
    ``accuracy`` (``val_loss`` and ``val_accuracy`` in ``fit``'s logs).
    Batches are ``(x, y)`` or ``(x, y, sample_weight)``; ``x`` may be a
    single tensor in a dict or other structure (``{"inputs": x}``).

    Args:
        classifier: a Keras model mapping inputs to class probabilities
            (a softmax output), e.g. ``DBN.to_classifier(num_classes)``.
        seed: an int for reproducible dropout masks, or None: the seed of
            the classifier's first seeded Dropout layer where it has one
            (``DBN.to_classifier(seed=...)`` seeds them), as Keras' own
            ``fit`` would then draw reproducible masks; else unseeded.
        **kwargs: passed to `keras.Model` (``name``, ...).

    Raises:
        ValueError: on a ``classifier`` that is not a Keras model or layer,
            or a ``seed`` that is not an integer.

    Example:

        >>> trainer = SupervisedTrainer(dbn.to_classifier(10, dropout=0.2), seed=0)
        >>> trainer.compile(optimizer="adam")
        >>> trainer.fit(array_dataset(x_train, y_train, batch_size=100), epochs=20)
    """

    _EXPECTED_BATCHES = (
        "`(x, y)` or `(x, y, sample_weight)` (e.g. from keras_dbn.array_dataset(x, y))"
    )
    _LABELLED_ONLY = True

    def __init__(self, classifier, seed=None, **kwargs):
        super().__init__(classifier, **kwargs)
        self.seed = checked_seed(seed)
        if self.seed is None:
            # The step draws every mask from its own generator, so the
            # layers' seeds would otherwise be ignored.
            seeds = [layer.seed for layer in _drawn_dropouts(classifier) or ()
                     if layer.seed is not None]
            self.seed = checked_seed(seeds[0]) if seeds else None
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def _uses_xla(self, jit_compile):
        # Without the draws, XLA speeds the step up on CPUs too.
        return jit_compile is not False

    def _xla_function(self):
        return self._masked_minimize

    def dropout_keeps(self, x):
        """The scaled keep masks of a training step on the batch ``x``.

        Args:
            x: the batch: a tensor, or one tensor in a dict or other
                structure.

        Returns:
            A list with one float tensor per Dropout layer of a Sequential
            classifier, shaped like that layer's input: ``1 / (1 - rate)``
            where a unit is kept, 0 where it is dropped. None for a
            classifier whose Dropout layers run themselves, where a
            Dropout layer's input has a shape not known before the step,
            and for inputs of several tensors.

        Example:

        >>> keeps = trainer.dropout_keeps(x_train[:100])  # to_classifier(10, dropout=0.2)
        >>> [tuple(k.shape) for k in keeps]  # DBN([500, 500, 2000])
        [(100, 500), (100, 500), (100, 2000)]
        >>> np.unique(keeps[0])  # 0 where dropped, 1 / (1 - 0.2) where kept
        array([0.  , 1.25], dtype=float32)
        """
        dropouts = _drawn_dropouts(self.classifier)
        x = _single_input(x)
        if dropouts is None or x is None:
            return None
        widths = _dropout_input_shapes(self.classifier, x.shape)
        if widths is None:
            return None
        rows = ops.shape(x)[0]
        keeps = []
        for layer, width in zip(dropouts, widths):
            if layer.rate == 0:
                keeps.append(None)
                continue
            uniforms = keras.random.uniform((rows, *width), seed=self.seed_generator)
            keep = ops.cast(uniforms >= layer.rate, "float32") * (1.0 / (1.0 - layer.rate))
            keeps.append(keep)
        return keeps

    def _forward(self, x, keeps):
        """The classifier's training-mode output, its Dropout layers applying
        ``keeps`` (`dropout_keeps`) instead of drawing."""
        if keeps is None:
            return self.classifier(x, training=True)
        x = _single_input(x)
        masks = iter(keeps)
        for layer in self.classifier.layers:
            if isinstance(layer, keras.layers.Dropout):
                keep = next(masks)
                if keep is not None:
                    if not keras.backend.is_float_dtype(x.dtype):
                        # Integer inputs (e.g. uint8 pixels) would truncate
                        # the 1 / (1 - rate) scale to 1.
                        x = ops.cast(x, layer.compute_dtype)
                    x = x * ops.cast(keep, x.dtype)
            else:
                x = layer(x, training=True)
        return x

    def _masked_minimize(self, x, y, sample_weight, keeps):
        def loss_terms():
            probabilities = self._forward(x, keeps)
            labelled_ce = self._mean_crossentropy(y, probabilities, sample_weight)
            return labelled_ce, labelled_ce, (), probabilities

        return self._minimize(loss_terms, y)

    def train_step(self, data):
        self._require_tensorflow()
        x, y, x_unlabelled, sample_weight = self._unpack(data, plain=True)
        if x_unlabelled is not None:
            raise ValueError(
                "SupervisedTrainer.fit expects labelled batches `(x, y)`; for batches "
                "with unlabelled images use PseudoLabel or VirtualAdversarial."
            )
        y = _checked_integer_labels(y)
        keeps = self.dropout_keeps(x)
        if self._xla_step is not None and keeps is not None:
            y = self._checked_step_labels(y)
            return self._xla_step(x, y, sample_weight, keeps)
        return self._masked_minimize(x, y, sample_weight, keeps)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
