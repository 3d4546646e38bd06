"""Test log-likelihood of 500-hidden-unit RBMs on binarised MNIST.

Trains one RBM per method (CD-1, CD-k, PCD) on stochastically binarised
MNIST, estimates each model's log Z by AIS from the base-rate model with the
paper's 14,500-step schedule and 100 chains, and reports the average test
log-likelihood in nats beside Salakhutdinov & Murray's CD25(500) figure of
-86.34 nats (ICML 2008, table 1; their model trained far longer than the
default here, so expect a lower number unless ``--epochs`` is raised).

Usage::

    python benchmarks/rbm_loglik.py --epochs 20 --out results.json
    python -m benchmarks.rbm_loglik --quick           # a smoke run, ~1-2 min

References:
    Salakhutdinov & Murray, "On the Quantitative Analysis of Deep Belief
    Networks", ICML 2008.
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
from benchmarks._common import DEFAULT_MANUAL_DIR  # noqa: E402

PAPER_CD25_500 = -86.34


def load_mnist(split, manual_dir, data_dir, seed, limit=None):
    """Stochastically binarised MNIST as float32 arrays of shape (N, 784)."""
    from keras_dbn.datasets import load_numpy

    x, _ = load_numpy(
        "mnist", split, data_dir=data_dir, manual_dir=manual_dir,
        binarize="stochastic", seed=seed, limit=limit,
    )
    return x


def parse_method(name):
    """``"cd1"``, ``"cd25"``, ``"pcd"`` or ``"pcd5"`` -> (k, persistent)."""
    name = name.strip().lower()
    for prefix, persistent in (("pcd", True), ("cd", False)):
        if name.startswith(prefix):
            digits = name[len(prefix):]
            if digits == "" or digits.isdigit():
                return int(digits or 1), persistent
    raise ValueError(f"Unknown method {name!r}; use cd<k> or pcd[<k>].")


def train(method, x_train, args):
    import keras

    import keras_dbn

    k, persistent = parse_method(method)
    rbm = keras_dbn.RBM(
        args.hidden, k=k, persistent=persistent, num_chains=args.batch_size, seed=args.seed
    )
    rbm.initialize_visible_bias(x_train)
    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    # A linear decay to zero, as Tieleman (2008) used for PCD; the same for
    # every method keeps the comparison fair.
    schedule = keras.optimizers.schedules.PolynomialDecay(args.learning_rate, steps, 0.0)
    rbm.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=args.weight_decay)
    )
    start = time.perf_counter()
    rbm.fit(x_train, epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=args.verbose)
    return rbm, time.perf_counter() - start


def evaluate(rbm, x_train, x_test, args):
    from keras_dbn import evaluation

    start = time.perf_counter()
    ais = evaluation.ais_log_partition(
        rbm,
        num_chains=args.ais_chains,
        betas=evaluation.paper_betas(args.ais_steps),
        data=x_train,
        seed=args.seed,
    )
    ais_seconds = time.perf_counter() - start
    test_ll = evaluation.log_likelihood(rbm, x_test, log_z=ais.log_z)
    train_ll = evaluation.log_likelihood(rbm, x_train[: len(x_test)], log_z=ais.log_z)
    return {
        "log_z": ais.log_z,
        "log_z_low": ais.log_z_low,
        "log_z_high": ais.log_z_high,
        "ais_seconds": ais_seconds,
        "test_log_likelihood": test_ll,
        # log Z's interval maps to the likelihood's, the other way round.
        "test_log_likelihood_low": test_ll - (ais.log_z_high - ais.log_z),
        "test_log_likelihood_high": test_ll + (ais.log_z - ais.log_z_low),
        "train_log_likelihood": train_ll,
    }


def print_table(results):
    header = (
        f"{'method':<8} {'train s':>8} {'AIS s':>7} {'log Z':>9} {'log Z interval':>21} "
        f"{'train LL':>9} {'test LL':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in results:
        interval = f"[{row['log_z_low']:.2f}, {row['log_z_high']:.2f}]"
        print(
            f"{row['method']:<8} {row['train_seconds']:>8.1f} {row['ais_seconds']:>7.1f} "
            f"{row['log_z']:>9.2f} {interval:>21} {row['train_log_likelihood']:>9.2f} "
            f"{row['test_log_likelihood']:>9.2f}"
        )
    print(f"{'paper':<8} {'':>8} {'':>7} {'':>9} {'':>21} {'':>9} {PAPER_CD25_500:>9.2f}"
          "  (CD25(500), Salakhutdinov & Murray 2008)")


# --quick's values of the options a user does not give, and the defaults.
QUICK = {"methods": "cd1,cd10,pcd", "epochs": 1, "train_limit": 6000, "test_limit": 1000,
         "ais_chains": 20, "ais_steps": 500}
DEFAULTS = {"methods": "cd1,cd25,pcd", "epochs": 20, "train_limit": None, "test_limit": None,
            "ais_chains": 100, "ais_steps": 14500}


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import positive_float, positive_int, seed

    parser = _common.new_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=None,
                        help="comma-separated cd<k> / pcd[<k>] (default: cd1,cd25,pcd; "
                             "cd1,cd10,pcd with --quick)")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="training epochs per RBM (default: 20; 1 with --quick)")
    parser.add_argument("--hidden", type=positive_int, default=500, help="hidden units")
    parser.add_argument("--batch-size", type=positive_int, default=100,
                        help="batch size (and PCD's number of chains)")
    parser.add_argument("--learning-rate", type=positive_float, default=0.05,
                        help="initial SGD learning rate, decayed linearly to 0")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="SGD weight decay (>= 0)")
    parser.add_argument("--ais-chains", type=positive_int, default=None,
                        help="AIS chains (default: 100; 20 with --quick)")
    parser.add_argument("--ais-steps", type=positive_int, default=None,
                        help="AIS steps, at least 3 (default: the paper's 14,500; 500 with --quick)")
    parser.add_argument("--train-limit", type=positive_int, default=None,
                        help="use the first N training images (default: all; 6,000 with --quick)")
    parser.add_argument("--test-limit", type=positive_int, default=None,
                        help="use the first N test images (default: all; 1,000 with --quick)")
    parser.add_argument("--manual-dir", default=DEFAULT_MANUAL_DIR, help="folder of the MNIST source files")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir (TFDS default if unset)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2],
                        help="Keras' fit() verbosity")
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run: 1 epoch on 6,000 images, CD-1/CD-10/PCD, 20 AIS chains x 500 steps "
             "(for the options among these not given)",
    )
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:  # not given
            setattr(args, name, value)
    for method in args.methods.split(","):
        try:
            k, _ = parse_method(method)
        except ValueError as error:
            parser.error(f"--methods {args.methods!r}: {error}")
        if k < 1:
            parser.error(f"--methods {args.methods!r}: {method.strip()!r} needs k >= 1")
    if args.ais_steps < 3:
        parser.error(f"--ais-steps must be at least 3, got {args.ais_steps}")
    if not 0 <= args.weight_decay < float("inf"):
        parser.error(f"--weight-decay must be a finite number >= 0, got {args.weight_decay}")
    _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    import keras

    info = _common.machine()
    keras.utils.set_random_seed(args.seed)
    x_train = load_mnist("train", args.manual_dir, args.data_dir, args.seed, args.train_limit)
    x_test = load_mnist("test", args.manual_dir, args.data_dir, args.seed + 1, args.test_limit)
    print(
        f"MNIST (stochastically binarised): {len(x_train)} train, {len(x_test)} test; "
        f"{args.hidden} hidden units, {args.epochs} epochs, AIS {args.ais_chains} chains x "
        f"{args.ais_steps} steps"
    )
    results = []
    for method in args.methods.split(","):
        rbm, train_seconds = train(method, x_train, args)
        row = {"method": method.strip().lower(), "train_seconds": train_seconds}
        row.update(evaluate(rbm, x_train, x_test, args))
        results.append(row)
        print(
            f"{row['method']}: trained in {train_seconds:.1f} s, log Z = {row['log_z']:.2f} "
            f"[{row['log_z_low']:.2f}, {row['log_z_high']:.2f}], test LL = "
            f"{row['test_log_likelihood']:.2f} nats",
            flush=True,
        )
    print()
    print_table(results)
    if args.out:
        report = {
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "machine": info,
            "load_average_at_end": _common.load_now(),
            "paper_cd25_500_test_log_likelihood": PAPER_CD25_500,
            "results": results,
        }
        print()
        _common.write_json(args.out, report)  # an open end of an interval as null
    return results


if __name__ == "__main__":
    main()
