"""The options of a DBN hyperparameter search (``keras-dbn tune``).

`add_search_arguments` declares them on an `argparse` parser; `run_search`
(`keras_dbn.tuning`) runs a search with them. Kept apart from the search
itself, which needs keras-tuner and TensorFlow, so that ``keras-dbn --help``
and mistyped options answer without loading either.
"""

import argparse

from keras_dbn.argtypes import (
    add_option, folder_name, fraction_or_count, layer_sizes, non_negative_int, positive_int,
    seed as seed_type,
)

#: The search algorithms of `keras_dbn.tuning.make_tuner`.
TUNERS = ("hyperband", "random", "bayesian")


def add_search_arguments(parser):
    """Adds the options of `keras_dbn.tuning.run_search` to an `argparse` parser.

    Args:
        parser: an `argparse.ArgumentParser` or a subcommand's parser.

    Returns:
        ``parser``, with the groups "search", "search space" and "data".

    Example:

    >>> import argparse
    >>> parser = add_search_arguments(argparse.ArgumentParser(prog="tune"))
    >>> args = parser.parse_args(["--tuner", "random", "--max-trials", "3"])
    >>> args.tuner, args.max_trials, args.max_epochs
    ('random', 3, 10)
    """
    group = parser.add_argument_group("search")
    add_option(group, "--tuner", choices=TUNERS, default="hyperband", help="search algorithm (default: hyperband)")
    add_option(group, "--max-trials", type=positive_int, default=10,
               help="trials of random/bayesian search (default: 10)")
    add_option(group, "--max-epochs", type=positive_int, default=10,
               help="fine-tuning epochs per trial; Hyperband's largest budget (default: 10)")
    add_option(group, "--executions", type=positive_int, default=1,
               help="fine-tuning runs per trial, averaged (default: 1)")
    add_option(group, "--patience", type=non_negative_int, default=3,
               help="early stopping patience in epochs, 0 disables (default: 3)")
    add_option(group, "--directory", default="tuning_runs", help="trial records (default: tuning_runs)")
    add_option(group, "--project-name", type=folder_name, default=None,
               help="project folder's name, inside --directory (default: dbn_<dataset>)")
    add_option(group, "--overwrite", action="store_true",
               help="discard an existing project instead of resuming it (refused "
               "when SavedModel versions exported inside it would go too), and "
               "replace another run's results in --output")
    add_option(group, "--output", default=None,
               help="best model folder (default: <directory>/<project>/best)")
    add_option(group, "--seed", type=seed_type, default=0, help="random seed (default: 0)")
    add_option(group, "--verbose", type=int, choices=(0, 1, 2), default=2,
               help="keras-tuner and Keras verbosity (default: 2, a line per epoch)")
    space = parser.add_argument_group("search space (narrow it for small budgets)")
    add_option(space, "--units", type=layer_sizes, default=[256, 512, 1024, 2000],
               help="layer sizes to choose from (default: 256,512,1024,2000)")
    add_option(space, "--max-layers", type=positive_int, default=3, help="up to this many layers (default: 3)")
    add_option(space, "--max-pretrain-epochs", type=positive_int, default=10,
               help="pretraining epochs per RBM, 1 to this (default: 10)")
    add_option(space, "--no-pcd", action="store_true", help="search CD-k only, not PCD")
    data = parser.add_argument_group("data")
    add_option(data, "--dataset", default="mnist", help="TFDS image dataset: mnist, fashion_mnist, ... (default: mnist)")
    add_option(data, "--manual-dir", default=None, help="folder of the dataset's source files (offline)")
    add_option(data, "--data-dir", default=None, help="TFDS data_dir")
    add_option(data, "--train-limit", type=positive_int, default=None,
               help="use only the first N training images and N//5 test images (at least "
               "100), for quick runs")
    add_option(data, "--labels", type=positive_int, default=None,
               help="fine-tune on N class-balanced labels; pretrain on all training images")
    add_option(data, "--validation", type=fraction_or_count, default=0.1,
               help="validation fraction in (0, 1), or a count of images, held out of the "
               "training set (default: 0.1)")
    return parser


def defaults():
    """`add_search_arguments`' options and their defaults, as a dict."""
    return vars(add_search_arguments(argparse.ArgumentParser()).parse_args([]))


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(f"run_search: {message}")


def parse_options(options):
    """Options of `keras_dbn.tuning.run_search` given by name, checked and
    converted as the command line's are (``max_trials=0`` is refused as
    ``--max-trials 0`` is; ``units`` may be a list or ``"64,128"``).

    Args:
        options: a dict of option names (``max_trials``) and values.

    Returns:
        A dict of the same names and the values the command line would give.

    Raises:
        ValueError: for a value the command line refuses, and ``None`` where
            the option does not default to None.
        TypeError: for an unknown option name.

    Example:

    >>> parse_options({"units": [64, 128], "max_trials": "3"})
    {'units': [64, 128], 'max_trials': 3}
    """
    parser = add_search_arguments(_RaisingParser(prog="run_search", add_help=False))
    known = vars(parser.parse_args([]))  # the defaults
    unknown = set(options) - set(known)
    if unknown:
        raise TypeError(f"Unknown run_search options: {sorted(unknown)}")
    argv, parsed = [], {}
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(known[name], bool):  # a switch
            if not isinstance(value, bool):
                raise ValueError(f"run_search: {name} must be True or False, got {value!r}")
            parsed[name] = value
        elif value is None:
            if known[name] is not None:
                raise ValueError(f"run_search: {name} must not be None")
            parsed[name] = None
        else:
            if isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            argv.append(f"{flag}={value}")
    namespace = vars(parser.parse_args(argv))
    return {name: parsed[name] if name in parsed else namespace[name] for name in options}
