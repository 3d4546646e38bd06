"""Where a CD-k training step's time goes: TensorFlow's op profile of ``RBM.train_step``.

Runs ``RBM.train_step`` in a bare ``tf.function`` loop over binarised MNIST
batches (no ``fit()``, no input pipeline), times it, then traces one loop
with ``tf.profiler`` and sums each op's duration per step from the trace.
The GEMMs run on both cores and the executor starts independent ops side
by side, so the ops' durations add up to more than the step: the table
shows where the work is, the step time what it costs. With
``--inter-op-threads 1`` the executor runs one op at a time, each op's
duration is its own cost (no op slowed by another beside it), and the
durations add up to about the step. Each op is listed with the dtypes and
shapes it reads and writes, which tells the casts apart.

This is the profile behind the mixed-precision figures in
``benchmarks/RESULTS.md``: under ``mixed_bfloat16`` the GEMMs (with the
sigmoids fused into them) run about twice as fast as in float32, while
the rest of the step (the uniforms of the hidden sample, the statistics'
scaling, the monitors, the optimizer) stays float32 and the casts between
the two dtypes are added to it.

Writes the results to ``runs/benchmarks/step_profile.json`` (the
gitignored ``runs/`` folder; ``--out`` names another file), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.step_profile                          # mixed_bfloat16, 784x500, batch 1000
    python -m benchmarks.step_profile --dtype float32 --batch 100
    python -m benchmarks.step_profile --inter-op-threads 1   # ops one at a time
    python -m benchmarks.step_profile --dtype float32 --hidden 1000 --batch 200 --k 20
"""

import collections
import glob
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import _common  # noqa: E402

_GEMM_TYPES = {"MatMul", "_MklMatMul", "_MklNativeFusedMatMul", "_FusedMatMul", "BatchMatMulV2"}
_BATCHES = 20  # distinct batches the loop cycles through


