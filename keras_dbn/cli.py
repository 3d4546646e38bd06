"""The ``keras-dbn`` command: train a DBN on a TFDS dataset, sample from one."""

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
import zipfile

from keras_dbn.argtypes import (
    UsageError, add_option, check_dataset_name, check_writable, image_shape, is_within,
    layer_sizes, positive_float, positive_int, rate, seed as seed_type,
)
from keras_dbn.search_options import add_search_arguments
from keras_dbn.tf_logging import quiet_keras_retracing, quiet_tensorflow_startup

# Updates per --mlp-epochs epoch with --pseudo-label or --vat and --labels:
# the default 20 epochs give the 3,000 updates measured in
# benchmarks/RESULTS.md (section 3).
SEMI_SUPERVISED_STEPS_PER_EPOCH = 150

# Fine-tuning updates per call of Keras' compiled training function: fewer
# round trips through Python per update (784-500-500-2000-10 at batch 100
# on 2 cores: an epoch 1.13x and 1.16x faster with 16 than with 1 in two
# paired runs; virtual adversarial training 1.09x with 10). Semi-supervised
# epochs use 10, which divides their 150 updates (Keras would round an
# epoch up to whole executions).
FINE_TUNE_STEPS_PER_EXECUTION = 16
SEMI_SUPERVISED_STEPS_PER_EXECUTION = 10

#: Pretraining learning rate of the RBMs below the top one (``--dbn-lr``).
DBN_LR = 0.05

