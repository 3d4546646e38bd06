"""Image datasets from TensorFlow Datasets, ready for RBMs and DBNs.

Every TFDS image dataset with ``(image, label)`` supervised keys works
(``mnist``, ``fashion_mnist``, ``kmnist``, ``emnist``, ...). Images are
flattened to ``(N, features)`` float32 vectors scaled to ``[0, 1]`` and may be
binarised, either by a threshold or by sampling Bernoulli(pixel), the usual
input of a binary RBM.

Without a network, point ``manual_dir`` at a folder holding the dataset's
original source files (for MNIST the four ``*-idx*-ubyte.gz`` files): TFDS
prepares the dataset from them into ``data_dir`` once, and later calls read the
prepared copy.

Example:

```python
from keras_dbn import datasets

x, y = datasets.load_numpy("mnist", "train", manual_dir="path/to/mnist")
x_few, y_few = datasets.stratified_subset(x, y, num_labels=100, seed=0)
x_tr, y_tr, x_val, y_val = datasets.train_validation_split(x, y, 0.1, seed=0)
```
"""

import numbers
import os
import re
import socket
import urllib.error
import urllib.parse

import numpy as np
import requests
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dbn import array_input

__all__ = [
    "image_shape",
    "load_numpy",
    "load_dataset",
    "stratified_subset",
    "train_validation_split",
]

BINARIZE_MODES = (None, "threshold", "stochastic")

# Shuffle buffer cap for load_dataset: holds all of MNIST / Fashion-MNIST, so
# their shuffles are uniform, while keeping larger datasets' buffers bounded.
_MAX_SHUFFLE_BUFFER = 60_000

# load_numpy reads splits in chunks of this many examples.
_NUMPY_CHUNK = 10_000

# What a failed download raises inside TFDS when there is no network.
_DOWNLOAD_ERRORS = (requests.exceptions.RequestException, urllib.error.URLError)


def _checksum_errors():
    """TFDS's error for source files with the wrong checksum, as a tuple for
    ``except`` (empty, catching nothing, where a TFDS version lacks it)."""
    try:
        from tensorflow_datasets.core.download.download_manager import (
            NonMatchingChecksumError,
        )
    except ImportError:
        return ()
    return (NonMatchingChecksumError,)


_CHECKSUM_ERRORS = _checksum_errors()


