"""MNIST with Hinton & Salakhutdinov's DBN 784-500-500-2000-10.

Greedy CD-1 pretraining of three RBMs on all 60,000 training images (grey
levels as probabilities), conversion to a Dense classifier with a softmax
layer on top, fine-tuning on all 60,000 labels (read from the arrays by
``keras_dbn.array_dataset``; by default Adam 1e-3 with
cosine decay over 40 epochs, dropout 0.2 on the input and after every hidden
layer, as in Srivastava et al. 2014), and the error on the 10,000 test
images. Reports the pretraining and
fine-tuning wall times and the process's peak memory: ``ru_maxrss`` of
``resource.getrusage(RUSAGE_SELF)``, the largest resident set size (physical
RAM pages, in KiB on Linux) the process ever held, including TensorFlow's
runtime and the data, not virtual memory.

Writes the results to ``runs/benchmarks/mnist_dbn.json`` and the
pretrained DBN to ``runs/benchmarks/mnist_dbn.keras`` (in the gitignored
``runs/`` folder; ``--out`` and ``--save-dbn`` name other files), so that a
plain run does not overwrite the reference results in ``benchmarks/results/``.

Usage::

    python -m benchmarks.mnist_dbn                       # ~10-15 minutes on 2 cores
    python benchmarks/mnist_dbn.py --dbn-epochs 2 --mlp-epochs 2   # smoke run
    python -m benchmarks.mnist_dbn --dtype mixed_bfloat16

References:
    Hinton & Salakhutdinov, "Reducing the Dimensionality of Data with Neural
    Networks", Science 313, 2006 (1.2% test error with this architecture).
    Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks
    from Overfitting", JMLR 15, 2014 (dropout fine-tuning of DBNs).
    Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial
    Examples", ICLR 2015 (``--adversarial``).
    Miyato et al., "Virtual Adversarial Training: A Regularization Method
    for Supervised and Semi-Supervised Learning", TPAMI 41, 2019 (``--vat``).
    Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network
    Training by Reducing Internal Covariate Shift", ICML 2015
    (``--batch-norm``).
    Kumar et al., "Fine-Tuning can Distort Pretrained Features and
    Underperform Out-of-Distribution", ICLR 2022 (``--probe-epochs``).
    Izmailov, Podoprikhin, Garipov, Vetrov & Wilson, "Averaging Weights
    Leads to Wider Optima and Better Generalization", UAI 2018
    (``--swa-epochs``).
"""

import os
import pathlib
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script: make keras_dbn importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import _common  # noqa: E402

DEFAULT_SAVE_DBN = os.path.join(_common.DEFAULT_OUT_DIR, "mnist_dbn.keras")


