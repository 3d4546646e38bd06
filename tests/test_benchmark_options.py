"""The benchmark scripts refuse bad options before any work, and write strict JSON.

Only option parsing and the up-front checks run here (each script's
``parse_args``); nothing is trained or loaded.
"""

import importlib
import json

import pytest

from benchmarks import _common

SCRIPTS = ("rbm_throughput", "mnist_dbn", "few_labels", "bf16_quality", "rbm_loglik",
           "pretrain_memory", "gibbs_sampling", "step_routes", "input_pipelines", "fine_tuning",
           "step_profile")


def script(name):
    return importlib.import_module(f"benchmarks.{name}")


def refused(capsys, name, argv):
    """Parses ``argv`` with the script's options; returns argparse's message."""
    with pytest.raises(SystemExit) as exit_info:
        script(name).parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("name, argv, option", [
    ("rbm_throughput", ["--batch", "0"], "--batch"),
    ("rbm_throughput", ["--hidden", "500", "0"], "--hidden"),
    ("rbm_throughput", ["--reps", "0"], "--reps"),
    ("rbm_throughput", ["--epochs", "0"], "--epochs"),
    ("gibbs_sampling", ["--chains", "0"], "--chains"),
    ("gibbs_sampling", ["--reps", "-1"], "--reps"),
    ("step_routes", ["--configs", "784x50:0:1"], "--configs"),
    ("step_routes", ["--rows", "0"], "--rows"),
    ("input_pipelines", ["--epochs", "0"], "--epochs"),
    ("step_profile", ["--steps", "0"], "--steps"),
    ("fine_tuning", ["--configs", "784-50:0"], "--configs"),
    ("fine_tuning", ["--limit", "0"], "--limit"),
    ("few_labels", ["--seeds", "0"], "--seeds"),
    ("few_labels", ["--labels", "5"], "--labels"),  # fewer than MNIST's 10 classes
    ("mnist_dbn", ["--mlp-epochs", "0"], "--mlp-epochs"),
    ("mnist_dbn", ["--layers", "50,,20"], "--layers"),
    ("mnist_dbn", ["--vat", "-1"], "--vat"),
    ("pretrain_memory", ["--layers", "50,,20"], "--layers"),
    ("rbm_loglik", ["--batch-size", "0"], "--batch-size"),
    ("bf16_quality", ["--ais-steps", "2"], "--ais-steps"),  # the schedule needs 3
    # NumPy's traceback once, after the imports.
    ("mnist_dbn", ["--seed", "-3"], "--seed"),
    ("rbm_loglik", ["--seed", "-1"], "--seed"),
    # DBN.save refuses .h5: the run failed after its whole pretraining.
    ("mnist_dbn", ["--save-dbn", "dbn.h5"], "--save-dbn"),
    # A batch MNIST cannot fill ran 60,000 rows labelled as the batch.
    ("step_routes", ["--configs", "784x10:70000:1"], "--configs"),
    ("step_routes", ["--configs", "784x10:100:1", "--rows", "50"], "--rows"),
    ("step_routes", ["--configs", "784x10:100:1", "--rows", "70000"], "--rows 70000 exceeds"),
    # Options of a mode not chosen were ignored.
    ("few_labels", ["--alpha", "5"], "--alpha"),
    ("few_labels", ["--ramp-start", "3"], "--ramp-start"),
    ("few_labels", ["--vat-weight", "2"], "--vat-weight"),
    ("few_labels", ["--pseudo-label", "--vat-weight", "2"], "--vat-weight"),
    ("few_labels", ["--unlabelled-batch", "64"], "--unlabelled-batch"),
])
def test_bad_counts_exit_2_naming_the_option(capsys, tmp_path, name, argv, option):
    assert option in refused(capsys, name, argv + ["--out", str(tmp_path / "x.json")])


def test_max_samples_is_the_most_samples_of_a_timed_run(capsys, tmp_path):
    throughput = script("rbm_throughput")
    assert throughput.samples_for(500, 3.0, 1000) == 1000  # it used to give 2,000
    assert throughput.samples_for(500, 0.001, 60000) == 2000  # the floor of a short run
    assert throughput.samples_for(10, 1e300, 60000) == 60000  # an OverflowError once
    out = ["--out", str(tmp_path / "x.json")]
    message = refused(capsys, "rbm_throughput", ["--max-samples", "500", "--batch", "1500"] + out)
    assert "--batch 1500 exceeds the 500 samples" in message