def load_numpy(
    name="mnist",
    split="train",
    *,
    data_dir=None,
    manual_dir=None,
    binarize=None,
    threshold=None,
    seed=None,
    limit=None,
    dtype="float32",
):
    """Loads a TFDS image dataset split into memory as numpy arrays.

    The split is read through `load_dataset` in batches of 10,000 examples
    and concatenated, so all 60,000 MNIST training images load in seconds.

    Args:
        name: TFDS dataset name, e.g. ``"mnist"`` or ``"fashion_mnist"``.
        split: TFDS split, e.g. ``"train"``, ``"test"`` or ``"train[:10%]"``.
        data_dir: Where TFDS keeps prepared datasets (TFDS default if None).
        manual_dir: Folder with the dataset's source files, used to prepare
            the dataset without a network.
        binarize: None to keep grey levels, ``"threshold"`` for
            ``x > threshold``, or ``"stochastic"`` for one Bernoulli(x) sample
            per pixel.
        threshold: The cut-off for ``binarize="threshold"``, in ``[0, 1]``
            (default 0.5); refused with the other modes, which it would
            not change.
        seed: Seed of the numpy generator used by ``binarize="stochastic"``.
        limit: If set, keep only the first ``limit`` examples of the split
            (all of them when it holds fewer).
        dtype: ``"float32"``, or ``"bfloat16"`` for half the memory: the
            input an RBM or DBN with a ``mixed_bfloat16`` policy reads as it
            is, without a cast per batch (1.61x float32's CD-1 throughput
            against 1.59x from float32 data at 784x500, batch 1000, on a
            2-core CPU with AVX512-BF16; ``benchmarks/RESULTS.md``).
            Binarised images are exact in bfloat16; grey levels ``k / 255``
            are rounded to its 8 significant bits (by at most 0.4%, 2**-8).

    Returns:
        A tuple ``(x, y)``: ``x`` of shape ``(N, features)`` in ``dtype``, with
        values in ``[0, 1]`` (in ``{0, 1}`` when binarised) and its data on a
        64-byte boundary (`array_input.as_aligned`), ``y`` int64 of shape
        ``(N,)``.

    Raises:
        ValueError: For an unknown dataset, a dataset without
            ``(image, label)`` supervised keys, a bad argument, or source
            files (in ``manual_dir`` or downloaded) whose checksums are not
            the dataset's, e.g. MNIST's files given for Fashion-MNIST.
        FileNotFoundError: When the dataset is not prepared, ``manual_dir``
            lacks its source files and they cannot be downloaded.

    Example:

    >>> x, y = load_numpy("mnist", "test", manual_dir="path/to/mnist", limit=500)
    >>> x.shape, x.dtype, y.dtype
    ((500, 784), dtype('float32'), dtype('int64'))
    >>> x16, _ = load_numpy("mnist", "train", binarize="threshold", dtype="bfloat16",
    ...                     manual_dir="path/to/mnist")
    >>> keras_dbn.RBM(500, dtype="mixed_bfloat16").fit(x16, batch_size=1000, epochs=10)
    """
    threshold = _check_binarize(binarize, threshold)
    try:
        # A TensorFlow dtype (tf.bfloat16) names its NumPy one.
        chosen = np.dtype(getattr(dtype, "as_numpy_dtype", dtype))
    except TypeError:  # a name NumPy does not know
        chosen = None
    if chosen is None or (chosen != np.float32 and not array_input.is_bfloat16(chosen)):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}.")
    _check_split(split)
    if limit is not None:
        _check_positive_int(limit, "limit")
        if _is_plain_split(split):
            splits = _prepared_builder(name, data_dir, manual_dir).info.splits
            if split in splits and limit < splits[split].num_examples:
                # TFDS reads only the requested records of a sliced split
                # (and refuses a slice beyond the split's end).
                split, limit = f"{split}[:{limit}]", None

    # The same flattening and scaling as load_dataset, in large batches.
    ds = load_dataset(
        name, split, batch_size=_NUMPY_CHUNK, shuffle=False, data_dir=data_dir,
        manual_dir=manual_dir, cache=False,
    )
    chunks = list(tfds.as_numpy(ds))
    if not chunks:
        raise ValueError(f"Split {split!r} of {name!r} holds no examples.")
    images = [images for images, _ in chunks]
    labels = np.concatenate([labels for _, labels in chunks])
    count = len(labels) if limit is None else min(limit, len(labels))
    # 64-byte aligned: array_input gathers its batches from a zero-copy view.
    x = array_input.aligned_empty((count,) + images[0].shape[1:], dtype=chosen)
    rng = np.random.default_rng(seed) if binarize == "stochastic" else None
    start = 0
    for chunk in images:
        chunk = chunk[: count - start]
        stop = start + len(chunk)
        if binarize == "threshold":
            np.greater(chunk, threshold, out=x[start:stop], casting="unsafe")
        elif binarize == "stochastic":
            # Drawn chunk by chunk from one generator: the same numbers as
            # one draw for the whole array.
            uniform = rng.random(chunk.shape, dtype=np.float32)
            np.less(uniform, chunk, out=x[start:stop], casting="unsafe")
        else:
            x[start:stop] = chunk  # rounded to nearest for bfloat16
        start = stop
    return x, labels[:count].astype(np.int64, copy=False)


