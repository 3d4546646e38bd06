"""The scripts in examples/, run as a user runs them, on a slice of real MNIST."""

import os
import pathlib
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
    result = run_example("mnist_dbn.py", "--limit", "2000", "--layers", "64,32",
                         "--pretrain-epochs", "1", "--finetune-epochs", "10",
                         "--validation", "0.1", "--export", "served")
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(result.stdout.split("test accuracy:")[1].split()[0])
    assert accuracy > 0.5  # 180 updates: far above chance (10%)
    assert (tmp_path / "served" / "1" / "saved_model.pb").exists()


def test_generate_samples_example_writes_where_it_is_told(run_example, tmp_path):
    result = run_example("generate_samples.py", "--limit", "1000", "--layers", "32,64",
                         "--epochs", "2", "--gibbs-steps", "20", "--out", "out/s.png",
                         "--log-dir", "logs")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "s.png").stat().st_size > 0
    assert list((tmp_path / "logs").rglob("*.png"))  # the per-epoch pictures
    assert not (tmp_path / "generate_logs").exists()
    assert "digits effectively" in result.stdout


def test_few_labels_example_compares_and_checks_its_labels(run_example):
    bad = run_example("few_labels.py", "--limit", "500", "--labels", "5")
    assert bad.returncode == 2 and "--labels=5 is fewer than the 10 classes" in bad.stderr
    result = run_example("few_labels.py", "--limit", "1000", "--layers", "32",
                         "--labels", "200", "1000", "--pretrain-epochs", "1",
                         "--finetune-epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines()[-2:]]
    assert [int(row[0]) for row in rows] == [200, 1000]
    assert all(0.2 < float(value) <= 1 for row in rows for value in row[1:])
