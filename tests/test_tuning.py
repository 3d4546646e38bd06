"""keras-tuner search over the DBN pipeline, on ~2000 real MNIST images."""

import argparse
import json
import os
import pathlib
import re
import shutil
import time
import warnings

import keras
import keras_tuner as kt
import numpy as np
import pytest

import keras_dbn
from keras_dbn import datasets
from keras_dbn.dbn import DBN
from keras_dbn.tuning import DBNHyperModel, PretrainCache, make_tuner, trials_table
from command_output import error_line

# Tiny layers, one pretraining epoch: every test below runs in seconds.
TINY = dict(num_layers=1, units=[32, 64], k=1, persistent=False, pretrain_lr=(0.02, 0.1),
            pretrain_epochs=1, finetune_lr=(3e-3, 1e-2), dropout=(0.0, 0.2), batch_size=100)
FIXED_PRETRAINING = dict(TINY, units=32, pretrain_lr=0.05)


@pytest.fixture(scope="module")
def mnist(mnist_manual_dir, tfds_data_dir):
    load = dict(manual_dir=mnist_manual_dir, data_dir=tfds_data_dir)
    x, y = datasets.load_numpy("mnist", "train", limit=2000, **load)
    x_test, y_test = datasets.load_numpy("mnist", "test", limit=500, **load)
    x_train, y_train, x_val, y_val = datasets.train_validation_split(x, y, 500, seed=0)
    return x_train, y_train, x_val, y_val, x_test, y_test


@pytest.fixture
def count_pretraining(monkeypatch):
    """Counts DBN.pretrain runs and the layers they train."""
    calls = []
    original = DBN.pretrain

    def counting(self, x, *args, **kwargs):
        calls.append(len(self.rbms))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(DBN, "pretrain", counting)
    return calls


class CountingHyperModel(DBNHyperModel):
    """Counts fit calls; raises KeyboardInterrupt on call number ``interrupt_at``."""

    def __init__(self, *args, interrupt_at=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fits = 0
        self.interrupt_at = interrupt_at

    def fit(self, hp, model, *args, **kwargs):
        self.fits += 1
        if self.fits == self.interrupt_at:
            raise KeyboardInterrupt
        return super().fit(hp, model, *args, **kwargs)


def test_random_search_finds_an_accurate_saveable_model(mnist, tmp_path):
    x_train, y_train, x_val, y_val, x_test, y_test = mnist
    hypermodel = DBNHyperModel(10, input_dim=784, **TINY)
    tuner = make_tuner(hypermodel, "random", max_trials=2, directory=tmp_path, project_name="a")
    tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=2, verbose=0)

    best_hp = tuner.get_best_hyperparameters(1)[0].values
    assert best_hp["units_0"] in (32, 64) and best_hp["k"] == 1
    assert 0.02 <= best_hp["pretrain_lr"] <= 0.1
    best = tuner.get_best_models(1)[0]
    assert [layer.units for layer in best.layers if isinstance(layer, keras.layers.Dense)] == [
        best_hp["units_0"], 10]
    val_accuracy = best.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    test_accuracy = best.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    assert val_accuracy > 0.5 and test_accuracy > 0.5
    table = trials_table(tuner).splitlines()
    assert len(table) == 3 and "CD-1" in table[1]
    assert table[0].split()[-1] == "batch"  # no Hyperband budgets, no epochs column

    # Built-in layers only: the .keras file loads without keras_dbn objects.
    best.save(tmp_path / "best.keras")
    loaded = keras.models.load_model(tmp_path / "best.keras", compile=False)
    np.testing.assert_allclose(loaded.predict(x_test[:8], verbose=0),
                               best.predict(x_test[:8], verbose=0), atol=1e-6)


def test_interrupted_search_resumes_and_keeps_finished_trials(mnist, tmp_path):
    x_train, y_train, x_val, y_val, *_ = mnist
    search = dict(validation_data=(x_val, y_val), epochs=1, verbose=0)
    first = CountingHyperModel(10, input_dim=784, interrupt_at=3, **FIXED_PRETRAINING)
    tuner = make_tuner(first, "random", max_trials=3, directory=tmp_path, project_name="b")
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C during the third trial
        tuner.search(x_train, y_train, **search)
    finished = {t.trial_id: t.score for t in tuner.oracle.trials.values() if t.status == "COMPLETED"}
    assert len(finished) == 2

    resumed = CountingHyperModel(10, input_dim=784, **FIXED_PRETRAINING)
    tuner = make_tuner(resumed, "random", max_trials=3, directory=tmp_path, project_name="b")
    tuner.search(x_train, y_train, **search)
    assert resumed.fits == 1  # only the interrupted trial ran again
    trials = tuner.oracle.trials.values()
    assert sum(t.status == "COMPLETED" for t in trials) == 3
    assert {t.trial_id: t.score for t in trials if t.trial_id in finished} == finished


