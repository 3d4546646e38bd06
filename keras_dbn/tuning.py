"""Hyperparameter search over the whole DBN pipeline with keras-tuner.

`DBNHyperModel` tunes greedy pretraining and supervised fine-tuning together:
the number and sizes of the layers, CD-k or PCD, the pretraining learning rate
and epochs, the fine-tuning learning rate, dropout and the batch size. Its
``build(hp)`` returns the classifier that ``DBN.to_classifier`` makes (only
built-in Keras layers, so keras-tuner can checkpoint, reload and save it), and
its ``fit`` pretrains a DBN, copies the RBM weights into that classifier and
fine-tunes it with the tuner's callbacks.

Greedy pretraining of layer ``i`` depends only on the layers below it, so
trained RBMs are cached by (layer sizes up to ``i``, pretraining settings,
seed, data fingerprint): trials that share lower layers and pretraining
settings reuse them, in memory and, with ``cache_dir``, across processes.

Example:

```python
import keras_tuner as kt
from keras_dbn.tuning import DBNHyperModel

hypermodel = DBNHyperModel(num_classes=10, input_dim=784, units=[256, 512],
                           k=1, pretrain_epochs=(1, 5))
tuner = kt.RandomSearch(hypermodel, objective=hypermodel.objective,
                        max_trials=10, directory="runs", project_name="dbn")
tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=10)
best = tuner.get_best_models(1)[0]
```
"""

import argparse
import collections
import hashlib
import json
import math
import os
import pathlib
import tempfile
import time
import warnings

import keras
import keras_tuner as kt
import numpy as np

from keras_dbn.argtypes import (UsageError, check_dataset_name, check_writable, folder_name,
                                is_within)
from keras_dbn.array_input import array_dataset, evaluation_input, fit_can_stream, validation_input
from keras_dbn.dbn import DBN
from keras_dbn.extra_state import save_replacing, write_text_replacing
from keras_dbn.rbm import _is_dataset, checked_count, checked_sampling_seed
from keras_dbn.search_options import TUNERS, add_search_arguments, defaults, parse_options

__all__ = [
    "DBNHyperModel",
    "PretrainCache",
    "add_search_arguments",
    "best_trials",
    "make_tuner",
    "run_search",
    "trials_table",
]

# Hyperparameter names, for `hp.Fixed` in a user's `keras_tuner.HyperParameters`.
NUM_LAYERS = "num_layers"
UNITS = "units_{}"  # one per layer: units_0, units_1, ...
K = "k"
PERSISTENT = "persistent"
PRETRAIN_LR = "pretrain_lr"
PRETRAIN_EPOCHS = "pretrain_epochs"
FINETUNE_LR = "finetune_lr"
DROPOUT = "dropout"
BATCH_SIZE = "batch_size"

# The default search space: lists are choices, tuples (min, max) ranges.
DEFAULT_SPACE = {
    NUM_LAYERS: (1, 3),
    UNITS: [256, 512, 1024, 2000],
    K: [1, 5],
    PERSISTENT: [False, True],
    PRETRAIN_LR: (1e-3, 0.1),
    PRETRAIN_EPOCHS: (1, 10),
    FINETUNE_LR: (1e-4, 1e-2),
    DROPOUT: (0.0, 0.5),
    BATCH_SIZE: [50, 100, 200],
}

_CACHE_FORMAT = "keras_dbn.tuning/1"  # part of every cache key; bump on layout changes


#: What every value of a dimension must be: a test and how errors name it.
_AT_LEAST_ONE = (lambda v: v >= 1, "integers >= 1")
_POSITIVE = (lambda v: v > 0, "numbers > 0")
_RATE = (lambda v: 0.0 <= v < 1.0, "rates in [0, 1)")


def _declare(hp, name, spec, kind, log=False, valid=None):
    """Registers one hyperparameter from a constructor spec and returns its value.

    A list is a choice (one element: fixed), a 2-tuple an ``(min, max)``
    range, anything else a fixed value. ``valid``, a ``(test, description)``
    pair, must hold for every choice and both ends of a range, so that a
    space with impossible values fails at construction, not in a trial.
    """
    ends = spec if isinstance(spec, (list, tuple)) else [spec]
    for value in ends:
        _check_kind(name, value, kind)
    if valid is not None:
        test, description = valid
        if not all(test(kind(v)) for v in ends):
            raise ValueError(f"`{name}` must hold {description}, got {spec!r}.")
    if isinstance(spec, list):
        values = list(dict.fromkeys(kind(v) for v in spec))
        if not values:
            raise ValueError(f"`{name}` needs at least one value.")
        if len(values) == 1:
            return hp.Fixed(name, values[0])
        if kind is bool:
            return hp.Boolean(name)
        return hp.Choice(name, values)
    if isinstance(spec, tuple):
        if len(spec) != 2 or kind is bool:
            raise ValueError(f"`{name}` range must be a (min, max) tuple, got {spec!r}.")
        low, high = kind(spec[0]), kind(spec[1])
        if low > high:
            raise ValueError(f"`{name}` range {spec!r} has min > max.")
        if low == high:
            return hp.Fixed(name, low)
        sampling = "log" if log else "linear"
        if kind is int:
            return hp.Int(name, low, high, sampling=sampling)
        return hp.Float(name, low, high, sampling=sampling)
    return hp.Fixed(name, kind(spec))


def _check_kind(name, value, kind):
    """Refuses a value that ``kind`` would change rather than convert.

    ``bool("False")`` is True and ``int(2.7)`` is 2: a search space of such
    values would silently search something else.
    """
    is_bool = isinstance(value, (bool, np.bool_))
    if kind is bool:
        ok = is_bool
    elif is_bool or not isinstance(value, (int, float, np.integer, np.floating)):
        ok = False
    else:
        ok = math.isfinite(value) and (kind is not int or float(value).is_integer())
    if not ok:
        expected = {bool: "True or False", int: "whole numbers"}.get(kind, "finite numbers")
        raise ValueError(f"`{name}` must hold {expected}, got {value!r}.")


