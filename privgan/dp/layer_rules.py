"""Per-layer rules: per-example gradient norms and clipped sums from a layer's inputs and output gradients.

For a layer computing z = f(a; theta) on each example, the gradient of example i's loss with respect to
theta is J_theta(a_i)^T g_i, where g_i = dL_i/dz_i. For Dense, Conv and Embedding layers that product
has a closed form, so its norm can be computed without building the per-example gradient (the "ghost
norm" of Goodfellow 2015 and Li et al. 2022, or the per-example outer product when it is cheaper), and
the clipped sum sum_i c_i J^T g_i is one ordinary weight-gradient op applied to (a, c * g) (Bu et al.'s
book-keeping). A layer without a rule gets per-example gradients of its own variables only, vectorised
with `tf.vectorized_map` (the generic rule), or looped over the examples where TensorFlow cannot
vectorise it (`needs_loop`: recurrent layers, calls with a mask). Rules live in a registry keyed by
layer class (`register_layer_rule`), which users extend for their own layers.

A rule is used in two phases: while the model runs forward, `call` replaces the layer's `call` and
returns the tensor whose gradient is needed (a "use" of the layer); afterwards `prepare` turns all uses
of the layer into per-example squared norms and a function from clip factors to clipped gradient sums.
"""

import keras
import tensorflow as tf


class LayerUse:
    """One call of a layer during the recorded forward pass."""

    def __init__(self, inputs, watched, kwargs):
        self.inputs = inputs  # what the rule needs to rebuild the weight gradient
        self.watched = watched  # the tensor g is the gradient of
        self.kwargs = kwargs


def outer_product_squared_norms(a, g):
    """Per-example ||a_i^T g_i||_F^2 for a of shape (B, T, d) and g of shape (B, T, p).

    Chooses the cheaper of the ghost norm, sum_{t,s} (a_t . a_s)(g_t . g_s) in O(B T^2 (d + p)), and
    materialising a_i^T g_i in O(B T d p).
    """
    steps, width_a, width_g = a.shape[1], a.shape[2], g.shape[2]
    if steps == 1:
        return tf.reduce_sum(tf.square(a), axis=[1, 2]) * tf.reduce_sum(tf.square(g), axis=[1, 2])
    if steps is None or steps * (width_a + width_g) <= width_a * width_g:
        gram_a = tf.einsum("btd,bsd->bts", a, a)
        gram_g = tf.einsum("btp,bsp->bts", g, g)
        return tf.reduce_sum(gram_a * gram_g, axis=[1, 2])
    per_example = tf.einsum("btd,btp->bdp", a, g)
    return tf.reduce_sum(tf.square(per_example), axis=[1, 2])


def _positions(tensor, trailing):
    # Product of the axes between the batch axis and the `trailing` last ones, written out because a
    # reshape to (0, -1, ...) cannot infer it on an empty batch. Static when known, so that
    # `outer_product_squared_norms` picks its formula at trace time.
    axes = tensor.shape[1 : tensor.shape.rank - trailing]
    if axes.is_fully_defined():
        return axes.num_elements()
    return tf.reduce_prod(tf.shape(tensor)[1 : tensor.shape.rank - trailing])


def _rows(tensor, trailing):
    """Reshapes (B, ..., trailing axes) to (B, T, trailing axes), T the product of the middle axes."""
    positions = _positions(tensor, trailing)
    # With a static T the batch axis is inferred (-1, also right for B = 0); otherwise it is read.
    batch = -1 if isinstance(positions, int) else tf.shape(tensor)[0]
    tail = tensor.shape[tensor.shape.rank - trailing :].as_list() if trailing else []
    return tf.reshape(tensor, [batch, positions, *tail])


def _as_sequences(tensors):
    # (B, ..., width) uses -> one (B, T, width) tensor, the uses' positions concatenated along T.
    flat = [_rows(t, 1) for t in tensors]
    return flat[0] if len(flat) == 1 else tf.concat(flat, axis=1)


def keep_rows(tensor, factors):
    """`tensor` with the rows of dropped examples (clip factor 0) set to 0, whatever they held.

    Multiplying by the factor is not enough: 0 * NaN and 0 * inf are NaN. Only a non-finite example has
    the factor 0, so the pass over the tensor is made only in a step that dropped one.
    """

    def dropped():
        kept = tf.reshape(factors > 0, [-1] + [1] * (tensor.shape.rank - 1))
        return tf.where(kept, tensor, tf.zeros_like(tensor))

    return tf.cond(tf.reduce_all(factors > 0), lambda: tf.identity(tensor), dropped)


