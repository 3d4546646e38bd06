"""CD-1 (or PCD-1) training throughput: keras_dbn ``RBM.fit`` vs scikit-learn vs bare GEMMs.

For every (batch size, hidden units) of the grid, one process measures, in
alternation and ``--reps`` times each, on the same data (binarised MNIST
training images, 784 visible units):

* ``keras_dbn``: ``RBM(hidden, k=1).fit(x, batch_size=B, epochs=E)`` with
  plain ``SGD(learning_rate)``, float32 and ``dtype="mixed_bfloat16"``,
  shuffling every epoch (Keras' default), or with ``--persistent``
  ``RBM(hidden, k=1, persistent=True, num_chains=B)``, scikit-learn's
  algorithm; and float32 with
  ``shuffle=False`` ("no shuffle"), which is what scikit-learn does (it
  cuts the same contiguous batches every epoch), so that row compares like
  with like. ``x`` comes from ``keras_dbn.datasets.load_numpy``, whose
  arrays are 64-byte aligned, so ``fit``'s input pipeline gathers each
  batch with ``tf.gather`` from a zero-copy view (``array_input``); the
  float32 "unaligned" row trains on the same values 16 bytes past a
  64-byte boundary (where NumPy puts large arrays), which ``fit`` reads
  through NumPy; and mixed bfloat16 on a bfloat16 copy of the same array
  ("bf16 data", exact for binarised images), which ``fit`` reads without
  widening each batch to float32 (half the bytes gathered, no cast);
  and float32 on the same images streamed by
  ``keras_dbn.datasets.load_dataset(..., binarize="threshold")`` ("streamed",
  TFDS's pipeline, shuffled by it, with the decoded images cached after
  the warm-up epoch), the input path of data that do not fit in memory;
* ``sklearn``: ``BernoulliRBM(hidden, learning_rate, batch_size=B, n_iter=E)``
  fitted on the same float32 array (its update is ``lr * mean gradient``,
  i.e. plain SGD at the same rate; it runs PCD-1 with one chain per example
  of the batch, the same five ``B x V x H`` GEMMs per step), once with
  OpenBLAS's default thread count and once limited to one thread
  (threadpoolctl); ratios use the faster of the two;
* ``gemm``: the GEMMs of CD-1 steps alone (``v W``, ``h W^T``, ``v W`` and
  the ``V x 2B x H`` statistics product, on the same data batches), run back
  to back in one ``tf.function`` loop by ``tf.matmul``, float32 and
  bfloat16: the rate the machine's GEMM reaches at these shapes, i.e. the
  physical limit of a step (no sigmoid, sampling, update or monitoring).

Both training competitors are timed over one whole ``fit()`` call of ``E``
epochs (``--epochs``, default 3), so everything a user waits for is counted,
including each library's per-call set-up (for Keras: converting the NumPy
array to a tensor and building the input pipeline, ~0.2-0.9 s per call on
the 2-core machine). ``--epochs 1`` shows the cost of one-epoch calls. A
callback also times each epoch inside ``fit()``; "epochs alone" is the rate
of those epochs (median epoch time), i.e. the steady training rate without
the per-call set-up.

One CD-k step costs ``(4k + 6) * B * V * H`` FLOPs (10 B V H for CD-1); every
GFLOP/s figure below counts FLOPs that way. Each figure is the median of the
repetitions; ratios are taken between medians of the same run.

Writes the results to ``runs/benchmarks/rbm_throughput.json`` (the
gitignored ``runs/`` folder; ``--out`` names another file), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.rbm_throughput                   # full grid
    python benchmarks/rbm_throughput.py --quick           # 784x500 only
    python -m benchmarks.rbm_throughput --quick --reps 5  # --quick, but 5 repetitions
    python -m benchmarks.rbm_throughput --batch 100 --hidden 500 --dtypes float32
    python -m benchmarks.rbm_throughput --persistent      # PCD-1, as scikit-learn
"""

import gc
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402

VISIBLE = 784
MAX_SAMPLES = _common.MNIST_TRAIN_ROWS


def step_flops(batch, visible, hidden, k=1):
    return (4 * k + 6) * batch * visible * hidden


def samples_for(hidden, seconds_at_100_gflops, cap):
    """Samples per timed run so that one run lasts about the given time
    (at least 2,000), at most ``cap``."""
    n = seconds_at_100_gflops * 100e9 / step_flops(1, VISIBLE, hidden)
    return min(cap, max(2000, int(min(n, cap))))  # --max-samples caps it last


