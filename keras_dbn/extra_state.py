"""State that is not a Keras variable, saved with a model's weights.

Keras saves a layer's variables by position (``"0"``, ``"1"``, ...). A
keras_dbn model also keeps state that training depends on outside them:
the position of its random-number stream (a `keras.random.SeedGenerator`,
which Keras does not save), those of the layers inside it (e.g. the
Dropout layers of a classifier that a trainer holds; Keras does not save
them either) and the counters that seed each `fit` call's shuffling.
Saved beside the variables under their own names, they make a loaded
model continue exactly as the saved one would have; files written without
them still load. The layers' states are restored by position where Keras
named the layers of a model built anew otherwise (`_matched_generators`),
with a warning where they cannot be matched. `save` checks the config
before Keras opens the file, and writes a new file that replaces the old
one only once complete (`save_replacing`).
"""

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile

import numpy as np

from keras_dbn import user_warnings

#: Start of the names of the inner layers' SeedGenerator states.
_LAYER_SEED_PREFIX = "seed_generator_state:"
#: Name of the walk positions of those states, listed in sorted-name order
#: (under the prefix, which earlier versions load as a state of no layer:
#: they ignore it rather than refuse it as a variable).
_LAYER_SEED_ORDER = f"{_LAYER_SEED_PREFIX}order"


def _inner_seed_generators(model):
    """The SeedGenerators of the layers inside ``model``, by name paths.

    The layers are walked depth first in Keras' tracking order (that of a
    model rebuilt from the same config). A layer's entry is named by the
    names of the layers on its path, e.g.
    ``"seed_generator_state:sequential.dropout:0"`` for the first generator
    of layer ``dropout`` of sub-model ``sequential``; a name met twice gets
    ``"#1"``, ``"#2"``, ... appended. A layer reached twice counts once.
    Inner `ExtraStateMixin` models (a DBN's RBMs) save their own, so the
    walk does not enter them; ``model``'s own generators are not included.

    Args:
        model: a Keras layer or model.

    Returns:
        A dict ``{name: keras.random.SeedGenerator}``, in walk order.
    """
    found, seen = {}, set()

    def walk(layer, path):
        for child in layer._layers:
            if id(child) in seen or isinstance(child, ExtraStateMixin):
                continue
            seen.add(id(child))
            child_path = f"{path}.{child.name}" if path else child.name
            for index, generator in enumerate(child._seed_generators):
                name = base = f"{_LAYER_SEED_PREFIX}{child_path}:{index}"
                repeat = 0
                while name in found:
                    repeat += 1
                    name = f"{base}#{repeat}"
                found[name] = generator
            walk(child, child_path)

    walk(model, "")
    return found


def _walk_order(names):
    """The walk position of each of ``names`` (in walk order), listed in
    sorted-name order: HDF5 lists a file's entries by name, not as saved."""
    return np.array([names.index(name) for name in sorted(names)], dtype="int64")


def _matched_generators(generators, saved, order):
    """Pairs the inner layers' saved states with the generators they restore.

    Keras names a model's layers anew in each model built (``dropout``,
    ``dropout_1``, ...), so the same architecture rebuilt in the same
    process (to resume from `keras.callbacks.BackupAndRestore`, or to load
    weights into) may name every path differently. Where the saved names
    are not exactly the model's, the states are restored by position, as
    Keras restores variables, if they correspond one to one in walk order
    (same count, same state shapes); else by name, as far as names match.

    Args:
        generators: `_inner_seed_generators` of the model being loaded.
        saved: the file's inner states, ``{name: array}``.
        order: the file's `_LAYER_SEED_ORDER` entry, or None (files written
            before it was saved).

    Returns:
        ``(pairs, unmatched)``: the ``(generator, array)`` pairs to assign
        and, where the names did not all match, None or the reason why
        the rest could not be matched by position.
    """
    if set(saved) == set(generators):
        return [(generators[name], saved[name]) for name in generators], None
    by_name = [(generators[name], saved[name]) for name in generators if name in saved]
    if order is None:
        return by_name, "the file (written by an earlier keras_dbn) does not record their order"
    if len(saved) != len(generators) or len(order) != len(saved):
        return by_name, (f"the file holds {len(saved)} of them and this model has "
                         f"{len(generators)}")
    walk = [name for _, name in sorted(zip(np.asarray(order).tolist(), sorted(saved)))]
    pairs = list(zip(generators.values(), (saved[name] for name in walk)))
    if any(np.shape(value) != tuple(generator.state.shape) for generator, value in pairs):
        return by_name, "their state shapes differ from this model's"
    return pairs, None


def _listed(names):
    """``names`` without `_LAYER_SEED_PREFIX`, for a message."""
    return ", ".join(name.removeprefix(_LAYER_SEED_PREFIX) for name in names)