def load_dataset(
    name="mnist",
    split="train",
    *,
    batch_size=100,
    shuffle=True,
    seed=None,
    data_dir=None,
    manual_dir=None,
    binarize=None,
    threshold=None,
    labels=True,
    cache=True,
):
    """Streams a TFDS image dataset split as a batched ``tf.data.Dataset``.

    Preprocessing is the same as :func:`load_numpy` but runs inside the
    pipeline, on whole batches. With ``binarize="stochastic"`` every epoch
    draws fresh Bernoulli samples (reproducibly when ``seed`` is set).

    Args:
        name: TFDS dataset name, e.g. ``"mnist"`` or ``"fashion_mnist"``.
        split: TFDS split, e.g. ``"train"`` or ``"train[:50000]"``.
        batch_size: Examples per batch; the last batch may be smaller.
        shuffle: Whether to reshuffle the examples every epoch.
        seed: Seed for the shuffle and the stochastic binarisation.
        data_dir: Where TFDS keeps prepared datasets (TFDS default if None).
        manual_dir: Folder with the dataset's source files, used to prepare
            the dataset without a network.
        binarize: None, ``"threshold"`` or ``"stochastic"``, as in
            :func:`load_numpy`.
        threshold: The cut-off for ``binarize="threshold"``, in ``[0, 1]``
            (default 0.5); refused with the other modes, which it would
            not change.
        labels: If True the dataset yields ``(x, y)``, otherwise ``x`` alone
            (what an unsupervised ``RBM.fit`` needs).
        cache: Keep the decoded images in memory after the first epoch (as
            uint8, a quarter of the float32 size). Turn it off for datasets
            that do not fit in memory.

    Returns:
        A prefetched ``tf.data.Dataset`` of float32 batches of shape
        ``(batch, features)``, paired with int64 labels when ``labels=True``.
        With ``cache=True`` the pipeline runs on one thread
        (`array_input.lean_options`), which leaves the cores to the
        training step; a caller who adds heavy stages of their own can give
        it more with ``ds.with_options``. With ``cache=False`` it keeps
        tf.data's default threading, without its autotuning
        (`array_input.untuned_options`): the images are then decoded again
        every epoch, unless TFDS caches the dataset itself (it does so for
        small ones).

    Raises:
        ValueError: For an unknown dataset, a bad argument, or source files
            whose checksums are not the dataset's (as in `load_numpy`).
        FileNotFoundError: When the dataset cannot be prepared offline.

    Example:

    >>> ds = load_dataset("mnist", batch_size=100, binarize="stochastic",
    ...                   labels=False, seed=0, manual_dir="path/to/mnist")
    >>> rbm.fit(ds, epochs=10)
    """
    threshold = _check_binarize(binarize, threshold)
    _check_positive_int(batch_size, "batch_size")

    ds, _ = _load(
        name,
        split,
        data_dir,
        manual_dir,
        shuffle_files=shuffle,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    if cache:
        ds = ds.cache()
    if shuffle:
        size = int(ds.cardinality())  # negative when unknown
        buffer_size = _MAX_SHUFFLE_BUFFER if size < 1 else min(size, _MAX_SHUFFLE_BUFFER)
        ds = ds.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    # A static feature count in element_spec lets Keras build models from it.
    image_shape = ds.element_spec[0].shape
    features = image_shape.num_elements() if image_shape.is_fully_defined() else -1
    ds = ds.batch(batch_size)

    def flatten(images, y):
        return _to_unit_interval(tf.reshape(images, [-1, features])), y

    ds = ds.map(flatten, num_parallel_calls=tf.data.AUTOTUNE)
    if binarize == "threshold":
        ds = ds.map(lambda x, y: (tf.cast(x > threshold, tf.float32), y))
    elif binarize == "stochastic":
        # One fresh stateless seed per batch; rerandomize_each_iteration makes
        # every epoch draw new samples while the run stays reproducible.
        noise_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, noise_seeds)).map(
            _bernoulli_batch, num_parallel_calls=tf.data.AUTOTUNE
        )
    if not labels:
        ds = ds.map(lambda x, y: x)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    if cache:
        # On a machine with few cores tf.data's own thread pool and
        # autotuning take cores from the training step's GEMMs; one thread
        # keeps up with the stages left once the images are cached (a
        # reshape and a cast per batch). `RBM.fit` on MNIST, 784x500, CD-1,
        # 2 cores: 1.40x faster at batch 1000 (0.94 of NumPy input instead
        # of 0.68), 1.04x at batch 100; a streamed DBN pretraining 1.26x,
        # fine-tuning 1.22x (benchmarks/RESULTS.md, section 1, twenty-sixth
        # session). Without our cache every epoch may decode the images
        # again, work that tf.data's threads share out as it sees fit.
        ds = ds.with_options(array_input.lean_options())
    else:
        # tf.data's threads for the decoding, but not its autotuning thread,
        # which may stall the end of every epoch (array_input.untuned_options).
        ds = ds.with_options(array_input.untuned_options())
    return ds


