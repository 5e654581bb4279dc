"""Per-example clipping of a loss's gradient, without a Python loop over examples.

`clipped_gradient_sum` is the fast path used everywhere: it records the forward pass, gets the gradient
of every private layer's output in one backward pass, and lets each layer's rule (`layer_rules`) turn
(inputs, output gradients) into per-example norms and the clipped sum. Models it cannot follow fall
back, as a whole, to per-example gradients (`per_example_gradients`): a layer with private variables
called on several positional inputs, a private variable read outside its own layer's call or owned by
two layers (the layer rules would miss part of its gradient). Those are vectorised with
`tf.vectorized_map`, except for models with a recurrent layer or a mask (`layer_rules.needs_loop`),
which TensorFlow cannot vectorise, or which abort the whole process in it: they loop over the examples
(`tf.map_fn`), a choice made from the recorded forward pass before anything is vectorised.
`clipping_plan` tells which path a model takes.

While recording, every layer the loss calls is checked: one that mixes examples (a trainable
BatchNormalization, or any layer declaring `mixes_examples = True`) is refused, because per-example
clipping would not bound one example's influence through it.

An example whose gradient is not finite gets the clip factor 0 and contributes nothing: with the
factor min(1, C / norm) alone, one NaN would make the whole update NaN and reveal that the example was
in the batch.
"""

import contextlib
import contextvars
import dataclasses
import threading

import keras
import tensorflow as tf
from absl import logging
from keras.src.backend.common.symbolic_scope import in_symbolic_scope

from privgan.dp.layer_rules import (
    GenericRule,
    keep_rows,
    map_examples,
    needs_loop,
    own_trainable_variables,
    rule_for,
    rule_variables,
)
from privgan.dp.validation import NonPrivateLayerError, mixes_examples


class _Entry:
    def __init__(self, layer, rule, original_call, variables):
        self.layer, self.rule, self.original_call, self.uses = layer, rule, original_call, []
        self.variables = variables
        # A rule covering its sub-layers' variables (a recurrent layer and its cell) runs them itself.
        self.compound = bool({id(v) for v in variables} - {id(v) for v in own_trainable_variables(layer)})


class _Recording:
    """What `_recording_layers` saw over the whole forward pass.

    Attributes:
        entries: id(layer) -> `_Entry`, the private layers and their uses.
        outside_reads: ids of variables read outside their own layers' calls.
        unsupported: why the layer rules cannot follow the model, or None.
        loop_reason: why per-example gradients must not be vectorised (`layer_rules.needs_loop`), or None.
    """

    def __init__(self):
        self.entries = {}
        self.outside_reads = set()
        self.unsupported = None
        self.loop_reason = None


def _input_mask(args, kwargs):
    # Keras passes a mask to `call` from the `mask=` argument or from the mask its input tensor carries.
    if kwargs.get("mask") is not None or not args:
        return kwargs.get("mask")
    return getattr(args[0], "_keras_mask", None)


def _follows(rule, args):
    """Whether `rule` can follow a call on `args`: one tensor, or for per-example VJPs a structure of them."""
    if len(args) != 1:
        return False
    leaves = tf.nest.flatten(args[0]) if isinstance(rule, type) and issubclass(rule, GenericRule) else [args[0]]
    return bool(leaves) and all(tf.is_tensor(leaf) or hasattr(leaf, "shape") for leaf in leaves)


# The recorder of the forward pass being traced in this thread/context, or None. Keras' `Layer.__call__`
# is replaced once by a pass-through that consults it, so a layer called from another thread (or any
# context not tracing a DP step) runs untouched, instead of being recorded into someone else's step.
_ACTIVE_RECORDER = contextvars.ContextVar("privgan_active_layer_recorder", default=None)
_INSTALL_LOCK = threading.Lock()
_ORIGINAL_DUNDER = None


def _install_pass_through():
    """Routes `keras.layers.Layer.__call__` through `_ACTIVE_RECORDER`, once per process (idempotent).

    Installed on first use rather than at import, so importing privgan changes nothing in Keras; once
    installed it costs one context-variable lookup per layer call and otherwise calls Keras' own method.
    """
    global _ORIGINAL_DUNDER
    with _INSTALL_LOCK:
        if _ORIGINAL_DUNDER is not None:
            return
        original = keras.layers.Layer.__call__

        def pass_through(layer, *args, **kwargs):
            recorder = _ACTIVE_RECORDER.get()
            if recorder is None:
                return original(layer, *args, **kwargs)
            return recorder(layer, *args, **kwargs)

        pass_through.__wrapped__ = original
        keras.layers.Layer.__call__ = pass_through
        _ORIGINAL_DUNDER = original


