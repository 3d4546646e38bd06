"""Partition functions, likelihoods and image grids against direct computation."""

import glob
import math
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dbn
from keras_dbn import evaluation
from keras_dbn.callbacks import ImageGridCallback, image_grid, save_image_grid

from brute_force import all_states, make_rbm, params

# ------------------------------------------------------------------ helpers


def logsumexp(x, axis=None):
    top = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(top + np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)), axis=axis)


def brute_log_p(rbm):
    """log p(v) of every visible state, by enumerating every joint (v, h)."""
    w, b, c = params(rbm)
    v, h = all_states(w.shape[0]), all_states(w.shape[1])
    neg_energy = (v @ b)[:, None] + (h @ c)[None, :] + v @ w @ h.T
    log_unnormalised = logsumexp(neg_energy, axis=1)
    return v, log_unnormalised - logsumexp(neg_energy)


def numpy_free_energy(rbm, v):
    w, b, c = params(rbm)
    return -v @ b - np.logaddexp(0.0, v @ w + c).sum(axis=1)


def softplus(x):
    return np.logaddexp(0.0, x)


# ------------------------------------------------------ exact partition


def test_exact_log_partition_matches_joint_enumeration():
    rbm = make_rbm(6, 4, seed=1)
    w, b, c = params(rbm)
    v, h = all_states(6), all_states(4)
    neg_energy = (v @ b)[:, None] + (h @ c)[None, :] + v @ w @ h.T
    expected = logsumexp(neg_energy)
    assert evaluation.exact_log_partition(rbm) == pytest.approx(expected, abs=1e-10)
    for layer in ("visible", "hidden"):
        got = evaluation.exact_log_partition(rbm, enumerate_layer=layer, chunk_size=5)
        assert got == pytest.approx(expected, abs=1e-10)


def test_exact_log_partition_zero_weights_closed_form():
    rbm = make_rbm(7, 5, seed=2)
    rbm.kernel.assign(np.zeros((7, 5)))
    _, b, c = params(rbm)
    expected = softplus(b).sum() + softplus(c).sum()
    assert evaluation.exact_log_partition(rbm) == pytest.approx(expected, abs=1e-10)

    # Gaussian visible: integral of exp(-(v - b)^2 / 2) is sqrt(2 pi) per unit.
    gauss = make_rbm(7, 5, seed=2, visible="gaussian")
    gauss.kernel.assign(np.zeros((7, 5)))
    _, _, c = params(gauss)
    expected = 3.5 * math.log(2 * math.pi) + softplus(c).sum()
    assert evaluation.exact_log_partition(gauss) == pytest.approx(expected, abs=1e-10)


def test_exact_log_partition_gaussian_visible_matches_quadrature():
    rbm = make_rbm(2, 3, scale=0.7, seed=3, visible="gaussian")
    w, b, c = params(rbm)
    grid = np.linspace(-14.0, 14.0, 1401)
    step = grid[1] - grid[0]
    v = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    h = all_states(3)
    neg_energy = (
        -0.5 * ((v - b) ** 2).sum(axis=1)[:, None] + (h @ c)[None, :] + v @ w @ h.T
    )
    expected = logsumexp(neg_energy) + 2 * math.log(step)
    assert evaluation.exact_log_partition(rbm) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="not binary"):
        evaluation.exact_log_partition(rbm, enumerate_layer="visible")


def test_exact_log_partition_refuses_large_layers():
    rbm = make_rbm(30, 25)
    with pytest.raises(ValueError, match="ais_log_partition"):
        evaluation.exact_log_partition(rbm)
    assert np.isfinite(evaluation.exact_log_partition(make_rbm(30, 8), max_units=8))


# ------------------------------------------------------------------- AIS

# With M chains the returned interval is log(Z_hat -/+ 3 std(w) / sqrt(M)),
# so by the delta method its half-width is about 3 standard errors of
# log Z_hat: a correct estimator contains the exact value with probability
# ~0.997 per run. The runs below use fixed seeds, so each is reproducible.
# The interval must also be narrow (< 0.5 nats), so that containment is a
# real check rather than a consequence of a huge variance.


@pytest.mark.parametrize(
    "num_hidden, scale, seed, with_data",
    [(10, 0.5, 0, False), (15, 1.0, 1, False), (12, 1.0, 2, True)],
)
def test_ais_brackets_exact_log_partition(num_hidden, scale, seed, with_data):
    rbm = make_rbm(20, num_hidden, scale=scale, seed=seed)
    exact = evaluation.exact_log_partition(rbm)
    data = None
    if with_data:
        data = (np.random.default_rng(seed).random((500, 20)) < 0.3).astype("float32")
    result = evaluation.ais_log_partition(
        rbm, num_chains=200, betas=evaluation.paper_betas(1000), data=data, seed=seed
    )
    assert result.log_z_low <= exact <= result.log_z_high
    assert result.log_z_high - result.log_z_low < 0.5
    assert abs(result.log_z - exact) <= result.log_z_high - result.log_z_low


def test_ais_is_reproducible_and_reports_details():
    rbm = make_rbm(20, 10, scale=0.5, seed=4)
    betas = np.linspace(0.0, 1.0, 201)
    first = evaluation.ais_log_partition(rbm, num_chains=50, betas=betas, seed=7, return_details=True)
    again = evaluation.ais_log_partition(rbm, num_chains=50, betas=betas, seed=7, return_details=True)
    other = evaluation.ais_log_partition(rbm, num_chains=50, betas=betas, seed=8)
    np.testing.assert_array_equal(first.log_weights, again.log_weights)
    assert first.log_z != other.log_z
    assert first.log_weights.shape == (50,)
    assert first.samples.shape == (50, 20)
    assert set(np.unique(first.samples)) <= {0.0, 1.0}
    assert first.log_z == pytest.approx(
        first.log_z_base + logsumexp(first.log_weights) - math.log(50), abs=1e-9
    )
    assert first.log_z_low < first.log_z < first.log_z_high


def test_base_rate_data_may_be_a_list_of_batches_but_not_single_examples():
    import tensorflow as tf

    from keras_dbn.rbm import visible_mean

    x = (np.random.default_rng(3).random((150, 20)) < 0.3).astype("float32")
    np.testing.assert_allclose(visible_mean([x[:100], x[100:]]), visible_mean(x))
    np.testing.assert_allclose(visible_mean([(x[:50], None), (x[50:], None)]), visible_mean(x))
    np.testing.assert_allclose(visible_mean(list(x)), visible_mean(x))  # a list of rows
    with pytest.raises(ValueError, match="not a batch of examples: batch it first"):
        visible_mean(tf.data.Dataset.from_tensor_slices(x))
    rbm = make_rbm(20, 10, scale=0.5, seed=4)
    kwargs = dict(num_chains=10, betas=np.linspace(0.0, 1.0, 21), seed=0)
    assert (evaluation.ais_log_partition(rbm, data=[x[:100], x[100:]], **kwargs).log_z
            == evaluation.ais_log_partition(rbm, data=x, **kwargs).log_z)


