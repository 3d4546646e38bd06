"""Virtual adversarial training (Miyato et al. 2019), supervised or semi-supervised.

`VirtualAdversarial` fine-tunes a classifier (for instance the one
`keras_dbn.DBN.to_classifier` builds from a pretrained DBN) with the usual
cross-entropy on labelled images plus a smoothness term that needs no labels:
for each input it finds the small perturbation that would change the
network's prediction most and penalises that change. Trained on a few
labelled images and many unlabelled ones (batches from
`keras_dbn.semi_supervised_dataset`), it is a semi-supervised method; trained
on ordinary ``(x, y)`` data, a regulariser.

Example:

```python
dbn = keras_dbn.DBN([500, 500, 2000]); dbn.pretrain(x_train, epochs=10)
vat = keras_dbn.VirtualAdversarial(dbn.to_classifier(10, dropout=0.2), epsilon=2.0)
vat.compile(optimizer=keras.optimizers.Adam(1e-3))
data = keras_dbn.semi_supervised_dataset(x_few, y_few, x_train, seed=0)
vat.fit(data, steps_per_epoch=150, epochs=20)   # 3,000 updates
vat.evaluate(x_test, y_test, return_dict=True)  # {"accuracy": ..., "loss": ...}
classifier = vat.classifier           # a plain Keras model
```

Reference:
    Takeru Miyato, Shin-ichi Maeda, Masanori Koyama and Shin Ishii, "Virtual
    Adversarial Training: A Regularization Method for Supervised and
    Semi-Supervised Learning", IEEE TPAMI 41(8), 2019.
"""

import keras
from keras import ops

from keras_dbn import units as units_lib
from keras_dbn.semi_supervised import ClassifierTrainer
from keras_dbn.rbm import checked_seed
from keras_dbn.semi_supervised import _is_integer
from keras_dbn.semi_supervised import _positive_number

#: L2 norm of the perturbation; Miyato et al. used 2.0 for MNIST with all labels.
DEFAULT_EPSILON = 2.0
#: Length of the probe direction of the power iteration (Miyato et al.'s 1e-6).
DEFAULT_XI = 1e-6

# Probabilities without logits are clipped to this before their logarithm.
_LOG_FLOOR = 1e-7


def _refuse_low_precision(classifier):
    """Raises for a classifier with a layer computing in 16 bits (see
    `VirtualAdversarial`'s Raises)."""
    # Models (the classifier itself, nested ones) and their input layers
    # compute nothing themselves: their layers are listed too.
    low = sorted({layer.compute_dtype for layer in classifier._flatten_layers()
                  if layer.compute_dtype in units_lib._LOW_PRECISION
                  and not isinstance(layer, (keras.Model, keras.layers.InputLayer))})
    if low:
        raise ValueError(
            f"VirtualAdversarial needs a classifier that computes in float32, but layers "
            f"of this one compute in {', '.join(low)}: the power iteration's probe (xi, "
            "1e-6 by default) is far below their resolution, and the direction found "
            "would be that of rounding errors. Build the classifier in float32, e.g. "
            "dbn.to_classifier(10, dtype=\"float32\")."
        )


def _unit(d):
    """Each example of ``d`` scaled to L2 norm 1 (zero stays zero), in float32.

    The examples are first scaled by their largest magnitude, so that
    gradients as small as those of the power iteration (often < 1e-10) do
    not underflow when squared. Zero examples are divided by 1 instead of
    by guards such as ``max(m, 1e-30)``: XLA merges two divisions into one
    by the product of their divisors, which such guards underflow to 0
    (NaN for a zero example); the divisors here are 1 or a normal number
    times a norm >= 1.
    """
    d = ops.cast(d, "float32")
    axes = tuple(range(1, len(d.shape)))
    largest = ops.max(ops.abs(d), axis=axes, keepdims=True)
    nonzero = largest > 0
    d = d / ops.where(nonzero, largest, 1.0)
    norm = ops.sqrt(ops.sum(ops.square(d), axis=axes, keepdims=True))
    return d / ops.where(nonzero, norm, 1.0)


def _log_probabilities(probabilities):
    """``log(probabilities)`` in float32: Keras' log-softmax of the logits
    where ``probabilities`` is a softmax output that keeps them (a graph
    tensor of `keras.activations.softmax`, as Keras' own cross-entropies
    read them), else the logarithm of the probabilities clipped to
    ``[1e-7, 1]``."""
    logits = getattr(probabilities, "_keras_logits", None)
    if logits is not None:
        return ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return ops.log(ops.clip(ops.cast(probabilities, "float32"), _LOG_FLOOR, 1.0))


