"""Per-example clipping of a loss's gradient, without a Python loop over examples.

`clipped_gradient_sum` is the fast path used everywhere: it records the forward pass, gets the gradient
of every private layer's output in one backward pass, and lets each layer's rule (`layer_rules`) turn
(inputs, output gradients) into per-example norms and the clipped sum. Models it cannot follow (a layer
with private variables called on several tensors, variables used outside any layer) fall back, as a
whole, to per-example gradients vectorised with `tf.vectorized_map` (`per_example_gradients`).
"""

import contextlib

import keras
import tensorflow as tf
from absl import logging

from privgan.dp.layer_rules import GenericRule, own_trainable_variables, rule_for


class _Unsupported(Exception):
    """The recorded forward pass cannot be handled layer by layer."""


class _Entry:
    def __init__(self, layer, rule, original_call):
        self.layer, self.rule, self.original_call, self.uses = layer, rule, original_call, []


@contextlib.contextmanager
def _recording_layers(private_ids):
    """Records each call of a layer that owns private variables, through its rule's `call`.

    Layer lookup goes through `keras.layers.Layer.__call__`, patched for the duration of the block (a
    trace of the forward pass), so any model structure is followed, subclassed models included.
    """
    entries = {}
    original_dunder = keras.layers.Layer.__call__

    def recording_dunder(layer, *args, **kwargs):
        own = own_trainable_variables(layer)
        if not any(id(v) in private_ids for v in own):
            return original_dunder(layer, *args, **kwargs)
        if len(args) != 1 or not tf.is_tensor(args[0]) and not hasattr(args[0], "shape"):
            raise _Unsupported(f"layer {layer.name!r} is called on {len(args)} positional inputs")
        entry = entries.get(id(layer))
        if entry is None:
            rule = rule_for(layer) if all(id(v) in private_ids for v in own) else GenericRule
            entry = entries[id(layer)] = _Entry(layer, rule, layer.call)

        def call(inputs, **call_kwargs):
            outputs, use = entry.rule.call(layer, entry.original_call, inputs, **call_kwargs)
            entry.uses.append(use)
            return outputs

        layer.call = call  # an instance attribute shadows the class's method for this one call
        try:
            return original_dunder(layer, *args, **kwargs)
        finally:
            del layer.call

    keras.layers.Layer.__call__ = recording_dunder
    try:
        yield entries
    finally:
        keras.layers.Layer.__call__ = original_dunder


def _split_aux(outputs, has_aux):
    losses, aux = outputs if has_aux else (outputs, None)
    return tf.reshape(losses, [-1]), aux


def per_example_gradients(per_example_loss_fn, variables, batch, *, has_aux=False):
    """Per-example gradients of `variables`, vectorised over the batch with `tf.vectorized_map`.

    Materialises one gradient per example (memory B x parameters): the reference and fallback path.

    Args:
        per_example_loss_fn: maps a batch to per-example losses (or `(losses, aux)` with `has_aux`);
            it is called on batches of one example.
        variables: the variables to differentiate.
        batch: a tensor or nested structure of tensors with a leading batch axis.
        has_aux: whether `per_example_loss_fn` also returns auxiliary outputs.

    Returns:
        A list with one tensor of shape (batch_size, *variable.shape) per variable.
    """

    def one(example):
        single = tf.nest.map_structure(lambda t: t[None], example)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(_split_aux(per_example_loss_fn(single), has_aux)[0])
        return tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def empty():
        return [tf.zeros(tf.concat([[0], tf.shape(v)], 0), v.dtype) for v in variables]

    size = tf.shape(tf.nest.flatten(batch)[0])[0]
    # pfor cannot vectorise over zero examples, and Poisson sampling does produce empty batches.
    return tf.cond(size > 0, lambda: tf.vectorized_map(one, batch), empty)


def per_example_global_norms(gradients):
    """L2 norm of each example's gradient over all variables together.

    Args:
        gradients: list of tensors of shape (batch_size, ...), as from `per_example_gradients`.

    Returns:
        A vector of shape (batch_size,).
    """
    squares = [tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), axis=1) for g in gradients]
    return tf.sqrt(tf.add_n(squares))


