"""The Deep Belief Network: a stack of RBMs trained greedily."""

import contextlib
import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_dbn import array_input
from keras_dbn import units as units_lib
from keras_dbn import user_warnings
from keras_dbn.callbacks import ImageGridCallback
from keras_dbn.extra_state import ExtraStateMixin
from keras_dbn.progress import callback_list
from keras_dbn.rbm import (
    RBM,
    TrainingDiverged,
    _array_batch_size,
    _as_float32,
    _host_validation_data,
    _is_dataset,
    _is_multi_replica,
    checked_count,
    checked_sample_count,
    checked_seed,
    export_model,
    split_validation,
)
from keras_dbn.tf_logging import quiet_keras_retracing

# Activations of one layer for the whole dataset are kept in memory below
# this many bytes (faster than recomputing them every epoch); above it the
# lower layers are applied batch by batch as the data streams past.
_CACHE_LIMIT_BYTES = 2 * 1024**3


def _predicted(rbm, data, batch_size=1000, dtype="float32"):
    """``p(h | v)`` of ``rbm`` for NumPy data, in ``dtype`` whatever its policy.

    An RBM with a ``mixed_bfloat16`` policy predicts bfloat16 arrays; NumPy
    code gets float32, and the layer above gets ``dtype`` (`_feature_dtype`).
    Batches are read from ``data`` and written into one preallocated
    result: ``predict()`` on the whole array would also hold Keras' copies
    of the input and a list of per-batch outputs next to the concatenated
    result, which is 64-byte aligned so that training the layer above
    gathers its batches from a zero-copy view (`array_input.array_dataset`).
    """
    if rbm.built and data.shape[1] != rbm.num_visible:
        # Keras' batch predictions trace with the width unknown, so the
        # RBM's own check cannot see it.
        raise rbm._width_error(data.shape[1])
    out = array_input.aligned_empty((len(data), rbm.units), dtype=dtype)
    if _is_multi_replica(rbm):
        # Keras' `predict_on_batch` returns each replica's copy of the rows.
        out[:] = np.asarray(rbm.predict(data, batch_size=batch_size, verbose=0))
        return out
    for start in range(0, len(data), batch_size):
        stop = start + batch_size
        out[start:stop] = np.asarray(rbm.predict_on_batch(data[start:stop]))  # converts to dtype
    return out


def _feature_dtype(below, above):
    """The dtype in which ``below``'s activations are kept for ``above``.

    bfloat16 where both compute in bfloat16: ``below`` predicts bfloat16
    and ``above``'s GEMMs read bfloat16, so a float32 copy would hold the
    same values in twice the memory, and ``above`` would round them again
    in every step (`RBM.fit` reads bfloat16 data as they are).
    """
    if below.compute_dtype == above.compute_dtype == "bfloat16":
        return "bfloat16"
    return "float32"


def _as_data_array(x, keep_dtype=False):
    """``x`` as a 2-D array: float32, or bfloat16 data kept as they are.

    With ``keep_dtype`` any numeric array keeps its dtype, for code that
    reads it batch by batch (`RBM.fit`, `_predicted`): converted whole, a
    uint8 array of images would be copied into one four times its size.
    """
    if _is_dataset(x):
        raise TypeError(
            "This takes a NumPy array (rows are examples), not a tf.data.Dataset; "
            "`dbn.predict(dataset)` gives the top layer's probabilities of a dataset."
        )
    if hasattr(x, "__next__") or isinstance(x, keras.utils.PyDataset):
        # np.asarray would make it a 0-d object array ("got shape ()").
        raise TypeError(
            f"Got a {type(x).__name__}: pass a NumPy array (rows are examples), or to "
            "DBN.pretrain a batched tf.data.Dataset (tf.data.Dataset.from_generator "
            "wraps a generator)."
        )
    array_input.refuse_sparse(x, "The data")
    x = np.asarray(x)
    array_input.check_rank(x.shape)
    if not array_input.is_numeric(x.dtype):
        raise ValueError(f"RBM data must be numeric, got dtype {x.dtype}.")
    if not (keep_dtype or array_input.is_bfloat16(x.dtype)):
        x = x.astype("float32", copy=False)
    return x.reshape(len(x), math.prod(x.shape[1:]))  # -1 fails for no rows


def _made_updates(rbm):
    """Whether ``rbm``'s optimizer has updated it."""
    optimizer = rbm.optimizer
    return optimizer is not None and optimizer.built and bool(int(optimizer.iterations.numpy()))


def _untrained(rbm):
    """Whether ``rbm`` holds no trained weights: no updates by its optimizer,
    and visible biases still at their zero initial values (weights loaded
    or trained under another optimizer have them set)."""
    return not _made_updates(rbm) and not np.any(rbm.visible_bias.numpy())


def _dense_activation(rbm):
    """The Keras activation of the Dense layer that stands for ``rbm``'s
    hidden units: their ``keras_activation``, once checked to give their
    mean (a custom unit type may inherit one that does not)."""
    units = rbm.hidden_units
    name = units.keras_activation
    grid = np.linspace(-8.0, 8.0, 33, dtype="float32")[None]
    if name is None or not np.allclose(
        ops.convert_to_numpy(units.mean(grid)),
        ops.convert_to_numpy(keras.activations.get(name)(grid)),
        atol=1e-6,
    ):
        raise ValueError(
            f"The classifier's Dense layer for {rbm.name} needs a Keras activation that "
            f"gives its hidden units' mean, and {type(units).__name__} names "
            f"{'none' if name is None else repr(name) + ', which does not'}: set "
            "`keras_activation` on the unit type (e.g. \"relu\")."
        )
    return name


def _same_optimizer(compiled, requested):
    """Whether ``requested`` (an optimizer, its name or config, or None) is
    ``compiled`` again: None, or the same class and configuration."""
    if requested is None:
        return True
    if isinstance(requested, keras.optimizers.Optimizer):
        if requested is compiled:
            return True
    else:
        try:
            requested = keras.optimizers.get(requested)
        except (ValueError, TypeError):
            return False

    def config(optimizer):  # Keras numbers the names of new optimizers
        return {k: v for k, v in optimizer.get_config().items() if k != "name"}

    return type(requested) is type(compiled) and config(requested) == config(compiled)