def kl_divergence(p, q):
    """Mean over the batch of ``KL(p || q) = sum_k p_k (log p_k - log q_k)``.

    Where ``p`` or ``q`` is the output of a softmax that keeps its logits
    (Keras' softmax activation in a graph, as in training), its logarithm
    is the log-softmax of the logits: exact for probabilities that round
    to 0 or 1 in float32, whose change under a perturbation as small as
    the power iteration's would otherwise be lost (Miyato et al. 2019
    also take the divergence of logits).

    Args:
        p, q: class probabilities, shape ``(batch, classes)``; cast to
            float32, and, without logits, clipped to ``[1e-7, 1]`` inside
            the logarithms.

    Returns:
        A float32 scalar.

    Example:

    >>> p, q = np.array([[0.5, 0.5]]), np.array([[0.9, 0.1]])
    >>> round(float(keras_dbn.virtual_adversarial.kl_divergence(p, q)), 4)
    0.5108
    >>> float(keras_dbn.virtual_adversarial.kl_divergence(p, p))
    0.0
    """
    log_p, log_q = _log_probabilities(p), _log_probabilities(q)
    p = ops.cast(p, "float32")
    return ops.mean(ops.sum(p * (log_p - log_q), axis=-1))


@keras.saving.register_keras_serializable(package="keras_dbn")
class VirtualAdversarial(ClassifierTrainer):
    """Trains a classifier with virtual adversarial training (Miyato et al. 2019).

    Each update minimises (Miyato et al. 2019, eq. 10)

        L = 1/n sum CE(y_l, f(x_l)) + weight * LDS(x_u)

    where ``f`` is the wrapped classifier with dropout and other training
    behaviour active, and the local distributional smoothness (eq. 3-4)

        LDS(x) = mean KL(p(y | x) || p(y | x + r_adv))

    is computed by the classifier in inference mode (no dropout: the term
    measures how the prediction moves, not the dropout noise). ``p(y | x)``
    is held constant, and ``r_adv``, the perturbation of L2 norm ``epsilon``
    per example that increases the divergence most, is approximated by
    ``power_iterations`` steps of the power method (eq. 12-14): from a
    random direction ``d``, ``d <- grad_d KL(p(y | x) || p(y | x + xi d))``
    normalised, and ``r_adv = epsilon d``. No gradient flows through
    ``r_adv``.

    ``fit`` takes ``((x_l, y_l), x_u)`` batches (from
    `keras_dbn.semi_supervised_dataset`; ``x_u`` are unlabelled inputs,
    usually all training inputs), or plain ``(x, y)`` data, for which the
    smoothness term is taken on the labelled batch itself (supervised VAT;
    sample weights then weight the cross-entropy like Keras' compiled loss).
    It logs ``loss`` (L above plus any regularisation losses of the
    classifier), ``labelled_crossentropy``, ``lds`` and ``accuracy``
    (on the labelled training batches, with dropout active), each averaged over the
    epoch with each update weighted by its labelled batch size, as Keras'
    ``fit`` does. ``call``, ``predict`` and ``evaluate`` work as for `PseudoLabel`:
    plain ``(x, y)`` data with integer labels, ``loss`` and ``accuracy``.
    Each update runs the classifier forward ``3 + power_iterations`` times
    and backward ``1 + power_iterations`` times, about 2.3x the cost of a
    plain step on MNIST's batches of 100.

    ``epsilon`` is measured in the units of the classifier's input: for
    MNIST pixels in [0, 1] (784 of them) Miyato et al. used 2.0 with all
    labels; the perturbed inputs are not clipped to the data's range. Only
    the TensorFlow backend can train (``predict`` and ``evaluate`` work on
    any backend). Compile with just an optimizer (`ClassifierTrainer.compile`
    refuses a ``loss`` or ``metrics``); after training,
    ``vat.classifier`` is the trained classifier itself, a plain Keras
    model that needs no keras_dbn.

    Args:
        classifier: a Keras model mapping inputs to class probabilities
            (a softmax output), e.g. ``DBN.to_classifier(num_classes)``.
        epsilon: L2 norm of the perturbation per example, > 0.
        xi: length of the probe direction in the power iteration, > 0;
            small enough that the divergence is close to its second-order
            approximation, large enough for float32 to resolve it.
        weight: weight of the smoothness term, >= 0 (Miyato et al.'s
            ``alpha``, 1 in all their experiments); 0 is plain supervised
            training.
        power_iterations: power-method steps per update, an integer >= 1
            (Miyato et al. found one enough).
        seed: integer seed of the random probe directions, or ``None``.
        **kwargs: passed to `keras.Model` (``name``, ...).

    Raises:
        ValueError: on a non-model ``classifier``, an ``epsilon`` or ``xi``
            that is not a finite number > 0, a ``weight`` that is not a
            finite number >= 0, or ``power_iterations`` that is not an
            integer >= 1; on a classifier with a layer that computes in
            float16 or bfloat16 (e.g. ``to_classifier(dtype=
            "mixed_bfloat16")``): a probe of length ``xi`` is below their
            resolution, so the power iteration would return the direction
            of rounding errors, whatever the seed or number of steps.

    Example:

    ```python
    classifier = dbn.to_classifier(10, dropout=0.2)
    vat = keras_dbn.VirtualAdversarial(classifier, epsilon=2.0, seed=0)
    vat.compile(optimizer=keras.optimizers.Adam(1e-3))
    data = keras_dbn.semi_supervised_dataset(x_labelled, y_labelled, x_all, seed=0)
    vat.fit(data, steps_per_epoch=150, epochs=20)      # 3,000 updates
    error = 1 - vat.evaluate(x_test, y_test, return_dict=True)["accuracy"]
    vat.fit(x_train, y_train, batch_size=100, epochs=1)  # supervised VAT
    ```

    References:
        Takeru Miyato, Shin-ichi Maeda, Masanori Koyama and Shin Ishii,
        "Virtual Adversarial Training: A Regularization Method for
        Supervised and Semi-Supervised Learning", IEEE TPAMI 41(8), 2019
        (eq. 3-4, 10 and 12-14).
    """

    EXTRA_METRICS = ("lds",)
    _PLAIN_BATCHES = True

    def __init__(
        self,
        classifier,
        epsilon=DEFAULT_EPSILON,
        xi=DEFAULT_XI,
        weight=1.0,
        power_iterations=1,
        seed=None,
        **kwargs,
    ):
        super().__init__(classifier, **kwargs)
        _refuse_low_precision(classifier)
        self.epsilon = _positive_number("epsilon", epsilon)
        self.xi = _positive_number("xi", xi)
        self.weight = _positive_number("weight", weight, allow_zero=True)
        if not _is_integer(power_iterations) or power_iterations < 1:
            raise ValueError(
                f"`power_iterations` must be an integer >= 1, got {power_iterations!r}."
            )
        self.power_iterations = int(power_iterations)
        self.seed = checked_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self._graph_perturbation = None

    def virtual_adversarial_perturbation(self, x, probabilities=None):
        """``r_adv`` for each example of ``x`` (Miyato et al. 2019, eq. 12-14).

        Args:
            x: a batch of inputs of the classifier.
            probabilities: the classifier's output for ``x`` in inference
                mode, if already computed.

        Returns:
            A float tensor of ``x``'s shape: per example the direction of
            largest increase of ``KL(p(y | x) || p(y | x + r))`` found by
            ``power_iterations`` power-method steps, scaled to L2 norm
            ``epsilon``. It carries no gradient. An example whose gradient
            is exactly 0 in float32 (the probe of length ``xi`` changes none
            of its logits) keeps the direction of the step before, the
            random start after one step, so every example has norm
            ``epsilon``.

        Example:

        >>> r_adv = vat.virtual_adversarial_perturbation(x_test[:10])  # shape (10, 784)
        >>> np.allclose(np.linalg.norm(r_adv, axis=-1), vat.epsilon)
        True
        """
        self._require_tensorflow()
        import tensorflow as tf

        if tf.executing_eagerly():
            # Eager tensors do not keep the softmax's logits (kl_divergence).
            if self._graph_perturbation is None:
                self._graph_perturbation = tf.function(
                    self.virtual_adversarial_perturbation, reduce_retracing=True
                )
            return self._graph_perturbation(x, probabilities)
        x = self._as_float(x)
        if probabilities is None:
            probabilities = self.classifier(x, training=False)
        probabilities = ops.stop_gradient(probabilities)
        axes = tuple(range(1, len(x.shape)))
        d = keras.random.normal(ops.shape(x), seed=self.seed_generator)
        for _ in range(self.power_iterations):
            d = ops.cast(self.xi * _unit(d), x.dtype)
            with tf.GradientTape() as tape:
                tape.watch(d)
                divergence = kl_divergence(probabilities, self.classifier(x + d, training=False))
            gradient = ops.stop_gradient(tape.gradient(divergence, d))
            vanished = ops.all(gradient == 0, axis=axes, keepdims=True)
            d = ops.where(vanished, d, gradient)
        return ops.cast(self.epsilon * _unit(d), x.dtype)

    @staticmethod
    def _as_float(x):
        x = ops.convert_to_tensor(x)
        return x if "float" in str(x.dtype) else ops.cast(x, "float32")

    def _step(self, x_labelled, y_labelled, x_unlabelled, sample_weight):
        x_smooth = self._as_float(x_labelled if x_unlabelled is None else x_unlabelled)
        probabilities_u = ops.stop_gradient(self.classifier(x_smooth, training=False))
        r_adv = self.virtual_adversarial_perturbation(x_smooth, probabilities_u)

        def loss_terms():
            probabilities_l = self.classifier(x_labelled, training=True)
            labelled_ce = self._mean_crossentropy(y_labelled, probabilities_l, sample_weight)
            lds = kl_divergence(
                probabilities_u, self.classifier(x_smooth + r_adv, training=False)
            )
            return labelled_ce + self.weight * lds, labelled_ce, (lds,), probabilities_l

        return self._minimize(loss_terms, y_labelled)

    def get_config(self):
        return {
            **super().get_config(),
            "epsilon": self.epsilon,
            "xi": self.xi,
            "weight": self.weight,
            "power_iterations": self.power_iterations,
            "seed": self.seed,
        }