def test_ais_needs_two_chains_for_its_interval():
    # One chain's interval had zero width however far its estimate was off.
    rbm = make_rbm(20, 10, scale=0.5, seed=4)
    with pytest.raises(ValueError, match="`num_chains` must be an integer >= 2"):
        evaluation.ais_log_partition(rbm, num_chains=1, betas=np.linspace(0.0, 1.0, 11))
    with pytest.raises(ValueError,
                       match=r"`seed` must be None or an integer in \[0, 2\*\*31\), got 1.7"):
        evaluation.ais_log_partition(rbm, betas=np.linspace(0.0, 1.0, 11), seed=1.7)
    with pytest.warns(UserWarning, match="no lower end"):  # two weights spread widely
        two = evaluation.ais_log_partition(rbm, num_chains=2, betas=np.linspace(0.0, 1.0, 11),
                                           seed=0)
    assert two.log_z_low < two.log_z < two.log_z_high


def test_ais_base_rate_from_array_or_dataset():
    rbm = make_rbm(20, 10, scale=0.5, seed=11)
    data = (np.random.default_rng(11).random((300, 20)) < 0.3).astype("float32")
    kwargs = dict(num_chains=20, betas=np.linspace(0, 1, 51), seed=3)
    from_array = evaluation.ais_log_partition(rbm, data=data, **kwargs)
    dataset = tf.data.Dataset.from_tensor_slices((data, np.zeros(300))).batch(64)
    from_dataset = evaluation.ais_log_partition(rbm, data=dataset, **kwargs)
    from_rate = evaluation.ais_log_partition(rbm, base_rate=data.mean(axis=0), **kwargs)
    assert from_dataset.log_z == pytest.approx(from_array.log_z, abs=1e-6)
    assert from_rate.log_z == pytest.approx(from_array.log_z, abs=1e-6)
    p = np.clip(data.mean(axis=0), 1e-3, 1 - 1e-3)
    assert from_array.log_z_base == pytest.approx(
        softplus(np.log(p / (1 - p))).sum() + 10 * math.log(2), abs=1e-6
    )


def test_ais_warns_where_its_interval_has_no_lower_end():
    """A 784x12 RBM at a tenth of the paper's schedule, without data, gave
    intervals 2.3-2.7 nats below the exact log Z, their lower end -inf and
    no word; `log_likelihood` passed the figure on as it was."""
    rbm = make_rbm(20, 10, scale=3.0, seed=2)
    exact = evaluation.exact_log_partition(rbm)
    short = dict(num_chains=20, betas=np.linspace(0.0, 1.0, 3), seed=0)
    with pytest.warns(UserWarning, match="no lower end") as record:
        result = evaluation.ais_log_partition(rbm, **short)
    assert result.log_z_low == -np.inf and result.log_z_high < exact  # off, as warned
    assert [w.filename for w in record] == [__file__]
    x = (np.random.default_rng(2).random((30, 20)) < 0.5).astype("float32")
    with pytest.warns(UserWarning, match="no lower end"):
        evaluation.log_likelihood(rbm, x, **short)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        good = evaluation.ais_log_partition(make_rbm(20, 10, scale=0.5, seed=4), num_chains=50,
                                            betas=np.linspace(0.0, 1.0, 201), seed=7)
    assert math.isfinite(good.log_z_low)


def test_data_read_for_its_mean_must_end():
    """An endless dataset as AIS's `data` or `initialize_visible_bias`'s
    input was read forever; `log_likelihood` refused the same one."""
    rbm = make_rbm(6, 4, seed=0)
    x = (np.random.default_rng(0).random((10, 6)) < 0.5).astype("float32")
    endless = tf.data.Dataset.from_tensor_slices(x).batch(5).repeat()
    with pytest.raises(ValueError, match="never ends"):
        evaluation.ais_log_partition(rbm, data=endless, betas=[0.0, 1.0], seed=0)
    with pytest.raises(ValueError, match="never ends"):
        rbm.initialize_visible_bias(endless)
    with pytest.raises(TypeError, match="not a tf.data.Dataset"):
        rbm.gibbs(tf.data.Dataset.from_tensor_slices(x).batch(5))


def test_ais_zero_weights_is_exact():
    # With W = 0 and the base rate equal to the model's visible biases every
    # intermediate distribution is the same up to a constant: all importance
    # weights are equal and the estimate is exact.
    rbm = make_rbm(20, 10, seed=5)
    rbm.kernel.assign(np.zeros((20, 10)))
    p = np.random.default_rng(5).uniform(0.05, 0.95, 20)
    rbm.visible_bias.assign(np.log(p) - np.log1p(-p))
    _, b, c = params(rbm)
    expected = softplus(b).sum() + softplus(c).sum()
    result = evaluation.ais_log_partition(
        rbm, num_chains=20, betas=np.linspace(0, 1, 101), base_rate=p, seed=0, return_details=True
    )
    assert result.log_z == pytest.approx(expected, abs=1e-5)
    assert result.log_z_high - result.log_z_low < 1e-5
    assert np.ptp(result.log_weights) < 1e-5


def test_ais_gaussian_visible_brackets_exact():
    rbm = make_rbm(20, 10, scale=0.3, seed=6, visible="gaussian")
    exact = evaluation.exact_log_partition(rbm)
    data = np.random.default_rng(6).normal(0.0, 1.0, (500, 20)) + params(rbm)[1]
    result = evaluation.ais_log_partition(
        rbm, num_chains=200, betas=evaluation.paper_betas(1000), data=data, seed=6
    )
    assert result.log_z_low <= exact <= result.log_z_high
    assert result.log_z_high - result.log_z_low < 0.5


