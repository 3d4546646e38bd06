"""keras_dbn models behave like Keras' own: saving resumes exactly, evaluation
and pictures leave training alone, monitors and weights work as in Keras."""

import errno
import os
import stat

import keras
import numpy as np
import pytest

import keras_dbn
from keras_dbn.callbacks import ImageGridCallback


@pytest.fixture(scope="module")
def x():
    return (np.random.default_rng(0).random((200, 16)) > 0.5).astype("float32")


def _kernel_gap(a, b):
    return float(np.abs(np.asarray(a.kernel) - np.asarray(b.kernel)).max())


@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_a_loaded_rbm_trains_on_exactly_as_the_saved_one(x, tmp_path, persistent, shuffle):
    rbm = keras_dbn.RBM(8, seed=1, persistent=persistent, num_chains=10)
    rbm.compile(optimizer="sgd")
    rbm.fit(x, epochs=1, batch_size=20, verbose=0, shuffle=shuffle)
    rbm.save(tmp_path / "rbm.keras")
    loaded = keras.models.load_model(tmp_path / "rbm.keras")
    rbm.fit(x, epochs=1, batch_size=20, verbose=0, shuffle=shuffle)
    loaded.fit(x, epochs=1, batch_size=20, verbose=0, shuffle=shuffle)
    assert _kernel_gap(rbm, loaded) == 0.0  # same random draws, same batches


def test_a_loaded_dbn_pretrains_on_exactly_as_the_saved_one(x, tmp_path):
    dbn = keras_dbn.DBN([8, 4], seed=2)
    dbn.pretrain(x, epochs=1, batch_size=20, verbose=0)
    dbn.save(tmp_path / "dbn.keras")
    loaded = keras.models.load_model(tmp_path / "dbn.keras")
    dbn.pretrain(x, epochs=1, batch_size=20, verbose=0)
    loaded.pretrain(x, epochs=1, batch_size=20, verbose=0)
    assert max(_kernel_gap(a, b) for a, b in zip(dbn.rbms, loaded.rbms)) == 0.0


# VirtualAdversarial runs the classifier's Dropout layers, whose random
# streams Keras itself does not save (keras_dbn's extra state does).
@pytest.mark.parametrize("trainer, dropout", [("SupervisedTrainer", 0.2),
                                              ("VirtualAdversarial", 0.2)])
