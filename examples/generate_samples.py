"""Generating digits from a DBN and plotting them, with filter pictures as it trains.

    python examples/generate_samples.py --manual-dir ../shared/data/mnist

Writes ``samples.png`` (DBN fantasies: Gibbs sampling in the top RBM, then an
ancestral pass down), and, through `ImageGridCallback`, first-layer filters
and RBM samples every epoch into ``generate_logs/`` (PNG and TensorBoard:
``tensorboard --logdir generate_logs``).
"""

import argparse

import keras_dbn
from keras_dbn import callbacks, datasets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual-dir", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--gibbs-steps", type=int, default=1000)
    parser.add_argument("--out", default="samples.png")
    args = parser.parse_args()

    x, _ = datasets.load_numpy("mnist", split="train", data_dir=args.data_dir,
                               manual_dir=args.manual_dir)
    dbn = keras_dbn.DBN([500, 500], seed=0)
    # The callback watches the first RBM while it trains.
    watch = callbacks.ImageGridCallback("generate_logs", rbm=dbn.rbms[0], num_samples=64,
                                        gibbs_steps=200, every_n_epochs=1)
    dbn.pretrain(x, epochs=args.epochs, batch_size=100, callbacks=[watch], verbose=2)

    images = dbn.generate(100, gibbs_steps=args.gibbs_steps)
    print("wrote", callbacks.save_image_grid(images, args.out))


if __name__ == "__main__":
    main()