def test_hyperband_continuation_does_not_pretrain_again(mnist, count_pretraining, monkeypatch):
    x_train, y_train, x_val, y_val, *_ = mnist
    hypermodel = DBNHyperModel(10, input_dim=784, **FIXED_PRETRAINING)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, x_train, y_train, validation_data=(x_val, y_val), epochs=1, verbose=0)
    assert count_pretraining == [1]
    checkpoint = model.get_weights()

    # What Hyperband does next: rebuild, restore the checkpoint, continue.
    restored = hypermodel.build(hp)
    restored.set_weights(checkpoint)
    hypermodel.cache = PretrainCache(max_bytes=0)  # a re-pretraining would have to train
    at_fit = []
    original_fit = restored.fit
    monkeypatch.setattr(restored, "fit", lambda *a, **k: at_fit.append(restored.get_weights())
                        or original_fit(*a, **k))
    history = hypermodel.fit(hp, restored, x_train, y_train, validation_data=(x_val, y_val),
                             epochs=2, initial_epoch=1, verbose=0)
    assert count_pretraining == [1]
    for got, want in zip(at_fit[0], checkpoint):
        np.testing.assert_array_equal(got, want)
    assert history.epoch == [1] and "val_accuracy" in history.history


def test_hyperband_search_pretrains_once_per_setting(mnist, count_pretraining, tmp_path):
    x_train, y_train, x_val, y_val, *_ = mnist
    hypermodel = DBNHyperModel(10, input_dim=784, **FIXED_PRETRAINING)
    tuner = make_tuner(hypermodel, "hyperband", max_epochs=3, directory=tmp_path, project_name="h")
    tuner.search(x_train, y_train, validation_data=(x_val, y_val), verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert any(t.hyperparameters.values["tuner/initial_epoch"] > 0 for t in trials)
    assert count_pretraining == [1]
    assert tuner.oracle.get_best_trials(1)[0].score > 0.5
    header, *rows = trials_table(tuner, num_trials=len(trials)).splitlines()
    assert header.split()[-1] == "epochs"
    assert {row.split()[-1] for row in rows} <= {"1", "3"}


def test_trials_sharing_pretraining_settings_pretrain_once(mnist, count_pretraining, tmp_path):
    x_train, y_train, x_val, y_val, *_ = mnist
    hypermodel = DBNHyperModel(10, input_dim=784, **FIXED_PRETRAINING)
    tuner = make_tuner(hypermodel, "random", max_trials=2, directory=tmp_path, project_name="d")
    tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=1, verbose=0)
    assert len(tuner.oracle.trials) == 2
    assert count_pretraining == [1]
    assert hypermodel.cache.hits == 1


def test_cache_reuses_lower_layers_and_persists_on_disk(mnist, count_pretraining, tmp_path):
    x_train = mnist[0]
    values = dict(layers=[32], k=1, persistent=False, pretrain_lr=0.05, pretrain_epochs=1,
                  batch_size=100)
    hypermodel = DBNHyperModel(10, input_dim=784, cache_dir=tmp_path / "cache")
    one = hypermodel.pretrain(values, x_train)
    two = hypermodel.pretrain(dict(values, layers=[32, 16]), x_train)
    assert count_pretraining == [1, 1]  # the second run trained only the new top layer
    np.testing.assert_array_equal(np.asarray(two.rbms[0].kernel), np.asarray(one.rbms[0].kernel))

    fresh = DBNHyperModel(10, input_dim=784, cache_dir=tmp_path / "cache")
    again = fresh.pretrain(dict(values, layers=[32, 16]), x_train.copy())
    assert count_pretraining == [1, 1]  # both layers came from disk
    np.testing.assert_array_equal(np.asarray(again.rbms[1].kernel), np.asarray(two.rbms[1].kernel))

    other_data = fresh.pretrain(values, x_train[::-1].copy())
    assert count_pretraining == [1, 1, 1]  # other data, other fingerprint
    assert not np.array_equal(np.asarray(other_data.rbms[0].kernel), np.asarray(one.rbms[0].kernel))


def test_bfloat16_data_pretrain_and_get_their_own_fingerprint(mnist, count_pretraining):
    x16 = keras_dbn.as_aligned(mnist[0][:600], dtype="bfloat16")
    values = dict(layers=[16], k=1, persistent=False, pretrain_lr=0.05, pretrain_epochs=1,
                  batch_size=100)
    hypermodel = DBNHyperModel(10, input_dim=784)
    hypermodel.pretrain(values, x16)
    hypermodel.pretrain(values, x16.copy())  # the same values: from the cache
    hypermodel.pretrain(values, x16[::-1].copy())
    assert count_pretraining == [1, 1]


