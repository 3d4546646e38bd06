"""keras_dbn.export: SavedModels that TF Serving (and plain TensorFlow) can load."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_dbn.export import export_saved_model, next_version, serving_request

FEATURES, CLASSES = 20, 3

# Runs in a fresh interpreter that imports TensorFlow only, as a server would.
LOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    export_dir, x_path, out_path = sys.argv[1:]
    loaded = tf.saved_model.load(export_dir)
    serving = loaded.signatures["serving_default"]
    _, inputs = serving.structured_input_signature
    outputs = serving(inputs=tf.constant(np.load(x_path)))
    np.save(out_path, outputs["probabilities"].numpy())
    print(json.dumps({
        "signatures": sorted(loaded.signatures.keys()),
        "inputs": {k: [str(v.dtype.name), v.shape.as_list()] for k, v in inputs.items()},
        "outputs": sorted(outputs.keys()),
        "keras_dbn_imported": "keras_dbn" in sys.modules,
    }))
    """
)


def _classifier(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, activation="sigmoid"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A classifier exported once as version 1 of a fresh base directory."""
    model = _classifier()
    base = tmp_path_factory.mktemp("models")
    return model, base, export_saved_model(model, base)


def _clean_env():
    # The child must not find keras_dbn through the parent's import path.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    return env


def test_export_writes_tf_serving_layout(exported):
    _, base, path = exported
    assert path == str(base / "1")
    assert (base / "1" / "saved_model.pb").is_file()
    assert (base / "1" / "variables").is_dir()
    # No staging folder is left behind for TF Serving to trip on.
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_serving_default_matches_keras_in_a_tensorflow_only_process(exported, tmp_path):
    model, _, path = exported
    x = np.random.default_rng(0).random((7, FEATURES), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, path, str(tmp_path / "x.npy"), str(tmp_path / "p.npy")],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["keras_dbn_imported"]
    assert "serving_default" in report["signatures"]
    assert report["inputs"] == {"inputs": ["float32", [None, FEATURES]]}
    assert report["outputs"] == ["probabilities"]

    served = np.load(tmp_path / "p.npy")
    assert served.shape == (7, CLASSES)
    np.testing.assert_allclose(served, model.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)


def test_saved_model_cli_shows_the_serving_signature(exported):
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        pytest.skip(f"saved_model_cli not installed next to {sys.executable}")
    _, _, path = exported
    result = subprocess.run(
        [str(cli), "show", "--dir", path, "--all"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    default = result.stdout.split("signature_def['serving_default']:", 1)
    assert len(default) == 2, result.stdout
    section = default[1]
    assert "inputs['inputs'] tensor_info:" in section
    assert "dtype: DT_FLOAT" in section
    assert f"shape: (-1, {FEATURES})" in section
    assert "outputs['probabilities'] tensor_info:" in section
    assert f"shape: (-1, {CLASSES})" in section
    assert "tensorflow/serving/predict" in section


def test_refuses_to_overwrite_unless_asked(tmp_path):
    import tensorflow as tf

    model = _classifier(seed=1)
    path = export_saved_model(model, tmp_path, version=3)
    pb = pathlib.Path(path) / "saved_model.pb"
    before = pb.read_bytes()

    retrained = _classifier(seed=2)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_saved_model(retrained, tmp_path, version=3)
    assert pb.read_bytes() == before
    x = np.random.default_rng(1).random((4, FEATURES), dtype=np.float32)
    served = tf.saved_model.load(path).signatures["serving_default"](inputs=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"], model.predict(x, verbose=0), atol=1e-5)

    assert export_saved_model(retrained, tmp_path, version=3, overwrite=True) == path
    served = tf.saved_model.load(path).signatures["serving_default"](inputs=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"], retrained.predict(x, verbose=0), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3"]


def test_versions_live_side_by_side(tmp_path):
    model = _classifier()
    export_saved_model(model, tmp_path / "base", version=1)
    export_saved_model(model, tmp_path / "base", version=2)
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == ["1", "2"]


def test_next_version_follows_the_highest_export(tmp_path):
    base = tmp_path / "base"
    assert next_version(base) == 1  # no folder yet
    model = _classifier()
    export_saved_model(model, base, version=next_version(base))
    export_saved_model(model, base, version=next_version(base))
    export_saved_model(model, base, version=7)
    (base / ".keras_dbn-version-9-tmp").mkdir()  # a staging folder, as TF Serving ignores it
    assert next_version(base) == 8
    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == [
        ".keras_dbn-version-9-tmp", "1", "2", "7"]


def test_next_version_steps_over_files_named_like_versions(tmp_path):
    """A stray file called "1" is no version, but no version can be written
    where it stands: the next version is the one after it."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "1").write_text("notes")
    (base / "²").mkdir()  # digits to str.isdigit, not to int() or TF Serving
    assert next_version(base) == 2
    assert export_saved_model(_classifier(), base, version=next_version(base)) == str(base / "2")
    (base / "10").write_text("a file, not a version")
    assert next_version(base) == 11
    assert (base / "1").read_text() == "notes"


@pytest.mark.parametrize("version", [0, -1, 1.0, "1", True, None, 2**63, 2**70])
def test_bad_version_raises_and_writes_nothing(tmp_path, version):
    with pytest.raises(ValueError, match="version must be a positive int"):
        export_saved_model(_classifier(), tmp_path / "base", version=version)
    assert not (tmp_path / "base").exists()


def _writing_then(monkeypatch, then):
    """Makes each export write a stand-in SavedModel, then run ``then()``,
    as another process could while the real (slow) write runs."""

    def write_out(self, filepath, *args, **kwargs):
        os.makedirs(filepath)
        pathlib.Path(filepath, "saved_model.pb").write_text("this export")
        then()

    # ExportArchive() makes an instance of the backend's subclass.
    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", write_out)


def test_the_largest_version_tf_serving_reads_is_accepted(tmp_path, monkeypatch):
    _writing_then(monkeypatch, lambda: None)
    assert export_saved_model(_classifier(), tmp_path, version=2**63 - 1) == str(
        tmp_path / str(2**63 - 1))


@pytest.mark.parametrize("other_export", ["complete", "empty folder"])
def test_a_version_taken_during_the_export_is_not_replaced(tmp_path, monkeypatch, other_export):
    """Two exports to the same version, both without overwrite: the one that
    moves into place second raises, and the first stays as it was."""
    target = tmp_path / "base" / "1"

    def other_writer():
        target.mkdir()
        if other_export == "complete":
            (target / "saved_model.pb").write_text("the other export")

    _writing_then(monkeypatch, other_writer)
    with pytest.raises(FileExistsError, match="was created while this export was written"):
        export_saved_model(_classifier(), tmp_path / "base", version=next_version(tmp_path / "base"))
    assert [p.name for p in (tmp_path / "base").iterdir()] == ["1"]  # no staging folder left
    if other_export == "complete":
        assert (target / "saved_model.pb").read_text() == "the other export"
    else:
        assert list(target.iterdir()) == []


def test_a_claimed_version_filled_before_the_move_is_not_replaced(tmp_path, monkeypatch):
    """Between claiming the version folder and moving the export onto it,
    another writer fills the claim: it is theirs, and stays."""
    target = tmp_path / "1"
    rename = os.rename

    def filled_then_rename(src, dst):
        if pathlib.Path(dst) == target:
            (target / "saved_model.pb").write_text("the other export")
        rename(src, dst)

    _writing_then(monkeypatch, lambda: None)
    monkeypatch.setattr(os, "rename", filled_then_rename)
    with pytest.raises(FileExistsError, match="was written into while this export was moved"):
        export_saved_model(_classifier(), tmp_path)
    assert (target / "saved_model.pb").read_text() == "the other export"
    assert [p.name for p in tmp_path.iterdir()] == ["1"]


def test_overwrite_replaces_a_version_taken_during_the_export(tmp_path, monkeypatch):
    target = tmp_path / "1"

    def other_writer():
        target.mkdir()
        (target / "saved_model.pb").write_text("the other export")

    _writing_then(monkeypatch, other_writer)
    assert export_saved_model(_classifier(), tmp_path, overwrite=True) == str(target)
    assert (target / "saved_model.pb").read_text() == "this export"
    assert [p.name for p in tmp_path.iterdir()] == ["1"]


def test_a_failed_export_removes_only_the_folders_it_made_and_left_empty(tmp_path, monkeypatch):
    def another_export_lands_then_fail():
        (tmp_path / "new" / "base" / "2").mkdir()
        raise RuntimeError("disk full")

    _writing_then(monkeypatch, another_export_lands_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(_classifier(), tmp_path / "new" / "base")
    assert [p.name for p in (tmp_path / "new" / "base").iterdir()] == ["2"]

    def fail():
        raise RuntimeError("disk full")

    _writing_then(monkeypatch, fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(_classifier(), tmp_path / "other" / "base")
    assert [p.name for p in tmp_path.iterdir()] == ["new"]


def test_image_shaped_input_is_rejected(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    with pytest.raises(ValueError, match=r"\(None, features\)"):
        export_saved_model(model, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_rbm_or_dbn_is_pointed_to_its_classifier(tmp_path):
    import keras_dbn

    rbm = keras_dbn.RBM(3)
    rbm.build((None, 4))
    dbn = keras_dbn.DBN([3])
    dbn.build((None, 4))
    for model in (rbm, dbn):
        with pytest.raises(ValueError, match="serves classifiers.*to_classifier"):
            export_saved_model(model, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_serving_request_body():
    x = np.array([[0.0, 0.5], [1.0, 0.25]])
    assert json.loads(serving_request(x)) == {"instances": [[0.0, 0.5], [1.0, 0.25]]}
    with pytest.raises(ValueError, match="2-D"):
        serving_request(np.zeros(4))


def test_a_trainer_is_pointed_to_its_classifier(tmp_path):
    import keras_dbn

    trainer = keras_dbn.SupervisedTrainer(_classifier(), seed=0)
    trainer(np.zeros((2, FEATURES), "float32"))  # built, by a call
    with pytest.raises(ValueError, match=r"trainer\.classifier"):
        export_saved_model(trainer, tmp_path)
    assert list(tmp_path.iterdir()) == []


class SubclassedClassifier(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="sigmoid")
        self.out = keras.layers.Dense(CLASSES, activation="softmax")

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def test_a_subclassed_model_exports_from_the_shape_it_was_called_on(tmp_path):
    import tensorflow as tf

    model = SubclassedClassifier()
    with pytest.raises(ValueError, match="no known input shape"):
        export_saved_model(model, tmp_path / "unbuilt")
    x = np.random.default_rng(0).random((5, FEATURES)).astype("float32")
    expected = model.predict(x, verbose=0)
    path = export_saved_model(model, tmp_path / "base")
    served = tf.saved_model.load(path).signatures["serving_default"](inputs=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=1e-6, atol=1e-7)


def test_logits_are_not_served_as_probabilities(tmp_path):
    logits = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])
    with pytest.raises(ValueError, match="last layer .* has activation 'linear'"):
        export_saved_model(logits, tmp_path / "base")
    assert not (tmp_path / "base").exists()
    for head in ([keras.layers.ReLU()], [keras.layers.Dropout(0.5)]):
        model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES), *head])
        with pytest.raises(ValueError, match="must output class probabilities"):
            export_saved_model(model, tmp_path / "base")
    assert not (tmp_path / "base").exists()
    binary = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1, "sigmoid")])
    assert export_saved_model(binary, tmp_path / "binary").endswith("1")