def _fingerprint(x):
    """A digest of an array's shape, dtype and contents."""
    x = np.ascontiguousarray(x)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((x.shape, x.dtype.str)).encode())
    # Bytes of any dtype (a buffer of NumPy's bfloat16 cannot be exported).
    digest.update(memoryview(x.reshape(-1).view(np.uint8)))
    return digest.hexdigest()


class PretrainCache:
    """Trained RBM weights by pretraining key: LRU in memory, optionally on disk.

    Args:
        max_bytes: memory budget of the in-memory LRU; the least recently used
            entries are dropped beyond it (0 disables the memory cache).
        directory: optional folder of ``.npz`` files, one per entry, so that
            resumed searches and other processes reuse the weights too. The
            folder is not pruned.

    Example:

    >>> cache = PretrainCache(max_bytes=256 * 2**20, directory="runs/rbm_cache")
    >>> hypermodel = DBNHyperModel(num_classes=10, input_dim=784, cache=cache)
    """

    def __init__(self, max_bytes=512 * 2**20, directory=None):
        self.max_bytes = int(max_bytes)
        self.directory = None if directory is None else pathlib.Path(directory)
        self._memory = collections.OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _name(key):
        return hashlib.sha256(repr((_CACHE_FORMAT,) + tuple(key)).encode()).hexdigest()[:40]

    def get(self, key):
        """The weights stored under ``key`` (the list given to `put`), or None.

        Example:

        >>> key = ((500,), "CD-1", "x_train")  # any tuple with a stable repr
        >>> cache.get(key) is None  # not stored yet
        True
        >>> cache.put(key, rbm.get_weights())
        >>> kernel, visible_bias, hidden_bias = cache.get(key)  # a CD (not PCD) RBM's
        """
        name = self._name(key)
        if name in self._memory:
            self._memory.move_to_end(name)
            self.hits += 1
            return self._memory[name]
        if self.directory is not None:
            path = self.directory / f"{name}.npz"
            if path.exists():
                with np.load(path) as data:
                    weights = [data[f"w{i}"] for i in range(len(data.files))]
                self._remember(name, weights)
                self.hits += 1
                return weights
        self.misses += 1
        return None

    def put(self, key, weights):
        """Stores a list of arrays under ``key`` (and on disk with a directory).

        Example:

        >>> cache = PretrainCache(directory="runs/rbm_cache")
        >>> cache.put(((500,), "CD-1", "x_train"), rbm.get_weights())  # copies the arrays
        >>> PretrainCache(directory="runs/rbm_cache").get(((500,), "CD-1", "x_train"))[0].shape
        (784, 500)
        """
        name = self._name(key)
        weights = [np.array(w, copy=True) for w in weights]
        self._remember(name, weights)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Written whole, then renamed: an interrupted search never leaves
            # a truncated file that a resumed one would trust.
            fd, tmp = tempfile.mkstemp(suffix=".npz", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **{f"w{i}": w for i, w in enumerate(weights)})
                os.replace(tmp, self.directory / f"{name}.npz")
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)

    def _remember(self, name, weights):
        size = sum(w.nbytes for w in weights)
        if size > self.max_bytes:
            return
        replaced = self._memory.pop(name, None)  # stored again: counted once, and newest
        if replaced is not None:
            self._bytes -= sum(w.nbytes for w in replaced)
        self._memory[name] = weights
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._memory.popitem(last=False)
            self._bytes -= sum(w.nbytes for w in dropped)

    def __len__(self):
        return len(self._memory)


def _rows(x):
    """A NumPy array of images as rows (a view where it can be); anything
    else as it is."""
    if isinstance(x, np.ndarray) and x.ndim > 2:
        return x.reshape(len(x), -1)
    return x


def _streamable(x, y, fit_kwargs):
    """Whether ``fit(x, y, **fit_kwargs)`` can read ``x, y`` by `array_dataset`.

    NumPy features and labels of the same length, none of the ``fit``
    arguments that only Keras' array pipeline understands, and a ``fit()``
    that `array_input.fit_can_stream` allows.
    """
    keras_only = ("sample_weight", "class_weight", "validation_split")
    given = [
        key for key in keras_only
        if fit_kwargs.get(key) is not None
        and not (isinstance(fit_kwargs[key], (int, float)) and not fit_kwargs[key])
    ]
    return (
        isinstance(x, np.ndarray)
        and isinstance(y, np.ndarray)
        and len(x) == len(y)
        and len(x) > 0
        and not given
        and fit_can_stream(fit_kwargs)
    )