def test_best_trials_break_ties_by_trial_id_whatever_their_order():
    from types import SimpleNamespace

    from keras_dbn.tuning import best_trials

    def trial(trial_id, score, status="COMPLETED"):
        return SimpleNamespace(trial_id=trial_id, score=score, status=status)

    # keras-tuner's own order of equal scores follows its dict, which a
    # reloaded project fills in another order.
    for order in (["0", "2", "1", "10", "3"], ["3", "10", "1", "2", "0"]):
        scores = {"0": 0.5, "1": 0.9, "2": 0.9, "3": None, "10": 0.9}
        trials = {i: trial(i, scores[i], "RUNNING" if i == "3" else "COMPLETED")
                  for i in order}
        for direction, expected in (("max", ["1", "2", "10", "0"]), ("min", ["0", "1", "2", "10"])):
            tuner = SimpleNamespace(oracle=SimpleNamespace(
                trials=trials, objective=SimpleNamespace(direction=direction)))
            assert [t.trial_id for t in best_trials(tuner, 10)] == expected
            assert [t.trial_id for t in best_trials(tuner)] == expected[:1]


def test_cache_memory_stays_within_budget():
    cache = PretrainCache(max_bytes=3 * 400)
    for i in range(5):
        cache.put((i,), [np.zeros(100, "float32")])
    assert len(cache) == 3 and cache.get((0,)) is None and cache.get((4,)) is not None
    # An entry stored again counts once: the budget still holds three.
    for _ in range(3):
        cache.put((4,), [np.zeros(100, "float32")])
    cache.put((5,), [np.zeros(100, "float32")])
    assert len(cache) == 3 and all(cache.get((i,)) is not None for i in (3, 4, 5))


def test_search_options_take_underscore_spellings_too():
    from keras_dbn.search_options import add_search_arguments

    parser = add_search_arguments(argparse.ArgumentParser())
    dashed = parser.parse_args(["--max-trials", "2", "--train-limit", "500"])
    assert vars(parser.parse_args(["--max_trials", "2", "--train_limit", "500"])) == vars(dashed)


def test_constructor_values_narrow_the_space():
    hp = kt.HyperParameters()
    DBNHyperModel(10, input_dim=784, num_layers=2, units=64, k=[1], persistent=False,
                  pretrain_lr=0.05, pretrain_epochs=(2, 2), finetune_lr=(1e-3, 1e-2),
                  dropout=0.1, batch_size=[100]).build(hp)
    tuned = {p.name: type(p).__name__ for p in hp.space if type(p).__name__ != "Fixed"}
    assert tuned == {"finetune_lr": "Float"}
    assert hp.values["units_0"] == hp.values["units_1"] == 64 and hp.values["dropout"] == 0.1

    default = kt.HyperParameters()
    DBNHyperModel(10, input_dim=784).build(default)
    kinds = {p.name: type(p).__name__ for p in default.space}
    assert kinds["num_layers"] == "Int" and kinds["units_0"] == "Choice"
    assert kinds["persistent"] == "Boolean" and kinds["pretrain_lr"] == "Float"
    assert default.space[[p.name for p in default.space].index("pretrain_lr")].sampling == "log"


def _fixed_hyperparameters():
    fixed = kt.HyperParameters()
    fixed.Fixed("k", 5)
    fixed.Fixed("num_layers", 2)
    fixed.Fixed("units_0", 256)
    return fixed


def test_every_tuner_the_command_offers_is_made(tmp_path):
    from keras_dbn.search_options import TUNERS

    hypermodel = DBNHyperModel(10, input_dim=784)
    made = {name: type(make_tuner(hypermodel, name, max_trials=1, max_epochs=2,
                                  directory=tmp_path, project_name=name)).__name__
            for name in TUNERS}
    assert made == {"hyperband": "Hyperband", "random": "RandomSearch",
                    "bayesian": "BayesianOptimization"}
    with pytest.raises(ValueError, match="must be one of"):
        make_tuner(hypermodel, "grid", directory=tmp_path)


def test_tuner_hyperparameters_fix_values(tmp_path):
    hypermodel = DBNHyperModel(10, input_dim=784)
    tuner = make_tuner(hypermodel, "random", max_trials=5, directory=tmp_path, project_name="e",
                       hyperparameters=_fixed_hyperparameters())
    for i in range(3):
        values = tuner.oracle.create_trial(f"t{i}").hyperparameters.values
        assert values["k"] == 5 and values["num_layers"] == 2 and values["units_0"] == 256

    only_fixed = make_tuner(hypermodel, "random", max_trials=5, directory=tmp_path,
                            project_name="e2", hyperparameters=_fixed_hyperparameters(),
                            tune_new_entries=False)
    assert {p.name for p in only_fixed.oracle.get_space().space} == {"k", "num_layers", "units_0"}
    # Everything else takes its default (the first choice, or the minimum).
    model = hypermodel.build(only_fixed.oracle.create_trial("t").hyperparameters)
    assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)][:2] == [256, 256]


def test_batch_size_is_a_hyperparameter(mnist):
    hypermodel = DBNHyperModel(10, input_dim=784, **FIXED_PRETRAINING)
    hp = kt.HyperParameters()
    with pytest.raises(ValueError, match="batch_size"):
        hypermodel.fit(hp, hypermodel.build(hp), mnist[0], mnist[1], batch_size=32)