def _format_refusal(model, filepath):
    """Why ``model.save(filepath)`` would be refused, or None."""
    if isinstance(model, ExtraStateMixin) and str(filepath).lower().endswith((".h5", ".hdf5")):
        return (
            f"{type(model).__name__} models save in Keras' .keras format; the legacy "
            f"HDF5 format cannot hold them (got {str(filepath)!r})."
        )
    return None


def save_replacing(save, filepath, *args, **kwargs):
    """``save(filepath, ...)`` into a new file beside ``filepath``, moved there once written.

    Keras writes a ``.keras`` file in place: a save that fails half-way
    (a full disk, an interrupt, a variable that cannot be written) would
    leave a truncated file where an earlier, good one was. Here an earlier
    file stays whole until the new one is complete, and a failed save
    leaves no partial file; the new file keeps the old one's permissions
    (a hard link to the old file keeps the old contents). Paths other than
    a local ``.keras`` file (the legacy ``.h5``, ``zipped=False`` folders,
    remote ``scheme://`` paths, file objects, names Keras refuses), an
    existing target that is not a regular file (e.g. a device) and one
    that ``overwrite=False`` protects are handed to ``save`` as they are.
    Where a new file cannot replace the earlier one (a folder that refuses
    new files; another user's file in a sticky folder such as /tmp) the
    model is saved first and its bytes copied onto the earlier file. An
    existing file that refuses writes is refused, as Keras' save would be.

    Args:
        save: a ``keras.Model.save``-like callable, ``save(path, *args, **kwargs)``.
        filepath: where the file goes; a link to a file is followed.
        *args, **kwargs: passed to ``save``.

    Returns:
        What ``save`` returns.

    Raises:
        OSError: where writing fails, naming ``filepath``.

    Example:

    >>> save_replacing(classifier.save, "classifier.keras")
    """
    overwrite = args[0] if args else kwargs.get("overwrite", True)
    path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
    if (path is None or not path.endswith(".keras") or "://" in path
            or kwargs.get("zipped") is False
            or (os.path.exists(path) and (not overwrite or not os.path.isfile(path)))):
        return save(filepath, *args, **kwargs)
    return _replacing(path, lambda partial: save(partial, *args, **kwargs))


def write_text_replacing(path, text):
    """Writes ``text`` to the file ``path`` as `save_replacing` saves:
    into a new file beside it, moved there once complete (a device or a
    pipe is written to; where a new file cannot replace the earlier one,
    its bytes are copied onto it once complete).

    Args:
        path: the file to write; a link to a file is followed.
        text: a string, written as UTF-8.

    Returns:
        None.

    Raises:
        OSError: where writing fails (a file that refuses writes included),
            naming ``path``.

    Example:

    >>> write_text_replacing("results.json", json.dumps(results, indent=2))
    """
    def write(partial):
        with open(partial, "w", encoding="utf-8") as f:
            f.write(text)

    _replacing(os.fspath(path), write)


def _replacing(path, write):
    """``write(partial)`` into a new file beside ``path``, then moved onto it.

    The new file keeps the earlier one's permissions, and its owner and
    group where the writer may set them (root; another user's file in a
    folder the writer may write becomes the writer's, as an editor's save
    makes it). Where a new file cannot take the earlier one's place (a
    folder that refuses new files, or a sticky folder such as /tmp holding
    another user's file), the partial file is written beside it or in the
    temporary folder and its bytes then copied onto the earlier file: a
    write that fails leaves the earlier file whole, and only the copy
    itself writes in place. A device or a pipe is written to directly,
    never replaced by a file. A file that refuses writes is refused, as is
    a loop of links.
    """
    path = os.path.realpath(path)
    try:
        earlier = os.stat(path)
    except FileNotFoundError:
        earlier = None
    except OSError as error:  # a loop of links: a plain write fails the same way
        raise OSError(error.errno, error.strerror, path) from error
    if earlier is not None and not stat.S_ISREG(earlier.st_mode):
        return write(path)
    if earlier is not None and not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    folder = os.path.dirname(path)
    writable_folder = os.access(folder, os.W_OK | os.X_OK)
    replaceable = writable_folder and not _sticky_refuses(folder, earlier)
    # Keras reads the format from the name's ending; the rest is free, and
    # short enough wherever ``path``'s own name fits.
    partial = os.path.join(folder if writable_folder else tempfile.gettempdir(),
                           f".keras_dbn-{secrets.token_hex(6)}.partial"
                           f"{os.path.splitext(path)[1]}")
    try:
        if earlier is not None:
            # The new contents are as private as the earlier file's until
            # they take its place (the temporary folder is everyone's).
            os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        result = write(partial)
        if not replaceable:
            shutil.copyfile(partial, path)  # in place: inode, owner and mode stay
        else:
            if earlier is not None:
                os.chmod(partial, stat.S_IMODE(earlier.st_mode))
                if hasattr(os, "chown"):
                    with contextlib.suppress(OSError):  # not root, or not in the group
                        os.chown(partial, earlier.st_uid, earlier.st_gid)
            os.replace(partial, path)
    except BaseException as error:
        if isinstance(error, OSError) and error.filename in (None, partial):
            if not writable_folder and error.filename == partial:
                # The temporary folder failed, not the target: say both.
                raise OSError(error.errno, f"{error.strerror} (the temporary copy for "
                              f"{path})", partial) from error
            # The partial file's name would only puzzle; say which file failed.
            if error.errno is None:
                raise OSError(f"{error} (writing {path})") from error
            raise OSError(error.errno, error.strerror, path) from error
        raise
    finally:
        with contextlib.suppress(OSError):
            os.remove(partial)
    return result


