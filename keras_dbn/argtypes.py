"""Value types and path checks for the options of ``keras-dbn`` and the tuning search."""

import argparse
import math
import os
import tempfile


class UsageError(ValueError):
    """Options that contradict each other or name paths a command cannot use.

    Found after parsing, before any work; the command reports it as argparse
    does its own errors (exit status 2).
    """


def add_option(parser, name, **kwargs):
    """Adds ``--some-option`` with its ``--some_option`` spelling as an alias.

    Args:
        parser: an `argparse` parser or argument group.
        name: the option's dashed name, e.g. ``"--max-trials"``.
        **kwargs: as for ``add_argument``.
    """
    names = [name]
    if "-" in name[2:]:
        names.append("--" + name[2:].replace("-", "_"))
    parser.add_argument(*names, **kwargs)


def positive_int(text):
    """An integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text):
    """An integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def seed(text):
    """An integer in [0, 2**31), the seeds every keras_dbn sampler takes."""
    value = int(text)
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**31), got {text}")
    return value


def positive_float(text):
    """A finite number > 0."""
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value


def rate(text):
    """A number in [0, 1), such as a dropout rate."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text}")
    return value


def fraction_or_count(text):
    """A fraction in (0, 1) or a whole count >= 1, such as a validation size.

    Returns a float for a fraction and an int for a count (``"500"`` and
    ``"500.0"`` are 500 examples). ``"1.0"`` is refused: read as a count it
    holds out one example, where it looks like the whole.
    """
    value = float(text)
    if 0 < value < 1:
        return value
    if value == 1 and any(mark in text for mark in ".eE"):  # "1.0", "1e0": not "01"
        raise argparse.ArgumentTypeError(
            f"{text} is ambiguous: a fraction lies below 1 (e.g. 0.2), and a count of "
            "one example is written 1")
    if value >= 1 and value < math.inf and value == int(value):
        return int(value)
    raise argparse.ArgumentTypeError(
        f"expected a fraction in (0, 1) or a whole number of examples >= 1, got {text}")


def layer_sizes(text):
    """Comma-separated positive layer sizes, e.g. ``500,500,2000``."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:  # also an empty item, as in "500,,2000" or "500,"
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 500,500,2000, got {text!r}")
    return sizes


def folder_name(text):
    """One folder's name, to be made inside another folder: not a path (no
    separator), not ``.`` or ``..``, not empty."""
    separators = [sep for sep in (os.sep, os.altsep, "/") if sep]
    if text in ("", ".", "..") or any(sep in text for sep in separators):
        raise argparse.ArgumentTypeError(
            f"expected a folder's name (no path, not '.' or '..'), got {text!r}")
    return text


def image_shape(text):
    """An image shape ``HEIGHTxWIDTH`` or ``HEIGHTxWIDTHxCHANNELS``, e.g. ``32x32x3``
    (at most 4 channels, as a PNG holds)."""
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected HEIGHTxWIDTH or HEIGHTxWIDTHxCHANNELS like 28x28 or 32x32x3, got {text!r}")
    if len(shape) == 3 and shape[2] > 4:  # what a PNG holds
        raise argparse.ArgumentTypeError(
            f"a PNG image has 1 to 4 channels (grey, grey and alpha, RGB, RGBA), got {text!r}")
    return shape


def is_within(path, other):
    """Whether ``path`` is ``other`` or lies inside it, once both are resolved.

    Both are made absolute with their symbolic links resolved
    (`os.path.realpath`), so a relative spelling or a link of the same place
    counts as the same; neither needs to exist.

    Example:

    >>> is_within("runs/../runs/dbn.keras", "runs"), is_within("runs2", "runs")
    (True, False)
    """
    path, other = os.path.realpath(path), os.path.realpath(other)
    return os.path.commonpath([path, other]) == other


def check_writable(option, path, folder=False):
    """Refuses a path whose folder the command could not write into.

    The folder that receives ``path`` (``path`` itself with ``folder=True``,
    else its parent) or, if that is missing, the nearest of its ancestors
    that exists (the command makes the rest) must be a folder in which files
    can be made: checked by `os.access` and then by making and removing an
    empty hidden file there, which also catches what `os.access` lets root
    pass (``/proc``, read-only mounts).

    Args:
        option: the option's name, for the message (e.g. ``"--out"``).
        path: the file or folder the command will write.
        folder: whether ``path`` is a folder rather than a file.

    Raises:
        UsageError: naming ``option``, ``path`` and the folder at fault.

    Example:

    >>> check_writable("--out", "runs/today", folder=True)  # makes nothing
    """
    nearest = os.path.abspath(path if folder else os.path.dirname(os.path.abspath(path)))
    while not os.path.lexists(nearest):
        nearest = os.path.dirname(nearest)
    if not os.path.isdir(nearest):
        raise UsageError(f"{option} {path!r}: {nearest!r} is a file, not a folder")
    reason = None
    if not os.access(nearest, os.W_OK | os.X_OK):
        reason = "permission denied"
    else:
        try:
            with tempfile.NamedTemporaryFile(dir=nearest, prefix=".keras-dbn-write-check-"):
                pass
        except OSError as error:
            reason = error.strerror or str(error)
    if reason:
        raise UsageError(f"{option} {path!r}: cannot write in {nearest!r} ({reason})")


def check_dataset_name(name, data_dir):
    """Refuses a --dataset that TFDS does not know, or that holds no
    ``(image, label)`` pairs, before any work (`datasets.image_shape`).

    Raises:
        UsageError: naming --dataset.
    """
    from keras_dbn import datasets

    try:
        datasets.image_shape(name, data_dir)
    except ValueError as error:
        raise UsageError(f"--dataset {name!r}: {error}") from None
