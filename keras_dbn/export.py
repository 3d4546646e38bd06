"""Export of classifiers as SavedModels in the layout TF Serving loads.

TF Serving watches a *model base path* and serves the highest integer
version directory in it::

    base_dir/
      1/
        saved_model.pb
        variables/

Serve an export with Docker (the server is not installable from PyPI)::

    docker run -p 8501:8501 \\
        --mount type=bind,source=/abs/base_dir,target=/models/dbn \\
        -e MODEL_NAME=dbn -t tensorflow/serving

and query its REST API, one list of floats per example::

    curl -d '{"instances": [[0.0, 0.5, ...784 floats...]]}' \\
        -X POST http://localhost:8501/v1/models/dbn:predict

The answer is ``{"predictions": [[p_0, ..., p_9]]}``, one row of class
probabilities per instance.
"""

import contextlib
import errno
import json
import numbers
import os
import pathlib
import re
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
import tensorflow as tf

import keras

from keras_dbn.dbn import DBN
from keras_dbn.rbm import RBM
from keras_dbn.probability_output import check_probability_output
from keras_dbn.semi_supervised import ClassifierTrainer

__all__ = ["export_saved_model", "next_version", "serving_request"]

INPUT_NAME = "inputs"
OUTPUT_NAME = "probabilities"
# TF Serving reads version directory names as 64-bit signed integers.
MAX_VERSION = 2**63 - 1


def next_version(base_dir):
    """The version after the highest one exported to ``base_dir`` (1 if none).

    TF Serving serves the highest all-digit directory of a model base path,
    so exporting a retrained model as ``next_version(base_dir)`` puts it in
    service without touching the earlier versions. Every all-digit entry
    counts, files and links too: `export_saved_model` cannot write a version
    where one of them stands. What a killed export left is put right first,
    as `export_saved_model` does (a version it had moved aside counts).

    Args:
        base_dir: The model base path; it need not exist yet.

    Returns:
        An int >= 1 that names no entry of ``base_dir``.

    Raises:
        ValueError: where ``base_dir`` holds version ``2**63 - 1``, the
            highest TF Serving reads.

    Example:

    >>> export_saved_model(classifier, "/srv/models/dbn", version=next_version("/srv/models/dbn"))
    '/srv/models/dbn/1'
    """
    _clear_stale_versions(pathlib.Path(base_dir))
    highest = max((int(p.name) for p in version_entries(base_dir)), default=0)
    if highest >= MAX_VERSION:
        raise ValueError(f"{base_dir} holds version {highest}, the highest TF Serving reads: "
                         "there is no next version; export to another base path.")
    return highest + 1


def version_entries(base_dir):
    """The entries of ``base_dir`` named like a version (all ASCII digits),
    lowest first; none when it is not a folder.

    Folders among them are exported versions; files or links so named are
    not, but stand where a version would be written.

    Args:
        base_dir: the model base path.

    Returns:
        A list of `pathlib.Path`.

    Example:

    >>> [p.name for p in version_entries("/srv/models/dbn") if p.is_dir()]
    ['1', '2']
    """
    base = pathlib.Path(base_dir)
    if not base.is_dir():
        return []
    # str.isdigit alone accepts "²", which int() and TF Serving do not.
    return sorted((p for p in base.iterdir() if p.name.isascii() and p.name.isdigit()),
                  key=lambda p: int(p.name))