def test_ais_argument_errors():
    with pytest.raises(ValueError, match="Bernoulli hidden"):
        evaluation.ais_log_partition(make_rbm(4, 3, hidden="gaussian"))
    with pytest.raises(ValueError, match="betas"):
        evaluation.ais_log_partition(make_rbm(4, 3), betas=[0.0, 0.5])
    with pytest.raises(ValueError, match="betas"):
        evaluation.ais_log_partition(make_rbm(4, 3), betas=[0.0, np.nan, 1.0])
    rbm, betas = make_rbm(4, 3), np.linspace(0, 1, 5)
    with pytest.raises(ValueError, match=r"in \[0, 1\] \(got values in \[255.0, 255.0\]\)"):
        evaluation.ais_log_partition(rbm, betas=betas, data=np.full((3, 4), 255.0))
    # Values outside [0, 1] whose column means lie inside it: refused as `fit` refuses them.
    outside = np.array([[-1.0, 2.0, 0.0, 1.0], [2.0, -1.0, 1.0, 0.0]], "float32")
    for given in (outside, tf.constant(outside), list(outside), [outside[:1], outside[1:]],
                  (batch for batch in [outside]),
                  tf.data.Dataset.from_tensor_slices(outside).batch(2)):
        with pytest.raises(ValueError, match=r"got values in \[-1.0, 2.0\]"):
            evaluation.ais_log_partition(rbm, betas=betas, data=given)
    with pytest.raises(ValueError, match=r"base rate in \[0, 1\]"):
        evaluation.ais_log_partition(rbm, betas=betas, base_rate=1.5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluation.ais_log_partition(rbm, betas=betas, base_rate=[0.5, np.nan, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"one rate per visible unit \(4\), got shape \(3,\)"):
        evaluation.ais_log_partition(rbm, betas=betas, base_rate=[0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    "evaluate",
    [lambda rbm, x: evaluation.log_likelihood(rbm, x, log_z=0.0),
     lambda rbm, x: evaluation.pseudo_likelihood(rbm, x, seed=0),
     lambda rbm, x: evaluation.pseudo_likelihood(rbm, x, all_bits=True)],
)
def test_likelihoods_check_the_data_as_fit_does(evaluate):
    rbm = make_rbm(4, 3)
    images = np.zeros((3, 2, 2))
    assert np.all(np.isfinite(evaluate(rbm, images)))
    with pytest.raises(ValueError, match=r"in \[0, 1\] \(got values in \[255.0, 255.0\]\)"):
        evaluate(rbm, images + 255.0)
    images[1, 0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate(rbm, images)
    with pytest.raises(ValueError, match="no examples"):
        evaluate(rbm, np.zeros((0, 4)))


def test_log_likelihood_refuses_a_log_z_that_is_not_finite_and_ais_options_beside_one():
    rbm = make_rbm(4, 3)
    with pytest.raises(ValueError, match="`log_z` must be a finite number"):
        evaluation.log_likelihood(rbm, np.zeros((2, 4)), log_z=float("inf"))
    with pytest.raises(ValueError, match=r"AIS options \(seed\) have no effect"):
        evaluation.log_likelihood(rbm, np.zeros((2, 4)), log_z=0.0, seed=1)
    dbn = keras_dbn.DBN([rbm])
    with pytest.raises(ValueError, match=r"AIS options \(data\) have no effect"):
        evaluation.dbn_log_likelihood_bound(dbn, np.zeros((2, 4)), log_z=0.0, data=np.zeros((2, 4)))


def test_log_z_may_be_an_ais_result_but_not_an_array():
    rbm = make_rbm(4, 3)
    x = np.zeros((2, 4))
    result = evaluation.ais_log_partition(rbm, num_chains=4, betas=np.linspace(0, 1, 5), seed=0)
    assert evaluation.log_likelihood(rbm, x, log_z=result) == evaluation.log_likelihood(
        rbm, x, log_z=result.log_z)
    dbn = keras_dbn.DBN([rbm])
    assert evaluation.dbn_log_likelihood_bound(dbn, x, log_z=result) == pytest.approx(
        evaluation.dbn_log_likelihood_bound(dbn, x, log_z=result.log_z), abs=1e-12)
    assert evaluation.log_likelihood(rbm, x, log_z=np.float32(1.5)) == pytest.approx(
        evaluation.log_likelihood(rbm, x, log_z=1.5))
    for log_z in (np.array([1.0]), "1.0", True):
        with pytest.raises(ValueError, match="`log_z` must be a finite number or an AISResult"):
            evaluation.log_likelihood(rbm, x, log_z=log_z)


def test_wrongly_typed_arguments_get_clear_errors():
    rbm = make_rbm(4, 3)
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match="`num_steps` must be an integer >= 3, got 5.5"):
        evaluation.paper_betas(5.5)
    with pytest.raises(ValueError, match="`max_units` must be an integer >= 1, got '20'"):
        evaluation.exact_log_partition(rbm, max_units="20")
    for seed in (1.5, np.random.default_rng(0)):
        with pytest.raises(ValueError, match="`seed` must be None, an integer or a np.random"):
            evaluation.pseudo_likelihood(rbm, x, seed=seed)
    rng = np.random.RandomState(0)
    assert evaluation.pseudo_likelihood(rbm, x, seed=rng).shape == (2,)
    with pytest.raises(TypeError, match="takes a keras_dbn.DBN, got RBM; for an RBM use "
                                        "log_likelihood"):
        evaluation.dbn_log_likelihood_bound(rbm, x, log_z=0.0)
    dbn = keras_dbn.DBN([rbm])
    for name, call in (("exact_log_partition", lambda m: evaluation.exact_log_partition(m)),
                       ("ais_log_partition", lambda m: evaluation.ais_log_partition(m)),
                       ("log_likelihood", lambda m: evaluation.log_likelihood(m, x, log_z=0.0)),
                       ("pseudo_likelihood", lambda m: evaluation.pseudo_likelihood(m, x))):
        with pytest.raises(TypeError, match=f"{name} takes one keras_dbn.RBM, got a DBN.*"
                                            "dbn.rbms.*dbn_log_likelihood_bound"):
            call(dbn)
        with pytest.raises(TypeError, match=f"{name} takes a keras_dbn.RBM, got str"):
            call("rbm")
    # AIS seeds are those of every keras_dbn sampler: [0, 2**31), none folded onto another.
    for seed in (-1, 2**31):
        with pytest.raises(ValueError,
                           match=r"`seed` must be None or an integer in \[0, 2\*\*31\)"):
            evaluation.ais_log_partition(rbm, betas=evaluation.paper_betas(10), num_chains=4,
                                         seed=seed)
    estimates = {evaluation.ais_log_partition(rbm, betas=evaluation.paper_betas(10),
                                              num_chains=4, seed=seed).log_z
                 for seed in (0, 2**31 - 1)}
    assert len(estimates) == 2


def test_the_bound_of_a_dbn_of_trained_rbms_checks_that_their_widths_chain():
    below, top = make_rbm(4, 3), make_rbm(5, 2)  # top reads 5 units, below gives 3
    with pytest.raises(ValueError, match="expects 5 inputs but the layer below gives 3"):
        evaluation.dbn_log_likelihood_bound(keras_dbn.DBN([below, top]), np.zeros((2, 4)),
                                            log_z=0.0)


def test_chunk_and_batch_sizes_must_be_positive():
    rbm = make_rbm(4, 3)
    with pytest.raises(ValueError, match="`chunk_size` must be an integer >= 1"):
        evaluation.exact_log_partition(rbm, chunk_size=0)
    for all_bits in (True, False):
        for batch_size in (0, "junk"):
            with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1"):
                evaluation.pseudo_likelihood(rbm, np.zeros((2, 4)), all_bits=all_bits,
                                             batch_size=batch_size)
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1"):
        evaluation.dbn_log_likelihood_bound(keras_dbn.DBN([rbm]), np.zeros((2, 4)), log_z=0.0,
                                            batch_size=0)


def test_sample_class_mix_needs_a_probability_per_class():
    import keras

    one_column = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    with pytest.raises(ValueError, match="at least two columns"):
        evaluation.sample_class_mix(one_column, np.zeros((5, 4)))


def test_paper_betas_schedule():
    betas = evaluation.paper_betas()
    assert betas.shape == (14501,)
    assert betas[0] == 0.0 and betas[-1] == 1.0 and np.all(np.diff(betas) > 0)
    steps = np.diff(betas)
    np.testing.assert_allclose(steps[:500], 1e-3)
    np.testing.assert_allclose(steps[500:4500], 1e-4)
    np.testing.assert_allclose(steps[4500:], 1e-5)
    assert evaluation.paper_betas(1450).shape == (1451,)


# ------------------------------------------------------------ likelihoods


def test_log_likelihood_with_exact_log_z_matches_brute_force():
    rbm = make_rbm(6, 4, seed=7)
    v, log_p = brute_log_p(rbm)
    rows = np.random.default_rng(7).integers(0, len(v), 50)
    log_z = evaluation.exact_log_partition(rbm)
    got = evaluation.log_likelihood(rbm, v[rows], log_z=log_z)
    assert got == pytest.approx(log_p[rows].mean(), abs=1e-9)
    # Through AIS: the same up to the estimate's uncertainty.
    estimate = evaluation.log_likelihood(
        rbm, v[rows], num_chains=100, betas=np.linspace(0, 1, 301), seed=0
    )
    assert estimate == pytest.approx(got, abs=0.05)


def test_pseudo_likelihood_all_bits_matches_direct_computation():
    rbm = make_rbm(12, 7, seed=8)
    x = (np.random.default_rng(8).random((30, 12)) < 0.4).astype("float64")
    fe = numpy_free_energy(rbm, x)
    expected = np.zeros(30)
    for i in range(12):
        flipped = x.copy()
        flipped[:, i] = 1 - flipped[:, i]
        # log p(v_i | v_-i) = log sigmoid(F(flipped) - F(v))
        expected += -np.logaddexp(0.0, -(numpy_free_energy(rbm, flipped) - fe))
    got = evaluation.pseudo_likelihood(rbm, x, all_bits=True, batch_size=7)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_pseudo_likelihood_matches_sklearn_score_samples():
    from sklearn.neural_network import BernoulliRBM

    rbm = make_rbm(12, 7, seed=9)
    w, b, c = params(rbm)
    x = (np.random.default_rng(9).random((40, 12)) < 0.5).astype("float64")
    sk = BernoulliRBM(n_components=7, random_state=3)
    sk.components_, sk.intercept_hidden_, sk.intercept_visible_ = w.T, c, b
    sk.n_features_in_ = 12
    np.testing.assert_allclose(
        evaluation.pseudo_likelihood(rbm, x, seed=3), sk.score_samples(x), rtol=1e-10
    )


def test_pseudo_likelihood_one_bit_is_unbiased_for_all_bits():
    # n_features * log p(v_i | v_-i) with i uniform has expectation sum_i.
    rbm = make_rbm(10, 6, seed=10)
    x = np.tile((np.random.default_rng(10).random((1, 10)) < 0.5).astype("float64"), (20000, 1))
    one_bit = evaluation.pseudo_likelihood(rbm, x, seed=0)
    exact = evaluation.pseudo_likelihood(rbm, x[:1], all_bits=True)[0]
    standard_error = one_bit.std() / math.sqrt(len(one_bit))
    assert abs(one_bit.mean() - exact) < 4 * standard_error


def test_pseudo_likelihood_needs_bernoulli_visible():
    with pytest.raises(ValueError, match="Bernoulli visible"):
        evaluation.pseudo_likelihood(make_rbm(4, 3, visible="gaussian"), np.zeros((2, 4)))


@pytest.mark.parametrize("evaluate", [
    lambda rbm, x: evaluation.log_likelihood(rbm, x, log_z=1.0),
    lambda rbm, x: evaluation.dbn_log_likelihood_bound(keras_dbn.DBN([rbm]), x, log_z=1.0),
])
def test_likelihoods_of_bernoulli_units_need_binary_data(evaluate):
    """p(v) of Bernoulli visible units is a probability of binary states:
    -F(v) - log Z of grey levels is no log-probability (and no bound)."""
    rbm = make_rbm(4, 3)
    x = (np.random.default_rng(0).random((3, 4)) > 0.5).astype("float64")
    assert np.isfinite(evaluate(rbm, x))
    grey = x.copy()
    grey[1, 2] = 0.5
    with pytest.raises(ValueError, match=r"needs binary data for Bernoulli visible units.*"
                                         r"binarise the data first"):
        evaluate(rbm, grey)
    # Gaussian visible units take real values.
    assert np.isfinite(evaluate(make_rbm(4, 3, visible="gaussian"), grey))


@pytest.mark.parametrize("all_bits", [False, True])
def test_pseudo_likelihood_needs_binary_data(all_bits):
    # Flipping 0.5 gives 0.5: every model scored -num_visible * log 2.
    rbm = make_rbm(4, 3)
    x = np.random.default_rng(0).random((3, 4))
    with pytest.raises(ValueError, match=r"needs binary data.*e\.g\. `x > 0\.5`"):
        evaluation.pseudo_likelihood(rbm, np.full((2, 4), 0.5), seed=0, all_bits=all_bits)
    np.testing.assert_array_equal(
        evaluation.pseudo_likelihood(rbm, x > 0.5, seed=0, all_bits=all_bits),
        evaluation.pseudo_likelihood(rbm, (x > 0.5).astype("float64"), seed=0, all_bits=all_bits))


@pytest.mark.parametrize("labelled", [False, True])
def test_likelihoods_read_a_batched_dataset_as_its_rows(labelled):
    rbm = make_rbm(6, 4, seed=12)
    x = all_states(6)[::5].astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x))) if labelled else x).batch(4)
    assert evaluation.log_likelihood(rbm, dataset, log_z=1.0) == evaluation.log_likelihood(
        rbm, x, log_z=1.0)
    for all_bits in (False, True):
        np.testing.assert_array_equal(
            evaluation.pseudo_likelihood(rbm, dataset, seed=0, all_bits=all_bits),
            evaluation.pseudo_likelihood(rbm, x, seed=0, all_bits=all_bits))
    dbn = _tiny_dbn(1)
    x5, dataset5 = x[:, :5], dataset.map(lambda *e: (e[0][:, :5], *e[1:]))
    assert evaluation.dbn_log_likelihood_bound(
        dbn, dataset5, log_z=1.0, samples=3, seed=0
    ) == evaluation.dbn_log_likelihood_bound(dbn, x5, log_z=1.0, samples=3, seed=0)