def stratified_subset(x, y, num_labels, seed=None, name="num_labels"):
    """Draws a class-balanced labelled subset, for few-label fine-tuning.

    Each class gets ``num_labels // n_classes`` examples, and the remainder
    goes one each to randomly chosen classes; a class with too few examples
    gives its share to the others.

    Args:
        x: Array of examples, first axis indexing examples.
        y: 1-D array of integer class labels, one per example.
        num_labels: Size of the subset, at least the number of classes and at
            most ``len(y)``.
        seed: Seed of the numpy generator choosing the examples.
        name: How error messages call ``num_labels``, e.g. the command-line
            option that set it.

    Returns:
        A tuple ``(x_sub, y_sub)`` of ``num_labels`` examples, in the order they
        have in ``x``.

    Raises:
        ValueError: If ``x`` and ``y`` differ in length or ``num_labels`` is
            out of range.

    Example:

    >>> x_few, y_few = stratified_subset(x_train, y_train, 100, seed=0)
    >>> np.bincount(y_few)  # MNIST: ten examples per digit
    array([10, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    """
    x, y = _check_xy(x, y)
    _check_positive_int(num_labels, name)
    classes, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
    if num_labels < len(classes):
        raise ValueError(
            f"{name}={num_labels} is fewer than the {len(classes)} classes of the data: "
            "a balanced subset needs an example of each."
        )
    if num_labels > len(y):
        raise ValueError(f"{name}={num_labels} exceeds the {len(y)} examples given.")
    rng = np.random.default_rng(seed)
    quotas = _balanced_quotas(counts, num_labels, rng)
    index = _draw_per_class(y_index, quotas, rng)
    return x[index], y[index]


def train_validation_split(x, y, validation_size, seed=None, stratify=True,
                           name="validation_size"):
    """Splits examples into a training and a validation set.

    Args:
        x: Array of examples, first axis indexing examples.
        y: 1-D array of labels, one per example.
        validation_size: Number of validation examples (int) or their fraction
            of the data (float strictly between 0 and 1).
        seed: Seed of the numpy generator choosing the validation examples.
        stratify: Keep the class proportions of ``y`` in both sets (each class
            contributes its share, rounded by largest remainder; classes
            tied for the last examples are chosen at random).
        name: How error messages call ``validation_size``, e.g. the
            command-line option that set it.

    Returns:
        A tuple ``(x_train, y_train, x_val, y_val)``; both sets keep the order
        the examples have in ``x``.

    Raises:
        ValueError: If ``x`` and ``y`` differ in length or the validation size
            leaves either set empty.

    Example:

    >>> x_tr, y_tr, x_val, y_val = train_validation_split(x, y, 0.1, seed=0)
    >>> len(x_val) == round(0.1 * len(x))
    True
    """
    x, y = _check_xy(x, y)
    n = len(y)
    if isinstance(validation_size, bool) or not isinstance(
        validation_size, (numbers.Integral, numbers.Real)
    ):
        raise ValueError(f"{name} must be an int or a float, got {validation_size!r}.")
    if isinstance(validation_size, numbers.Integral):
        n_val = int(validation_size)
    else:
        if not 0.0 < validation_size < 1.0:
            raise ValueError(
                f"A fractional {name} must lie in (0, 1), got {validation_size}."
            )
        n_val = int(round(validation_size * n))
    if not 0 < n_val < n:
        raise ValueError(
            f"{name}={validation_size!r} gives {n_val} validation examples "
            f"out of {n}; both sets must be non-empty."
        )

    rng = np.random.default_rng(seed)
    if stratify:
        _, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
        val_index = _draw_per_class(y_index, _proportional_quotas(counts, n_val, rng), rng)
    else:
        val_index = np.sort(rng.choice(n, size=n_val, replace=False))
    is_val = np.zeros(n, dtype=bool)
    is_val[val_index] = True
    return x[~is_val], y[~is_val], x[is_val], y[is_val]


# ----------------------------------------------------------------------------
# Loading helpers