def test_fine_tuning_reads_arrays_through_array_dataset_unless_keras_is_needed(
    mnist, monkeypatch
):
    """NumPy fine-tuning data goes through `array_dataset` (one-thread
    pipeline); arguments only Keras' array pipeline understands keep it."""
    from keras_dbn import tuning

    x, y = mnist[0][:200], mnist[1][:200]
    hypermodel = DBNHyperModel(10, input_dim=784, **dict(FIXED_PRETRAINING, batch_size=50))
    seen = []
    real = tuning.array_dataset
    monkeypatch.setattr(tuning, "array_dataset",
                        lambda *a, **k: seen.append(k) or real(*a, **k))
    hp = kt.HyperParameters()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = hypermodel.fit(hp, hypermodel.build(hp), x, y, epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]  # no "cannot shuffle" warning
    assert seen == [{"batch_size": 50, "shuffle": True}]
    assert len(history.history["loss"]) == 1
    # Keras reads a dataset with steps_per_epoch as it reads arrays.
    history = hypermodel.fit(hp, hypermodel.build(hp), x, y, epochs=2, steps_per_epoch=2,
                             verbose=0)
    assert len(seen) == 2 and len(history.history["loss"]) == 2
    hypermodel.fit(hp, hypermodel.build(hp), x, y, epochs=1, verbose=0,
                   sample_weight=np.ones(len(y)))
    assert len(seen) == 2  # sample weights: Keras' own pipeline


def test_bad_space_fails_at_construction():
    with pytest.raises(ValueError, match="min > max"):
        DBNHyperModel(10, input_dim=784, pretrain_lr=(0.1, 0.01))
    with pytest.raises(ValueError, match="input_dim"):
        DBNHyperModel(10)
    for given, message in (
        ({"units": [0, 500]}, r"`units_0` must hold integers >= 1, got \[0, 500\]"),
        ({"num_layers": 0}, r"`num_layers` must hold integers >= 1"),
        ({"batch_size": [0, 100]}, r"`batch_size` must hold integers >= 1"),
        ({"pretrain_epochs": (0, 3)}, r"`pretrain_epochs` must hold integers >= 1"),
        ({"k": [1, -1]}, r"`k` must hold integers >= 1"),
        ({"finetune_lr": 0.0}, r"`finetune_lr` must hold numbers > 0"),
        ({"dropout": (0.2, 1.5)}, r"`dropout` must hold rates in \[0, 1\), got \(0.2, 1.5\)"),
        # Values that a conversion would change rather than convert.
        ({"persistent": "False"}, r"`persistent` must hold True or False, got 'False'"),
        ({"persistent": [False, "True"]}, r"`persistent` must hold True or False"),
        ({"k": 2.7}, r"`k` must hold whole numbers, got 2.7"),
        ({"batch_size": [50.5, 100]}, r"`batch_size` must hold whole numbers, got 50.5"),
        ({"units": ["256"]}, r"`units_0` must hold whole numbers, got '256'"),
        ({"pretrain_lr": (1e-3, float("inf"))}, r"`pretrain_lr` must hold finite numbers"),
        ({"input_dim": 0}, r"`input_dim` must be an integer >= 1, got 0"),
        ({"input_dim": 784.0}, r"`input_dim` must be an integer >= 1"),
        ({"objective": 3}, r"`objective` must be a metric name"),
        # keras-tuner found out after each trial's whole training (a KeyError).
        ({"objective": "val_acc"}, r"`objective` must name a figure the classifier logs"),
        ({"objective": kt.Objective("val_auc", "max")}, r"got 'val_auc'"),
        ({"x_unlabeled": {"x": 1}, "input_dim": None},
         r"`x_unlabeled` must be a NumPy array or a tf.data.Dataset"),
    ):
        with pytest.raises(ValueError, match=message):
            DBNHyperModel(10, **{"input_dim": 784, **given})
    # Whole floats are the numbers they name.
    values = DBNHyperModel(10, input_dim=784, k=2.0, batch_size=[50.0]).space(kt.HyperParameters())
    assert (values["k"], values["batch_size"]) == (2, 50)


def test_objective_may_be_a_keras_tuner_objective():
    objective = kt.Objective("val_loss", "min")
    assert DBNHyperModel(10, input_dim=784, objective=objective).objective is objective
    named = DBNHyperModel(10, input_dim=784, objective="val_loss").objective
    assert (named.name, named.direction) == ("val_loss", "min")