@pytest.mark.parametrize(
    "evaluate",
    [lambda data: evaluation.log_likelihood(make_rbm(4, 3), data, log_z=0.0),
     lambda data: evaluation.pseudo_likelihood(make_rbm(4, 3), data),
     lambda data: evaluation.dbn_log_likelihood_bound(keras_dbn.DBN([make_rbm(4, 3)]), data,
                                                      log_z=0.0),
     lambda data: evaluation.sample_class_mix(_argmax_classifier(), data)],
)
def test_datasets_that_cannot_be_read_as_rows_get_clear_errors(evaluate):
    x = np.zeros((6, 4), "float32")
    with pytest.raises(ValueError, match=r"yields an example of shape \(4,\), not a batch"):
        evaluate(tf.data.Dataset.from_tensor_slices(x))
    with pytest.raises(ValueError, match="never ends"):
        evaluate(tf.data.Dataset.from_tensor_slices(x).batch(2).repeat())
    with pytest.raises(TypeError, match="must be a dataset of batches `x` or `\(x, y\)` as "
                                        "tensors"):
        evaluate(tf.data.Dataset.from_tensor_slices({"x": x}).batch(2))
    with pytest.raises(ValueError, match="holds no examples"):
        evaluate(tf.data.Dataset.from_tensor_slices(x[:0]).batch(2))


# ----------------------------------------------------------- image grids


def test_image_grid_shapes_and_normalisation():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(10, 16))
    images[3] = 2.0  # constant image
    grid = image_grid(images)  # 4x4 tiles, 4 columns, 3 rows
    assert grid.dtype == np.uint8 and grid.shape == (3 * 4 + 2, 4 * 4 + 3)
    first = grid[0:4, 0:4]
    assert first.min() == 0 and first.max() == 255
    assert np.all(grid[0:4, 15:19] == 0)  # the constant image
    assert np.all(grid[4, :] == 0) and np.all(grid[:, 4] == 0)  # padding

    grid = image_grid(images, image_shape=(2, 8), rows=2, padding=0)
    assert grid.shape == (4, 40)
    grid = image_grid(np.full((3, 2, 5), 0.5), normalize=False, cols=3, padding=2)
    assert grid.shape == (2, 19) and grid[0, 0] == 128 and grid[0, 5] == 0
    colour = image_grid(rng.random((4, 3, 3, 3)), padding=0)
    assert colour.shape == (6, 6, 3)
    with pytest.raises(ValueError, match="square"):
        image_grid(np.zeros((2, 10)))


