"""Shared fixtures: real MNIST through TFDS's manual directory."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_manual_dir():
    """The four original MNIST files (``../shared/data/mnist`` beside the repo)."""
    path = pathlib.Path(
        os.environ.get("KERAS_DBN_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist")
    )
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(
            f"MNIST source files not found in {path}; set KERAS_DBN_MNIST_DIR "
            "to a folder holding the four original IDX files."
        )
    return str(path)


@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory):
    """One TFDS data_dir per test session, so MNIST is prepared once."""
    return str(tmp_path_factory.mktemp("tfds"))