def make_keras(hidden, batch, dtype, lr, x, epochs, shuffle=True, persistent=False):
    import keras

    import keras_dbn

    chains = {"persistent": True, "num_chains": batch} if persistent else {}
    rbm = keras_dbn.RBM(hidden, k=1, seed=0, dtype=dtype, **chains)
    rbm.compile(optimizer=keras.optimizers.SGD(learning_rate=lr))
    streamed = not isinstance(x, np.ndarray)
    if streamed:  # trace once, and fill the pipeline's cache of decoded images
        rbm.fit(x, epochs=1, verbose=0)
    arrays = {} if streamed else {"batch_size": batch, "shuffle": shuffle}
    if not streamed:
        # Trace once, on the array the timed calls read: `fit` chooses its
        # step's route and XLA chain by the number of rows, so a warm-up on
        # a slice left the first timed call to trace again (~0.25 s).
        rbm.fit(x, epochs=1, verbose=0, **arrays)
    epoch_seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.start)

    def run():
        start = time.perf_counter()
        rbm.fit(x, epochs=epochs, verbose=0, callbacks=[EpochTimer()], **arrays)
        return time.perf_counter() - start

    run.epoch_seconds = epoch_seconds
    return run


def unaligned(x):
    """A copy of ``x`` 16 bytes past a 64-byte boundary, like a large NumPy
    allocation: ``RBM.fit`` reads it through NumPy, not a zero-copy view."""
    from keras_dbn import array_input

    out = array_input.aligned_empty((x.size + 4,), x.dtype)[4:].reshape(x.shape)
    out[...] = x
    assert not array_input.is_aligned(out)
    return out


def streamed_mnist(n, batch, args):
    """The first ``n`` MNIST training images, threshold-binarised like the
    arrays, as `keras_dbn.datasets.load_dataset` streams them."""
    from keras_dbn import datasets

    return datasets.load_dataset(
        "mnist", f"train[:{n}]", batch_size=batch, seed=0, binarize="threshold", labels=False,
        data_dir=args.data_dir, manual_dir=args.manual_dir,
    )


def make_sklearn(hidden, batch, lr, x, epochs, blas_threads=None):
    from sklearn.neural_network import BernoulliRBM
    from threadpoolctl import threadpool_limits

    def run():
        model = BernoulliRBM(hidden, learning_rate=lr, batch_size=batch, n_iter=epochs,
                             random_state=0)
        with threadpool_limits(blas_threads):
            start = time.perf_counter()
            model.fit(x)
            return time.perf_counter() - start

    return run


def make_gemm(hidden, batch, dtype, x):
    """The GEMMs of CD-1 steps over ``x``, nothing else, in one compiled loop."""
    import tensorflow as tf

    tf_dtype = tf.bfloat16 if dtype == "bfloat16" else tf.float32
    data = tf.constant(x, dtype=tf_dtype)
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(0, 0.01, (VISIBLE, hidden)), dtype=tf_dtype)
    steps = len(x) // batch

    @tf.function
    def loop():
        acc = tf.zeros((), tf_dtype)
        for i in tf.range(steps):
            v = data[i * batch:(i + 1) * batch]
            h = tf.matmul(v, w)                                     # B V H
            r = tf.matmul(h, w, transpose_b=True)                   # B V H
            h1 = tf.matmul(r, w)                                    # B V H
            s = tf.matmul(tf.concat([v, r], 0), tf.concat([h, h1], 0),
                          transpose_a=True)                          # 2 B V H
            acc += s[0, 0]
        return acc

    loop()

    def run():
        start = time.perf_counter()
        loop().numpy()
        return time.perf_counter() - start

    return run, steps * batch