def test_a_model_with_several_outputs_is_refused_before_writing(tmp_path):
    inputs = keras.Input((FEATURES,))
    model = keras.Model(
        inputs, [keras.layers.Dense(CLASSES, activation="softmax")(inputs),
                 keras.layers.Dense(2, activation="softmax")(inputs)]
    )
    with pytest.raises(ValueError, match="one output of class probabilities"):
        export_saved_model(model, tmp_path / "base")
    assert not (tmp_path / "base").exists()


def test_files_where_folders_belong_are_refused_and_kept(tmp_path):
    base_file = tmp_path / "models"
    base_file.write_text("notes")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        export_saved_model(_classifier(), base_file)
    version_file = tmp_path / "base" / "1"
    version_file.parent.mkdir()
    version_file.write_text("notes")
    with pytest.raises(ValueError, match="is a file, not an exported version"):
        export_saved_model(_classifier(), tmp_path / "base", overwrite=True)
    assert base_file.read_text() == version_file.read_text() == "notes"


def test_paths_an_export_cannot_use_are_refused_by_what_stands_there(tmp_path):
    """"007" is version 7 to TF Serving, and was exported beside; links to
    nothing and a file above the base gave OS errors, or spoke of another
    export taking the version meanwhile."""
    base = tmp_path / "base"
    (base / "007").mkdir(parents=True)
    assert next_version(base) == 8
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"007 already names version 7 \(TF Serving reads "
                                             "folder names as numbers\)"):
            export_saved_model(_classifier(), base, version=7, overwrite=overwrite)
    (base / "3").symlink_to(tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"3 is a link to nothing; remove it or export another"):
        export_saved_model(_classifier(), base, version=3)
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    with pytest.raises(ValueError, match="dangling is a link to nothing"):
        export_saved_model(_classifier(), tmp_path / "dangling", version=1)
    (tmp_path / "notes").write_text("notes")
    with pytest.raises(ValueError, match=r"notes is a file, not a folder to export versions into "
                                         r"\(.*notes/sub cannot be made under it\)"):
        export_saved_model(_classifier(), tmp_path / "notes" / "sub", version=1)
    assert sorted(p.name for p in base.iterdir()) == ["007", "3"]
    assert (tmp_path / "notes").read_text() == "notes"
    (tmp_path / "full" / str(2**63 - 1)).mkdir(parents=True)
    with pytest.raises(ValueError, match="the highest TF Serving reads: there is no next version"):
        next_version(tmp_path / "full")