@contextlib.contextmanager
def _recording_layers(private_ids):
    """Records each call of a layer that owns private variables, through its rule's `call`.

    Layer lookup goes through `keras.layers.Layer.__call__` (a pass-through installed once, see
    `_install_pass_through`), which hands the calls made in this context during the block (a trace of
    the forward pass) to the recorder, so any model structure is followed, subclassed models included;
    calls from other threads are not recorded. A tape that pauses inside private layers' calls collects
    the variables read anywhere else (tapes are per thread too). A call the rules cannot follow does not
    stop the forward pass: it is noted (`unsupported`), the pass goes on unrecorded, and every layer is
    still checked for what must not be vectorised.
    """
    _install_pass_through()
    original_dunder = _ORIGINAL_DUNDER
    recording = _Recording()
    entries = recording.entries
    outside = tf.GradientTape(watch_accessed_variables=True)
    private_depth = []  # private layers being called: the outside tape pauses at the outermost

    def recording_dunder(layer, *args, **kwargs):
        if mixes_examples(layer):
            raise NonPrivateLayerError(
                f"the loss calls layer {layer.name!r} ({type(layer).__name__}), which mixes examples within "
                "a batch, so per-example clipping would not bound one example's influence. Use "
                "LayerNormalization or GroupNormalization instead, or freeze it (trainable=False)."
            )
        if in_symbolic_scope():
            # Keras building a model on its first call (shapes only, in a scratch graph): nothing to record.
            return original_dunder(layer, *args, **kwargs)
        if recording.loop_reason is None:
            recording.loop_reason = needs_loop(layer, {"mask": _input_mask(args, kwargs)})
        if recording.unsupported is not None or any(entry.compound for entry in private_depth):
            return original_dunder(layer, *args, **kwargs)
        entry = entries.get(id(layer))
        if entry is None:
            rule = rule_for(layer)
            covered = rule_variables(rule, layer)
            if not any(id(v) in private_ids for v in covered):
                return original_dunder(layer, *args, **kwargs)
            if not all(id(v) in private_ids for v in covered):
                rule, covered = GenericRule, own_trainable_variables(layer)
            entry = _Entry(layer, rule, layer.call, covered)
        if not _follows(entry.rule, args):
            recording.unsupported = (f"layer {layer.name!r} ({type(layer).__name__}) is called on several "
                                     "positional inputs")
            return original_dunder(layer, *args, **kwargs)
        entries[id(layer)] = entry

        def call(inputs, **call_kwargs):
            # The instance attribute below is seen by every thread: record only this context's call.
            if in_symbolic_scope() or _ACTIVE_RECORDER.get() is not recording_dunder:
                return entry.original_call(inputs, **call_kwargs)
            outputs, use = entry.rule.call(layer, entry.original_call, inputs, **call_kwargs)
            entry.uses.append(use)
            return outputs

        layer.call = call  # an instance attribute shadows the class's method for this one call
        pause = outside.stop_recording() if not private_depth else contextlib.nullcontext()
        private_depth.append(entry)
        try:
            with pause:
                return original_dunder(layer, *args, **kwargs)
        finally:
            private_depth.pop()
            del layer.call

    token = _ACTIVE_RECORDER.set(recording_dunder)
    try:
        with outside:
            yield recording
    finally:
        _ACTIVE_RECORDER.reset(token)
        recording.outside_reads = {id(v) for v in outside.watched_variables()}


def _split_aux(outputs, has_aux):
    losses, aux = outputs if has_aux else (outputs, None)
    return tf.reshape(losses, [-1]), aux


def _pad_empty_batch(batch):
    """`(batch, size)`, where an empty batch has become one all-zero row.

    Poisson sampling draws empty batches, and some TensorFlow kernels fail on zero rows (Conv2D under
    oneDNN: "input depth must be evenly divisible by filter depth"; depthwise convolutions), in plain
    Keras too. The padded row's clip factor is set to zero by the caller, so it adds nothing to the sum.
    Leaves that are not dense tensors (ragged, sparse) are left as they are.
    """
    leaves = tf.nest.flatten(batch)
    if not leaves or not all(isinstance(t, (tf.Tensor, tf.Variable)) or hasattr(t, "__array__") for t in leaves):
        return batch, None
    leaves = [tf.convert_to_tensor(t) for t in leaves]
    if any(t.shape.rank == 0 for t in leaves):
        return batch, None
    size = tf.shape(leaves[0])[0]

    def padded(t):
        inner = [d if d is not None else tf.shape(t)[i + 1] for i, d in enumerate(t.shape[1:])]
        return tf.cond(size > 0, lambda: t, lambda: tf.zeros([1, *inner], t.dtype))

    return tf.nest.pack_sequence_as(batch, [padded(t) for t in leaves]), size


