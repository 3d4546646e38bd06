"""Pictures of what an RBM has learned: filter and sample grids, weight histograms.

Looking at the first layer's filters and at fantasies from the model is the
quickest check that an RBM is learning something (Hinton's practical guide,
section 15). `image_grid` tiles images into one picture, `save_image_grid`
writes it as a PNG through `tf.io.encode_png` (no imaging dependency), and
`ImageGridCallback` does both during ``fit()``, optionally also as
TensorBoard image summaries. `WeightHistograms` writes TensorBoard
histograms of an RBM's weights and of their changes, which Keras'
``TensorBoard(histogram_freq=...)`` cannot (an RBM has no sublayers).

References:
    Hinton, "A Practical Guide to Training Restricted Boltzmann Machines",
    UTML TR 2010-003, section 15 (displaying what is happening).
"""

import glob
import math
import os
import re

import keras
import numpy as np
import tensorflow as tf

from keras_dbn import user_warnings
from keras_dbn.rbm import RBM, checked_count, checked_sampling_seed


def _resolve_shape(num_features, image_shape):
    if image_shape is not None:
        image_shape = tuple(int(d) for d in image_shape)
        if math.prod(image_shape) != num_features:
            raise ValueError(
                f"image_shape {image_shape} holds {math.prod(image_shape)} values, "
                f"but each image has {num_features}."
            )
        return image_shape
    side = math.isqrt(num_features)
    if side * side != num_features:
        raise ValueError(
            f"Images of {num_features} features are not square: pass image_shape."
        )
    return (side, side)