def _builder(name, data_dir):
    """The TFDS builder of an ``(image, label)`` dataset, with clear errors."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a TFDS dataset name, got {name!r}.")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        # TFDS's own message lists every registered dataset (over a thousand).
        raise ValueError(
            f"Unknown TFDS dataset {name!r}; see tfds.list_builders() for the "
            "available names (e.g. 'mnist', 'fashion_mnist')."
        ) from None
    except AssertionError as error:  # TFDS's error for a version it does not have
        raise ValueError(f"TFDS cannot load {name!r}: {error}") from None
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2 or keys[0] != "image":
        raise ValueError(
            f"Dataset {name!r} has supervised keys {keys}; keras_dbn.datasets "
            "needs an image dataset with ('image', 'label') keys."
        )
    return builder


def _prepared_builder(name, data_dir, manual_dir):
    """`_builder`, its data downloaded (or read from ``manual_dir``) and prepared."""
    builder = _builder(name, data_dir)
    if builder.is_prepared():
        return builder
    if manual_dir is not None:
        _check_manual_dir(builder, name, manual_dir)
    else:
        host = _unresolved_download_host(builder)
        if host is not None:
            raise _not_downloaded(builder, name, manual_dir,
                                  f"its download host {host!r} does not resolve: no network?")
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    except _DOWNLOAD_ERRORS as error:
        raise _not_downloaded(builder, name, manual_dir, type(error).__name__) from error
    except _CHECKSUM_ERRORS as error:
        raise _checksum_mismatch(name, manual_dir, error) from error
    return builder


def _not_downloaded(builder, name, manual_dir, why):
    return FileNotFoundError(
        f"Dataset {name!r} is not prepared in {builder.data_dir!s} and could "
        f"not be downloaded ({why}). Without a network, pass "
        "manual_dir=<folder holding its original source files> "
        f"(`--manual-dir` of keras-dbn; manual_dir was {manual_dir!r})."
    )


def _unresolved_download_host(builder):
    """The first host of the dataset's source URLs whose name does not
    resolve, or None.

    Without a network TFDS retries each download with growing pauses,
    ~3.5 minutes in all, before it fails; an unresolvable host name tells
    at once. URLs reached through a proxy (the ``*_proxy`` environment
    variables) are left to the download, since the proxy resolves them,
    and so are builders whose ``download_and_prepare`` is not TFDS's own.
    """
    method = getattr(type(builder), "download_and_prepare", None)
    if not getattr(method, "__module__", "").startswith("tensorflow_datasets.core"):
        return None  # replaced (tfds.testing.mock_data's no-op): it downloads nothing
    hosts = {}
    for url in builder.url_infos or {}:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname and not requests.utils.get_environ_proxies(url):
            hosts.setdefault(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    for host, port in hosts.items():
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return host
    return None


def _checksum_mismatch(name, manual_dir, error):
    """The one-line ValueError for TFDS's multi-line NonMatchingChecksumError."""
    # TFDS names the file as "Artifact <url>, downloaded to <path>, has wrong checksum".
    found = re.search(r"downloaded to (.+?), has wrong checksum", str(error))
    file = f" ({os.path.basename(found.group(1))} first)" if found else ""
    if manual_dir is None:
        return ValueError(
            f"The downloaded source files of dataset {name!r} do not match its expected "
            f"checksums{file}; remove them from TFDS's download folder and try again, or pass "
            "manual_dir=<folder holding its original source files>."
        )
    return ValueError(
        f"The source files of dataset {name!r} in manual_dir {str(manual_dir)!r} do not match "
        f"its expected checksums{file}; check that the folder holds {name}'s original files "
        "(`--manual-dir` of keras-dbn)."
    )


def _load(name, split, data_dir, manual_dir, **load_kwargs):
    """``tfds.load`` of an ``(image, label)`` dataset, with clear errors.

    Returns:
        A tuple ``(dataset, info)``.
    """
    _check_split(split)
    builder = _prepared_builder(name, data_dir, manual_dir)
    try:
        dataset = builder.as_dataset(split=split, as_supervised=True, **load_kwargs)
    except ValueError as error:
        if "corresponds to no data" not in str(error):  # an empty slice, e.g. "train[5:5]"
            raise
        raise ValueError(f"Split {split!r} of {name!r} holds no examples.") from None
    return dataset, builder.info


def _check_split(split):
    # A list of splits would give a list of datasets, which nothing here reads.
    if not isinstance(split, str) or not split.strip():
        raise ValueError(
            f"split must be a TFDS split name such as 'train', 'test' or "
            f"'train[:10%]', got {split!r}."
        )


def image_shape(name="mnist", data_dir=None):
    """The shape of one image of a TFDS image dataset, without loading it.

    Read from the dataset's description, so it needs neither the data nor a
    network: what `keras_dbn.callbacks.image_grid` needs to draw the flat
    rows that `load_numpy` returns.

    Args:
        name: TFDS dataset name, e.g. ``"mnist"`` or ``"cifar10"``.
        data_dir: Where TFDS keeps prepared datasets (TFDS default if None).

    Returns:
        A tuple ``(height, width, channels)``, e.g. ``(28, 28, 1)`` for
        MNIST and ``(32, 32, 3)`` for CIFAR-10.

    Raises:
        ValueError: For an unknown dataset, one without ``(image, label)``
            supervised keys, or one whose images vary in size.

    Example:

    >>> image_shape("mnist")
    (28, 28, 1)
    """
    shape = tuple(_builder(name, data_dir).info.features["image"].shape)
    if len(shape) != 3 or None in shape:
        raise ValueError(f"Dataset {name!r} has images of varying shape {shape}.")
    return tuple(int(d) for d in shape)


