"""Few-label fine-tuning: a DBN-initialised classifier against random initialisation.

    python examples/few_labels.py --manual-dir ../shared/data/mnist --labels 100 600 1000
    python examples/few_labels.py --manual-dir ../shared/data/mnist --pseudo-label
    python examples/few_labels.py --manual-dir ../shared/data/mnist --vat 2.0

Pretraining uses all 60,000 training images without labels; each classifier
is then fine-tuned on a stratified subset of N labelled images. The baseline
is the same network (same layers, optimizer, epochs, batch size) starting
from Keras's default random initialisation. With ``--pseudo-label`` both
also learn from the unlabelled images through pseudo-labels
(`keras_dbn.PseudoLabel`, Lee 2013): ``--finetune-epochs`` epochs of 150
updates (3,000 by default), each on 32 labelled and 256 unlabelled images.
With ``--vat EPS`` they learn from them by virtual adversarial training
instead (`keras_dbn.VirtualAdversarial`, Miyato et al. 2019), on the same
batches. Each fine-tuning prints a line when it starts, and semi-supervised
ones a line per epoch.
"""

import time

import keras

import keras_dbn
from keras_dbn import datasets
from keras_dbn.argtypes import layer_sizes, positive_float, positive_int
from keras_dbn.argtypes import seed as seed_type
from keras_dbn.tf_logging import quiet_keras_retracing

from _options import example_parser  # examples/_options.py


def fine_tune(model, x, y, x_test, y_test, seed, epochs):
    """``epochs`` passes over the labelled images in batches of 50, or more
    passes where they give fewer than 1,000 updates."""
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    updates = max(epochs * -(-len(x) // 50), 1000)
    # Several passes (each shuffled anew) per Keras epoch: with one pass per
    # epoch, 20 labels took 2,500 epochs, ~50 ms each of Keras' own work.
    data = keras_dbn.array_dataset(x, y, batch_size=50, seed=seed).repeat()
    model.fit(data, epochs=epochs, steps_per_epoch=-(-updates // epochs), shuffle=False,
              verbose=0)
    test = keras_dbn.array_dataset(x_test, y_test, batch_size=1000, shuffle=False)
    return model.evaluate(test, verbose=0, return_dict=True)["accuracy"]


def fine_tune_semi_supervised(trainer, x, y, x_unlabelled, x_test, y_test, seed, epochs):
    """``epochs`` x 150 updates of ``trainer`` (a PseudoLabel or VirtualAdversarial model)."""
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    data = keras_dbn.semi_supervised_dataset(x, y, x_unlabelled, seed=seed)
    trainer.fit(data, steps_per_epoch=150, epochs=epochs, verbose=2, shuffle=False)
    return trainer.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]


def main(argv=None):
    parser = example_parser(__doc__, limit_help="use the first N training images, for "
                                                "pretraining and as the pool of labels")
    parser.add_argument("--layers", type=layer_sizes, default="500,500,2000",
                        help="hidden layer sizes, comma separated")
    parser.add_argument("--labels", type=positive_int, nargs="+", default=[100, 1000],
                        metavar="N", help="the numbers of labelled images to compare at "
                                          "(default: 100 1000)")
    parser.add_argument("--pretrain-epochs", type=positive_int, default=10,
                        help="epochs per RBM")
    parser.add_argument("--finetune-epochs", type=positive_int, default=20,
                        help="fine-tuning epochs: at least 1,000 updates of 50 labelled "
                             "images; with --pseudo-label or --vat, epochs of 150 updates")
    parser.add_argument("--pseudo-label", action="store_true",
                        help="also learn from the unlabelled images (Lee 2013)")
    parser.add_argument("--vat", type=positive_float, default=None, metavar="EPS",
                        help="also learn from the unlabelled images by virtual adversarial "
                             "training with perturbations of this L2 norm (e.g. 2.0)")
    parser.add_argument("--seed", type=seed_type, default=0,
                        help="seed of the label subsets, the weights and the batches")
    args = parser.parse_args(argv)
    if args.pseudo_label and args.vat is not None:
        parser.error("choose one of --pseudo-label and --vat")
    keras.utils.set_random_seed(args.seed)

    load = dict(data_dir=args.data_dir, manual_dir=args.manual_dir)
    x_train, y_train = datasets.load_numpy("mnist", split="train", limit=args.limit, **load)
    x_test, y_test = datasets.load_numpy("mnist", split="test", **load)
    subsets = {}
    for n in args.labels:  # drawn before the pretraining, so a bad --labels fails at once
        try:
            subsets[n] = datasets.stratified_subset(x_train, y_train, n, seed=args.seed,
                                                    name="--labels")
        except ValueError as err:
            parser.error(str(err))
    dbn = keras_dbn.DBN(args.layers, seed=args.seed)
    dbn.pretrain(x_train, epochs=args.pretrain_epochs, batch_size=100,
                 optimizer=keras.optimizers.SGD(0.05, momentum=0.9), verbose=2)

    rows = []
    for n, (x, y) in subsets.items():
        pretrained = dbn.to_classifier(10, dropout=0.2)
        keras.utils.set_random_seed(args.seed)
        random_init = keras.models.clone_model(pretrained)
        accuracies = []
        for name, model in (("DBN-initialised", pretrained), ("randomly initialised", random_init)):
            print(f"fine-tuning the {name} classifier on {n} labels ...", flush=True)
            start = time.perf_counter()
            if args.pseudo_label or args.vat is not None:
                trainer = (
                    keras_dbn.VirtualAdversarial(model, epsilon=args.vat, seed=args.seed)
                    if args.vat is not None else
                    keras_dbn.PseudoLabel(model, alpha=3.0, ramp_start=200, ramp_end=1200))
                accuracies.append(fine_tune_semi_supervised(
                    trainer, x, y, x_train, x_test, y_test, args.seed, args.finetune_epochs))
            else:
                accuracies.append(fine_tune(model, x, y, x_test, y_test, args.seed,
                                            args.finetune_epochs))
            print(f"  test accuracy {accuracies[-1]:.4f} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
        rows.append((n, *accuracies))

    print(f"{'labels':>7} {'DBN init':>9} {'random init':>12}")
    for n, acc_dbn, acc_random in rows:
        print(f"{n:>7} {acc_dbn:>9.4f} {acc_random:>12.4f}")


if __name__ == "__main__":
    with quiet_keras_retracing():  # each fine-tuning builds new models
        main()
