"""Few labels: DBN-initialised vs randomly initialised classifiers on MNIST.

A DBN (784-500-500-2000 by default) is pretrained once on all 60,000
unlabelled training images (or loaded with ``--dbn``, e.g. the one that
``benchmarks/mnist_dbn.py`` saves). For each label count and seed, a
class-balanced subset is drawn with ``keras_dbn.datasets.stratified_subset``
and two classifiers of the same shape are fine-tuned identically (same
subset, optimizer, number of updates, dropout, batch order seed): one from
``dbn.to_classifier()``, one a ``keras.models.clone_model`` of it, i.e. the
same layers freshly initialised by Keras' defaults. Reports the mean and
standard deviation of the test error (10,000 test images) over the seeds.

With ``--pseudo-label``, both classifiers are instead wrapped in
``keras_dbn.PseudoLabel`` (Lee 2013) and trained for exactly ``--steps``
updates on ``keras_dbn.semi_supervised_dataset(subset, labels, all 60,000
training images)``: batches of ``--batch`` labelled and
``--unlabelled-batch`` unlabelled images, the unlabelled loss weighted by
``alpha(t)``, which ramps from 0 at update ``--ramp-start`` to ``--alpha`` at
update ``--ramp-end``. With ``--vat EPS``, they are instead wrapped in
``keras_dbn.VirtualAdversarial`` (Miyato et al. 2019) and trained the same
way on the same stream: the labelled cross-entropy plus ``--vat-weight``
times the divergence between each unlabelled image's prediction and the
prediction at its virtual adversarial perturbation of L2 norm EPS. Without
either, training is plain supervised fine-tuning.

Writes the results to ``runs/benchmarks/few_labels.json`` (the
gitignored ``runs/`` folder; ``--out`` names another file), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.few_labels --dbn runs/benchmarks/mnist_dbn.keras
    python benchmarks/few_labels.py --labels 100 1000 --seeds 2 --dbn-epochs 3
    python -m benchmarks.few_labels --dbn runs/benchmarks/mnist_dbn.keras --pseudo-label \
        --alpha 3 --ramp-start 200 --ramp-end 1200 --steps 3000
    python -m benchmarks.few_labels --dbn runs/benchmarks/mnist_dbn.keras --vat 2.0 --steps 3000
"""

import math
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402

CLASSES = 10  # MNIST's digits


def train_classifier(model, x, y, x_test, y_test, steps, batch, lr, seed):
    import keras

    keras.utils.set_random_seed(seed)
    batch = min(batch, len(x))
    epochs = max(1, round(steps * batch / len(x)))
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=16)
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)
    accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0, return_dict=True)["accuracy"]
    return 1.0 - float(accuracy)