def _per_layer(value, count, name):
    """Broadcasts a scalar option to one value per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"`{name}` has {len(value)} entries for {count} layers.")
        return list(value)
    return [value] * count


def _check_given_rbm(rbm, index, options):
    """Refuses a per-layer list entry that an `RBM` given to `DBN` as a layer
    would silently override (``k=[5, 1]`` over ``RBM(64)``'s ``k=1``)."""
    own = {"k": rbm.k, "persistent": rbm.persistent, "hidden": rbm.hidden_units.name}
    for name, value in options.items():
        if not isinstance(value, (list, tuple)) or index >= len(value) or value[index] is None:
            continue
        wanted = value[index]
        if name == "hidden":
            wanted = units_lib.get(wanted).name
        if wanted != own[name]:
            raise ValueError(
                f"Layer {index} is an RBM given as is, with {name}={own[name]!r}: "
                f"`{name}`'s entry {value[index]!r} for it would be ignored. Set it on the "
                "RBM, or give the layer as a size."
            )


def _layer_callbacks(callbacks, count):
    """`DBN.pretrain`'s ``callbacks`` as one list per layer.

    A list of callbacks is shared by every layer; a list of lists (or
    None entries) gives each layer its own.

    Raises:
        ValueError: for a per-layer list of the wrong length, or one that
            mixes lists and callbacks.
    """
    callbacks = callback_list(callbacks)
    nested = [isinstance(c, (list, tuple)) or c is None for c in callbacks]
    if not any(nested):
        return [callbacks] * count
    if not all(nested):
        raise ValueError(
            "`callbacks` must be a list of callbacks (shared by every layer) or a list "
            "of lists, one per layer; this one mixes both."
        )
    if len(callbacks) != count:
        raise ValueError(f"`callbacks` has {len(callbacks)} per-layer lists for {count} layers.")
    return [list(c or []) for c in callbacks]


@keras.saving.register_keras_serializable(package="keras_dbn")
class DBN(ExtraStateMixin, keras.Model):
    """A Deep Belief Network: RBMs stacked and trained greedily, layer by layer.

    Each RBM is trained with its own ``fit()`` on the hidden activations
    ``p(h | v)`` that the RBMs below it produce from the data (Hinton, Osindero
    & Teh 2006, section 4). The trained stack then serves three purposes:

    * ``to_classifier()`` converts it to a plain ``keras.Sequential`` of Dense
      layers initialised from the RBM weights, to fine-tune on labels
      (Hinton & Salakhutdinov 2006);
    * ``generate()`` draws samples: a Gibbs chain in the top RBM, then one
      ancestral pass down through ``p(v | h)`` of every lower RBM;
    * ``call(x)`` gives the top layer's hidden probabilities as features.

    Args:
        layers: list of hidden layer sizes (e.g. ``[500, 500, 2000]``) or of
            `RBM` instances (for full per-layer control), or both. An `RBM`
            given keeps its own settings (``k``, ``persistent``, units,
            seed, dtype policy): the options below concern the layers given
            as sizes, and a per-layer list's entry for an `RBM` given must
            agree with it (or be None).
        visible: unit type of the data, ``"bernoulli"`` or ``"gaussian"``
            (first RBM only; an upper RBM built from a size has the visible
            units of the hidden ones below it).
        hidden: hidden unit type of every RBM built from a size, or a list
            (e.g. ``["bernoulli", "gaussian"]`` for a linear top layer).
        k: Gibbs steps per CD update, an int or one per layer.
        persistent: PCD instead of CD, a bool or one per layer.
        seed: integer seed; layer ``i`` (given as a size) gets ``seed + i``.
        rbm_kwargs: further `RBM` arguments for the layers built from sizes
            (``sparsity_target``, ``num_chains``, ...).
        **kwargs: passed to `keras.Model`; a ``dtype`` (e.g.
            ``"mixed_bfloat16"``) is also the policy of the RBMs built from
            sizes, unless ``rbm_kwargs`` names one.

    Example:

    ```python
    dbn = keras_dbn.DBN([500, 500, 2000], k=1, seed=0)
    dbn.pretrain(x_train, epochs=10, batch_size=100)
    clf = dbn.to_classifier(num_classes=10, dropout=0.1)
    clf.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    # array_dataset: the arrays read in place, without the stall that
    # Keras' own array pipeline may add at each epoch's end.
    clf.fit(keras_dbn.array_dataset(x_train, y_train, batch_size=100), epochs=10,
            shuffle=False)
    digits = dbn.generate(16, gibbs_steps=1000)
    ```

    References:
        Hinton, Osindero & Teh, "A Fast Learning Algorithm for Deep Belief
        Nets", Neural Computation 18(7), 2006.
        Hinton & Salakhutdinov, "Reducing the Dimensionality of Data with
        Neural Networks", Science 313, 2006.
    """

    def __init__(
        self,
        layers,
        visible="bernoulli",
        hidden="bernoulli",
        k=1,
        persistent=False,
        seed=None,
        rbm_kwargs=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        seed = checked_seed(seed)
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ValueError(f"`layers` must be a non-empty list of sizes or RBMs, got {layers!r}.")
        count = len(layers)
        if seed is not None and seed + count - 1 >= 2**63:
            raise ValueError(f"`seed` must be under 2**63 - {count - 1} for {count} layers "
                             f"(layer i gets seed + i), got {seed!r}.")
        hiddens = _per_layer(hidden, count, "hidden")
        ks = _per_layer(k, count, "k")
        persistents = _per_layer(persistent, count, "persistent")
        rbm_kwargs = dict(rbm_kwargs or {})
        if kwargs.get("dtype") is not None:
            rbm_kwargs.setdefault("dtype", kwargs["dtype"])
        rbms = []
        for i, layer in enumerate(layers):
            if isinstance(layer, dict):  # from get_config
                layer = keras.saving.deserialize_keras_object(layer)
            if isinstance(layer, RBM):
                _check_given_rbm(layer, i, {"k": k, "persistent": persistent, "hidden": hidden})
            else:
                below = rbms[i - 1].hidden_units if i else None
                if below is not None and not (below.discrete
                                              or units_lib.get(hiddens[i]).discrete):
                    raise ValueError(
                        f"Layer {i} would be a Gaussian-Gaussian RBM (its data are the "
                        "real-valued Gaussian hidden units below), which has no "
                        "normalisable distribution: give Gaussian hidden units only "
                        "to layers under Bernoulli ones or to the top, e.g. "
                        "hidden=['bernoulli', 'gaussian']."
                    )
                layer = RBM(
                    layer,
                    # An upper RBM's data are the hidden activations below.
                    visible=visible if below is None else below,
                    hidden=hiddens[i],
                    k=ks[i],
                    persistent=persistents[i],
                    seed=None if seed is None else seed + i,
                    name=f"rbm_{i}",
                    **rbm_kwargs,
                )
            if any(layer is other for other in rbms):
                raise ValueError(f"The RBM {layer.name} is given as two layers: each layer "
                                 "needs an RBM of its own.")
            rbms.append(layer)
        for lower, upper in zip(rbms, rbms[1:]):
            if upper.visible_units.name != lower.hidden_units.name:
                raise ValueError(
                    f"RBM {upper.name} has {upper.visible} visible units but sits on "
                    f"{lower.hidden} hidden units of {lower.name}."
                )
        self.rbms = rbms
        self.seed = seed

    # ----------------------------------------------------------------- build

    def build(self, input_shape):
        shape = (None, int(np.prod(input_shape[1:])))
        for index, rbm in enumerate(self.rbms):
            if not rbm.built:
                # Its weights in the scope of the strategy it was made under.
                with rbm.distribute_strategy.scope():
                    rbm.build(shape)
            elif rbm.num_visible != shape[1]:
                below = "the data give" if index == 0 else "the layer below gives"
                raise ValueError(
                    f"{rbm.name} expects {rbm.num_visible} inputs but {below} {shape[1]}."
                )
            shape = (None, rbm.units)
        self.built = True

    def _require_weights(self, message="The DBN has no weights yet: pretrain it first."):
        """Raises ``ValueError(message)`` unless the DBN has its weights.

        A DBN made of RBMs that are all built already (trained on their
        own, or loaded) is built here, which checks that each RBM's visible
        units are as many as the hidden units below it.
        """
        if not self.built and all(rbm.built for rbm in self.rbms):
            self.build((None, self.rbms[0].num_visible))
        if not self.built:
            raise ValueError(message)

    @property
    def num_visible(self):
        return self.rbms[0].num_visible

    def call(self, inputs):
        """Top-layer hidden probabilities, propagated up through every RBM."""
        x = inputs
        for rbm in self.rbms:
            x = rbm.hidden_given_visible(x)
        return x

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None,
               **kwargs):
        """`keras.Model.export` of `call` (the top layer's hidden means),
        for rows of ``num_visible`` values unless ``input_signature`` says
        otherwise, served in float32 under a mixed policy too. For a
        classifier, export `to_classifier`'s model
        (`keras_dbn.export_saved_model`)."""
        self._require_weights()
        return export_model(self, super().export, filepath, format, verbose,
                            input_signature, **kwargs)

    def predict_step(self, data):
        """`keras.Model.predict_step`, in float32 under a mixed policy too,
        as `transform` gives it (`RBM.predict_step`)."""
        return _as_float32(super().predict_step(data))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.rbms[-1].units)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """`keras.Model.predict`: the top layer's hidden means, as `call` gives.

        NumPy data are checked as `RBM.predict` checks them and read in
        order by `array_input.evaluation_input`.

        Args:
            x, batch_size, verbose, steps, callbacks: as for
                `keras.Model.predict`.

        Returns:
            A NumPy array of shape ``(examples, units of the top RBM)``,
            float32 under a mixed policy too, as `transform` gives (float64
            under a float64 policy, where `transform` gives float32).

        Raises:
            ValueError: for a DBN not pretrained (nor built) yet.
            ValueError: for an array that holds no examples, that is not
                finite, outside [0, 1] for Bernoulli units, or whose width
                is not the DBN's number of visible units.

        Example:

        >>> features = dbn.predict(x_test, batch_size=1000, verbose=0)
        """
        self._require_weights()
        if isinstance(x, list):
            x = np.asarray(x)
        x, batch_size, _ = self.rbms[0]._evaluation_input(x, batch_size)
        return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps,
                               callbacks=callbacks)

    def transform(self, x, num_layers=None, batch_size=1000):
        """Hidden probabilities of the first ``num_layers`` RBMs for NumPy data.

        Args:
            x: data, shape ``(n, num_visible)``.
            num_layers: how many RBMs to apply (default: all).
            batch_size: rows per forward pass.

        Returns:
            NumPy array of shape ``(n, units of layer num_layers)``.

        Raises:
            ValueError: for a DBN not pretrained (nor built) yet, whose
                features would come from random weights.
            ValueError: for a ``num_layers`` outside ``0 .. len(rbms)``, a
                ``batch_size`` that is no integer >= 1, and data that the
                first RBM refuses (not finite, outside [0, 1] for Bernoulli
                units, or whose width is not the DBN's number of visible
                units).

        Example:

        >>> features = dbn.transform(x_test)  # the top layer's, shape (len(x_test), 2000)
        >>> top_input = dbn.transform(x_train, num_layers=len(dbn.rbms) - 1)
        """
        num_layers = len(self.rbms) if num_layers is None else num_layers
        if checked_count(num_layers, "`num_layers`") > len(self.rbms):
            raise ValueError(
                f"`num_layers` is {num_layers}, but the DBN has {len(self.rbms)} RBMs."
            )
        batch_size = checked_count(batch_size, "`batch_size`", 1)
        if num_layers:
            self._require_weights()
        x = _as_data_array(x, keep_dtype=True)
        self.rbms[0]._check_data(x)
        if not num_layers:
            return x.astype("float32", copy=False)
        for rbm in self.rbms[:num_layers]:
            x = _predicted(rbm, x, batch_size=batch_size)
        return x

    # -------------------------------------------------------------- training

    def pretrain(
        self,
        x,
        epochs=10,
        batch_size=100,
        optimizer=None,
        callbacks=None,
        validation_data=None,
        verbose="auto",
        sample=False,
        init_visible_bias=True,
        cache_bytes=None,
        **fit_kwargs,
    ):
        """Greedy layer-wise pretraining (Hinton, Osindero & Teh 2006, section 4).

        RBM ``i`` is trained by its own ``fit()`` on the hidden probabilities
        of RBMs ``0 .. i-1`` driven by the data. For NumPy data those
        activations are computed once per layer and held while that layer
        trains, when one layer's worth fits in ``cache_bytes`` (while the
        next layer's are computed, two are held); otherwise, and for
        `tf.data.Dataset` input, the lower layers are applied batch by batch
        as the data streams past. NumPy input itself is read batch by batch,
        never copied whole.

        Args:
            x: NumPy array ``(n, features)`` with values in [0, 1] (Bernoulli
                visible units), or a batched `tf.data.Dataset` of ``x`` or
                ``(x, y)`` (labels are ignored).
            epochs: epochs per layer, an int >= 0 or one per layer.
            batch_size: batch size for NumPy input, an int or one per layer;
                None takes `RBM.fit`'s (Keras' 32).
            optimizer: optimizer for RBMs not compiled yet: a name, a config
                or an instance (cloned for each layer), or one per layer. An
                RBM compiled already keeps its optimizer, and its state,
                where this one has the same class and configuration (a
                pretraining resumed with the same call goes on as it would
                have), and is compiled with this one otherwise.
                Default: each RBM's own (`RBM.compile`): ``SGD(0.1,
                momentum=0.5)``, with a learning rate of 0.01 for an RBM
                with a Gaussian layer.
            callbacks: Keras callbacks passed to every layer's ``fit()``,
                or a list of such lists, one per layer (e.g. a
                `keras.callbacks.TensorBoard` with its own ``log_dir`` per
                layer: one shared by the layers would draw each layer's
                epochs over the one below's in one run, and warns). Shared
                callbacks see each layer in turn, so a `ModelCheckpoint`
                saves the RBM being trained, and each layer's files replace
                the one below's (save the DBN after pretraining instead;
                with ``save_best_only`` each layer's figures are compared
                with that layer's best, not with the layer below's), and a
                `CSVLogger` needs ``append=True`` to keep every layer's
                rows. A `BackupAndRestore` shared by several layers is
                refused (each would restore the same backup); one per layer
                works, but Keras deletes each layer's backup when that
                layer's ``fit()`` ends: rerunning a stopped call trains
                the layers that had finished once more. Keep the backups
                (``delete_checkpoint=False``, then remove them when the
                pretraining is done, or the next run restores them), or
                save the DBN after each layer and rerun the loaded one with
                ``epochs=0`` for the layers done.
            validation_data: held-out data, propagated up like the training
                data: a NumPy array, ``(x, y)``, or a batched
                `tf.data.Dataset` of ``x`` or ``(x, y)``.
            verbose: Keras verbosity of each ``fit()``; a header names each
                layer unless ``verbose=0``.
            sample: train upper layers on states sampled from the layers
                below (binary for Bernoulli hidden units, the mean plus
                standard normal noise for Gaussian ones; fresh samples each
                epoch) instead of their conditional means.
            init_visible_bias: set each RBM's visible biases from the mean
                of its input before training (practical guide, section 8.1)
                when ``x`` is a NumPy array (for the layers above, the mean
                of their cached or streamed activations, or of the states
                drawn with ``sample``) and the RBM is untrained (no updates
                yet and its visible biases still zero); an RBM above the
                first in the call that trains it (from the layers below as
                they then are), the first also in a call of no epochs.
            cache_bytes: the most memory one layer's cached activations may
                take (default 2 GiB); ``0`` always streams (least memory,
                the lower layers are recomputed every epoch).
            **fit_kwargs: further ``fit()`` arguments (``shuffle``, ...).
                ``validation_split`` (NumPy data only) holds out the data's
                last rows once, for every layer, as Keras' ``fit`` would.

        Returns:
            A list with the `keras.callbacks.History` of each layer.

        Raises:
            ValueError: for per-layer options of the wrong length, epochs
                that are not integers >= 0, and data that `RBM.fit` refuses
                (not finite, outside [0, 1] for Bernoulli units, of the
                wrong width or without rows).
            FloatingPointError: when a layer's training diverges (`RBM.fit`):
                pretraining stops there, that layer keeps the weights of the
                start of its failed epoch and the layers above stay untrained.

        Example:

        >>> histories = dbn.pretrain(x_train, epochs=10, batch_size=100, validation_data=x_val)
        >>> [h.history["reconstruction_error"][-1] for h in histories]  # one per layer
        """
        import tensorflow as tf

        if cache_bytes is not None and (isinstance(cache_bytes, bool) or not isinstance(
                cache_bytes, numbers.Real) or not cache_bytes >= 0):
            raise ValueError(f"`cache_bytes` must be a number >= 0 or None, got {cache_bytes!r}.")
        count = len(self.rbms)
        if (isinstance(epochs, np.ndarray) and epochs.shape == (count,)
                and epochs.dtype.kind in "iu"):
            epochs = epochs.tolist()  # one per layer
        if hasattr(epochs, "shape") and getattr(epochs, "ndim", 0) > 0:
            # Keras' fit(x, y): labels given where `epochs` stands.
            raise TypeError(
                "DBN.pretrain takes no labels: pretraining is unsupervised, and its second "
                "argument is `epochs`. Fine-tune on labels with "
                "`dbn.to_classifier(num_classes)` and that classifier's fit(x, y)."
            )
        epochs = [checked_count(e, "`epochs`") for e in _per_layer(epochs, count, "epochs")]
        layer_callbacks = _layer_callbacks(callbacks, count)
        every_callback = list({id(c): c for layer in layer_callbacks for c in layer}.values())
        for callback in every_callback:
            layers_seen = sum(callback in layer for layer in layer_callbacks)
            if isinstance(callback, keras.callbacks.TensorBoard) and layers_seen > 1:
                user_warnings.warn(
                    "A TensorBoard callback shared by the layers of DBN.pretrain writes each "
                    "layer's epochs over the one below's, in one run. Give each layer its "
                    "own, e.g. callbacks=[[keras.callbacks.TensorBoard(f'logs/{rbm.name}')] "
                    "for rbm in dbn.rbms]."
                )
            if isinstance(callback, keras.callbacks.BackupAndRestore) and layers_seen > 1:
                raise ValueError(
                    "A BackupAndRestore shared by the layers of DBN.pretrain would restore "
                    "one layer's backup into the next RBM. Give each layer its own (one list "
                    "of callbacks per layer), or save the DBN after each layer "
                    "(pretrain(..., epochs=[n, 0, 0]), dbn.save(...)) and resume with epochs "
                    "of 0 for the layers done."
                )
            above_first = any(callback in layer for layer in layer_callbacks[1:])
            if isinstance(callback, ImageGridCallback) and callback.rbm is None and above_first:
                # It would show each layer's filters: the second layer's
                # are not images, and training would stop there.
                raise ValueError(
                    "An ImageGridCallback in DBN.pretrain needs rbm=dbn (the first "
                    "layer's filters and the DBN's samples) or rbm=dbn.rbms[0]."
                )
        batch_sizes = _per_layer(batch_size, count, "batch_size")
        optimizers = _per_layer(optimizer, count, "optimizer")
        for layer_optimizer in optimizers:  # each checked now, not when its layer starts
            self._fresh_optimizer(layer_optimizer)
        # Each checked now, not when its layer starts (a sampled validation
        # array reads them with dataset input too).
        batch_sizes = [b if b is None else array_input.checked_batch_size(b)
                       for b in batch_sizes]
        is_numpy = not isinstance(x, tf.data.Dataset)
        if is_numpy:  # read batch by batch in its own dtype, never copied whole
            x = _as_data_array(x, keep_dtype=True)
            # None: the size `RBM.fit` would take (Keras' 32, or that of
            # `steps_per_epoch`), for every layer, cached or streamed.
            default = _array_batch_size(len(x), fit_kwargs.get("steps_per_epoch"), 0.0, None)
            batch_sizes = [(default or 32) if b is None else b for b in batch_sizes]
            self.build(x.shape)
        else:
            self.build(self._dataset_feature_shape(x))
        val = _host_validation_data(validation_data)
        val = val[0] if isinstance(val, (tuple, list)) else val
        if isinstance(val, tf.data.Dataset):
            self._check_validation_dataset(val)
        elif val is not None:
            val = _as_data_array(val, keep_dtype=True)
        validation_split = fit_kwargs.pop("validation_split", 0.0)
        if validation_split and val is None and is_numpy:
            # Split once, as Keras would for the first layer: the layers
            # above may be fed from a stream, which Keras cannot split.
            x, val = split_validation(x, validation_split)
        elif validation_split and val is None:
            raise ValueError(
                "`validation_split` needs NumPy data; pass a tf.data.Dataset's "
                "held-out batches as `validation_data`."
            )
        # A seeded DBN shuffles and samples reproducibly, yet differently on
        # each call that trains a layer. Counted per layer: a pretraining
        # split into calls (epochs=[n, 0], then [0, n]) draws as one call
        # would.
        earlier_calls = self._layer_pretrain_calls()
        # Epochs this call runs: none where `initial_epoch` is at `epochs`.
        trains = [layer_epochs > fit_kwargs.get("initial_epoch", 0) for layer_epochs in epochs]
        self._pretrain_calls = [calls + bool(t) for calls, t in zip(earlier_calls, trains)]
        # Restored at the end: a `pretrain` called from a callback of this one.
        outer = getattr(self, "_running_pretrain", None)
        self._running_pretrain = (earlier_calls, [rbm._update_count() for rbm in self.rbms])
        try:
            return self._pretrain_layers(
                x, epochs, trains, batch_sizes, optimizers, layer_callbacks, every_callback,
                val, earlier_calls, is_numpy, verbose, sample, init_visible_bias, cache_bytes,
                fit_kwargs)
        except BaseException:
            # A refused or stopped call leaves a seeded DBN training as it would have.
            self._pretrain_calls = self._settled_pretrain_calls()
            raise
        finally:
            self._running_pretrain = outer

    def _pretrain_layers(self, x, epochs, trains, batch_sizes, optimizers, layer_callbacks,
                         every_callback, val, earlier_calls, is_numpy, verbose, sample,
                         init_visible_bias, cache_bytes, fit_kwargs):
        """`pretrain`'s loop over the layers, its arguments checked."""
        count = len(self.rbms)
        histories = []
        layer_input, layer_val = x, val
        shuffle = fit_kwargs.get("shuffle", True)
        # The last inputs that are plain arrays (no shuffling or sampling
        # state) and the layers they feed. A layer's streamed or sampled
        # input is built afresh from there, with seeds of that layer's own:
        # reusing the stream a layer below trained on would carry on from
        # where its epochs left the shuffle and the draws, so that a
        # pretraining split into calls would train otherwise than one call.
        fixed, fixed_val = (x, 0), (val, 0)
        memo, memo_val = {}, {}  # the sampled streams' cached activations

        def stage_seed(i, j):
            """The seed of layer ``j``'s activations in layer ``i``'s input."""
            if self.rbms[i].seed is None:
                return None
            return (self.rbms[i].seed * 1_000_003 + earlier_calls[i] + 1
                    + 7_919 * (i - j)) % (2**31 - 1)

        def training_input(i):
            data, start = fixed
            for j in range(start + 1, i + 1):
                data = self._propagate(
                    data, self.rbms[j - 1], sample, batch_sizes[j],
                    _feature_dtype(self.rbms[j - 1], self.rbms[j]), shuffle=shuffle,
                    cache_bytes=cache_bytes, seed=stage_seed(i, j),
                    rebatch_rows=len(x) if is_numpy and batch_sizes[j] != batch_sizes[j - 1]
                    else None, memo=memo)
            return data

        def validation_input(i):
            data, start = fixed_val
            for j in range(start + 1, i + 1):
                below, dtype = self.rbms[j - 1], _feature_dtype(self.rbms[j - 1], self.rbms[j])
                if sample:
                    # Sampled as the training data are, from a stream of
                    # their own: a layer's monitors (the free-energy
                    # gap) then compare like with like.
                    seed = stage_seed(i, j)
                    data = self._propagate(
                        data, below, True,
                        batch_sizes[j] if isinstance(batch_sizes[j], int) else 1000, dtype,
                        shuffle=False, cache_bytes=cache_bytes,
                        seed=None if seed is None else (seed + 1) % (2**31 - 1), memo=memo_val)
                elif isinstance(data, np.ndarray):
                    data = _predicted(below, data, dtype=dtype)
                else:
                    data = self._propagate(data, below, False, None, dtype)
            return data
        # Keras' ModelCheckpoint keeps its best figure across fit() calls: one
        # layer's figures would be compared with another's, and a layer whose
        # error stays above the first layer's would never be saved.
        checkpoints = [(callback, callback.best) for callback in every_callback
                       if isinstance(callback, keras.callbacks.ModelCheckpoint)]
        # Each layer's RBM traces its own Keras functions (fit, and predict
        # for the validation data above): TensorFlow would call that retracing.
        with quiet_keras_retracing():
            for i, rbm in enumerate(self.rbms):
                for callback, best in checkpoints:
                    callback.best = best
                if verbose != 0:
                    print(
                        f"Pretraining layer {i + 1}/{count}: {rbm.name} "
                        f"({rbm.num_visible} {rbm.visible} -> {rbm.units} {rbm.hidden}, "
                        f"{'PCD' if rbm.persistent else 'CD'}-{rbm.k})",
                        flush=True,
                    )
                if i > 0:
                    layer_input = training_input(i)
                    if isinstance(layer_input, np.ndarray):
                        fixed = (layer_input, i)
                    if val is not None:
                        layer_val = validation_input(i)
                        if isinstance(layer_val, np.ndarray):
                            fixed_val = (layer_val, i)
                if not rbm.compiled or not _same_optimizer(rbm.optimizer, optimizers[i]):
                    # In the scope of the strategy the RBM was created under, if
                    # any: the fresh optimizer's variables are made here too.
                    with rbm.distribute_strategy.scope():
                        rbm.compile(optimizer=self._fresh_optimizer(optimizers[i]))
                # An upper layer's biases start from the activations below in
                # the call that trains it: the layers below are then as one
                # call would have left them, also where the layers' epochs
                # were given in calls of their own (``epochs=[2, 0, 0]``,
                # continued later). The bottom layer's start is the data's,
                # set by any call.
                untrained = _untrained(rbm)
                if init_visible_bias and untrained and (trains[i] or i == 0):
                    if isinstance(layer_input, np.ndarray):
                        rbm.initialize_visible_bias(layer_input)
                    elif is_numpy:
                        # Streamed from NumPy data (or sampled): the mean of about
                        # one pass, as a cached input gives it, so that
                        # `cache_bytes` and `sample` leave the start alone. The
                        # pass is the first of a copy of the stream: read from
                        # the stream itself, it would start the training's
                        # epochs at its second pass, and only in the call that
                        # sets the biases.
                        rbm.initialize_visible_bias(
                            training_input(i).take(math.ceil(len(x) / batch_sizes[i])))
                layer_kwargs = dict(fit_kwargs)
                if isinstance(layer_input, np.ndarray):
                    layer_kwargs["batch_size"] = batch_sizes[i]
                else:  # datasets arrive batched and shuffled
                    layer_kwargs["shuffle"] = False
                if i > 0 and is_numpy and fit_kwargs.get("steps_per_epoch") and not isinstance(
                        layer_input, np.ndarray):
                    # Streamed from an array, as `RBM.fit` streams one: every
                    # epoch makes exactly `steps_per_epoch` updates, whether the
                    # layer's input is cached or streamed.
                    layer_input = layer_input.repeat()
                # Above the bottom layer the input is the layer below's
                # activations, not data a user could check.
                rbm._input_from_below = i > 0
                try:
                    history = rbm.fit(
                        layer_input,
                        epochs=epochs[i],
                        callbacks=list(layer_callbacks[i]),
                        validation_data=layer_val,
                        verbose=verbose,
                        **layer_kwargs,
                    )
                except TrainingDiverged as error:
                    what = f"DBN.pretrain, layer {i + 1} of {len(self.rbms)} ({rbm.name}): "
                    what += error.what
                    below = " and 0 `epochs` for the layers below it" if i else ""
                    raise TrainingDiverged(
                        f"{what} To go on, call pretrain again with a lower rate for that "
                        f"layer in its `optimizer` (one per layer; it replaces a rate set on "
                        f"the RBM's optimizer by hand){below}: Gaussian units usually need "
                        f"10-100x less than Bernoulli ones.{error.data_note}",
                        epoch=error.epoch, what=what, data_note=error.data_note,
                        layer=i + 1, layers=len(self.rbms),
                    ) from None
                finally:
                    rbm._input_from_below = False
                history.layer_name = rbm.name
                histories.append(history)
        return histories

    @staticmethod
    def _fresh_optimizer(optimizer):
        if optimizer is None:
            return None  # the RBM's own default (`RBM.compile`)
        if isinstance(optimizer, keras.optimizers.Optimizer):
            # An optimizer holds per-variable state: one instance per RBM.
            return optimizer.__class__.from_config(optimizer.get_config())
        return keras.optimizers.get(optimizer)

    def _check_validation_dataset(self, dataset):
        """Refuses validation batches that the bottom RBM would refuse only
        at the end of its first epoch: the width (from the element spec)
        and the values of the first batch."""
        width = self._dataset_feature_shape(dataset)[1]
        if width != self.rbms[0].num_visible:
            raise ValueError(f"The validation data: {self.rbms[0]._width_error(width)}")
        for batch in dataset.take(1):
            batch = batch[0] if isinstance(batch, (tuple, list)) else batch
            self.rbms[0]._check_data(np.asarray(batch), "The validation data")

    @staticmethod
    def _dataset_feature_shape(dataset):
        spec = dataset.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        if isinstance(spec, dict) and set(spec) == {array_input.ROWS, array_input.SOURCE}:
            raise TypeError(
                "A DBN reads batches of data, not `array_input.indexed_batches`' row "
                "indices: give pretrain the array itself or array_input.array_dataset(x).")
        if not hasattr(spec, "shape"):  # e.g. TFDS' {"image": ..., "label": ...}
            raise TypeError(
                "A DBN reads one input: give the dataset's elements as x or (x, y), not "
                f"{type(spec).__name__}s, e.g. dataset.map(lambda d: d['image']).")
        array_input.check_rank(spec.shape)
        return (None, int(np.prod(spec.shape[1:])))

    def _propagate(self, data, rbm, sample, batch_size, dtype="float32", shuffle=True,
                   cache_bytes=None, seed=None, rebatch_rows=None, memo=None):
        """The input of the layer above ``rbm``: its hidden activations, in ``dtype``.

        ``seed`` (an int or ``None``) fixes the order in which NumPy data
        are read and, with ``sample``, the hidden states drawn: new ones in
        each epoch, the same sequence for the same seed. ``rebatch_rows``:
        the rows of one pass over a stream begun from NumPy data below,
        which then comes out in batches of ``batch_size`` (it would keep
        the batch size of the layer where it began). ``memo``: a dict in
        which NumPy data's cached activations are kept for sampling, so
        that streams built again from the same array (`pretrain` builds
        each layer's afresh) compute and hold them once.
        """
        import tensorflow as tf

        if rebatch_rows is not None and isinstance(data, tf.data.Dataset):
            finite = int(data.cardinality()) >= 0
            data = data.rebatch(batch_size)
            if finite:  # `rebatch` forgets it; Keras counts an epoch's steps by it
                data = data.apply(tf.data.experimental.assert_cardinality(
                    math.ceil(rebatch_rows / batch_size)))

        def batches(array):
            return array_input.array_dataset(
                array, batch_size=batch_size, shuffle=shuffle, seed=seed, dtype=None
            )

        def sampled(dataset, means):
            """``dataset`` mapped to the hidden states drawn given ``means(batch)``."""
            # One stateless seed per batch; rerandomize_each_iteration draws
            # new ones in every epoch, reproducibly for a given seed.
            noise_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
            units = rbm.hidden_units
            draw_noise = (tf.random.stateless_uniform if units.noise == "uniform"
                          else tf.random.stateless_normal)

            def draw(batch, noise_seed):
                # float32 noise: a bfloat16 uniform has only 7 random bits.
                mean = tf.cast(means(batch), "float32")
                noise = draw_noise(
                    tf.shape(mean), seed=tf.stack([noise_seed, tf.constant(0, tf.int64)])
                )
                return tf.cast(units.states_from_noise(mean, noise), dtype)

            return tf.data.Dataset.zip((dataset, noise_seeds)).map(
                draw, num_parallel_calls=tf.data.AUTOTUNE
            )

        if isinstance(data, np.ndarray):
            nbytes = len(data) * rbm.units * np.dtype(dtype).itemsize
            if nbytes <= (_CACHE_LIMIT_BYTES if cache_bytes is None else cache_bytes):
                if not sample:
                    return _predicted(rbm, data, dtype=dtype)
                key = (id(rbm), str(np.dtype(dtype)))
                if memo is not None and key in memo and memo[key][0] is data:
                    probs = memo[key][1]
                else:
                    probs = _predicted(rbm, data, dtype=dtype)
                    if memo is not None:
                        memo[key] = (data, probs)
                return sampled(batches(probs), lambda p: p).prefetch(tf.data.AUTOTUNE)
            data = batches(data)

        def up(batch):
            x = batch[0] if isinstance(batch, tuple) else batch
            x = tf.reshape(x, (tf.shape(x)[0], -1))
            return rbm.hidden_given_visible(x)

        if sample:
            return sampled(data, up).prefetch(tf.data.AUTOTUNE)
        return data.map(
            lambda *batch: tf.cast(up(batch), dtype), num_parallel_calls=tf.data.AUTOTUNE
        ).prefetch(tf.data.AUTOTUNE)

    def fit(self, *args, **kwargs):
        """Refused: a DBN is trained by `pretrain`, then fine-tuned as a classifier.

        Raises:
            TypeError: always; use `pretrain`, then `to_classifier` and the
                classifier's own ``fit``.

        Example:

        >>> histories = dbn.pretrain(x_train, epochs=10, batch_size=100)  # not dbn.fit
        >>> clf = dbn.to_classifier(10, dropout=0.2)
        >>> clf.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> clf.fit(x_train, y_train, epochs=10, batch_size=100)
        """
        raise TypeError(
            "A DBN is trained layer by layer with `dbn.pretrain(x)`; for supervised "
            "fine-tuning convert it with `dbn.to_classifier(num_classes)` and fit that."
        )

    # ------------------------------------------------------------ conversion

    def to_classifier(self, num_classes, dropout=0.0, input_dropout=0.0, name="dbn_classifier",
                      dtype=None, seed=None):
        """A ``keras.Sequential`` classifier initialised from the RBM weights.

        The network is ``Input -> [Dropout] -> Dense(sigmoid) per RBM, each
        followed by [Dropout] -> Dense(num_classes, softmax)``; Dense layer
        ``i`` starts from ``W`` and the hidden bias of RBM ``i``, with the
        activation its hidden units name (``Units.keras_activation``: linear
        for Gaussian units). Only built-in Keras layers are used, so the
        model (and its SavedModel) loads without keras_dbn.

        Args:
            num_classes: number of output classes.
            dropout: dropout rate after each hidden layer (Srivastava et al.
                2014 fine-tuned DBNs this way).
            input_dropout: dropout rate on the input.
            name: model name.
            dtype: the layers' dtype policy (e.g. ``"mixed_bfloat16"``; the
                output layer of a mixed policy computes in float32); by
                default Keras' global policy, whatever the DBN's own: a DBN
                pretrained in mixed precision fine-tunes in float32 unless
                asked.
            seed: an integer that fixes the output layer's initial weights
                and the Dropout layers' masks; by default they come from
                Keras' global random state (``keras.utils.set_random_seed``).

        Returns:
            An uncompiled `keras.Sequential`; compile and fit it as usual.

        Raises:
            ValueError: before the DBN is built, for a ``num_classes``
                below 2 or a dropout rate outside [0, 1), and for hidden
                units whose mean no Keras activation gives (a custom unit
                type names its own as ``keras_activation``).

        Example:

        >>> clf = dbn.to_classifier(10, dropout=0.2)
        >>> clf.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        """
        self._require_weights("Pretrain (or build) the DBN before converting it to a classifier.")
        num_classes = checked_count(num_classes, "`num_classes`", 2)
        seed = checked_seed(seed)
        if seed is not None and seed + len(self.rbms) + 1 >= 2**63:
            raise ValueError(f"`seed` must be under 2**63 - {len(self.rbms) + 1} (the dropout "
                             f"layers get seed + 1 to seed + {len(self.rbms) + 1}), got {seed!r}.")

        def seeded(offset):
            return None if seed is None else seed + offset

        for rate in (dropout, input_dropout):
            if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
                raise ValueError(f"Dropout rates must be numbers in [0, 1), got {rate!r}.")
        model = keras.Sequential(name=name)
        model.add(keras.Input((self.num_visible,), name="inputs"))
        if input_dropout:
            model.add(keras.layers.Dropout(input_dropout, name="input_dropout", dtype=dtype,
                                           seed=seeded(1)))
        activations = [_dense_activation(rbm) for rbm in self.rbms]
        dense_layers = []
        for i, (rbm, activation) in enumerate(zip(self.rbms, activations)):
            dense = keras.layers.Dense(rbm.units, activation=activation, name=f"dense_{i}",
                                       dtype=dtype)
            model.add(dense)
            dense_layers.append((dense, rbm))
            if dropout:
                model.add(keras.layers.Dropout(dropout, name=f"dropout_{i}", dtype=dtype,
                                               seed=seeded(i + 2)))
        # Mixed precision keeps the probabilities in float32 (Keras' guide).
        policy = keras.dtype_policies.get(dtype) if dtype is not None else (
            keras.config.dtype_policy())  # the layers' policy where none is given
        mixed = policy.name.startswith("mixed_")
        model.add(keras.layers.Dense(
            num_classes, activation="softmax", name="probabilities",
            dtype="float32" if mixed else dtype,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seeded(0)),
        ))
        for dense, rbm in dense_layers:
            dense.set_weights([np.asarray(rbm.kernel), np.asarray(rbm.hidden_bias)])
        return model

    # -------------------------------------------------------------- sampling

    def generate(self, n, gibbs_steps=1000, initial=None, return_mean=True, seed=None):
        """Samples from the DBN as a generative model.

        Runs a Gibbs chain of ``gibbs_steps`` steps in the top RBM, then one
        ancestral pass down, sampling ``v ~ p(v | h)`` of each lower RBM
        (Hinton, Osindero & Teh 2006, section 2).

        Args:
            n: number of samples; ``None`` or ``len(initial)`` when
                ``initial`` is given.
            gibbs_steps: Gibbs steps in the top RBM.
            initial: optional data ``(n, features)``; the top chain then starts
                from its propagated (sampled) hidden states instead of noise.
            return_mean: return the visible means of the last step (smoother
                pictures) instead of sampled states.
            seed: optional integer: the ``i``-th RBM draws as a new
                generator of seed ``(seed + i) % 2**31`` would
                (`RBM.drawing_from`), so the same call draws the same
                samples, and the RBMs' own generators are left as they
                were. By default the generators go on from their state.

        Returns:
            float32 NumPy array of shape ``(n, num_visible)``.

        Raises:
            ValueError: before pretraining, for a negative ``n`` or
                ``gibbs_steps``, for an ``n`` other than ``len(initial)``, and
                for a ``seed`` that is not an integer in ``[0, 2**31)``.

        Example:

        >>> digits = dbn.generate(16, gibbs_steps=1000, seed=0)
        >>> digits.shape
        (16, 784)
        >>> completions = dbn.generate(None, gibbs_steps=100, initial=x_test[:16])
        """
        self._require_weights()
        with contextlib.ExitStack() as seeded:
            if seed is not None:
                seeded.enter_context(self.rbms[0].drawing_from(seed))  # checks the seed
                for i, rbm in enumerate(self.rbms[1:], 1):
                    seeded.enter_context(rbm.drawing_from((int(seed) + i) % 2**31))
            return self._generate(n, gibbs_steps, initial, return_mean)

    def _generate(self, n, gibbs_steps, initial, return_mean):
        top = self.rbms[-1]
        start = None
        if initial is not None:
            start = _as_data_array(initial).astype("float32", copy=False)
            n = checked_sample_count(n, start)
            # Only the data are checked: the states above are the DBN's own.
            for depth, rbm in enumerate(self.rbms[:-1]):
                start = (rbm.hidden_given_visible(start, sample=True) if depth == 0
                         else rbm._hidden_given(start, sample=True))
        if len(self.rbms) == 1:
            return top.sample(n, gibbs_steps, initial=start, return_mean=return_mean)
        gibbs_steps = checked_count(gibbs_steps, "`gibbs_steps`")
        h = ops.convert_to_tensor(top._sample(n, gibbs_steps, start, return_mean=False,
                                              check_initial=False))
        lower = self.rbms[:-1]
        for depth, rbm in enumerate(reversed(lower)):
            bottom = depth == len(lower) - 1
            h = rbm.visible_given_hidden(h, sample=not (bottom and return_mean))
        return ops.convert_to_numpy(ops.cast(h, "float32"))

    # --------------------------------------------------------- serialization

    # One count for all layers, before `layer_pretrain_calls`.
    _LEGACY_STATE_NAMES = ("pretrain_calls",)

    def _layer_pretrain_calls(self):
        """How many `pretrain` calls trained each layer (one count per RBM)."""
        return list(getattr(self, "_pretrain_calls", None) or [0] * len(self.rbms))

    def _settled_pretrain_calls(self):
        """`_layer_pretrain_calls`, where a `pretrain` call is running, with
        the layers it has not updated yet counted as not called by it: what
        a save (a callback's, say) records, and what a stopped call leaves."""
        calls = self._layer_pretrain_calls()
        running = getattr(self, "_running_pretrain", None)
        if running is None:
            return calls
        earlier, updates_before = running
        return [count if rbm._updated_since(before) else old
                for count, old, rbm, before in zip(calls, earlier, self.rbms, updates_before)]

    def _extra_state(self):
        # Seeds the upper layers' shuffling: a loaded DBN's next `pretrain`
        # shuffles as the saved one's would have, also one saved during a call.
        return dict(super()._extra_state(), layer_pretrain_calls=np.asarray(
            self._settled_pretrain_calls(), "int64"))

    def _load_extra_state(self, values):
        super()._load_extra_state(values)
        if "layer_pretrain_calls" in values:
            self._pretrain_calls = [int(c) for c in np.ravel(values["layer_pretrain_calls"])]
        elif "pretrain_calls" in values:  # files saved before the per-layer counts
            self._pretrain_calls = [int(values["pretrain_calls"])] * len(self.rbms)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "layers": [keras.saving.serialize_keras_object(rbm) for rbm in self.rbms],
            "visible": self.rbms[0].visible,
            "seed": self.seed,
        }