def _sticky_refuses(folder, earlier):
    """Whether a sticky ``folder`` (as /tmp) refuses this process replacing
    the file of stat ``earlier``: only its owner, the folder's and root may."""
    if earlier is None or not hasattr(os, "geteuid") or os.geteuid() == 0:
        return False
    folder_stat = os.stat(folder)
    return bool(folder_stat.st_mode & stat.S_ISVTX) and os.geteuid() not in (
        earlier.st_uid, folder_stat.st_uid)


def check_checkpoint_formats(callbacks, model):
    """Refuses full-model checkpoints to a file format ``model`` cannot save.

    A `keras.callbacks.ModelCheckpoint` saves with ``model.save``, which
    refuses the legacy HDF5 format for keras_dbn models (`ExtraStateMixin.save`)
    only when the checkpoint first saves: after the first epoch has
    trained. (Keras' ModelCheckpoint itself refuses paths that end in
    neither ``.keras`` nor ``.h5``, and weights-only checkpoints that do
    not end in ``.weights.h5``.)

    Args:
        callbacks: the callbacks given to ``fit``, or ``None``.
        model: the model that ``fit`` trains.

    Raises:
        ValueError: for a full-model ModelCheckpoint (``save_weights_only=False``)
            to an ``.h5`` path, naming its path.

    Example:

    >>> check_checkpoint_formats([keras.callbacks.ModelCheckpoint("rbm.h5")], rbm)
    Traceback (most recent call last):
    ValueError: ModelCheckpoint('rbm.h5') would fail at the end of the first epoch: ...
    """
    import keras

    for callback in getattr(callbacks, "callbacks", callbacks) or ():
        if (not isinstance(callback, keras.callbacks.ModelCheckpoint)
                or callback.save_weights_only):
            continue
        refusal = _format_refusal(model, callback.filepath)
        if refusal is not None:
            when = ("at the end of the first epoch" if callback.save_freq == "epoch"
                    else f"after the first {callback.save_freq} batches")
            raise ValueError(
                f"ModelCheckpoint({callback.filepath!r}) would fail {when}: {refusal} "
                "Give it a .keras path, or save_weights_only=True and a .weights.h5 path."
            )