def test_a_loaded_trainer_trains_on_exactly_as_the_saved_one(x, tmp_path, trainer, dropout):
    dbn = keras_dbn.DBN([8], seed=0)
    dbn.pretrain(x, epochs=1, verbose=0)
    y = (x[:, 0] > 0).astype("int32")
    model = getattr(keras_dbn, trainer)(dbn.to_classifier(2, dropout=dropout), seed=1)
    model.compile(optimizer="adam")
    model.fit(x, y, batch_size=50, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "trainer.keras")
    loaded = keras.models.load_model(tmp_path / "trainer.keras")
    for each in (model, loaded):  # the dropout masks (and VAT's probes) go on, not restart
        each.fit(x, y, batch_size=50, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.classifier.get_weights(), loaded.classifier.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_unseeded_rbm_evaluates_alike_after_loading(x, tmp_path):
    rbm = keras_dbn.RBM(8)
    rbm.fit(x, verbose=0)
    rbm.save(tmp_path / "rbm.keras")
    loaded = keras.models.load_model(tmp_path / "rbm.keras")
    # The same hidden draws: equal up to float32 rounding (another random
    # stream moved the figures by ~1e-3).
    assert loaded.evaluate(x, verbose=0) == pytest.approx(rbm.evaluate(x, verbose=0), rel=1e-5)


class _HalfTemperature(keras_dbn.units.BernoulliUnits):
    """A custom unit type that keeps the built-in type's name."""

    def mean(self, pre_activation):
        return keras.ops.sigmoid(pre_activation / 2.0)


def test_custom_unit_types_are_saved_as_themselves_or_refused(x, tmp_path):
    rbm = keras_dbn.RBM(8, hidden=_HalfTemperature(), seed=0)
    rbm.fit(x, epochs=1, verbose=0)
    (tmp_path / "rbm.keras").write_bytes(b"an earlier save")
    with pytest.raises(ValueError, match="register_keras_serializable"):
        rbm.save(tmp_path / "rbm.keras")  # it would load as plain Bernoulli units
    assert (tmp_path / "rbm.keras").read_bytes() == b"an earlier save"
    registered = keras.saving.register_keras_serializable("keras_dbn_tests")(
        type("RegisteredHalfTemperature", (_HalfTemperature,), {}))
    rbm = keras_dbn.RBM(8, hidden=registered(), seed=0)
    rbm.fit(x, epochs=1, verbose=0)
    rbm.save(tmp_path / "registered.keras")
    loaded = keras.models.load_model(tmp_path / "registered.keras")
    assert type(loaded.hidden_units) is registered
    np.testing.assert_allclose(loaded.predict(x, verbose=0), rbm.predict(x, verbose=0),
                               atol=1e-6)


def test_a_frozen_rbm_keeps_its_optimizer_state_through_saving(x, tmp_path):
    rbm = keras_dbn.RBM(8, seed=1)
    rbm.compile(optimizer="adam")
    rbm.fit(x, verbose=0)
    slots = [np.asarray(v) for v in rbm.optimizer.variables]
    rbm.trainable = False
    rbm.save(tmp_path / "frozen.keras")
    loaded = keras.models.load_model(tmp_path / "frozen.keras")
    assert len(loaded.optimizer.variables) == len(slots)
    for saved, restored in zip(slots, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(restored), saved)
    loaded.trainable = True
    before = np.asarray(loaded.kernel).copy()
    loaded.fit(x, verbose=0)  # trains again, with the restored Adam moments
    assert not np.array_equal(np.asarray(loaded.kernel), before)


def _fitted(x, **fit_kwargs):
    rbm = keras_dbn.RBM(8, seed=1)
    rbm.compile()
    rbm.fit(x[:160], epochs=2, batch_size=20, verbose=0, shuffle=False, **fit_kwargs)
    return rbm


def test_validation_and_pictures_leave_training_alone(x, tmp_path):
    plain = _fitted(x)
    validated = _fitted(x, validation_data=x[160:])
    pictured = _fitted(x, callbacks=[ImageGridCallback(
        tmp_path, num_samples=4, gibbs_steps=3, tensorboard=False, image_shape=(4, 4))])
    assert _kernel_gap(plain, validated) == 0.0
    assert _kernel_gap(plain, pictured) == 0.0
    assert list(tmp_path.glob("samples_epoch*.png"))


def test_evaluate_gives_one_answer_for_the_same_weights(x):
    rbm = _fitted(x)
    first = rbm.evaluate(x, verbose=0)
    assert rbm.evaluate(x, verbose=0) == first
    rbm.fit(x, epochs=1, verbose=0)
    assert rbm.evaluate(x, verbose=0) != first


def test_seeded_sampling_does_not_move_the_training_stream(x):
    rbm = _fitted(x)
    other = _fitted(x)
    rbm.sample(5, gibbs_steps=3, seed=7)
    keras_dbn.DBN.from_config(keras_dbn.DBN([8]).get_config())  # unrelated models too
    rbm.fit(x, epochs=1, batch_size=20, verbose=0, shuffle=False)
    other.fit(x, epochs=1, batch_size=20, verbose=0, shuffle=False)
    assert _kernel_gap(rbm, other) == 0.0
    # Unseeded sampling draws from the RBM's own stream, as documented.
    rbm.sample(5, gibbs_steps=3)
    rbm.fit(x, epochs=1, batch_size=20, verbose=0, shuffle=False)
    other.fit(x, epochs=1, batch_size=20, verbose=0, shuffle=False)
    assert _kernel_gap(rbm, other) > 0.0


@pytest.mark.parametrize("monitor", ["reconstruction_error", "val_reconstruction_error",
                                     "val_free_energy", "free_energy_gap"])
def test_keras_monitors_in_auto_mode_know_the_rbm_metrics(x, tmp_path, monitor):
    callbacks = [keras.callbacks.EarlyStopping(monitor, patience=5),
                 keras.callbacks.ReduceLROnPlateau(monitor),
                 keras.callbacks.ModelCheckpoint(tmp_path / "best.keras", monitor=monitor,
                                                 save_best_only=True)]
    rbm = keras_dbn.RBM(8, seed=1)
    rbm.fit(x[:160], validation_data=x[160:], epochs=2, verbose=0, callbacks=callbacks)
    assert [c.mode for c in callbacks] == ["min"] * 3
    assert (tmp_path / "best.keras").exists()


@pytest.mark.parametrize("callback, validate, message", [
    (keras.callbacks.EarlyStopping(), True, "EarlyStopping monitors 'val_loss'.*no loss"),
    (keras.callbacks.ReduceLROnPlateau("loss"), False, "ReduceLROnPlateau monitors 'loss'"),
    (keras.callbacks.ModelCheckpoint("best.keras", "val_free_energy", save_best_only=True),
     False, "need validation_data or validation_split"),
    (keras.callbacks.EarlyStopping("free_energy_gap"), False, "logs: free_energy, "
                                                               "reconstruction_error\\."),
])
def test_rbm_refuses_monitors_it_never_logs(x, tmp_path, callback, validate, message):
    # Keras would only warn, then never stop, reduce or save.
    rbm = keras_dbn.RBM(8, seed=1)
    validation = dict(validation_data=x[160:]) if validate else {}
    with pytest.raises(ValueError, match=message):
        rbm.fit(x[:160], epochs=1, verbose=0, callbacks=[callback], **validation)
    assert rbm.optimizer.iterations.numpy() == 0  # refused before training
    # A checkpoint saving every epoch monitors nothing, whatever its monitor.
    rbm.fit(x[:160], epochs=1, verbose=0,
            callbacks=[keras.callbacks.ModelCheckpoint(tmp_path / "last.keras")])
    assert (tmp_path / "last.keras").exists()


def test_keras_monitors_in_auto_mode_know_the_trainer_accuracy(x):
    dbn = keras_dbn.DBN([8], seed=0)
    dbn.pretrain(x, epochs=1, verbose=0)
    y = (x[:, 0] > 0).astype("int32")
    trainer = keras_dbn.SupervisedTrainer(dbn.to_classifier(2), seed=0)
    trainer.compile(optimizer="adam")
    stop = keras.callbacks.EarlyStopping("val_accuracy", patience=5)
    trainer.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[stop])
    assert stop.mode == "max"


