"""keras_dbn.datasets on real MNIST (through TFDS's manual directory) and mocked TFDS."""

import gzip
import pathlib
import re

import numpy as np
import pytest
import requests
import tensorflow_datasets as tfds

from keras_dbn import array_input
from keras_dbn import datasets

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_train(mnist_manual_dir, tfds_data_dir):
    return datasets.load_numpy(
        "mnist", "train", data_dir=tfds_data_dir, manual_dir=mnist_manual_dir
    )


@pytest.fixture(scope="module")
def mnist_test(mnist_manual_dir, tfds_data_dir):
    return datasets.load_numpy(
        "mnist", "test", data_dir=tfds_data_dir, manual_dir=mnist_manual_dir
    )


@pytest.fixture
def load(mnist_manual_dir, tfds_data_dir):
    """load_numpy / load_dataset bound to the session's MNIST directories."""
    dirs = dict(data_dir=tfds_data_dir, manual_dir=mnist_manual_dir)

    class Loader:
        @staticmethod
        def numpy(split="test", **kwargs):
            return datasets.load_numpy("mnist", split, **dirs, **kwargs)

        @staticmethod
        def dataset(split="test", **kwargs):
            return datasets.load_dataset("mnist", split, **dirs, **kwargs)

    return Loader


def _read_idx_images(path):
    with gzip.open(path, "rb") as f:
        data = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    return data.reshape(-1, 784)


def _batches(ds):
    return [tuple(t.numpy() for t in batch) for batch in ds]


# ----------------------------------------------------------------------------
# load_numpy on real MNIST


def test_full_train_split_shapes_range_and_label_counts(mnist_train):
    x, y = mnist_train
    assert x.shape == (60000, 784) and x.dtype == np.float32
    assert y.shape == (60000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == TRAIN_COUNTS


def test_train_pixels_are_the_idx_files_divided_by_255(mnist_train, mnist_manual_dir):
    x, _ = mnist_train
    raw = _read_idx_images(pathlib.Path(mnist_manual_dir) / "train-images-idx3-ubyte.gz")
    head = x[:1000] * 255.0
    np.testing.assert_allclose(head, np.round(head), atol=1e-3)  # grey levels k / 255
    # TFDS reorders examples, so compare the multisets of per-image sums.
    sums = np.round(x.sum(axis=1, dtype=np.float64) * 255.0).astype(np.int64)
    np.testing.assert_array_equal(np.sort(sums), np.sort(raw.sum(axis=1, dtype=np.int64)))


def test_test_split_label_counts(mnist_test):
    x, y = mnist_test
    assert x.shape == (10000, 784)
    assert np.bincount(y, minlength=10).tolist() == TEST_COUNTS


def test_limit_takes_the_first_examples(load, mnist_test):
    x_test, y_test = mnist_test
    x, y = load.numpy("test", limit=100)
    np.testing.assert_array_equal(x, x_test[:100])
    np.testing.assert_array_equal(y, y_test[:100])
    # An already sliced split cannot be sliced again by name: limit cuts it.
    x, y = load.numpy("test[:50%]", limit=7)
    np.testing.assert_array_equal(x, x_test[:7])
    # A limit beyond the split takes all of it, as a slice of a list would.
    x, y = load.numpy("test", limit=10_001)
    np.testing.assert_array_equal(x, x_test)
    x, y = load.numpy("test[:50%]", limit=5_001)
    np.testing.assert_array_equal(x, x_test[:5000])


def test_image_shape_from_the_dataset_description(tmp_path):
    # Read from TFDS's description: no data, no network.
    assert datasets.image_shape("mnist", data_dir=str(tmp_path)) == (28, 28, 1)
    assert datasets.image_shape("cifar10", data_dir=str(tmp_path)) == (32, 32, 3)
    with pytest.raises(ValueError, match="supervised keys"):
        datasets.image_shape("imdb_reviews", data_dir=str(tmp_path))


def test_threshold_binarisation(load, mnist_test):
    x_grey, _ = mnist_test
    x, _ = load.numpy(binarize="threshold", limit=500)
    assert set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_array_equal(x, (x_grey[:500] > 0.5).astype(np.float32))
    x_low, _ = load.numpy(binarize="threshold", threshold=0.1, limit=500)
    assert x_low.sum() > x.sum()


def test_stochastic_binarisation_is_seeded_and_unbiased(load, mnist_test):
    x_grey = mnist_test[0][:1000]
    a, _ = load.numpy(binarize="stochastic", seed=3, limit=1000)
    b, _ = load.numpy(binarize="stochastic", seed=3, limit=1000)
    c, _ = load.numpy(binarize="stochastic", seed=4, limit=1000)
    assert set(np.unique(a)) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    # 784k Bernoulli draws: the standard error of the mean is about 3e-4.
    assert abs(a.mean() - x_grey.mean()) < 3e-3
    # Pixels that are 0 or 1 in grey level are never flipped.
    np.testing.assert_array_equal(a[x_grey == 0.0], 0.0)
    np.testing.assert_array_equal(a[x_grey == 1.0], 1.0)


def test_bfloat16_images_are_the_float32_ones_rounded(load, mnist_test):
    x_grey = mnist_test[0][:500]
    x16, y16 = load.numpy(limit=500, dtype="bfloat16")
    assert array_input.is_bfloat16(x16.dtype) and array_input.is_aligned(x16)
    import tensorflow as tf

    # TensorFlow's name for it too.
    np.testing.assert_array_equal(load.numpy(limit=500, dtype=tf.bfloat16)[0], x16)
    np.testing.assert_array_equal(y16, mnist_test[1][:500])
    # Grey levels k / 255 rounded to nearest: within half a bfloat16 step.
    np.testing.assert_array_equal(x16, x_grey.astype(x16.dtype))
    error = np.abs(x16.astype(np.float32) - x_grey)
    assert 0 < error.max() <= 2.0**-9
    # Binarised images are exact, both ways of binarising.
    for kwargs in (dict(binarize="threshold"), dict(binarize="stochastic", seed=3)):
        x16, _ = load.numpy(limit=500, dtype="bfloat16", **kwargs)
        x32, _ = load.numpy(limit=500, **kwargs)
        np.testing.assert_array_equal(x16.astype(np.float32), x32)


# ----------------------------------------------------------------------------
# load_dataset


def test_load_dataset_without_shuffle_matches_load_numpy(load, mnist_test):
    ds = load.dataset(batch_size=256, shuffle=False)
    assert ds.element_spec[0].shape.as_list() == [None, 784]
    batches = _batches(ds)
    assert [b[0].shape for b in batches[:2]] == [(256, 784)] * 2
    assert batches[-1][0].shape == (10000 % 256, 784)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), mnist_test[0])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), mnist_test[1])


