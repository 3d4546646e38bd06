"""The full MNIST pipeline in Python: pretrain, fine-tune, evaluate, export.

Run from the repository root (offline, with the four MNIST files at hand):

    python examples/mnist_dbn.py --manual-dir ../shared/data/mnist

Without ``--manual-dir`` tensorflow-datasets downloads MNIST as usual.
"""

import argparse

import keras

import keras_dbn
from keras_dbn import datasets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual-dir", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--export", default="mnist_dbn_saved_model")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)

    load = dict(data_dir=args.data_dir, manual_dir=args.manual_dir)
    x_train, y_train = datasets.load_numpy("mnist", split="train", **load)
    x_test, y_test = datasets.load_numpy("mnist", split="test", **load)

    # 1. Greedy layer-wise pretraining on the images alone.
    dbn = keras_dbn.DBN([500, 500, 2000], k=1, seed=0)
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
    classifier.fit(x_train, y_train, batch_size=100, epochs=args.finetune_epochs,
                   validation_data=(x_test, y_test), verbose=2)
    _, accuracy = classifier.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy: {accuracy:.4f}")

    # 3. A SavedModel in the layout TF Serving loads: <base>/<version>/.
    path = keras_dbn.export_saved_model(classifier, args.export, version=1)
    print(f"SavedModel written to {path}")


if __name__ == "__main__":
    main()
