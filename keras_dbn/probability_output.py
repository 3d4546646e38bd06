"""Checks that a classifier's last layer outputs class probabilities."""


def check_probability_output(model, what, allowed=("softmax",)):
    """Refuses a model whose last layer's activation gives no probabilities.

    Cross-entropies and a served ``probabilities`` output read the model's
    outputs as probabilities: logits (a linear last layer) would pass for
    them without a word.

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
    last = model.layers[-1] if getattr(model, "layers", None) else model
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", None)
    if activation is not None and name is not None and name not in allowed:
        raise ValueError(
            f"{what} must output class probabilities, but its last layer {last.name!r} has "
            f"activation {name!r}; give it activation='softmax' (DBN.to_classifier does)."
        )