def test_load_dataset_runs_without_autotuning_and_cached_on_one_thread(load):
    import tensorflow as tf

    ds = load.dataset(batch_size=500, shuffle=False, labels=False)
    threading = ds.options().threading
    assert threading.private_threadpool_size == 1
    assert threading.max_intra_op_parallelism == 1
    assert ds.options().autotune.enabled is False
    wider = tf.data.Options()
    wider.threading.private_threadpool_size = 4
    wider.autotune.enabled = True
    widened = ds.with_options(wider)
    assert widened.options().threading.private_threadpool_size == 4
    assert widened.options().autotune.enabled is True
    np.testing.assert_array_equal(next(iter(widened)).numpy(), next(iter(ds)).numpy())
    # Without our cache an epoch may decode the images again: tf.data's own
    # threading, without the autotuning thread that may stall each epoch's end.
    uncached = load.dataset(batch_size=500, shuffle=False, labels=False, cache=False).options()
    assert uncached.threading.private_threadpool_size is None
    assert uncached.autotune.enabled is False


def test_load_dataset_shuffles_each_epoch_reproducibly(load):
    ds = load.dataset(batch_size=500, seed=7)
    epoch1, epoch2 = _batches(ds), _batches(ds)
    again = _batches(load.dataset(batch_size=500, seed=7))
    labels1 = np.concatenate([b[1] for b in epoch1])
    assert np.bincount(labels1).tolist() == TEST_COUNTS
    assert not np.array_equal(labels1, np.concatenate([b[1] for b in epoch2]))
    for b1, b_again in zip(epoch1, again):
        np.testing.assert_array_equal(b1[0], b_again[0])