USAGE_EXAMPLES = """examples:
  keras-dbn train                                  # MNIST, 784-500-500-2000-10
  keras-dbn train --layers 1000,500 --k 20 --batch 200 --dbn-epochs 10
  keras-dbn train --labels 1000 --baseline         # few labels, vs random init
  keras-dbn train --labels 100 --pseudo-label      # few labels + unlabelled images
  keras-dbn train --labels 100 --vat 2.0           # the same by virtual adversarial training
  keras-dbn train --manual-dir ~/mnist_files       # offline, from the IDX files
  keras-dbn sample --model keras_dbn_run/dbn.keras --n 100 --out grid.png
  keras-dbn tune --tuner random --max-trials 6 --train-limit 10000 --units 64,128,256
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-dbn",
        description="Deep Belief Networks on Keras 3: greedy RBM pretraining, "
        "fine-tuning, SavedModel export and sampling.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser(
        "train",
        help="pretrain a DBN, fine-tune a classifier, evaluate, save and export",
        description="Pretrain a DBN greedily on a TFDS image dataset, fine-tune "
        "the classifier it initialises, report test accuracy, save the models, "
        "export a SavedModel for TF Serving and write PNGs of samples and filters.",
    )
    add_option(train, "--dataset", default="mnist", help="TFDS image dataset (default: mnist)")
    add_option(train, "--layers", type=layer_sizes, default=[500, 500, 2000],
         help="hidden layer sizes (default: 500,500,2000)")
    add_option(train, "--batch", type=positive_int, default=100, help="batch size (default: 100)")
    add_option(train, "--dbn-epochs", type=positive_int, default=10,
         help="pretraining epochs per RBM (default: 10)")
    add_option(train, "--dbn-lr", type=positive_float, default=None,
         help="pretraining learning rate of the RBMs below the top one, SGD with momentum "
              f"0.9 (default: {DBN_LR})")
    add_option(train, "--k", type=positive_int, default=1, help="Gibbs steps per CD update (default: 1)")
    add_option(train, "--persistent", action="store_true",
         help="train the RBMs below the top one by persistent CD (PCD) too")
    add_option(train, "--top", choices=["cd", "pcd"], default="pcd",
         help="how the top RBM, the DBN's generative model, is trained (default: pcd, "
         "which gives far better samples than CD)")
    add_option(train, "--top-lr", type=positive_float, default=0.01,
         help="learning rate of the top RBM, SGD with momentum 0.9 (default: 0.01)")
    add_option(train, "--pcd-decay", choices=["linear", "none"], default=None,
         help="learning rate schedule of the RBMs trained by PCD: linear falls to zero "
         "over their pretraining, so that the persistent chains settle into the final "
         "model (MNIST samples of 6-8 digit classes instead of 1-4); none keeps it "
         "constant, for ~0.2 points more test accuracy (default: linear)")
    add_option(train, "--dtype", choices=["float32", "mixed_bfloat16"], default="float32",
         help="precision of the RBMs while pretraining; mixed_bfloat16 computes the "
         "matrix products in bfloat16 with float32 weights and statistics, faster on "
         "CPUs with AVX512-BF16 (fine-tuning stays float32; default: float32)")
    add_option(train, "--mlp-epochs", type=positive_int, default=20,
         help="fine-tuning epochs (default: 20)")
    add_option(train, "--mlp-lr", type=positive_float, default=1e-3,
         help="fine-tuning learning rate, Adam (default: 0.001)")
    add_option(train, "--dropout", type=rate, default=0.2,
         help="dropout after each hidden layer while fine-tuning (default: 0.2)")
    add_option(train, "--input-dropout", type=rate, default=0.0,
         help="dropout on the input while fine-tuning (default: 0; 0.2 with --mlp-epochs 40 "
         "is the setting of benchmarks/mnist_dbn.py)")
    add_option(train, "--labels", type=positive_int, default=None,
         help="fine-tune on a stratified subset of this many labels (pretraining "
         "still uses every training image)")
    add_option(train, "--pseudo-label", action="store_true",
         help="with --labels: also learn from the unlabelled training images through "
         "pseudo-labels (Lee 2013; keras_dbn.PseudoLabel); each --mlp-epochs epoch is then "
         f"{SEMI_SUPERVISED_STEPS_PER_EPOCH} updates of 32 labelled + 256 unlabelled images")
    add_option(train, "--vat", type=positive_float, default=None, metavar="EPS",
         help="fine-tune by virtual adversarial training with perturbations of this L2 norm "
         "(Miyato et al. 2019; keras_dbn.VirtualAdversarial; 2.0 suits MNIST): with --labels "
         "the smoothness term reads the unlabelled training images, batched as for "
         "--pseudo-label; without, the labelled batches (a regulariser, ~2.3x the time)")
    add_option(train, "--baseline", action="store_true",
         help="also train a randomly initialised classifier of the same shape "
         "identically and report both")
    add_option(train, "--binarize", choices=["none", "threshold", "stochastic"], default="none",
         help="binarise pixels (default: none, grey levels as probabilities)")
    add_option(train, "--limit", type=positive_int, default=None,
         help="use only the first N training images (quick trial runs)")
    add_option(train, "--data-dir", default=None, help="TFDS data_dir")
    add_option(train, "--manual-dir", default=None,
         help="folder with the dataset's source files, for offline preparation")
    add_option(train, "--out", default="keras_dbn_run", help="output folder (default: keras_dbn_run)")
    add_option(train, "--save", default=None,
         help="path of the fine-tuned classifier .keras file, its folder created if need be "
         "(default: OUT/classifier.keras)")
    add_option(train, "--export", default=None,
         help="SavedModel base folder for TF Serving; each run exports the next version "
         "in it, 1 in a new folder, and never replaces one (default: OUT/saved_model)")
    add_option(train, "--overwrite", action="store_true",
         help="replace the files of an earlier run in OUT (and at --save); by default the "
         "command refuses to start")
    add_option(train, "--samples", type=positive_int, default=100,
         help="number of generated samples in OUT/samples.png (default: 100)")
    add_option(train, "--gibbs-steps", type=positive_int, default=1000,
         help="Gibbs steps in the top RBM per sample (default: 1000)")
    add_option(train, "--seed", type=seed_type, default=0, help="random seed (default: 0)")
    add_option(train, "--verbose", type=int, choices=[0, 1, 2], default=2,
         help="Keras verbosity: 0 silent, 1 progress bars, 2 one line per epoch (default: 2)")

    sample = commands.add_parser(
        "sample",
        help="generate samples from a saved DBN as a PNG grid",
        description="Draw samples from a DBN saved by `keras-dbn train` (OUT/dbn.keras): "
        "Gibbs sampling in its top RBM, then an ancestral pass down to the images, "
        "written as a PNG grid.",
    )
    add_option(sample, "--model", required=True, help="a DBN saved as .keras (e.g. OUT/dbn.keras)")
    add_option(sample, "--n", type=positive_int, default=100, help="number of samples (default: 100)")
    add_option(sample, "--gibbs-steps", type=positive_int, default=1000,
         help="Gibbs steps in the top RBM (default: 1000)")
    add_option(sample, "--out", default="samples.png", help="PNG file to write (default: samples.png)")
    add_option(sample, "--overwrite", action="store_true",
         help="replace an existing --out file; by default the command refuses to start")
    add_option(sample, "--seed", type=seed_type, default=None,
         help="random seed: the same seed draws the same samples (default: the DBN's "
         "saved random state)")
    add_option(sample, "--image-shape", type=image_shape, default=None, metavar="HxW[xC]",
         help="shape of one image, e.g. 32x32x3 (default: square grey images)")
    tune = commands.add_parser(
        "tune",
        help="keras-tuner search over pretraining and fine-tuning settings",
        description="Search layer sizes, CD-k or PCD, learning rates, epochs, dropout and "
        "batch size with keras-tuner; Ctrl-C interrupts and the same command resumes. "
        "The best classifier is saved as .keras and exported as a SavedModel.",
    )
    add_search_arguments(tune)
    return parser


def _pretrain_optimizers(args, persistent, num_examples):
    """One SGD optimizer (momentum 0.9) per RBM, as the options ask.

    The top RBM learns at ``--top-lr``, the others at ``--dbn-lr``; with
    ``--pcd-decay linear`` the rate of each RBM trained by PCD falls
    linearly to zero over its pretraining (`_pcd_schedule`).
    """
    import keras

    lower = len(args.layers) - 1
    learning_rates = [args.dbn_lr] * lower + [args.top_lr]
    updates = args.dbn_epochs * math.ceil(num_examples / args.batch)
    return [
        keras.optimizers.SGD(
            _pcd_schedule(rate, updates) if pcd and args.pcd_decay != "none" else rate,
            momentum=0.9,
        )
        for rate, pcd in zip(learning_rates, persistent)
    ]


def _pcd_schedule(learning_rate, updates):
    """A learning rate that falls linearly from ``learning_rate`` to zero.

    PCD's persistent chains explore the model's distribution quickly only
    while the weights move under them (Tieleman & Hinton, ICML 2009, "Using
    Fast Weights to Improve Persistent Contrastive Divergence"); trained at
    a constant rate, the default MNIST DBN's top RBM drew almost only 1s and
    6s once its weights stopped (benchmarks/RESULTS.md, section 7). Annealing
    the rate to zero lets the chains settle into the final model as it is
    learnt: samples of 6.4-8.4 digit classes effectively instead of 1.4-3.8
    over three seeds, for ~0.17 points of the classifier's test accuracy.
    """
    import keras

    return keras.optimizers.schedules.PolynomialDecay(
        learning_rate, decay_steps=updates, end_learning_rate=0.0, power=1.0
    )


def _log(message):
    print(f"[keras-dbn] {message}", flush=True)


def _fine_tune(model, x, y, args, x_test, y_test, x_unlabelled=None):
    """Fine-tunes ``model`` (in place); returns (test accuracy, seconds, updates).

    With ``x_unlabelled`` the training is semi-supervised, by pseudo-labels
    or, with ``--vat``, by virtual adversarial training; without, supervised
    (with ``--vat``, virtual adversarial training on the labelled batches).
    """
    import keras

    import keras_dbn

    # The test images in order, on one thread: Keras' own array pipeline may
    # stall at the end of each pass (array_input.evaluation_input).
    test = keras_dbn.array_dataset(x_test, y_test, batch_size=1000, shuffle=False)
    validation = test if args.verbose else None
    if validation is not None:
        # No separate validation split: nothing is chosen by these figures.
        _log("the val_* figures of the progress output are the test set's, for watching "
             "only: no epoch or setting is chosen by them")
    start = time.perf_counter()
    optimizer = keras.optimizers.Adam(args.mlp_lr)
    per_execution = (FINE_TUNE_STEPS_PER_EXECUTION if x_unlabelled is None
                     else SEMI_SUPERVISED_STEPS_PER_EXECUTION)
    if args.vat:
        trained = keras_dbn.VirtualAdversarial(model, epsilon=args.vat, seed=args.seed)
        trained.compile(optimizer=optimizer, steps_per_execution=per_execution)
    elif x_unlabelled is not None:
        trained = keras_dbn.PseudoLabel(model)
        trained.compile(optimizer=optimizer, steps_per_execution=per_execution)
    else:
        # Keras' loss and updates, with the step in XLA and the dropout masks
        # drawn beside it (faster than Keras' own graph step on CPUs).
        trained = keras_dbn.SupervisedTrainer(model, seed=args.seed)
        trained.compile(optimizer=optimizer, steps_per_execution=per_execution)
    if x_unlabelled is None:
        # Read batch by batch from the arrays on one thread: ~1.15x faster
        # than Keras' own array pipeline on 2 cores.
        data = keras_dbn.array_dataset(x, y, batch_size=args.batch, seed=args.seed)
        trained.fit(data, epochs=args.mlp_epochs, verbose=args.verbose,
                    validation_data=validation,
                    shuffle=False)  # the dataset shuffles; Keras would warn that it cannot
    else:
        data = keras_dbn.semi_supervised_dataset(x, y, x_unlabelled, seed=args.seed)
        trained.fit(data, steps_per_epoch=SEMI_SUPERVISED_STEPS_PER_EPOCH,
                    epochs=args.mlp_epochs, verbose=args.verbose, validation_data=validation,
                    shuffle=False)
    seconds = time.perf_counter() - start
    accuracy = trained.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    return float(accuracy), seconds, int(trained.optimizer.iterations)


# What `train` writes into --out, besides the classifier and the SavedModel.
RUN_FILES = ("dbn.keras", "results.json", "samples.png", "filters.png")
#: The fine-tuned classifier in --out, unless --save names another file.
CLASSIFIER_FILE = "classifier.keras"


def _check_train_options(args):
    """Refuses contradicting options and unusable paths, before any work.

    Paths are unusable when a file stands where a folder must be or their
    folder cannot be written (`check_writable`), or when --save or --export
    is, or lies in, a file the run writes itself (`_check_no_collision`);
    the earlier run's files in --out and at --save are in the way unless
    ``--overwrite``.
    SavedModel versions in --export never are: the run exports the next one.

    Returns:
        The classifier's path and the SavedModel base folder.

    Raises:
        UsageError: naming the options at fault.
    """
    if args.pseudo_label and not args.labels:
        raise UsageError("--pseudo-label needs --labels N (the few labelled images; every "
                         "training image is used unlabelled)")
    if args.pseudo_label and args.vat:
        raise UsageError("choose one of --pseudo-label and --vat")
    if args.pseudo_label:
        from keras_dbn.semi_supervised import DEFAULT_RAMP_START

        updates = args.mlp_epochs * SEMI_SUPERVISED_STEPS_PER_EPOCH
        if updates <= DEFAULT_RAMP_START:
            raise UsageError(
                f"--pseudo-label with --mlp-epochs {args.mlp_epochs} runs {updates} updates, "
                f"all before the pseudo-labels start to count (update {DEFAULT_RAMP_START}): "
                "that is training on the labels alone; pass --mlp-epochs "
                f"{DEFAULT_RAMP_START // SEMI_SUPERVISED_STEPS_PER_EPOCH + 1} or more")
    if len(args.layers) == 1:
        for given, option in ((args.dbn_lr is not None, "--dbn-lr"),
                              (args.persistent, "--persistent")):
            if given:
                raise UsageError(
                    f"{option} applies to the RBMs below the top one, and with one "
                    "layer the only RBM is the top one: set its training with --top and "
                    "--top-lr")
    if args.dbn_lr is None:
        args.dbn_lr = DBN_LR
    if args.top == "cd" and not args.persistent:
        if args.pcd_decay is not None:
            raise UsageError("--pcd-decay sets the rate of the RBMs trained by PCD, and "
                             "with --top cd and without --persistent there are none")
    elif args.pcd_decay is None:
        args.pcd_decay = "linear"  # as results.json records it
    if args.save and not args.save.endswith((".keras", ".h5")):
        # Keras would refuse it only when saving, after all the training.
        raise UsageError(f"--save needs a .keras (or .h5) file name, got {args.save!r}; "
                         "--export writes the SavedModel.")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out!r} is a file, not a folder")
    save_path = args.save or os.path.join(args.out, CLASSIFIER_FILE)
    if os.path.isdir(save_path):
        raise UsageError(f"--save {save_path!r} is a folder; name the .keras file to write")
    export_dir = args.export or os.path.join(args.out, "saved_model")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise UsageError(f"--export {export_dir!r} is a file; name the SavedModel base folder")
    check_writable("--out", args.out, folder=True)
    check_writable("--save", save_path)
    check_writable("--export", export_dir, folder=True)
    written = [os.path.join(args.out, name) for name in RUN_FILES]
    _check_no_collision(args.out, save_path, export_dir, written)
    earlier = _earlier_outputs(args.out, save_path)
    if earlier and not args.overwrite:
        raise UsageError(
            f"an earlier run's files are in the way: {', '.join(earlier)}; choose another "
            "--out (or --save), or pass --overwrite to replace them "
            "(nothing was overwritten)"
        )
    return save_path, export_dir


def _earlier_outputs(out, save_path, keep=()):
    """The files of the run's outputs (`RUN_FILES` in ``out``, the classifier
    at ``save_path``) that exist already, but those named in ``keep``; also
    a classifier at ``out``'s default place where --save names another
    file, an earlier run's that would otherwise sit beside this run's DBN."""
    paths = [os.path.join(out, name) for name in (*RUN_FILES, CLASSIFIER_FILE)
             if name not in keep]
    if not any(is_within(save_path, path) for path in paths):
        paths.append(save_path)
    return [path for path in paths if os.path.exists(path)]


def _remove_earlier_results(out, save_path):
    """Removes an earlier run's results (``--overwrite``) once this run's DBN
    has replaced its ``dbn.keras``: --out then never holds one run's DBN
    beside another's classifier, results and pictures, also when the run
    stops before writing its own. SavedModel versions are kept."""
    earlier = [path for path in _earlier_outputs(out, save_path, keep=("dbn.keras",))
               if os.path.isfile(path)]
    for path in earlier:
        os.remove(path)
    if earlier:
        _log(f"removed the earlier run's {', '.join(map(os.path.basename, earlier))} "
             "(--overwrite); this run writes its own at the end")


def _check_no_collision(out, save_path, export_dir, written):
    """Refuses a --save or --export where the run writes something else.

    The classifier saved over ``OUT/dbn.keras`` would silently replace the
    DBN the same run saved there, and a file at (or above) --export would
    make the export fail after all the training; so would a --save at or
    above --out, made as a folder first; and a --save inside --export
    would make a folder there that is no model version. Refused even with
    ``--overwrite``.

    Raises:
        UsageError: naming the option at fault and the path it collides with.
    """
    for path in written:
        for option, mine in (("--save", save_path), ("--export", export_dir)):
            if is_within(mine, path):
                where = "is" if is_within(path, mine) else "lies in"
                raise UsageError(f"{option} {mine!r} {where} {path!r}, a file the run writes in "
                                 "--out; name another path (nothing was written)")
    if is_within(out, save_path):
        raise UsageError(f"--save {save_path!r} is the --out folder or one above it; name a "
                         ".keras file elsewhere (nothing was written)")
    if is_within(export_dir, save_path):
        where = "is" if is_within(save_path, export_dir) else "lies in"
        raise UsageError(f"--export {export_dir!r} {where} the --save file {save_path!r}; "
                         "name another folder (nothing was written)")
    if is_within(save_path, export_dir):
        raise UsageError(f"--save {save_path!r} lies in the --export folder {export_dir!r}, "
                         "whose folders TF Serving reads as model versions; name a .keras "
                         "file elsewhere (nothing was written)")


def _grid_shape(dataset, data_dir, num_features):
    """The ``image_shape`` of `image_grid` for the flat rows of ``dataset``."""
    from keras_dbn import datasets

    height, width, channels = datasets.image_shape(dataset, data_dir)
    if height * width * channels != num_features:
        raise ValueError(f"{dataset!r} images are {height}x{width}x{channels}, but the loaded "
                         f"rows hold {num_features} values")
    return (height, width) if channels == 1 else (height, width, channels)


@contextlib.contextmanager
def _new_folders(*paths):
    """Makes the missing folders in ``paths``; if the block fails, removes
    again those it made that are still empty (a failed run leaves no empty
    --out behind)."""
    made = []
    try:
        for path in map(os.path.abspath, paths):
            missing = []
            while path and not os.path.exists(path):
                missing.append(path)
                path = os.path.dirname(path)
            if missing:
                made.extend(missing)
                os.makedirs(missing[0])
        yield
    except BaseException:
        for path in sorted(made, key=len, reverse=True):  # the deepest first
            with contextlib.suppress(OSError):  # not empty, or already gone
                os.rmdir(path)
        raise


def _labelled_subset(x, y, args):
    """Draws the balanced ``--labels`` subset; a count the data cannot meet is a UsageError."""
    from keras_dbn import datasets

    try:
        return datasets.stratified_subset(x, y, args.labels, seed=args.seed, name="--labels")
    except ValueError as err:
        hint = f" (--limit {args.limit} loaded them)" if args.limit else ""
        raise UsageError(str(err).rstrip(".") + hint) from None


def train(args):
    """Runs the whole pipeline; returns a dict of results.

    Raises:
        UsageError: for contradicting options, unusable paths or a
            --dataset that TFDS does not know, before any work, and for a
            --labels the training data cannot meet, before pretraining.
    """
    save_path, export_dir = _check_train_options(args)
    _load_api()
    check_dataset_name(args.dataset, args.data_dir)
    with _new_folders(args.out, os.path.dirname(os.path.abspath(save_path))):
        return _train(args, save_path, export_dir)


def _train(args, save_path, export_dir):
    import keras
    import numpy as np

    import keras_dbn
    from keras_dbn import callbacks as grid
    from keras_dbn import datasets, evaluation, export
    from keras_dbn.extra_state import save_replacing, write_text_replacing

    keras.utils.set_random_seed(args.seed)
    binarize = None if args.binarize == "none" else args.binarize
    common = dict(data_dir=args.data_dir, manual_dir=args.manual_dir, binarize=binarize, seed=args.seed)
    _log(f"loading {args.dataset} through tensorflow-datasets")
    x_train, y_train = datasets.load_numpy(args.dataset, split="train", limit=args.limit, **common)
    x_test, y_test = datasets.load_numpy(args.dataset, split="test", **common)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    # Checked now: the pictures are drawn only after all the training.
    picture_shape = _grid_shape(args.dataset, args.data_dir, x_train.shape[1])
    _log(f"train {x_train.shape}, test {x_test.shape}, {num_classes} classes")
    x_fit, y_fit = x_train, y_train
    if args.labels:
        # Chosen before pretraining, so that a --labels the data cannot meet
        # fails at once; the subset depends on the seed alone.
        x_fit, y_fit = _labelled_subset(x_train, y_train, args)

    lower = len(args.layers) - 1
    persistent = [args.persistent] * lower + [args.top == "pcd"]
    dbn = keras_dbn.DBN(args.layers, k=args.k, persistent=persistent, seed=args.seed,
                        rbm_kwargs={"dtype": args.dtype})
    _log(f"pretraining DBN {x_train.shape[1]}-{'-'.join(map(str, args.layers))} "
         f"({_count(args.dbn_epochs, 'epoch')} per layer, k={args.k})")
    start = time.perf_counter()
    dbn.pretrain(
        x_train,
        epochs=args.dbn_epochs,
        batch_size=args.batch,
        optimizer=_pretrain_optimizers(args, persistent, len(x_train)),
        verbose=args.verbose,
    )
    pretrain_seconds = time.perf_counter() - start
    dbn_path = os.path.join(args.out, "dbn.keras")
    dbn.save(dbn_path)
    _log(f"pretraining took {pretrain_seconds:.0f} s; DBN saved to {dbn_path}")
    _remove_earlier_results(args.out, save_path)

    unlabelled = x_train if args.pseudo_label or (args.vat and args.labels) else None
    if args.labels:
        _log(f"fine-tuning on {len(y_fit)} labelled examples")
    classifier = dbn.to_classifier(num_classes, dropout=args.dropout,
                                   input_dropout=args.input_dropout)
    dense = sum(isinstance(layer, keras.layers.Dense) for layer in classifier.layers)
    _log(f"fine-tuning the classifier ({_count(dense, 'Dense layer')}) for "
         f"{_count(args.mlp_epochs, 'epoch')}")
    accuracy, finetune_seconds, updates = _fine_tune(classifier, x_fit, y_fit, args, x_test,
                                                     y_test, unlabelled)
    _log(f"test accuracy {accuracy:.4f} (fine-tuning took {finetune_seconds:.0f} s)")
    results = {
        # How the run was made: every option, as given or defaulted.
        "options": json.loads(json.dumps(
            {name: value for name, value in vars(args).items() if name != "command"},
            default=str)),
        "dataset": args.dataset,
        "layers": args.layers,
        "labels": len(y_fit),  # the labelled examples fine-tuned on, with --labels or not
        "pseudo_label": bool(args.pseudo_label),
        "vat": args.vat,
        "test_accuracy": accuracy,
        "pretrain_seconds": round(pretrain_seconds, 1),
        "finetune_seconds": round(finetune_seconds, 1),
        "finetune_updates": updates,
    }
    if args.baseline:
        keras.utils.set_random_seed(args.seed)
        baseline = keras.models.clone_model(classifier)  # same shape, fresh random weights
        base_accuracy, _, _ = _fine_tune(baseline, x_fit, y_fit, args, x_test, y_test,
                                         unlabelled)
        results["baseline_test_accuracy"] = base_accuracy
        _log(f"randomly initialised baseline: test accuracy {base_accuracy:.4f}")

    # Replaced once complete: a save that fails leaves no truncated file;
    # the run's other outputs (the export first) are still written, and the
    # failure is raised at the end.
    try:
        save_replacing(classifier.save, save_path)
        save_error = None
    except Exception as error:
        save_error = error
    # The next version, never an existing one: TF Serving serves the highest
    # version and does not reload one replaced in place.
    exported = keras_dbn.export_saved_model(classifier, export_dir,
                                            version=export.next_version(export_dir))
    results["saved_model"] = os.path.abspath(exported)
    saved = f"saved to {save_path}" if save_error is None else "not saved (see the end)"
    _log(f"classifier {saved}; SavedModel exported to {exported}")

    samples = dbn.generate(args.samples, gibbs_steps=args.gibbs_steps)
    mix = evaluation.sample_class_mix(classifier, samples)
    results["sample_class_frequencies"] = [round(float(f), 4) for f in mix.frequencies]
    results["sample_effective_classes"] = round(mix.effective_classes, 2)
    shares = ", ".join(f"{c}: {f:.0%}" for c, f in enumerate(mix.frequencies))
    _log(f"{len(samples)} generated samples as the classifier reads them: {shares} "
         f"({mix.effective_classes:.1f} of {num_classes} classes effectively)")
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    write_text_replacing(os.path.join(args.out, "results.json"), json.dumps(results, indent=2))
    grid.save_image_grid(samples, os.path.join(args.out, "samples.png"),
                         image_shape=picture_shape, normalize=grid.rescales_samples(dbn.rbms[0]))
    filters = np.asarray(dbn.rbms[0].kernel).T[:100]
    grid.save_image_grid(filters, os.path.join(args.out, "filters.png"),
                         image_shape=picture_shape)
    _log(f"wrote results.json, samples.png and filters.png to {args.out}")
    if save_error is not None:
        _log(f"saving the classifier to {save_path} failed; the fine-tuned classifier is "
             f"exported to {exported}")
        raise save_error
    return results


def _count(number, noun):
    """``"1 epoch"``, ``"2 epochs"``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _check_sample_options(args):
    """Refuses an unusable --model or --out before the model is loaded.

    --model must be a .keras file (Keras cannot load our models from .h5);
    --out must name a .png file (so never the --model), and not, without ``--overwrite``, any
    existing file, and its folder must be writable (`check_writable`).

    Raises:
        UsageError: naming the option at fault.
    """
    if not os.path.exists(args.model):
        raise UsageError(f"no such model file: {args.model}")
    what = "`keras-dbn train` writes OUT/dbn.keras"
    if os.path.isdir(args.model):
        raise UsageError(f"--model {args.model!r} is a folder; name the DBN's .keras file "
                         f"({what})")
    if not args.model.endswith(".keras"):
        raise UsageError(f"--model needs a DBN saved as a .keras file, got {args.model!r} "
                         f"({what})")
    if not zipfile.is_zipfile(args.model):  # Keras would say "File not found"
        raise UsageError(f"--model {args.model!r} is not a .keras file (a zip archive): "
                         f"damaged, cut short or of another kind ({what})")
    if os.path.isdir(args.out):
        raise UsageError(f"--out {args.out!r} is a folder; name the PNG file to write")
    if not args.out.lower().endswith(".png"):
        # The grid is a PNG whatever the name says; this also keeps --out off
        # the .keras --model.
        raise UsageError(f"--out needs a .png file name, got {args.out!r} (nothing was written)")
    if os.path.exists(args.out) and not args.overwrite:
        raise UsageError(f"--out {args.out!r} exists; name another file, or pass --overwrite "
                         "to replace it (nothing was written)")
    check_writable("--out", args.out)