def test_swa_epochs_must_be_fewer_than_the_fine_tuning_epochs(capsys, tmp_path):
    out = str(tmp_path / "x.json")
    message = refused(capsys, "mnist_dbn", ["--swa-epochs", "3", "--mlp-epochs", "1", "--out", out])
    assert "--swa-epochs" in message and "--mlp-epochs" in message
    args = script("mnist_dbn").parse_args(["--swa-epochs", "3", "--mlp-epochs", "4", "--out", out])
    assert (args.swa_epochs, args.mlp_epochs) == (3, 4)


@pytest.mark.parametrize("methods", ["cd1,bogus", "cd1,", "pcd,cd0"])
def test_rbm_loglik_refuses_unknown_methods_up_front(capsys, methods):
    assert "--methods" in refused(capsys, "rbm_loglik", ["--methods", methods])


@pytest.mark.parametrize("name", SCRIPTS)
def test_an_unwritable_out_is_refused_up_front(capsys, tmp_path, name):
    assert "--out" in refused(capsys, name, ["--out", str(tmp_path)])  # a folder
    assert "--out" in refused(capsys, name, ["--out", "/dev/null/x.json"])
    # A file in folders still to be made passes, and nothing is made yet.
    args = script(name).parse_args(["--out", str(tmp_path / "a" / "b" / "x.json")])
    assert args.out.endswith("x.json") and not (tmp_path / "a").exists()


def test_results_go_to_the_gitignored_runs_folder_by_default(capsys, tmp_path):
    args = script("gibbs_sampling").parse_args([])
    assert args.out == "runs/benchmarks/gibbs_sampling.json"
    args = script("mnist_dbn").parse_args([])
    assert (args.out, args.save_dbn) == ("runs/benchmarks/mnist_dbn.json",
                                         "runs/benchmarks/mnist_dbn.keras")
    out = ["--out", str(tmp_path / "x.json")]
    assert "--save-dbn" in refused(capsys, "mnist_dbn", ["--save-dbn", str(tmp_path)] + out)
    # --swa-lr alone would be ignored by a whole default run.
    assert "give those too" in refused(capsys, "mnist_dbn", ["--swa-lr", "0.5"] + out)
    args = script("mnist_dbn").parse_args(["--swa-epochs", "5"] + out)
    assert args.swa_lr == 0.2


def test_quick_leaves_the_options_given_alone(tmp_path):
    out = ["--out", str(tmp_path / "x.json")]
    throughput = script("rbm_throughput")
    args = throughput.parse_args(["--quick", "--reps", "5"] + out)
    assert (args.reps, args.hidden, args.seconds) == (5, [500], 1.5)
    args = throughput.parse_args(out)
    assert (args.reps, args.hidden, args.seconds) == (3, [500, 2000, 4000], 3.0)
    loglik = script("rbm_loglik")
    args = loglik.parse_args(["--quick", "--epochs", "3", "--train-limit", "2000"])
    assert (args.epochs, args.train_limit, args.test_limit, args.ais_steps) == (3, 2000, 1000, 500)
    args = loglik.parse_args(["--ais-steps", "1000"])
    assert (args.epochs, args.train_limit, args.ais_steps, args.methods) == (
        20, None, 1000, "cd1,cd25,pcd")


def test_write_json_writes_infinities_and_nan_as_null(tmp_path, capsys):
    path = tmp_path / "results" / "x.json"
    _common.write_json(str(path), {
        "log_z_interval": [float("-inf"), 12.5], "pretrain_seconds": float("nan"),
        "nested": {"high": float("inf"), "pair": (1, float("nan"))}, "finite": 0.25,
    })

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    loaded = json.loads(path.read_text(), parse_constant=refuse)
    assert loaded == {"log_z_interval": [None, 12.5], "pretrain_seconds": None,
                      "nested": {"high": None, "pair": [1, None]}, "finite": 0.25}
