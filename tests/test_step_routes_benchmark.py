"""The step-route benchmark runs each route it names."""

import argparse

import numpy as np
import pytest

from benchmarks import step_routes
from keras_dbn import rbm as rbm_module


def test_configs_parse_and_epochs_hold_whole_batches():
    assert step_routes.parse_config("784x1000:200:20") == (784, 1000, 200, 20, False)
    assert step_routes.parse_config("1000x500:200:20:pcd") == (1000, 500, 200, 20, True)
    for bad in ("784x1000:200", "784x1000:200:20:cd"):
        with pytest.raises(argparse.ArgumentTypeError):
            step_routes.parse_config(bad)
    rows = step_routes.rows_for(784, 1000, 200, 20, budget_gflop=300)
    assert rows % 200 == 0 and abs(rows * 86 * 784 * 1000 / 1e9 - 300) < 86 * 784 * 1000 * 200 / 1e9
    assert step_routes.rows_for(784, 1000, 200, 20, budget_gflop=1) == 2000  # 10 batches at least


@pytest.mark.parametrize("input_kind", ["array", "dataset"])
@pytest.mark.parametrize("rows", [60, 50])
def test_each_route_runs_its_own_way(monkeypatch, rows, input_kind):
    x = (np.random.default_rng(0).random((rows, 12)) < 0.4).astype("float32")
    traced = []
    in_xla = rbm_module.RBM._contrastive_divergence_in_xla

    def counted(self, v0, data_rows=None):
        traced.append((self.jit_compile, tuple(v0.shape), data_rows is not None))
        return in_xla(self, v0, data_rows)

    monkeypatch.setattr(rbm_module.RBM, "_contrastive_divergence_in_xla", counted)
    result = step_routes.measure((12, 6, 20, 2, False), x, reps=1, input_kind=input_kind)
    assert set(result["samples_per_s"]) == set(step_routes.ROUTES)
    assert all(len(t) == 1 and t[0] > 0 for t in result["seconds"].values())
    # Traced by the forced "xla_chain" RBM only, inside TensorFlow's graph,
    # for full batches; 50 rows end with a batch of 10, padded to 20. The
    # pipeline's batches have no static size: its step is traced once, padded.
    padded = rows % 20 != 0 or input_kind == "dataset"
    assert set(traced) == {(False, (20, 12), padded)}
    assert result["auto"] == "graph"  # CD-2 at 20 x 12 x 6, below the chain route's window


def test_gaussian_units_get_their_rbms_and_standardised_data():
    x = np.random.default_rng(0).random((200, 12)).astype("float32")
    x[:, 0] = 0.0  # a constant pixel
    x[:, 1] = 0.0
    x[0, 1] = 1.0  # a rare grey level: deviation 0.07, taken as 0.1
    z = step_routes.standardised(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0)[2:], 1.0, rtol=1e-4)
    assert np.all(z[:, 0] == 0.0) and 9.9 < z[0, 1] < 10.0
    rbm = step_routes.new_rbm("xla_chain", 6, 2, False, 20, units=("gaussian", "bernoulli"))
    assert (rbm.visible, rbm.hidden, rbm._xla_chain) == ("gaussian", "bernoulli", 20)
    with pytest.raises(SystemExit):
        step_routes.main(["--visible", "gaussian", "--hidden", "gaussian"])
