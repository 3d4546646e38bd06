"""The keras-dbn command, end to end on real MNIST."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from keras_dbn import cli
from command_output import error_line


def run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "keras_dbn", *args],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_original_example_option_spellings_parse():
    parser = cli.build_parser()
    dashed = parser.parse_args(
        ["train", "--batch", "200", "--dbn-epochs", "3", "--dbn-lr", "0.01", "--mlp-epochs", "4",
         "--mlp-lr", "0.002", "--save", "m.keras", "--layers", "1000,500", "--k", "20", "--persistent"]
    )
    underscored = parser.parse_args(
        ["train", "--batch", "200", "--dbn_epochs", "3", "--dbn_lr", "0.01", "--mlp_epochs", "4",
         "--mlp_lr", "0.002", "--save", "m.keras", "--layers", "1000,500", "--k", "20", "--persistent"]
    )
    assert vars(dashed) == vars(underscored)
    assert dashed.layers == [1000, 500] and dashed.k == 20 and dashed.persistent
    assert dashed.dbn_epochs == 3 and dashed.mlp_lr == 0.002


@pytest.mark.parametrize(
    "options, top_schedule",
    [([], "linear"), (["--pcd-decay", "none"], "constant"), (["--top", "cd"], "constant"),
     (["--persistent"], "linear")],
)
def test_pretraining_rates_of_pcd_layers_fall_to_zero(options, top_schedule):
    import math

    args = cli.build_parser().parse_args(
        ["train", "--layers", "8,4", "--batch", "30", "--dbn-epochs", "2", "--dbn-lr", "0.05",
         "--top-lr", "0.02", *options]
    )
    persistent = [args.persistent, args.top == "pcd"]
    lower, top = cli._pretrain_optimizers(args, persistent, num_examples=100)
    updates = 2 * math.ceil(100 / 30)
    assert lower.momentum == top.momentum == 0.9

    def rate(optimizer, step):
        schedule = optimizer._learning_rate
        return float(schedule(step)) if callable(schedule) else float(optimizer.learning_rate)

    assert rate(top, 0) == pytest.approx(0.02) and rate(lower, 0) == pytest.approx(0.05)
    if top_schedule == "linear":
        assert rate(top, updates // 2) == pytest.approx(0.01)
        assert rate(top, updates) == 0.0
    else:
        assert rate(top, updates) == pytest.approx(0.02)
    assert rate(lower, updates) == (0.0 if args.persistent else pytest.approx(0.05))


@pytest.mark.parametrize(
    "args, message",
    [(["train", "--layers", "500,abc"], "500,500,2000"),
     (["train", "--layers", "500,,2000"], "500,500,2000"),
     (["train", "--batch", "0"], "positive integer"),
     (["train", "--dbn-lr", "inf"], "finite positive number"),
     (["train", "--mlp-lr", "nan"], "finite positive number"),
     (["train", "--dropout", "1.5"], "rate"),
     (["train", "--seed", "-1"], "integer in [0, 2**31)"),
     (["train", "--seed", "4294967296"], "--seed: expected an integer in [0, 2**31)"),
     (["sample", "--model", "m.keras", "--seed", "2147483648"], "integer in [0, 2**31)"),
     (["tune", "--seed", "2147483648"], "integer in [0, 2**31)"),
     (["train", "--no-such-option"], "unrecognized"),
     (["sample"], "--model"),
     (["sample", "--model", "m.keras", "--image-shape", "32x"], "HEIGHTxWIDTH"),
     (["sample", "--model", "m.keras", "--image-shape", "2x4x6"], "1 to 4 channels"),
     (["tune", "--validation", "0"], "fraction in (0, 1)"),
     (["tune", "--validation", "1.5"], "whole number"),
     (["tune", "--validation", "nan"], "fraction in (0, 1)"),
     (["tune", "--validation", "1.0"], "1.0 is ambiguous"),
     (["tune", "--validation", "1e0"], "1e0 is ambiguous"),
     (["tune", "--validation", "1."], "1. is ambiguous"),
     (["tune", "--patience", "-1"], "integer >= 0")],
)
def test_bad_options_exit_nonzero_with_a_message(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [(["--layers", "8", "--persistent"], "--persistent applies to the RBMs below the top one"),
     (["--layers", "8", "--dbn-lr", "0.1"], "--dbn-lr applies to the RBMs below the top one"),
     # It was ignored (both runs bit-identical), yet recorded in results.json.
     (["--top", "cd", "--pcd-decay", "linear"], "with --top cd and without --persistent "
                                                 "there are none"),
     (["--pseudo-label"], "--pseudo-label needs --labels N"),
     # PseudoLabel's warning then advised options the command does not have.
     (["--labels", "100", "--pseudo-label", "--mlp-epochs", "1"],
      "--pseudo-label with --mlp-epochs 1 runs 150 updates, all before the pseudo-labels "
      "start to count (update 200): that is training on the labels alone; pass --mlp-epochs "
      "2 or more"),
     (["--labels", "100", "--pseudo-label", "--vat", "1"], "choose one of")],
)
def test_contradicting_train_options_exit_2_before_any_work(args, message, capsys, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_module_entry_point_reports_errors(tmp_path):
    out = run("sample", "--model", str(tmp_path / "missing.keras"))
    assert out.returncode != 0 and "no such model file" in out.stderr
    out = run("train", "--k", "0")
    assert out.returncode == 2 and "positive integer" in out.stderr


def test_command_quiets_tensorflow_cpp_log_only_for_itself(tmp_path, small_dbn):
    # TensorFlow reads TF_CPP_MIN_LOG_LEVEL once, when it loads, and writes
    # its first lines (oneDNN, CUDA drivers) before it reads it at all.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    features = "cpu_feature_guard"  # TensorFlow's INFO line about the CPU's instructions
    startup = "oneDNN custom operations"  # absl's line before TensorFlow's logging starts

    def stderr_of(*args, code=0, **extra):
        out = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                             timeout=300, env={**env, **extra})
        assert out.returncode == code, out.stderr
        return out.stderr

    # A command that loads TensorFlow, then fails to read its model (a zip
    # archive, so that it is not refused before TensorFlow loads).
    with zipfile.ZipFile(tmp_path / "junk.keras", "w") as archive:
        archive.writestr("notes.txt", "not a model")
    command = ("-m", "keras_dbn", "sample", "--model", str(tmp_path / "junk.keras"),
               "--out", str(tmp_path / "x.png"))
    loud = stderr_of(*command, code=2, TF_CPP_MIN_LOG_LEVEL="0")
    if features not in loud and startup not in loud:
        pytest.skip("this TensorFlow build logs nothing while it loads")
    quiet = stderr_of(*command, code=2)
    assert len(quiet.strip().splitlines()) == 1, quiet
    assert quiet.startswith("keras-dbn sample: error: ")
    # A command that runs: nothing from TensorFlow, the error line of its
    # GPU probe on a machine without CUDA drivers included.
    works = ("-m", "keras_dbn", "sample", "--model", str(small_dbn), "--n", "4",
             "--gibbs-steps", "2", "--out", str(tmp_path / "samples.png"))
    assert stderr_of(*works) == ""
    # Imported as a library, keras_dbn leaves the process's logging alone.
    library = stderr_of("-c", "import os, keras_dbn; assert 'TF_CPP_MIN_LOG_LEVEL' not in os.environ")
    assert features in library or startup in library


COMMAND = r"""
import sys
sys.argv[0] = "keras-dbn"  # as the console script runs
from keras_dbn import cli
try:
    cli.main(sys.argv[1:])