class ExtraStateMixin:
    """Adds named entries to `save_own_variables` / `load_own_variables`.

    By default the positions of the model's ``seed_generator`` (if it has
    one) and of the SeedGenerators of the layers inside it (such as
    Dropout layers; named by `_inner_seed_generators`, restored as
    `_matched_generators` pairs them) are saved. A subclass
    (listed before ``keras.Model``) adds entries by extending
    ``_extra_state()``, returning ``{name: array}``, and
    ``_load_extra_state(values)``, receiving the entries found in the file
    (none for files saved before they existed).

    Example:

    ```python
    class Counter(ExtraStateMixin, keras.Model):
        def _extra_state(self):
            return dict(super()._extra_state(), calls=np.asarray(self.calls))

        def _load_extra_state(self, values):
            super()._load_extra_state(values)
            self.calls = int(values.get("calls", 0))
    ```
    """

    #: Names of entries that earlier versions saved and `_load_extra_state`
    #: still reads (not variables).
    _LEGACY_STATE_NAMES = ()

    def _extra_state(self):
        inner = _inner_seed_generators(self)
        generators = dict(inner)
        own = getattr(self, "seed_generator", None)
        if own is not None:
            generators = {"seed_generator_state": own, **generators}
        state = {name: np.array(generator.state.numpy())
                 for name, generator in generators.items()}
        if inner:
            state[_LAYER_SEED_ORDER] = _walk_order(list(inner))
        return state

    def _load_extra_state(self, values):
        pairs = []
        own = getattr(self, "seed_generator", None)
        if own is not None and "seed_generator_state" in values:  # absent from old files
            pairs.append((own, values["seed_generator_state"]))
        # None saved: a file from before the inner states were, or a model
        # without inner generators.
        saved = {name: value for name, value in values.items()
                 if name.startswith(_LAYER_SEED_PREFIX) and name != _LAYER_SEED_ORDER}
        if saved:
            generators = _inner_seed_generators(self)
            matched, unmatched = _matched_generators(
                generators, saved, values.get(_LAYER_SEED_ORDER))
            pairs += matched
            if unmatched is not None:
                restored = {id(generator) for generator, _ in matched}
                self._warn_unrestored(
                    [name for name in saved if id(generators.get(name)) not in restored],
                    [name for name, generator in generators.items()
                     if id(generator) not in restored],
                    unmatched)
        for generator, value in pairs:
            state = generator.state
            state.assign(np.asarray(value, dtype=state.dtype))

    def _warn_unrestored(self, lost, missed, reason):
        """Warns that saved layer random streams found no layer to restore.

        Args:
            lost: names of the saved states not restored.
            missed: names of this model's generators given no saved state.
            reason: why they could not be matched by position.
        """
        parts = []
        if lost:
            parts.append(f"the saved random-stream states of inner layers "
                         f"({_listed(lost)}) were not restored")
        if missed:
            parts.append(f"the streams of this model's layers ({_listed(missed)}) "
                         "start anew")
        user_warnings.warn(
            f"Loading {type(self).__name__} {self.name!r}: {' and '.join(parts)}: the "
            f"layers' names differ and the states cannot be matched by position "
            f"({reason}). Their dropout masks (or other random draws) will not be "
            "those the saved model would have drawn."
        )

    def _build_optimizer_as_saved(self, variables):
        """Has the optimizer built while the file loads, if the saved one was.

        For `compile_from_config`. Building it there, as Keras does, comes
        before Keras loads the saved optimizer's variables: one saved
        compiled but untrained (not yet built, so without its slot
        variables) then loads with Keras' warning that the optimizer's
        variables were skipped. The optimizer is built when its saved
        variables are loaded instead, if they are more than its own
        unbuilt ones; a file without them leaves it to be built by the
        first update, as after `compile`.

        Args:
            variables: the variables the optimizer updates.
        """
        optimizer = self.optimizer

        def load_own_variables(store):
            del optimizer.load_own_variables  # the optimizer's own again
            if not optimizer.built and len(store.keys()) != len(optimizer.variables):
                optimizer.build(variables)
            optimizer.load_own_variables(store)

        optimizer.load_own_variables = load_own_variables

    def save(self, filepath, *args, **kwargs):
        """`keras.Model.save`, once the config is known to serialise.

        Keras opens (and so empties) the file before it asks for the config:
        a config that fails (e.g. an RBM's unregistered custom unit type)
        would leave an empty file where an earlier save may have been. The
        file is written beside its place and moved there once complete
        (`save_replacing`), so a save that fails later, or is interrupted,
        leaves an earlier file whole too.
        Keras' legacy HDF5 format cannot hold these models at all (it
        failed half-way, leaving a partial file), so ``.h5`` paths are
        refused first.

        Args:
            filepath, *args, **kwargs: as for `keras.Model.save`.

        Raises:
            ValueError: for an ``.h5`` or ``.hdf5`` path.

        Example:

        >>> rbm.save("rbm.keras")
        """
        refusal = _format_refusal(self, filepath)
        if refusal is not None:
            raise ValueError(
                f"{refusal} Use a .keras path, or save_weights('....weights.h5') for "
                "the weights alone."
            )
        self.get_config()
        return save_replacing(super().save, filepath, *args, **kwargs)

    def save_own_variables(self, store):
        """Saves the variables, then the extra state under its names.

        Args:
            store: Keras' store of this object's saved values.
        """
        super().save_own_variables(store)
        for name, value in self._extra_state().items():
            store[name] = np.asarray(value)

    def load_own_variables(self, store):
        """Loads the variables, then whatever extra state the file holds.

        Args:
            store: Keras' store of this object's saved values.
        """
        names = set(self._extra_state()) | set(self._LEGACY_STATE_NAMES)
        keys = list(store.keys())
        # Inner layers' entries under names this model does not have (from a
        # model whose layers Keras named differently) are extra state too,
        # not variables.
        extra = {key: np.asarray(store[key]) for key in keys
                 if key in names or key.startswith(_LAYER_SEED_PREFIX)}
        if extra:
            store = {key: store[key] for key in keys if key not in extra}
        super().load_own_variables(store)
        self._load_extra_state(extra)