def peak_rss_mib():
    """Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 1024**2


def pretrain(x_train, layers, epochs, batch, lr, momentum, dtype, seed, verbose):
    import keras

    import keras_dbn

    dbn = keras_dbn.DBN(layers, k=1, seed=seed, rbm_kwargs={"dtype": dtype})
    start = time.perf_counter()
    dbn.pretrain(
        x_train, epochs=epochs, batch_size=batch,
        optimizer=keras.optimizers.SGD(lr, momentum=momentum), verbose=verbose,
    )
    return dbn, time.perf_counter() - start


def adversarial_trainer(model, epsilon, clean_weight=0.5):
    """``model`` wrapped to train on clean and adversarial examples.

    Each step adds the fast gradient sign perturbation ``epsilon *
    sign(grad_x loss)`` to the batch (clipped to the pixel range [0, 1]) and
    minimises ``clean_weight * loss(x) + (1 - clean_weight) * loss(x_adv)``:
    adversarial training (Goodfellow, Shlens & Szegedy 2015, section 6;
    it took a dropout-regularised permutation-invariant MNIST network from
    0.94% to 0.84% test error there). The wrapper shares ``model``'s layers, so
    training it trains ``model``; it logs the loss and the accuracy on the
    clean batches (in training mode).
    """
    import keras
    import tensorflow as tf

    cross_entropy = keras.losses.sparse_categorical_crossentropy

    class AdversarialFineTuning(keras.Model):
        def __init__(self, net):
            super().__init__(name="adversarial_fine_tuning")
            self.net = net
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

        def call(self, x, training=False):
            return self.net(x, training=training)

        @property
        def metrics(self):
            return [self.loss_tracker, self.accuracy]

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                with tf.GradientTape() as input_tape:
                    input_tape.watch(x)
                    clean = self.net(x, training=True)
                    clean_loss = tf.reduce_mean(cross_entropy(y, clean))
                direction = tf.sign(tf.stop_gradient(input_tape.gradient(clean_loss, x)))
                x_adv = tf.clip_by_value(x + epsilon * direction, 0.0, 1.0)
                adv_loss = tf.reduce_mean(cross_entropy(y, self.net(x_adv, training=True)))
                loss = clean_weight * clean_loss + (1.0 - clean_weight) * adv_loss
            variables = self.net.trainable_variables
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            self.loss_tracker.update_state(loss)
            self.accuracy.update_state(y, clean)
            return {m.name: m.result() for m in self.metrics}

    return AdversarialFineTuning(model)


def with_batch_norm(model, x, batch=1000):
    """The classifier with batch normalisation before each hidden activation.

    Every hidden ``Dense(activation)`` becomes ``Dense(linear) ->
    BatchNormalization -> Activation``, initialised so that the network
    computes what it computed before: the normalisation's moving statistics
    are the mean and variance of the layer's total inputs on ``x`` (dropout
    off) and its scale and offset undo them, ``gamma = sqrt(var + eps)``,
    ``beta = mean``. Fine-tuning then starts from the pretrained function
    with the better-conditioned updates of batch normalisation (Ioffe &
    Szegedy 2015), which Miyato et al. used with virtual adversarial
    training.

    Args:
        model: a classifier from `keras_dbn.DBN.to_classifier`.
        x: training inputs, for the statistics of the total inputs.
        batch: rows per forward pass while measuring them.

    Returns:
        A new uncompiled `keras.Sequential`.
    """
    import keras
    import numpy as np

    hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][:-1]
    new = keras.Sequential(name=model.name + "_batch_norm")
    new.add(keras.Input(model.input_shape[1:], name="inputs"))
    activations = x
    for layer in model.layers:
        if layer not in hidden:
            clone = layer.__class__.from_config(layer.get_config())
            new.add(clone)
            clone.set_weights(layer.get_weights())
            continue
        linear = keras.layers.Dense(layer.units, name=layer.name)
        new.add(linear)
        linear.set_weights(layer.get_weights())
        activate = keras.activations.get(layer.activation)
        sums, squares, outputs = 0.0, 0.0, []
        for i in range(0, len(activations), batch):
            totals = np.asarray(linear(activations[i:i + batch]))
            wide = totals.astype("float64")
            sums, squares = sums + wide.sum(axis=0), squares + (wide * wide).sum(axis=0)
            outputs.append(np.asarray(activate(totals)))
        mean = sums / len(activations)
        var = np.maximum(squares / len(activations) - mean * mean, 0.0)
        norm = keras.layers.BatchNormalization(name=layer.name + "_norm")
        new.add(norm)
        norm.set_weights([np.sqrt(var + norm.epsilon), mean, mean, var])
        new.add(keras.layers.Activation(layer.activation, name=layer.name + "_activation"))
        activations = np.concatenate(outputs)
    return new


def weight_averaging(weights, first_epoch):
    """A Keras callback for stochastic weight averaging (Izmailov et al. 2018).

    At the end of every epoch from ``first_epoch`` (0-based) on it adds the
    current values of ``weights`` to a running mean; ``assign_mean()``
    then puts the mean into the weights.

    Args:
        weights: the variables to average (a model's trainable weights).
        first_epoch: the first epoch whose end is averaged.

    Returns:
        The callback; its ``count`` says how many epochs were averaged.
    """
    import keras
    import numpy as np

    class WeightAveraging(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.count, self.mean = 0, None

        def on_epoch_end(self, epoch, logs=None):
            if epoch < first_epoch:
                return
            values = [np.asarray(w.numpy(), dtype="float64") for w in weights]
            self.count += 1
            if self.mean is None:
                self.mean = values
            else:
                self.mean = [m + (v - m) / self.count for m, v in zip(self.mean, values)]

        def assign_mean(self):
            for w, m in zip(weights, self.mean):
                w.assign(m.astype(w.dtype))

    return WeightAveraging()


def fine_tune(model, x, y, x_test, y_test, epochs, batch, lr, verbose, optimizer="adam",
              momentum=0.9, seed=None, ema=None, label_smoothing=0.0, max_norm=None,
              probe_epochs=0, adversarial=None, vat=None, swa_epochs=0, swa_lr=0.2):
    """Adam or SGD with momentum, cosine decay over all steps; returns (test error, seconds, extra).

    With ``probe_epochs``, only the softmax layer is trained first, for that
    many epochs (Adam at ``lr``, the pretrained layers frozen), before the
    whole network is fine-tuned: linear probing then fine-tuning (Kumar et
    al. 2022), so that the randomly initialised top layer's first, large
    gradients do not reach the pretrained weights. With ``adversarial`` (an
    epsilon such as 0.1) the network trains on clean and fast-gradient-sign
    adversarial examples (`adversarial_trainer`); with ``vat`` (an L2
    epsilon such as 2.0), with virtual adversarial training
    (`keras_dbn.VirtualAdversarial` on the labelled batches).

    With ``ema`` (a momentum such as 0.999) the optimizer keeps an
    exponential moving average of the weights (Keras' ``use_ema``), which
    replaces the weights at the end of training (Polyak averaging). With
    ``label_smoothing`` the targets are one-hot vectors smoothed by that
    amount (Szegedy et al. 2016, section 7). With ``max_norm`` every Dense
    kernel's incoming weight vectors are rescaled to at most that norm after
    each update (Srivastava et al. 2014, section 5.1).

    With ``swa_epochs`` (stochastic weight averaging, Izmailov et al. 2018)
    the cosine decay reaches ``swa_lr`` times ``lr`` after ``epochs -
    swa_epochs`` epochs and the learning rate stays there; the weights at
    the end of each of the last ``swa_epochs`` epochs are averaged, and the
    average is the fine-tuned network. ``extra`` then holds the test error
    of the last epoch's weights as ``final_weights_test_error``.
    """
    import keras
    import numpy as np

    import keras_dbn

    if (adversarial or vat) and label_smoothing:
        raise ValueError("--adversarial and --vat train on integer labels: "
                         "no --label-smoothing.")
    if adversarial and vat:
        raise ValueError("choose one of --adversarial and --vat.")
    for option, epsilon in (("--adversarial", adversarial), ("--vat", vat)):
        if epsilon is not None and not epsilon > 0:
            raise ValueError(f"{option} needs a positive epsilon, got {epsilon}.")
    if swa_epochs and not 0 < swa_epochs < epochs:
        raise ValueError(f"--swa-epochs must be between 1 and --mlp-epochs - 1 ({epochs - 1}), "
                         f"got {swa_epochs}.")
    if swa_epochs and not 0 < swa_lr <= 1:
        raise ValueError(f"--swa-lr is a fraction of --mlp-lr in (0, 1], got {swa_lr}.")

    if max_norm:
        for layer in model.layers:
            if isinstance(layer, keras.layers.Dense):
                layer.kernel.constraint = keras.constraints.MaxNorm(max_norm, axis=0)
    if label_smoothing:
        num_classes = model.output_shape[-1]
        y = np.eye(num_classes, dtype="float32")[y]
        y_test = np.eye(num_classes, dtype="float32")[y_test]
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    else:
        loss = "sparse_categorical_crossentropy"

    start = time.perf_counter()
    # Read from the arrays by keras_dbn's one-thread pipeline, as `keras-dbn
    # train` does: ~1.15x faster than Keras' own array pipeline on 2 cores.
    data = keras_dbn.array_dataset(x, y, batch_size=batch, seed=seed)
    if probe_epochs:
        body = model.layers[:-1]
        for layer in body:
            layer.trainable = False
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"],
                      steps_per_execution=16)
        model.fit(data, epochs=probe_epochs, verbose=verbose, shuffle=False)
        for layer in body:
            layer.trainable = True
    decay_epochs = epochs - swa_epochs
    steps = decay_epochs * -(-len(x) // batch)
    # After `decay_steps` CosineDecay stays at `alpha * lr`: SWA's constant rate.
    schedule = keras.optimizers.schedules.CosineDecay(
        lr, decay_steps=max(1, steps), alpha=swa_lr if swa_epochs else 0.01)
    averaging = {"use_ema": True, "ema_momentum": ema} if ema else {}
    if optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=momentum, nesterov=True, **averaging)
    else:
        optimizer = keras.optimizers.Adam(schedule, **averaging)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"],
                  steps_per_execution=16)
    trained = model
    if adversarial:
        trained = adversarial_trainer(model, adversarial)
    elif vat:
        trained = keras_dbn.VirtualAdversarial(model, epsilon=vat, seed=seed)
    if trained is not model:
        trained.compile(optimizer=optimizer, steps_per_execution=16)
    callbacks = []
    if swa_epochs:
        callbacks.append(weight_averaging(model.trainable_weights, decay_epochs))
    trained.fit(data, epochs=epochs, verbose=verbose, shuffle=False,  # the dataset shuffles
                callbacks=callbacks)
    seconds = time.perf_counter() - start

    def test_error():
        return 1.0 - float(model.evaluate(x_test, y_test, batch_size=1000, verbose=0,
                                          return_dict=True)["accuracy"])

    extra = {}
    if swa_epochs:
        extra = {"final_weights_test_error": test_error(), "averaged_epochs": callbacks[0].count}
        callbacks[0].assign_mean()
    return test_error(), seconds, extra


def parse_args(argv=None):
    """The options, checked before any work; exits 2 on a bad one."""
    from keras_dbn.argtypes import non_negative_int, positive_float, positive_int, rate, seed

    parser = _common.new_parser(__doc__)
    parser.add_argument("--layers", type=_common.layer_sizes_text, default="500,500,2000",
                        help="hidden layer sizes of the DBN")
    parser.add_argument("--dbn-epochs", type=positive_int, default=10,
                        help="pretraining epochs per RBM")
    parser.add_argument("--dbn-batch", type=positive_int, default=100, help="pretraining batch size")
    parser.add_argument("--dbn-lr", type=positive_float, default=0.05,
                        help="pretraining SGD learning rate")
    parser.add_argument("--momentum", type=rate, default=0.9,
                        help="SGD momentum of pretraining (and of --mlp-optimizer sgd)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "mixed_bfloat16"],
                        help="dtype policy of the RBMs while pretraining")
    parser.add_argument("--mlp-epochs", type=positive_int, default=40, help="fine-tuning epochs")
    parser.add_argument("--mlp-batch", type=positive_int, default=100, help="fine-tuning batch size")
    parser.add_argument("--mlp-lr", type=positive_float, default=1e-3,
                        help="fine-tuning learning rate, at the start of its cosine decay")
    parser.add_argument("--mlp-optimizer", default="adam", choices=["adam", "sgd"],
                        help="fine-tuning optimizer (sgd: Nesterov momentum --momentum)")
    parser.add_argument("--dropout", type=rate, default=0.2,
                        help="dropout rate after every hidden layer while fine-tuning")
    parser.add_argument("--input-dropout", type=rate, default=0.2,
                        help="dropout rate on the input while fine-tuning")
    parser.add_argument("--ema", type=rate, default=None,
                        help="fine-tune with a moving average of the weights of this momentum "
                             "(e.g. 0.999), used as the final weights")
    parser.add_argument("--label-smoothing", type=rate, default=0.0,
                        help="fine-tune on one-hot targets smoothed by this amount (e.g. 0.1)")
    parser.add_argument("--max-norm", type=positive_float, default=None,
                        help="rescale each unit's incoming weights to at most this norm "
                             "after every fine-tuning update (e.g. 3)")
    parser.add_argument("--probe-epochs", type=non_negative_int, default=0,
                        help="first train only the softmax layer for this many epochs, the "
                             "pretrained layers frozen (linear probing, then fine-tuning)")
    parser.add_argument("--adversarial", type=positive_float, default=None,
                        help="fine-tune on clean and fast-gradient-sign adversarial examples "
                             "of this epsilon (e.g. 0.1; Goodfellow et al. 2015)")
    parser.add_argument("--vat", type=positive_float, default=None,
                        help="add virtual adversarial training of this L2 epsilon to the "
                             "fine-tuning loss (e.g. 2.0; Miyato et al. 2019)")
    parser.add_argument("--swa-epochs", type=non_negative_int, default=0,
                        help="stochastic weight averaging: average the weights at the end of "
                             "each of the last this many fine-tuning epochs (fewer than "
                             "--mlp-epochs), run at a constant learning rate "
                             "(Izmailov et al. 2018)")
    parser.add_argument("--swa-lr", type=positive_float, default=None,
                        help="that constant learning rate, as a fraction of --mlp-lr in (0, 1] "
                             "(default: 0.2; only with --swa-epochs)")
    parser.add_argument("--batch-norm", action="store_true",
                        help="fine-tune with batch normalisation before each hidden activation, "
                        "initialised to leave the pretrained network's function unchanged")
    parser.add_argument("--seed", type=seed, default=0, help="random seed")
    parser.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2],
                        help="Keras' verbosity while training")
    _common.add_io_arguments(parser, "mnist_dbn")
    parser.add_argument("--dbn", default=None,
                        help="load this pretrained DBN (.keras, e.g. an earlier run's --save-dbn) "
                        "instead of pretraining; its pretraining time is then not measured")
    parser.add_argument("--save-dbn", default=DEFAULT_SAVE_DBN,
                        help="where to save the pretrained DBN, a .keras file (reused by "
                             "few_labels.py --dbn; an empty string saves nothing)")
    args = parser.parse_args(argv)
    # fine_tune() checks the same, but only after pretraining.
    if (args.adversarial or args.vat) and args.label_smoothing:
        parser.error("--adversarial and --vat train on integer labels: no --label-smoothing")
    if args.adversarial and args.vat:
        parser.error("choose one of --adversarial and --vat")
    if args.swa_epochs and not args.swa_epochs < args.mlp_epochs:
        parser.error(f"--swa-epochs must be less than --mlp-epochs ({args.mlp_epochs}), "
                     f"got {args.swa_epochs}")
    if args.swa_lr is not None and not args.swa_epochs:
        parser.error("--swa-lr sets the learning rate of the --swa-epochs: give those too")
    if args.swa_lr is None:
        args.swa_lr = 0.2
    if args.swa_epochs and not args.swa_lr <= 1:
        parser.error(f"--swa-lr is a fraction of --mlp-lr in (0, 1], got {args.swa_lr}")
    _common.check_input_file(parser, args.dbn, "--dbn")
    if args.save_dbn and not args.dbn:
        if not args.save_dbn.endswith(".keras"):
            # DBN.save refuses .h5 (legacy HDF5 cannot hold an RBM's state).
            parser.error(f"--save-dbn needs a .keras file name, got {args.save_dbn!r}")
        _common.check_output_path(parser, args.save_dbn, "--save-dbn")
    _common.check_output_path(parser, args.out)
    return args


def main(argv=None):
    return _common.run_script(parse_args, run_benchmark, argv)


def run_benchmark(args):
    import keras

    info = _common.announce_machine()
    keras.utils.set_random_seed(args.seed)
    layers = [int(s) for s in args.layers.split(",")]
    x_train, y_train = _common.load_mnist("train", manual_dir=args.manual_dir, data_dir=args.data_dir)
    x_test, y_test = _common.load_mnist("test", manual_dir=args.manual_dir, data_dir=args.data_dir)
    rss_data = peak_rss_mib()

    if args.dbn:
        dbn, pretrain_s = keras.models.load_model(args.dbn), float("nan")
        layers = [rbm.units for rbm in dbn.rbms]
    else:
        dbn, pretrain_s = pretrain(x_train, layers, args.dbn_epochs, args.dbn_batch, args.dbn_lr,
                                   args.momentum, args.dtype, args.seed, args.verbose)
    rss_pretrain = peak_rss_mib()
    if args.save_dbn and not args.dbn:
        os.makedirs(os.path.dirname(os.path.abspath(args.save_dbn)), exist_ok=True)
        dbn.save(args.save_dbn)
        print(f"wrote the pretrained DBN to {args.save_dbn}", flush=True)
    classifier = dbn.to_classifier(10, dropout=args.dropout, input_dropout=args.input_dropout)
    if args.batch_norm:
        classifier = with_batch_norm(classifier, x_train)
    error, finetune_s, extra = fine_tune(
        classifier, x_train, y_train, x_test, y_test, args.mlp_epochs, args.mlp_batch,
        args.mlp_lr, args.verbose, args.mlp_optimizer, args.momentum, args.seed, args.ema,
        args.label_smoothing, args.max_norm, args.probe_epochs, args.adversarial, args.vat,
        args.swa_epochs, args.swa_lr)
    rss_peak = peak_rss_mib()
    result = {
        "architecture": "784-" + "-".join(map(str, layers)) + "-10",
        "test_error": error,
        "pretrain_seconds": round(pretrain_s, 1),
        "finetune_seconds": round(finetune_s, 1),
        "total_seconds": round(pretrain_s + finetune_s, 1),
        "peak_rss_mib_after_loading_data": round(rss_data, 1),
        "peak_rss_mib_after_pretraining": round(rss_pretrain, 1),
        "peak_rss_mib": round(rss_peak, 1),
        "load_average_at_end": _common.load_now(),
        "settings": vars(args),
        **extra,
    }
    print()
    _common.print_table(
        ["architecture", "test error", "pretrain s", "fine-tune s", "total s", "peak RSS MiB"],
        [[result["architecture"], f"{100 * error:.2f}%", result["pretrain_seconds"],
          result["finetune_seconds"], result["total_seconds"], result["peak_rss_mib"]]],
    )
    if "final_weights_test_error" in extra:
        print(f"the last epoch's weights, before averaging: "
              f"{100 * extra['final_weights_test_error']:.2f}% test error")
    _common.write_json(args.out, {"machine": info, "command": " ".join(sys.argv), "result": result})
    return result


if __name__ == "__main__":
    main()