except SystemExit as stop:
    print("exit", stop.code, "tensorflow loaded:", "tensorflow" in sys.modules)
"""


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["tune", "--help"], 0),
                                        (["train", "--k", "0"], 2), (["nonsense"], 2)])
def test_help_and_argument_errors_answer_before_tensorflow_loads(args, code):
    out = subprocess.run([sys.executable, "-c", COMMAND, *args], capture_output=True,
                         text=True, timeout=300)
    assert f"exit {code} tensorflow loaded: False" in out.stdout, out.stderr


def test_a_package_run_with_python_m_gets_the_whole_api(tmp_path):
    # While `python -m pkg.main` imports pkg, sys.argv[0] is "-m", as it is
    # for `python -m keras_dbn`: a package that imports keras_dbn then must
    # still find its API and its Keras classes registered for load_model.
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import os, keras, keras_dbn\n"
        "REGISTERED = keras.saving.get_registered_object('keras_dbn>RBM') is keras_dbn.RBM\n"
        "QUIETED = 'TF_CPP_MIN_LOG_LEVEL' in os.environ\n"
    )
    (package / "main.py").write_text("from userpkg import REGISTERED, QUIETED\n"
                                     "print('registered', REGISTERED, 'quieted', QUIETED)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-m", "userpkg.main"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)
    assert "registered True quieted False" in out.stdout, out.stderr


@pytest.mark.slow
def test_train_then_sample_end_to_end(mnist_manual_dir, tfds_data_dir, tmp_path):
    out_dir = tmp_path / "run"
    out = run(
        "train", "--layers", "64,32", "--dbn-epochs", "2", "--mlp-epochs", "5", "--limit", "3000",
        "--batch", "50", "--data-dir", tfds_data_dir, "--manual-dir", mnist_manual_dir,
        "--out", str(out_dir), "--samples", "16", "--gibbs-steps", "20", "--verbose", "0",
        "--dtype", "mixed_bfloat16",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test accuracy" in out.stdout
    results = json.loads((out_dir / "results.json").read_text())
    assert results["test_accuracy"] > 0.7  # 3,000 images, five epochs: far above chance
    # Every option, as given or defaulted: the file says how the run was made.
    assert results["options"]["layers"] == [64, 32] and results["options"]["batch"] == 50
    assert results["options"]["dtype"] == "mixed_bfloat16" and results["options"]["k"] == 1
    # 60 batches an epoch, in executions of 16 updates: the last of each epoch is partial.
    assert results["finetune_updates"] == 5 * 60
    # The fine-tuned classifier's reading of the 16 samples.
    assert len(results["sample_class_frequencies"]) == 10
    assert sum(results["sample_class_frequencies"]) == pytest.approx(1.0, abs=1e-3)
    assert 1.0 <= results["sample_effective_classes"] <= 10.0
    assert "classes effectively" in out.stdout
    for name in ("dbn.keras", "classifier.keras", "samples.png", "filters.png"):
        assert (out_dir / name).exists(), name
    assert (out_dir / "saved_model" / "1" / "saved_model.pb").exists()

    # Running again into the same folder refuses to overwrite the earlier run.
    before = (out_dir / "results.json").read_bytes()
    again = run("train", "--limit", "100", "--out", str(out_dir), "--data-dir", tfds_data_dir,
                "--manual-dir", mnist_manual_dir)
    assert again.returncode == 2 and "earlier run's files are in the way" in again.stderr
    assert "--overwrite" in again.stderr and (out_dir / "results.json").read_bytes() == before

    def sample(seed, name):
        grid = tmp_path / name
        out = run("sample", "--model", str(out_dir / "dbn.keras"), "--n", "9", "--gibbs-steps",
                  "10", "--out", str(grid), "--seed", str(seed))
        assert out.returncode == 0, out.stderr[-3000:]
        return grid.read_bytes()

    grid = sample(1, "grid.png")
    import tensorflow as tf

    image = tf.io.decode_png(grid).numpy()
    assert image.ndim == 3 and image.shape[0] >= 3 * 28 and np.ptp(image) > 0
    # The seed decides the samples, run after run.
    assert sample(1, "again.png") == grid and sample(2, "other.png") != grid

    wrong = run("sample", "--model", str(out_dir / "classifier.keras"), "--out",
                str(tmp_path / "wrong.png"))
    assert wrong.returncode != 0 and "not a DBN" in wrong.stderr


def test_tune_subcommand_takes_the_search_options(capsys):
    args = cli.build_parser().parse_args(
        ["tune", "--tuner", "random", "--max-trials", "2", "--units", "32,64", "--train-limit", "500"]
    )
    assert (args.command, args.tuner, args.max_trials, args.units) == ("tune", "random", 2, [32, 64])
    with pytest.raises(SystemExit):
        cli.main(["tune", "--tuner", "grid"])
    assert "invalid choice" in capsys.readouterr().err


def test_train_with_few_labels_and_pseudo_labels(mnist_manual_dir, tfds_data_dir, tmp_path):
    out_dir = tmp_path / "few"
    results = cli.train(cli.build_parser().parse_args([
        "train", "--layers", "64", "--dbn-epochs", "1", "--mlp-epochs", "2", "--limit", "3000",
        "--labels", "100", "--pseudo-label", "--baseline", "--data-dir", tfds_data_dir,
        "--manual-dir", mnist_manual_dir, "--out", str(out_dir), "--samples", "4",
        "--gibbs-steps", "2", "--verbose", "0", "--save", str(tmp_path / "new" / "m.keras"),
    ]))
    assert (tmp_path / "new" / "m.keras").exists()  # its folder made, as --out's is
    assert results["labels"] == 100 and results["pseudo_label"]
    assert results["finetune_updates"] == 2 * cli.SEMI_SUPERVISED_STEPS_PER_EPOCH
    # 100 labels, 300 pseudo-label updates: far above chance (10%) for both.
    assert results["test_accuracy"] > 0.5 and results["baseline_test_accuracy"] > 0.4
    assert (out_dir / "saved_model" / "1" / "saved_model.pb").exists()


@pytest.mark.parametrize(
    "options, message",
    [(["--pseudo-label"], "--labels"),
     (["--labels", "100", "--pseudo-label", "--vat", "2"], "one of --pseudo-label and --vat"),
     (["--save", "classifier.txt"], r"--save needs a .keras (or .h5) file name"),
     (["--out", "{file}"], "is a file, not a folder"),
     (["--save", "{folder}/a.keras"], "is a folder; name the .keras file"),
     (["--export", "{file}"], "is a file; name the SavedModel base folder"),
     (["--dataset", "no_such_dataset"], "--dataset 'no_such_dataset': Unknown TFDS dataset")],
)
def test_option_errors_stop_before_any_work(options, message, tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    (tmp_path / "folder" / "a.keras").mkdir(parents=True)
    options = [o.format(file=tmp_path / "file", folder=tmp_path / "folder") for o in options]
    out = [] if "--out" in options else ["--out", str(tmp_path / "nothing")]
    assert cli.main(["train", *options, *out]) == 2  # as argparse's own errors
    assert message in error_line(capsys.readouterr().err, "keras-dbn train")
    assert not (tmp_path / "nothing").exists()
    assert (tmp_path / "file").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["file", "folder"]  # no write check left behind


@pytest.mark.parametrize(
    "options, message",
    [(["--save", "{file}/clf.keras"], "{file}' is a file, not a folder"),
     (["--save", "{file}/deeper/clf.keras"], "{file}' is a file, not a folder"),
     (["--out", "{file}/run"], "{file}' is a file, not a folder"),
     (["--export", "{file}/saved_model"], "{file}' is a file, not a folder"),
     (["--save", "/proc/x.keras"], "cannot write in '/proc'"),
     (["--export", "/proc/keras_dbn_models"], "cannot write in '/proc'")],
)
def test_unusable_paths_stop_before_any_work(options, message, tmp_path, capsys, monkeypatch):
    """A --save, --out or --export under a file or in a folder that cannot be
    written is refused at once, not after all the training."""
    if "/proc" in options[1] and not os.path.isdir("/proc"):
        pytest.skip("no /proc")
    from keras_dbn import datasets

    def load_numpy(*args, **kwargs):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr(datasets, "load_numpy", load_numpy)
    (tmp_path / "important.keras").write_text("mine")
    file = tmp_path / "important.keras"
    options = [o.format(file=file) for o in options]
    out = [] if "--out" in options else ["--out", str(tmp_path / "run")]
    assert cli.main(["train", *options, *out]) == 2
    assert message.format(file=file) in error_line(capsys.readouterr().err, "keras-dbn train")
    assert os.listdir(tmp_path) == ["important.keras"] and file.read_text() == "mine"


@pytest.mark.parametrize(
    "options, message",
    [(["--save", "{out}/dbn.keras"], "--save '{out}/dbn.keras' is '{out}/dbn.keras', a file the "
      "run writes in --out"),
     (["--save", "{out}/dbn.keras", "--overwrite"], "is '{out}/dbn.keras'"),
     (["--save", "{tmp}/link/dbn.keras"], "is '{out}/dbn.keras'"),  # the same file by a link
     (["--save", "{out}/../run/./dbn.keras"], "is '{out}/dbn.keras'"),
     (["--save", "{out}/dbn.keras/clf.keras"], "lies in '{out}/dbn.keras', a file the run"),
     (["--save", "{tmp}/run.keras", "--out", "{tmp}/run.keras/today"],
      "--save '{tmp}/run.keras' is the --out folder or one above it"),
     (["--export", "{out}/dbn.keras"], "--export '{out}/dbn.keras' is '{out}/dbn.keras'"),
     (["--export", "{out}/results.json"], "is '{out}/results.json', a file the run writes"),
     (["--export", "{out}/samples.png/models"], "lies in '{out}/samples.png'"),
     (["--export", "{tmp}/m.keras", "--save", "{tmp}/m.keras"],
      "--export '{tmp}/m.keras' is the --save file '{tmp}/m.keras'"),
     (["--export", "{tmp}/serving", "--save", "{tmp}/serving/1/clf.keras"],
      "--save '{tmp}/serving/1/clf.keras' lies in the --export folder '{tmp}/serving'")],
)
def test_save_or_export_where_the_run_writes_stops_before_any_work(options, message, tmp_path,
                                                                   capsys, monkeypatch):
    """A --save over OUT/dbn.keras would replace the DBN the run saved there
    with the classifier; an --export at a file the run writes would fail
    after all the training. Both are refused at once, --overwrite or not."""
    from keras_dbn import datasets

    def load_numpy(*args, **kwargs):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr(datasets, "load_numpy", load_numpy)
    out = tmp_path / "run"
    out.mkdir()
    (tmp_path / "link").symlink_to(out)
    options = [o.format(out=out, tmp=tmp_path) for o in options]
    extra = [] if "--out" in options else ["--out", str(out)]
    assert cli.main(["train", *options, *extra]) == 2
    line = error_line(capsys.readouterr().err, "keras-dbn train")
    assert message.format(out=out, tmp=tmp_path) in line and "nothing was written" in line
    assert sorted(os.listdir(tmp_path)) == ["link", "run"] and os.listdir(out) == []


def test_wrong_source_files_in_manual_dir_exit_1_in_one_line(mnist_manual_dir, tmp_path, capsys,
                                                             monkeypatch):
    """MNIST's files given as Fashion-MNIST's: one line naming the folder, no
    traceback; an error found during the work, so exit status 1."""
    import tensorflow_datasets as tfds

    def offline(self, *args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(tfds.download.DownloadManager, "_download", offline)
    code = cli.main(["train", "--dataset", "fashion_mnist", "--manual-dir", mnist_manual_dir,
                     "--data-dir", str(tmp_path / "tfds"), "--out", str(tmp_path / "run")])
    assert code == 1
    line = error_line(capsys.readouterr().err, "keras-dbn train")
    assert f"'fashion_mnist' in manual_dir '{mnist_manual_dir}' do not match" in line
    assert "fashion_mnist's original files" in line
    assert not (tmp_path / "run").exists()  # the folder the run made is gone again


def test_an_earlier_run_is_kept_unless_overwrite(tmp_path, capsys, monkeypatch):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "filters.png").write_text("earlier")
    assert cli.main(["train", "--out", str(tmp_path / "run")]) == 2
    assert "filters.png; choose another --out" in capsys.readouterr().err
    # With --overwrite the checks pass on (here to a dataset that does not exist).
    code = cli.main(["train", "--overwrite", "--out", str(tmp_path / "run"),
                     "--dataset", "no_such_dataset"])
    assert code == 2 and "--dataset 'no_such_dataset': Unknown" in capsys.readouterr().err
    # Nor would an earlier run's classifier stay beside this run's DBN when
    # --save names another file.
    (tmp_path / "run2").mkdir()
    (tmp_path / "run2" / "classifier.keras").write_text("earlier")
    assert cli.main(["train", "--out", str(tmp_path / "run2"),
                     "--save", str(tmp_path / "mine.keras")]) == 2
    assert "classifier.keras; choose another --out" in capsys.readouterr().err
    # An exported SavedModel is not in the way: the run adds the next version.
    (tmp_path / "run" / "filters.png").unlink()
    (tmp_path / "run" / "saved_model" / "1").mkdir(parents=True)
    code = cli.main(["train", "--out", str(tmp_path / "run"), "--dataset", "no_such_dataset"])
    assert code == 2 and "--dataset 'no_such_dataset': Unknown" in capsys.readouterr().err


def test_colour_images_are_drawn_in_colour(tmp_path, tfds_data_dir, monkeypatch, capsys):
    """A dataset of 32x32x3 images (CIFAR-10's shape, from its TFDS description;
    random pixels in place of its download) runs to the end and draws its
    samples and filters as colour tiles. With progress output, the log says
    whose figures the val_* ones are."""
    from keras_dbn import datasets

    rng = np.random.default_rng(0)

    def load_numpy(name, split="train", limit=None, **kwargs):
        n = 200 if split == "train" else 100
        return rng.random((n, 3072), dtype=np.float32), rng.integers(0, 10, n)

    monkeypatch.setattr(datasets, "load_numpy", load_numpy)
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "cifar10", "--data-dir", tfds_data_dir,
                     "--layers", "8", "--dbn-epochs", "1", "--mlp-epochs", "1", "--samples", "4",
                     "--gibbs-steps", "2", "--verbose", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "val_accuracy" in printed
    assert "val_* figures of the progress output are the test set's" in printed
    import tensorflow as tf

    for name, tiles in (("samples.png", 2), ("filters.png", 3)):  # 4 samples, 8 filters
        image = tf.io.decode_png(tf.io.read_file(str(out / name))).numpy()
        assert image.shape == (tiles * 33 - 1, tiles * 33 - 1, 3), name
    assert cli.main(["sample", "--model", str(out / "dbn.keras"), "--n", "4", "--gibbs-steps",
                     "2", "--out", str(tmp_path / "s.png")]) == 2  # not square: needs the shape
    assert cli.main(["sample", "--model", str(out / "dbn.keras"), "--n", "4", "--gibbs-steps",
                     "2", "--out", str(tmp_path / "s.png"), "--image-shape", "32x32x3"]) == 0
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "s.png"))).shape == (65, 65, 3)


def test_too_few_labels_for_the_classes_fail_before_pretraining(mnist_manual_dir, tfds_data_dir,
                                                                 tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--layers", "8", "--limit", "500", "--data-dir", tfds_data_dir,
              "--manual-dir", mnist_manual_dir, "--verbose", "0"]
    code = cli.main(common + ["--labels", "5", "--out", str(out),
                              "--save", str(tmp_path / "new" / "deeper" / "m.keras")])
    assert code == 2
    assert "--labels=5 is fewer than the 10 classes" in capsys.readouterr().err
    # Nothing was pretrained, and the folders the run made are gone again.
    assert not out.exists() and not (tmp_path / "new").exists()
    assert cli.main(common + ["--labels", "501", "--out", str(out)]) == 2
    assert "--labels=501 exceeds the 500 examples given (--limit 500 loaded them)" in capsys.readouterr().err
    (out / "keep").mkdir(parents=True)
    assert cli.main(common + ["--labels", "5", "--out", str(out)]) == 2
    assert (out / "keep").is_dir()  # folders that were there stay


def test_train_with_few_labels_and_virtual_adversarial_training(mnist_manual_dir, tfds_data_dir,
                                                                 tmp_path):
    common = ["train", "--layers", "64", "--dbn-epochs", "1", "--mlp-epochs", "2", "--limit",
              "3000", "--vat", "2.0", "--data-dir", tfds_data_dir, "--manual-dir",
              mnist_manual_dir, "--samples", "4", "--gibbs-steps", "2", "--verbose", "0"]
    results = cli.train(cli.build_parser().parse_args(
        common + ["--labels", "100", "--out", str(tmp_path / "few")]))
    assert results["labels"] == 100 and results["vat"] == 2.0 and not results["pseudo_label"]
    # 100 labels and 300 updates whose smoothness term reads 3,000 unlabelled
    # images: far above chance (10%).
    assert results["test_accuracy"] > 0.5
    # Without --labels: supervised, the smoothness term on the labelled batches.
    # 60 updates reach 0.765-0.80 over seeds 0-4 (a bound of 0.8 held for
    # seed 0 by 0.001, until the shuffles' seeds changed).
    results = cli.train(cli.build_parser().parse_args(common + ["--out", str(tmp_path / "all")]))
    assert results["labels"] == 3000 and results["test_accuracy"] > 0.7
    assert results["options"]["labels"] is None  # fine-tuned on every image's label
    assert results["finetune_updates"] == 2 * 30  # 30 batches of 100 an epoch


@pytest.fixture(scope="module")
def small_dbn(tmp_path_factory):
    """A one-RBM DBN of 4x4 images saved as ``dbn.keras`` (seconds to train)."""
    import keras_dbn

    x = np.random.default_rng(0).random((40, 16), dtype=np.float32)
    dbn = keras_dbn.DBN([8], seed=0)
    dbn.pretrain(x, epochs=1, batch_size=20, verbose=0)
    path = tmp_path_factory.mktemp("small_dbn") / "dbn.keras"
    dbn.save(path)
    return path


def test_sample_never_overwrites_the_model_or_another_file_unasked(small_dbn, tmp_path, capsys,
                                                                  monkeypatch):
    import keras

    model_bytes = small_dbn.read_bytes()
    load_model = keras.models.load_model

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(keras.models, "load_model", no_loading)
    common = ["sample", "--model", str(small_dbn), "--n", "4", "--gibbs-steps", "2"]
    # --out naming the model itself (not a .png) is refused, even with --overwrite.
    for out in (str(small_dbn), os.path.relpath(small_dbn)):
        for extra in ([], ["--overwrite"]):
            assert cli.main([*common, "--out", out, *extra]) == 2
            assert "--out needs a .png file name" in error_line(capsys.readouterr().err,
                                                                "keras-dbn sample")
            assert small_dbn.read_bytes() == model_bytes
    # Another existing file only with --overwrite.
    mine = tmp_path / "mine.png"
    mine.write_text("mine")
    assert cli.main([*common, "--out", str(mine)]) == 2
    line = error_line(capsys.readouterr().err, "keras-dbn sample")
    assert "exists" in line and "--overwrite" in line and mine.read_text() == "mine"
    # Under a file: refused before loading too.
    assert cli.main([*common, "--out", str(mine / "grid.png"), "--overwrite"]) == 2
    assert "is a file, not a folder" in error_line(capsys.readouterr().err, "keras-dbn sample")
    assert sorted(os.listdir(tmp_path)) == ["mine.png"] and mine.read_text() == "mine"

    monkeypatch.setattr(keras.models, "load_model", load_model)
    assert cli.main([*common, "--out", str(mine), "--overwrite"]) == 0
    import tensorflow as tf

    assert tf.io.decode_png(mine.read_bytes()).shape == (9, 9, 1)  # 2x2 tiles of 4x4
    assert small_dbn.read_bytes() == model_bytes


def test_sample_shows_bernoulli_probabilities_unstretched(tmp_path):
    """Faint samples (every pixel's probability 2-3%) stay faint in the PNG:
    stretched to each image's range they looked like full-contrast digits."""
    import tensorflow as tf

    import keras_dbn

    dbn = keras_dbn.DBN([8], seed=0)
    dbn.build((None, 16))
    rbm = dbn.rbms[0]
    rbm.kernel.assign(np.zeros((16, 8), "float32"))
    p = np.linspace(0.02, 0.03, 16)
    rbm.visible_bias.assign(np.log(p / (1 - p)).astype("float32"))
    dbn.save(tmp_path / "dbn.keras")
    out = tmp_path / "s.png"
    assert cli.main(["sample", "--model", str(tmp_path / "dbn.keras"), "--n", "4",
                     "--gibbs-steps", "2", "--out", str(out)]) == 0
    pixels = tf.io.decode_png(out.read_bytes()).numpy()
    assert 0 < pixels.max() <= round(0.03 * 255)
    assert not keras_dbn.callbacks.rescales_samples(rbm)
    assert keras_dbn.callbacks.rescales_samples(keras_dbn.RBM(4, visible="gaussian"))


def test_sample_needs_a_keras_file_as_model(small_dbn, tmp_path, capsys):
    (tmp_path / "run1").mkdir()
    (tmp_path / "dbn.h5").write_bytes(small_dbn.read_bytes())
    (tmp_path / "cut.keras").write_bytes(small_dbn.read_bytes()[:1000])  # an interrupted copy
    for model, message in ((tmp_path / "run1", "is a folder"), (tmp_path / "dbn.h5", ".keras"),
                           (tmp_path / "cut.keras", "is not a .keras file (a zip archive)")):
        code = cli.main(["sample", "--model", str(model), "--out", str(tmp_path / "s.png")])
        assert code == 2
        line = error_line(capsys.readouterr().err, "keras-dbn sample")
        assert message in line and "dbn.keras" in line and "TFSMLayer" not in line
    # The grid is a PNG: another name would hide what the file holds.
    assert cli.main(["sample", "--model", str(small_dbn), "--out", str(tmp_path / "s.jpg")]) == 2
    assert "--out needs a .png file name" in error_line(capsys.readouterr().err,
                                                        "keras-dbn sample")
    assert sorted(os.listdir(tmp_path)) == ["cut.keras", "dbn.h5", "run1"]
    # Zip archives damaged inside: they exited 1 with a JSON or HDF5 message
    # that named no file.
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    with zipfile.ZipFile(small_dbn) as whole:
        parts = {name: whole.read(name) for name in whole.namelist()}
    for name, changes in (("config.keras", {"config.json": b"{not json"}),
                          ("weights.keras", {"model.weights.h5": b"garbage"}),
                          ("no_weights.keras", {"model.weights.h5": None}),
                          ("no_config.keras", {"config.json": None})):
        with zipfile.ZipFile(damaged / name, "w") as broken:
            for part, data in {**parts, **changes}.items():
                if data is not None:
                    broken.writestr(part, data)
        code = cli.main(["sample", "--model", str(damaged / name), "--out",
                         str(tmp_path / "s.png")])
        line = error_line(capsys.readouterr().err, "keras-dbn sample")
        assert code == 2, line
        assert f"--model '{damaged / name}' could not be loaded: it is a zip archive but not " \
               "a whole saved Keras model (" in line
    assert not (tmp_path / "s.png").exists()


def test_each_run_exports_the_next_saved_model_version(mnist_manual_dir, tfds_data_dir,
                                                        tmp_path, capsys):
    """TF Serving serves the highest version and never reloads one replaced
    in place: a run adds the version after the highest one in --export."""
    models = tmp_path / "models"
    (models / "3").mkdir(parents=True)  # an earlier export, served now
    (models / "3" / "saved_model.pb").write_text("version 3")
    out = tmp_path / "run"
    common = ["train", "--layers", "8", "--dbn-epochs", "1", "--mlp-epochs", "1", "--limit",
              "300", "--data-dir", tfds_data_dir, "--manual-dir", mnist_manual_dir,
              "--samples", "4", "--gibbs-steps", "2", "--verbose", "0", "--out", str(out),
              "--export", str(models)]
    assert cli.main(common) == 0, capsys.readouterr().err
    assert f"SavedModel exported to {models / '4'}" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["saved_model"] == str(models / "4")
    assert (models / "4" / "saved_model.pb").exists()
    assert (models / "3" / "saved_model.pb").read_text() == "version 3"
    version_4 = (models / "4" / "saved_model.pb").read_bytes()

    # The run's other files are still in the way without --overwrite.
    assert cli.main(common) == 2
    assert "dbn.keras" in error_line(capsys.readouterr().err, "keras-dbn train")
    assert sorted(os.listdir(models)) == ["3", "4"]
    # With --overwrite: a new version; the earlier ones stay as they were.
    assert cli.main(common + ["--overwrite"]) == 0, capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["saved_model"] == str(models / "5")
    assert sorted(os.listdir(models)) == ["3", "4", "5"]
    assert (models / "4" / "saved_model.pb").read_bytes() == version_4


def test_a_failed_classifier_save_still_exports_and_leaves_no_partial_file(
        mnist_manual_dir, tfds_data_dir, tmp_path, capsys, monkeypatch):
    """A full disk at --save lost the fine-tuned classifier (the export was
    not attempted) and left a truncated file there. (--overwrite removes an
    earlier run's classifier once pretraining ends, by design.)"""
    import errno

    import keras

    save = tmp_path / "clf.keras"
    save.write_bytes(b"an earlier classifier")  # removed by --overwrite

    def disk_full(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Sequential, "save", disk_full)
    models = tmp_path / "models"
    args = ["train", "--layers", "8", "--dbn-epochs", "1", "--mlp-epochs", "1", "--limit",
            "300", "--data-dir", tfds_data_dir, "--manual-dir", mnist_manual_dir,
            "--samples", "4", "--gibbs-steps", "2", "--verbose", "0", "--out",
            str(tmp_path / "run"), "--export", str(models), "--save", str(save), "--overwrite"]
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    assert f"No space left on device: '{save}'" in error_line(captured.err, "keras-dbn train")
    assert f"the fine-tuned classifier is exported to {models / '1'}" in captured.out
    assert (models / "1" / "saved_model.pb").exists()
    assert sorted(os.listdir(tmp_path)) == ["models", "run"]
    # The run's other outputs are written before the failure is raised.
    assert sorted(os.listdir(tmp_path / "run")) == ["dbn.keras", "filters.png", "results.json",
                                                    "samples.png"]


def test_the_lower_rbms_rate_defaults_where_not_given(tmp_path):
    args = cli.build_parser().parse_args(["train", "--layers", "8,4", "--out", str(tmp_path)])
    assert args.dbn_lr is None
    cli._check_train_options(args)
    assert args.dbn_lr == cli.DBN_LR == 0.05
    args = cli.build_parser().parse_args(["train", "--layers", "8", "--out", str(tmp_path)])
    cli._check_train_options(args)  # one layer: the top RBM's options alone


def test_an_overwriting_run_removes_the_earlier_results_once_its_dbn_is_saved(tmp_path, capsys):
    """--out never holds one run's DBN beside another run's classifier,
    results and pictures; SavedModel versions stay."""
    names = ["results.json", "samples.png", "filters.png", "classifier.keras"]
    for name in names + ["dbn.keras"]:
        (tmp_path / name).write_text("earlier")
    (tmp_path / "saved_model" / "1").mkdir(parents=True)
    elsewhere = tmp_path / "mine.keras"
    elsewhere.write_text("earlier")
    # --save names another file: the earlier run's classifier in --out goes
    # too, as it would sit beside this run's DBN.
    cli._remove_earlier_results(str(tmp_path), str(elsewhere))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dbn.keras", "saved_model"]
    assert ("removed the earlier run's results.json, samples.png, filters.png, "
            "classifier.keras, mine.keras" in capsys.readouterr().out)
    for name in names:
        (tmp_path / name).write_text("earlier")
    cli._remove_earlier_results(str(tmp_path), str(tmp_path / "classifier.keras"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dbn.keras", "saved_model"]
    assert ("removed the earlier run's results.json, samples.png, filters.png, "
            "classifier.keras (--overwrite)" in capsys.readouterr().out)


def test_a_diverged_pretraining_is_one_line_with_the_options_to_lower(capsys):
    """It came out as a traceback whose advice was the Python API's."""
    from keras_dbn import cli
    from keras_dbn.rbm import TrainingDiverged

    for layer, option in ((1, "--dbn-lr"), (2, "--top-lr")):
        def diverge():
            raise TrainingDiverged("the API's advice", epoch=3, what="RBM training diverged.",
                                   layer=layer, layers=2)

        assert cli.run_reporting_errors(diverge, "keras-dbn train") == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "API's advice" not in err
        assert err.startswith(f"keras-dbn train: error: pretraining diverged in layer {layer} "
                              "of 2, epoch 3: its updates made weights")
        assert err.endswith(f"; lower {option}.\n")

    def other():
        raise FloatingPointError("a user's own")

    with pytest.raises(FloatingPointError, match="a user's own"):
        cli.run_reporting_errors(other, "keras-dbn train")