def test_search_paths_are_checked_before_any_work(tmp_path, capsys):
    import sys

    from keras_dbn.argtypes import UsageError
    from keras_dbn.tuning import run_search

    (tmp_path / "file").write_text("mine")
    nowhere = dict(dataset="no_such_dataset", directory=str(tmp_path / "runs"))
    with pytest.raises(UsageError, match="--output '.*file' is a file, not a folder"):
        run_search(**nowhere, output=str(tmp_path / "file"))
    with pytest.raises(UsageError, match="--directory '.*file' is a file, not a folder"):
        run_search(dataset="no_such_dataset", directory=str(tmp_path / "file"))
    with pytest.raises(UsageError, match="--output '.*file/best': '.*file' is a file, not a folder"):
        run_search(**nowhere, output=str(tmp_path / "file" / "best"))
    if os.path.isdir("/proc"):  # a folder in which nothing can be made, even by root
        with pytest.raises(UsageError, match="--directory '/proc/runs': cannot write in '/proc'"):
            run_search(dataset="no_such_dataset", directory="/proc/runs")
    assert (tmp_path / "file").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["file"]  # no write check left behind
    # The tuning script reports them as the keras-dbn command does: one line, no traceback.
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tuning"))
    try:
        import tune_mnist
    finally:
        sys.path.pop(0)
    assert tune_mnist.main(["--output", str(tmp_path / "file")]) == 2
    assert tune_mnist.main(["--dataset", "no_such_dataset", "--directory",
                            str(tmp_path / "runs")]) == 2  # an option error, before any work
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err
    assert "--dataset 'no_such_dataset': Unknown TFDS dataset" in err
    assert sorted(os.listdir(tmp_path)) == ["file"]
    assert "Traceback" not in err


class DataLoaded(Exception):
    """Raised in place of loading the data: the search got past its checks."""


def _stop_at_loading(monkeypatch):
    def load_numpy(*args, **kwargs):
        raise DataLoaded

    monkeypatch.setattr(datasets, "load_numpy", load_numpy)


def test_overwrite_refuses_to_delete_exported_versions(tmp_path, capsys, monkeypatch):
    """keras-tuner's overwrite deletes the project folder, and the default
    --output lies in it: exported versions would go with it."""
    from keras_dbn import cli
    from keras_dbn.argtypes import UsageError
    from keras_dbn.tuning import run_search

    _stop_at_loading(monkeypatch)
    runs = tmp_path / "runs"
    exports = runs / "dbn_mnist" / "best" / "saved_model"
    (exports / "1").mkdir(parents=True)
    (exports / "1" / "saved_model.pb").write_text("version 1")
    (exports / "2").mkdir()
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    with pytest.raises(UsageError, match=r"^--overwrite would delete the project folder "
                       r"'.*dbn_mnist' and with it the SavedModel versions 1, 2 exported to "
                       r"'.*best/saved_model'; pass --output elsewhere"):
        run_search(directory=str(runs), overwrite=True)
    assert cli.main(["tune", "--directory", str(runs), "--overwrite"]) == 2
    assert "--overwrite would delete" in error_line(capsys.readouterr().err,
                                                         "keras-dbn tune")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (exports / "1" / "saved_model.pb").read_text() == "version 1"
    # An --output outside the project would not save the versions inside it.
    with pytest.raises(UsageError, match=r"exported to '.*best/saved_model'; move or remove"):
        run_search(directory=str(runs), overwrite=True, output=str(tmp_path / "best"))
    assert cli.main(["tune", "--directory", str(runs), "--overwrite", "--output",
                     str(tmp_path / "best")]) == 2
    assert (exports / "1" / "saved_model.pb").read_text() == "version 1"
    # Resuming keeps the project; without versions inside it, --overwrite starts.
    with pytest.raises(DataLoaded):
        run_search(directory=str(runs))
    shutil.rmtree(exports)
    with pytest.raises(DataLoaded):
        run_search(directory=str(runs), overwrite=True, output=str(tmp_path / "best"))