def test_rbm_weights_are_refused_not_ignored(x):
    rbm = keras_dbn.RBM(8, seed=1)
    with pytest.raises(ValueError, match="`sample_weight` does not apply to RBM.fit"):
        rbm.fit(x, sample_weight=np.zeros(len(x)), verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` does not apply to RBM.evaluate"):
        rbm.evaluate(x, sample_weight=np.ones(len(x)), verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` does not apply"):
        keras_dbn.DBN([8], seed=0).pretrain(x, sample_weight=np.ones(len(x)), verbose=0)
    with pytest.raises(TypeError, match="not a dict"):
        rbm.fit({"visible": x}, verbose=0)


def test_dbn_pretrain_refuses_backup_and_restore_shared_by_layers(x, tmp_path):
    dbn = keras_dbn.DBN([8, 4], seed=0)
    with pytest.raises(ValueError, match="BackupAndRestore shared by the layers"):
        dbn.pretrain(x, epochs=1, verbose=0,
                     callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path))])
    assert not dbn.rbms[0].compiled  # refused before any training
    # One layer's own (the message said every layer would restore it).
    histories = dbn.pretrain(x, epochs=1, verbose=0, callbacks=[
        [], [keras.callbacks.BackupAndRestore(str(tmp_path / "top"))]])
    assert [len(h.history["reconstruction_error"]) for h in histories] == [1, 1]


@pytest.mark.parametrize("bad, message", [
    (np.full((3, 16), np.nan), "NaN"),
    (np.full((3, 16), 2.0), r"in \[0, 1\]"),
    (np.zeros((0, 16)), "no examples"),
    (np.zeros(16), "one example per row"),
    (np.zeros((3, 5)), "16 visible units"),
])
def test_dbn_predict_checks_its_data(x, bad, message):
    dbn = keras_dbn.DBN([8, 4], seed=0)
    dbn.pretrain(x, epochs=1, verbose=0)
    assert dbn.predict(x, verbose=0).shape == (200, 4)
    with pytest.raises(ValueError, match=message):
        dbn.predict(bad, verbose=0)