def test_load_dataset_stochastic_binarisation_without_labels(load, mnist_test):
    kwargs = dict(batch_size=1000, shuffle=False, binarize="stochastic", labels=False, seed=1)
    ds = load.dataset(**kwargs)
    assert ds.element_spec.shape.as_list() == [None, 784]
    first = next(iter(ds))
    assert first.shape == (1000, 784)  # x alone, no label tuple
    x1, x2 = first.numpy(), next(iter(ds)).numpy()
    assert set(np.unique(x1)) == {0.0, 1.0}
    assert (x1 != x2).any()  # fresh samples every epoch
    np.testing.assert_array_equal(x1, next(iter(load.dataset(**kwargs))).numpy())
    assert abs(x1.mean() - mnist_test[0][:1000].mean()) < 3e-3


def test_load_dataset_threshold(load, mnist_test):
    ds = load.dataset(
        batch_size=300, shuffle=False, binarize="threshold", threshold=0.2, cache=False
    )
    x, _ = next(iter(ds))
    np.testing.assert_array_equal(x.numpy(), (mnist_test[0][:300] > 0.2).astype(np.float32))


@pytest.mark.parametrize("binarize", [None, "threshold", "stochastic"])
@pytest.mark.parametrize("labels", [True, False])
def test_load_dataset_shows_its_batch_size_to_rbm_fit(load, binarize, labels):
    from keras_dbn import RBM, array_input
    from keras_dbn import rbm as rbm_module

    ds = load.dataset(batch_size=128, binarize=binarize, labels=labels, seed=0)
    spec = ds.element_spec[0] if labels else ds.element_spec
    assert spec.shape.as_list() == [None, 784]  # 10,000 rows: a last batch of 16
    assert array_input.batch_rows(ds) == 128
    rbm = RBM(500, k=10)
    rbm.compile()
    # CD-10 at 128 x 784 x 500 lies in the chain route's window.
    assert rbm_module._input_route(rbm, ds, None) == ("xla_chain", 128)


# ----------------------------------------------------------------------------
# Other datasets, through mocked TFDS


def test_fashion_mnist_through_mocked_tfds():
    with tfds.testing.mock_data(num_examples=40):
        x, y = datasets.load_numpy("fashion_mnist", "train", binarize="threshold")
        assert datasets.load_numpy("fashion_mnist", "train", limit=30)[0].shape == (30, 784)
        xb, yb = next(iter(datasets.load_dataset("fashion_mnist", "test", batch_size=16, seed=0)))
    assert x.shape == (40, 784) and x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() < 10
    assert xb.shape == (16, 784) and yb.shape == (16,)
    assert 0.0 <= float(np.min(xb)) and float(np.max(xb)) <= 1.0


# ----------------------------------------------------------------------------
# Errors


def test_unknown_dataset_name_raises(tmp_path):
    with pytest.raises(ValueError, match="Unknown TFDS dataset 'no_such_dataset'"):
        datasets.load_numpy("no_such_dataset", data_dir=str(tmp_path))
    # A version TFDS does not have: its AssertionError, not the documented ValueError.
    with pytest.raises(ValueError, match=r"TFDS cannot load 'mnist:9.9.9': .*9\.9\.9"):
        datasets.load_numpy("mnist:9.9.9", data_dir=str(tmp_path))