# --quick's values of the options a user does not give.
QUICK = {"hidden": [500], "reps": 2, "seconds": 1.5}
DEFAULTS = {"hidden": [500, 2000, 4000], "reps": 3, "seconds": 3.0}


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import positive_float, positive_int

    parser = _common.new_parser(__doc__)
    parser.add_argument("--batch", type=positive_int, nargs="+", default=[100, 1000],
                        help="batch sizes of the grid")
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=None,
                        help="hidden units of the grid (default: 500 2000 4000; 500 with --quick)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "mixed_bfloat16"],
                        choices=["float32", "mixed_bfloat16"], help="dtype policies of keras_dbn")
    parser.add_argument("--reps", type=positive_int, default=None,
                        help="repetitions per competitor (default: 3; 2 with --quick)")
    parser.add_argument("--seconds", type=positive_float, default=None,
                        help="size each timed run to last about this long at 100 GFLOP/s "
                             "(default: 3.0; 1.5 with --quick)")
    parser.add_argument("--max-samples", type=positive_int, default=MAX_SAMPLES,
                        help="most training images per timed run")
    parser.add_argument("--lr", type=positive_float, default=0.05, help="SGD learning rate")
    parser.add_argument("--epochs", type=positive_int, default=3,
                        help="epochs per timed fit() call of the training competitors")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn's rows")
    parser.add_argument("--no-unshuffled", action="store_true",
                        help="skip the float32 shuffle=False row")
    parser.add_argument("--no-unaligned", action="store_true",
                        help="skip the float32 row on an unaligned copy (NumPy input path)")
    parser.add_argument("--no-stream", action="store_true",
                        help="skip the float32 row on the images streamed by "
                             "datasets.load_dataset")
    parser.add_argument("--no-bf16-data", action="store_true",
                        help="skip the mixed bfloat16 row on a bfloat16 copy of the data")
    parser.add_argument("--persistent", action="store_true",
                        help="keras_dbn trains by PCD-1 with one chain per example of the "
                             "batch, scikit-learn's algorithm, instead of CD-1")
    parser.add_argument("--quick", action="store_true",
                        help="784x500 only, 2 repetitions, shorter runs (for the options "
                             "among --hidden, --reps and --seconds not given)")
    _common.add_io_arguments(parser, "rbm_throughput")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.max_samples > MAX_SAMPLES:
        parser.error(f"--max-samples {args.max_samples} exceeds MNIST's {MAX_SAMPLES} "
                     "training images")
    for batch in args.batch:
        for hidden in args.hidden:
            n = samples_for(hidden, args.seconds, args.max_samples)
            if batch > n:
                parser.error(f"--batch {batch} exceeds the {n} samples of a timed run at "
                             f"--hidden {hidden}; raise --seconds or --max-samples, or "
                             "lower --batch")
    _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    from keras_dbn import hardware

    info = _common.machine()
    # Without bfloat16 instructions TensorFlow emulates bfloat16 GEMMs, and the
    # mixed policy cannot beat float32 (keras_dbn.hardware).
    info["native_bfloat16"] = hardware.native_bfloat16()
    print(f"machine: {info}", flush=True)
    x, _ = _common.load_mnist("train", binarize="threshold", manual_dir=args.manual_dir,
                              data_dir=args.data_dir)
    x = np.ascontiguousarray(x, dtype=np.float32)
    from keras_dbn import array_input

    info["input_aligned"] = array_input.is_aligned(x)
    print(f"training array 64-byte aligned (zero-copy input path): {info['input_aligned']}",
          flush=True)

    pcd = {"persistent": args.persistent}
    results = []
    for batch in args.batch:
        for hidden in args.hidden:
            n = samples_for(hidden, args.seconds, args.max_samples)
            n -= n % batch
            xs = x[:n]
            flops_per_sample = step_flops(1, VISIBLE, hidden)
            competitors = {}
            for dtype in args.dtypes:
                competitors[f"keras_dbn {dtype}"] = (
                    make_keras(hidden, batch, dtype, args.lr, xs, args.epochs, **pcd),
                    n * args.epochs)
                if dtype == "float32" and not args.no_unshuffled:
                    competitors["keras_dbn float32 no shuffle"] = (
                        make_keras(hidden, batch, dtype, args.lr, xs, args.epochs, shuffle=False,
                                   **pcd),
                        n * args.epochs)
                if dtype == "float32" and not args.no_unaligned:
                    competitors["keras_dbn float32 unaligned"] = (
                        make_keras(hidden, batch, dtype, args.lr, unaligned(xs), args.epochs,
                                   **pcd),
                        n * args.epochs)
                if dtype == "float32" and not args.no_stream:
                    competitors["keras_dbn float32 streamed"] = (
                        make_keras(hidden, batch, dtype, args.lr, streamed_mnist(n, batch, args),
                                   args.epochs, **pcd),
                        n * args.epochs)
                if dtype == "mixed_bfloat16" and not args.no_bf16_data:
                    xs16 = array_input.as_aligned(xs, dtype="bfloat16")
                    competitors["keras_dbn mixed_bfloat16 bf16 data"] = (
                        make_keras(hidden, batch, dtype, args.lr, xs16, args.epochs, **pcd),
                        n * args.epochs)
            if not args.no_sklearn:
                # OpenBLAS with all cores collapses (busy-waiting threads) when
                # other processes share the cores; one thread does not. Both
                # are measured and sklearn is credited with the faster.
                competitors["sklearn BernoulliRBM"] = (
                    make_sklearn(hidden, batch, args.lr, xs, args.epochs), n * args.epochs)
                competitors["sklearn BernoulliRBM 1 thread"] = (
                    make_sklearn(hidden, batch, args.lr, xs, args.epochs, blas_threads=1),
                    n * args.epochs)
            for dtype in ["float32"] + (["bfloat16"] if "mixed_bfloat16" in args.dtypes else []):
                run, samples = make_gemm(hidden, batch, dtype, xs)
                competitors[f"gemm {dtype}"] = (run, samples)
            times = {name: [] for name in competitors}
            loads = []
            for _ in range(args.reps):  # alternate the competitors
                for name, (run, _samples) in competitors.items():
                    times[name].append(run())
                loads.append(_common.load_now())
                gc.collect()
            rows = {}
            for name, (_run, samples) in competitors.items():
                rates = [samples / t for t in times[name]]
                rate = _common.median(rates)
                rows[name] = {
                    "samples_per_s": rate,
                    "samples_per_s_all": rates,
                    "gflops": rate * flops_per_sample / 1e9,
                    "samples": samples,
                }
                if getattr(_run, "epoch_seconds", None):
                    # Epochs alone, as timed by a callback inside fit(): the
                    # steady rate, without fit()'s per-call set-up.
                    rows[name]["epoch_samples_per_s"] = n / _common.median(_run.epoch_seconds)
            entry = {"batch": batch, "visible": VISIBLE, "hidden": hidden, "samples": n,
                     "epochs_per_fit": args.epochs,
                     "load_average": loads, "competitors": rows}
            f32 = rows.get("keras_dbn float32")
            sk = [r["samples_per_s"] for name, r in rows.items() if name.startswith("sklearn")]
            if sk:
                entry["sklearn_best_samples_per_s"] = max(sk)
            if f32:
                if sk:
                    entry["float32_vs_sklearn"] = f32["samples_per_s"] / max(sk)
                entry["float32_fraction_of_gemm"] = f32["gflops"] / rows["gemm float32"]["gflops"]
                if sk:
                    entry["float32_epochs_vs_sklearn"] = f32["epoch_samples_per_s"] / max(sk)
                entry["float32_epochs_fraction_of_gemm"] = (
                    f32["epoch_samples_per_s"] / rows["gemm float32"]["samples_per_s"])
                for variant in ("no_shuffle", "unaligned", "streamed"):  # the other float32 rows
                    row = rows.get("keras_dbn float32 " + variant.replace("_", " "))
                    if row and sk:
                        entry[f"float32_{variant}_vs_sklearn"] = row["samples_per_s"] / max(sk)
                    if row:
                        entry[f"float32_{variant}_fraction_of_gemm"] = (
                            row["samples_per_s"] / rows["gemm float32"]["samples_per_s"])
                        entry[f"float32_{variant}_vs_float32"] = (
                            row["samples_per_s"] / f32["samples_per_s"])
                for name, key in (("keras_dbn mixed_bfloat16", "bf16_vs_float32"),
                                  ("keras_dbn mixed_bfloat16 bf16 data", "bf16_data_vs_float32")):
                    if name in rows:
                        entry[key] = rows[name]["samples_per_s"] / f32["samples_per_s"]
            results.append(entry)
            print(f"\nbatch {batch}, {VISIBLE}x{hidden}, {n} samples x {args.epochs} epochs per fit, "
                  f"median of {args.reps}, load {loads}", flush=True)
            _common.print_table(
                ["competitor", "samples/s", "GFLOP/s", "all samples/s", "epochs alone samples/s"],
                [[name, f"{r['samples_per_s']:.0f}", f"{r['gflops']:.1f}",
                  " ".join(f"{v:.0f}" for v in r["samples_per_s_all"]),
                  f"{r['epoch_samples_per_s']:.0f}" if "epoch_samples_per_s" in r else ""]
                 for name, r in rows.items()],
            )
            for key in ("float32_vs_sklearn", "float32_fraction_of_gemm", "bf16_vs_float32",
                        "bf16_data_vs_float32",
                        "float32_epochs_vs_sklearn", "float32_epochs_fraction_of_gemm",
                        "float32_no_shuffle_vs_sklearn", "float32_no_shuffle_fraction_of_gemm",
                        "float32_unaligned_vs_sklearn", "float32_unaligned_fraction_of_gemm",
                        "float32_streamed_vs_sklearn", "float32_streamed_vs_float32"):
                if key in entry:
                    print(f"  {key}: {entry[key]:.2f}")
            sys.stdout.flush()

    _common.write_json(args.out, {"machine": info, "command": " ".join(sys.argv),
                                  "lr": args.lr, "reps": args.reps,
                                  "persistent": args.persistent, "results": results})
    return results


if __name__ == "__main__":
    main()