class DBNHyperModel(kt.HyperModel):
    """A keras-tuner search space over DBN pretraining and fine-tuning.

    Every search dimension is a constructor argument: a list is a choice
    (``hp.Choice``, or ``hp.Boolean`` for ``[False, True]``), a 2-tuple a
    ``(min, max)`` range (``hp.Int`` / ``hp.Float``; learning rates and
    units sampled on a log scale), a single value fixes it (``hp.Fixed``).
    Hyperparameters may also be fixed through the tuner, by passing
    ``hyperparameters=hp`` with ``hp.Fixed(name, value)`` (names: the
    module constants ``num_layers``, ``units_0``, ``units_1``, ..., ``k``,
    ``persistent``, ``pretrain_lr``, ``pretrain_epochs``, ``finetune_lr``,
    ``dropout``, ``batch_size``) and, to fix everything else at its default,
    ``tune_new_entries=False``.

    Fine-tuning epochs are not a hyperparameter: they are the ``epochs`` of
    ``tuner.search`` (Hyperband sets them per round). Pretraining uses
    ``SGD(pretrain_lr, momentum=0.5)`` for every RBM, fine-tuning
    ``Adam(finetune_lr)`` with sparse categorical cross-entropy, and the batch
    size serves both.

    When Hyperband continues a trial (``initial_epoch > 0``) keras-tuner has
    restored the model from that trial's checkpoint; ``fit`` then only
    fine-tunes on. Otherwise the RBMs come from the cache when a trial with the
    same lower layers, pretraining settings, seed and data trained them before.

    Args:
        num_classes: number of classes (integer labels ``0 .. num_classes-1``).
        input_dim: number of input features; taken from ``x_unlabeled`` if
            omitted.
        x_unlabeled: NumPy array ``(n, input_dim)`` in [0, 1] to pretrain on
            (e.g. all training images when only a few are labelled); by
            default the ``x`` given to ``search``. A `tf.data.Dataset` works
            too, without caching.
        num_layers: number of hidden layers (default ``(1, 3)``).
        units: hidden units of each layer, chosen per layer (default
            ``[256, 512, 1024, 2000]``).
        k: Gibbs steps of CD-k / PCD-k (default ``[1, 5]``).
        persistent: PCD instead of CD (default ``[False, True]``).
        pretrain_lr: pretraining learning rate (default ``(1e-3, 0.1)``).
        pretrain_epochs: pretraining epochs per RBM (default ``(1, 10)``).
        finetune_lr: fine-tuning learning rate (default ``(1e-4, 1e-2)``).
        dropout: dropout after each hidden layer in fine-tuning (default
            ``(0.0, 0.5)``).
        batch_size: batch size of pretraining and fine-tuning (default
            ``[50, 100, 200]``).
        seed: base seed of the RBM weights (layer ``i`` gets ``seed + i``),
            an integer in ``[0, 2**31)``.
        cache: a `PretrainCache` to share between hypermodels; by default one
            made from ``cache_dir`` and ``cache_max_bytes``.
        cache_dir: folder for pretrained RBM weights reused across processes
            (resumed searches); None keeps them in memory only.
        cache_max_bytes: memory budget of the in-process cache.
        pretrain_verbose: Keras verbosity of pretraining.
        objective: what the tuner should optimise: a metric name (minimised
            when it names a loss, else maximised) or a `keras_tuner.Objective`,
            of a figure the classifier logs (`objectives`: ``val_accuracy``,
            ``val_loss``, ``accuracy``, ``loss``; a subclass whose ``build``
            compiles more metrics extends the class attribute); use
            ``hypermodel.objective`` as the tuner's ``objective``.
        name, tunable: passed to `keras_tuner.HyperModel`.

    Example:

    ```python
    hypermodel = DBNHyperModel(num_classes=10, x_unlabeled=x_all,
                               num_layers=(1, 2), units=[500, 1000],
                               persistent=False, cache_dir="runs/rbm_cache")
    tuner = kt.Hyperband(hypermodel, objective=hypermodel.objective,
                         max_epochs=20, directory="runs", project_name="dbn")
    tuner.search(x_few, y_few, validation_data=(x_val, y_val))
    ```
    """

    #: What the classifier of `build` logs, and so what a search can
    #: maximise or minimise.
    objectives = ("val_accuracy", "val_loss", "accuracy", "loss")

    def __init__(
        self,
        num_classes,
        input_dim=None,
        x_unlabeled=None,
        num_layers=None,
        units=None,
        k=None,
        persistent=None,
        pretrain_lr=None,
        pretrain_epochs=None,
        finetune_lr=None,
        dropout=None,
        batch_size=None,
        seed=0,
        cache=None,
        cache_dir=None,
        cache_max_bytes=512 * 2**20,
        pretrain_verbose=0,
        objective="val_accuracy",
        name=None,
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
        if isinstance(x_unlabeled, list):
            x_unlabeled = np.asarray(x_unlabeled)
        if not (x_unlabeled is None or isinstance(x_unlabeled, np.ndarray)
                or _is_dataset(x_unlabeled)):
            raise ValueError("`x_unlabeled` must be a NumPy array or a tf.data.Dataset of "
                             f"batches, got {type(x_unlabeled).__name__}.")
        if input_dim is None and x_unlabeled is not None:
            input_dim = DBN._dataset_feature_shape(x_unlabeled)[1] if not isinstance(
                x_unlabeled, np.ndarray) else int(np.prod(x_unlabeled.shape[1:]))
        if input_dim is None:
            raise ValueError("Pass `input_dim` (784 for MNIST) or `x_unlabeled`.")
        if (isinstance(input_dim, (bool, np.bool_)) or not isinstance(input_dim, (int, np.integer))
                or input_dim < 1):
            raise ValueError(f"`input_dim` must be an integer >= 1, got {input_dim!r}.")
        self.num_classes = int(num_classes)
        self.input_dim = int(input_dim)
        self.x_unlabeled = x_unlabeled
        given = {
            NUM_LAYERS: num_layers, UNITS: units, K: k, PERSISTENT: persistent,
            PRETRAIN_LR: pretrain_lr, PRETRAIN_EPOCHS: pretrain_epochs,
            FINETUNE_LR: finetune_lr, DROPOUT: dropout, BATCH_SIZE: batch_size,
        }
        self.spec = {name: DEFAULT_SPACE[name] if value is None else value
                     for name, value in given.items()}
        self.seed = checked_sampling_seed(seed)
        self.cache = cache if cache is not None else PretrainCache(cache_max_bytes, cache_dir)
        self.pretrain_verbose = pretrain_verbose
        if isinstance(objective, str):
            objective = kt.Objective(objective, "min" if "loss" in objective else "max")
        elif not isinstance(objective, kt.Objective):
            raise ValueError("`objective` must be a metric name such as 'val_accuracy' or a "
                             f"keras_tuner.Objective, got {objective!r}.")
        if objective.name not in self.objectives:
            # keras-tuner would find out after each trial's whole training.
            raise ValueError(f"`objective` must name a figure the classifier logs, one of "
                             f"{self.objectives}; got {objective.name!r}.")
        self.objective = objective
        self.pretrain_calls = 0  # DBN.pretrain runs, for logs and tests
        self._fingerprint_memo = (None, None)
        self.space(kt.HyperParameters())  # fail now, not in the first trial

    # ----------------------------------------------------------------- space

    def space(self, hp):
        """Registers the search space in ``hp`` and returns the chosen values.

        Args:
            hp: a `keras_tuner.HyperParameters`.

        Returns:
            A dict with ``layers`` (list of sizes), ``k``, ``persistent``,
            ``pretrain_lr``, ``pretrain_epochs``, ``finetune_lr``, ``dropout``
            and ``batch_size``.

        Example:

        >>> hypermodel = DBNHyperModel(num_classes=10, input_dim=784, num_layers=2, units=[500])
        >>> values = hypermodel.space(kt.HyperParameters())  # the others at their defaults
        >>> values["layers"], values["k"]
        ([500, 500], 1)
        """
        spec = self.spec
        num_layers = _declare(hp, NUM_LAYERS, spec[NUM_LAYERS], int, valid=_AT_LEAST_ONE)
        layers = [
            _declare(hp, UNITS.format(i), spec[UNITS], int, log=True, valid=_AT_LEAST_ONE)
            for i in range(num_layers)
        ]
        return {
            "layers": layers,
            "k": _declare(hp, K, spec[K], int, valid=_AT_LEAST_ONE),
            "persistent": _declare(hp, PERSISTENT, spec[PERSISTENT], bool),
            "pretrain_lr": _declare(hp, PRETRAIN_LR, spec[PRETRAIN_LR], float, log=True,
                                    valid=_POSITIVE),
            "pretrain_epochs": _declare(hp, PRETRAIN_EPOCHS, spec[PRETRAIN_EPOCHS], int,
                                        valid=_AT_LEAST_ONE),
            "finetune_lr": _declare(hp, FINETUNE_LR, spec[FINETUNE_LR], float, log=True,
                                    valid=_POSITIVE),
            "dropout": _declare(hp, DROPOUT, spec[DROPOUT], float, valid=_RATE),
            "batch_size": _declare(hp, BATCH_SIZE, spec[BATCH_SIZE], int, valid=_AT_LEAST_ONE),
        }

    # ----------------------------------------------------------------- build

    def build(self, hp):
        """The compiled, not yet pretrained classifier for ``hp``.

        Its layers are exactly those of ``DBN.to_classifier`` (weights are
        copied in by ``fit``), so keras-tuner can rebuild it to reload a
        checkpoint.
        """
        values = self.space(hp)
        dbn = DBN(values["layers"], seed=self.seed)
        dbn.build((None, self.input_dim))
        model = dbn.to_classifier(self.num_classes, dropout=values["dropout"])
        model.compile(
            optimizer=keras.optimizers.Adam(values["finetune_lr"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        # Built now, so that a checkpoint keras-tuner loads into the model (a
        # continued Hyperband trial, the best models) restores Adam's state
        # too instead of skipping it with a warning.
        model.optimizer.build(model.trainable_variables)
        return model

    # ------------------------------------------------------------------- fit

    def fit(self, hp, model, x, y=None, validation_data=None, callbacks=None,
            epochs=1, initial_epoch=0, **kwargs):
        """Pretrains (or reuses) the DBN for ``hp``, then fine-tunes ``model``.

        Args:
            hp: the trial's `keras_tuner.HyperParameters`.
            model: the classifier from ``build(hp)``; with ``initial_epoch >
                0`` (a continued Hyperband trial) it holds the restored
                checkpoint and is not pretrained again.
            x, y: labelled fine-tuning data (``x`` is also the pretraining data
                unless ``x_unlabeled`` was given). NumPy arrays are read by
                `array_dataset` (a one-thread pipeline, faster on few
                cores) unless ``sample_weight``, ``class_weight`` or
                ``validation_split`` is given.
            validation_data: ``(x_val, y_val)``; needed for ``val_accuracy``.
            callbacks: the tuner's callbacks (checkpointing, reporting).
            epochs, initial_epoch: of the fine-tuning ``fit``.
            **kwargs: further ``model.fit`` arguments (not ``batch_size``,
                which is a hyperparameter).

        Returns:
            The fine-tuning `keras.callbacks.History`.

        Example:

        >>> hp = kt.HyperParameters()  # one trial by hand, at the defaults
        >>> model = hypermodel.build(hp)
        >>> history = hypermodel.fit(hp, model, x_train, y_train, epochs=5,
        ...                          validation_data=(x_val, y_val))
        """
        if "batch_size" in kwargs:
            raise ValueError(
                "`batch_size` is a hyperparameter of DBNHyperModel: fix it with "
                "DBNHyperModel(batch_size=N) or hp.Fixed('batch_size', N)."
            )
        values = self.space(hp)
        continuing = initial_epoch > 0 or "tuner/trial_id" in hp.values
        if not continuing:
            # The array itself: its fingerprint is taken once per array object.
            data = self.x_unlabeled if self.x_unlabeled is not None else x
            dbn = self.pretrain(values, data)
            model.set_weights(dbn.to_classifier(self.num_classes, dropout=values["dropout"]).get_weights())
        # Images as rows, as pretraining reads them: the classifier takes rows.
        x = _rows(x)
        if isinstance(validation_data, (tuple, list)) and validation_data:
            validation_data = (_rows(validation_data[0]), *validation_data[1:])
        batch_size = values["batch_size"]
        if _streamable(x, y, kwargs):
            # Batches read from the arrays on one thread: ~1.15x faster
            # fine-tuning than Keras' own array pipeline on 2 cores.
            x = array_dataset(x, y, batch_size=batch_size, shuffle=kwargs.pop("shuffle", True))
            kwargs["shuffle"] = False  # the dataset shuffles; Keras would warn that it cannot
            # Validation arrays too: Keras' own pipeline for them may stall
            # at the end of every epoch's pass (array_input.evaluation_input).
            validation_data = validation_input(
                validation_data, kwargs.pop("validation_batch_size", None) or batch_size)
            y = batch_size = None
        return model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=epochs,
            initial_epoch=initial_epoch,
            validation_data=validation_data,
            callbacks=callbacks,
            **kwargs,
        )

    def pretrain(self, values, x):
        """A DBN pretrained with the settings ``values`` (from `space`) on ``x``.

        Layers found in the cache are loaded; the layers above the highest hit
        are trained greedily on the cached layers' activations and cached.

        Returns:
            The built, pretrained `DBN`.

        Example:

        >>> values = hypermodel.space(kt.HyperParameters())
        >>> dbn = hypermodel.pretrain(values, x_train)
        >>> dbn = hypermodel.pretrain(values, x_train)  # again: every layer from the cache
        """
        layers = values["layers"]
        dbn = DBN(layers, k=values["k"], persistent=values["persistent"], seed=self.seed)
        settings = dict(epochs=values["pretrain_epochs"], batch_size=values["batch_size"],
                        optimizer=keras.optimizers.SGD(values["pretrain_lr"], momentum=0.5),
                        verbose=self.pretrain_verbose)
        if not isinstance(x, np.ndarray):  # a tf.data.Dataset: no fingerprint
            self.pretrain_calls += 1
            dbn.pretrain(x, **settings)
            return dbn
        digest = self._digest(x)
        x = _rows(x)
        dbn.build(x.shape)
        keys = [self._cache_key(layers[: i + 1], values, digest) for i in range(len(layers))]
        start = 0
        for key, rbm in zip(keys, dbn.rbms):
            weights = self.cache.get(key)
            if weights is None:
                break
            for variable, value in zip((rbm.kernel, rbm.visible_bias, rbm.hidden_bias), weights):
                variable.assign(value)
            start += 1
        if start < len(layers):
            # The stack above the cached layers, trained on their activations;
            # seed + start keeps each layer's seed what a full DBN gives it.
            upper = DBN(layers[start:], k=values["k"], persistent=values["persistent"],
                        seed=self.seed + start)
            self.pretrain_calls += 1
            upper.pretrain(dbn.transform(x, num_layers=start) if start else x, **settings)
            for key, rbm, trained in zip(keys[start:], dbn.rbms[start:], upper.rbms):
                weights = [np.asarray(v) for v in (trained.kernel, trained.visible_bias, trained.hidden_bias)]
                for variable, value in zip((rbm.kernel, rbm.visible_bias, rbm.hidden_bias), weights):
                    variable.assign(value)
                self.cache.put(key, weights)
        return dbn

    def _digest(self, x):
        """`_fingerprint` of ``x``, once per array object: the tuner passes the
        same ``x`` (or ``x_unlabeled``) to every trial."""
        memo_x, digest = self._fingerprint_memo
        if memo_x is not x:
            digest = _fingerprint(x.reshape(len(x), -1))
            self._fingerprint_memo = (x, digest)
        return digest

    def _cache_key(self, sizes, values, digest):
        return (
            tuple(int(s) for s in sizes),
            int(values["k"]),
            bool(values["persistent"]),
            repr(float(values["pretrain_lr"])),
            int(values["pretrain_epochs"]),
            int(values["batch_size"]),
            self.seed,
            digest,
        )


# ------------------------------------------------------------------ searching

_TUNER_CLASSES = {
    "hyperband": kt.Hyperband,
    "random": kt.RandomSearch,
    "bayesian": kt.BayesianOptimization,
}


def make_tuner(hypermodel, tuner="hyperband", max_trials=10, max_epochs=10, executions=1,
               directory="tuning_runs", project_name="dbn", overwrite=False, seed=0,
               hyperparameters=None, tune_new_entries=True):
    """A keras-tuner tuner for ``hypermodel`` with its objective.

    Args:
        hypermodel: a `DBNHyperModel`.
        tuner: ``"hyperband"``, ``"random"`` or ``"bayesian"``.
        max_trials: number of trials (random and Bayesian search; Hyperband's
            count follows from ``max_epochs``).
        max_epochs: Hyperband's largest fine-tuning budget.
        executions: fine-tuning runs per trial, averaged.
        directory, project_name: where trials are recorded.
        overwrite: start afresh; by default an existing project is resumed.
        seed: the tuner's random seed.
        hyperparameters, tune_new_entries: keras-tuner's way to fix or
            restrict hyperparameters.

    Returns:
        A `keras_tuner.Hyperband`, `RandomSearch` or `BayesianOptimization`.

    Raises:
        ValueError: for an unknown ``tuner``, a ``max_trials``,
            ``max_epochs`` or ``executions`` that is not an integer >= 1,
            or a ``project_name`` that is not one folder's name (keras-tuner
            deletes ``directory/project_name`` with ``overwrite``).

    Example:

    >>> tuner = make_tuner(hypermodel, "random", max_trials=5, directory="runs")
    >>> tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=10)
    """
    # keras-tuner reads max_trials=0 as no limit, and deletes
    # directory/project_name with `overwrite`: ".." was the directory's parent.
    for name, value in (("max_trials", max_trials), ("max_epochs", max_epochs),
                        ("executions", executions)):
        checked_count(value, f"`{name}`", 1)
    try:
        if not isinstance(project_name, str):
            raise argparse.ArgumentTypeError(f"expected a folder's name, got {project_name!r}")
        folder_name(project_name)
    except argparse.ArgumentTypeError as error:
        raise ValueError(f"`project_name`: {error}") from None
    common = dict(objective=hypermodel.objective, executions_per_trial=executions,
                  directory=directory, project_name=project_name, overwrite=overwrite,
                  seed=seed, hyperparameters=hyperparameters, tune_new_entries=tune_new_entries)
    if tuner not in _TUNER_CLASSES:
        raise ValueError(f"`tuner` must be one of {TUNERS}, got {tuner!r}.")
    budget = {"max_epochs": max_epochs, "factor": 3} if tuner == "hyperband" else {"max_trials": max_trials}
    return _TUNER_CLASSES[tuner](hypermodel, **budget, **common)


def _accuracy(model, x, y):
    """Test accuracy of a compiled classifier on NumPy arrays, read in order."""
    data, y, batch_size = evaluation_input(x, y, batch_size=1000)
    return model.evaluate(data, y, batch_size=batch_size, verbose=0, return_dict=True)["accuracy"]


def best_trials(tuner, num_trials=1):
    """The best completed trials of a search, best first.

    As keras-tuner's ``oracle.get_best_trials``, except that trials of
    equal score keep the order of their ids: keras-tuner's own order of
    ties changes when a project is reloaded, so a rerun that ran no new
    trial could pick (and export) another best model.

    Args:
        tuner: a keras-tuner ``Tuner`` after (or during) its search.
        num_trials: how many trials to return at most.

    Returns:
        A list of ``keras_tuner`` trials.

    Example:

    >>> best_trials(tuner)[0].hyperparameters.values
    """
    done = [t for t in tuner.oracle.trials.values()
            if t.status == "COMPLETED" and t.score is not None]
    done.sort(key=lambda t: (len(t.trial_id), t.trial_id))
    maximize = getattr(tuner.oracle.objective, "direction", "max") == "max"
    # A stable sort: equal scores stay in the order of their ids.
    return sorted(done, key=lambda t: t.score, reverse=maximize)[:num_trials]


def trials_table(tuner, num_trials=10):
    """A compact text table of the best completed trials, best first.

    The ``epochs`` column (Hyperband's budget of each trial) is left out
    when no trial has one, as in random and Bayesian search.

    Example:

    >>> tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=10)
    >>> print(trials_table(tuner, num_trials=5))
    """
    rows = [("trial", "score", "layers", "cd", "pre_lr", "pre_ep", "ft_lr", "drop", "batch", "epochs")]
    for trial in best_trials(tuner, num_trials):
        v = trial.hyperparameters.values
        layers = "-".join(str(v[UNITS.format(i)]) for i in range(v[NUM_LAYERS]))
        rows.append((
            trial.trial_id,
            "-" if trial.score is None else f"{trial.score:.4f}",
            layers,
            f"{'PCD' if v[PERSISTENT] else 'CD'}-{v[K]}",
            f"{v[PRETRAIN_LR]:.2g}",
            str(v[PRETRAIN_EPOCHS]),
            f"{v[FINETUNE_LR]:.2g}",
            f"{v[DROPOUT]:.2f}",
            str(v[BATCH_SIZE]),
            str(v.get("tuner/epochs", "")),
        ))
    if not any(row[-1] for row in rows[1:]):
        rows = [row[:-1] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


#: `run_search` options that define a search: a resumed search must keep them.
SEARCH_OPTIONS = ("tuner", "max_epochs", "executions", "patience", "seed", "units", "max_layers",
                  "max_pretrain_epochs", "no_pcd", "dataset", "train_limit", "labels",
                  "validation")


def _search_options(options):
    """The options of `SEARCH_OPTIONS`, as JSON reads them back (tuples as lists)."""
    return json.loads(json.dumps({name: options[name] for name in SEARCH_OPTIONS}, default=list))


def _save_search_options(options, project_dir):
    path = pathlib.Path(project_dir) / "search_options.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_replacing(path, json.dumps(_search_options(options), indent=2))


def _check_resumed_options(options, project_dir):
    """Refuses to resume a search in ``project_dir`` with another search space
    or data: keras-tuner would keep the saved space and trials without a word.

    `_save_search_options` writes them when the search starts.

    Raises:
        UsageError: naming the options that differ.
    """
    path = pathlib.Path(project_dir) / "search_options.json"
    if options["overwrite"] or not path.exists():
        return
    current = _search_options(options)
    saved = json.loads(path.read_text())
    changed = [f"--{name.replace('_', '-')} {saved.get(name)!r} -> {value!r}"
               for name, value in current.items() if saved.get(name) != value]
    if changed:
        raise UsageError(f"the search in {str(project_dir)!r} ran with other options "
                         f"({'; '.join(changed)}); keep them to resume it, or pass "
                         "--overwrite (or another --project-name) to start a new search")


def _check_overwrite_keeps_exports(options, project_dir, output):
    """Refuses an ``--overwrite`` that would delete exported SavedModel versions.

    keras-tuner's ``overwrite=True`` deletes the whole project folder, and
    with it the versions earlier searches exported to an --output inside it
    (the default, ``<directory>/<project>/best``); a version is never to be
    replaced. Nothing is deleted or moved here.

    Raises:
        UsageError: naming --overwrite, --output and the versions at stake.
    """
    from keras_dbn.export import version_entries

    if not options["overwrite"]:
        return
    # Wherever this run's --output is: earlier runs may have exported inside.
    folders = {output / "saved_model", *pathlib.Path(project_dir).glob("**/saved_model")}
    for exports in sorted(f for f in folders if is_within(f, project_dir) and f.is_dir()):
        versions = [p.name for p in version_entries(exports) if p.is_dir()]
        if versions:
            hint = ("pass --output elsewhere, or move" if is_within(output, project_dir)
                    else "move")
            raise UsageError(
                f"--overwrite would delete the project folder {str(project_dir)!r} and with it "
                f"the SavedModel versions {', '.join(versions)} exported to {str(exports)!r}; "
                f"{hint} or remove those versions first (nothing was deleted)")


def _check_output_is_this_searchs(output, project_dir, overwrite):
    """Refuses an --output that holds another run's results, before any work.

    The search writes ``best_model.keras`` and ``results.json`` there and
    exports the next SavedModel version, which TF Serving would serve
    instead of the versions there. Only a run of this same search (its
    ``results.json`` names ``project_dir``, or the folder lies in the
    project's) takes them over unasked.

    Raises:
        UsageError: naming --output and the files in the way, unless
            ``overwrite``.
    """
    from keras_dbn.export import version_entries

    if (overwrite or is_within(output, project_dir)
            or _records_project(_earlier_record(output), project_dir)):
        return
    found = [str(output / name) for name in ("results.json", "best_model.keras")
             if (output / name).exists()]
    versions = [p.name for p in version_entries(output / "saved_model") if p.is_dir()]
    if versions:
        found.append(f"the SavedModel versions {', '.join(versions)} in "
                     f"{str(output / 'saved_model')!r}")
    if found:
        raise UsageError(
            f"--output {str(output)!r} holds another run's results ({'; '.join(found)}), "
            f"not this search's ({project_dir!r}); choose another --output, or pass "
            "--overwrite to replace them and export the next version there "
            "(nothing was overwritten)")


def _records_project(record, project_dir):
    """Whether a ``results.json`` ``record`` is of the search in
    ``project_dir``, however either path is spelled (links resolved, as
    `is_within` resolves them)."""
    project = record.get("project")
    return isinstance(project, str) and os.path.realpath(project) == os.path.realpath(project_dir)


def _earlier_record(output):
    """The ``results.json`` an earlier run wrote in ``output``, as a dict
    (empty where there is none, or it is not one)."""
    try:
        earlier = json.loads((output / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    return earlier if isinstance(earlier, dict) else {}


def _earlier_export(output, identity):
    """The SavedModel version that an earlier run in ``output`` exported for
    the same best model, if it is still there; else None.

    A rerun of a finished search (or a resumed one whose best trial did
    not change) then exports nothing new: the same model under a new
    version number would only make TF Serving load it again.

    Args:
        output: the run's output folder, where ``results.json`` is.
        identity: the best trial's id, hyperparameters and accuracies, as
            ``results.json`` records them.
    """
    earlier = _earlier_record(output)
    if any(earlier.get(k) != v for k, v in identity.items()):
        return None
    path = earlier.get("saved_model")
    if not isinstance(path, str) or not pathlib.Path(path, "saved_model.pb").is_file():
        return None
    return path


def _earlier_totals(output, project_dir):
    """The ``search_seconds`` and ``pretrain_runs`` that ``output``'s
    ``results.json`` records for the search in ``project_dir``, or zeros
    (no record, or one of another search)."""
    earlier = _earlier_record(output)
    totals = _totals(earlier)
    if not _records_project(earlier, project_dir) or totals is None:
        return 0.0, 0
    return totals


#: The file in a project folder that counts the search's time and
#: pretraining over all its runs, interrupted ones too.
_TOTALS_FILE = "search_totals.json"


def _totals(record):
    """``(search_seconds, pretrain_runs)`` of a dict, or None where it lacks them."""
    seconds, runs = record.get("search_seconds"), record.get("pretrain_runs")
    if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or isinstance(runs, bool) or not isinstance(runs, int)):
        return None
    return float(seconds), runs


def _totals_before(project_dir, output, resumed):
    """The ``search_seconds`` and ``pretrain_runs`` of the earlier runs of
    the search in ``project_dir``: from its `_TOTALS_FILE` (which every run
    writes when it stops, also when interrupted), or for a project from
    before that file, from ``output``'s ``results.json`` where the search
    is ``resumed``; else zeros."""
    path = pathlib.Path(project_dir) / _TOTALS_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = None
    totals = _totals(record) if isinstance(record, dict) else None
    if totals is not None:
        return totals
    return _earlier_totals(output, project_dir) if resumed else (0.0, 0)


def _save_totals(project_dir, seconds, runs):
    write_text_replacing(pathlib.Path(project_dir) / _TOTALS_FILE, json.dumps(
        {"search_seconds": round(seconds, 1), "pretrain_runs": runs}, indent=2))


def _split_validation(x, y, o):
    """`train_validation_split` by ``--validation``; a size the data cannot meet is a UsageError."""
    from keras_dbn import datasets

    try:
        return datasets.train_validation_split(x, y, o.validation, seed=o.seed,
                                               name="--validation")
    except ValueError as err:  # before any trial, like the folder checks
        counted = isinstance(o.validation, int) and o.train_limit  # more than were loaded
        hint = f" (--train-limit {o.train_limit} loaded them)" if counted else ""
        raise UsageError(str(err).rstrip(".") + hint) from None


def run_search(args=None, **kwargs):
    """Loads a dataset, runs (or resumes) a search, saves and exports the best model.

    Args:
        args: an `argparse.Namespace` from `add_search_arguments`, or None.
        **kwargs: the same options by name (``tuner="random"``,
            ``max_trials=3``, ``units=[64, 128]``, ...), overriding ``args``,
            checked as the command line checks them
            (`search_options.parse_options`).

    Returns:
        A dict: best hyperparameters, validation and test accuracy, paths,
        and the search's time and pretraining runs over every run of it
        (a resumed search adds to the earlier runs' figures, interrupted
        runs' too, which the project folder's ``search_totals.json``
        keeps), as written to ``results.json`` in the output folder.

    Raises:
        TypeError: for an unknown option name.
        ValueError: for an option value the command line would refuse.
        UsageError: before any work, for an unusable --directory or
            --output, an --output holding another run's results (without
            --overwrite), a resumed search with other options, an
            --overwrite that would delete exported SavedModel versions, or
            a --dataset that TFDS does not know as an image dataset;
            before any trial, for a --validation or --labels the data
            cannot meet.

    Example:

    >>> run_search(tuner="random", max_trials=3, max_epochs=2, units=[64, 128],
    ...            max_layers=2, max_pretrain_epochs=1, train_limit=5000,
    ...            manual_dir="data/mnist")
    """
    from keras_dbn import datasets
    from keras_dbn.export import export_saved_model, next_version

    options = defaults()
    options.update(vars(args) if args is not None else {})
    options.update(parse_options(kwargs))
    o = argparse.Namespace(**options)
    project = o.project_name or f"dbn_{o.dataset}"
    output = pathlib.Path(o.output or os.path.join(o.directory, project, "best"))
    # Checked now: the best model is written only after the whole search.
    check_writable("--directory", o.directory, folder=True)
    check_writable("--output", str(output), folder=True)
    _check_overwrite_keeps_exports(options, pathlib.Path(o.directory, project), output)
    project_dir = os.path.abspath(os.path.join(o.directory, project))
    _check_output_is_this_searchs(output, project_dir, o.overwrite)

    _check_resumed_options(options, os.path.join(o.directory, project))
    check_dataset_name(o.dataset, o.data_dir)

    load = dict(data_dir=o.data_dir, manual_dir=o.manual_dir)
    x, y = datasets.load_numpy(o.dataset, "train", limit=o.train_limit, **load)
    x_test, y_test = datasets.load_numpy(
        o.dataset, "test", limit=None if o.train_limit is None else max(o.train_limit // 5, 100), **load)
    x_train, y_train, x_val, y_val = _split_validation(x, y, o)
    x_fit, y_fit = x_train, y_train
    if o.labels:
        try:
            x_fit, y_fit = datasets.stratified_subset(x_train, y_train, o.labels, seed=o.seed,
                                                      name="--labels")
        except ValueError as err:  # before any trial, like the folder checks
            raise UsageError(str(err).rstrip(".") + " after the validation split") from None
    num_classes = int(max(y.max(), y_test.max())) + 1
    print(f"[tune] {o.dataset}: pretrain on {len(x_train)}, fine-tune on {len(x_fit)}, "
          f"validate on {len(x_val)}, test on {len(x_test)}", flush=True)

    keras.utils.set_random_seed(o.seed)
    hypermodel = DBNHyperModel(
        num_classes, x_unlabeled=x_train, num_layers=(1, o.max_layers), units=list(o.units),
        persistent=False if o.no_pcd else [False, True], pretrain_epochs=(1, o.max_pretrain_epochs),
        seed=o.seed, cache_dir=os.path.join(o.directory, project, "pretrain_cache"))
    tuner = make_tuner(hypermodel, o.tuner, max_trials=o.max_trials, max_epochs=o.max_epochs,
                       executions=o.executions, directory=o.directory, project_name=project,
                       overwrite=o.overwrite, seed=o.seed)
    _save_search_options(options, os.path.join(o.directory, project))  # after any overwrite
    done = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    if done:
        print(f"[tune] resuming {os.path.join(o.directory, project)}: {done} finished trials kept", flush=True)
    # A search resumed adds to its earlier runs' figures, interrupted runs'
    # too; a new one (also in a project folder removed by hand) starts from zero.
    seconds_before, pretrain_runs_before = _totals_before(project_dir, output, done)
    callbacks = []
    if o.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=o.patience))
    start = time.perf_counter()
    try:
        tuner.search(x_fit, y_fit, validation_data=(x_val, y_val), epochs=o.max_epochs,
                     callbacks=callbacks, verbose=o.verbose)
    finally:
        seconds = time.perf_counter() - start
        _save_totals(project_dir, seconds_before + seconds,
                     pretrain_runs_before + hypermodel.pretrain_calls)

    tuner.results_summary(num_trials=3)
    print("\n" + trials_table(tuner), flush=True)
    top = best_trials(tuner, 1)
    if not top:
        raise RuntimeError(f"No trial of {os.path.join(o.directory, project)} completed "
                           "with a score: there is no best model to save.")
    best_hp, best_trial = top[0].hyperparameters, top[0].trial_id
    with warnings.catch_warnings():
        # The checkpoint holds Adam's state, the rebuilt model's Adam none yet.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        best = tuner.load_model(top[0])
    val_accuracy = _accuracy(best, x_val, y_val)
    test_accuracy = _accuracy(best, x_test, y_test)
    output.mkdir(parents=True, exist_ok=True)
    model_path = output / "best_model.keras"
    # Saved with a built (fresh) optimizer, so that loading the file finds
    # the state it expects instead of warning that it skips it.
    if not best.optimizer.built:
        best.optimizer.build(best.trainable_variables)
    save_replacing(best.save, model_path)  # an earlier run's file stays whole until then
    # What identifies the best model: trial ids alone repeat after an
    # --overwrite, whose new search may keep an --output outside the project.
    identity = {"best_trial": best_trial,
                "best_hyperparameters": json.loads(json.dumps(best_hp.values, default=str)),
                "val_accuracy": float(val_accuracy), "test_accuracy": float(test_accuracy)}
    exported = _earlier_export(output, identity)
    if exported:
        print(f"[tune] the best trial ({best_trial}) is the one the last run exported, "
              f"to {exported}: no new SavedModel version", flush=True)
    else:
        # A resumed search with a new best adds the next version: TF Serving
        # serves the highest and does not reload one replaced in place.
        exported = export_saved_model(best, output / "saved_model",
                                      version=next_version(output / "saved_model"))
    results = {
        **identity,
        "trials": len(tuner.oracle.trials),
        # Over every run of this search (resumed ones too), not this run alone.
        "search_seconds": round(seconds_before + seconds, 1),
        "pretrain_runs": pretrain_runs_before + hypermodel.pretrain_calls,
        "project": project_dir,
        # Absolute: a rerun from another working directory reads them too.
        "model": os.path.abspath(model_path),
        "saved_model": os.path.abspath(exported),
    }
    write_text_replacing(output / "results.json", json.dumps(results, indent=2, default=str))
    print(f"[tune] best: val accuracy {val_accuracy:.4f}, test accuracy {test_accuracy:.4f}; "
          f"saved {model_path}, exported {exported}", flush=True)
    return results