def test_keras_export_of_an_rbm_or_dbn_trained_by_fit_serves_its_hidden_means(tmp_path):
    import tensorflow as tf

    import keras_dbn

    x = (np.random.default_rng(0).random((100, 12)) < 0.3).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.fit(x, epochs=1, verbose=0)  # never called on a batch, which Keras' export needed
    dbn = keras_dbn.DBN([6, 3], seed=0)
    dbn.pretrain(x, epochs=1, verbose=0)
    for name, model in (("rbm", rbm), ("dbn", dbn)):
        model.export(str(tmp_path / name), verbose=False)
        served = tf.saved_model.load(str(tmp_path / name))
        np.testing.assert_allclose(served.serve(tf.constant(x[:5])).numpy(),
                                   model.predict(x[:5], verbose=0), atol=1e-6)


def test_keras_export_under_a_mixed_policy_serves_float32_as_predict_returns(tmp_path):
    import tensorflow as tf

    import keras_dbn

    x = (np.random.default_rng(0).random((100, 12)) < 0.3).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0, dtype="mixed_bfloat16")
    rbm.fit(x, epochs=1, verbose=0)
    dbn = keras_dbn.DBN([6, 3], seed=0, rbm_kwargs={"dtype": "mixed_bfloat16"})
    dbn.pretrain(x, epochs=1, verbose=0)
    signature = [tf.TensorSpec((None, 12), tf.float32)]
    for name, model, options in (("rbm", rbm, {}), ("dbn", dbn, {}),
                                 ("signed", rbm, {"input_signature": signature})):
        model.export(str(tmp_path / name), verbose=False, **options)
        served = tf.saved_model.load(str(tmp_path / name))
        for outputs in (served.serve(tf.constant(x[:5])),
                        served.signatures["serving_default"](tf.constant(x[:5]))):
            outputs = outputs if tf.is_tensor(outputs) else next(iter(outputs.values()))
            assert outputs.dtype == tf.float32
            np.testing.assert_array_equal(outputs.numpy(), model.predict(x[:5], verbose=0))


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_keras_export_of_an_rbm_names_its_input_and_replaces_only_a_saved_model(
        tmp_path, dtype, monkeypatch, capsys):
    """The input was `args_0` in float32 and `x` under a mixed policy; an
    export went over an earlier SavedModel file by file and among a
    folder's other files."""
    import tensorflow as tf

    import keras_dbn

    x = (np.random.default_rng(0).random((100, 12)) < 0.3).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0, dtype=dtype)
    rbm.fit(x, epochs=1, verbose=0)
    path = tmp_path / "models" / "rbm"
    rbm.export(str(path))
    assert f"Saved artifact at '{path}'" in capsys.readouterr().out  # not the staging folder
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    outputs = next(iter(served(inputs=tf.constant(x[:5])).values()))
    assert outputs.dtype == tf.float32
    np.testing.assert_allclose(outputs.numpy(), rbm.predict(x[:5], verbose=0), atol=1e-6)
    # A second export replaces the first once written; one that fails leaves it.
    (path / "assets").mkdir(exist_ok=True)
    (path / "assets" / "mine.txt").write_text("of the earlier export")
    (path / ".gitkeep").write_text("")
    rbm.export(str(path), verbose=False)
    assert not (path / "assets" / "mine.txt").exists() and (path / ".gitkeep").exists()
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    with pytest.raises(Exception):
        rbm.export(str(path), verbose=False,
                   input_signature=[tf.TensorSpec((None, 5), tf.float32)])
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
    # Into the working folder, and through a link, which stays a link.
    monkeypatch.chdir(path)
    rbm.export(".", verbose=False)
    rbm.export(str(path), verbose=False)
    assert os.getcwd() == str(path) and (path / "saved_model.pb").exists()
    (tmp_path / "link").symlink_to(path)
    rbm.export(str(tmp_path / "link"), verbose=False)
    assert (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [".gitkeep", "assets", "fingerprint.pb", "saved_model.pb", "variables"])
    # TF Serving's warm-up requests stay; a SavedModel's entries without
    # one are the user's own, and refused.
    (path / "assets.extra").mkdir()
    (path / "assets.extra" / "tf_serving_warmup_requests").write_text("warm")
    rbm.export(str(path), verbose=False)
    assert (path / "assets.extra" / "tf_serving_warmup_requests").read_text() == "warm"
    site = tmp_path / "site"
    (site / "assets").mkdir(parents=True)
    (site / "assets" / "logo.png").write_text("png")
    with pytest.raises(ValueError, match=r"other entries than a SavedModel's \(assets\)"):
        rbm.export(str(site), verbose=False)
    assert (site / "assets" / "logo.png").read_text() == "png"
    (tmp_path / "nowhere").symlink_to(tmp_path / "missing")
    with pytest.raises(ValueError, match="is a link to nothing"):
        rbm.export(str(tmp_path / "nowhere"), verbose=False)
    # Other files are refused, a folder of them and a file.
    (path / "README.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds other entries than a SavedModel's \(README.txt\)"):
        rbm.export(str(path), verbose=False)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ValueError, match="is a file"):
        rbm.export(str(tmp_path / "file"), verbose=False)
    assert (path / "README.txt").read_text() == "mine"
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_keras_export_with_a_signature_names_its_input_alike_under_every_policy(tmp_path, dtype):
    """An unnamed signature's input was `args_0` in float32 (Keras' export)
    and `inputs` under a mixed policy; a bare spec failed in float32."""
    import tensorflow as tf

    import keras_dbn

    x = (np.random.default_rng(0).random((60, 12)) < 0.3).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0, dtype=dtype)
    rbm.fit(x, epochs=1, verbose=0)
    signatures = {
        "inputs": [keras.InputSpec(shape=(None, 12), dtype="float32")],
        "inputs ": tf.TensorSpec((None, 12), tf.float32),
        "pixels": [tf.TensorSpec((None, 12), tf.float32, name="pixels")],
    }
    for index, (name, signature) in enumerate(signatures.items()):
        path = str(tmp_path / str(index))
        rbm.export(path, verbose=False, input_signature=signature)
        served = tf.saved_model.load(path).signatures["serving_default"]
        outputs = next(iter(served(**{name.strip(): tf.constant(x[:3])}).values()))
        np.testing.assert_allclose(outputs.numpy(), rbm.predict(x[:3], verbose=0), atol=1e-6)