def test_to_classifier_takes_a_dtype_policy(x):
    dbn = keras_dbn.DBN([8], seed=0)
    dbn.pretrain(x, epochs=1, verbose=0)
    assert {layer.dtype_policy.name for layer in dbn.to_classifier(2).layers} == {"float32"}
    mixed = dbn.to_classifier(2, dtype="mixed_bfloat16", dropout=0.1)
    assert [layer.dtype_policy.name for layer in mixed.layers] == [
        "mixed_bfloat16", "mixed_bfloat16", "float32"]
    assert mixed.predict(x[:2], verbose=0).dtype == np.float32


def test_the_public_api_is_imported_with_the_package():
    import importlib
    import sys

    from keras_dbn import dbn, rbm

    assert keras_dbn.RBM is rbm.RBM and keras_dbn.DBN is dbn.DBN
    for name in set(keras_dbn.__all__) - {"__version__"}:
        value = getattr(keras_dbn, name)
        # Submodules are the package's own modules; the rest come from them.
        home = value if isinstance(value, type(sys)) else importlib.import_module(value.__module__)
        assert home.__name__.startswith("keras_dbn."), name
        assert name in dir(keras_dbn)
    # Saved RBMs and DBNs load after a plain `import keras_dbn`.
    assert keras.saving.get_registered_object("keras_dbn>DBN") is keras_dbn.DBN
    with pytest.raises(AttributeError, match="no attribute 'RMB'"):
        keras_dbn.RMB


def test_a_save_that_fails_half_way_leaves_the_earlier_file_whole(x, tmp_path, monkeypatch):
    """Keras writes a .keras file in place: a full disk or an interrupt
    during the save truncated the earlier file (the CLI's `dbn.keras`)."""
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.fit(x, epochs=1, batch_size=50, verbose=0)
    path = tmp_path / "rbm.keras"
    rbm.save(path)
    earlier = path.read_bytes()
    rbm.fit(x, epochs=1, batch_size=50, verbose=0)

    def disk_full(self, store):
        store["0"] = np.zeros(10_000)  # written, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras_dbn.RBM, "save_own_variables", disk_full)
    with pytest.raises(OSError, match=r"No space left on device: .*rbm\.keras"):
        rbm.save(path)
    assert path.read_bytes() == earlier
    assert os.listdir(tmp_path) == ["rbm.keras"]  # no partial file left behind
    monkeypatch.undo()
    rbm.save(path)
    loaded = keras.models.load_model(path)
    assert _kernel_gap(loaded, rbm) == 0.0


def test_replacing_text_writes_keep_the_earlier_file_until_complete(tmp_path):
    from keras_dbn.extra_state import write_text_replacing

    path = tmp_path / "results.json"
    write_text_replacing(path, '{"accuracy": 0.98}')
    os.chmod(path, 0o640)
    write_text_replacing(path, '{"accuracy": 0.99}')
    assert path.read_text() == '{"accuracy": 0.99}'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    with pytest.raises(TypeError):
        write_text_replacing(path, b"not text")  # fails after opening its new file
    assert path.read_text() == '{"accuracy": 0.99}'
    assert os.listdir(tmp_path) == ["results.json"]  # no partial file left behind