def test_an_output_holding_another_runs_results_is_refused_before_any_work(
        tmp_path, capsys, monkeypatch):
    """--output at another search's best folder, or at a `keras-dbn train`
    folder, had its best_model.keras and results.json replaced, and a
    weaker model exported as its highest version."""
    from keras_dbn import cli
    from keras_dbn.argtypes import UsageError
    from keras_dbn.tuning import run_search

    _stop_at_loading(monkeypatch)
    other = tmp_path / "a" / "dbn_mnist" / "best"
    (other / "saved_model" / "1").mkdir(parents=True)
    (other / "best_model.keras").write_text("the other search's model")
    record = json.dumps({"project": os.path.abspath(tmp_path / "a" / "dbn_mnist")})
    (other / "results.json").write_text(record)
    train_out = tmp_path / "train_run"
    train_out.mkdir()
    (train_out / "results.json").write_text("{}")  # a train run's: no project
    bare_versions = tmp_path / "versions"
    (bare_versions / "saved_model" / "4").mkdir(parents=True)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    for output, named in ((other, r"results.json; .*best_model.keras; the SavedModel versions 1 "),
                          (train_out, r"results.json\)"),
                          (bare_versions, r"the SavedModel versions 4 in")):
        with pytest.raises(UsageError, match=rf"^--output '{re.escape(str(output))}' holds "
                           rf"another run's results \(.*{named}.*not this search's "
                           r"\('.*b.dbn_mnist'\); choose another --output, or pass --overwrite"):
            run_search(directory=str(tmp_path / "b"), output=str(output))
        assert cli.main(["tune", "--directory", str(tmp_path / "b"), "--output",
                         str(output)]) == 2
        assert "holds another run's results" in error_line(capsys.readouterr().err,
                                                           "keras-dbn tune")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (other / "best_model.keras").read_text() == "the other search's model"
    # The search that wrote them resumes there, also through a link to its
    # directory (a string comparison refused it, and --overwrite, as the
    # message advised, would have discarded its trials); --overwrite
    # replaces another run's.
    with pytest.raises(DataLoaded):
        run_search(directory=str(tmp_path / "a"), output=str(other))
    outside = tmp_path / "a_best"  # the search's --output, outside its project
    outside.mkdir()
    (outside / "results.json").write_text(record)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    with pytest.raises(DataLoaded):
        run_search(directory=str(tmp_path / "link"), output=str(outside))
    monkeypatch.chdir(tmp_path / "link")
    with pytest.raises(DataLoaded):
        run_search(directory=".", output=str(outside))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataLoaded):
        run_search(directory=str(tmp_path / "b"), output=str(train_out), overwrite=True)
    # An empty folder, or one of other files, is free.
    (tmp_path / "free").mkdir()
    (tmp_path / "free" / "notes.txt").write_text("")
    with pytest.raises(DataLoaded):
        run_search(directory=str(tmp_path / "b"), output=str(tmp_path / "free"))


def test_search_validation_the_data_cannot_meet_fails_before_any_trial(tmp_path, capsys,
                                                                        monkeypatch):
    from keras_dbn import cli
    from keras_dbn.argtypes import UsageError
    from keras_dbn.tuning import run_search

    rng = np.random.default_rng(0)

    def load_numpy(name, split="train", limit=None, **kwargs):
        return rng.random((limit, 784), dtype=np.float32), np.arange(limit) % 10

    monkeypatch.setattr(datasets, "load_numpy", load_numpy)
    with pytest.raises(UsageError, match=r"^--validation=5000 gives 5000 validation examples out "
                       r"of 1000; both sets must be non-empty \(--train-limit 1000 loaded them\)$"):
        run_search(validation=5000, train_limit=1000, directory=str(tmp_path))
    assert cli.main(["tune", "--validation", "5000", "--train-limit", "1000",
                     "--directory", str(tmp_path)]) == 2  # as --labels
    assert "--validation=5000 gives" in error_line(capsys.readouterr().err,
                                                        "keras-dbn tune")
    assert not (tmp_path / "dbn_mnist").exists()  # no trial ran


def test_search_labels_the_data_cannot_meet_fail_before_any_trial(mnist_manual_dir,
                                                                   tfds_data_dir, tmp_path):
    from keras_dbn.argtypes import UsageError
    from keras_dbn.tuning import run_search

    load = dict(train_limit=500, validation=100, manual_dir=mnist_manual_dir,
                data_dir=tfds_data_dir, directory=str(tmp_path))
    with pytest.raises(UsageError, match="--labels=401 exceeds the 400 examples given after "
                                         "the validation split"):
        run_search(labels=401, **load)
    with pytest.raises(UsageError, match="--labels=3 is fewer than the 10 classes"):
        run_search(labels=3, **load)
    assert not (tmp_path / "dbn_mnist").exists()  # no trial ran