def _unpad(tensor, size):
    """`tensor` with no rows where the batch was empty (its rows came from the padded row only)."""
    if size is None or not isinstance(tensor, tf.Tensor) or tensor.shape.rank == 0:
        return tensor
    return tf.cond(size > 0, lambda: tensor, lambda: tensor[:0])


def per_example_gradients(per_example_loss_fn, variables, batch, *, has_aux=False, loop=False):
    """Per-example gradients of `variables`, vectorised over the batch with `tf.vectorized_map`.

    Materialises one gradient per example (memory B x parameters): the reference and fallback path.

    Args:
        per_example_loss_fn: maps a batch to per-example losses (or `(losses, aux)` with `has_aux`);
            it is called on batches of one example.
        variables: the variables to differentiate.
        batch: a tensor or nested structure of tensors with a leading batch axis.
        has_aux: whether `per_example_loss_fn` also returns auxiliary outputs.
        loop: loop over the examples (`tf.map_fn`) instead of vectorising, for models that TensorFlow
            cannot vectorise (recurrent or masked layers, see `layer_rules.needs_loop`).

    Returns:
        A list with one tensor of shape (batch_size, *variable.shape) per variable.
    """

    def one(example):
        single = tf.nest.map_structure(lambda t: t[None], example)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(_split_aux(per_example_loss_fn(single), has_aux)[0])
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [tf.convert_to_tensor(g) for g in grads]

    signature = [tf.TensorSpec(v.shape, v.dtype) for v in variables]
    return map_examples(one, batch, signature, loop=loop)


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
    """Per-example scale factors min(1, C / norm); 1 for norm 0, 0 for a norm that is not finite.

    A factor of 0 means "drop the example": callers must also zero its rows (`keep_rows`), since
    0 * NaN is NaN.
    """
    clip = tf.cast(l2_norm_clip, norms.dtype)
    factors = clip / tf.maximum(norms, clip)
    return tf.where(tf.math.is_finite(norms), factors, tf.zeros_like(factors))


def _clipped_sum_of_per_example(gradients, *, l2_norm_clip, scale):
    factors = clip_factors(per_example_global_norms(gradients), l2_norm_clip=l2_norm_clip)
    factors *= tf.cast(scale, factors.dtype)
    return [tf.tensordot(tf.cast(factors, g.dtype), keep_rows(g, factors), axes=1) for g in gradients]


def _unfollowed_variables(variables, entries, outside_reads):
    """Why the layer rules cannot give these variables' per-example gradients, or None if they can."""

    def names(selected):
        return [v.path if hasattr(v, "path") else v.name for v in selected]

    owners = {}
    for entry in entries.values():
        for v in entry.variables:
            owners[id(v)] = owners.get(id(v), 0) + 1
    uncovered = [v for v in variables if id(v) not in owners]
    if uncovered:
        return f"variables used outside a layer's own call: {names(uncovered)}"
    shared = [v for v in variables if owners[id(v)] > 1]
    if shared:
        return f"variables owned by several layers: {names(shared)}"
    # A tape watches the tf.Variable inside a Keras variable (its `_value` on the TensorFlow backend).
    read_outside = [v for v in variables if id(getattr(v, "_value", v)) in outside_reads]
    if read_outside:
        return f"variables read outside their own layer's call: {names(read_outside)}"
    return None


METHODS = ("auto", "vectorized", "loop")


def _whole_model_reason(method, recording, variables):
    """Why per-example gradients of the whole model are taken instead of the layer rules, or None."""
    if method != "auto":
        return f"method={method!r} was requested"
    if recording.unsupported is not None:
        return recording.unsupported
    return _unfollowed_variables(variables, recording.entries, recording.outside_reads)


@dataclasses.dataclass(frozen=True)
class ClippingPlan:
    """How `clipped_gradient_sum` takes a model's per-example gradient norms (see `clipping_plan`).

    Attributes:
        whole_model: why per-example gradients of the whole model are taken, or None when every
            private layer has its rule.
        whole_model_path: "vectorised" or "per-example loop" with `whole_model`, else None.
        layers: (layer name, path) for each private layer the rules follow, in call order; a path is
            "fast rule" (closed form, no per-example gradients), "vectorised" or "per-example loop"
            (the layer's own per-example gradients), or a registered rule's `path` attribute.
    """

    whole_model: str | None
    whole_model_path: str | None
    layers: tuple

    def __post_init__(self):
        if (self.whole_model is None) != (self.whole_model_path is None):
            raise ValueError("whole_model and whole_model_path must be given together")
        if self.whole_model_path not in (None, VECTORISED, LOOP):
            raise ValueError(f"whole_model_path must be None, {VECTORISED!r} or {LOOP!r}")