def test_replacing_writes_go_in_place_where_a_file_cannot_replace_the_target(
        tmp_path, monkeypatch):
    """A pipe (or a device, such as /dev/null) is written to, never replaced by
    a regular file; a folder that refuses new files gets the file written in
    place; a file that refuses writes is refused, as a plain write refuses it."""
    import tempfile
    import threading

    from keras_dbn import extra_state

    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)
    reader.start()
    extra_state.write_text_replacing(pipe, '{"a": 1}')
    reader.join(timeout=30)
    assert received == ['{"a": 1}'] and stat.S_ISFIFO(os.stat(pipe).st_mode)

    # Permissions as a user other than root meets them (the tests may run as root).
    path = tmp_path / "results.json"
    path.write_text("old")
    inode = os.stat(path).st_ino
    real_access = os.access
    refused = set()
    monkeypatch.setattr(extra_state.os, "access",
                        lambda p, mode: str(p) not in refused and real_access(p, mode))
    refused.add(str(tmp_path))  # the folder refuses new files
    extra_state.write_text_replacing(path, "new")
    assert path.read_text() == "new" and os.stat(path).st_ino == inode  # written in place
    # The new contents wait in the temporary folder, which is everyone's:
    # readable by their writer alone; a failure there names that folder.
    modes = []

    def recording(partial):
        modes.append(stat.S_IMODE(os.stat(partial).st_mode))
        with open(partial, "w") as f:
            f.write("newest")

    extra_state._replacing(path, recording)
    assert modes == [0o600] and path.read_text() == "newest"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="the temporary copy for") as error:
        extra_state.write_text_replacing(path, "lost")
    assert str(tmp_path / "missing") in error.value.filename and path.read_text() == "newest"
    monkeypatch.undo()
    monkeypatch.setattr(extra_state.os, "access",
                        lambda p, mode: str(p) not in refused and real_access(p, mode))
    refused.add(str(path))  # the file refuses writes
    with pytest.raises(PermissionError) as error:
        extra_state.write_text_replacing(path, "newer")
    assert error.value.filename == str(path) and path.read_text() == "newest"
    assert sorted(os.listdir(tmp_path)) == ["pipe.json", "results.json"]
    refused.clear()
    # Another user's writable file in a sticky folder such as /tmp, which
    # refuses its replacement: the new text is written beside it, then
    # copied onto it; a write that fails leaves it whole.
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    shared = sticky / "shared.json"
    shared.write_text("theirs")
    os.chown(shared, 0, 0)
    inode = os.stat(shared).st_ino
    monkeypatch.setattr(extra_state.os, "geteuid", lambda: 4321)  # another user than root
    extra_state.write_text_replacing(shared, "ours")
    assert shared.read_text() == "ours" and os.stat(shared).st_ino == inode
    with pytest.raises(TypeError):
        extra_state.write_text_replacing(shared, b"not text")
    assert shared.read_text() == "ours" and os.listdir(sticky) == ["shared.json"]
    # Outside a sticky folder another user's file is replaced, as ever.
    other = tmp_path / "other.json"
    other.write_text("theirs")
    inode = os.stat(other).st_ino
    extra_state.write_text_replacing(other, "ours")
    assert other.read_text() == "ours" and os.stat(other).st_ino != inode
    # A loop of links fails as a plain write does, and stays a loop.
    os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
    os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
    with pytest.raises(OSError) as error:
        extra_state.write_text_replacing(tmp_path / "loop_a", "x")
    assert error.value.errno == errno.ELOOP and os.path.islink(tmp_path / "loop_a")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="sets owners")
def test_a_replacing_write_keeps_the_earlier_files_owner_and_group(tmp_path):
    from keras_dbn.extra_state import write_text_replacing

    path = tmp_path / "results.json"
    path.write_text("old")
    os.chown(path, 65534, 65534)
    write_text_replacing(path, "new")
    assert path.read_text() == "new"
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (65534, 65534)


def test_replacing_saves_keep_the_format_permissions_and_keras_refusals(x, tmp_path):
    from keras_dbn.extra_state import save_replacing

    classifier = keras.Sequential([keras.Input((16,)), keras.layers.Dense(2)])
    save_replacing(classifier.save, tmp_path / "clf.h5")  # the legacy format, as Keras writes it
    assert (tmp_path / "clf.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    keras.models.load_model(tmp_path / "clf.h5")
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.fit(x, epochs=1, batch_size=50, verbose=0)
    with pytest.raises(ValueError, match="Invalid filepath extension"):
        rbm.save(tmp_path / "rbm")
    path = tmp_path / "rbm.keras"
    rbm.save(path)
    path.chmod(0o600)
    rbm.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == ["clf.h5", "rbm.keras"]


@pytest.mark.parametrize("suffix", [".h5", ".HDF5"])
def test_legacy_hdf5_saves_are_refused_before_any_file_is_touched(x, tmp_path, suffix):
    rbm = keras_dbn.RBM(4, seed=0)
    rbm.compile(optimizer="sgd")
    rbm.fit(x, epochs=1, batch_size=50, verbose=0)
    dbn = keras_dbn.DBN([4, 3], seed=0)
    for name, model in [("rbm", rbm), ("dbn", dbn)]:
        path = tmp_path / f"{name}{suffix}"
        with pytest.raises(ValueError, match="save in Keras' .keras format"):
            model.save(path)
        assert not path.exists()
    rbm.save_weights(tmp_path / "rbm.weights.h5")  # the weights alone still go to HDF5
    assert (tmp_path / "rbm.weights.h5").stat().st_size > 0