@pytest.mark.parametrize("after", [False, True])
def test_an_export_interrupted_at_any_rename_leaves_the_earlier_saved_model(
        tmp_path, monkeypatch, after):
    """A Ctrl-C just after a rename (Python raises it as the call returns)
    found the entry not yet noted: the earlier SavedModel lost it."""
    import tensorflow as tf

    import keras_dbn

    x = (np.random.default_rng(0).random((60, 12)) < 0.3).astype("float32")
    earlier, later = keras_dbn.RBM(4, seed=0), keras_dbn.RBM(4, seed=1)
    for rbm in (earlier, later):
        rbm.fit(x, epochs=1, verbose=0)
    expected = earlier.predict(x[:3], verbose=0)
    path = tmp_path / "rbm"
    real_rename = os.rename
    for n in range(1, 12):
        earlier.export(str(path), verbose=False)
        calls = []

        def rename(source, destination):
            calls.append(source)
            if len(calls) == n and not after:
                raise KeyboardInterrupt
            real_rename(source, destination)
            if len(calls) == n:
                raise KeyboardInterrupt

        monkeypatch.setattr(os, "rename", rename)
        try:
            later.export(str(path), verbose=False)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            monkeypatch.setattr(os, "rename", real_rename)
        loaded = tf.saved_model.load(str(path))
        served = loaded.serve(tf.constant(x[:3])).numpy()
        if not interrupted:  # past the last rename: the later model is in place
            np.testing.assert_allclose(served, later.predict(x[:3], verbose=0), atol=1e-6)
            break
        np.testing.assert_allclose(served, expected, atol=1e-6)
        assert [p.name for p in path.iterdir() if p.name.startswith(".")] == []
    assert not interrupted and n > 5


