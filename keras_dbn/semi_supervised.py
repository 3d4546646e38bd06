"""Semi-supervised fine-tuning with pseudo-labels (Lee 2013).

When only a few images are labelled but many more are available without
labels, a classifier (for instance the one `keras_dbn.DBN.to_classifier`
builds from a pretrained DBN) can learn from the unlabelled images too:
`PseudoLabel` treats the class the network currently predicts for each
unlabelled image as if it were its true label, and adds the cross-entropy
against these pseudo-labels, with a weight that ramps up during training, to
the usual cross-entropy on the labelled images. The pseudo-labels are
recomputed at every update. This favours decision boundaries that pass
through low-density regions of the input space (an entropy-minimisation
effect), which helps most when labels are scarce (tens to a few thousand) and
the classes form well-separated clusters, as MNIST digits do in the feature
space of a pretrained DBN. With plenty of labels it adds little but cost.

`semi_supervised_dataset` (also named `pseudo_label_dataset`) makes the
input that `PseudoLabel.fit` expects: an endless stream of ``((x_labelled,
y_labelled), x_unlabelled)`` batches. `keras_dbn.VirtualAdversarial`
(virtual adversarial training, in its own module) reads the same stream and
shares `PseudoLabel`'s base class, `ClassifierTrainer`.

Example:

```python
dbn = keras_dbn.DBN([500, 500, 2000]); dbn.pretrain(x_train, epochs=10)
pseudo = keras_dbn.PseudoLabel(dbn.to_classifier(10, dropout=0.2))
pseudo.compile(optimizer=keras.optimizers.Adam(1e-3))
data = keras_dbn.semi_supervised_dataset(x_few, y_few, x_train, seed=0)
pseudo.fit(data, steps_per_epoch=150, epochs=20)   # 3,000 updates
pseudo.evaluate(x_test, y_test, return_dict=True)  # {"accuracy": ..., "loss": ...}
classifier = pseudo.classifier        # a plain Keras model
```

Reference:
    Dong-Hyun Lee, "Pseudo-Label: The Simple and Efficient Semi-Supervised
    Learning Method for Deep Neural Networks", ICML 2013 Workshop on
    Challenges in Representation Learning.
"""

import inspect
import math

import keras
import numpy as np
from keras import ops

from keras_dbn import array_input, user_warnings
from keras_dbn.extra_state import ExtraStateMixin, check_checkpoint_formats
from keras_dbn.monitor_modes import check_monitors, resolve_monitor_modes
from keras_dbn.probability_output import check_probability_output
from keras_dbn.progress import callback_list, with_step_progbar
from keras_dbn.rbm import checked_seed

#: Final weight ``alpha_f`` of the unlabelled loss (Lee 2013, section 3.3).
DEFAULT_ALPHA = 3.0
#: Update count ``T1`` at which the unlabelled loss is switched on.
DEFAULT_RAMP_START = 200
#: Update count ``T2`` from which the unlabelled loss has its full weight.
DEFAULT_RAMP_END = 1200


def _is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _positive_number(name, value, allow_zero=False):
    """``value`` as a float after checking it is a finite number > 0 (>= 0
    with ``allow_zero``); a ValueError naming ``name`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"`{name}` must be a number, got {value!r}.")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {bound}, got {value!r}.")
    return float(value)


def _checked_labels(y, name, num_classes=None):
    """``y`` as integer class labels, one per example.

    Integer arrays are returned as they are, integral floats as int64.

    Args:
        y: labels of shape ``(n,)`` or ``(n, 1)``, integers or integral floats.
        name: how error messages name ``y``.
        num_classes: the classifier's number of classes, where known; labels
            must then lie below it. A label outside ``[0, num_classes)``
            would otherwise train on garbage: Keras' sparse cross-entropy
            does not check it in XLA-compiled steps.

    Raises:
        ValueError: on labels of another shape (one-hot ones included),
            labels that are not integers, or labels out of range.
    """
    y = np.asarray(y)
    if y.ndim == 0 or y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        hint = " (one-hot labels? pass y.argmax(-1))" if y.ndim == 2 else ""
        raise ValueError(
            f"`{name}` must hold one integer class label per example (shape (n,) "
            f"or (n, 1)), got shape {y.shape}{hint}."
        )
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.number) and np.all(np.mod(y, 1) == 0)):
            raise ValueError(f"`{name}` must hold integer class labels.")
        y = y.astype("int64")
    if y.size:
        low, high = int(y.min()), int(y.max())
        if low < 0 or (num_classes is not None and high >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else "[0, classes)"
            raise ValueError(
                f"`{name}` must hold class labels in {bound}, got labels from {low} to {high}."
            )
    return y


def _checked_label_range(y, num_classes):
    """``y`` after a graph check that its labels lie in ``[0, num_classes)``.

    An XLA step takes labels outside it without an error (its gather
    yields NaN losses that then spread to every weight); TensorFlow's
    graph ops check them, and so does this check beside the XLA step.
    """
    import tensorflow as tf

    labels = tf.cast(y, tf.int64)
    in_range = tf.reduce_all(tf.logical_and(labels >= 0, labels < num_classes))
    check = tf.debugging.Assert(
        in_range, [f"Labels must be class labels in [0, {num_classes}), got", labels]
    )
    with tf.control_dependencies([check]):
        return tf.identity(y)


def _checked_integer_labels(y):
    """``y`` after a graph check that float labels are whole numbers.

    Arrays are checked before training (`_checked_labels`); a dataset's
    float labels were cast down silently (``3.5`` trained as class 3) and
    the accuracy, which compares them unrounded, read 0. Integer labels
    pass unchecked (no op added).
    """
    import tensorflow as tf

    if y is None or not tf.as_dtype(y.dtype).is_floating:
        return y
    # A message of strings alone: TensorFlow then adds no conditional.
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(y, tf.floor(y))),
        ["Labels must be integer class labels, but a batch holds one with a fraction."])
    with tf.control_dependencies([check]):
        return tf.identity(y)


def _num_replicas():
    """Replicas whose gradients `tf.distribute` sums (1 outside it)."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _as_keywords(method, named, args, kwargs):
    """``kwargs`` with the positional ``args`` added under their names.

    ``args`` are those passed after the parameters ``named`` explicitly,
    named as ``method`` (a `keras.Model` method) names them, so that each
    option is looked up in one place whichever way the caller passed it.

    Raises:
        TypeError: for more positional arguments than ``method`` takes, or
            one also given by keyword, as Python raises for a plain call.
    """
    if not args:
        return kwargs
    parameters = inspect.signature(method).parameters.values()
    names = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    names = names[1 + len(named):]  # past self and the named ones
    if len(args) > len(names):
        raise TypeError(f"{method.__name__}() takes at most {len(names) + len(named)} "
                        f"arguments by position, got {len(args) + len(named)}.")
    for name, value in zip(names, args):
        if name in kwargs:
            raise TypeError(f"{method.__name__}() got multiple values for argument {name!r}.")
        kwargs[name] = value
    return kwargs


