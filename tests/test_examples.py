"""The scripts in examples/, run as a user runs them, on a slice of real MNIST."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def run_example(mnist_manual_dir, tfds_data_dir, tmp_path):
    def run(name, *args):
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / name), "--manual-dir", mnist_manual_dir,
             "--data-dir", tfds_data_dir, *args],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        return result
    return run


def test_mnist_dbn_example_pretrains_fine_tunes_and_exports(run_example, tmp_path):
    # The default 5,000 validation images need more than --limit 2000: an
    # option error naming --validation, before any training.
    bad = run_example("mnist_dbn.py", "--limit", "2000")
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert "error: --validation=5000 gives 5000 validation examples out of 2000" in bad.stderr
    # An --export the script could not write is refused before the training
    # too (it failed with a traceback after it, the model lost).
    (tmp_path / "afile").write_text("")
    bad = run_example("mnist_dbn.py", "--limit", "2000", "--validation", "0.1",
                      "--export", "afile")
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert "error: --export 'afile' is a file; name the folder to write" in bad.stderr
    result = run_example("mnist_dbn.py", "--limit", "2000", "--layers", "64,32",
                         "--pretrain-epochs", "1", "--finetune-epochs", "10",
                         "--validation", "0.1", "--export", "served")
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(result.stdout.split("test accuracy:")[1].split()[0])
    assert accuracy > 0.5  # 180 updates: far above chance (10%)
    assert (tmp_path / "served" / "1" / "saved_model.pb").exists()


def test_generate_samples_example_writes_where_it_is_told(run_example, tmp_path):
    """Its --out is checked before the training: it used to replace any file
    (a .txt became a PNG), and to fail after the training where a file
    stood in the way."""
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "afile").write_text("")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "s.png").write_text("an earlier picture")
    for out, message in (("notes.txt", r"--out needs a \.png file name, got 'notes\.txt'"),
                         ("afile/s.png", r"--out 'afile/s\.png': '.*afile' is a file, not a "
                                         "folder"),
                         ("out/s.png", r"--out 'out/s\.png' exists; name another file, or "
                                       "pass --overwrite"),
                         ("generate_logs/x.png", r"--out 'generate_logs/x\.png' lies in "
                                                 "--log-dir 'generate_logs'")):
        bad = run_example("generate_samples.py", "--out", out)
        assert bad.returncode == 2, bad.stderr[-3000:]
        assert re.search(f"error: {message}", bad.stderr), bad.stderr[-3000:]
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "out" / "s.png").read_text() == "an earlier picture"
    result = run_example("generate_samples.py", "--limit", "1000", "--layers", "32,64",
                         "--epochs", "2", "--gibbs-steps", "20", "--out", "out/s.png",
                         "--overwrite", "--log-dir", "logs")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "s.png").read_bytes().startswith(b"\x89PNG")
    assert list((tmp_path / "logs").rglob("*.png"))  # the per-epoch pictures
    assert not (tmp_path / "generate_logs").exists()
    assert "digits effectively" in result.stdout


def test_few_labels_example_compares_and_checks_its_labels(run_example):
    bad = run_example("few_labels.py", "--limit", "500", "--labels", "5")
    assert bad.returncode == 2 and "--labels=5 is fewer than the 10 classes" in bad.stderr
    bad = run_example("few_labels.py", "--seed", "5000000000")  # NumPy's traceback once
    assert bad.returncode == 2 and "expected an integer in [0, 2**31)" in bad.stderr
    result = run_example("few_labels.py", "--limit", "1000", "--layers", "32",
                         "--labels", "200", "1000", "--pretrain-epochs", "1",
                         "--finetune-epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines()[-2:]]
    assert [int(row[0]) for row in rows] == [200, 1000]
    assert all(0.2 < float(value) <= 1 for row in rows for value in row[1:])
