"""How `RBM.fit` runs a CD step: TensorFlow's graph, XLA, or the chain in XLA.

``jit_compile="auto"`` (`RBM.compile`) chooses, for each `fit` call, one of
three ways to run the training step (`keras_dbn.rbm._step_route`):

* ``graph``: TensorFlow's graph (``jit_compile=False``);
* ``xla``: the whole step compiled with XLA (``jit_compile=True``), whose
  own Philox draws the random numbers;
* ``xla_chain``: the Gibbs chain and the statistics compiled with XLA, their
  random numbers drawn by TensorFlow's Philox kernels beside it
  (`keras_dbn.units.DrawnNoise`); the same random numbers as ``graph``.

For each configuration ``VxH:batch:k[:pcd]`` one process trains three
RBMs of the same seed, one per route (``xla_chain`` forced on an RBM
compiled with ``jit_compile=False``), on binarised MNIST (784 visible units)
or random binary data of the given width, and times one-epoch `fit()`
calls in alternation, ``--reps`` times each, after a first call that traces
and compiles. Figures are samples per second, medians of the repetitions;
ratios are taken between medians of the same run. The ``auto`` column says
which route ``jit_compile="auto"`` takes for that configuration.

Writes the results to ``runs/benchmarks/step_routes.json`` (the
gitignored ``runs/`` folder; ``--out`` names another file), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.step_routes
    python -m benchmarks.step_routes --configs 784x1000:200:20 1000x500:200:20:pcd --reps 5
    python -m benchmarks.step_routes --configs 784x500:128:5 --rows 60000  # a last batch of 96
    python -m benchmarks.step_routes --configs 784x500:128:5 --rows 60000 --input dataset
    python -m benchmarks.step_routes --configs 784x500:100:5 --visible gaussian

``--input dataset`` feeds ``fit`` a ``tf.data`` pipeline of the rows,
``from_tensor_slices(x).shuffle(rows).batch(batch)`` on one thread
(`keras_dbn.array_input.lean_options`), whose batches have no static size
(the last may be smaller), instead of the NumPy array. ``--visible
gaussian`` trains Gaussian visible units on MNIST's grey levels
standardised per pixel (`standardised`; random normal data for other
widths), ``--hidden gaussian`` Gaussian hidden units.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402

ROUTES = ("graph", "xla", "xla_chain")

MNIST_WIDTH = 28 * 28  # configurations this wide read MNIST's images

DEFAULT_CONFIGS = [
    "784x500:100:1", "784x100:100:2", "784x500:100:5", "784x1000:200:20",
    "1000x500:200:20:pcd", "500x2000:100:1:pcd", "784x500:1000:2",
]


def parse_config(text):
    """``"784x1000:200:20:pcd"`` -> ``(784, 1000, 200, 20, True)``."""
    parts = text.split(":")
    try:
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "pcd"):
            raise ValueError
        visible, hidden = (int(n) for n in parts[0].split("x"))
        numbers = (visible, hidden, int(parts[1]), int(parts[2]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VxH:batch:k[:pcd], got {text!r}") from None
    if min(numbers) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive sizes, batch and k in VxH:batch:k[:pcd], got {text!r}")
    return numbers + (len(parts) == 4,)


def rows_for(visible, hidden, batch, k, budget_gflop, limit=60000):
    """Rows per timed epoch: ~``budget_gflop`` of CD-k work ((4k+6) B V H FLOPs
    per step), a whole number of batches, 10 batches at least."""
    per_row = (4 * k + 6) * visible * hidden
    rows = int(budget_gflop * 1e9 // per_row) // batch * batch
    return max(10 * batch, min(rows, limit // batch * batch))


def new_rbm(route, hidden, k, persistent, batch, units=("bernoulli", "bernoulli")):
    """A compiled `RBM` (PCD with its default 100 chains) that runs its step
    by ``route``; ``units``: its visible and hidden unit types."""
    import keras

    import keras_dbn

    rbm = keras_dbn.RBM(hidden, k=k, persistent=persistent, seed=1, visible=units[0],
                        hidden=units[1])
    rbm.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.5),
                jit_compile=route == "xla")
    # Forced for the comparison; `fit` itself takes this route only under
    # jit_compile="auto" (see keras_dbn.rbm._step_route).
    rbm._xla_chain = batch if route == "xla_chain" else 0
    return rbm


def standardised(x, min_std=0.1):
    """Each column of ``x`` at zero mean and unit variance, as Gaussian visible
    units expect (Hinton's practical guide, section 13.2); deviations under
    ``min_std`` (MNIST's border pixels, nearly always 0) are taken as
    ``min_std``, so that no rare grey level becomes a value in the hundreds."""
    return ((x - x.mean(axis=0)) / np.maximum(x.std(axis=0), min_std)).astype("float32")


def pipeline(x, batch):
    """``x`` as a shuffled ``tf.data`` pipeline of ``batch``-row batches."""
    import tensorflow as tf

    from keras_dbn import array_input

    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=0).batch(batch)
    return ds.with_options(array_input.lean_options())


def measure(config, x, reps, input_kind="array", units=("bernoulli", "bernoulli")):
    """Median samples/s of each route, the raw times and ``auto``'s route."""
    from keras_dbn import rbm as rbm_module

    visible, hidden, batch, k, persistent = config
    data = pipeline(x, batch) if input_kind == "dataset" else x
    kwargs = {} if input_kind == "dataset" else {"batch_size": batch}
    models = {route: new_rbm(route, hidden, k, persistent, batch, units) for route in ROUTES}
    for model in models.values():
        model.fit(data, epochs=1, verbose=0, **kwargs)  # trace and compile
    times = {route: [] for route in ROUTES}
    for _ in range(reps):
        for route, model in models.items():
            start = time.perf_counter()
            model.fit(data, epochs=1, verbose=0, **kwargs)
            times[route].append(time.perf_counter() - start)
    auto, _ = rbm_module._input_route(models["graph"], data, kwargs.get("batch_size"))
    return {
        "samples_per_s": {r: len(x) / _common.median(t) for r, t in times.items()},
        "seconds": times,
        "auto": auto,
    }


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import positive_float, positive_int

    parser = _common.new_parser(__doc__)
    parser.add_argument("--configs", nargs="+", type=parse_config,
                        default=[parse_config(c) for c in DEFAULT_CONFIGS],
                        help="VxH:batch:k[:pcd] (default: %s)" % " ".join(DEFAULT_CONFIGS))
    parser.add_argument("--reps", type=positive_int, default=5,
                        help="timed one-epoch fit() calls per route")
    parser.add_argument("--budget", type=positive_float, default=300.0,
                        help="GFLOP of CD work per timed epoch (sets its rows)")
    parser.add_argument("--rows", type=positive_int, default=None,
                        help="rows per timed epoch for every configuration instead of "
                        "--budget's whole batches; where the batch size does not divide "
                        "it, each epoch ends with a smaller batch, which the chain route pads")
    parser.add_argument("--input", choices=("array", "dataset"), default="array",
                        help="feed fit() the NumPy array or a tf.data pipeline "
                        "whose batches have no static size")
    parser.add_argument("--visible", choices=("bernoulli", "gaussian"), default="bernoulli",
                        help="visible units (gaussian: standardised grey levels)")
    parser.add_argument("--hidden", choices=("bernoulli", "gaussian"), default="bernoulli",
                        help="hidden units")
    _common.add_io_arguments(parser, "step_routes")
    args = parser.parse_args(argv)

    if args.visible == args.hidden == "gaussian":
        parser.error("an RBM cannot have Gaussian units in both layers")
    for visible, hidden, batch, k, _ in args.configs:
        rows = args.rows or rows_for(visible, hidden, batch, k, args.budget)
        if rows < batch:
            parser.error(f"--rows {rows} is fewer than the batch of {batch} in --configs")
        if visible == MNIST_WIDTH and rows > _common.MNIST_TRAIN_ROWS:
            # The rows would be MNIST's 60,000 under a batch's name that no
            # step ran.
            if args.rows:
                parser.error(f"--rows {rows} exceeds MNIST's {_common.MNIST_TRAIN_ROWS} "
                             "training images")
            parser.error(f"--configs {visible}x{hidden}:{batch}:{k} reads {rows} rows "
                         f"(10 batches at least) of MNIST's {_common.MNIST_TRAIN_ROWS}: "
                         "choose a smaller batch, or --rows")
    _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    info = _common.machine()  # the date and load at the start
    units = (args.visible, args.hidden)
    gaussian = args.visible == "gaussian"
    mnist, _ = _common.load_mnist("train", binarize=None if gaussian else "threshold",
                                  manual_dir=args.manual_dir, data_dir=args.data_dir)
    if gaussian:
        mnist = standardised(mnist)
    results, rows = [], []
    for config in args.configs:
        visible, hidden, batch, k, persistent = config
        n = args.rows or rows_for(visible, hidden, batch, k, args.budget)
        if visible == mnist.shape[1]:
            x = mnist[:n]
        elif gaussian:
            x = np.random.default_rng(0).standard_normal((n, visible)).astype("float32")
        else:
            x = (np.random.default_rng(0).random((n, visible)) < 0.2).astype("float32")
        load = _common.load_now()
        result = measure(config, x, args.reps, args.input, units)
        rate = result["samples_per_s"]
        name = f"{visible}x{hidden} b{batch} {'PCD' if persistent else 'CD'}-{k}"
        if units != ("bernoulli", "bernoulli"):
            name += f" {units[0][0].upper()}{units[1][0].upper()}"
        rows.append([name, len(x)] + [f"{rate[r]:,.0f}" for r in ROUTES] + [
            f"{rate['xla_chain'] / rate['graph']:.3f}", f"{rate['xla_chain'] / rate['xla']:.3f}",
            result["auto"],
        ])
        results.append(dict(visible=visible, hidden=hidden, batch=batch, k=k,
                            persistent=persistent, units=list(units), rows=len(x), load_at_start=load, **result))
        print(f"{name}: " + ", ".join(f"{r} {rate[r]:,.0f}/s" for r in ROUTES), flush=True)
    _common.print_table(
        ["step", "rows", "graph /s", "xla /s", "xla_chain /s", "chain/graph", "chain/xla", "auto"],
        rows,
    )
    _common.write_json(args.out, {"machine": info, "reps": args.reps,
                                  "budget_gflop": args.budget, "rows": args.rows,
                                  "input": args.input,
                                  "results": results})


if __name__ == "__main__":
    main()
