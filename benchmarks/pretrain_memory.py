"""Peak memory of DBN pretraining as the training set grows.

Each measurement runs in a fresh Python process. It loads the data, notes
its resident set size (``VmRSS``: physical RAM held, TensorFlow's runtime
included), resets the kernel's peak mark (``/proc/self/clear_refs``) and
pretrains; the peak resident set size while pretraining (``VmHWM``) minus
the RSS before it is the memory pretraining adds. The DBN is the
MNIST one, 784-500-500-2000, one CD-1 epoch per RBM, batch 100, float32.
The training set is MNIST's 60,000 training images repeated ``r`` times,
given to ``DBN.pretrain`` in two ways:

* ``dataset``: a `tf.data.Dataset` over the 60,000 images held once,
  repeated ``r`` times, shuffled and batched. The data held in memory does
  not grow with ``r``; neither should anything else, since every upper
  layer's input is computed batch by batch as the data streams past.
* ``numpy``: one NumPy array of ``60,000 r`` rows, 64-byte aligned as
  `keras_dbn.datasets.load_numpy` returns arrays, so that the first layer
  reads it through a zero-copy view. The array itself grows
  with ``r``; on top of it ``pretrain`` caches hidden activations (two
  layers' at most at once, each only while it fits in ``cache_bytes``,
  2 GiB by default; streamed beyond that), so the memory pretraining adds
  grows with ``r`` up to that bound and no further. ``--cache-bytes 0``
  streams every upper layer, as for ``dataset`` input.

Writes the results to ``runs/benchmarks/pretrain_memory.json`` (the
gitignored ``runs/`` folder; ``--out`` names another file), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.pretrain_memory                 # ~6 minutes on 2 cores
    python benchmarks/pretrain_memory.py --repeats 1 2 --modes dataset
    python -m benchmarks.pretrain_memory --modes numpy --cache-bytes 0
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import _common  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _status_mib(field):
    """``VmRSS`` (resident now) or ``VmHWM`` (peak) of this process, MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"{field} not in /proc/self/status")


def _reset_peak():
    """Resets the kernel's peak-RSS mark (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_one(mode, repeats, layers, manual_dir, data_dir, cache_bytes=None):
    """One pretraining run in this process; returns its measurements."""
    import numpy as np
    import tensorflow as tf

    import keras_dbn
    from benchmarks.mnist_dbn import peak_rss_mib

    x, _ = _common.load_mnist("train", manual_dir=manual_dir, data_dir=data_dir)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if mode == "numpy":
        # 64-byte aligned, as `load_numpy` returns arrays: read through a
        # zero-copy view (`array_input`), the path most users' arrays take.
        data = keras_dbn.array_input.aligned_empty((repeats * len(x), x.shape[1]), x.dtype)
        data.reshape(repeats, len(x), -1)[:] = x
        del x
        data_mib = data.nbytes / 1024**2
    else:
        data = (tf.data.Dataset.from_tensor_slices(x).repeat(repeats)
                .shuffle(10000, seed=0).batch(100).prefetch(2))
        data_mib = x.nbytes / 1024**2
    peak_loading = peak_rss_mib()
    rss_before = _status_mib("VmRSS")
    # The peak of pretraining alone: loading MNIST through TFDS has a higher
    # transient peak than the data it leaves behind.
    peak_reset = _reset_peak()
    dbn = keras_dbn.DBN(layers, k=1, seed=0)
    start = time.perf_counter()
    dbn.pretrain(data, epochs=1, batch_size=100, verbose=0, cache_bytes=cache_bytes)
    seconds = time.perf_counter() - start
    peak = _status_mib("VmHWM") if peak_reset else peak_rss_mib()
    return {
        "mode": mode,
        "repeats": repeats,
        "cache_bytes": cache_bytes,
        "samples": 60000 * repeats,
        "data_mib": round(data_mib, 1),
        "peak_rss_mib_while_loading": round(peak_loading, 1),
        "rss_mib_before_pretraining": round(rss_before, 1),
        "peak_rss_mib_while_pretraining": round(peak, 1),
        "pretraining_peak_is_separate": peak_reset,
        "added_by_pretraining_mib": round(peak - rss_before, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "pretrain_seconds": round(seconds, 1),
    }


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import non_negative_int, positive_int

    parser = _common.new_parser(__doc__)
    parser.add_argument("--repeats", type=positive_int, nargs="+", default=[1, 2, 4, 8],
                        help="training-set sizes, in copies of MNIST's 60,000 images")
    parser.add_argument("--modes", nargs="+", default=["dataset", "numpy"],
                        choices=["dataset", "numpy"], help="input kinds (see above)")
    parser.add_argument("--layers", type=_common.layer_sizes_text, default="500,500,2000",
                        help="hidden layer sizes of the DBN")
    parser.add_argument("--cache-bytes", type=non_negative_int, default=None,
                        help="DBN.pretrain's cache_bytes for NumPy input (default: its own, "
                             "2 GiB; 0 streams every upper layer)")
    _common.add_io_arguments(parser, "pretrain_memory")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.child:
        _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    layers = [int(s) for s in args.layers.split(",")]

    if args.child:
        result = run_one(args.child[0], int(args.child[1]), layers, args.manual_dir, args.data_dir,
                         args.cache_bytes)
        print("RESULT " + json.dumps(result), flush=True)
        return result

    info = _common.announce_machine()
    results = []
    for mode in args.modes:
        for repeats in args.repeats:
            command = [sys.executable, "-m", "benchmarks.pretrain_memory", "--child", mode,
                       str(repeats), "--layers", args.layers, "--manual-dir", args.manual_dir]
            if args.data_dir:
                command += ["--data-dir", args.data_dir]
            if args.cache_bytes is not None:
                command += ["--cache-bytes", str(args.cache_bytes)]
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                sys.stderr.write(done.stderr[-3000:])
                raise SystemExit(f"the {mode} run with {repeats} copies failed "
                                 f"(exit {done.returncode})")
            result = json.loads(lines[-1][len("RESULT "):])
            results.append(result)
            print(f"{mode:8s} {result['samples']:>9,d} samples: RSS {result['rss_mib_before_pretraining']:,.0f}"
                  f" MiB before pretraining, peak {result['peak_rss_mib_while_pretraining']:,.0f} "
                  f"MiB while pretraining, {result['pretrain_seconds']} s", flush=True)
    print()
    _common.print_table(
        ["input", "samples", "data MiB", "RSS before MiB", "peak pretraining MiB",
         "added MiB", "pretrain s"],
        [[r["mode"], f"{r['samples']:,d}", f"{r['data_mib']:,.0f}",
          f"{r['rss_mib_before_pretraining']:,.0f}", f"{r['peak_rss_mib_while_pretraining']:,.0f}",
          f"{r['added_by_pretraining_mib']:,.0f}", r["pretrain_seconds"]] for r in results],
    )
    _common.write_json(args.out, {"machine": info, "command": " ".join(sys.argv),
                                  "architecture": "784-" + args.layers.replace(",", "-"),
                                  "results": results, "load_average_at_end": _common.load_now()})
    return results


if __name__ == "__main__":
    main()
