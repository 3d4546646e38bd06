"""Does ``dtype="mixed_bfloat16"`` cost model quality? float32 vs bf16 RBMs.

Trains two 784x``--hidden`` CD-1 RBMs on binarised MNIST with the same
seed, data order and optimizer, one with the float32 policy and one with
``mixed_bfloat16`` (float32 weights and optimizer state; GEMMs and the
conditional means fused into them in bfloat16, Bernoulli draws from
float32 uniforms; the CD statistics summed in the GEMM's float32
accumulator, subtracted in float32 and applied to the float32 weights).
Both are then evaluated in float32 (the bf16 model's weights copied into
a float32 RBM): test
reconstruction error, mean test free energy and the AIS estimate of the
average test log-likelihood (same chains, schedule and seed for both), plus
the wall time of training.

Writes the results to ``runs/benchmarks/bf16_quality.json`` (the
gitignored ``runs/`` folder; ``--out`` names another file), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.bf16_quality                 # ~5 minutes
    python benchmarks/bf16_quality.py --epochs 1 --ais-steps 1000
"""

import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import _common  # noqa: E402


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import positive_float, positive_int

    parser = _common.new_parser(__doc__)
    parser.add_argument("--hidden", type=positive_int, default=500, help="hidden units")
    parser.add_argument("--epochs", type=positive_int, default=5, help="training epochs")
    parser.add_argument("--batch", type=positive_int, default=100, help="batch size")
    parser.add_argument("--lr", type=positive_float, default=0.05, help="SGD learning rate")
    parser.add_argument("--ais-steps", type=positive_int, default=5000,
                        help="AIS steps (at least 3) of the paper's schedule, scaled")
    parser.add_argument("--ais-chains", type=positive_int, default=100, help="AIS chains")
    _common.add_io_arguments(parser, "bf16_quality")
    args = parser.parse_args(argv)
    if args.ais_steps < 3:  # evaluation.paper_betas
        parser.error(f"--ais-steps must be at least 3, got {args.ais_steps}")
    _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    import keras

    import keras_dbn
    from keras_dbn import evaluation

    info = _common.announce_machine()
    x_train, _ = _common.load_mnist("train", binarize="threshold", manual_dir=args.manual_dir,
                                    data_dir=args.data_dir)
    x_test, _ = _common.load_mnist("test", binarize="threshold", manual_dir=args.manual_dir,
                                   data_dir=args.data_dir)
    results = {}
    for dtype in ("float32", "mixed_bfloat16"):
        keras.utils.set_random_seed(0)
        rbm = keras_dbn.RBM(args.hidden, k=1, seed=0, dtype=dtype)
        rbm.initialize_visible_bias(x_train)
        rbm.compile(optimizer=keras.optimizers.SGD(args.lr, momentum=0.9))
        start = time.perf_counter()
        rbm.fit(x_train, batch_size=args.batch, epochs=args.epochs, verbose=2)
        seconds = time.perf_counter() - start
        # Evaluate every model in float32.
        evaluated = keras_dbn.RBM(args.hidden, k=1, seed=0)
        evaluated.build((None, x_train.shape[1]))
        evaluated.set_weights([w.numpy() for w in (rbm.kernel, rbm.visible_bias, rbm.hidden_bias)])
        evaluated.compile()
        logs = evaluated.evaluate(x_test, batch_size=1000, verbose=0, return_dict=True)
        ais = evaluation.ais_log_partition(
            evaluated, num_chains=args.ais_chains, betas=evaluation.paper_betas(args.ais_steps),
            data=x_train, seed=0,
        )
        loglik = evaluation.log_likelihood(evaluated, x_test, log_z=ais.log_z)
        results[dtype] = {
            "train_seconds": round(seconds, 1),
            "test_reconstruction_error": logs["reconstruction_error"],
            "test_free_energy": logs["free_energy"],
            "log_z": ais.log_z,
            "log_z_interval": [ais.log_z_low, ais.log_z_high],
            "test_log_likelihood": loglik,
        }
        print(dtype, results[dtype], flush=True)
    print()
    _common.print_table(
        ["dtype", "train s", "test recon. error", "test free energy", "AIS log Z", "test log-lik (nats)"],
        [[d, r["train_seconds"], f"{r['test_reconstruction_error']:.5f}",
          f"{r['test_free_energy']:.2f}", f"{r['log_z']:.2f}", f"{r['test_log_likelihood']:.2f}"]
         for d, r in results.items()],
    )
    _common.write_json(args.out, {"machine": info, "command": " ".join(sys.argv),
                                  "settings": vars(args), "results": results,
                                  "load_average_at_end": _common.load_now()})
    return results


if __name__ == "__main__":
    main()