def _scale(g, factors):
    return keep_rows(g, factors) * tf.reshape(tf.cast(factors, g.dtype), [-1] + [1] * (g.shape.rank - 1))


def _unmodified(layer):
    return not getattr(layer, "lora_enabled", False) and not getattr(layer, "quantization_mode", None)


class DenseRule:
    """Dense on inputs of shape (B, ..., d): kernel gradient a^T g per example, bias gradient sum of g."""

    path = "fast rule"

    @staticmethod
    def applies_to(layer):
        return type(layer) is keras.layers.Dense and _unmodified(layer)

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        z = tf.matmul(inputs, layer.kernel) if inputs.shape.rank == 2 else tf.tensordot(inputs, layer.kernel, 1)
        if layer.bias is not None:
            z = z + layer.bias
        outputs = layer.activation(z) if layer.activation is not None else z
        return outputs, LayerUse(inputs, z, kwargs)

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        a = _as_sequences([u.inputs for u in uses])
        g = _as_sequences(gradients)
        squared = outer_product_squared_norms(a, g)
        if layer.bias is not None:
            squared += tf.reduce_sum(tf.square(tf.reduce_sum(g, axis=1)), axis=1)

        def clipped(factors):
            scaled = _scale(g, factors)
            result = {id(layer.kernel): tf.einsum("btd,btp->dp", keep_rows(a, factors), scaled)}
            if layer.bias is not None:
                result[id(layer.bias)] = tf.reduce_sum(scaled, axis=[0, 1])
            return result

        return squared, clipped


class ConvRule:
    """Conv1D/Conv2D (channels_last, groups=1): the per-example kernel gradient is patches^T g."""

    path = "fast rule"

    @staticmethod
    def applies_to(layer):
        return (
            type(layer) in (keras.layers.Conv1D, keras.layers.Conv2D)
            and layer.data_format == "channels_last"
            and layer.groups == 1
            and _unmodified(layer)
        )

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        padding = layer.padding
        if padding == "causal":  # Conv1D only: left padding, then a valid convolution, as Keras does
            inputs = tf.pad(inputs, layer._compute_causal_padding())
            padding = "valid"
        images = inputs[:, None] if layer.rank == 1 else inputs
        kernel = layer.kernel[None] if layer.rank == 1 else layer.kernel
        # tf.nn.convolution, not tf.nn.conv2d: TensorFlow's CPU kernels have no dilated input gradient,
        # and convolution rewrites a dilated convolution into one they support.
        z = tf.nn.convolution(
            images, kernel, strides=_pair(layer.strides), padding=padding.upper(),
            dilations=_pair(layer.dilation_rate),
        )
        if layer.use_bias:
            z = z + layer.bias
        z = z[:, 0] if layer.rank == 1 else z
        outputs = layer.activation(z) if layer.activation is not None else z
        return outputs, LayerUse((images, padding.upper()), z, kwargs)

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        kernel = layer.kernel[None] if layer.rank == 1 else layer.kernel
        height, width, channels, filters = kernel.shape
        strides, dilations = _pair(layer.strides), _pair(layer.dilation_rate)
        g = _as_sequences(gradients)
        images, padding = uses[0].inputs
        output_shape = gradients[0].shape[1:-1] if layer.rank == 2 else (1, *gradients[0].shape[1:-1])
        if len(uses) == 1 and _block_gram_applies(images, output_shape, kernel.shape, strides, dilations):
            gram_a = _patch_gram_from_blocks(images, padding, output_shape, kernel.shape, strides)
            squared = tf.reduce_sum(gram_a * tf.einsum("btp,bsp->bts", g, g), axis=[1, 2])
        else:
            patches = [
                tf.image.extract_patches(
                    images, sizes=[1, height, width, 1], strides=[1, *strides, 1], rates=[1, *dilations, 1],
                    padding=padding,
                )
                for images, padding in (u.inputs for u in uses)
            ]
            a = _as_sequences(patches)
            squared = outer_product_squared_norms(a, g)
        if layer.use_bias:
            squared += tf.reduce_sum(tf.square(tf.reduce_sum(g, axis=1)), axis=1)

        def clipped(factors):
            if dilations != (1, 1):  # then the patches `a` were extracted above
                # No dilated filter gradient on CPU either; the patches are already at hand.
                kernel_sum = tf.einsum("btd,btp->dp", keep_rows(a, factors), _scale(g, factors))
            else:
                kernel_sum = 0.0
                for (images, padding), grad in zip((u.inputs for u in uses), gradients):
                    grad = grad[:, None] if layer.rank == 1 else grad
                    # The same op as the weight gradient of ordinary backprop, fed with the scaled g.
                    kernel_sum += tf.compat.v1.nn.conv2d_backprop_filter(
                        keep_rows(images, factors), [height, width, channels, filters], _scale(grad, factors),
                        strides=[1, *strides, 1], padding=padding, dilations=[1, 1, 1, 1],
                    )
            result = {id(layer.kernel): tf.reshape(kernel_sum, layer.kernel.shape)}
            if layer.use_bias:
                result[id(layer.bias)] = tf.reduce_sum(_scale(g, factors), axis=[0, 1])
            return result

        return squared, clipped