def test_exports_into_one_folder_at_once_run_one_after_the_other(tmp_path, monkeypatch):
    """One export ran in the middle of another's renames: the folder held
    entries of both and loaded as neither."""
    import threading

    import tensorflow as tf

    import keras_dbn

    x = (np.random.default_rng(0).random((60, 12)) < 0.3).astype("float32")
    models = [keras_dbn.RBM(4, seed=seed) for seed in range(3)]
    for rbm in models:
        rbm.fit(x, epochs=1, verbose=0)
    earlier, first, second = models
    path = tmp_path / "rbm"
    earlier.export(str(path), verbose=False)
    real_rename, calls, other = os.rename, [], []

    def rename(source, destination):
        calls.append(source)
        if len(calls) == 3:  # amid the first export's renames, the second starts
            other.append(threading.Thread(
                target=lambda: second.export(str(path), verbose=False)))
            other[0].start()
            other[0].join(timeout=2)
            assert other[0].is_alive()  # waiting for the first to finish
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    first.export(str(path), verbose=False)
    other[0].join()
    monkeypatch.setattr(os, "rename", real_rename)
    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(loaded.serve(tf.constant(x[:3])).numpy(),
                               second.predict(x[:3], verbose=0), atol=1e-6)


def test_an_export_from_inside_another_into_the_same_folder_is_refused(tmp_path):
    """With the folder's lock held by the outer export, the inner one
    (through a link, too) waited for itself: a hang."""
    import tensorflow as tf

    import keras_dbn
    from keras_dbn.export import write_saved_model_folder

    x = (np.random.default_rng(0).random((60, 12)) < 0.3).astype("float32")
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.fit(x, epochs=1, verbose=0)
    path = tmp_path / "rbm"
    rbm.export(str(path), verbose=False)
    (tmp_path / "link").symlink_to(path)

    def write(where):
        tf.saved_model.save(tf.Module(), where)
        rbm.export(str(tmp_path / "link"), verbose=False)

    with pytest.raises(RuntimeError, match="already running in this thread"):
        write_saved_model_folder(write, path)
    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(loaded.serve(tf.constant(x[:3])).numpy(),
                               rbm.predict(x[:3], verbose=0), atol=1e-6)


def test_an_export_waiting_on_a_folder_that_another_removed_makes_it_anew(tmp_path):
    """The first export created the folder, failed and removed it: the
    second, waiting with the folder open, failed with a bare
    FileNotFoundError."""
    import threading
    import time

    import tensorflow as tf

    from keras_dbn.export import write_saved_model_folder

    path = tmp_path / "new" / "model"
    started, errors = threading.Event(), []

    def failing(where):
        started.set()
        time.sleep(1.0)
        raise ValueError("no model")

    def first():
        try:
            write_saved_model_folder(failing, path)
        except ValueError as error:
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    started.wait()
    write_saved_model_folder(lambda where: tf.saved_model.save(tf.Module(), where), path)
    thread.join()
    assert [str(e) for e in errors] == ["no model"]
    assert (path / "saved_model.pb").exists()


def test_two_failing_exports_into_a_new_folder_leave_nothing(tmp_path):
    """The waiting export made the folder anew, failed too, and left it."""
    import threading
    import time

    from keras_dbn.export import write_saved_model_folder

    path = tmp_path / "new" / "model"
    started = threading.Event()

    def failing(where):
        started.set()
        time.sleep(0.5)
        raise ValueError("no model")

    def export():
        with pytest.raises(ValueError, match="no model"):
            write_saved_model_folder(failing, path)

    thread = threading.Thread(target=export)
    thread.start()
    started.wait()
    export()
    thread.join()
    assert list(tmp_path.iterdir()) == []


class _Killed(BaseException):
    """A kill -9 as far as the export can tell: nothing after it runs."""