def _with_bar(kwargs):
    """The ``callbacks`` of keyword arguments to ``fit``, ``evaluate`` or
    ``predict`` with Keras' bar clamped to an epoch's steps (`progress`)."""
    return with_step_progbar(kwargs.get("callbacks"), kwargs.get("verbose", "auto"))


def _with_rank(labels):
    """``labels`` as one class per row where their rank is unknown.

    Keras retraces a step with the labels' rank unknown when a later call's
    labels have another rank than an earlier one's, ``(n,)`` then ``(n, 1)``;
    the cross-entropy and the accuracy need it known.
    """
    if getattr(labels.shape, "rank", 0) is None:
        return ops.reshape(labels, (-1,))
    return labels


class ClassifierTrainer(ExtraStateMixin, keras.Model):
    """Base of the Keras models that fine-tune a wrapped classifier by a loss
    of their own (`PseudoLabel`, `keras_dbn.VirtualAdversarial`).

    It holds the classifier (``call`` runs it, so ``predict`` and
    ``evaluate`` take plain ``(x, y)`` data), reads the training batches,
    computes the cross-entropy, applies the gradients and keeps the metrics:
    ``loss``, ``labelled_crossentropy``, one running mean per name in
    `EXTRA_METRICS` and ``accuracy`` (in training, on the labelled batches
    in training mode; in ``evaluate`` and validation, in inference mode:
    one metric, as Keras' compiled ``metrics=["accuracy"]``, so that
    ``accuracy`` and ``val_accuracy`` pair up in TensorBoard and callbacks). A subclass writes
    `_step`, one update on an unpacked batch, with `_minimize`; with
    ``jit_compile`` it runs as one XLA function, its labels checked beside
    it.

    Args:
        classifier: a Keras model mapping inputs to class probabilities
            (a softmax output), e.g. ``DBN.to_classifier(num_classes)``.
        **kwargs: passed to `keras.Model` (``name``, ...).

    Raises:
        ValueError: on a ``classifier`` that is not a Keras model or layer,
            or whose last layer has an activation other than softmax.

    Example:

    >>> trainer = keras_dbn.PseudoLabel(dbn.to_classifier(10))  # or VirtualAdversarial
    >>> isinstance(trainer, keras_dbn.semi_supervised.ClassifierTrainer)
    True
    >>> trainer.metrics_names  # EXTRA_METRICS after labelled_crossentropy
    ['loss', 'labelled_crossentropy', 'unlabelled_crossentropy', 'accuracy']
    """

    #: Names of the running means a subclass logs after ``labelled_crossentropy``.
    EXTRA_METRICS = ()
    #: The batches `_unpack` names when it refuses one.
    _EXPECTED_BATCHES = (
        "`((x_labelled, y_labelled), x_unlabelled)` (e.g. from "
        "keras_dbn.semi_supervised_dataset(...))"
    )
    _LABELLED_ONLY = False
    #: Whether `fit` also takes plain ``(x, y)`` batches (`_unpack`'s ``plain``).
    _PLAIN_BATCHES = False

    def __init__(self, classifier, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(classifier, keras.layers.Layer):
            raise ValueError(
                f"`classifier` must be a Keras model (or layer) that outputs class "
                f"probabilities, got {type(classifier).__name__}."
            )
        check_probability_output(classifier, "`classifier`")
        self.classifier = classifier
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.labelled_ce_tracker = keras.metrics.Mean(name="labelled_crossentropy")
        self.extra_trackers = [keras.metrics.Mean(name=name) for name in self.EXTRA_METRICS]
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self._xla_step = None
        if getattr(classifier, "built", False):
            self.built = True

    def build(self, input_shape):
        if not self.classifier.built:
            self.classifier.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.labelled_ce_tracker,
            *self.extra_trackers,
            self.accuracy_tracker,
        ]

    # -------------------------------------------------------------- training

    def compile(self, optimizer="rmsprop", jit_compile="auto", **kwargs):
        """Configures the trainer; the arguments are `keras.Model.compile`'s.

        Args:
            optimizer: the optimizer of the classifier's weights.
            jit_compile: True: each update runs as one XLA function
                (TensorFlow backend), its labels checked beside it (XLA
                would take labels outside the classes without an error);
                ``"auto"``: as Keras resolves it (XLA where a GPU or other
                accelerator is present), except for `SupervisedTrainer`,
                whose XLA function (the step after its dropout masks are
                drawn) runs faster on CPUs too; False: all in TensorFlow's
                graph.
            **kwargs: further `keras.Model.compile` arguments, e.g.
                ``steps_per_execution``; a ``loss`` or ``metrics`` is
                refused: the trainer's are fixed.

        Raises:
            ValueError: on a ``loss`` or ``metrics``, or a ``jit_compile``
                other than True, False and ``"auto"``.

        Example:

        >>> trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> trainer.compile(optimizer="adam", jit_compile=False)  # the whole step in the graph
        """
        name = type(self).__name__
        for given in ("loss", "metrics"):
            if kwargs.get(given) is not None:
                raise ValueError(
                    f"{name} minimises its own loss and logs its own metrics; "
                    f"do not pass `{given}`."
                )
        if jit_compile not in (True, False, "auto"):
            raise ValueError(f"`jit_compile` must be True, False or 'auto', got {jit_compile!r}.")
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
        self._xla_step = None
        if self._uses_xla(jit_compile) and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            self._xla_step = tf.function(self._xla_function(), jit_compile=True)
            # Keras' own XLA function would hold the label check too, where
            # XLA ignores it.
            self.jit_compile = False
        self._compile_config.config["jit_compile"] = jit_compile  # ours, when saved

    def compile_from_config(self, config):
        """Restores the optimizer of a loaded trainer so that training continues
        (built as the saved one was: `ExtraStateMixin._build_optimizer_as_saved`)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self._build_optimizer_as_saved(self.trainable_variables)

    def _uses_xla(self, jit_compile):
        """Whether the update runs as an XLA function after ``compile(...,
        jit_compile)``; by default as Keras resolves it."""
        return bool(self.jit_compile)

    def _xla_function(self):
        """The function that runs as one XLA function with ``jit_compile``."""
        return self._step

    def _checked_step_labels(self, y):
        """``y`` with a graph check of its range (`_checked_label_range`),
        where the classifier's number of classes is known."""
        classes = self._num_classes()
        return y if classes is None else _checked_label_range(y, classes)

    def train_step(self, data):
        self._require_tensorflow()
        x_labelled, y_labelled, x_unlabelled, sample_weight = self._unpack(
            data, plain=self._PLAIN_BATCHES
        )
        y_labelled = _checked_integer_labels(y_labelled)
        if self._xla_step is None:
            return self._step(x_labelled, y_labelled, x_unlabelled, sample_weight)
        y_labelled = self._checked_step_labels(y_labelled)
        return self._xla_step(x_labelled, y_labelled, x_unlabelled, sample_weight)

    def _step(self, x_labelled, y_labelled, x_unlabelled, sample_weight):
        """One update on a batch unpacked by `_unpack`; returns the logs."""
        raise NotImplementedError

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, with ``shuffle=False`` the default for a stream.

        A `tf.data.Dataset` or generator (such as `semi_supervised_dataset`,
        which shuffles itself) cannot be shuffled by Keras, which warns when
        asked to; for such data ``shuffle`` defaults to False here. Arrays
        keep Keras' default. All arguments are those of `keras.Model.fit`.

        Returns:
            The `keras.callbacks.History` of the run.

        Raises:
            ValueError: for array labels (of the training or validation
                data) that are not one integer class label in
                ``[0, classes)`` per example (`_checked_labels`), for an
                array without examples or with NaN or infinite values (one
                made every weight NaN within an update, and training went
                on), and for a dataset that never ends
                (`semi_supervised_dataset`) without ``steps_per_epoch``.
            tf.errors.InvalidArgumentError: for a dataset's float labels
                that are not whole numbers.

        Example:

        >>> data = keras_dbn.semi_supervised_dataset(x_few, y_few, x_train, seed=0)
        >>> history = pseudo.fit(data, steps_per_epoch=150, epochs=20,
        ...                      validation_data=(x_val, y_val))
        >>> history.history["val_accuracy"][-1]
        """
        kwargs = _as_keywords(keras.Model.fit, ("x", "y"), args, kwargs)
        if isinstance(x, np.ndarray) and not len(x):
            # Keras would warn that it ran out of data and return an empty history.
            raise ValueError("The data holds no examples.")
        array_input.check_finite(x, "`x`")
        array_input.check_finite(kwargs.get("sample_weight"), "`sample_weight`")
        y = self._checked_array_labels(y)
        if kwargs.get("class_weight") is not None and _is_labelled_unlabelled_stream(x):
            raise ValueError(
                f"{type(self).__name__}.fit cannot apply `class_weight` to batches "
                "`((x_labelled, y_labelled), x_unlabelled)`: Keras would take the "
                "unlabelled images for labels. Weigh the classes by the labelled "
                "examples you pass (e.g. repeat the rarer ones), or use `(x, y)` data."
            )
        callbacks = kwargs.get("callbacks")
        if isinstance(callbacks, keras.callbacks.Callback):
            callbacks = kwargs["callbacks"] = callback_list(callbacks)
        resolve_monitor_modes(callbacks, self.metrics)
        logged = [metric.name for metric in self.metrics]
        if kwargs.get("validation_data") is not None or kwargs.get("validation_split"):
            logged += ["val_loss", "val_accuracy"]  # `test_step`'s figures
        check_monitors(callbacks, logged, f"a {type(self).__name__}")
        check_checkpoint_formats(callbacks, self)
        array_input.check_ends(kwargs, x, f"{type(self).__name__}.fit")
        kwargs["callbacks"] = _with_bar(kwargs)
        if "shuffle" not in kwargs and array_input.is_stream(x):
            kwargs["shuffle"] = False
        # tf.data's autotuning thread may stall the end of each epoch and of
        # the call (array_input.untuned_options); a pipeline that sets it keeps it.
        x = array_input.without_autotuning(x)
        validation_data = kwargs.get("validation_data")
        if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
            # Checked before training, not after the first epoch.
            array_input.check_finite(validation_data[0], "The validation data")
            array_input.check_finite(validation_data[2:], "The validation sample_weight")
            labels = self._checked_array_labels(validation_data[1])
            kwargs["validation_data"] = (validation_data[0], labels, *validation_data[2:])
        if kwargs.get("validation_data") is not None:
            validation = array_input.validation_input(
                kwargs["validation_data"],
                kwargs.get("validation_batch_size") or kwargs.get("batch_size"))
            if validation is not kwargs["validation_data"]:
                kwargs["validation_data"] = validation
                kwargs.pop("validation_batch_size", None)  # now the dataset's
        return super().fit(x, y, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, *args, **kwargs):
        """`keras.Model.evaluate` of the classifier; NumPy arrays and datasets
        are read by `array_input.evaluation_input` (no stall at the end of
        the call).

        Returns:
            The loss and metrics, as `keras.Model.evaluate` returns them.

        Raises:
            ValueError: for array labels as in `fit`.

        Example:

        >>> loss, accuracy = pseudo.evaluate(x_test, y_test, batch_size=1000, verbose=0)
        >>> pseudo.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
        """
        kwargs = _as_keywords(keras.Model.evaluate, ("x", "y", "batch_size"), args, kwargs)
        y = self._checked_array_labels(y)
        kwargs["callbacks"] = _with_bar(kwargs)
        if kwargs.get("sample_weight") is not None:
            x = array_input.without_autotuning(x)  # arrays stay beside the weights
        else:
            x, y, batch_size = array_input.evaluation_input(x, y, batch_size)
        return super().evaluate(x, y, batch_size, **kwargs)

    def predict(self, x, batch_size=None, *args, **kwargs):
        """`keras.Model.predict`: the classifier's class probabilities; NumPy
        arrays and datasets are read by `array_input.evaluation_input`.

        Returns:
            A NumPy array of shape ``(examples, classes)``.

        Example:

        >>> probabilities = pseudo.predict(x_test, batch_size=1000, verbose=0)  # (n, 10)
        >>> predicted = probabilities.argmax(axis=-1)
        """
        kwargs = _as_keywords(keras.Model.predict, ("x", "batch_size"), args, kwargs)
        x, _, batch_size = array_input.evaluation_input(x, None, batch_size)
        kwargs["callbacks"] = _with_bar(kwargs)
        return super().predict(x, batch_size, **kwargs)

    def _num_classes(self):
        """The classifier's number of outputs, or ``None`` while unknown."""
        try:
            classes = self.classifier.output_shape[-1]
        except (AttributeError, ValueError):  # a layer, or a model not built yet
            return None
        return int(classes) if classes else None

    def _checked_array_labels(self, y):
        """``y`` checked against the classifier where it is an array (or list)
        of labels; other ``y`` (``None``, tensors) pass unchanged."""
        if not isinstance(y, (np.ndarray, list, tuple)):
            return y
        return _checked_labels(y, "y", self._num_classes())

    def _unpack(self, data, plain=False):
        """``(x_labelled, y_labelled, x_unlabelled, sample_weight)`` of a batch.

        Batches are ``((x_l, y_l), x_u)``; with ``plain=True`` also ``(x, y)``
        and ``(x, y, sample_weight)``, returned with ``x_unlabelled=None``.
        """
        # `train_on_batch(batch)` hands over `(batch, None, None)`.
        while isinstance(data, (tuple, list)) and len(data) > 1 and data[-1] is None:
            data = data[:-1]
        if isinstance(data, (tuple, list)) and len(data) == 1:
            data = data[0]
        if isinstance(data, (tuple, list)) and len(data) in (2, 3):
            if len(data) == 2 and isinstance(data[0], (tuple, list)) and len(data[0]) == 2:
                (x_labelled, y_labelled), x_unlabelled = data
                return x_labelled, _with_rank(y_labelled), x_unlabelled, None
            if plain and not isinstance(data[0], (tuple, list)) and data[1] is not None:
                sample_weight = data[2] if len(data) == 3 else None
                return data[0], _with_rank(data[1]), None, sample_weight
        expected = self._EXPECTED_BATCHES
        if plain and not self._LABELLED_ONLY:
            expected += " or `(x, y)`"
        raise ValueError(
            f"{type(self).__name__}.fit expects batches {expected}; got a batch of "
            f"structure {keras.tree.map_structure(lambda _: '.', data)!r}."
        )

    @staticmethod
    def _crossentropy(labels, probabilities):
        """Per-example sparse cross-entropy, in float32."""
        labels = ops.cast(labels, "int32")
        if len(labels.shape) == len(probabilities.shape) and labels.shape[-1] == 1:
            labels = ops.squeeze(labels, axis=-1)
        if len(labels.shape) != len(probabilities.shape) - 1:
            # Keras' own message would blame the probabilities.
            raise ValueError(
                f"Labels must be one integer class per example, got labels of shape "
                f"{tuple(labels.shape)} for probabilities of shape "
                f"{tuple(probabilities.shape)} (one-hot labels? pass y.argmax(-1))."
            )
        if probabilities.dtype != "float32":
            probabilities = ops.cast(probabilities, "float32")
        return ops.sparse_categorical_crossentropy(labels, probabilities)

    def _mean_crossentropy(self, labels, probabilities, sample_weight=None):
        """The batch mean of `_crossentropy`, each example's weighted by
        ``sample_weight`` where given."""
        crossentropy = self._crossentropy(labels, probabilities)
        if sample_weight is not None:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), ops.shape(crossentropy))
            crossentropy = crossentropy * weights
        return ops.mean(crossentropy)

    def _regularization_loss(self):
        losses = self.classifier.losses
        if not losses:
            return None
        return ops.sum(ops.stack([ops.cast(loss, "float32") for loss in losses]))

    def _require_tensorflow(self):
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                f"{type(self).__name__} trains with the TensorFlow backend only; "
                f"the backend is {keras.backend.backend()!r}."
            )

    def _minimize(self, loss_terms, y_labelled):
        """One update of the classifier's trainable weights.

        Args:
            loss_terms: a function run under the gradient tape that returns
                ``(loss, labelled_crossentropy, extras, probabilities)``: the
                loss without the classifier's regularisation losses, the
                mean labelled cross-entropy, one value per name in
                `EXTRA_METRICS`, and the classifier's output on the labelled
                batch.
            y_labelled: the labels of that batch, for ``accuracy``.

        Returns:
            The logs of the metrics updated in training.
        """
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, labelled_ce, extras, probabilities = loss_terms()
            regularization = self._regularization_loss()
            if regularization is not None:
                loss = loss + regularization
            replicas = _num_replicas()
            scaled = loss / replicas if replicas > 1 else loss
            scaled = self.optimizer.scale_loss(scaled)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        # Like Keras' fit: the epoch's figures weight each batch by its size
        # (a smaller last batch counts less).
        size = ops.shape(probabilities)[0]
        self.loss_tracker.update_state(loss, sample_weight=size)
        self.labelled_ce_tracker.update_state(labelled_ce, sample_weight=size)
        for tracker, value in zip(self.extra_trackers, extras):
            tracker.update_state(value, sample_weight=size)
        self.accuracy_tracker.update_state(y_labelled, probabilities)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError(f"{type(self).__name__}.evaluate needs labelled data `(x, y)`.")
        y = _checked_integer_labels(_with_rank(y))
        probabilities = self(x, training=False)
        # Like Keras' compiled loss and `metrics=["accuracy"]`: each batch's
        # loss is the mean over its examples of the weighted cross-entropy
        # (Keras' "sum_over_batch_size") plus the penalty, averaged over
        # batches by their sizes; the accuracy counts every example alike.
        batch_loss = self._mean_crossentropy(y, probabilities, sample_weight)
        regularization = self._regularization_loss()
        if regularization is not None:
            batch_loss = batch_loss + regularization
        self.loss_tracker.update_state(batch_loss, sample_weight=ops.shape(probabilities)[0])
        self.accuracy_tracker.update_state(y, probabilities)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}

    # --------------------------------------------------------- serialization

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "classifier": keras.saving.serialize_keras_object(self.classifier),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_dbn")
class PseudoLabel(ClassifierTrainer):
    """Trains a classifier on labelled and pseudo-labelled data (Lee 2013).

    Each update takes a labelled batch ``(x_l, y_l)`` of size ``n`` and an
    unlabelled batch ``x_u`` of size ``n'`` and minimises (Lee 2013, eq. 15)

        L = 1/n sum CE(y_l, f(x_l)) + alpha(t) * 1/n' sum CE(y', f(x_u))

    where ``f`` is the wrapped classifier (with dropout and other training
    behaviour active) and the pseudo-label ``y'`` is the class of highest
    probability that the classifier, in inference mode, assigns to ``x_u``
    just before the update; no gradient flows through ``y'``. The weight of
    the unlabelled term ramps up linearly (Lee 2013, eq. 16):

        alpha(t) = 0                                   if t < T1
        alpha(t) = alpha_f * (t - T1) / (T2 - T1)      if T1 <= t < T2
        alpha(t) = alpha_f                             if t >= T2

    with ``t`` the number of weight updates the compiled optimizer has
    applied before this one (``optimizer.iterations``; the first update has
    ``t = 0``, and compiling with a new optimizer starts the schedule anew).
    The delay lets the classifier first fit the labelled data, so that its
    pseudo-labels are mostly right when they start to count.

    ``call(x)`` returns the classifier's output, so ``predict`` and
    ``evaluate`` take plain ``(x, y)`` data (integer labels); ``evaluate``
    reports the cross-entropy as ``loss`` and ``accuracy``. ``fit`` takes
    ``((x_l, y_l), x_u)`` batches, most simply from `semi_supervised_dataset`,
    and reports ``loss`` (L above, plus any regularisation losses of the
    classifier), ``labelled_crossentropy``, ``unlabelled_crossentropy``
    (against the pseudo-labels, before weighting), ``accuracy``
    (on the labelled training batches, with dropout active) and ``alpha`` (the weight
    used by the latest update; the others are averages over the epoch).
    Validation data, if any, is plain ``(x, y)``. The regularisation losses
    added are those of the classifier after its last forward pass, the one
    on the unlabelled batch (this matters only for activity regularisers).
    The epoch's averages weight each update by its labelled batch size, as
    Keras' ``fit`` does.
    The total number of updates is ``steps_per_epoch * epochs`` only where
    ``steps_per_epoch`` is a multiple of the ``steps_per_execution`` given to
    ``compile`` (Keras rounds it up otherwise). The stream shuffles itself;
    ``fit`` does not ask Keras to shuffle a dataset or generator (Keras
    would only warn that it cannot).

    Only the TensorFlow backend can train (``predict`` and ``evaluate`` work
    on any backend). The classifier's own compiled loss and metrics, if it
    has any, are not used; ``compile`` the `PseudoLabel` model with just an
    optimizer (`ClassifierTrainer.compile` refuses a ``loss`` or ``metrics``). After training, ``pseudo.classifier`` is the trained
    classifier itself, a plain Keras model that needs no keras_dbn.

    Args:
        classifier: a Keras model mapping inputs to class probabilities
            (a softmax output), e.g. ``DBN.to_classifier(num_classes)``.
        alpha: the final weight ``alpha_f`` of the unlabelled loss, >= 0.
            The default 3 is Lee's. ``alpha=0`` is plain supervised training
            (the unlabelled batches are then still read but have no effect).
        ramp_start: ``T1``, the update count from which the unlabelled loss
            counts, an integer >= 0. Lee used 200 (epochs) for pretrained
            networks; the default here is 200 updates.
        ramp_end: ``T2``, the update count from which the unlabelled loss has
            its full weight, an integer >= ``ramp_start`` (equal values give
            a step from 0 to ``alpha`` at ``T1``). Default 1200 updates;
            with 3,000 updates in all this gave the results in
            benchmarks/RESULTS.md, section 3.
        **kwargs: passed to `keras.Model` (``name``, ...).

    Raises:
        ValueError: on a non-model ``classifier``, a negative or non-finite
            ``alpha``, or ramp bounds that are not integers with
            ``0 <= ramp_start <= ramp_end``.

    Example:

    ```python
    classifier = dbn.to_classifier(10, dropout=0.2)
    pseudo = keras_dbn.PseudoLabel(classifier, alpha=3.0, ramp_start=200, ramp_end=1200)
    pseudo.compile(optimizer=keras.optimizers.Adam(1e-3))
    data = keras_dbn.semi_supervised_dataset(x_labelled, y_labelled, x_all, seed=0)
    pseudo.fit(data, steps_per_epoch=150, epochs=20)    # 3,000 updates
    error = 1 - pseudo.evaluate(x_test, y_test, return_dict=True)["accuracy"]
    classifier.save("classifier.keras")     # loads without keras_dbn
    ```

    References:
        Dong-Hyun Lee, "Pseudo-Label: The Simple and Efficient
        Semi-Supervised Learning Method for Deep Neural Networks", ICML 2013
        Workshop on Challenges in Representation Learning (eq. 15 and 16).
    """

    EXTRA_METRICS = ("unlabelled_crossentropy",)

    def __init__(
        self,
        classifier,
        alpha=DEFAULT_ALPHA,
        ramp_start=DEFAULT_RAMP_START,
        ramp_end=DEFAULT_RAMP_END,
        **kwargs,
    ):
        super().__init__(classifier, **kwargs)
        if not _is_integer(ramp_start) or ramp_start < 0:
            raise ValueError(f"`ramp_start` must be an integer >= 0 (updates), got {ramp_start!r}.")
        if not _is_integer(ramp_end) or ramp_end < ramp_start:
            raise ValueError(
                f"`ramp_end` must be an integer >= `ramp_start` ({ramp_start!r}), got {ramp_end!r}."
            )
        self.alpha = _positive_number("alpha", alpha, allow_zero=True)
        self.ramp_start = int(ramp_start)
        self.ramp_end = int(ramp_end)

    # -------------------------------------------------------------- schedule

    def alpha_at(self, step):
        """The weight ``alpha(t)`` of the unlabelled loss (Lee 2013, eq. 16).

        Args:
            step: the update count ``t``: a Python number or a scalar tensor.

        Returns:
            A float32 scalar tensor.

        Example:

        >>> pseudo = keras_dbn.PseudoLabel(classifier, alpha=3.0, ramp_start=200, ramp_end=1200)
        >>> [float(pseudo.alpha_at(t)) for t in (0, 200, 700, 1200, 5000)]
        [0.0, 0.0, 1.5, 3.0, 3.0]
        """
        t = ops.cast(step, "float32")
        if self.ramp_end == self.ramp_start:
            ramp = ops.cast(t >= self.ramp_end, "float32")
        else:
            ramp = ops.clip((t - self.ramp_start) / (self.ramp_end - self.ramp_start), 0.0, 1.0)
        return self.alpha * ramp

    # -------------------------------------------------------------- training

    def fit(self, x=None, y=None, *args, **kwargs):
        """`ClassifierTrainer.fit`; warns when no update would use the pseudo-labels.

        With ``alpha > 0``, a run whose updates all come before
        ``ramp_start``, or at it where the ramp rises from 0 there (counted
        on from ``optimizer.iterations``), gives the unlabelled loss weight
        0 throughout: it is supervised training on the labelled batches
        alone, which a UserWarning says before the run.
        The count is known when ``steps_per_epoch`` is given or the data
        are a dataset of known length.

        Returns:
            The `keras.callbacks.History` of the run.

        Example:

        >>> pseudo = keras_dbn.PseudoLabel(classifier, ramp_start=200, ramp_end=1200)
        >>> pseudo.compile(optimizer="adam")
        >>> pseudo.fit(data, steps_per_epoch=50, epochs=4)  # warns: updates 0-199 only
        """
        kwargs = _as_keywords(keras.Model.fit, ("x", "y"), args, kwargs)
        updates = self._planned_updates(x, kwargs)
        if self.alpha > 0 and updates is not None:
            first = int(self.optimizer.iterations)
            # A ramp is 0 at its start; a step (equal bounds) is alpha there.
            last_unweighted = self.ramp_start - (self.ramp_end == self.ramp_start)
            if 0 < updates and first + updates - 1 <= last_unweighted:
                user_warnings.warn(
                    f"PseudoLabel.fit runs updates {first} to {first + updates - 1}, none "
                    f"after update {last_unweighted} (ramp_start={self.ramp_start}, "
                    f"ramp_end={self.ramp_end}): the unlabelled loss has weight 0 "
                    "throughout, so this is supervised training on the labelled batches "
                    "alone. Run more updates (steps_per_epoch * epochs) or lower "
                    "ramp_start and ramp_end."
                )
        return super().fit(x, y, **kwargs)

    def _planned_updates(self, x, kwargs):
        """The number of updates ``fit(x, **kwargs)`` will run, or None where
        it is not known before the run (or the model is not compiled)."""
        if getattr(self, "optimizer", None) is None:
            return None
        epochs = kwargs.get("epochs", 1)
        steps = kwargs.get("steps_per_epoch")
        if steps is None:
            import tensorflow as tf

            if not isinstance(x, tf.data.Dataset):
                return None
            steps = int(x.cardinality())
            if steps < 0:  # infinite or unknown
                return None
        per_execution = self.steps_per_execution or 1
        # Keras runs whole executions of steps_per_execution updates.
        steps = math.ceil(steps / per_execution) * per_execution
        return steps * max(0, epochs - kwargs.get("initial_epoch", 0))

    def _step(self, x_labelled, y_labelled, x_unlabelled, sample_weight):
        # Pseudo-labels: the classes the network predicts right now, without
        # dropout, treated as constants.
        pseudo_labels = ops.stop_gradient(
            ops.argmax(self.classifier(x_unlabelled, training=False), axis=-1)
        )
        alpha = self.alpha_at(self.optimizer.iterations)

        def loss_terms():
            probabilities_l = self.classifier(x_labelled, training=True)
            probabilities_u = self.classifier(x_unlabelled, training=True)
            labelled_ce = ops.mean(self._crossentropy(y_labelled, probabilities_l))
            unlabelled_ce = ops.mean(self._crossentropy(pseudo_labels, probabilities_u))
            return labelled_ce + alpha * unlabelled_ce, labelled_ce, (unlabelled_ce,), probabilities_l

        logs = self._minimize(loss_terms, y_labelled)
        logs["alpha"] = alpha
        return logs

    # --------------------------------------------------------- serialization

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "ramp_start": self.ramp_start,
            "ramp_end": self.ramp_end,
        }


