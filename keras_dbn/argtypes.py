"""Value types for the options of the ``keras-dbn`` command and the tuning script."""

import argparse


def positive_int(text):
    """An integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def positive_float(text):
    """A number > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def rate(text):
    """A number in [0, 1), such as a dropout rate."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text}")
    return value


def layer_sizes(text):
    """Comma-separated positive layer sizes, e.g. ``500,500,2000``."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 500,500,2000, got {text!r}")
    return sizes
