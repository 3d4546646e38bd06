"""Checks that a classifier's last layer outputs class probabilities."""

import keras

# Identity at inference: the layer before one of these decides what the
# model outputs.
_PASS_THROUGH = tuple(
    getattr(keras.layers, name)
    for name in ("Dropout", "GaussianDropout", "AlphaDropout", "GaussianNoise",
                 "ActivityRegularization", "Identity")
    if hasattr(keras.layers, name)
)

# Activation layers, which have no ``activation`` attribute to read.
_ACTIVATION_LAYERS = tuple(
    (getattr(keras.layers, name), activation)
    for name, activation in (("Softmax", "softmax"), ("ReLU", "relu"),
                             ("LeakyReLU", "leaky_relu"), ("ELU", "elu"), ("PReLU", "prelu"))
    if hasattr(keras.layers, name)
)


def check_probability_output(model, what, allowed=("softmax",)):
    """Refuses a model whose last layer's activation gives no probabilities.

    Cross-entropies and a served ``probabilities`` output read the model's
    outputs as probabilities: logits (a linear last layer) would pass for
    them without a word.

    The last layer is the last of ``model.layers`` that is not the identity
    at inference (Dropout, GaussianDropout, AlphaDropout, GaussianNoise,
    ActivityRegularization, Identity). Its activation is its ``activation``
    attribute, or the one it is, for the activation layers ``Softmax``,
    ``ReLU``, ``LeakyReLU``, ``ELU`` and ``PReLU``. A last layer with neither
    (a custom or nested one) passes: it cannot be judged.

    Args:
        model: a Keras model or layer; a model is judged by its last layer.
        what: how the error names the model, e.g. ``"`classifier`"``.
        allowed: names of the activations that give probabilities.

    Raises:
        ValueError: naming the last layer and its activation.

    Example:

    >>> check_probability_output(dbn.to_classifier(10), "`classifier`")  # passes
    >>> check_probability_output(keras.Sequential([keras.Input((784,)),
    ...                                            keras.layers.Dense(10)]), "the model")
    Traceback (most recent call last):
    ValueError: the model must output class probabilities, but its last layer ...
    """
    layers = list(getattr(model, "layers", None) or [model])
    skipped = []
    while layers and isinstance(layers[-1], _PASS_THROUGH):
        skipped.insert(0, layers.pop().name)
    if not layers:
        return
    last = layers[-1]
    name = _activation_name(last)
    if name is not None and name not in allowed:
        after = f" (followed by {', '.join(map(repr, skipped))})" if skipped else ""
        raise ValueError(
            f"{what} must output class probabilities, but its last layer {last.name!r}"
            f"{after} has activation {name!r}; end {what} in activation='softmax' "
            "(DBN.to_classifier does)."
        )


def _activation_name(layer):
    """The name of ``layer``'s activation, or None if it is not known."""
    for cls, activation in _ACTIVATION_LAYERS:
        if isinstance(layer, cls):
            return activation
    return getattr(getattr(layer, "activation", None), "__name__", None)
