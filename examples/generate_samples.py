"""Generating digits from a DBN and plotting them, with filter pictures as it trains.

    python examples/generate_samples.py --manual-dir ../shared/data/mnist

Writes ``samples.png`` (DBN fantasies: Gibbs sampling in the top RBM, then an
ancestral pass down), and, through `ImageGridCallback`, first-layer filters
and RBM samples every epoch into ``--log-dir`` (PNG and TensorBoard:
``tensorboard --logdir generate_logs``). A classifier fine-tuned from the
DBN for one epoch then reads the samples, to show how varied they are.

The top RBM, the DBN's generative model, is trained by persistent CD with a
learning rate that falls linearly to zero: its chains then settle into the
final model. With a constant rate (``--constant-rate``) the samples tend to
fall into a few digit classes.
"""

import math
import os

import keras

import keras_dbn
from keras_dbn import callbacks, datasets, evaluation
from keras_dbn.argtypes import is_within, layer_sizes, positive_int

from _options import check_output, example_parser  # examples/_options.py


def main(argv=None):
    parser = example_parser(__doc__)
    parser.add_argument("--layers", type=layer_sizes, default="500,2000",
                        help="hidden layer sizes, comma separated; the top RBM trains by "
                             "persistent CD")
    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs per RBM")
    parser.add_argument("--gibbs-steps", type=positive_int, default=1000,
                        help="Gibbs steps in the top RBM per sample")
    parser.add_argument("--constant-rate", action="store_true",
                        help="train the top RBM at a constant learning rate")
    parser.add_argument("--out", default="samples.png", help="the PNG of 100 samples")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file")
    parser.add_argument("--log-dir", default="generate_logs",
                        help="folder of the per-epoch pictures and TensorBoard logs")
    args = parser.parse_args(argv)
    # Checked before the training, not after it.
    if not args.out.lower().endswith(".png"):
        parser.error(f"--out needs a .png file name, got {args.out!r}")
    check_output(parser, "--out", args.out)
    if os.path.exists(args.out) and not args.overwrite:
        parser.error(f"--out {args.out!r} exists; name another file, or pass --overwrite "
                     "to replace it")
    check_output(parser, "--log-dir", args.log_dir, folder=True)
    if is_within(args.out, args.log_dir):
        # The per-epoch pictures written there could be replaced by the grid.
        parser.error(f"--out {args.out!r} lies in --log-dir {args.log_dir!r}, where the "
                     "per-epoch pictures go; name a file outside it")
    keras.utils.set_random_seed(0)

    load = dict(data_dir=args.data_dir, manual_dir=args.manual_dir)
    x, y = datasets.load_numpy("mnist", split="train", limit=args.limit, **load)
    persistent = [False] * (len(args.layers) - 1) + [True]
    dbn = keras_dbn.DBN(args.layers, persistent=persistent, seed=0)
    updates = args.epochs * math.ceil(len(x) / 100)
    top_rate = 0.01 if args.constant_rate else keras.optimizers.schedules.PolynomialDecay(
        0.01, decay_steps=updates, end_learning_rate=0.0)
    # The callback watches the first RBM while it trains.
    watch = callbacks.ImageGridCallback(args.log_dir, rbm=dbn.rbms[0], num_samples=64,
                                        gibbs_steps=200, every_n_epochs=1)
    lower = [keras.optimizers.SGD(0.05, momentum=0.9) for _ in args.layers[:-1]]
    dbn.pretrain(x, epochs=args.epochs, batch_size=100, callbacks=[watch], verbose=2,
                 optimizer=lower + [keras.optimizers.SGD(top_rate, momentum=0.9)])

    images = dbn.generate(100, gibbs_steps=args.gibbs_steps)
    # Bernoulli means as they are, as `keras-dbn sample` draws them: stretched
    # per image, faint noise would look like a full-contrast digit.
    print("wrote", callbacks.save_image_grid(
        images, args.out, normalize=callbacks.rescales_samples(dbn.rbms[0])))

    reader = dbn.to_classifier(num_classes=10)
    reader.compile("adam", "sparse_categorical_crossentropy")
    reader.fit(keras_dbn.array_dataset(x, y, batch_size=100, seed=0), epochs=1, shuffle=False,
               verbose=0)
    mix = evaluation.sample_class_mix(reader, images)
    shares = ", ".join(f"{digit}: {share:.0%}" for digit, share in enumerate(mix.frequencies))
    print(f"the samples as a classifier reads them: {shares}; "
          f"{mix.effective_classes:.1f} of 10 digits effectively")


if __name__ == "__main__":
    main()