def _stop_at(monkeypatch, kill=None, after=False, interrupt=None, interrupt_before=None):
    """Patches ``os.rename`` and ``shutil.rmtree`` for one export: after the
    ``interrupt``-th rename it raises KeyboardInterrupt (a Ctrl-C); from the
    ``kill``-th on (``"rmtree"``: the first rmtree; the ``kill``-th renamed
    first if ``after``) every rename, rmtree, mkdir and rmdir raises `_Killed`;
    ``interrupt_before`` raises KeyboardInterrupt instead of the rename.
    Returns a
    function that closes the folders the export opened, as the system
    would for a killed process (releasing their locks), undoes the patches
    and returns the number of renames."""
    import shutil

    real_rename, real_open, real_rmtree = os.rename, os.open, shutil.rmtree
    calls, opened, killed = [], [], []

    def rename(source, destination):
        calls.append(source)
        if killed or (len(calls) == kill and not after):
            killed.append(True)
            raise _Killed
        if len(calls) == interrupt_before:
            raise KeyboardInterrupt
        real_rename(source, destination)
        if len(calls) == kill:
            killed.append(True)
            raise _Killed
        if len(calls) == interrupt:
            raise KeyboardInterrupt

    def open_(path, flags, *args, **kwargs):
        descriptor = real_open(path, flags, *args, **kwargs)
        opened.append(descriptor)
        return descriptor

    def rmtree(*args, **kwargs):
        if killed or kill == "rmtree":
            killed.append(True)
            raise _Killed
        real_rmtree(*args, **kwargs)

    real_mkdir, real_rmdir = os.mkdir, os.rmdir

    def only_alive(function):
        def call(*args, **kwargs):
            if killed:  # nothing more happens on disk
                raise _Killed
            return function(*args, **kwargs)
        return call

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(os, "mkdir", only_alive(real_mkdir))
    monkeypatch.setattr(os, "rmdir", only_alive(real_rmdir))

    def restart():
        monkeypatch.setattr(os, "rename", real_rename)
        monkeypatch.setattr(os, "open", real_open)
        monkeypatch.setattr(shutil, "rmtree", real_rmtree)
        monkeypatch.setattr(os, "mkdir", real_mkdir)
        monkeypatch.setattr(os, "rmdir", real_rmdir)
        for descriptor in opened:
            try:
                os.close(descriptor)
            except OSError:
                pass
        return len(calls)

    return restart


def _kill_at_rename(monkeypatch, n, after):
    return _stop_at(monkeypatch, kill=n, after=after)


def _fake_saved_model(tag):
    """A ``write`` for `write_saved_model_folder` of a SavedModel's entries,
    each file holding ``tag``: which export a file came from, at a glance."""
    def write(where):
        for name in ("saved_model.pb", "fingerprint.pb", "variables/variables.index",
                     "assets/vocabulary.txt"):
            pathlib.Path(where, name).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(where, name).write_text(tag)
    return write


def _tags(path):
    """The folder's files (hidden ones aside) and what each holds."""
    return {str(p.relative_to(path)): p.read_text() for p in path.rglob("*")
            if p.is_file() and not str(p.relative_to(path)).startswith(".")}


def test_any_stop_of_an_export_and_of_what_puts_it_right_ends_with_one_whole_saved_model(
        tmp_path, monkeypatch, capsys):
    """A Ctrl-C amid the moves, then a kill while they were undone, left the
    earlier entries in the staging folder's moved-aside folder after they
    were put back, and the next export moved the earlier model's entries
    into its undone folder and deleted them; a kill amid the undoing
    was taken for a new model moved in whole."""
    from keras_dbn.export import write_saved_model_folder

    def failing(where):
        raise ValueError("no model")

    path = tmp_path / "rbm"
    write_saved_model_folder(_fake_saved_model("earlier"), path)
    restart = _stop_at(monkeypatch)
    write_saved_model_folder(_fake_saved_model("earlier"), path)
    renames = restart()
    earlier = {name: "earlier" for name in _tags(path)}
    later = {name: "later" for name in _tags(path)}
    assert len(earlier) == 4 and renames == 9
    plans = [dict(interrupt=i, kill=k, after=after)
             for i in (None, *range(1, renames + 1))
             for k in (*range(1, 2 * renames + 2), "rmtree") for after in (False, True)]
    for index, plan in enumerate(plans):
        for name in os.listdir(path):
            (shutil.rmtree if (path / name).is_dir() else os.remove)(path / name)
        write_saved_model_folder(_fake_saved_model("earlier"), path)
        restart = _stop_at(monkeypatch, **plan)
        try:
            write_saved_model_folder(_fake_saved_model("later"), path)
            stopped = False
        except (_Killed, KeyboardInterrupt):
            stopped = True
        restart()
        if not stopped:
            continue  # past every rename: a later kill had nothing to stop
        # Whole and not interrupted: the later model stays; else the earlier.
        interrupted = plan["interrupt"] is not None and (
            plan["kill"] == "rmtree" or plan["interrupt"] < plan["kill"])
        whole = not interrupted and plan["kill"] == "rmtree"  # "moved-in" made
        # A second stop, amid what puts it right.
        restart = _stop_at(monkeypatch, kill=1 + index % 4, after=index % 2 == 0)
        with pytest.raises((_Killed, ValueError)):
            write_saved_model_folder(failing, path)
        restart()
        with pytest.raises(ValueError, match="no model"):
            write_saved_model_folder(failing, path)
        assert _tags(path) == (later if whole else earlier), plan
        assert [p.name for p in path.iterdir() if p.name.startswith(".")] == [], plan
    capsys.readouterr()


