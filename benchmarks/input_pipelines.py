"""Input pipelines for fine-tuning a classifier on NumPy arrays, and their stalls.

Every ``tf.data`` iterator whose options leave autotuning on (TensorFlow's
default, and what Keras builds for NumPy arrays passed to ``fit``,
``evaluate`` and ``predict``) runs a model thread that wakes 10, 30, 70,
..., 10 * (2**n - 1) ms after the iterator starts. When the iterator is
destroyed (at the end of each Keras epoch, of each ``fit``, ``evaluate``
and ``predict`` call), that thread is often not woken, and the caller
waits for its next wake: up to as long again as the iterator had lived.
This script measures what that costs in the usual ways of training a
Keras model on arrays, with a 784-500-500-2000-10 sigmoid classifier (the
MNIST DBN's, randomly initialised: the pipelines do not depend on the
weights), dropout 0.2 and Adam, on real MNIST. Competitors, timed in
alternation, ``--reps`` times each, after one untimed call apiece:

* ``keras_arrays``: ``fit(x, y, batch_size=B, validation_data=(x_test,
  y_test), validation_batch_size=1000)``, Keras' own array pipeline;
* ``tfdata_default``: the ``tf.data`` guide's pipeline,
  ``from_tensor_slices((x, y)).shuffle(n).batch(B).prefetch(AUTOTUNE)``,
  and the test set batched the same way without shuffling;
* ``tfdata_lean``: the same pipelines with
  ``keras_dbn.array_input.lean_options()`` (one thread, autotuning off):
  the only difference from ``tfdata_default`` is those options;
* ``array_dataset``: ``keras_dbn.array_dataset(x, y, batch_size=B)`` and
  ``array_dataset(x_test, y_test, batch_size=1000, shuffle=False)``.

Each ``fit`` call runs ``--epochs`` epochs with validation. Reported per
competitor: samples/s over all its calls together (what a user waits
for) and in its median call (which hides a stall in one call of three),
the median and slowest epoch, and the longest wait between the end of
the last epoch and ``fit`` returning (the last iterators' teardown). Then ``evaluate`` on the 10,000 test images at
batch 1000, Keras' arrays against ``array_dataset``, ``--reps`` times
each in alternation.

Last, ``RBM.fit`` (784x500, CD-1, batch 100, ``--rbm-epochs`` epochs per
call, binarised MNIST) on the guide's pipeline of the training images,
``from_tensor_slices(x).shuffle(n).batch(100).prefetch(AUTOTUNE)``: as it
is (``RBM.fit`` turns autotuning off, `keras_dbn.array_input.
without_autotuning`) against the same pipeline with
``options.autotune.enabled = True`` set, which ``RBM.fit`` keeps (what
every pipeline ran with before), ``--reps`` calls each in alternation.

First, the mechanism alone (``--lifetimes``): an iterator over
``from_tensor_slices(x).batch(100).repeat().prefetch(2)`` is read for a
given time, then deleted, and the deletion timed; with TensorFlow's
default options and with autotuning off (`keras_dbn.array_input.
untuned_options`), in alternation, for lifetimes spread evenly on a log
scale (1 to ~8 s by default), so that they fall anywhere between two
wakes of the model thread.

Writes the results to ``runs/benchmarks/input_pipelines.json`` (the
gitignored ``runs/`` folder; ``--out`` names another file), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.input_pipelines
    python benchmarks/input_pipelines.py --epochs 3 --reps 4
"""

import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import _common  # noqa: E402

COMPETITORS = ("keras_arrays", "tfdata_default", "tfdata_lean", "array_dataset")
LAYERS = (500, 500, 2000)


def classifier(seed=0):
    """The MNIST DBN's classifier shape, compiled for Keras' own ``fit``."""
    import keras

    model = _common.dropout_classifier(LAYERS, seed)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=16)
    return model


def fit_inputs(name, x, y, x_test, y_test, batch):
    """``(fit args, fit kwargs)`` of one competitor."""
    import tensorflow as tf

    import keras_dbn
    from keras_dbn import array_input

    if name == "keras_arrays":
        return (x, y), dict(batch_size=batch, validation_data=(x_test, y_test),
                            validation_batch_size=1000, shuffle=True)
    if name == "array_dataset":
        return ((keras_dbn.array_dataset(x, y, batch_size=batch, seed=0),),
                dict(validation_data=keras_dbn.array_dataset(
                    x_test, y_test, batch_size=1000, shuffle=False), shuffle=False))
    train = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0)
             .batch(batch).prefetch(tf.data.AUTOTUNE))
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(1000)
    test = test.prefetch(tf.data.AUTOTUNE)
    if name == "tfdata_lean":
        train = train.with_options(array_input.lean_options())
        test = test.with_options(array_input.lean_options())
    return (train,), dict(validation_data=test, shuffle=False)


