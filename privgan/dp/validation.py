"""Refusing layers whose output for one example depends on other examples of the batch.

Per-example clipping bounds one example's influence only if the loss of each example is a function of
that example alone. BatchNormalization (in training mode) normalises with batch statistics, so one
example moves every other example's loss and the clipping bound no longer bounds the sensitivity.
A frozen BatchNormalization (`trainable=False`) uses its moving statistics in Keras 3 and is allowed.

`check_private_model` looks at a model's layers before training; `privgan.dp.clipping` also refuses
such a layer whenever a private loss calls it, and `privgan.dp.check_sensitivity` measures what one
example can move, for layers nobody declared.
"""

import keras


class NonPrivateLayerError(ValueError):
    """A model meant for DP training contains a layer that mixes examples within a batch."""


def mixes_examples(layer):
    """Whether `layer` makes one example's output depend on the others' in training.

    True for a trainable BatchNormalization and for any layer declaring `mixes_examples = True`.
    """
    return (isinstance(layer, keras.layers.BatchNormalization) and layer.trainable) or bool(
        getattr(layer, "mixes_examples", False)
    )


def check_private_model(model, *, role="model"):
    """Checks that no layer of `model` (searched recursively) mixes examples.

    Args:
        model: a Keras layer or model whose variables will be trained with DP-SGD.
        role: how to call the model in the error message (e.g. "discriminator").

    Raises:
        NonPrivateLayerError: naming the first offending layer and its class.
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if mixes_examples(layer):
            raise NonPrivateLayerError(
                f"{role} contains layer {layer.name!r} ({type(layer).__name__}), which mixes examples "
                "within a batch, so per-example clipping would not bound one example's influence. "
                "Use LayerNormalization or GroupNormalization instead, no normalisation, or freeze it "
                "(trainable=False)."
            )
