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


def test_each_route_runs_its_own_way(monkeypatch):
    x = (np.random.default_rng(0).random((60, 12)) < 0.4).astype("float32")
    traced = []
    in_xla = rbm_module.RBM._contrastive_divergence_in_xla
    monkeypatch.setattr(rbm_module.RBM, "_contrastive_divergence_in_xla",
                        lambda self, v0: traced.append(self.jit_compile) or in_xla(self, v0))
    result = step_routes.measure((12, 6, 20, 2, False), x, reps=1)
    assert set(result["samples_per_s"]) == set(step_routes.ROUTES)
    assert all(len(t) == 1 and t[0] > 0 for t in result["seconds"].values())
    # Traced by the forced "xla_chain" RBM only, inside TensorFlow's graph.
    assert traced and not any(traced)
    assert result["auto"] == "graph"  # CD-2 at 20 x 12 x 6, below the chain route's window