def _block_gram_applies(images, output_shape, kernel_shape, strides, dilations):
    """Whether `_patch_gram_from_blocks` can serve a convolution, and is cheaper than both alternatives.

    It needs static spatial shapes, no dilation and kernel sizes that are multiples of the strides
    (so that a patch is a whole number of stride-sized blocks). Multiply-adds per example, for T output
    positions, patch size d and p filters: blocks^2 * stride area * channels + T^2 p against
    T^2 (d + p) for the Gram of the patches and T d p for materialising the per-example gradient
    (`outer_product_squared_norms` takes the cheaper of those two).
    """
    height, width, channels, filters = kernel_shape
    if dilations != (1, 1) or height % strides[0] or width % strides[1]:
        return False
    if not (images.shape[1:].is_fully_defined() and all(d is not None for d in output_shape)):
        return False
    positions = output_shape[0] * output_shape[1]
    blocks = (output_shape[0] - 1 + height // strides[0]) * (output_shape[1] - 1 + width // strides[1])
    patch = height * width * channels
    block_cost = blocks * blocks * strides[0] * strides[1] * channels + positions * positions * filters
    return block_cost < min(positions * positions * (patch + filters), positions * patch * filters)


def _patch_gram_from_blocks(images, padding, output_shape, kernel_shape, strides):
    """Per-example Gram matrices of a convolution's input patches, without extracting the patches.

    With kernel sizes multiple of the strides (s_h, s_w), the padded input is a grid of s_h x s_w
    blocks and each patch is k_h / s_h x k_w / s_w neighbouring blocks, so the inner product of the
    patches at output positions t and u is the sum, over the block offsets o within a patch, of the
    inner products of blocks t + o and u + o. The Gram of the blocks is one batched matmul over fewer,
    shorter rows than the patches' (no B x T x patch-size tensor), and the patch Gram is a sum of
    shifted slices of it.

    Returns:
        A tensor of shape (batch, T, T), T = output positions.
    """
    kernel_height, kernel_width, channels, _ = kernel_shape
    out_height, out_width = output_shape
    block_rows, block_cols = out_height - 1 + kernel_height // strides[0], out_width - 1 + kernel_width // strides[1]
    rows, cols = block_rows * strides[0], block_cols * strides[1]  # input rows and columns the patches read
    top = left = 0
    if padding == "SAME":
        top = max((out_height - 1) * strides[0] + kernel_height - images.shape[1], 0) // 2
        left = max((out_width - 1) * strides[1] + kernel_width - images.shape[2], 0) // 2
    padded = tf.pad(images, [[0, 0], [top, max(rows - images.shape[1] - top, 0)],
                             [left, max(cols - images.shape[2] - left, 0)], [0, 0]])[:, :rows, :cols]
    blocks = tf.reshape(padded, [-1, block_rows, strides[0], block_cols, strides[1], channels])
    if strides != (1, 1):
        blocks = tf.transpose(blocks, [0, 1, 3, 2, 4, 5])
    blocks = tf.reshape(blocks, [-1, block_rows * block_cols, strides[0] * strides[1] * channels])
    gram = tf.reshape(tf.matmul(blocks, blocks, transpose_b=True), [-1, block_rows, block_cols, block_rows, block_cols])
    positions = out_height * out_width
    total = 0.0
    for i in range(kernel_height // strides[0]):
        for j in range(kernel_width // strides[1]):
            shifted = gram[:, i : i + out_height, j : j + out_width, i : i + out_height, j : j + out_width]
            total += tf.reshape(shifted, [-1, positions, positions])
    return total


def _pair(value):
    value = tuple(value)
    return (1, value[0]) if len(value) == 1 else value


class EmbeddingRule:
    """Embedding: example i's gradient adds g_t to row idx_t; rows repeated in one example add up."""

    path = "fast rule"

    @staticmethod
    def applies_to(layer):
        return type(layer) is keras.layers.Embedding and _unmodified(layer)

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        indices = inputs if inputs.dtype in (tf.int32, tf.int64) else tf.cast(inputs, tf.int32)
        z = tf.cast(tf.gather(layer.embeddings, indices), layer.compute_dtype)
        return z, LayerUse(indices, z, kwargs)

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        width = layer.embeddings.shape[1]
        indices = tf.concat([_rows(tf.cast(u.inputs, tf.int64), 0) for u in uses], axis=1)
        g = _as_sequences(gradients)
        same_row = tf.cast(tf.equal(indices[:, :, None], indices[:, None, :]), g.dtype)
        squared = tf.reduce_sum(same_row * tf.einsum("btp,bsp->bts", g, g), axis=[1, 2])

        def clipped(factors):
            rows = tf.reshape(_scale(g, factors), [-1, width])
            return {
                id(layer.embeddings): tf.math.unsorted_segment_sum(
                    rows, tf.reshape(indices, [-1]), layer.embeddings.shape[0]
                )
            }

        return squared, clipped


class LayerNormalizationRule:
    """LayerNormalization over the last axis: example i's gradients are sum_t xhat_t * g_t and sum_t g_t.

    The per-example gradients are only as wide as the normalised axis, so they are materialised: one
    pass over (xhat, g), no per-example VJPs.
    """

    path = "fast rule"

    @staticmethod
    def applies_to(layer):
        return (type(layer) is keras.layers.LayerNormalization and list(layer.axis) == [-1]
                and not layer.rms_scaling and _unmodified(layer))

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        x = tf.cast(inputs, layer.variable_dtype)
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        normalised = (x - mean) * tf.math.rsqrt(variance + layer.epsilon)
        z = normalised * layer.gamma if layer.scale else normalised
        z = z + layer.beta if layer.center else z
        return tf.cast(z, layer.compute_dtype), LayerUse(normalised, z, kwargs)

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        g = _as_sequences(gradients)
        per_example = {}
        if layer.scale:
            per_example[id(layer.gamma)] = tf.reduce_sum(_as_sequences([u.inputs for u in uses]) * g, axis=1)
        if layer.center:
            per_example[id(layer.beta)] = tf.reduce_sum(g, axis=1)
        squared = tf.add_n([tf.reduce_sum(tf.square(p), axis=1) for p in per_example.values()])

        def clipped(factors):
            return {key: tf.tensordot(factors, keep_rows(p, factors), axes=1) for key, p in per_example.items()}

        return squared, clipped


def _batch_shaped(value, inputs):
    """Whether a keyword argument of a layer call holds one row per example (a mask, a conditioning).

    A tensor whose leading axis has the input's static length (both unknown counts: inside a traced
    step the batch axis is the one axis left unknown) is sliced per example; anything else is passed
    whole to every example's call.
    """
    return (
        tf.is_tensor(value) and value.shape.rank is not None and value.shape.rank >= 1
        and value.shape[0] == inputs.shape[0]
    )


def needs_loop(layer, kwargs):
    """Why per-example gradients through `layer` must not use `tf.vectorized_map`, or None.

    TensorFlow's vectorisation fails on recurrent layers (their while loops carry `variant` tensor
    lists: a TypeError) and, worse, aborts the process on some masked models (a double free in
    repeated calls, which no exception handler catches). The choice is made from the layer and its
    call before anything is vectorised (a layer containing a recurrent one counts as recurrent); a layer
    can opt out with `vectorizable = False`.
    """
    for inner in layer._flatten_layers(include_self=True):
        if isinstance(inner, (keras.layers.RNN, keras.layers.Bidirectional)):
            return f"recurrent layer {inner.name!r} ({type(inner).__name__})"
    if any(mask is not None for mask in tf.nest.flatten(kwargs.get("mask"))):  # attention: [None, None]
        return f"layer {layer.name!r} ({type(layer).__name__}) called with a mask"
    if not getattr(layer, "vectorizable", True):
        return f"layer {layer.name!r} ({type(layer).__name__}) declaring vectorizable = False"
    return None


def map_examples(function, elements, output_signature, *, loop):
    """`function` applied to each example of `elements` (leading axis), results stacked.

    Vectorised with `tf.vectorized_map`, or with `loop` a `tf.map_fn` (a while loop in a graph, a
    Python loop eagerly), which runs any model TensorFlow can differentiate, one example at a time.
    Zero examples (Poisson sampling draws empty batches, and pfor cannot vectorise over none) give
    empty results.
    """

    def empty():
        return tf.nest.map_structure(lambda s: tf.zeros([0, *s.shape], s.dtype), output_signature)

    def run():
        if loop:
            return tf.map_fn(function, elements, fn_output_signature=output_signature)
        return tf.vectorized_map(function, elements)

    size = tf.shape(tf.nest.flatten(elements)[0])[0]
    return tf.cond(size > 0, run, empty)


class GenericRule:
    """Any other layer with variables of its own: per-example VJPs of the layer.

    Each example's gradient of the layer's variables is the layer's VJP on that example's input, output
    gradient and batch-shaped keyword arguments (masks, conditioning), vectorised, or looped over the
    examples where vectorisation cannot run the layer (`needs_loop`).
    """

    @staticmethod
    def applies_to(layer):
        return True

    @staticmethod
    def variables(layer):
        return own_trainable_variables(layer)

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        outputs = original_call(inputs, **kwargs)
        # Several outputs (a recurrent layer's [output, *states]) all carry gradients.
        watched = list(outputs) if isinstance(outputs, (list, tuple)) else outputs
        return outputs, LayerUse(inputs, watched, kwargs)

    @classmethod
    def prepare(cls, layer, original_call, uses, gradients):
        variables = cls.variables(layer)
        signature = [tf.TensorSpec(v.shape, v.dtype) for v in variables]

        def per_example(use, grad):
            first = tf.nest.flatten(use.inputs)[0]  # inputs may be a list (an attention's [query, value])
            leaves = tf.nest.flatten(use.kwargs)
            sliced = [_batch_shaped(value, first) for value in leaves]
            rows = [value for value, cut in zip(leaves, sliced) if cut]
            checks = [
                tf.debugging.assert_equal(
                    tf.shape(value)[0], tf.shape(first)[0],
                    message=f"a keyword argument of layer {layer.name!r} has another batch size than its input",
                )
                for value in rows
            ]

            def one(example):
                a_i, g_i, rows_i = example
                row = iter(rows_i)
                kwargs = tf.nest.pack_sequence_as(
                    use.kwargs, [next(row)[None] if cut else value for value, cut in zip(leaves, sliced)]
                )
                with tf.GradientTape() as tape:
                    out = original_call(tf.nest.map_structure(lambda t: t[None], a_i), **kwargs)
                grads = tape.gradient(
                    out, variables, output_gradients=tf.nest.map_structure(lambda t: t[None], g_i),
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                return [tf.convert_to_tensor(g) for g in grads]  # an Embedding's IndexedSlices, made dense

            with tf.control_dependencies(checks):
                elements = (tf.nest.map_structure(tf.identity, use.inputs), grad, rows)
            return map_examples(one, elements, signature, loop=needs_loop(layer, use.kwargs) is not None)

        summed = None
        for use, grad in zip(uses, gradients):
            grads = per_example(use, grad)
            summed = grads if summed is None else [s + g for s, g in zip(summed, grads)]
        squared = tf.add_n(
            [tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), axis=1) for g in summed]
        )

        def clipped(factors):
            return {
                id(v): tf.tensordot(tf.cast(factors, g.dtype), keep_rows(g, factors), axes=1)
                for v, g in zip(variables, summed)
            }

        return squared, clipped


class WholeLayerRule(GenericRule):
    """A layer whose variables belong to sub-layers it does not call through `__call__`, as one unit.

    A recurrent layer (SimpleRNN, LSTM, GRU, ConvLSTM, any `keras.layers.RNN`) calls its cell once per
    time step inside a while loop, with the state as a second input; TimeDistributed calls its layer's
    `call` directly; SpectralNormalization reads its layer's kernel outside the layer's call. The rule
    claims all their variables and takes each example's gradient of the whole layer, looped over the
    examples for recurrent layers (`needs_loop`: `tf.vectorized_map` cannot vectorise the while loop).
    """

    @staticmethod
    def applies_to(layer):
        return _unmodified(layer)

    @staticmethod
    def variables(layer):
        return list(layer.trainable_variables)


_RULES = {}


def register_layer_rule(layer_class, rule):
    """Registers how DP clipping takes per-example gradients of a layer class (and its subclasses).

    A rule is an object (a class with static methods will do) with:

    - `call(layer, original_call, inputs, **kwargs) -> (outputs, LayerUse)`: runs the layer in place of
      its `call` during the recorded forward pass, returning its outputs and a `LayerUse` holding what
      `prepare` needs and the tensor whose gradient it needs (`watched`);
    - `prepare(layer, original_call, uses, gradients) -> (squared_norms, clipped)`: from the layer's
      uses and the gradients of their `watched` tensors, each example's squared gradient norm over the
      layer's variables (shape (batch,)) and a function from clip factors (batch,) to a dict
      {id(variable): sum_i factor_i * gradient_i};
    - optionally `applies_to(layer) -> bool` (default: always), to decline some configurations, and
      `variables(layer)`, the variables the rule covers (default: those the layer creates itself, not
      through its sub-layers; a rule covering sub-layers' variables is called for the whole layer,
      and its sub-layers are not recorded separately).

    The most specific registered class of a layer whose rule applies wins; a later registration for
    the same class replaces the earlier one. Check a new rule with `privgan.check_sensitivity` and
    against `clipped_gradient_sum(..., method="loop")`.

    Args:
        layer_class: a subclass of `keras.layers.Layer`.
        rule: the rule, or None to remove the registration of `layer_class`.

    Returns:
        The rule registered for `layer_class` before, or None.

    Raises:
        TypeError: if `layer_class` is not a Keras layer class or `rule` lacks `call` or `prepare`.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(f"layer_class must be a subclass of keras.layers.Layer, got {layer_class!r}")
    if rule is None:
        return _RULES.pop(layer_class, None)
    missing = [name for name in ("call", "prepare") if not callable(getattr(rule, name, None))]
    if missing:
        raise TypeError(f"rule must have callable {' and '.join(missing)} methods, got {rule!r}")
    previous = _RULES.get(layer_class)
    _RULES[layer_class] = rule
    return previous


def rule_variables(rule, layer):
    """The variables `rule` covers for `layer`."""
    variables = getattr(rule, "variables", None)
    return list(variables(layer)) if variables is not None else own_trainable_variables(layer)


def registered_rules():
    """A copy of the registry: layer class -> rule."""
    return dict(_RULES)


def own_trainable_variables(layer):
    """The trainable variables a layer created itself, not through its sub-layers."""
    inner = {id(v) for sub in layer._flatten_layers(include_self=False) for v in sub.trainable_variables}
    return [v for v in layer.trainable_variables if id(v) not in inner]


def rule_for(layer):
    """The rule registered for the most specific class of `layer` that applies, else `GenericRule`."""
    for cls in type(layer).__mro__:
        rule = _RULES.get(cls)
        if rule is not None and getattr(rule, "applies_to", lambda _: True)(layer):
            return rule
    return GenericRule


# Conv1D/Conv2D are registered by `rules_modern` (always imported with `privgan.dp`), whose rule picks
# `ConvRule` for ungrouped convolutions and its grouped rule otherwise.
for _class, _rule in (
    (keras.layers.Dense, DenseRule),
    (keras.layers.Embedding, EmbeddingRule),
    (keras.layers.LayerNormalization, LayerNormalizationRule),
    (keras.layers.RNN, WholeLayerRule),
    (keras.layers.TimeDistributed, WholeLayerRule),
    (keras.layers.SpectralNormalization, WholeLayerRule),
):
    register_layer_rule(_class, _rule)
