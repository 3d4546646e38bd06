"""The full MNIST pipeline in Python: pretrain, fine-tune, evaluate, export.

Run from the repository root (offline, with the four MNIST files at hand):

    python examples/mnist_dbn.py --manual-dir ../shared/data/mnist

Without ``--manual-dir`` tensorflow-datasets downloads MNIST as usual.
``--limit 2000 --validation 0.1 --layers 64 --pretrain-epochs 1`` makes a quick
trial run (the 5,000 validation images by default need a larger ``--limit``). Each
run exports the classifier as the next version in ``--export`` (TF Serving
serves the highest), so earlier exports are kept.
"""

import keras

import keras_dbn
from keras_dbn import datasets
from keras_dbn.argtypes import fraction_or_count, layer_sizes, positive_int

from _options import check_output, example_parser  # examples/_options.py


def main(argv=None):
    parser = example_parser(__doc__)
    parser.add_argument("--layers", type=layer_sizes, default="500,500,2000",
                        help="hidden layer sizes, comma separated")
    parser.add_argument("--pretrain-epochs", type=positive_int, default=10,
                        help="epochs per RBM")
    parser.add_argument("--finetune-epochs", type=positive_int, default=20,
                        help="fine-tuning epochs on the labelled images")
    parser.add_argument("--validation", type=fraction_or_count, default=5000,
                        help="held-out training images (a count, or a fraction below 1) "
                             "that fine-tuning reports on")
    parser.add_argument("--export", default="mnist_dbn_saved_model",
                        help="model base path of the SavedModel versions")
    args = parser.parse_args(argv)
    check_output(parser, "--export", args.export, folder=True)  # not after the training
    keras.utils.set_random_seed(0)

    load = dict(data_dir=args.data_dir, manual_dir=args.manual_dir)
    x_train, y_train = datasets.load_numpy("mnist", split="train", limit=args.limit, **load)
    x_test, y_test = datasets.load_numpy("mnist", split="test", **load)
    # The test set is only for the final figure; training is watched on
    # held-out training images.
    try:
        x_fit, y_fit, x_val, y_val = datasets.train_validation_split(
            x_train, y_train, args.validation, seed=0, name="--validation")
    except ValueError as err:
        parser.error(str(err))

    # 1. Greedy layer-wise pretraining on the images alone.
    dbn = keras_dbn.DBN(args.layers, k=1, seed=0)
    dbn.pretrain(
        x_train,
        epochs=args.pretrain_epochs,
        batch_size=100,
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
    )

    # 2. A plain keras.Sequential initialised from the RBMs, fine-tuned on labels.
    classifier = dbn.to_classifier(num_classes=10, dropout=0.2)
    classifier.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # array_dataset reads batches from the arrays without copying them, and
    # reshuffles every epoch itself; unshuffled, it reads validation and
    # test arrays in order. Unlike Keras' own pipeline for arrays, it runs
    # without tf.data's autotuning, which may stall the end of each pass.
    def in_order(x, y):
        return keras_dbn.array_dataset(x, y, batch_size=1000, shuffle=False)

    classifier.fit(keras_dbn.array_dataset(x_fit, y_fit, batch_size=100, seed=0),
                   epochs=args.finetune_epochs, validation_data=in_order(x_val, y_val),
                   shuffle=False, verbose=2)
    accuracy = classifier.evaluate(in_order(x_test, y_test), verbose=0,
                                   return_dict=True)["accuracy"]
    print(f"test accuracy: {accuracy:.4f}")

    # 3. A SavedModel in the layout TF Serving loads: <base>/<version>/.
    version = keras_dbn.export.next_version(args.export)
    path = keras_dbn.export_saved_model(classifier, args.export, version=version)
    print(f"SavedModel written to {path}")


if __name__ == "__main__":
    main()