def sample(args):
    """Generates ``args.n`` samples from a saved DBN and writes a PNG grid."""
    _check_sample_options(args)
    _load_api()
    import keras

    import keras_dbn
    from keras_dbn import callbacks as grid

    try:
        model = keras.models.load_model(args.model)
    except Exception as error:  # noqa: BLE001 - whatever Keras or h5py make of the file
        # A zip archive without its config (KeyError), a damaged config.json
        # (JSONDecodeError), damaged or missing weights (h5py's OSError,
        # Keras' ValueError): each names the part, none the file.
        raise UsageError(f"--model {args.model!r} could not be loaded: it is a zip archive "
                         f"but not a whole saved Keras model ({type(error).__name__}: "
                         f"{error})") from None
    if not isinstance(model, (keras_dbn.DBN, keras_dbn.RBM)):
        raise UsageError(
            f"{args.model} holds a {type(model).__name__}, not a DBN or RBM "
            "(use the dbn.keras that `keras-dbn train` writes)."
        )
    rbm = model.rbms[0] if isinstance(model, keras_dbn.DBN) else model
    # Checked now, not after the sampling.
    if args.image_shape is None and math.isqrt(rbm.num_visible) ** 2 != rbm.num_visible:
        raise UsageError(f"the model's {rbm.num_visible} visible units are not a square grey "
                         "image: pass --image-shape, e.g. 32x32x3")
    if args.image_shape is not None and math.prod(args.image_shape) != rbm.num_visible:
        raise UsageError(f"--image-shape {'x'.join(map(str, args.image_shape))} holds "
                         f"{math.prod(args.image_shape)} values, the model's images "
                         f"{rbm.num_visible}")
    if isinstance(model, keras_dbn.DBN):
        images = model.generate(args.n, gibbs_steps=args.gibbs_steps, seed=args.seed)
    else:
        images = model.sample(args.n, gibbs_steps=args.gibbs_steps, seed=args.seed)
    path = grid.save_image_grid(images, args.out, image_shape=args.image_shape,
                                normalize=grid.rescales_samples(rbm))
    _log(f"wrote {args.n} samples to {path}")
    return path