def _is_labelled_unlabelled_stream(data):
    """Whether ``data`` is a `tf.data.Dataset` of ``((x_l, y_l), x_u)`` batches."""
    spec = getattr(data, "element_spec", None)
    return (isinstance(spec, tuple) and len(spec) == 2
            and isinstance(spec[0], tuple) and len(spec[0]) == 2)


def semi_supervised_dataset(
    x_labelled,
    y_labelled,
    x_unlabelled,
    labelled_batch_size=32,
    unlabelled_batch_size=256,
    seed=None,
):
    """An endless `tf.data.Dataset` of ``((x_l, y_l), x_u)`` batches.

    The input of `PseudoLabel.fit` and `keras_dbn.VirtualAdversarial.fit`
    (also available as `pseudo_label_dataset`). Each side is drawn from its
    own random permutation, reshuffled at every pass over its data,
    independently of the other side. Batches run on across the end of a pass (a permutation
    follows the previous one), so every labelled example is used equally
    often and every batch has exactly its batch size; the first
    ``ceil(n / labelled_batch_size)`` labelled batches hold every labelled
    example. A batch size larger than its data is reduced to the data size.

    The stream never ends, so ``fit`` needs ``steps_per_epoch``: the number
    of updates is ``steps_per_epoch * epochs``. Lee (2013) used batches of 32
    labelled and 256 unlabelled examples, the defaults; the unlabelled set
    is typically all training inputs, labelled ones included.

    Args:
        x_labelled: inputs of the labelled examples, an array of shape
            ``(n, ...)``.
        y_labelled: their integer class labels, shape ``(n,)`` or ``(n, 1)``.
        x_unlabelled: unlabelled inputs, shape ``(m, ...)`` with the same
            trailing shape as ``x_labelled``.
        labelled_batch_size: labelled examples per batch (``min`` with ``n``).
        unlabelled_batch_size: unlabelled examples per batch (``min`` with
            ``m``).
        seed: integer seed of the two shuffles; ``None`` draws them from
            TensorFlow's global seed (``keras.utils.set_random_seed``).

    Returns:
        A `tf.data.Dataset` whose elements are ``((x_l, y_l), x_u)`` with
        shapes ``(b_l, ...)``, ``(b_l,)`` (or ``(b_l, 1)``) and ``(b_u, ...)``.

    Raises:
        ValueError: on empty inputs, inputs with NaN or infinite values,
            ``x_labelled`` and ``y_labelled`` of
            different lengths, labels that are not one integer >= 0 per example,
            inputs of different trailing shapes, or batch sizes that are not
            positive integers.
        TypeError: for a `tf.data.Dataset` given for an array.

    Example:

    ```python
    data = keras_dbn.semi_supervised_dataset(x_train[:100], y_train[:100], x_train, seed=0)
    (x_l, y_l), x_u = next(iter(data))      # shapes (32, 784), (32,), (256, 784)
    pseudo.fit(data, steps_per_epoch=100, epochs=10)
    ```
    """
    import tensorflow as tf

    for name, value in (("`x_labelled`", x_labelled), ("`y_labelled`", y_labelled),
                        ("`x_unlabelled`", x_unlabelled)):
        array_input.refuse_dataset(value, name, "semi_supervised_dataset")
    x_labelled = np.asarray(x_labelled)
    y_labelled = np.asarray(y_labelled)
    x_unlabelled = np.asarray(x_unlabelled)
    for name, size in (
        ("labelled_batch_size", labelled_batch_size),
        ("unlabelled_batch_size", unlabelled_batch_size),
    ):
        if not _is_integer(size) or size < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {size!r}.")
    seed = checked_seed(seed)
    if seed is not None and seed + 1 >= 2**63:  # the unlabelled side's is seed + 1
        raise ValueError(f"`seed` must be under 2**63 - 1, got {seed!r}.")
    if x_labelled.ndim < 1 or not len(x_labelled):
        raise ValueError("`x_labelled` holds no examples.")
    if x_unlabelled.ndim < 1 or not len(x_unlabelled):
        raise ValueError("`x_unlabelled` holds no examples.")
    array_input.check_finite(x_labelled, "`x_labelled`")
    array_input.check_finite(x_unlabelled, "`x_unlabelled`")
    if y_labelled.ndim < 1 or len(y_labelled) != len(x_labelled):
        raise ValueError(
            f"`x_labelled` and `y_labelled` must have the same length, got "
            f"{len(x_labelled)} and {len(y_labelled) if y_labelled.ndim else 'a scalar'}."
        )
    y_labelled = _checked_labels(y_labelled, "y_labelled")
    if x_labelled.shape[1:] != x_unlabelled.shape[1:]:
        raise ValueError(
            f"Labelled and unlabelled inputs must have the same shape per example, got "
            f"{x_labelled.shape[1:]} and {x_unlabelled.shape[1:]}."
        )

    def side(arrays, batch_size, side_seed):
        n = len(arrays[0])
        tensors = tuple(tf.convert_to_tensor(a) for a in arrays)
        indices = (
            tf.data.Dataset.range(n)
            .shuffle(n, seed=side_seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(min(batch_size, n), drop_remainder=True)
        )
        return indices.map(
            lambda i: tuple(tf.gather(t, i) for t in tensors),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    labelled = side((x_labelled, y_labelled), labelled_batch_size, seed)
    unlabelled = side((x_unlabelled,), unlabelled_batch_size, None if seed is None else seed + 1)
    return tf.data.Dataset.zip(labelled, unlabelled).map(
        lambda l, u: ((l[0], l[1]), u[0])
    ).prefetch(tf.data.AUTOTUNE)


#: The name `semi_supervised_dataset` had before `VirtualAdversarial` read it too.
pseudo_label_dataset = semi_supervised_dataset
