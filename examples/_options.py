"""The options every example shares: where MNIST comes from and how much of it."""

import argparse
import os

from keras_dbn.argtypes import UsageError, check_writable, positive_int


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except the ``None`` of options that are off."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool) or (
                "(default:" in (action.help or "")):  # a help that words its own default
            return action.help
        return super()._get_help_string(action)


def example_parser(doc, limit_help="use the first N training images"):
    """An argument parser with ``--manual-dir``, ``--data-dir`` and ``--limit``.

    Args:
        doc: the example's module docstring; its first line describes it.
        limit_help: what ``--limit`` limits, for ``--help``.

    Returns:
        An `argparse.ArgumentParser` that shows every option's default.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0],
                                     formatter_class=_DefaultsHelpFormatter)
    parser.add_argument("--manual-dir", default=None,
                        help="folder holding the four MNIST IDX files (offline)")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data folder")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help=f"{limit_help} (default: all 60,000)")
    return parser


def check_output(parser, option, path, folder=False):
    """Refuses, as ``parser``'s one-line error (exit status 2), an output
    path the script could not write once its training is done: a file
    where a folder must be, or the reverse, or a folder it cannot write in.

    Args:
        parser: the example's parser.
        option: the option's name, for the message (e.g. ``"--out"``).
        path: the file or folder the script will write.
        folder: whether ``path`` is a folder rather than a file.
    """
    if os.path.exists(path) and os.path.isdir(path) != folder:
        parser.error(f"{option} {path!r} is a {'file' if folder else 'folder'}; name the "
                     f"{'folder' if folder else 'file'} to write")
    try:
        check_writable(option, path, folder=folder)
    except UsageError as err:
        parser.error(str(err))