VECTORISED, LOOP = "vectorised", "per-example loop"


def _layer_path(entry):
    if isinstance(entry.rule, type) and issubclass(entry.rule, GenericRule):
        return LOOP if any(needs_loop(entry.layer, use.kwargs) for use in entry.uses) else VECTORISED
    return getattr(entry.rule, "path", "registered rule")


def clipping_plan(per_example_loss_fn, variables, batch, *, has_aux=False):
    """Which path `clipped_gradient_sum` takes for this loss, from one forward pass (no gradients).

    Args:
        per_example_loss_fn, variables, batch, has_aux: as for `clipped_gradient_sum`.

    Returns:
        A `ClippingPlan`.
    """
    variables = list(variables)
    with _recording_layers({id(v) for v in variables}) as recording:
        per_example_loss_fn(batch)
    reason = _whole_model_reason("auto", recording, variables)
    if reason is not None:
        return ClippingPlan(reason, LOOP if recording.loop_reason else VECTORISED, ())
    layers = tuple((entry.layer.name, _layer_path(entry)) for entry in recording.entries.values())
    return ClippingPlan(None, None, layers)


def clipped_gradient_sum(
    per_example_loss_fn, variables, batch, *, l2_norm_clip, has_aux=False, method="auto", scale=1.0
):
    """Sum over the batch of each example's gradient clipped to L2 norm <= `l2_norm_clip`.

    Args:
        per_example_loss_fn: maps `batch` to per-example losses (or `(losses, aux)` with `has_aux`).
        variables: the private variables; the bound applies to all of them together.
        batch: a tensor or nested structure of tensors with a leading batch axis.
        l2_norm_clip: the clipping bound C > 0.
        has_aux: whether `per_example_loss_fn` also returns auxiliary outputs.
        method: "auto" (per-layer rules, whole-model fallback when needed), "vectorized" (always
            materialise per-example gradients, vectorised unless the model has a layer TensorFlow cannot
            vectorise, see `layer_rules.needs_loop`) or "loop" (materialise them one example at a time).
        scale: a number > 0 (or scalar tensor) the sum is multiplied by, folded into the clip factors so
            that it costs no pass over the gradients (`private_gradients` divides by the batch size so).

    Returns:
        `(clipped_sum, losses, aux)`: a list matching `variables`, the per-example losses, and `aux`.

    Raises:
        ValueError: if `method` is unknown.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    variables = list(variables)
    private_ids = {id(v) for v in variables}
    batch, size = _pad_empty_batch(batch)
    if size is not None:  # the padded row of an empty batch gets clip factor 0
        scale = tf.where(size > 0, tf.cast(scale, tf.float64), tf.constant(0.0, tf.float64))

    def unpadded(losses, aux):
        return _unpad(losses, size), tf.nest.map_structure(lambda t: _unpad(t, size), aux)

    with tf.GradientTape() as tape:
        with _recording_layers(private_ids) as recording:
            losses, aux = _split_aux(per_example_loss_fn(batch), has_aux)
        total = tf.reduce_sum(losses)
    entries = recording.entries
    whole_model = _whole_model_reason(method, recording, variables)
    if whole_model is not None:
        loop = method == "loop" or recording.loop_reason is not None
        if method == "auto":
            logging.log_first_n(
                logging.WARNING,
                "DP clipping takes per-example gradients of the whole model (%s; correct, slower than the "
                "per-layer rules) because %s", 1,
                "one example at a time, as TensorFlow cannot vectorise the " + recording.loop_reason if loop
                else "vectorised",
                whole_model,
            )
        gradients = per_example_gradients(per_example_loss_fn, variables, batch, has_aux=has_aux, loop=loop)
        return (_clipped_sum_of_per_example(gradients, l2_norm_clip=l2_norm_clip, scale=scale),
                *unpadded(losses, aux))

    uses = [(entry, use) for entry in entries.values() for use in entry.uses]
    checks = [
        tf.debugging.assert_equal(
            tf.shape(tf.nest.flatten(use.watched)[0])[0], tf.shape(losses)[0],
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
    factors *= tf.cast(scale, factors.dtype)
    by_variable = {}
    for clipped in clipped_functions:
        by_variable.update(clipped(factors))
    return [tf.cast(by_variable[id(v)], v.dtype) for v in variables], *unpadded(losses, aux)