def export_saved_model(model, base_dir, version=1, overwrite=False):
    """Writes ``model`` as ``base_dir/<version>/``, ready for TF Serving.

    The SavedModel has one signature, ``serving_default``, that takes a
    float32 tensor ``inputs`` of shape ``[None, features]`` and returns
    ``{"probabilities": model(inputs)}`` (cast to float32). Load it anywhere
    with ``tf.saved_model.load``; neither Keras nor keras_dbn is needed.

    The export is written to a hidden temporary folder in ``base_dir`` and
    renamed into place only once complete, so a running TF Serving never sees
    a half-written version, and a failed export leaves an existing version
    untouched. Without ``overwrite``, the name is claimed only at that rename
    and only if it is still free, so of two exports to the same version
    (two jobs that both chose ``next_version(base_dir)``, say) one succeeds
    and the other raises `FileExistsError`; neither is lost unnoticed. An
    export killed outright (``kill -9``, a power cut) leaves its hidden
    folder: the next export into ``base_dir`` puts back a version it had
    moved aside, and removes the rest.

    Args:
        model: A built Keras model with one input of shape
            ``(None, features)`` whose output is class probabilities, such as
            ``DBN.to_classifier()`` after fine-tuning.
        base_dir: The model base path; created if missing.
        version: Positive int, at most ``2**63 - 1``, naming the version
            directory.
        overwrite: Replace an existing ``base_dir/<version>`` if True;
            otherwise refuse, so that no earlier export is lost.

    Returns:
        The path of the version directory written, as a string.

    Raises:
        ValueError: If the model's last layer has an activation other than
            softmax or sigmoid (`check_probability_output`): its outputs
            would be served as probabilities.
        ValueError: If ``version`` is not a positive int of at most
            ``2**63 - 1`` (TF Serving reads 64-bit versions), the model does
            not take a single ``(None, features)`` input or return a single
            ``(batch, classes)`` output, ``base_dir`` or its version names
            a file or a link to nothing, ``base_dir`` lies under a file, or
            another entry names the same version (``007`` for 7).
        FileExistsError: If ``base_dir/<version>`` exists and ``overwrite``
            is False, checked before the export is written and again when it
            is moved into place (another export may have taken the version
            meanwhile).

    Example:

    >>> classifier = dbn.to_classifier(num_classes=10)
    >>> classifier.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> classifier.fit(keras_dbn.array_dataset(x_train, y_train, batch_size=100), epochs=5,
    ...                shuffle=False)  # the dataset shuffles itself
    >>> export_saved_model(classifier, "/srv/models/dbn", version=1)
    '/srv/models/dbn/1'
    """
    if (isinstance(version, bool) or not isinstance(version, numbers.Integral)
            or not 1 <= version <= MAX_VERSION):
        raise ValueError(
            f"version must be a positive int of at most 2**63 - 1 (TF Serving reads "
            f"64-bit versions), got {version!r}."
        )
    features = _input_features(model)
    # Served as "probabilities": logits under that name would mislead clients.
    check_probability_output(model, "the exported model", allowed=("softmax", "sigmoid"))

    base = pathlib.Path(base_dir)
    target = base / str(int(version))
    _check_base_folder(base)
    _clear_stale_versions(base)  # a killed export's version back, its empty claim gone
    if os.path.islink(target) and not target.exists():
        raise ValueError(f"{target} is a link to nothing; remove it or export another version.")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} is a file, not an exported version; move it first.")
    if target.exists() and not overwrite:
        raise FileExistsError(_exists_message(target, "already exists"))
    for entry in version_entries(base):
        if int(entry.name) == version and entry.name != target.name:
            # TF Serving would find two folders of one version.
            raise ValueError(f"{entry} already names version {int(version)} (TF Serving reads "
                             "folder names as numbers); rename or remove it, or export another "
                             "version.")

    def serve(inputs):
        outputs = model(inputs, training=False)
        if not hasattr(outputs, "shape") or len(outputs.shape) != 2:
            raise ValueError(
                "export_saved_model serves one output of class probabilities per "
                f"example, shape (batch, classes); the model returns {outputs!r}."
            )
        return {OUTPUT_NAME: tf.cast(outputs, tf.float32)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    # The first endpoint added is also written as "serving_default".
    archive.add_endpoint(
        name="serve",
        fn=serve,
        input_signature=[tf.TensorSpec([None, features], tf.float32, name=INPUT_NAME)],
    )
    created = _missing_folders(base)
    base.mkdir(parents=True, exist_ok=True)

    try:
        # TF Serving only loads all-digit directory names, so it ignores this one.
        with _staging(base, f"{VERSION_STAGING}{version}-",
                      lambda staging, failed: _put_back_version(staging, target)[0]) as staging:
            # The endpoint is traced here: a model that `serve` refuses fails now.
            archive.write_out(str(staging / "saved_model"), verbose=False)
            if overwrite:
                _replace(staging / "saved_model", target, staging / "replaced")
            else:
                _place(staging / "saved_model", target, staging / "claimed")
    except BaseException:
        # Not rmtree: another export may have written into them since.
        _remove_empty(created)
        raise
    return str(target)


#: The entries of a SavedModel folder that an export into it replaces, in
#: the order they are moved in: ``saved_model.pb`` last, and moved aside
#: first, so that a reader finds the rest of either model beside it.
#: (``keras_metadata.pb``: tf.keras 2's.)
SAVED_MODEL_ENTRIES = ("fingerprint.pb", "variables", "assets", "keras_metadata.pb",
                       "saved_model.pbtxt", "saved_model.pb")
#: What an export keeps: TF Serving's warm-up requests, which Keras never writes.
KEPT_ENTRIES = ("assets.extra",)


def write_saved_model_folder(write, filepath):
    """Calls ``write(path)`` to write a SavedModel, into a hidden folder in
    ``filepath``, then moves its entries into ``filepath``: `RBM.export`
    and `DBN.export`.

    Keras' own export writes into ``filepath`` as it is: over an earlier
    SavedModel file by file (a failed export left a mix of the two) and
    among whatever else the folder held. Here a failed export leaves an
    earlier SavedModel as it was, its entries (`SAVED_MODEL_ENTRIES`) are
    replaced only once the new ones are written (``assets.extra``, TF
    Serving's warm-up requests, stays), and a folder holding anything else
    but hidden files (``.gitkeep``), or such entries without a SavedModel,
    is refused. The folder itself stays (a link to it, a mount point, the
    working folder, its owner and mode). Exports into one folder wait for
    each other (`_folder_lock`). What an export killed outright left (its
    hidden folder, an earlier SavedModel moved aside, part of its own moved
    in) the next export into the folder puts right first: the earlier
    SavedModel back, as a failed export leaves it, or the new one if it was
    moved in whole. A remote path (``scheme://...``) is written as Keras
    writes it.

    Args:
        write: writes a SavedModel at the path it is given.
        filepath: the folder the SavedModel goes in; created if missing.

    Returns:
        None.

    Raises:
        ValueError: where ``filepath`` is a file, or a folder that holds
            other entries than a SavedModel's.
        RuntimeError: for an export into a folder that this thread is
            exporting into already.

    Example:

    >>> write_saved_model_folder(lambda path: tf.saved_model.save(module, path), "served/rbm")
    """
    if "://" in str(filepath):
        return write(str(filepath))
    target = pathlib.Path(filepath)
    if os.path.islink(target) and not target.exists():
        raise ValueError(f"{target} is a link to nothing; remove it or export elsewhere.")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} is a file, not a folder to export into; move it first "
                         "or choose another path.")
    with _folder_lock(target) as created:
        try:
            _clear_stale_stagings(target, FOLDER_STAGING,
                                  lambda staging: _recover_moves(target, staging))
            _check_saved_model_folder(target)
            _write_and_move_in(write, target)
        except BaseException:
            # Under the lock: an export waiting for it then finds the folder
            # gone, and makes it anew.
            _remove_empty(created)
            raise
    return None


