"""Gibbs sampling speed: keras_dbn ``RBM.gibbs`` vs steps one by one vs scikit-learn.

Sampling from an RBM (``RBM.sample``, ``DBN.generate``, the sample grids of
``ImageGridCallback``) runs long block-Gibbs chains of small matrix
products. For every (chains, hidden units) of the grid, one process trains
a 784-visible RBM for one epoch on binarised MNIST (so that the weights are
a real model's) and then measures, in alternation and ``--reps`` times
each, the same number of Gibbs steps from the same starting states:

* ``keras_dbn``: ``rbm.gibbs(v, steps)``, the whole chain as one compiled
  TensorFlow loop;
* ``stepwise``: the same steps taken one at a time from Python through the
  public conditionals, ``h = rbm.hidden_given_visible(v, sample=True)``
  then ``v = rbm.visible_given_hidden(h, sample=True)`` (the same ops and
  random numbers; what ``RBM.gibbs`` ran before it was compiled, and what
  a hand-written loop runs);
* ``sklearn``: ``BernoulliRBM.gibbs(v)`` called ``steps`` times, with the
  RBM's weights copied into it (float32).

Figures are chain-steps per second (chains x steps / seconds), medians of
the repetitions; ratios are taken between medians of the same run.

Writes the results to ``runs/benchmarks/gibbs_sampling.json`` (the
gitignored ``runs/`` folder; ``--out`` names another file), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.gibbs_sampling
    python benchmarks/gibbs_sampling.py --chains 100 --hidden 500 --reps 5
"""

import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402


def steps_for(chains, budget):
    """Gibbs steps per timed run: ``budget`` chain-steps, 50 to 1,000 steps."""
    return max(50, min(1000, budget // chains))


def sklearn_copy(rbm):
    """A fitted-looking `BernoulliRBM` holding ``rbm``'s float32 weights."""
    from sklearn.neural_network import BernoulliRBM

    copy = BernoulliRBM(n_components=rbm.units, random_state=0)
    copy.components_ = np.asarray(rbm.kernel, dtype=np.float32).T.copy()
    copy.intercept_hidden_ = np.asarray(rbm.hidden_bias, dtype=np.float32).copy()
    copy.intercept_visible_ = np.asarray(rbm.visible_bias, dtype=np.float32).copy()
    copy.random_state_ = np.random.RandomState(0)
    copy.n_features_in_ = rbm.num_visible
    return copy


def competitors(rbm, use_sklearn):
    """``name -> run(v, steps)`` returning the final states as a NumPy array."""

    def compiled(v, steps):
        return np.asarray(rbm.gibbs(v, steps))

    def stepwise(v, steps):
        for _ in range(steps):
            v = rbm.visible_given_hidden(rbm.hidden_given_visible(v, sample=True), sample=True)
        return np.asarray(v)

    runs = {"keras_dbn": compiled, "stepwise": stepwise}
    if use_sklearn:
        reference = sklearn_copy(rbm)

        def sklearn(v, steps):
            for _ in range(steps):
                v = reference.gibbs(v)
            return v

        runs["sklearn"] = sklearn
    return runs


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import positive_int

    parser = _common.new_parser(__doc__)
    parser.add_argument("--chains", type=positive_int, nargs="+", default=[16, 100, 1000],
                        help="chain counts of the grid (each started from a training image)")
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=[500, 2000],
                        help="hidden units of the grid")
    parser.add_argument("--reps", type=positive_int, default=3, help="repetitions per competitor")
    parser.add_argument("--budget", type=positive_int, default=100_000,
                        help="chain-steps per timed run (steps = budget / chains, 50 to 1,000)")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn's row")
    _common.add_io_arguments(parser, "gibbs_sampling")
    args = parser.parse_args(argv)
    if max(args.chains) > _common.MNIST_TRAIN_ROWS:
        parser.error(f"--chains {max(args.chains)} exceeds the {_common.MNIST_TRAIN_ROWS} "
                     "training images the chains start from")
    _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    import keras

    import keras_dbn

    info = _common.announce_machine()
    x, _ = _common.load_mnist("train", binarize="threshold", manual_dir=args.manual_dir,
                              data_dir=args.data_dir)
    results = []
    for hidden in args.hidden:
        rbm = keras_dbn.RBM(hidden, seed=0)
        rbm.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        rbm.fit(x, epochs=1, batch_size=100, verbose=0)
        runs = competitors(rbm, not args.no_sklearn)
        for chains in args.chains:
            steps = steps_for(chains, args.budget)
            v = np.ascontiguousarray(x[:chains], dtype=np.float32)
            for run in runs.values():  # warm-up: tracing, first-call set-up
                run(v, 2)
            times = {name: [] for name in runs}
            loads = []
            for _ in range(args.reps):
                for name, run in runs.items():
                    start = time.perf_counter()
                    final = run(v, steps)
                    times[name].append(time.perf_counter() - start)
                    assert final.shape == v.shape
                loads.append(_common.load_now())
            rate = {name: chains * steps / _common.median(t) for name, t in times.items()}
            row = {
                "visible": rbm.num_visible, "hidden": hidden, "chains": chains, "steps": steps,
                "seconds": times, "chain_steps_per_s": rate, "load": loads,
                "keras_dbn_over_stepwise": rate["keras_dbn"] / rate["stepwise"],
            }
            if "sklearn" in rate:
                row["keras_dbn_over_sklearn"] = rate["keras_dbn"] / rate["sklearn"]
            results.append(row)
            print(f"784x{hidden}, {chains} chains, {steps} steps: "
                  + ", ".join(f"{k} {v:,.0f}" for k, v in rate.items()) + " chain-steps/s",
                  flush=True)

    headers = ["RBM", "chains", "steps", "keras_dbn", "stepwise", "sklearn",
               "vs stepwise", "vs sklearn"]
    rows = []
    for r in results:
        rate = r["chain_steps_per_s"]
        rows.append([
            f"{r['visible']}x{r['hidden']}", r["chains"], r["steps"],
            f"{rate['keras_dbn']:,.0f}", f"{rate['stepwise']:,.0f}",
            f"{rate['sklearn']:,.0f}" if "sklearn" in rate else "-",
            f"{r['keras_dbn_over_stepwise']:.2f}x",
            f"{r['keras_dbn_over_sklearn']:.2f}x" if "keras_dbn_over_sklearn" in r else "-",
        ])
    print("\nGibbs chain-steps per second (median of %d)" % args.reps)
    _common.print_table(headers, rows)
    _common.write_json(args.out, {"machine": info, "args": vars(args), "results": results})


if __name__ == "__main__":
    main()
