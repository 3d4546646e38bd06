"""The Gibbs sampling benchmark compares like with like."""

import numpy as np

from benchmarks import gibbs_sampling
from brute_force import all_states, make_rbm


def test_sklearn_copy_has_the_rbm_conditionals_and_every_competitor_samples():
    rbm = make_rbm(9, 4, bias_scale=1.0, seed=2)
    v = all_states(9)[::41].astype("float32")
    reference = gibbs_sampling.sklearn_copy(rbm)
    np.testing.assert_allclose(reference.transform(v), np.asarray(rbm.hidden_given_visible(v)),
                               rtol=1e-5, atol=1e-6)
    h = (np.random.default_rng(0).random((len(v), 4)) < 0.5).astype("float32")
    # scikit-learn keeps p(v | h) private; its sampler thresholds it with uniforms.
    reference.random_state_ = np.random.RandomState(0)
    sampled = reference._sample_visibles(h, reference.random_state_)
    uniforms = np.random.RandomState(0).uniform(size=sampled.shape)
    expected = uniforms < np.asarray(rbm.visible_given_hidden(h))
    np.testing.assert_array_equal(sampled, expected)
    for name, run in gibbs_sampling.competitors(rbm, use_sklearn=True).items():
        final = run(v, 3)
        assert final.shape == v.shape and set(np.unique(final)) <= {0.0, 1.0}, name


def test_steps_scale_with_chains_within_bounds():
    assert gibbs_sampling.steps_for(16, 100_000) == 1000
    assert gibbs_sampling.steps_for(1000, 100_000) == 100
    assert gibbs_sampling.steps_for(10_000, 100_000) == 50