def clip_factors(norms, *, l2_norm_clip):
    """Per-example scale factors min(1, C / norm); an example with norm 0 keeps factor 1."""
    clip = tf.cast(l2_norm_clip, norms.dtype)
    return clip / tf.maximum(norms, clip)


def _clipped_sum_of_per_example(gradients, *, l2_norm_clip):
    factors = clip_factors(per_example_global_norms(gradients), l2_norm_clip=l2_norm_clip)
    return [tf.tensordot(tf.cast(factors, g.dtype), g, axes=1) for g in gradients]


def clipped_gradient_sum(per_example_loss_fn, variables, batch, *, l2_norm_clip, has_aux=False, method="auto"):
    """Sum over the batch of each example's gradient clipped to L2 norm <= `l2_norm_clip`.

    Args:
        per_example_loss_fn: maps `batch` to per-example losses (or `(losses, aux)` with `has_aux`).
        variables: the private variables; the bound applies to all of them together.
        batch: a tensor or nested structure of tensors with a leading batch axis.
        l2_norm_clip: the clipping bound C > 0.
        has_aux: whether `per_example_loss_fn` also returns auxiliary outputs.
        method: "auto" (per-layer rules, whole-model fallback when needed) or "vectorized" (always
            materialise per-example gradients).

    Returns:
        `(clipped_sum, losses, aux)`: a list matching `variables`, the per-example losses, and `aux`.

    Raises:
        ValueError: if `method` is unknown.
    """
    if method not in ("auto", "vectorized"):
        raise ValueError(f"method must be 'auto' or 'vectorized', got {method!r}")
    variables = list(variables)
    private_ids = {id(v) for v in variables}
    fallback_reason = "requested" if method == "vectorized" else None
    with tf.GradientTape() as tape:
        try:
            with _recording_layers(private_ids) as entries:
                losses, aux = _split_aux(per_example_loss_fn(batch), has_aux)
        except _Unsupported as error:
            fallback_reason = str(error)
            losses, aux = _split_aux(per_example_loss_fn(batch), has_aux)
        total = tf.reduce_sum(losses)
    if fallback_reason is None:
        covered = {id(v) for entry in entries.values() for v in own_trainable_variables(entry.layer)}
        uncovered = [v.path if hasattr(v, "path") else v.name for v in variables if id(v) not in covered]
        if uncovered:
            fallback_reason = f"variables used outside a layer's own call: {uncovered}"
    if fallback_reason is not None:
        if method == "auto":
            logging.log_first_n(logging.WARNING, "DP clipping falls back to per-example gradients: %s", 1,
                                fallback_reason)
        gradients = per_example_gradients(per_example_loss_fn, variables, batch, has_aux=has_aux)
        return _clipped_sum_of_per_example(gradients, l2_norm_clip=l2_norm_clip), losses, aux

    uses = [(entry, use) for entry in entries.values() for use in entry.uses]
    checks = [
        tf.debugging.assert_equal(
            tf.shape(use.watched)[0], tf.shape(losses)[0],
            message=f"layer {entry.layer.name!r} saw a different number of rows than there are losses; "
            "each loss must come from its own example",
        )
        for entry, use in uses
    ]
    with tf.control_dependencies(checks):
        output_gradients = tape.gradient(
            total, [use.watched for _, use in uses], unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
    position = 0
    squared_norms, clipped_functions = [], []
    for entry in entries.values():
        count = len(entry.uses)
        squared, clipped = entry.rule.prepare(
            entry.layer, entry.original_call, entry.uses, output_gradients[position : position + count]
        )
        position += count
        squared_norms.append(squared)
        clipped_functions.append(clipped)
    factors = clip_factors(tf.sqrt(tf.add_n(squared_norms)), l2_norm_clip=l2_norm_clip)
    by_variable = {}
    for clipped in clipped_functions:
        by_variable.update(clipped(factors))
    return [tf.cast(by_variable[id(v)], v.dtype) for v in variables], losses, aux