def train_semi_supervised(trainer, x, y, x_unlabelled, x_test, y_test, steps, batch, lr, seed,
                          unlabelled_batch):
    """Exactly ``steps`` updates of ``trainer`` (a `keras_dbn.PseudoLabel` or
    `keras_dbn.VirtualAdversarial`) on the labelled subset and the unlabelled
    images; returns the test error."""
    import keras

    import keras_dbn

    keras.utils.set_random_seed(seed)
    data = keras_dbn.semi_supervised_dataset(x, y, x_unlabelled, labelled_batch_size=batch,
                                             unlabelled_batch_size=unlabelled_batch, seed=seed)
    # One epoch of `steps` updates from the endless stream. Keras rounds an
    # epoch up to whole executions, so steps_per_execution must divide it.
    per_execution = math.gcd(steps, 16)
    trainer.compile(optimizer=keras.optimizers.Adam(lr), steps_per_execution=per_execution)
    trainer.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    assert int(trainer.optimizer.iterations) == steps
    accuracy = trainer.evaluate(x_test, y_test, batch_size=1000, verbose=0,
                                return_dict=True)["accuracy"]
    return 1.0 - float(accuracy)


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import non_negative_int, positive_float, positive_int, rate

    parser = _common.new_parser(__doc__)
    parser.add_argument("--labels", type=positive_int, nargs="+", default=[100, 600, 1000, 3000],
                        help=f"label counts, each at least the {CLASSES} classes")
    parser.add_argument("--seeds", type=positive_int, default=3,
                        help="subsets (and runs) per label count")
    parser.add_argument("--dbn", default=None, help="a pretrained DBN .keras file to reuse")
    parser.add_argument("--layers", type=_common.layer_sizes_text, default="500,500,2000",
                        help="hidden layer sizes of the DBN pretrained without --dbn")
    parser.add_argument("--dbn-epochs", type=positive_int, default=10,
                        help="pretraining epochs per RBM without --dbn")
    parser.add_argument("--steps", type=positive_int, default=1500, help="fine-tuning updates per run")
    parser.add_argument("--batch", type=positive_int, default=32, help="labelled images per update")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--dropout", type=rate, default=0.2,
                        help="dropout rate after every hidden layer")
    parser.add_argument("--pseudo-label", action="store_true",
                        help="semi-supervised fine-tuning with pseudo-labels (Lee 2013)")
    parser.add_argument("--alpha", type=float, default=None,
                        help="final weight of the unlabelled loss (--pseudo-label; "
                             "default: 3)")
    parser.add_argument("--ramp-start", type=non_negative_int, default=None,
                        help="update at which the unlabelled loss starts to count "
                             "(--pseudo-label; default: PseudoLabel's, 200)")
    parser.add_argument("--ramp-end", type=non_negative_int, default=None,
                        help="update from which it has weight --alpha (--pseudo-label; "
                             "default: PseudoLabel's, 1200, or --ramp-start if later)")
    parser.add_argument("--vat", type=positive_float, default=None, metavar="EPS",
                        help="semi-supervised fine-tuning by virtual adversarial training "
                             "(Miyato et al. 2019) with perturbations of this L2 norm")
    parser.add_argument("--vat-weight", type=float, default=None,
                        help="weight of the smoothness term (--vat; default: 1)")
    parser.add_argument("--unlabelled-batch", type=positive_int, default=None,
                        help="unlabelled images per update (--pseudo-label, --vat; "
                             "default: 256)")
    _common.add_io_arguments(parser, "few_labels")
    args = parser.parse_args(argv)

    for n_labels in args.labels:
        if not CLASSES <= n_labels <= _common.MNIST_TRAIN_ROWS:
            parser.error(f"--labels {n_labels}: a class-balanced subset needs {CLASSES} to "
                         f"{_common.MNIST_TRAIN_ROWS} labels (one per class at least)")
    if args.pseudo_label and args.vat is not None:
        parser.error("choose one of --pseudo-label and --vat")
    # Options of a mode not chosen would be ignored without a word.
    for option, value, modes in (("--alpha", args.alpha, args.pseudo_label),
                                 ("--ramp-start", args.ramp_start, args.pseudo_label),
                                 ("--ramp-end", args.ramp_end, args.pseudo_label),
                                 ("--vat-weight", args.vat_weight, args.vat is not None),
                                 ("--unlabelled-batch", args.unlabelled_batch,
                                  args.pseudo_label or args.vat is not None)):
        if value is not None and not modes:
            needs = {"--vat-weight": "--vat",
                     "--unlabelled-batch": "--pseudo-label or --vat"}.get(option, "--pseudo-label")
            parser.error(f"{option} applies with {needs} only")
    if args.vat_weight is None:
        args.vat_weight = 1.0
    if args.unlabelled_batch is None:
        args.unlabelled_batch = 256
    _common.check_input_file(parser, args.dbn, "--dbn")
    _common.check_output_path(parser, args.out)

    import keras

    import keras_dbn
    from keras_dbn import semi_supervised

    try:
        if args.vat is not None:
            # Fails early, with VirtualAdversarial's message, on a bad setting.
            keras_dbn.VirtualAdversarial(keras.Sequential([keras.Input((1,))]),
                                         epsilon=args.vat, weight=args.vat_weight)
        if args.alpha is None:
            args.alpha = semi_supervised.DEFAULT_ALPHA
        if args.pseudo_label:
            if args.ramp_start is None:
                args.ramp_start = semi_supervised.DEFAULT_RAMP_START
            if args.ramp_end is None:
                args.ramp_end = max(args.ramp_start, semi_supervised.DEFAULT_RAMP_END)
            # Fails early, with PseudoLabel's message, on a bad schedule.
            semi_supervised.PseudoLabel(keras.Sequential([keras.Input((1,))]), alpha=args.alpha,
                                        ramp_start=args.ramp_start, ramp_end=args.ramp_end)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    import keras

    import keras_dbn
    from keras_dbn import datasets

    if args.vat is not None:
        print(f"virtual adversarial fine-tuning: epsilon {args.vat}, weight {args.vat_weight}, "
              f"{args.steps} updates, batches {args.batch} labelled + {args.unlabelled_batch} "
              "unlabelled", flush=True)
    if args.pseudo_label:
        print(f"pseudo-label fine-tuning: alpha {args.alpha}, ramp {args.ramp_start} -> "
              f"{args.ramp_end} updates of {args.steps}, batches {args.batch} labelled + "
              f"{args.unlabelled_batch} unlabelled", flush=True)

    info = _common.announce_machine()
    x_train, y_train = _common.load_mnist("train", manual_dir=args.manual_dir, data_dir=args.data_dir)
    x_test, y_test = _common.load_mnist("test", manual_dir=args.manual_dir, data_dir=args.data_dir)

    start = time.perf_counter()
    if args.dbn:
        dbn = keras.models.load_model(args.dbn)
        print(f"loaded pretrained DBN from {args.dbn}")
    else:
        keras.utils.set_random_seed(0)
        dbn = keras_dbn.DBN([int(s) for s in args.layers.split(",")], k=1, seed=0)
        dbn.pretrain(x_train, epochs=args.dbn_epochs, batch_size=100,
                     optimizer=keras.optimizers.SGD(0.05, momentum=0.9), verbose=2)
    pretrain_s = time.perf_counter() - start

    rows, results = [], []
    for n_labels in args.labels:
        errors = {"dbn": [], "random": []}
        for seed in range(args.seeds):
            x, y = datasets.stratified_subset(x_train, y_train, n_labels, seed=seed)
            pretrained = dbn.to_classifier(10, dropout=args.dropout)
            keras.utils.set_random_seed(1000 + seed)
            fresh = keras.models.clone_model(pretrained)  # same layers, new random weights
            for name, model in (("dbn", pretrained), ("random", fresh)):
                if args.pseudo_label or args.vat is not None:
                    if args.pseudo_label:
                        trainer = keras_dbn.PseudoLabel(model, alpha=args.alpha,
                                                        ramp_start=args.ramp_start,
                                                        ramp_end=args.ramp_end)
                    else:
                        trainer = keras_dbn.VirtualAdversarial(model, epsilon=args.vat,
                                                               weight=args.vat_weight, seed=seed)
                    errors[name].append(train_semi_supervised(
                        trainer, x, y, x_train, x_test, y_test, args.steps, args.batch, args.lr,
                        seed, args.unlabelled_batch))
                else:
                    errors[name].append(train_classifier(
                        model, x, y, x_test, y_test, args.steps, args.batch, args.lr, seed))
            print(f"labels {n_labels} seed {seed}: DBN {100 * errors['dbn'][-1]:.2f}% "
                  f"random {100 * errors['random'][-1]:.2f}%", flush=True)
        method = ("pseudo-label" if args.pseudo_label
                  else "supervised" if args.vat is None else "virtual-adversarial")
        entry = {"labels": n_labels, "seeds": args.seeds, "method": method}
        for name, values in errors.items():
            entry[name] = {"test_errors": values, "mean": float(np.mean(values)),
                           "std": _common.spread(values)}
        results.append(entry)
        rows.append([n_labels, args.seeds,
                     f"{100 * entry['dbn']['mean']:.2f} ± {100 * entry['dbn']['std']:.2f}",
                     f"{100 * entry['random']['mean']:.2f} ± {100 * entry['random']['std']:.2f}",
                     f"{100 * (1 - entry['dbn']['mean']):.2f}"])
    print()
    _common.print_table(["labels", "seeds", "DBN init error %", "random init error %",
                         "DBN accuracy %"], rows)
    _common.write_json(args.out, {"machine": info, "command": " ".join(sys.argv),
                                  "pretrain_seconds": round(pretrain_s, 1),
                                  "settings": vars(args), "results": results,
                                  "load_average_at_end": _common.load_now()})
    return results


if __name__ == "__main__":
    main()