def timed_fit(model, inputs, epochs):
    """Seconds of the whole call, of each epoch, and after the last epoch."""
    import keras

    marks = {"epochs": []}

    class Marks(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks["begin"] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            marks["end"] = time.perf_counter()
            marks["epochs"].append(marks["end"] - marks["begin"])

    args, kwargs = inputs
    start = time.perf_counter()
    model.fit(*args, epochs=epochs, verbose=0, callbacks=[Marks()], **kwargs)
    stop = time.perf_counter()
    return {"seconds": stop - start, "epochs": marks["epochs"], "after_last_epoch": stop - marks["end"]}


def timed_evaluate(model, data, labels=None):
    start = time.perf_counter()
    if labels is None:
        model.evaluate(data, verbose=0)
    else:
        model.evaluate(data, labels, batch_size=1000, verbose=0)
    return time.perf_counter() - start


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import non_negative_int, positive_float, positive_int

    parser = _common.new_parser(__doc__)
    parser.add_argument("--epochs", type=positive_int, default=2, help="epochs per fit call")
    parser.add_argument("--reps", type=positive_int, default=3, help="timed calls per competitor")
    parser.add_argument("--batch", type=positive_int, default=100, help="training batch size")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="training rows (default all)")
    parser.add_argument("--lifetimes", type=positive_float, nargs="*",
                        default=[round(2 ** (i / 3), 2) for i in range(10)],
                        help="seconds each timed iterator lives in the first part "
                        "(default 1 to 8 s, evenly on a log scale; none skips it)")
    parser.add_argument("--rbm-epochs", type=non_negative_int, default=3,
                        help="epochs per RBM.fit call in the last part (0 skips it)")
    parser.add_argument("--competitors", nargs="*", choices=COMPETITORS, default=list(COMPETITORS),
                        help="classifier fit() competitors (none skips that part)")
    _common.add_io_arguments(parser, "input_pipelines")
    args = parser.parse_args(argv)
    _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    info = _common.machine()  # the date and load at the start
    x, y, x_test, y_test = _common.load_train_test(args, limit=args.limit)
    if args.lifetimes:
        waits = teardown_waits(x, args.lifetimes)
        print(f"\niterator deletion after {len(args.lifetimes)} lifetimes of "
              f"{min(args.lifetimes):.1f}-{max(args.lifetimes):.1f} s")
        _common.print_table(
            ["autotuning", "deletion s (median)", "(slowest)", "waits over 0.1 s",
             "total wait / total lifetime"],
            [[name, f"{_common.median(w):.3f}", f"{max(w):.2f}",
              f"{sum(v > 0.1 for v in w)} of {len(w)}",
              f"{sum(w) / sum(args.lifetimes):.1%}"] for name, w in waits.items()],
        )
    else:
        waits = {}
    runs, summary, evaluations = {}, {}, {}
    if args.competitors:
        runs, summary, evaluations = classifier_fits(args, x, y, x_test, y_test)
    rbm_runs = rbm_fits(x, args.rbm_epochs, args.reps) if args.rbm_epochs else {}
    if rbm_runs:
        print(f"\nRBM.fit 784x500 CD-1, batch 100, {args.rbm_epochs} epochs of {len(x):,} "
              f"binarised rows on a tf.data pipeline; {args.reps} calls each")
        _common.print_table(
            ["autotuning", "samples/s (all calls)", "samples/s (median call)",
             "slowest call s", "after last epoch s (slowest)"],
            [[name, f"{args.rbm_epochs * len(x) * len(r) / sum(c['seconds'] for c in r):,.0f}",
              f"{args.rbm_epochs * len(x) / _common.median([c['seconds'] for c in r]):,.0f}",
              f"{max(c['seconds'] for c in r):.2f}",
              f"{max(c['after_last_epoch'] for c in r):.2f}"] for name, r in rbm_runs.items()],
        )
    _common.write_json(args.out, {"machine": info, "epochs": args.epochs,
                                  "batch": args.batch, "rows": len(x), "reps": args.reps,
                                  "fit": runs, "summary": summary,
                                  "evaluate_seconds": evaluations,
                                  "rbm_epochs": args.rbm_epochs, "rbm_fit": rbm_runs,
                                  "lifetimes_s": args.lifetimes, "deletion_s": waits})


def teardown_waits(x, lifetimes):
    """Seconds that deleting an iterator took after each lifetime, with
    TensorFlow's default options and with autotuning off."""
    import tensorflow as tf

    from keras_dbn import array_input

    base = tf.data.Dataset.from_tensor_slices(x).batch(100).repeat().prefetch(2)
    pipelines = {"default (on)": base,
                 "off (untuned_options)": base.with_options(array_input.untuned_options())}
    waits = {name: [] for name in pipelines}
    for lifetime in lifetimes:
        for name, pipeline in pipelines.items():
            iterator = iter(pipeline)
            start = time.perf_counter()
            while time.perf_counter() - start < lifetime:
                next(iterator)
            start = time.perf_counter()
            del iterator
            waits[name].append(time.perf_counter() - start)
    return waits