def _check_manual_dir(builder, name, manual_dir):
    """Fails at once, rather than after TFDS's minutes of download retries."""
    missing = sorted(
        info.filename
        for info in (builder.url_infos or {}).values()
        if not tf.io.gfile.exists(f"{manual_dir}/{info.filename}")
    )
    if missing:
        raise FileNotFoundError(
            f"Dataset {name!r} is not prepared in {builder.data_dir!s} and the "
            f"manual directory {manual_dir!s} lacks its source files: "
            f"{', '.join(missing)}."
        )


def _is_plain_split(split):
    # "train" can be sliced as "train[:N]"; "train[:50%]" or "train+test" cannot.
    return isinstance(split, str) and not any(c in split for c in "[]+")


def _to_unit_interval(images):
    if images.dtype.is_integer:
        return tf.cast(images, tf.float32) / float(images.dtype.max)
    return tf.cast(images, tf.float32)


def _bernoulli_batch(batch, noise_seed):
    x, y = batch
    seed = tf.stack([noise_seed, tf.constant(0, tf.int64)])
    return tf.cast(tf.random.stateless_uniform(tf.shape(x), seed=seed) < x, tf.float32), y


# ----------------------------------------------------------------------------
# Validation and sampling helpers


def _check_binarize(binarize, threshold):
    """The threshold to binarise at (0.5 unless given); clear errors for bad
    arguments, and for a threshold without ``binarize="threshold"``."""
    if binarize not in BINARIZE_MODES:
        raise ValueError(
            f"binarize must be one of {BINARIZE_MODES}, got {binarize!r}."
        )
    if threshold is None:
        return 0.5
    if binarize != "threshold":
        raise ValueError(
            f"threshold={threshold!r} applies only with binarize='threshold' "
            f"(got binarize={binarize!r}, which it would not change)."
        )
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not 0.0 <= threshold <= 1.0
    ):
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}.")
    return float(threshold)


def _check_positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}.")


def _check_xy(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}.")
    if x.ndim == 0 or len(x) != len(y):
        raise ValueError(
            f"x and y must hold the same number of examples, got shapes {x.shape} and {y.shape}."
        )
    return x, y


def _balanced_quotas(counts, total, rng):
    """Splits ``total`` over classes as evenly as their ``counts`` allow."""
    quotas = np.zeros_like(counts)
    while (remaining := total - quotas.sum()) > 0:
        open_classes = np.flatnonzero(quotas < counts)
        share, extra = divmod(remaining, len(open_classes))
        add = np.full(len(open_classes), share)
        add[rng.choice(len(open_classes), size=extra, replace=False)] += 1
        quotas[open_classes] = np.minimum(quotas[open_classes] + add, counts[open_classes])
    return quotas


def _proportional_quotas(counts, total, rng):
    """Splits ``total`` over classes in proportion to ``counts`` (largest
    remainder); classes tied at the cut get the last ones by ``rng``, not
    by their order (balanced classes' leftovers went to the lowest)."""
    # In integers: float shares hide ties (5 * (3 / 9) is 1.6666666666666665).
    quotas, remainder = np.divmod(np.asarray(counts, np.int64) * int(total), int(counts.sum()))
    left = int(total - quotas.sum())
    order = np.argsort(-remainder, kind="stable")
    if 0 < left < len(counts) and remainder[order[left - 1]] == remainder[order[left]]:
        order = np.lexsort((rng.permutation(len(counts)), -remainder))
    quotas[order[:left]] += 1
    return quotas


def _draw_per_class(y_index, quotas, rng):
    """Sorted indices holding ``quotas[c]`` random examples of each class ``c``."""
    chosen = [
        rng.choice(np.flatnonzero(y_index == c), size=q, replace=False)
        for c, q in enumerate(quotas)
        if q > 0
    ]
    return np.sort(np.concatenate(chosen))
