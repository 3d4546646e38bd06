"""Fine-tuning step speed: Keras' own ``fit`` against `SupervisedTrainer`.

For each classifier shape ``784-H1-H2-...:batch`` (sigmoid Dense layers,
each followed by dropout 0.2, then a 10-way softmax: what
`DBN.to_classifier(10, dropout=0.2)` builds), one process trains three
copies of the same randomly initialised classifier on the 60,000 MNIST
training images (``array_dataset``, 16 steps per execution, Adam 1e-3):

* ``keras_fit``: ``classifier.compile(adam, "sparse_categorical_crossentropy",
  metrics=["accuracy"])`` then ``classifier.fit``, the step in TensorFlow's
  graph with Keras' Dropout layers;
* ``trainer_graph``: `keras_dbn.SupervisedTrainer` with
  ``jit_compile=False``: dropout masks drawn in the graph, the step in the
  graph;
* ``trainer_xla``: `SupervisedTrainer` with its default
  ``jit_compile="auto"``: the masks drawn in the graph, the rest of the
  step one XLA function.

Each competitor first runs one untimed epoch (tracing, compiling), then
``--reps`` one-epoch ``fit`` calls in alternation. Reported: milliseconds
per step (median of the calls), the ratios to ``keras_fit``, and each
model's test accuracy after all its epochs (the same number for each: a
check that the faster steps train as well).

Writes the results to ``runs/benchmarks/fine_tuning.json`` (the
gitignored ``runs/`` folder; ``--out`` names another file), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.fine_tuning
    python -m benchmarks.fine_tuning --configs 784-1000-500:200 --reps 5
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import _common  # noqa: E402

COMPETITORS = ("keras_fit", "trainer_graph", "trainer_xla")
DEFAULT_CONFIGS = ["784-500-500-2000:100", "784-1000-500:200"]


def parse_config(text):
    """``"784-1000-500:200"`` -> ``((1000, 500), 200)`` (784 inputs)."""
    try:
        sizes, batch = text.split(":")
        widths = [int(n) for n in sizes.split("-")]
        batch = int(batch)
        if widths[0] != 784 or len(widths) < 2 or min(widths) < 1 or batch < 1:
            raise ValueError
        return tuple(widths[1:]), batch
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 784-H1-...:batch with positive sizes and batch, got {text!r}") from None


def trained_model(name, hidden):
    """``(model that fit() trains, the classifier inside it)``."""
    import keras

    import keras_dbn

    clf = _common.dropout_classifier(hidden)
    if name == "keras_fit":
        clf.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                    metrics=["accuracy"], steps_per_execution=16)
        return clf, clf
    trainer = keras_dbn.SupervisedTrainer(clf, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=16,
                    jit_compile="auto" if name == "trainer_xla" else False)
    return trainer, clf


def measure(hidden, batch, x, y, x_test, y_test, reps):
    import keras_dbn

    data = keras_dbn.array_dataset(x, y, batch_size=batch, seed=0)
    models = {name: trained_model(name, hidden) for name in COMPETITORS}
    for model, _ in models.values():
        model.fit(data, epochs=1, verbose=0, shuffle=False)
    seconds = {name: [] for name in COMPETITORS}
    for _ in range(reps):
        for name, (model, _) in models.items():
            start = time.perf_counter()
            model.fit(data, epochs=1, verbose=0, shuffle=False)
            seconds[name].append(time.perf_counter() - start)
    test = keras_dbn.array_dataset(x_test, y_test, batch_size=1000, shuffle=False)
    accuracy = {}
    for name, (_, clf) in models.items():
        clf.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        accuracy[name] = clf.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    steps = -(-len(x) // batch)
    return {"seconds": seconds, "steps_per_epoch": steps, "test_accuracy": accuracy,
            "ms_per_step": {n: 1e3 * _common.median(s) / steps for n, s in seconds.items()}}


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import positive_int

    parser = _common.new_parser(__doc__)
    parser.add_argument("--configs", nargs="+", type=parse_config,
                        default=[parse_config(c) for c in DEFAULT_CONFIGS],
                        help="784-H1-...:batch (default: %s)" % " ".join(DEFAULT_CONFIGS))
    parser.add_argument("--reps", type=positive_int, default=3,
                        help="timed one-epoch fit() calls per competitor")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="training rows (default all 60,000; fewer for quick trials)")
    _common.add_io_arguments(parser, "fine_tuning")
    args = parser.parse_args(argv)
    _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    info = _common.machine()  # the date and load at the start
    x, y, x_test, y_test = _common.load_train_test(args, limit=args.limit)
    results, rows = [], []
    for hidden, batch in args.configs:
        name = "784-" + "-".join(map(str, hidden)) + f"-10 b{batch}"
        load = _common.load_now()
        result = measure(hidden, batch, x, y, x_test, y_test, args.reps)
        ms = result["ms_per_step"]
        rows.append([name] + [f"{ms[c]:.2f}" for c in COMPETITORS]
                    + [f"{ms['keras_fit'] / ms[c]:.2f}" for c in COMPETITORS[1:]]
                    + [" / ".join(f"{result['test_accuracy'][c]:.4f}" for c in COMPETITORS)])
        results.append(dict(hidden=list(hidden), batch=batch, load_at_start=load, **result))
        print(f"{name}: " + ", ".join(f"{c} {ms[c]:.2f} ms" for c in COMPETITORS), flush=True)
    _common.print_table(
        ["classifier", "keras_fit ms/step", "trainer_graph", "trainer_xla",
         "keras/graph", "keras/xla", f"test accuracy after {args.reps + 1} epochs (same order)"],
        rows,
    )
    _common.write_json(args.out, {"machine": info, "reps": args.reps,
                                  "limit": args.limit, "results": results})


if __name__ == "__main__":
    main()