def _check_base_folder(base):
    """Refuses a model base path that is a file, a link to nothing, or lies
    under a file, before anything is written."""
    if os.path.islink(base) and not base.exists():
        raise ValueError(f"{base} is a link to nothing; remove it or export elsewhere.")
    existing = next((path for path in (base, *base.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == base else f" ({base} cannot be made under it)"
        raise ValueError(f"{existing} is a file, not a folder to export versions into{where}.")


def _missing_folders(folder):
    """``folder`` and its parents that do not exist, the deepest first."""
    return [path for path in (folder.absolute(), *folder.absolute().parents)
            if not path.exists()]


def _remove_empty(folders):
    """Removes the ``folders`` (the deepest first) that are empty; rmdir, not
    rmtree: only what an export made and left empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            break


def _write_and_move_in(write, target):
    """`write_saved_model_folder`'s work, under the folder's lock.

    The staging folder records how far the moves got, so that whatever
    stops them (an error, Ctrl-C, even again while the earlier SavedModel
    is put back, or a kill, put right by the next export) ends with the
    earlier SavedModel in place, or the new one if it was moved in whole
    and the call did not fail (`_put_back`, which `_staging` calls at the
    end whatever happened, told whether the call failed): the earlier
    entries go into ``moving-aside``, renamed ``moved-aside`` once all are
    there; the new ones then move in, ``saved_model.pb`` last, and
    ``moved-in`` is made once all are there (an export killed before then,
    or stopped again while undoing, ends with the earlier SavedModel).
    """
    with _staging(target, FOLDER_STAGING, lambda staging, failed: _put_back(
            target, staging, keep_whole=not failed)[0]) as staging:
        written, aside = staging / "saved_model", staging / "moving-aside"
        write(str(written))
        aside.mkdir()
        for name in reversed(SAVED_MODEL_ENTRIES):
            if os.path.lexists(target / name):
                os.rename(target / name, aside / name)
        os.rename(aside, staging / "moved-aside")
        entries = {entry.name: entry for entry in written.iterdir()}
        order = [name for name in SAVED_MODEL_ENTRIES if name in entries]
        for name in sorted(set(entries) - set(order)) + order:
            if name in KEPT_ENTRIES and os.path.lexists(target / name):
                continue  # the folder's own warm-up requests stay
            os.rename(entries[name], target / name)
        (staging / "moved-in").mkdir()  # done: what the next export would keep


#: The prefixes of the hidden staging folders of `write_saved_model_folder`
#: (inside the folder exported into) and `export_saved_model` (in the base
#: folder, followed by the version and a dash), and what each may hold.
FOLDER_STAGING, VERSION_STAGING = ".keras_dbn-export-", ".keras_dbn-version-"
_STAGING_ENTRIES = {
    FOLDER_STAGING: {"saved_model", "moving-aside", "moved-aside", "moved-in", "undone",
                     "restoring"},
    VERSION_STAGING: {"saved_model", "replaced", "claimed"},
}


@contextlib.contextmanager
def _staging(folder, prefix, finish=None):
    """A new hidden folder in ``folder``, locked (`flock`, where the system
    has it) while the export that made it runs, so that another export can
    tell it from the leftovers of one that was killed
    (`_clear_stale_stagings`). At the end ``finish(staging, failed)`` (if
    given; ``failed``: whether the block raised, a Ctrl-C included) puts
    right what is left and says whether the folder may go; it is removed
    with its contents then, and otherwise left for the next export to put
    right (``finish`` itself was stopped, by a second Ctrl-C say).
    """
    staging = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
    descriptor = os.open(staging, os.O_RDONLY)
    try:
        try:
            import fcntl
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except (ImportError, OSError):  # not POSIX, or a file system without locks
            pass
        failed = True
        yield staging
        failed = False
    finally:
        try:
            if finish is None or finish(staging, failed):
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            os.close(descriptor)


def _clear_stale_versions(base):
    """`_clear_stale_stagings` of `export_saved_model`'s staging folders in
    ``base`` (where it is a folder)."""
    if base.is_dir():
        _clear_stale_stagings(base, VERSION_STAGING,
                              lambda staging: _recover_version(base, staging))


def _clear_stale_stagings(folder, prefix, recover):
    """Puts right what killed exports left in ``folder``: each staging folder
    (`_staging`) that no running export holds is locked, handed to
    ``recover`` and removed, unless ``recover`` returns False (something
    left in it could not be put back; then it stays, and stderr says so).

    Only folders named as `_staging` names them and holding nothing but
    what an export puts there are touched; nothing is done where the system
    cannot lock folders (no telling the stale from the live), nor to an
    empty version staging folder less than a minute old (made by an export
    that has not locked it yet).
    """
    try:
        import fcntl
    except ImportError:
        return
    name = re.compile(re.escape(prefix) + (r"\d+-" if prefix == VERSION_STAGING else "")
                      + r"[a-z0-9_]{8}")
    stagings = sorted(entry for entry in folder.iterdir() if name.fullmatch(entry.name)
                      and entry.is_dir() and not entry.is_symlink())
    for staging in stagings:
        try:
            descriptor = os.open(staging, os.O_RDONLY)
        except OSError:  # finished and removed meanwhile
            continue
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Another export may have put it right and removed it meanwhile.
                if not os.path.samestat(os.fstat(descriptor), os.lstat(staging)):
                    continue
                entries = {entry.name for entry in staging.iterdir()}
            except OSError:  # held by a running export, gone, or no locks here
                continue
            if not entries <= _STAGING_ENTRIES[prefix]:
                continue
            # Under the folder's lock (`write_saved_model_folder`) no running
            # export can have made it.
            young = time.time() - os.fstat(descriptor).st_mtime < 60
            if not entries and young and prefix == VERSION_STAGING:
                continue
            if recover(staging):
                shutil.rmtree(staging, ignore_errors=True)
            else:
                print(f"An export into {folder} was killed, and what it had moved aside could "
                      f"not all be put back: it is in {staging}.", file=sys.stderr)
        finally:
            os.close(descriptor)


def _put_back(target, staging, keep_whole):
    """Ends the moves of a `write_saved_model_folder` export that stopped
    (`_write_and_move_in` records how far they got): the earlier SavedModel
    back in place, unless ``keep_whole`` and the new one was moved in whole
    (``moved-in`` made, no undoing begun).

    Undoing first moves every SavedModel entry of the folder (all new, the
    earlier ones being aside) into ``undone``, ``saved_model.pb`` first,
    then renames ``moved-aside`` to ``restoring``: from then on the
    folder's entries are the earlier ones, and only those still missing
    are moved back, ``saved_model.pb`` last. Run again after any stop, it
    goes on from where it was.

    Returns:
        ``(done, restored)``: whether nothing is left to put back, and
        whether earlier entries were moved back by this call.
    """
    undone = staging / "undone"
    moved, restoring, moving = (staging / "moved-aside", staging / "restoring",
                                staging / "moving-aside")
    if moved.is_dir():
        whole = (staging / "moved-in").is_dir() and not undone.exists()
        if whole and keep_whole:
            return True, False
        undone.mkdir(exist_ok=True)  # undoing begun: the new SavedModel is not kept
        for name in reversed(SAVED_MODEL_ENTRIES):
            if os.path.lexists(target / name) and not os.path.lexists(undone / name):
                os.rename(target / name, undone / name)
        os.rename(moved, restoring)
    aside = restoring if restoring.is_dir() else moving if moving.is_dir() else None
    if aside is None:
        return True, False  # stopped while writing: nothing was moved
    restored = [name for name in SAVED_MODEL_ENTRIES
                if os.path.lexists(aside / name) and not os.path.lexists(target / name)]
    for name in restored:
        os.rename(aside / name, target / name)
    return not any(aside.iterdir()), bool(restored)


def _recover_moves(target, staging):
    """`_put_back` for a killed export's staging folder, said on stderr."""
    done, restored = _put_back(target, staging, keep_whole=True)
    if restored:
        print(f"An export into {target} was killed amid its renames; the SavedModel it was "
              "replacing is back in place.", file=sys.stderr)
    return done


def _put_back_version(staging, target):
    """Ends an `export_saved_model` export into ``target`` that stopped: the
    version that `_replace` had moved aside goes back if ``target`` is free,
    and the empty claim of a `_place` that did not move the new version in
    goes (its ``claimed`` marker says it made one).

    Returns:
        ``(done, restored)``, as `_put_back`.
    """
    replaced = staging / "replaced"
    if ((staging / "claimed").is_dir() and os.path.lexists(staging / "saved_model")
            and os.path.isdir(target) and not os.path.islink(target)):
        try:
            target.rmdir()  # only an empty claim
        except OSError:
            pass
    if not replaced.is_dir() or os.path.lexists(target):
        return True, False  # nothing moved aside, or the new version is in place
    os.rename(replaced, target)
    return True, True


def _recover_version(base, staging):
    """`_put_back_version` for a killed export's staging folder, said on stderr."""
    version = staging.name[len(VERSION_STAGING):].split("-")[0]
    done, restored = _put_back_version(staging, base / version)
    if restored:
        print(f"An export of {base / version} was killed after moving the earlier version "
              "aside; it is back in place.", file=sys.stderr)
    return done


#: The folders (device, inode) whose export lock a thread of this process
#: holds, and which thread: flock would make a second one wait for itself.
_HELD_FOLDERS = {}


@contextlib.contextmanager
def _folder_lock(folder):
    """Holds an exclusive `flock` of ``folder`` (where the system has
    flock), so that exports into one folder run one after the other: two
    at once left entries of both. Yields the folders it made (``folder``
    and missing parents, the deepest first), for the caller to remove if
    it fails.

    The folder is made where missing; one removed (an export that made it
    failed) or replaced while this waited is made and locked anew. An
    export into a folder whose lock this thread holds already (from inside
    another export's write) is refused; waiting for another holder is
    announced once on stderr.

    Raises:
        RuntimeError: for an export into a folder this thread is exporting into.
    """
    made, announced = [], False
    try:
        import fcntl
    except ImportError:  # not POSIX
        made = _missing_folders(folder)
        folder.mkdir(parents=True, exist_ok=True)
        yield made
        return
    while True:
        made += [path for path in _missing_folders(folder) if path not in made]
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = None
        try:
            descriptor = os.open(folder, os.O_RDONLY)
            status = os.fstat(descriptor)
            key = (status.st_dev, status.st_ino)
            if _HELD_FOLDERS.get(key) == threading.get_ident():
                raise RuntimeError(f"An export into {folder} is already running in this "
                                   "thread (an export from inside another's write?).")
            try:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not announced:
                        print(f"Waiting for another export into {folder} to finish...",
                              file=sys.stderr)
                        announced = True
                    fcntl.flock(descriptor, fcntl.LOCK_EX)
            except OSError:  # a file system without locks
                pass
            try:
                same = os.path.samestat(status, os.stat(folder))
            except OSError:
                same = False
        except BaseException:
            if descriptor is not None:
                os.close(descriptor)
            _remove_empty(made)
            raise
        if same:
            break
        os.close(descriptor)  # removed or replaced while waiting: lock the one there now
    _HELD_FOLDERS[key] = threading.get_ident()
    try:
        yield made
    finally:
        del _HELD_FOLDERS[key]
        os.close(descriptor)


def _check_saved_model_folder(target):
    """Refuses a folder holding other entries than a SavedModel's."""
    names = [entry.name for entry in target.iterdir()]
    saved_model = "saved_model.pb" in names or "saved_model.pbtxt" in names
    others = sorted(name for name in names if not name.startswith(".") and name not in KEPT_ENTRIES
                    and (name not in SAVED_MODEL_ENTRIES or not saved_model))
    if others:
        raise ValueError(
            f"{target} holds other entries than a SavedModel's ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}); export into a new folder, or one that "
            "holds a SavedModel alone, which is replaced."
        )


def _place(export, target, claimed):
    """Renames the folder ``export`` to ``target`` if nothing is there;
    ``claimed``, a folder made first, tells `_put_back_version` that the
    empty ``target`` is this export's claim. Interrupted, even as the rename
    returns, it leaves ``target`` as it was.

    Raises:
        FileExistsError: If ``target`` exists; it is left as it is.
    """
    # os.rename would silently replace an empty folder at ``target``, which
    # may be another writer's claim. mkdir claims the name, failing on any
    # entry, and leaves the rename only this claim to replace. (TF Serving could
    # list the claim in that instant, but it loads a version after listing it.)
    claimed.mkdir()
    try:
        os.mkdir(target)
    except FileExistsError:
        claimed.rmdir()  # another's claim, not this export's
        raise FileExistsError(
            _exists_message(target, "was created while this export was written")
        ) from None
    try:
        os.rename(export, target)
    except BaseException as error:  # Ctrl-C too: an empty version would stay
        if not os.path.lexists(export):  # interrupted as the rename returned
            os.rename(target, export)
        try:
            target.rmdir()  # only while it is still the empty claim
        except OSError:
            pass
        if isinstance(error, OSError) and error.errno in (errno.EEXIST, errno.ENOTEMPTY,
                                                          errno.ENOTDIR):
            raise FileExistsError(
                _exists_message(target, "was written into while this export was moved there")
            ) from error
        raise


def _replace(export, target, aside):
    """Renames the folder ``export`` to ``target``, moving whatever is there
    to ``aside`` first (deleted with the staging folder); on failure it is
    moved back."""
    replacing = os.path.lexists(target)
    if replacing:
        os.rename(target, aside)
    try:
        os.rename(export, target)
    except BaseException:  # Ctrl-C too: the staging folder goes with ``aside``
        if not os.path.lexists(export) and os.path.lexists(target):
            os.rename(target, export)  # interrupted as the rename returned
        if replacing:
            try:
                os.rename(aside, target)
            except OSError:
                pass
        raise


def _exists_message(target, what_happened):
    return (
        f"{target} {what_happened}; pass overwrite=True to replace it or choose another "
        f"version (next_version({str(target.parent)!r}) names a free one)."
    )


def serving_request(instances):
    """Builds the JSON body of a TF Serving REST ``predict`` request.

    Args:
        instances: Array-like of shape ``(batch, features)``.

    Returns:
        The string ``{"instances": [[...], ...]}`` to POST to
        ``http://HOST:8501/v1/models/<MODEL_NAME>:predict``.

    Raises:
        ValueError: If ``instances`` is not 2-D.

    Example:

    >>> body = serving_request(x_test[:2])
    >>> # curl -d "$body" -X POST http://localhost:8501/v1/models/dbn:predict
    """
    instances = np.asarray(instances, dtype=np.float32)
    if instances.ndim != 2:
        raise ValueError(
            f"instances must be 2-D (batch, features), got shape {instances.shape}."
        )
    return json.dumps({"instances": instances.tolist()})


def _input_features(model):
    """The ``features`` of a model whose only input has shape ``(None, features)``."""
    if isinstance(model, (RBM, DBN)):
        raise ValueError(
            f"export_saved_model serves classifiers, not a {type(model).__name__}: "
            "export the classifier from DBN.to_classifier(num_classes) after "
            "fine-tuning it."
        )
    if isinstance(model, ClassifierTrainer):
        raise ValueError(
            f"A {type(model).__name__} trains a classifier; export that plain Keras "
            "model instead: export_saved_model(trainer.classifier, ...)."
        )
    try:
        shapes = [tuple(tensor.shape) for tensor in model.inputs]
    except (AttributeError, ValueError):
        # A subclassed model has no symbolic inputs, only the shape it was
        # built for (by `build` or its first call).
        shape = (model.get_build_config() or {}).get("input_shape") if model.built else None
        shapes = [tuple(shape)] if shape is not None else []
    if not shapes:
        raise ValueError(
            "The model has no known input shape; build it with keras.Input(shape="
            "(features,)) or call it on a batch before exporting."
        )
    if len(shapes) != 1:
        raise ValueError(f"The model must have exactly one input, it has {len(shapes)}.")
    shape = shapes[0]
    if len(shape) != 2 or shape[1] is None:
        raise ValueError(
            f"The model input must have shape (None, features), got {shape}; "
            "flatten images before the model (keras_dbn.datasets does)."
        )
    return int(shape[1])