def test_save_image_grid_writes_png(tmp_path):
    images = np.random.default_rng(1).random((5, 9))
    path = save_image_grid(images, tmp_path / "sub" / "grid.png", normalize=False)
    decoded = tf.io.decode_png(tf.io.read_file(str(path))).numpy()
    np.testing.assert_array_equal(decoded[..., 0], image_grid(images, normalize=False))


def _image_summaries(log_dir):
    """{(tag, step): decoded image} of the images-plugin summaries in
    log_dir/train, where Keras' TensorBoard writes its training scalars."""
    found = {}
    for event_file in glob.glob(os.path.join(log_dir, "train", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "images":
                    continue  # Keras' TensorBoard scalars
                width, height, png = tf.make_ndarray(value.tensor)
                image = tf.io.decode_png(png).numpy()
                assert image.shape[:2] == (int(height), int(width))
                found[(value.tag, event.step)] = image
    return found


def test_image_grid_callback_during_fit(tmp_path):
    """The pictures sit beside Keras' TensorBoard scalars: in log_dir/train,
    at its 0-based epoch steps (they were one folder and one step off)."""
    x = (np.random.default_rng(2).random((64, 16)) < 0.5).astype("float32")
    rbm = keras_dbn.RBM(6, seed=0)
    callback = ImageGridCallback(tmp_path, num_filters=4, num_samples=9, gibbs_steps=3)
    rbm.fit(x, epochs=2, batch_size=32, verbose=0,
            callbacks=[callback, keras.callbacks.TensorBoard(str(tmp_path))])
    summaries = _image_summaries(str(tmp_path))
    assert len(summaries) == 4
    scalars = {step for (tag, step) in _summaries(str(tmp_path / "train"))
               if tag == "epoch_reconstruction_error"}
    assert scalars == {step for (_, step) in summaries} == {0, 1}
    for epoch in (1, 2):
        for name in ("filters", "samples"):
            path = tmp_path / f"{name}_epoch{epoch:03d}.png"
            image = tf.io.decode_png(tf.io.read_file(str(path))).numpy()
            assert image.shape == {"filters": (9, 9, 1), "samples": (14, 14, 1)}[name]
            np.testing.assert_array_equal(summaries[(name, epoch - 1)], image)

    sparse = tmp_path / "every2"
    rbm.fit(x, epochs=3, verbose=0, callbacks=[ImageGridCallback(sparse, every_n_epochs=2, gibbs_steps=1, tensorboard=False)])
    assert sorted(os.listdir(sparse)) == ["filters_epoch002.png", "samples_epoch002.png"]


def test_image_grid_callback_refuses_bad_settings_before_training(tmp_path):
    for given in ({"num_filters": 0}, {"num_samples": 0}, {"gibbs_steps": -1},
                  {"every_n_epochs": 2.5}, {"seed": -1}, {"seed": 1.5}, {"seed": True},
                  {"seed": 2**31}):
        with pytest.raises(ValueError, match="must be an integer|must be None or an integer"):
            ImageGridCallback(tmp_path, **given)
    assert ImageGridCallback(tmp_path, seed=np.int64(7)).seed == 7
    x = (np.random.default_rng(2).random((64, 12)) < 0.5).astype("float32")
    for shape, message in ((None, "12 features are not square"),
                           ((5, 5), r"\(5, 5\) holds 25 values, but each image has 12")):
        rbm = keras_dbn.RBM(6, seed=0)
        with pytest.raises(ValueError, match=message):
            rbm.fit(x, epochs=2, verbose=0, callbacks=[
                ImageGridCallback(tmp_path, image_shape=shape, gibbs_steps=1, tensorboard=False)])
        assert int(rbm.optimizer.iterations) == 0 and not os.listdir(tmp_path)  # nothing trained
    rbm.fit(x, epochs=1, verbose=0, callbacks=[
        ImageGridCallback(tmp_path, image_shape=(3, 4), gibbs_steps=1, tensorboard=False)])
    assert sorted(os.listdir(tmp_path)) == ["filters_epoch001.png", "samples_epoch001.png"]


def test_image_grid_write_of_an_unbuilt_rbm_says_it_has_no_weights(tmp_path):
    grids = ImageGridCallback(tmp_path, rbm=keras_dbn.RBM(6), gibbs_steps=1, tensorboard=False)
    with pytest.raises(ValueError, match="no weights yet"):
        grids.write(1)
    with pytest.raises(ValueError, match="counts from 1"):
        grids.write(0)
    assert not os.listdir(tmp_path)


def _summaries(log_dir):
    """{(tag, step): array} of every summary in log_dir's event files."""
    found = {}
    for event_file in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                found[(value.tag, event.step)] = tf.make_ndarray(value.tensor)
    return found


def test_weight_histograms_follow_every_weight_of_every_layer(tmp_path):
    """Keras' TensorBoard(histogram_freq=1) writes nothing for an RBM (no
    sublayers); WeightHistograms writes each weight and its change."""
    from keras_dbn.callbacks import WeightHistograms

    x = (np.random.default_rng(2).random((64, 16)) < 0.5).astype("float32")
    dbn = keras_dbn.DBN([6, 4], seed=0)
    dbn.build((None, 16))
    seen = {}  # the kernels at the start and after each epoch, per layer

    def remember(rbm, key):
        seen.setdefault(rbm.name, {})[key] = np.asarray(rbm.kernel).copy()

    class Remember(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            remember(self.model, "start")

        def on_epoch_end(self, epoch, logs=None):
            remember(self.model, epoch)

    dbn.pretrain(x, epochs=3, batch_size=16, verbose=0,
                 callbacks=[Remember(), WeightHistograms(tmp_path, freq=2)])
    found = _summaries(str(tmp_path / "train"))
    for rbm in dbn.rbms:
        kernel = rbm.kernel.path
        assert {step for tag, step in found if tag == f"{kernel}/histogram"} == {0, 2}
        assert (f"{rbm.visible_bias.path}/histogram", 2) in found
        assert (f"{rbm.hidden_bias.path}/histogram", 2) in found
        buckets = found[(f"{kernel}/histogram", 2)]  # rows of (left, right, count)
        assert buckets[:, 2].sum() == np.size(rbm.kernel)
        np.testing.assert_allclose([buckets[0, 0], buckets[-1, 1]],
                                   [seen[rbm.name][2].min(), seen[rbm.name][2].max()], rtol=1e-6)
        # The change since the previous histogram (since training began for the first).
        for step, before in ((0, "start"), (2, 0)):
            change = seen[rbm.name][step] - seen[rbm.name][before]
            ratio = np.mean(np.abs(change)) / np.mean(np.abs(seen[rbm.name][step]))
            assert float(found[(f"{kernel}/change_ratio", step)]) == pytest.approx(ratio, rel=1e-5)
            assert found[(f"{kernel}/change/histogram", step)][:, 2].sum() == np.size(rbm.kernel)
    with pytest.raises(ValueError, match="`freq`"):
        WeightHistograms(tmp_path, freq=0)


def test_image_grid_refuses_bad_grids():
    images = np.zeros((4, 9))
    for given, message in (({"rows": 0}, "`rows`"), ({"cols": 0}, "`cols`"),
                           ({"padding": -1}, "`padding`")):
        with pytest.raises(ValueError, match=message):
            image_grid(images, **given)
    with pytest.raises(ValueError, match=r"got shape \(4, 3, 3, 1, 1\)"):
        image_grid(np.zeros((4, 3, 3, 1, 1)))


def test_image_grid_callback_counts_epochs_over_fit_calls(tmp_path):
    x = (np.random.default_rng(2).random((64, 16)) < 0.5).astype("float32")
    rbm = keras_dbn.RBM(6, seed=0)  # not built: a dataset does not build it before training
    callback = ImageGridCallback(tmp_path, num_samples=4, gibbs_steps=1, tensorboard=False)
    rbm.fit(tf.data.Dataset.from_tensor_slices(x).batch(32), epochs=2, verbose=0,
            callbacks=[callback])
    rbm.fit(x, epochs=1, verbose=0, callbacks=[callback])
    assert sorted(os.listdir(tmp_path)) == [
        f"{name}_epoch{epoch:03d}.png" for name in ("filters", "samples") for epoch in (1, 2, 3)
    ]


def test_image_grid_callback_numbers_resumed_fits_from_initial_epoch(tmp_path):
    x = (np.random.default_rng(2).random((64, 16)) < 0.5).astype("float32")

    def numbers(log_dir):
        return sorted(int(p.name[len("samples_epoch"):-4]) for p in log_dir.glob("samples_*"))

    def grids(log_dir, **kwargs):
        return ImageGridCallback(log_dir, num_samples=4, gibbs_steps=1,
                                 **dict(dict(tensorboard=False), **kwargs))

    rbm = keras_dbn.RBM(6, seed=0)
    every, sparse, fresh = tmp_path / "every", tmp_path / "sparse", tmp_path / "fresh"
    same = [grids(every), grids(sparse, every_n_epochs=2, tensorboard=True)]
    rbm.fit(x, epochs=2, batch_size=32, verbose=0, callbacks=same + [grids(fresh)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new callback's epochs 3, 4 replace nothing
        rbm.fit(x, epochs=4, initial_epoch=2, batch_size=32, verbose=0,
                callbacks=same + [grids(fresh)])
    assert numbers(every) == numbers(fresh) == [1, 2, 3, 4]
    assert numbers(sparse) == [2, 4]
    assert sorted(_image_summaries(str(sparse))) == [
        (name, step) for name in ("filters", "samples") for step in (1, 3)]
    # An initial_epoch below the callback's own count continues that count.
    rbm.fit(x, epochs=2, initial_epoch=1, batch_size=32, verbose=0, callbacks=same[:1])
    assert numbers(every) == [1, 2, 3, 4, 5]

    # Every layer of DBN.pretrain resumed from epoch 1: layer 1 is epochs
    # 2, 3 and layer 2 follows it.
    dbn = keras_dbn.DBN([9, 4], seed=0)
    dbn.pretrain(x, epochs=3, initial_epoch=1, verbose=0,
                 callbacks=[grids(tmp_path / "dbn", rbm=dbn)])
    assert numbers(tmp_path / "dbn") == [2, 3, 4, 5]


def test_image_grid_callback_warns_before_replacing_an_earlier_runs_pictures(tmp_path):
    x = (np.random.default_rng(2).random((64, 16)) < 0.5).astype("float32")
    rbm = keras_dbn.RBM(6, seed=0)
    callback = ImageGridCallback(tmp_path, num_samples=4, gibbs_steps=1, tensorboard=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty folder, then its own pictures: no warning
        rbm.fit(x, epochs=1, verbose=0, callbacks=[callback])
        rbm.fit(x, epochs=1, verbose=0, callbacks=[callback])
    first = (tmp_path / "filters_epoch001.png").read_bytes()
    rbm.fit(x, epochs=2, verbose=0)  # the filters change
    with pytest.warns(UserWarning, match=r"already holds 4 pictures of an earlier run "
                                         r"\(filters_epoch001.png, filters_epoch002.png, "
                                         r"samples_epoch001.png, \.\.\.\); this run's pictures"
                      ) as record:
        rbm.fit(x, epochs=1, verbose=0, callbacks=[
            ImageGridCallback(tmp_path, num_samples=4, gibbs_steps=1, tensorboard=False)])
    # Raised under Keras' callback frames, it names the line that called fit.
    assert [w.filename for w in record if "earlier run" in str(w.message)] == [__file__]
    assert (tmp_path / "filters_epoch001.png").read_bytes() != first  # replaced, as warned


def test_image_grid_callback_in_dbn_pretraining(tmp_path):
    x = (np.random.default_rng(2).random((64, 16)) < 0.5).astype("float32")
    dbn = keras_dbn.DBN([9, 4], seed=0)
    with pytest.raises(ValueError, match="needs rbm=dbn"):
        dbn.pretrain(x, epochs=1, verbose=0, callbacks=[
            ImageGridCallback(tmp_path, gibbs_steps=1, tensorboard=False)])
    assert not any(rbm.built for rbm in dbn.rbms) and not os.listdir(tmp_path)
    callback = ImageGridCallback(tmp_path, num_samples=4, gibbs_steps=1, tensorboard=False,
                                 rbm=dbn)
    dbn.pretrain(x, epochs=2, verbose=0, callbacks=[callback])
    assert len(os.listdir(tmp_path)) == 8  # two layers of two epochs, none overwritten
    filters = tf.io.decode_png(tf.io.read_file(str(tmp_path / "filters_epoch004.png")))
    assert filters.shape == (14, 14, 1)  # the first layer's nine 4x4 filters
    # Watching the first RBM: its pictures while it trains, not the same
    # pictures again under the next layer's epochs.
    first = tmp_path / "first"
    watch = ImageGridCallback(first, num_samples=4, gibbs_steps=1, tensorboard=False,
                              rbm=dbn.rbms[0])
    dbn.pretrain(x, epochs=2, verbose=0, callbacks=[watch])
    assert sorted(os.listdir(first)) == [f"{name}_epoch00{i}.png" for name in ("filters", "samples")
                                         for i in (1, 2)]
    assert watch._epochs_seen == 4  # the count goes on over both layers


def test_image_grid_callback_with_explicit_rbm_and_generator(tmp_path):
    rbm = make_rbm(16, 5, seed=3)

    class Generator:  # stands in for a DBN
        def generate(self, n, gibbs_steps=1000, seed=None):
            return np.ones((n, 16))

    callback = ImageGridCallback(tmp_path, num_samples=4, tensorboard=False, rbm=rbm)
    callback.set_model(Generator())
    paths = callback.write(7)
    samples = tf.io.decode_png(tf.io.read_file(paths["samples"])).numpy()[..., 0]
    assert samples.shape == (9, 9)
    assert samples[0, 0] == 255 and samples[4, 4] == 0  # ones, black padding
    filters = tf.io.decode_png(tf.io.read_file(paths["filters"])).numpy()
    assert filters.shape == (9, 14, 1)  # 5 filters: 3 columns, 2 rows
    assert os.path.basename(paths["filters"]) == "filters_epoch007.png"


# ----------------------------------------------------- DBN lower bound


def _tiny_dbn(seed=0):
    """A built 5-4-3 Bernoulli DBN with random weights."""
    dbn = keras_dbn.DBN([4, 3], seed=seed)
    dbn.build((None, 5))
    rng = np.random.default_rng(seed)
    for rbm in dbn.rbms:
        rbm.kernel.assign(rng.normal(0, 1.0, rbm.kernel.shape))
        rbm.visible_bias.assign(rng.normal(0, 0.5, rbm.visible_bias.shape))
        rbm.hidden_bias.assign(rng.normal(0, 0.5, rbm.hidden_bias.shape))
    return dbn


def _log_bernoulli(states, mean):
    return np.sum(states * np.log(mean) + (1 - states) * np.log1p(-mean), axis=-1)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _exact_dbn_terms(dbn, v):
    """By enumeration of h_1: log Z of the top RBM, log p(v), the bound's
    exact value and the variance of its per-sample integrand under Q."""
    (w1, b1, c1), (w2, b2, c2) = params(dbn.rbms[0]), params(dbn.rbms[1])
    h1 = all_states(w1.shape[1])
    log_p2_star = h1 @ b2 + np.sum(_softplus(c2 + h1 @ w2), axis=-1)  # -F_2(h_1)
    log_z = float(np.logaddexp.reduce(log_p2_star))
    log_p_v_given_h = _log_bernoulli(v, _sigmoid(b1 + h1 @ w1.T))
    log_joint = log_p_v_given_h + log_p2_star - log_z
    log_q = _log_bernoulli(h1, _sigmoid(c1 + v @ w1))
    q = np.exp(log_q)
    integrand = log_joint - log_q
    bound = float(np.sum(q * integrand))
    variance = float(np.sum(q * (integrand - bound) ** 2))
    return log_z, float(np.logaddexp.reduce(log_joint)), bound, variance


@pytest.mark.parametrize("seed", [0, 1])
def test_dbn_bound_matches_enumeration(seed):
    dbn = _tiny_dbn(seed)
    v = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    log_z, log_p, exact_bound, variance = _exact_dbn_terms(dbn, v)
    assert exact_bound < log_p  # Jensen: Q is not the true posterior
    samples = 20000
    estimate = evaluation.dbn_log_likelihood_bound(
        dbn, v[None], log_z=log_z, samples=samples, seed=seed
    )
    assert abs(estimate - exact_bound) < 5 * math.sqrt(variance / samples)
    # Reproducible for a fixed seed.
    assert estimate == evaluation.dbn_log_likelihood_bound(
        dbn, v[None], log_z=log_z, samples=samples, seed=seed
    )


def test_dbn_bound_averages_examples_and_estimates_log_z_by_ais():
    dbn = _tiny_dbn(2)
    v = np.array([[1.0, 0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0, 1.0]])
    log_z, _, bound_0, variance_0 = _exact_dbn_terms(dbn, v[0])
    _, _, bound_1, variance_1 = _exact_dbn_terms(dbn, v[1])
    samples = 20000
    estimate = evaluation.dbn_log_likelihood_bound(dbn, v, log_z=log_z, samples=samples, seed=0)
    spread = 5 * math.sqrt((variance_0 + variance_1) / 4 / samples)
    assert abs(estimate - (bound_0 + bound_1) / 2) < spread
    # Without log_z, the top RBM's log Z comes from AIS.
    with_ais = evaluation.dbn_log_likelihood_bound(
        dbn, v, samples=samples, seed=0, num_chains=200, betas=np.linspace(0, 1, 1000)
    )
    assert abs(with_ais - estimate) < 0.05


def test_dbn_bound_of_one_rbm_is_its_log_likelihood():
    dbn = keras_dbn.DBN([3], seed=0)
    dbn.build((None, 6))
    rng = np.random.default_rng(0)
    rbm = dbn.rbms[0]
    rbm.kernel.assign(rng.normal(0, 1.0, rbm.kernel.shape))
    x = (rng.random((7, 6)) < 0.5).astype("float64")
    log_z = evaluation.exact_log_partition(rbm)
    assert evaluation.dbn_log_likelihood_bound(dbn, x, log_z=log_z, samples=3) == pytest.approx(
        evaluation.log_likelihood(rbm, x, log_z=log_z), abs=1e-9
    )


def test_dbn_bound_memory_follows_batch_size_not_samples():
    import tracemalloc

    dbn = keras_dbn.DBN([8, 4], seed=0)
    dbn.build((None, 784))
    x = (np.random.default_rng(0).random((100, 784)) < 0.2).astype("float32")
    results = []
    for batch_size in (500, 2048):
        tracemalloc.start()
        results.append(evaluation.dbn_log_likelihood_bound(
            dbn, x, log_z=0.0, samples=100, seed=0, batch_size=batch_size))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # All 10,000 example-sample pairs in float64 would take 63 MB.
        assert peak < 30 * batch_size * 784, peak
    # Different draws, the same bound within the estimate's spread.
    assert abs(results[0] - results[1]) < 1.0


def test_log_conditional_of_gaussian_units_is_the_normal_density():
    units = keras_dbn.units.get("gaussian")
    rng = np.random.default_rng(0)
    states, pre, bias = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=3)
    expected = np.sum(-0.5 * (states - pre) ** 2 - 0.5 * math.log(2 * math.pi), axis=-1)
    got = evaluation.log_conditional(
        units, tf.constant(states), tf.constant(pre), tf.constant(bias)
    )
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12)


def test_dbn_bound_rejects_bad_samples():
    with pytest.raises(ValueError, match="samples"):
        evaluation.dbn_log_likelihood_bound(_tiny_dbn(), np.zeros((1, 5)), log_z=0.0, samples=0)


def test_dbn_bound_is_exact_when_the_top_rbm_is_the_first_transposed():
    # Tied weights (Hinton, Osindero & Teh 2006, section 2): with the top
    # RBM the first one turned upside down, the DBN's p(v) is the first
    # RBM's and Q(h | v) its exact posterior, so every sample of the bound
    # equals log p(v).
    rbm = make_rbm(6, 4, seed=3)
    w, b, c = params(rbm)
    dbn = keras_dbn.DBN([4, 6], seed=0)
    dbn.build((None, 6))
    first, top = dbn.rbms
    first.kernel.assign(w)
    first.visible_bias.assign(b)
    first.hidden_bias.assign(c)
    top.kernel.assign(w.T)
    top.visible_bias.assign(c)
    top.hidden_bias.assign(b)
    x = all_states(6)[::9]
    log_z = evaluation.exact_log_partition(rbm)
    assert evaluation.exact_log_partition(top) == pytest.approx(log_z, abs=1e-9)
    for row in x:
        assert evaluation.dbn_log_likelihood_bound(
            dbn, row[None], log_z=log_z, samples=5, seed=0
        ) == pytest.approx(evaluation.log_likelihood(rbm, row[None], log_z=log_z), abs=1e-6)


def _argmax_classifier():
    """A classifier that reads the class off the position of the largest value."""
    import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Softmax()])


def test_sample_class_mix_counts_the_classes_a_classifier_reads():
    classifier = _argmax_classifier()
    samples = np.zeros((8, 4), dtype="float32")
    for row, label in enumerate([0, 0, 0, 0, 1, 1, 2, 3]):
        samples[row, label] = 5.0
    mix = evaluation.sample_class_mix(classifier, samples, batch_size=3)
    np.testing.assert_allclose(mix.frequencies, [0.5, 0.25, 0.125, 0.125])
    entropy = -(0.5 * math.log(0.5) + 0.25 * math.log(0.25) + 2 * 0.125 * math.log(0.125))
    assert mix.entropy == pytest.approx(entropy)
    assert mix.effective_classes == pytest.approx(math.exp(entropy))
    top = math.exp(5.0) / (math.exp(5.0) + 3.0)
    assert mix.confidence == pytest.approx(top, rel=1e-6)

    one_class = evaluation.sample_class_mix(classifier, samples[:4])
    assert one_class.entropy == 0.0 and one_class.effective_classes == 1.0
    assert math.copysign(1.0, one_class.entropy) == 1.0  # not -0.0
    with pytest.raises(ValueError, match="no examples"):
        evaluation.sample_class_mix(classifier, samples[:0])


@pytest.mark.parametrize("labelled", [False, True])
def test_sample_class_mix_reads_a_batched_dataset(labelled):
    samples = np.zeros((7, 4), dtype="float32")
    samples[np.arange(7), [0, 0, 1, 2, 2, 2, 3]] = 5.0
    dataset = tf.data.Dataset.from_tensor_slices(
        (samples, np.zeros(7)) if labelled else samples).batch(3)
    from_dataset = evaluation.sample_class_mix(_argmax_classifier(), dataset)
    from_array = evaluation.sample_class_mix(_argmax_classifier(), samples)
    np.testing.assert_array_equal(from_dataset.frequencies, from_array.frequencies)
    assert from_dataset.entropy == from_array.entropy


def test_sample_class_mix_of_a_bfloat16_classifier_reads_its_probabilities_in_float64():
    """NumPy summed a bfloat16 classifier's probabilities in bfloat16, whose
    sum stops at 256: the confidence of 4,000 samples came out 0.064."""
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(4000, 4)).astype("float32")
    classifier = keras.Sequential([keras.Input((4,)), keras.layers.Softmax(dtype="bfloat16")])
    probabilities = np.asarray(classifier.predict(samples, verbose=0))
    assert probabilities.dtype.name == "bfloat16"
    mix = evaluation.sample_class_mix(classifier, samples)
    assert mix.confidence == pytest.approx(probabilities.astype("float64").max(axis=1).mean())
    assert mix.confidence > 0.4


def test_sample_class_mix_refuses_samples_the_classifier_cannot_read():
    """NaN probabilities were counted as class 0: a plausible mix of one class."""
    samples = np.full((10, 4), 5.0, dtype="float32")
    samples[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite probabilities for 1 of the 10"):
        evaluation.sample_class_mix(_argmax_classifier(), samples)


def test_dbn_bound_takes_seeds_as_the_other_estimates_do(monkeypatch):
    dbn = _tiny_dbn()
    x = all_states(5)[::3]
    by_int = evaluation.dbn_log_likelihood_bound(dbn, x, log_z=1.0, samples=3, seed=3)
    by_numpy = evaluation.dbn_log_likelihood_bound(dbn, x, log_z=1.0, samples=3, seed=np.int64(3))
    assert by_int == by_numpy
    # With log Z by AIS: the seed makes the whole bound reproducible.
    ais = dict(samples=3, num_chains=20, betas=evaluation.paper_betas(100))
    first = evaluation.dbn_log_likelihood_bound(dbn, x, seed=3, **ais)
    assert evaluation.dbn_log_likelihood_bound(dbn, x, seed=3, **ais) == first
    # A bad seed is refused before AIS runs (for minutes at real sizes).
    monkeypatch.setattr(evaluation, "ais_log_partition", None)
    for bad in (True, 1.5, -1, 2**31):
        for log_z in (None, 1.0):  # -1 was taken with a log Z, refused by AIS without
            with pytest.raises(ValueError, match=r"`seed` must be None or an integer in \[0, 2"):
                evaluation.dbn_log_likelihood_bound(dbn, x, seed=bad, log_z=log_z)


@pytest.mark.parametrize("estimate", [
    lambda rbm, x: evaluation.exact_log_partition(rbm),
    lambda rbm, x: evaluation.ais_log_partition(rbm, betas=evaluation.paper_betas(50),
                                                num_chains=10, seed=0),
    lambda rbm, x: evaluation.log_likelihood(rbm, x, log_z=1.0),
    lambda rbm, x: evaluation.pseudo_likelihood(rbm, x, seed=0),
])
def test_estimates_refuse_weights_that_are_not_finite(estimate):
    """They returned NaN, and AIS warned about its importance weights' spread."""
    rbm = make_rbm(5, 3, seed=0)
    kernel = np.array(rbm.kernel)
    kernel[2, 1] = np.nan
    rbm.kernel.assign(kernel)
    with pytest.raises(ValueError, match="hold NaN or infinite values"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            estimate(rbm, all_states(5))


def test_log_conditional_of_float64_states_and_float32_inputs():
    """The docstring's example with data of x / 255. raised TensorFlow's dtype error."""
    rbm = make_rbm(5, 3, seed=0)
    w, b, _ = params(rbm)
    v = all_states(5)  # float64
    h = all_states(3)[[0, 5, 2, 7] * 8]
    pre = keras.ops.matmul(h.astype("float32"), keras.ops.transpose(rbm.kernel)) + rbm.visible_bias
    got = np.asarray(evaluation.log_conditional(rbm.visible_units, v, pre, rbm.visible_bias))
    mean = _sigmoid(h @ w.T + b)
    np.testing.assert_allclose(got, _log_bernoulli(v, mean), rtol=1e-6)


def test_ais_names_a_keras_style_pair_given_as_data():
    rbm = make_rbm(5, 3, seed=0)
    x = all_states(5)
    with pytest.raises(ValueError, match="for arrays x and y give x alone"):
        evaluation.ais_log_partition(rbm, data=(x, np.zeros(len(x))), seed=0)
    # One-hot labels made the pair two batches, the second's width named as the data's.
    with pytest.raises(ValueError, match=r"`data` holds arrays of rows of other widths \(5, 3\): "
                                         "a list or tuple is read as batches; for arrays x and y"):
        evaluation.ais_log_partition(rbm, data=(x, np.eye(3)[np.arange(len(x)) % 3]), seed=0)
    with pytest.raises(ValueError, match=r"Bernoulli visible units need data in \[0, 1\] \(got "
                                         r"values in \[0.0, 255.0\]\).*real-valued data.$"):
        evaluation.ais_log_partition(rbm, data=[x * 255], seed=0)  # no hint of pairs


@pytest.mark.parametrize("estimate", [
    lambda x: evaluation.log_likelihood(make_rbm(5, 3, seed=0), x, log_z=1.0),
    lambda x: evaluation.pseudo_likelihood(make_rbm(5, 3, seed=0), x, seed=0),
    lambda x: evaluation.dbn_log_likelihood_bound(_tiny_dbn(), x, log_z=1.0, seed=0),
])
def test_estimates_name_a_keras_style_pair_given_as_x(estimate):
    """NumPy's "inhomogeneous shape", or the width of the pair stacked, before."""
    x = all_states(5)
    with pytest.raises(ValueError, match="`x` holds rows of different shapes. A list or tuple "
                                         "is read as the rows of one array: for arrays x and y"):
        estimate((x, np.zeros(len(x))))
    with pytest.raises(ValueError, match="but the data has 160 values per example. A list or "
                                         "tuple is read as the rows of one array"):
        estimate((x, x))
    assert np.all(np.isfinite(estimate([list(row) for row in x])))  # a list of rows is one array
    # Other errors of a list of rows are not put down to a pair.
    with pytest.raises(ValueError, match=r"need data in \[0, 1\].*e.g. x / 255[^:]*$"):
        estimate((x * 255).tolist())
    with pytest.raises(ValueError, match="could not convert string to float"):
        estimate([["0", "1", "a", "0", "1"]])