def test_run_search_saves_a_best_model_that_loads_cleanly(mnist_manual_dir, tfds_data_dir,
                                                          tmp_path, capsys, monkeypatch):
    import json

    import tensorflow as tf

    from keras_dbn.tuning import run_search

    options = dict(tuner="random", max_trials=1, max_epochs=1, units=[32], max_layers=1,
                   max_pretrain_epochs=1, train_limit=2000, manual_dir=mnist_manual_dir,
                   data_dir=tfds_data_dir, directory=str(tmp_path), verbose=0)
    # The first search names its folder relative to the working directory;
    # the reruns below run elsewhere.
    monkeypatch.chdir(tmp_path)
    results = run_search(**dict(options, directory="."))
    monkeypatch.chdir(tmp_path.parent)
    best_dir = tmp_path / "dbn_mnist" / "best"
    assert json.loads((best_dir / "results.json").read_text())["trials"] == results["trials"] == 1
    assert results["test_accuracy"] > 0.5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(results["model"])
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    x = np.random.default_rng(0).random((4, 784), dtype=np.float32)
    served = tf.saved_model.load(results["saved_model"]).signatures["serving_default"]
    np.testing.assert_allclose(served(inputs=tf.constant(x))["probabilities"],
                               loaded.predict(x, verbose=0), atol=1e-5)
    # Rerun with the same options: the finished trial is kept, and its model,
    # already exported, is not exported again as a new version.
    again = run_search(**options)
    assert again["trials"] == 1 and again["saved_model"] == results["saved_model"]
    # The record keeps the search's figures (they were overwritten by the
    # rerun's zeros).
    assert again["pretrain_runs"] == results["pretrain_runs"] == 1
    assert again["search_seconds"] >= results["search_seconds"] > 0
    assert sorted(p.name for p in (best_dir / "saved_model").iterdir()) == ["1"]
    assert "no new SavedModel version" in capsys.readouterr().out
    # A best model other than the one last exported (here: the record says
    # another trial) goes out as the next version, which TF Serving picks up.
    record = json.loads((best_dir / "results.json").read_text())
    (best_dir / "results.json").write_text(json.dumps(dict(record, best_trial="other")))
    again = run_search(**options)
    assert again["saved_model"].endswith("saved_model/2")
    assert (best_dir / "saved_model" / "1").is_dir()
    assert "no new SavedModel version" not in capsys.readouterr().out
    # A rerun whose save fails half-way (a full disk, an interrupt) leaves
    # the earlier best model and record whole.
    before = {name: (best_dir / name).read_bytes() for name in ("best_model.keras",
                                                                "results.json")}

    def failing_save(model, filepath, *args, **kwargs):
        pathlib.Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device", str(filepath))

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save", failing_save)
        with pytest.raises(OSError, match="best_model.keras"):
            run_search(**options)
    assert {name: (best_dir / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in best_dir.iterdir()) == ["best_model.keras", "results.json",
                                                          "saved_model"]
    # Resumed with another search space: refused, where keras-tuner would
    # silently keep the saved one.
    from keras_dbn.argtypes import UsageError

    with pytest.raises(UsageError, match=r"--units \[32\] -> \[64\]"):
        run_search(**dict(options, units=[64]))


def test_a_checkpoint_loads_into_a_rebuilt_model_with_its_optimizer_state(tmp_path):
    """keras-tuner rebuilds a trial's model and loads its checkpoint (a
    continued Hyperband trial, `get_best_models`): Adam's state comes back
    instead of being skipped with Keras' warning."""
    hypermodel = DBNHyperModel(10, input_dim=784, **FIXED_PRETRAINING)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    x = np.random.default_rng(0).random((20, 784)).astype("float32")
    model.fit(x, np.arange(20) % 10, epochs=1, verbose=0)
    model.save_weights(tmp_path / "trial.weights.h5")
    rebuilt = hypermodel.build(hp)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rebuilt.load_weights(tmp_path / "trial.weights.h5")
    assert int(rebuilt.optimizer.iterations) == int(model.optimizer.iterations) == 1
    for a, b in zip(model.optimizer.variables, rebuilt.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_project_name_that_is_not_one_folder_is_refused_before_anything_is_deleted(tmp_path):
    """keras-tuner deletes directory/project_name with overwrite: ".." wiped
    the directory's parent, "." every other project in the directory."""
    from keras_dbn.search_options import add_search_arguments, parse_options

    directory = tmp_path / "runs"
    (directory / "other_project").mkdir(parents=True)
    (tmp_path / "sibling.txt").write_text("kept")
    hypermodel = DBNHyperModel(10, input_dim=784, **TINY)
    for name in ("..", ".", "a/b", "", str(tmp_path)):
        with pytest.raises(ValueError, match="`project_name`"):
            make_tuner(hypermodel, "random", max_trials=1, directory=str(directory),
                       project_name=name, overwrite=True)
        with pytest.raises(ValueError, match="expected a folder's name"):
            parse_options({"project_name": name})
    assert (tmp_path / "sibling.txt").read_text() == "kept"
    assert (directory / "other_project").is_dir()
    parser = add_search_arguments(argparse.ArgumentParser())
    with pytest.raises(SystemExit):
        parser.parse_args(["--project-name", ".."])
    assert parser.parse_args(["--project-name", "mine"]).project_name == "mine"


def test_run_search_options_by_name_are_checked_as_the_command_line_checks_them():
    """max_trials=0 ran an endless search (keras-tuner reads 0 as no limit);
    a None seed, a negative patience or units as "16,32" failed late or not
    at all."""
    from keras_dbn.search_options import parse_options
    from keras_dbn.tuning import run_search

    for bad, message in (({"max_trials": 0}, "expected a positive integer, got 0"),
                         ({"executions": 0}, "expected a positive integer"),
                         ({"seed": None}, "seed must not be None"),
                         ({"patience": -1}, "expected an integer >= 0"),
                         ({"no_pcd": 1}, "no_pcd must be True or False"),
                         ({"tuner": "grid"}, "invalid choice")):
        with pytest.raises(ValueError, match=message):
            run_search(**bad)
    with pytest.raises(TypeError, match="Unknown run_search options"):
        run_search(max_trial=3)
    assert parse_options({"units": "16,32", "max_trials": 2, "validation": 0.2,
                          "train_limit": None, "no_pcd": True}) == {
        "units": [16, 32], "max_trials": 2, "validation": 0.2, "train_limit": None,
        "no_pcd": True}
    hypermodel = DBNHyperModel(10, input_dim=784, **TINY)
    for name in ("max_trials", "max_epochs", "executions"):
        with pytest.raises(ValueError, match=f"`{name}` must be an integer >= 1"):
            make_tuner(hypermodel, "random", **{name: 0}, directory="unused")


def test_the_data_fingerprint_is_taken_once_per_array(mnist, monkeypatch):
    """The array was reshaped first, a new object each call: the memo never
    hit, and each trial hashed the whole training set again."""
    import keras_dbn.tuning as tuning

    calls = []
    original = tuning._fingerprint
    monkeypatch.setattr(tuning, "_fingerprint", lambda x: (calls.append(1), original(x))[1])
    values = dict(layers=[8], k=1, persistent=False, pretrain_lr=0.05, pretrain_epochs=1,
                  batch_size=100)
    hypermodel = DBNHyperModel(10, input_dim=784)
    x = mnist[0][:300].reshape(-1, 28, 28)  # images: the digest of their rows
    for _ in range(3):
        hypermodel.pretrain(values, x)
    assert len(calls) == 1
    assert hypermodel._digest(x) == original(x.reshape(len(x), -1))


def test_fine_tuning_images_fingerprints_them_once(mnist, monkeypatch):
    """`fit` reshaped them before pretraining, a new array each trial."""
    import keras_dbn.tuning as tuning

    calls = []
    original = tuning._fingerprint
    monkeypatch.setattr(tuning, "_fingerprint", lambda x: (calls.append(1), original(x))[1])
    images, labels = mnist[0][:200].reshape(-1, 28, 28), mnist[1][:200]
    hypermodel = DBNHyperModel(10, input_dim=784, **dict(FIXED_PRETRAINING, units=8))
    for _ in range(3):
        hp = kt.HyperParameters()
        hypermodel.fit(hp, hypermodel.build(hp), images, labels, epochs=1, verbose=0)
    assert len(calls) == 1 and hypermodel.pretrain_calls == 1


def test_a_new_search_in_a_removed_project_records_its_own_figures(
        mnist_manual_dir, tfds_data_dir, tmp_path):
    """The totals of a search whose project was removed were added to the
    new search's."""
    import json

    from keras_dbn.tuning import run_search

    options = dict(tuner="random", max_trials=1, max_epochs=1, units=[8], max_layers=1,
                   max_pretrain_epochs=1, train_limit=500, manual_dir=mnist_manual_dir,
                   data_dir=tfds_data_dir, directory=str(tmp_path / "runs"),
                   output=str(tmp_path / "best"), verbose=0)
    run_search(**options)
    shutil.rmtree(tmp_path / "runs")
    again = run_search(**options)
    record = json.loads((tmp_path / "best" / "results.json").read_text())
    assert again["pretrain_runs"] == record["pretrain_runs"] == 1


def test_an_interrupted_run_counts_in_the_searchs_figures(
        mnist_manual_dir, tfds_data_dir, tmp_path, monkeypatch):
    """A run stopped by Ctrl-C wrote no results.json, and its time and
    pretraining were left out of the resumed search's figures."""
    import json

    from keras_dbn.tuning import run_search

    options = dict(tuner="random", max_trials=1, max_epochs=1, units=[8], max_layers=1,
                   max_pretrain_epochs=1, train_limit=500, manual_dir=mnist_manual_dir,
                   data_dir=tfds_data_dir, directory=str(tmp_path / "runs"), verbose=0)
    original = DBNHyperModel.fit
    stopped = []

    def interrupted(self, *args, **kwargs):
        stopped.append(time.perf_counter())
        original(self, *args, **kwargs)  # pretrains, then fine-tunes
        raise KeyboardInterrupt  # before the trial is recorded as finished

    monkeypatch.setattr(DBNHyperModel, "fit", interrupted)
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_search(**options)
    first_seconds = time.perf_counter() - start
    monkeypatch.setattr(DBNHyperModel, "fit", original)
    results = run_search(**options)  # trial 0 again; its RBMs come from the cache
    assert results["pretrain_runs"] == 1
    record = json.loads((tmp_path / "runs" / "dbn_mnist" / "best" / "results.json").read_text())
    assert record["search_seconds"] == results["search_seconds"] > (first_seconds
                                                                     - (stopped[0] - start))


def test_images_are_fine_tuned_as_the_rows_they_were_pretrained_on(mnist):
    """Pretraining flattened them, the classifier got them as images: every
    trial failed after its pretraining."""
    x_train, y_train, x_val, y_val = (a[:400] for a in mnist[:4])
    images = x_train.reshape(-1, 28, 28)
    hypermodel = DBNHyperModel(10, x_unlabeled=images.tolist(), **dict(FIXED_PRETRAINING,
                                                                        units=8))
    assert hypermodel.input_dim == 784
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, images, y_train, epochs=1, verbose=0,
                             validation_data=(x_val.reshape(-1, 28, 28), y_val))
    assert np.isfinite(history.history["val_accuracy"][0])