def classifier_fits(args, x, y, x_test, y_test):
    """The classifier's ``fit`` calls and ``evaluate`` calls of each competitor;
    prints their tables and returns (runs, summary, evaluation seconds)."""
    import keras_dbn

    models = {name: classifier() for name in args.competitors}
    inputs = {name: fit_inputs(name, x, y, x_test, y_test, args.batch)
              for name in args.competitors}
    for name, model in models.items():  # trace and compile
        timed_fit(model, inputs[name], 1)
    runs = {name: [] for name in args.competitors}
    for rep in range(args.reps):
        for name, model in models.items():
            runs[name].append(dict(timed_fit(model, inputs[name], args.epochs),
                                   load=_common.load_now()))
            run = runs[name][-1]
            print(f"rep {rep} {name}: {run['seconds']:.2f} s, epochs "
                  + " ".join(f"{s:.2f}" for s in run["epochs"])
                  + f", after the last epoch {run['after_last_epoch']:.2f} s", flush=True)

    rows, summary = [], {}
    baseline = None
    for name in args.competitors:
        seconds = [run["seconds"] for run in runs[name]]
        epochs = [s for run in runs[name] for s in run["epochs"]]
        after = [run["after_last_epoch"] for run in runs[name]]
        rate = args.epochs * len(x) * len(seconds) / sum(seconds)
        median_rate = args.epochs * len(x) / _common.median(seconds)
        baseline = baseline or rate
        summary[name] = {"samples_per_s": rate, "samples_per_s_median_call": median_rate,
                         "median_epoch_s": _common.median(epochs),
                         "slowest_epoch_s": max(epochs), "median_after_last_epoch_s":
                         _common.median(after), "slowest_after_last_epoch_s": max(after)}
        rows.append([name, f"{rate:,.0f}", f"{rate / baseline:.2f}", f"{median_rate:,.0f}",
                     f"{_common.median(epochs):.2f}", f"{max(epochs):.2f}",
                     f"{max(after):.2f}"])
    print(f"\nfit(): {args.epochs} epochs of {len(x):,} rows, batch {args.batch}, "
          f"validation on {len(x_test):,}; {args.reps} calls each")
    _common.print_table(["input", "samples/s (all calls)", f"vs {args.competitors[0]}",
                         "samples/s (median call)", "epoch s (median)", "epoch s (slowest)",
                         "after last epoch s (slowest)"], rows)

    model = next(iter(models.values()))
    test_ds = keras_dbn.array_dataset(x_test, y_test, batch_size=1000, shuffle=False)
    timed_evaluate(model, x_test, y_test)
    timed_evaluate(model, test_ds)
    evaluations = {"keras_arrays": [], "array_dataset": []}
    for _ in range(args.reps * 3):
        evaluations["keras_arrays"].append(timed_evaluate(model, x_test, y_test))
        evaluations["array_dataset"].append(timed_evaluate(model, test_ds))
    print(f"\nevaluate() on {len(x_test):,} rows, batch 1000; seconds per call")
    _common.print_table(
        ["input", "median", "slowest", "calls"],
        [[name, f"{_common.median(t):.3f}", f"{max(t):.3f}", len(t)]
         for name, t in evaluations.items()],
    )
    return runs, summary, evaluations


def rbm_fits(x, epochs, reps):
    """`RBM.fit` on a default pipeline (autotuning turned off by `fit`) and
    on the same pipeline with autotuning set on; the `timed_fit` of each call."""
    import keras
    import tensorflow as tf

    import keras_dbn

    binary = (x > 0.5).astype("float32")
    pipeline = (tf.data.Dataset.from_tensor_slices(binary).shuffle(len(binary), seed=0)
                .batch(100).prefetch(tf.data.AUTOTUNE))
    kept_on = tf.data.Options()
    kept_on.autotune.enabled = True
    inputs = {"off (RBM.fit's default)": pipeline, "on (set by the pipeline)":
              pipeline.with_options(kept_on)}
    models = {}
    for name in inputs:
        models[name] = keras_dbn.RBM(500, k=1, seed=0)
        models[name].compile(optimizer=keras.optimizers.SGD(0.05))
        timed_fit(models[name], ((inputs[name],), {}), 1)  # trace and compile
    runs = {name: [] for name in inputs}
    for _ in range(reps):
        for name, data in inputs.items():
            runs[name].append(dict(timed_fit(models[name], ((data,), {}), epochs),
                                   load=_common.load_now()))
            print(f"RBM.fit, autotuning {name}: {runs[name][-1]['seconds']:.2f} s", flush=True)
    return runs


if __name__ == "__main__":
    main()