@pytest.mark.parametrize("after", [False, True])
def test_the_next_export_puts_right_what_a_killed_one_left(tmp_path, monkeypatch, capsys, after):
    """An export killed amid its renames left the earlier SavedModel in its
    hidden folder: the folder had no saved_model.pb, and the next export
    refused it ("holds other entries") or left the hidden copy for good."""
    import tensorflow as tf

    import keras_dbn
    from keras_dbn.export import write_saved_model_folder

    x = (np.random.default_rng(0).random((60, 12)) < 0.3).astype("float32")
    earlier, later = keras_dbn.RBM(4, seed=0), keras_dbn.RBM(4, seed=1)
    for rbm in (earlier, later):
        rbm.fit(x, epochs=1, verbose=0)
    path = tmp_path / "rbm"
    earlier.export(str(path), verbose=False)
    restart = _kill_at_rename(monkeypatch, 10**6, after)
    earlier.export(str(path), verbose=False)
    renames = restart()

    def served():
        loaded = tf.saved_model.load(str(path))
        return loaded.serve(tf.constant(x[:3])).numpy()

    def failing(where):
        raise ValueError("no model")

    for n in range(1, renames + 1):
        earlier.export(str(path), verbose=False)
        restart = _kill_at_rename(monkeypatch, n, after)
        with pytest.raises(_Killed):
            later.export(str(path), verbose=False)
        restart()
        assert [p.name for p in path.iterdir() if p.name.startswith(".")] != []
        capsys.readouterr()
        # A failing export leaves the folder as the killed one should have.
        with pytest.raises(ValueError, match="no model"):
            write_saved_model_folder(failing, path)
        # Killed before it could mark the later model moved in whole.
        np.testing.assert_allclose(served(), earlier.predict(x[:3], verbose=0), atol=1e-6)
        assert [p.name for p in path.iterdir() if p.name.startswith(".")] == []
        moved = n > 1 or after  # the earlier saved_model.pb is aside
        assert ("back in place" in capsys.readouterr().err) == moved
        later.export(str(path), verbose=False)
        np.testing.assert_allclose(served(), later.predict(x[:3], verbose=0), atol=1e-6)
    assert renames > 5


def test_the_next_export_puts_back_a_version_a_killed_one_moved_aside(
        tmp_path, monkeypatch, capsys):
    base = tmp_path / "models"
    models = [_classifier(seed) for seed in range(3)]
    x = np.random.default_rng(0).random((3, FEATURES)).astype("float32")
    export_saved_model(models[0], base, version=1)
    restart = _kill_at_rename(monkeypatch, 1, after=True)  # version 1 moved aside
    with pytest.raises(_Killed):
        export_saved_model(models[1], base, version=1, overwrite=True)
    restart()
    assert sorted(p.name for p in base.iterdir())[0].startswith(".")
    assert not (base / "1").exists()
    export_saved_model(models[2], base, version=2)
    assert "back in place" in capsys.readouterr().err
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]
    import tensorflow as tf

    for version, model in ((1, models[0]), (2, models[2])):
        serve = tf.saved_model.load(str(base / str(version))).signatures["serving_default"]
        np.testing.assert_allclose(serve(inputs=tf.constant(x))["probabilities"].numpy(),
                                   model.predict(x, verbose=0), atol=1e-6)


def test_an_export_leaves_a_running_exports_staging_folder_alone(tmp_path, monkeypatch):
    """Leftovers are told from a running export's folder by its lock."""
    import threading

    base = tmp_path / "models"
    writing, go_on = threading.Event(), threading.Event()
    real_write_out = keras.export.ExportArchive.write_out

    def slow_write_out(self, path, **kwargs):
        if not writing.is_set():
            writing.set()
            go_on.wait(timeout=60)
        return real_write_out(self, path, **kwargs)

    monkeypatch.setattr(keras.export.ExportArchive, "write_out", slow_write_out)
    first = threading.Thread(target=lambda: export_saved_model(_classifier(0), base, version=1))
    first.start()
    writing.wait(timeout=60)
    export_saved_model(_classifier(1), base, version=2)
    go_on.set()
    first.join()
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]


def test_hidden_folders_that_are_not_an_exports_leftovers_stay(tmp_path):
    import tensorflow as tf

    from keras_dbn.export import write_saved_model_folder

    path = tmp_path / "rbm"
    kept = {".keras_dbn-export-notes/mine.txt": "kept",
            ".keras_dbn-export-abcdefgh/mine.txt": "kept",  # named as a staging folder is
            ".export-20240101/saved_model/saved_model.pb": "a dated backup"}
    for name, text in kept.items():
        (path / name).parent.mkdir(parents=True)
        (path / name).write_text(text)
    write_saved_model_folder(lambda where: tf.saved_model.save(tf.Module(), where), path)
    for name, text in kept.items():
        assert (path / name).read_text() == text
    assert (path / "saved_model.pb").exists()