def op_durations(trace_dir, steps):
    """Microseconds per step of each op in a ``tf.profiler`` trace.

    Args:
        trace_dir: the folder given to ``tf.profiler.experimental.start``.
        steps: how many steps the trace holds.

    Returns:
        A dict ``{(op name, op type): microseconds per step}`` over the
        TensorFlow executor's threads.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))
    if not files:
        raise RuntimeError(f"tf.profiler wrote no trace under {trace_dir}.")
    space = xplane_pb2.XSpace()
    with open(files[-1], "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                # "op:Type"; executor bookkeeping and thread-pool regions are
                # named "Class::Method".
                if ":" not in name.replace("::", ""):
                    continue
                op, op_type = name.rsplit(":", 1)
                op = op.rsplit("/while/", 1)[-1]  # the name inside the loop body
                totals[(op, op_type)] += event.duration_ps / 1e6 / steps
    return dict(totals)


def loop_body_signatures(function):
    """What each op of a traced ``tf.while_loop`` body reads and writes.

    Args:
        function: a `tf.function` whose graph holds one while loop.

    Returns:
        A dict ``{op name: "bfloat16[784,500] -> float32[784,500]"}`` for the
        loop body's ops (``?`` for a dimension unknown at tracing), named as
        `op_durations` names them; empty where the body cannot be found
        (the lookup reads the graph's function library, which TensorFlow
        does not document).
    """
    def describe(tensors):
        parts = []
        for t in tensors:
            dims = "?" if t.shape.rank is None else ",".join(
                "?" if d is None else str(d) for d in t.shape.as_list())
            parts.append(f"{t.dtype.name}[{dims}]")
        return ", ".join(parts)

    try:
        graph = function.get_concrete_function().graph
        loop_op = next(op for op in graph.get_operations() if op.type in ("While", "StatelessWhile"))
        body = graph._functions[loop_op.get_attr("body").name].graph
    except (AttributeError, KeyError, StopIteration, ValueError):
        return {}
    return {
        op.name.rsplit("while/", 1)[-1]: f"{describe(op.inputs)} -> {describe(op.outputs)}"
        for op in body.get_operations()
        if op.outputs
    }


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import non_negative_int, positive_int

    parser = _common.new_parser(__doc__)
    parser.add_argument("--hidden", type=positive_int, default=500, help="hidden units")
    parser.add_argument("--batch", type=positive_int, default=1000, help="batch size")
    parser.add_argument("--k", type=positive_int, default=1, help="Gibbs steps per update (CD-k)")
    parser.add_argument("--dtype", default="mixed_bfloat16", choices=["float32", "mixed_bfloat16"],
                        help="dtype policy of the RBM")
    parser.add_argument("--steps", type=positive_int, default=30, help="steps per timed loop")
    parser.add_argument("--reps", type=positive_int, default=7, help="timed loops (median reported)")
    parser.add_argument("--top", type=non_negative_int, default=25, help="ops listed one by one")
    parser.add_argument("--inter-op-threads", type=non_negative_int, default=0,
                        help="TensorFlow's inter-op threads (0: its default). With 1 the "
                             "executor runs one op at a time, so each op's duration is "
                             "its own cost and the durations add up to about the step")
    _common.add_io_arguments(parser, "step_profile")
    args = parser.parse_args(argv)
    if _BATCHES * args.batch > _common.MNIST_TRAIN_ROWS:
        parser.error(f"--batch {args.batch} needs {_BATCHES * args.batch} training images; "
                     f"MNIST has {_common.MNIST_TRAIN_ROWS}")
    _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_dbn

    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    info = _common.announce_machine()
    x, _ = _common.load_mnist("train", binarize="threshold", manual_dir=args.manual_dir,
                              data_dir=args.data_dir, limit=_BATCHES * args.batch)
    if len(x) < _BATCHES * args.batch:  # checked by parse_args for MNIST's 60,000
        raise SystemExit(f"--batch {args.batch} needs {_BATCHES * args.batch} training images.")
    data = tf.constant(np.asarray(x, dtype="float32").reshape(len(x), -1))
    rbm = keras_dbn.RBM(args.hidden, k=args.k, dtype=args.dtype, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    rbm.build((None, data.shape[1]))
    rbm.optimizer.build(rbm.trainable_variables)
    batch, steps = args.batch, args.steps

    @tf.function
    def loop():
        def body(i):
            first = (i % _BATCHES) * batch
            rbm.train_step(data[first:first + batch])
            return i + 1

        return tf.while_loop(lambda i: i < steps, body, [0])

    loop()  # trace and warm up
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        loop()
        times.append((time.perf_counter() - start) / steps * 1e3)
    step_ms = _common.median(times)

    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        loop()
        tf.profiler.experimental.stop()
        ops = op_durations(trace_dir, steps)

    summed = sum(ops.values())
    by_type = collections.Counter()
    for (_, op_type), us in ops.items():
        by_type["GEMM" if op_type in _GEMM_TYPES else op_type] += us
    gflops = (4 * args.k + 6) * batch * data.shape[1] * args.hidden / step_ms / 1e6
    print(f"\n{args.dtype}, CD-{args.k}, 784x{args.hidden}, batch {batch}: {step_ms:.2f} ms per step "
          f"(median of {args.reps} loops of {steps}; "
          f"{', '.join(f'{t:.2f}' for t in times)}), {batch / step_ms * 1e3:,.0f} samples/s, "
          f"{gflops:.0f} GFLOP/s; "
          f"ops' durations sum to {summed / 1e3:.2f} ms per step\n")
    _common.print_table(
        ["op type", "us per step", "share of op time"],
        [[t, f"{us:,.0f}", f"{us / summed:.1%}"] for t, us in by_type.most_common()],
    )
    ranked = sorted(ops.items(), key=lambda item: -item[1])
    signatures = loop_body_signatures(loop)
    if args.top > 0:
        print()
        _common.print_table(
            ["op", "type", "us per step", "reads -> writes"],
            [[op, op_type, f"{us:,.0f}", signatures.get(op, "")]
             for (op, op_type), us in ranked[:args.top]],
        )
    _common.write_json(args.out, {
        "machine": info,
        "command": " ".join(sys.argv),
        "result": {
            "dtype": args.dtype, "hidden": args.hidden, "batch": batch, "k": args.k,
            "gflops": gflops,
            "inter_op_threads": args.inter_op_threads or None,
            "step_ms": step_ms, "step_ms_all": times, "summed_op_us": summed,
            "by_type_us": dict(by_type),
            "ops_us": [{"op": op, "type": op_type, "us": us, "tensors": signatures.get(op)}
                       for (op, op_type), us in ranked],
        },
    })


if __name__ == "__main__":
    main()
