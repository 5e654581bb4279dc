"""Per-layer rules: per-example gradient norms and clipped sums from a layer's inputs and output gradients.

For a layer computing z = f(a; theta) on each example, the gradient of example i's loss with respect to
theta is J_theta(a_i)^T g_i, where g_i = dL_i/dz_i. For Dense, Conv and Embedding layers that product
has a closed form, so its norm can be computed without building the per-example gradient (the "ghost
norm" of Goodfellow 2015 and Li et al. 2022, or the per-example outer product when it is cheaper), and
the clipped sum sum_i c_i J^T g_i is one ordinary weight-gradient op applied to (a, c * g) (Bu et al.'s
book-keeping). A layer without a rule gets per-example gradients of its own variables only, vectorised
with `tf.vectorized_map` (the generic rule).

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


class GenericRule:
    """Any other layer with variables of its own, called on one tensor: vectorised per-example VJPs."""

    @staticmethod
    def applies_to(layer):
        return True

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        outputs = original_call(inputs, **kwargs)
        return outputs, LayerUse(inputs, outputs, kwargs)

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        variables = own_trainable_variables(layer)

        def per_example(use, grad):
            def one(example):
                a_i, g_i = example
                with tf.GradientTape() as tape:
                    out = original_call(a_i[None], **use.kwargs)
                return tape.gradient(
                    out, variables, output_gradients=g_i[None], unconnected_gradients=tf.UnconnectedGradients.ZERO
                )

            def empty():
                return [tf.zeros(tf.concat([[0], tf.shape(v)], 0), v.dtype) for v in variables]

            # pfor cannot vectorise over zero examples.
            return tf.cond(
                tf.shape(use.inputs)[0] > 0, lambda: tf.vectorized_map(one, (use.inputs, grad)), empty
            )

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


RULES = (DenseRule, ConvRule, EmbeddingRule)


def own_trainable_variables(layer):
    """The trainable variables a layer created itself, not through its sub-layers."""
    inner = {id(v) for sub in layer._flatten_layers(include_self=False) for v in sub.trainable_variables}
    return [v for v in layer.trainable_variables if id(v) not in inner]


def rule_for(layer):
    """The closed-form rule for `layer`, or `GenericRule`."""
    return next((rule for rule in RULES if rule.applies_to(layer)), GenericRule)