def image_grid(images, image_shape=None, rows=None, cols=None, padding=1, normalize=True):
    """Tiles images (filters or samples) into one uint8 picture.

    Args:
        images: array of shape ``(n, features)``, ``(n, height, width)`` or
            ``(n, height, width, channels)``.
        image_shape: ``(height, width)`` or ``(height, width, channels)`` of
            each image when ``images`` is flat; by default square.
        rows, cols: grid size; by default ``cols = ceil(sqrt(n))`` and as
            many rows as needed. Images beyond ``rows * cols`` are dropped.
        padding: pixels of black between tiles.
        normalize: rescale each image to its own [min, max] (right for
            filters, whose scale varies from unit to unit); otherwise values
            are clipped to [0, 1] (right for probabilities and samples).

    Returns:
        A uint8 array of shape ``(H, W)``, or ``(H, W, channels)`` when the
        images have a channel axis.

    Raises:
        ValueError: for ``images`` of another rank or without images, and
            for ``rows`` or ``cols`` below 1 or a negative ``padding``.

    Example:

    >>> grid = image_grid(rbm.kernel.numpy().T[:100])   # 100 28x28 filters
    >>> grid.shape
    (289, 289)
    """
    images = np.asarray(images, dtype=np.float64)
    if not 2 <= images.ndim <= 4:
        raise ValueError(
            "`images` must have shape (n, features), (n, height, width) or "
            f"(n, height, width, channels), got shape {images.shape}."
        )
    rows = None if rows is None else checked_count(rows, "`rows`", 1)
    cols = None if cols is None else checked_count(cols, "`cols`", 1)
    padding = checked_count(padding, "`padding`")
    n = images.shape[0]
    if images.ndim == 2:
        shape = _resolve_shape(images.shape[1], image_shape)
        images = images.reshape((n,) + shape)
    channels = images.shape[3] if images.ndim == 4 else None
    if images.ndim == 3:
        images = images[..., None]
    if n == 0:
        raise ValueError("`images` is empty.")
    if cols is None:
        cols = math.ceil(math.sqrt(n)) if rows is None else math.ceil(n / rows)
    if rows is None:
        rows = math.ceil(n / cols)
    images = images[: rows * cols]

    if normalize:
        axes = tuple(range(1, images.ndim))
        low = images.min(axis=axes, keepdims=True)
        span = images.max(axis=axes, keepdims=True) - low
        images = np.where(span > 0, (images - low) / np.where(span > 0, span, 1.0), 0.0)
    else:
        images = np.clip(images, 0.0, 1.0)

    height, width, depth = images.shape[1:]
    grid = np.zeros(
        (rows * height + (rows - 1) * padding, cols * width + (cols - 1) * padding, depth)
    )
    for index, image in enumerate(images):
        top = (index // cols) * (height + padding)
        left = (index % cols) * (width + padding)
        grid[top : top + height, left : left + width] = image
    grid = np.round(grid * 255.0).astype(np.uint8)
    return grid if channels is not None else grid[..., 0]


def rescales_samples(rbm):
    """Whether ``rbm``'s visible samples need `image_grid`'s ``normalize``.

    Bernoulli samples and means are probabilities, shown as they are
    (clipped to [0, 1]): rescaled per image, faint noise would look like
    a full-contrast digit. Other units' values have no fixed scale.

    Args:
        rbm: the RBM whose visible units drew the samples (for a DBN, its
            lowest RBM, ``dbn.rbms[0]``).

    Returns:
        True unless the visible units are Bernoulli.

    Example:

    >>> save_image_grid(samples, "samples.png", normalize=rescales_samples(dbn.rbms[0]))
    """
    return getattr(getattr(rbm, "visible_units", None), "name", None) != "bernoulli"


def save_image_grid(images, path, **kwargs):
    """Writes `image_grid` of ``images`` to a PNG file.

    Args:
        images: as for `image_grid`.
        path: file to write; parent directories are created.
        **kwargs: passed to `image_grid`.

    Returns:
        ``path``.

    Example:

    >>> save_image_grid(rbm.sample(64, gibbs_steps=1000), "samples.png", normalize=False)
    """
    return _write_png(image_grid(images, **kwargs), path)


def _write_png(grid, path):
    if grid.ndim == 2:
        grid = grid[..., None]
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    tf.io.write_file(os.fspath(path), tf.io.encode_png(grid))
    return path


def _image_summary(name, grid, step):
    """Writes ``grid`` as a TensorBoard image summary to the default writer."""
    image = grid[..., None] if grid.ndim == 2 else grid
    return tf.summary.image(name, image[None], step=step)


class ImageGridCallback(keras.callbacks.Callback):
    """Writes grids of first-layer filters and of model samples during fit.

    Every ``every_n_epochs`` epochs it writes ``filters_epochNNN.png`` (the
    columns of the RBM's kernel, one tile per hidden unit) and
    ``samples_epochNNN.png`` (fantasies after ``gibbs_steps`` Gibbs steps)
    into ``log_dir``, and with ``tensorboard=True`` the same pictures as
    image summaries ``filters`` and ``samples`` in ``log_dir/train`` at
    step ``NNN - 1``: for one ``fit()``, beside the scalars of a
    ``keras.callbacks.TensorBoard(log_dir)``, which counts that call's
    epochs from 0 (this callback counts on over later calls and layers).

    Epochs are counted over every ``fit()`` the callback sees, so a second
    call, or the next layer of `DBN.pretrain`, writes new files instead of
    overwriting the first call's. A call with ``initial_epoch`` (Keras'
    count of the epochs already trained) continues from there: the same
    callback after ``fit(epochs=2)`` numbers ``fit(epochs=4,
    initial_epoch=2)``'s epochs 3 and 4, and so does a new callback; one
    that has already counted more epochs than ``initial_epoch`` (say over
    two layers of `DBN.pretrain`) continues its own count instead, so it
    never replaces its own pictures. A new callback whose ``log_dir``
    already holds such pictures (an earlier run's) of the epochs it is
    about to number warns when training begins that its own will replace
    them.

    Filters come from ``rbm`` when given, otherwise from the RBM being
    fitted. Samples come from ``generate(n, gibbs_steps=...)`` of ``rbm``
    or of the fitted model when either has one (a DBN), otherwise from the
    filter RBM's ``sample(n, gibbs_steps)``. `DBN.pretrain` passes its
    callbacks to every layer's ``fit()``; give such a callback ``rbm=dbn``
    (the first layer's filters, the DBN's samples) or ``rbm=dbn.rbms[0]``:
    the upper layers' filters are not images. A callback given one RBM
    writes nothing while another RBM trains (the layers above it, whose
    training leaves its pictures unchanged), though it counts those epochs.

    Args:
        log_dir: folder for the PNG files and TensorBoard events.
        every_n_epochs: how often to write.
        num_filters: number of hidden units whose filters are shown.
        num_samples: number of samples drawn.
        gibbs_steps: Gibbs steps per sample. Each picture of samples runs
            ``num_samples`` chains for ``gibbs_steps`` steps: at the
            defaults ~1.4 s for a 784x500 RBM on a 2-core CPU (an epoch of
            10,000 images at batch 100 takes ~0.3 s); lower it, or raise
            ``every_n_epochs``, where epochs are short.
        image_shape: shape of one visible vector as an image; by default
            square.
        tensorboard: also write TensorBoard image summaries.
        rbm: the RBM whose filters are shown (or a DBN); by default the
            fitted model.
        seed: the samples' seed (`RBM.sample`'s ``seed``): each epoch's
            chains draw the same noise, so the pictures differ only as the
            weights do, and training draws the same random numbers as
            without the callback. ``None`` draws from the model's own
            stream instead, which changes what training draws next.

    Raises:
        ValueError: for counts that are not positive integers
            (``gibbs_steps`` may be 0), and, when training begins with the
            RBM built, for an ``image_shape`` that does not hold one visible
            vector (or non-square images without one).

    Example:

    ```python
    rbm.fit(x, epochs=10, callbacks=[ImageGridCallback("logs/rbm", every_n_epochs=5)])
    ```

    References:
        Hinton, UTML TR 2010-003, section 15.
    """

    def __init__(
        self,
        log_dir,
        every_n_epochs=1,
        num_filters=100,
        num_samples=100,
        gibbs_steps=1000,
        image_shape=None,
        tensorboard=True,
        rbm=None,
        seed=0,
    ):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.every_n_epochs = checked_count(every_n_epochs, "`every_n_epochs`", 1)
        self.num_filters = checked_count(num_filters, "`num_filters`", 1)
        self.num_samples = checked_count(num_samples, "`num_samples`", 1)
        self.gibbs_steps = checked_count(gibbs_steps, "`gibbs_steps`")
        self.image_shape = image_shape
        self.tensorboard = bool(tensorboard)
        self.rbm = rbm
        self.seed = checked_sampling_seed(seed, allow_none=True)
        self._writer = None
        self._epochs_seen = 0  # number of the last epoch written or skipped
        self._offset = None  # this fit()'s epoch index -> number, from its first epoch

    def _filter_rbm(self):
        source = self.rbm if self.rbm is not None else self.model
        if hasattr(source, "rbms"):  # a DBN: its first layer sees the pixels
            source = source.rbms[0]
        if source is None or not (isinstance(source, RBM) or hasattr(source, "kernel")):
            raise ValueError(
                "ImageGridCallback needs an RBM with a `kernel`: pass rbm= "
                "(e.g. the first layer of a DBN)."
            )
        return source

    def _samples(self):
        for source in (self.rbm, self.model):
            if source is not None and hasattr(source, "generate"):
                return np.asarray(source.generate(self.num_samples, gibbs_steps=self.gibbs_steps,
                                                  seed=self.seed))
        return np.asarray(self._filter_rbm().sample(self.num_samples, self.gibbs_steps,
                                                    seed=self.seed))

    def write(self, epoch):
        """Writes the grids for ``epoch`` (1-based) and returns their paths.

        Example:

        >>> grids = ImageGridCallback("logs/rbm", rbm=rbm, gibbs_steps=100, tensorboard=False)
        >>> grids.write(1)  # without training, e.g. after loading an RBM
        {'filters': 'logs/rbm/filters_epoch001.png', 'samples': 'logs/rbm/samples_epoch001.png'}
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 1:
            raise ValueError(f"`epoch` counts from 1, got {epoch!r}.")
        rbm = self._filter_rbm()
        if isinstance(rbm, RBM):
            rbm._require_built()  # "no weights yet", not a missing attribute
        filters = np.asarray(rbm.kernel)[:, : self.num_filters].T
        samples = self._samples()
        grids = {
            "filters": image_grid(filters, image_shape=self.image_shape, normalize=True),
            "samples": image_grid(
                samples, image_shape=self.image_shape, normalize=rescales_samples(rbm)
            ),
        }
        paths = {}
        for name, grid in grids.items():
            paths[name] = os.path.join(self.log_dir, f"{name}_epoch{epoch:03d}.png")
            _write_png(grid, paths[name])
        if self.tensorboard:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(
                    os.path.join(self.log_dir, "train"))
            with self._writer.as_default():
                for name, grid in grids.items():
                    _image_summary(name, grid, epoch - 1)  # Keras' TensorBoard's step
            self._writer.flush()
        return paths

    def on_train_begin(self, logs=None):
        # A wrong image shape or model would otherwise stop training at the
        # end of its first epoch; the shape is known once the RBM is built
        # (`RBM.fit` builds it from NumPy data before training).
        rbm = self._filter_rbm()
        if rbm.built:
            _resolve_shape(rbm.num_visible, self.image_shape)
        # Keras tells the callback its `initial_epoch` only through the
        # first epoch's index: `_epoch_number` sets the offset then.
        self._offset = None

    def _epoch_number(self, epoch):
        """The 1-based number of this fit()'s epoch index ``epoch``."""
        if self._offset is None:
            # Keras' index already counts the epochs before `initial_epoch`
            # (a resumed fit: this callback's or another's); an index below
            # the epochs this callback has counted (a new fit() from 0, the
            # next layer of DBN.pretrain) continues its count instead.
            self._offset = max(self._epochs_seen - epoch, 0)
        return self._offset + epoch + 1

    def on_epoch_begin(self, epoch, logs=None):
        new_fit = self._offset is None
        number = self._epoch_number(epoch)
        if new_fit and self._epochs_seen == 0:
            self._warn_of_earlier_pictures(number)

    def _warn_of_earlier_pictures(self, first):
        """Warns when ``log_dir`` holds grids this callback did not write of
        epoch ``first`` or later: its epochs' files would replace them."""
        earlier = []
        for name in ("filters", "samples"):
            pattern = os.path.join(glob.escape(self.log_dir), f"{name}_epoch*.png")
            for path in glob.glob(pattern):
                found = re.fullmatch(rf"{name}_epoch(\d+)\.png", os.path.basename(path))
                if found is None or int(found.group(1)) >= first:
                    earlier.append(os.path.basename(path))
        earlier.sort()
        if earlier:
            shown = ", ".join(earlier[:3]) + (", ..." if len(earlier) > 3 else "")
            user_warnings.warn(
                f"ImageGridCallback: {self.log_dir} already holds {len(earlier)} pictures of "
                f"an earlier run ({shown}); this run's pictures of the same epochs will "
                "replace them. Give each run its own log_dir to keep both."
            )

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_seen = self._epoch_number(epoch)
        # Another RBM in training (a layer above in `DBN.pretrain`) leaves
        # the watched one's pictures as they were.
        other_rbm = isinstance(self.model, RBM) and isinstance(self.rbm, RBM) \
            and self.model is not self.rbm
        if self._epochs_seen % self.every_n_epochs == 0 and not other_rbm:
            self.write(self._epochs_seen)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()


class WeightHistograms(keras.callbacks.Callback):
    """TensorBoard histograms of an RBM's weights and of how they change.

    Hinton's practical guide (section 15) advises watching histograms of
    the weights and of their updates: updates much larger than about
    1e-3 of the weights mean too high a learning rate. Keras'
    ``TensorBoard(histogram_freq=...)`` logs the weights of a model's
    sublayers, and an RBM has none (its kernel and biases are its own), so
    it logs nothing for one; this callback logs them.

    Every ``freq`` epochs (from the first; step = the epoch index, as
    Keras' `TensorBoard` counts) it writes to ``log_dir/train`` (where
    ``keras.callbacks.TensorBoard(log_dir)`` writes its training scalars,
    so both show in one run):

    - ``<weight>/histogram``: the values of each of the RBM's kernel and
      biases, named by their Keras path (``rbm/kernel``, ...);
    - ``<weight>/change/histogram`` and ``<weight>/change_ratio``: the
      change since the previous histogram (for the first, since training
      began), and its mean absolute value over the weights' (the guide's
      update-to-weight ratio, summed over the epochs between two
      histograms).

    One callback may follow every layer of `DBN.pretrain`: each RBM's
    weights carry its own name.

    Args:
        log_dir: the TensorBoard log folder.
        freq: write every ``freq`` epochs, an integer >= 1.

    Raises:
        ValueError: for a ``freq`` that is not an integer >= 1.

    Example:

    ```python
    logs = "logs/rbm"
    rbm.fit(x, epochs=10, callbacks=[keras.callbacks.TensorBoard(logs),
                                     keras_dbn.callbacks.WeightHistograms(logs)])
    ```

    References:
        Hinton, UTML TR 2010-003, section 15.
    """

    def __init__(self, log_dir, freq=1):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.freq = checked_count(freq, "`freq`", 1)
        self._writer = None
        self._previous = {}

    def _weights(self):
        model = self.model
        if isinstance(model, RBM):
            return model._parameters()
        return list(model.trainable_weights)

    def on_train_begin(self, logs=None):
        # The first histogram's change is the first epoch's (weights not
        # seen yet: a new RBM, or the next layer of DBN.pretrain).
        if getattr(self.model, "built", False):
            for weight in self._weights():
                self._previous.setdefault(id(weight), (weight, np.asarray(weight, np.float32)))

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.freq:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "train"))
        with self._writer.as_default():
            for weight in self._weights():
                name = weight.path.replace(":", "_")
                value = np.asarray(weight, dtype=np.float32)
                tf.summary.histogram(f"{name}/histogram", value, step=epoch)
                # Kept with the weight itself, so that its id stays its own.
                _, previous = self._previous.get(id(weight), (None, None))
                if previous is not None and previous.shape == value.shape:
                    change = value - previous
                    tf.summary.histogram(f"{name}/change/histogram", change, step=epoch)
                    scale = float(np.mean(np.abs(value)))
                    if scale > 0:
                        tf.summary.scalar(f"{name}/change_ratio",
                                          float(np.mean(np.abs(change))) / scale, step=epoch)
                self._previous[id(weight)] = (weight, value)
        self._writer.flush()
