"""Losses beyond the per-example loss in DP training: weight penalties are free, data-dependent ones refused.

A weight regulariser (`kernel_regularizer=...`) is a function of the weights alone, so its gradient can be
added after the noise without touching the privacy guarantee (post-processing of the noisy update), as
Keras adds it to the loss in ordinary training. A loss that a layer adds from its inputs
(`activity_regularizer`, `add_loss` inside `call`) depends on the batch and would need its own
per-example clipping; it is refused rather than silently dropped or added unclipped.
"""

import tensorflow as tf


def weight_penalty_gradients(model, variables):
    """Gradients of `model`'s weight-regularisation losses with respect to `variables`.

    Args:
        model: a Keras model or layer.
        variables: the variables to differentiate.

    Returns:
        A list matching `variables` (zeros where no penalty applies), or None when the model has no
        weight regulariser.
    """
    if not any(getattr(v, "regularizer", None) is not None for v in model.trainable_weights):
        return None
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model._get_regularization_losses())  # weights only: no data is read
    gradients = tape.gradient(penalty, variables)
    return [tf.zeros(v.shape, v.dtype) if g is None else g for v, g in zip(variables, gradients)]


def refuse_data_dependent_losses(model, *, role="model"):
    """Raises if a layer of `model` added a loss computed from its inputs in the last forward pass.

    Call it right after the model ran on private data (inside the train step, at trace time).

    Raises:
        ValueError: naming the layer, if an activity regulariser or `add_loss` produced a loss.
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if layer._get_own_losses():
            raise ValueError(
                f"{role} layer {layer.name!r} added a loss computed from its inputs (activity_regularizer "
                "or add_loss in call); DP training does not clip such losses per example. Remove it, or "
                "make it part of the per-example loss."
            )