def run_reporting_errors(function, prog, resume_hint=""):
    """Runs ``function()`` for a command line; returns its exit status.

    Errors a user can act on become one line on stderr instead of a
    traceback: `UsageError` exits 2 (as argparse's own errors do), bad
    values, file or TensorFlow I/O errors and a diverged pretraining
    (`TrainingDiverged`) 1, Ctrl-C 130 (``resume_hint``
    is added to its message). TensorFlow's retracing warnings about the
    Keras functions of each new model are dropped (`quiet_keras_retracing`).

    Args:
        function: what the command does.
        prog: the command's name in the messages, e.g. ``"keras-dbn train"``.
        resume_hint: how to carry on after an interruption, if one can.

    Returns:
        0, 1, 2 or 130.
    """
    # Ctrl-C (SIGINT) must interrupt even where the launcher ignored it, as a
    # shell does for background jobs: a tune search then resumes cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with quiet_keras_retracing():  # new models' functions, not real retraces
            function()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted{resume_hint}", file=sys.stderr)
        return 130
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    except FloatingPointError as error:
        diverged = getattr(sys.modules.get("keras_dbn.rbm"), "TrainingDiverged", None)
        if diverged is None or not isinstance(error, diverged):
            raise
        # The error's advice is for the Python API; here it is the options'.
        where = "" if error.layer is None else f" in layer {error.layer} of {error.layers},"
        advice = "lower the pretraining learning rate"
        if prog.endswith("train") and error.layer is not None:
            advice = "lower " + ("--top-lr" if error.layer == error.layers else "--dbn-lr")
        print(f"{prog}: error: pretraining diverged{where} epoch {error.epoch}: its updates "
              "made weights, the reconstruction error or the free energy NaN or infinite; "
              f"{advice}.", file=sys.stderr)
        return 1
    except Exception as error:
        # TensorFlow loads inside `function` (`_load_api`), if at all.
        tf = sys.modules.get("tensorflow")
        if tf is not None and isinstance(error, tf.errors.OpError):  # e.g. an unwritable file
            print(f"{prog}: error: {error.message}", file=sys.stderr)
            return 1
        raise
    return 0


def _load_api():
    """Loads TensorFlow and keras_dbn's API, hiding TensorFlow's start-up lines.

    The command calls it once its options are checked, so that --help and
    mistakes in the options answer at once; the API registers keras_dbn's
    Keras classes, which ``load_model`` needs.
    """
    import keras_dbn

    with quiet_tensorflow_startup():
        keras_dbn.import_api()
        import tensorflow as tf

        # TensorFlow probes for a GPU when its devices are first listed; on
        # a machine without CUDA drivers that logs an error line, hidden here.
        tf.config.list_physical_devices()


def main(argv=None):
    """Entry point of ``keras-dbn`` and ``python -m keras_dbn``."""
    args = build_parser().parse_args(argv)
    if args.command == "tune":

        def tune():
            _load_api()
            from keras_dbn import tuning

            tuning.run_search(args)

        return run_reporting_errors(tune, "keras-dbn tune",
                                    "; run the same command again to resume the search")
    command = train if args.command == "train" else sample
    return run_reporting_errors(lambda: command(args), f"keras-dbn {args.command}")


if __name__ == "__main__":
    sys.exit(main())