def test_a_version_export_stopped_amid_its_renames_leaves_the_versions_as_they_were(
        tmp_path, monkeypatch, capsys):
    """A Ctrl-C between the renames of an overwriting export deleted the
    version it replaced; one between a new version's claim and its rename,
    or a kill there, left an empty version folder for good (which TF
    Serving would try to load, and which refused its export again)."""
    base = tmp_path / "models"
    models = [_classifier(seed) for seed in range(4)]

    def serves(version, model):
        _assert_serves(base / str(version), model)

    export_saved_model(models[0], base, version=1)
    restart = _stop_at(monkeypatch, interrupt=1)  # version 1 moved aside
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(models[1], base, version=1, overwrite=True)
    restart()
    assert sorted(os.listdir(base)) == ["1"]
    serves(1, models[0])
    restart = _stop_at(monkeypatch, interrupt_before=1)  # version 2 claimed, empty
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(models[1], base, version=2)
    restart()
    assert sorted(os.listdir(base)) == ["1"]
    restart = _stop_at(monkeypatch, kill=1)
    with pytest.raises(_Killed):
        export_saved_model(models[2], base, version=2)
    restart()
    assert (base / "2").is_dir() and not os.listdir(base / "2")
    export_saved_model(models[3], base, version=3)
    assert sorted(os.listdir(base)) == ["1", "3"]
    serves(3, models[3])
    export_saved_model(models[2], base, version=2)
    serves(2, models[2])


def _assert_serves(path, model):
    """The SavedModel at ``path`` serves ``model``'s probabilities."""
    import tensorflow as tf

    x = np.random.default_rng(0).random((3, FEATURES)).astype("float32")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    np.testing.assert_allclose(serve(inputs=tf.constant(x))["probabilities"].numpy(),
                               model.predict(x, verbose=0), atol=1e-6)


def _interrupt_after(monkeypatch, function, matches):
    """``os.<function>`` raises KeyboardInterrupt just after a call whose
    first or second argument ``matches`` (a Ctrl-C as it returns), once."""
    real = getattr(os, function)

    def call(*args, **kwargs):
        result = real(*args, **kwargs)
        if any(matches(str(arg)) for arg in args[:2]):
            monkeypatch.setattr(os, function, real)
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(os, function, call)


def test_a_version_export_interrupted_as_a_call_returns_leaves_the_versions_as_they_were(
        tmp_path, monkeypatch):
    """A Ctrl-C as the claim's mkdir returned left an empty version folder
    (its staging folder gone, nothing put it right); one as the new version's
    rename returned kept it and deleted the version it replaced; a killed
    export's empty claim refused the next export of that version."""
    base = tmp_path / "models"
    models = [_classifier(seed) for seed in range(3)]

    def serves(version, model):
        _assert_serves(base / str(version), model)

    export_saved_model(models[0], base, version=1)
    _interrupt_after(monkeypatch, "mkdir", lambda path: path == str(base / "2"))
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(models[1], base, version=2)
    assert sorted(os.listdir(base)) == ["1"]
    for version, overwrite in ((1, True), (2, False)):
        _interrupt_after(monkeypatch, "rename", lambda path: path == str(base / str(version)))
        with pytest.raises(KeyboardInterrupt):
            export_saved_model(models[1], base, version=version, overwrite=overwrite)
        assert sorted(os.listdir(base)) == ["1"]
        serves(1, models[0])
    # Killed between the claim and the rename: the next export of that
    # version puts it right first; killed with version 1 moved aside:
    # next_version counts it.
    restart = _stop_at(monkeypatch, kill=1)
    with pytest.raises(_Killed):
        export_saved_model(models[1], base, version=2)
    restart()
    assert export_saved_model(models[2], base, version=2) == str(base / "2")
    serves(2, models[2])
    restart = _stop_at(monkeypatch, kill=1, after=True)
    with pytest.raises(_Killed):
        export_saved_model(models[1], base, version=1, overwrite=True)
    restart()
    assert not (base / "1").exists() and next_version(base) == 3
    serves(1, models[0])


def test_a_second_ctrl_c_before_the_undo_begins_still_restores_the_earlier_saved_model(
        tmp_path, monkeypatch, capsys):
    """The finish, told nothing of the first Ctrl-C, kept the new model
    moved in whole; and an empty staging folder younger than a minute stayed
    after the next export."""
    from keras_dbn.export import write_saved_model_folder

    path = tmp_path / "rbm"
    write_saved_model_folder(_fake_saved_model("earlier"), path)
    earlier = _tags(path)
    real_rename, real_mkdir = os.rename, os.mkdir

    def rename(source, destination):
        real_rename(source, destination)
        if str(destination) == str(path / "saved_model.pb"):
            raise KeyboardInterrupt

    def mkdir(folder, *args, **kwargs):
        if str(folder).endswith("undone"):
            monkeypatch.setattr(os, "mkdir", real_mkdir)
            raise KeyboardInterrupt  # the second
        return real_mkdir(folder, *args, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(KeyboardInterrupt):
        write_saved_model_folder(_fake_saved_model("later"), path)
    monkeypatch.setattr(os, "rename", real_rename)
    monkeypatch.setattr(os, "mkdir", real_mkdir)
    with pytest.raises(ValueError, match="no model"):
        write_saved_model_folder(lambda where: (_ for _ in ()).throw(ValueError("no model")),
                                 path)
    assert _tags(path) == earlier
    (path / ".keras_dbn-export-abcd1234").mkdir()  # left by an export killed at once
    write_saved_model_folder(_fake_saved_model("later"), path)
    assert [p.name for p in path.iterdir() if p.name.startswith(".")] == []
    capsys.readouterr()