def test_non_image_dataset_raises(tmp_path):
    with pytest.raises(ValueError, match="supervised keys"):
        datasets.load_numpy("imdb_reviews", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(binarize="otsu"), "binarize must be one of"),
        (dict(binarize=True), "binarize must be one of"),
        (dict(binarize="threshold", threshold=1.5), "threshold must be"),
        (dict(threshold=0.3), r"threshold=0.3 applies only with binarize='threshold' \(got binarize=None"),
        (dict(binarize="stochastic", threshold=0.3), "applies only with binarize='threshold'"),
        (dict(limit=0), "limit must be a positive int"),
        (dict(dtype="float16"), "dtype must be 'float32' or 'bfloat16'"),
        (dict(dtype="bf16"), "dtype must be 'float32' or 'bfloat16', got 'bf16'"),
        (dict(split=["train", "test"]), r"split must be a TFDS split name .* got \['train', 'test'\]"),
        (dict(split=" "), "split must be a TFDS split name"),
    ],
)
def test_bad_arguments_raise(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        datasets.load_numpy("mnist", data_dir=str(tmp_path), **kwargs)


def test_bad_batch_size_raises(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        datasets.load_dataset("mnist", batch_size=0, data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="applies only with binarize='threshold'"):
        datasets.load_dataset("mnist", threshold=0.3, data_dir=str(tmp_path))


def test_manual_dir_without_source_files_raises_at_once(tmp_path):
    empty = tmp_path / "manual"
    empty.mkdir()
    match = f"manual directory {re.escape(str(empty))}.*train-images-idx3-ubyte.gz"
    with pytest.raises(FileNotFoundError, match=match):
        datasets.load_numpy("fashion_mnist", data_dir=str(tmp_path / "data"), manual_dir=str(empty))


def test_failed_download_names_manual_dir(tmp_path, monkeypatch):
    def offline(self, *args, **kwargs):
        raise requests.exceptions.ConnectionError("no network")

    # Every download of the DownloadManager goes through _download.
    monkeypatch.setattr(tfds.download.DownloadManager, "_download", offline)
    with pytest.raises(FileNotFoundError, match="could not be downloaded.*manual_dir"):
        datasets.load_numpy("fashion_mnist", data_dir=str(tmp_path))


def test_an_unresolvable_download_host_fails_at_once(tmp_path, monkeypatch):
    """Without a network, TFDS would retry each download for minutes."""
    import socket

    looked_up = []

    def no_dns(host, *args, **kwargs):
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def download(self, *args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(tfds.download.DownloadManager, "_download", download)
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY", "https_proxy",
                 "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    match = ("could not be downloaded \\(its download host '[^']+' does not resolve: no "
             "network\\?\\).*manual_dir")
    with pytest.raises(FileNotFoundError, match=match):
        datasets.load_numpy("fashion_mnist", data_dir=str(tmp_path))
    assert looked_up
    # Through a proxy the host is the proxy's to resolve: the download runs.
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    with pytest.raises(AssertionError, match="a download was attempted"):
        datasets.load_numpy("fashion_mnist", data_dir=str(tmp_path))


def test_wrong_source_files_in_manual_dir_raise_a_value_error(mnist_manual_dir, tmp_path,
                                                             monkeypatch):
    """MNIST's files bear Fashion-MNIST's names but not its checksums: a one-line
    ValueError naming the dataset and the folder, not TFDS's own error."""
    def offline(self, *args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(tfds.download.DownloadManager, "_download", offline)
    match = ("source files of dataset 'fashion_mnist' in manual_dir "
             f"'{re.escape(mnist_manual_dir)}' do not match its expected checksums "
             r"\([\w-]+-ubyte\.gz first\); check that the folder holds "
             "fashion_mnist's original files")
    with pytest.raises(ValueError, match=match) as error:
        datasets.load_numpy("fashion_mnist", data_dir=str(tmp_path), manual_dir=mnist_manual_dir)
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------
# stratified_subset


def test_stratified_subset_is_balanced_and_reproducible(mnist_train):
    x, y = mnist_train
    x_sub, y_sub = datasets.stratified_subset(x, y, 100, seed=0)
    assert x_sub.shape == (100, 784)
    assert np.bincount(y_sub).tolist() == [10] * 10
    x_again, y_again = datasets.stratified_subset(x, y, 100, seed=0)
    np.testing.assert_array_equal(x_sub, x_again)
    np.testing.assert_array_equal(y_sub, y_again)
    x_other, _ = datasets.stratified_subset(x, y, 100, seed=1)
    assert not np.array_equal(x_sub, x_other)


def test_stratified_subset_keeps_rows_paired_and_spreads_the_remainder(mnist_train):
    _, y = mnist_train
    index = np.arange(len(y))
    idx_sub, y_sub = datasets.stratified_subset(index, y, 105, seed=2)
    np.testing.assert_array_equal(y[idx_sub], y_sub)
    assert len(np.unique(idx_sub)) == 105
    assert sorted(np.bincount(y_sub).tolist()) == [10] * 5 + [11] * 5


def test_stratified_subset_small_class_gives_its_share_away():
    y = np.array([0] * 2 + [1] * 50 + [2] * 50)
    _, y_sub = datasets.stratified_subset(np.arange(len(y)), y, 30, seed=0)
    assert np.bincount(y_sub).tolist() == [2, 14, 14]


@pytest.mark.parametrize("num_labels", [9, 1001, 0])
def test_stratified_subset_bad_size_raises(num_labels):
    y = np.arange(1000) % 10
    with pytest.raises(ValueError, match="num_labels"):
        datasets.stratified_subset(np.zeros((1000, 3)), y, num_labels)


def test_stratified_subset_length_mismatch_raises():
    with pytest.raises(ValueError, match="same number of examples"):
        datasets.stratified_subset(np.zeros((10, 3)), np.arange(9) % 3, 3)


# ----------------------------------------------------------------------------
# train_validation_split


@pytest.mark.parametrize("validation_size, n_val", [(0.1, 6000), (5000, 5000)])
def test_train_validation_split_sizes_and_strata(mnist_train, validation_size, n_val):
    _, y = mnist_train
    index = np.arange(len(y))
    i_tr, y_tr, i_val, y_val = datasets.train_validation_split(index, y, validation_size, seed=0)
    assert len(i_val) == n_val and len(i_tr) == 60000 - n_val
    np.testing.assert_array_equal(np.sort(np.concatenate([i_tr, i_val])), index)
    np.testing.assert_array_equal(y[i_val], y_val)
    expected = np.array(TRAIN_COUNTS) * n_val / 60000
    assert np.abs(np.bincount(y_val) - expected).max() < 1.0


def test_train_validation_split_unstratified_and_seeded():
    x = np.arange(100)
    y = np.repeat([0, 1], [90, 10])
    a = datasets.train_validation_split(x, y, 20, seed=5, stratify=False)
    b = datasets.train_validation_split(x, y, 20, seed=5, stratify=False)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert len(a[2]) == 20 and len(np.intersect1d(a[0], a[2])) == 0
    strat = datasets.train_validation_split(x, y, 20, seed=5)
    assert np.bincount(strat[3]).tolist() == [18, 2]


def test_train_validation_split_gives_tied_classes_the_leftovers_by_seed():
    """Balanced classes' leftover validation examples went to the lowest
    classes whatever the seed ([0 1 2 3 4] of 10 classes, 5 examples)."""
    y = np.repeat(np.arange(10), 10)
    drawn = set()
    for seed in range(8):
        y_val = datasets.train_validation_split(np.arange(100), y, 5, seed=seed)[3]
        assert np.bincount(y_val, minlength=10).max() == 1 and len(y_val) == 5
        drawn.add(tuple(np.sort(y_val)))
        again = datasets.train_validation_split(np.arange(100), y, 5, seed=seed)[3]
        np.testing.assert_array_equal(y_val, again)
    assert len(drawn) > 4
    # Ties that float shares hide: 2/3, 2/3 and 5/3 of one each, and two
    # left (5 * (3 / 9) rounds one ulp low, so class 2 never got one).
    y = np.repeat([0, 1, 2], [2, 2, 5])
    counts = {tuple(np.bincount(datasets.train_validation_split(np.arange(9), y, 3, seed=s)[3],
                                minlength=3)) for s in range(40)}
    assert counts == {(1, 1, 1), (1, 0, 2), (0, 1, 2)}
    # Remainders that differ still decide: 18 and 2 of 90 and 10.
    assert np.bincount(datasets.train_validation_split(
        np.arange(100), np.repeat([0, 1], [90, 10]), 20, seed=1)[3]).tolist() == [18, 2]


@pytest.mark.parametrize("validation_size", [0, 100, 1.0, 0.0, -0.2, 0.001, True, "10"])
def test_train_validation_split_bad_size_raises(validation_size):
    with pytest.raises(ValueError, match="validation_size"):
        datasets.train_validation_split(np.zeros((100, 2)), np.arange(100) % 2, validation_size)


def test_train_validation_split_errors_use_the_given_name():
    with pytest.raises(ValueError, match="^--validation=500 gives 500 validation examples out "
                                         "of 100; both sets must be non-empty"):
        datasets.train_validation_split(np.zeros((100, 2)), np.arange(100) % 2, 500,
                                        name="--validation")


@pytest.mark.parametrize("split", ["train[5:5]", "test[10000:]"])
def test_an_empty_slice_of_a_split_says_so(split, load):
    for loader in (load.numpy, load.dataset):
        with pytest.raises(ValueError, match=r"Split '.*' of 'mnist' holds no examples\."):
            loader(split)
