"""Fast per-layer clipping rules for the layers of modern models, registered with `layer_rules`.

Each rule follows the pattern of `layer_rules` (see its docstring): the layer's forward pass is rebuilt
from the same ops Keras uses, recording its inputs and the pre-activation output z, and each example's
gradient norm comes in closed form from (inputs, dL/dz), with no per-example VJPs:

- EinsumDense (hence MultiHeadAttention's projections) in any "Dense-like" equation, every kernel axis
  either contracted with the input or copied to the output: the kernel gradient of an example is
  a^T g after moving the non-kernel axes of input and output into one "positions" axis, so the ghost
  norm / outer product of `outer_product_squared_norms` applies.
- Grouped convolutions: DepthwiseConv1D/2D, SeparableConv1D/2D (depthwise, then a pointwise Dense-like
  kernel fed with the depthwise output and the gradient pulled back through it), and Conv1D/Conv2D with
  `groups > 1`. Group k's kernel gradient is patches_k^T g_k, one outer product per group.
- GroupNormalization, RMSNormalization and PReLU: their per-example gradients are as small as their
  weights (a channel vector, or the PReLU slopes), so they are materialised in one pass.

Importing this module registers the rules (`privgan.dp` imports it); a user's registration for the same
class replaces them.
"""

import math

import keras
import tensorflow as tf

from privgan.dp.layer_rules import (
    ConvRule,
    LayerNormalizationRule,
    LayerUse,
    _as_sequences,
    _pair,
    _rows,
    _scale,
    _unmodified,
    keep_rows,
    outer_product_squared_norms,
    register_layer_rule,
)


def _static_or_dynamic(tensor, axes):
    """The sizes of `axes` of `tensor`: static ints where known, scalar tensors otherwise."""
    return [tensor.shape[axis] if tensor.shape[axis] is not None else tf.shape(tensor)[axis] for axis in axes]


def _flatten_axes(tensor, lead, width):
    """(B, *lead axes, ..., trailing axes) -> (B, *lead axes, width): the trailing axes merged into one."""
    return tf.reshape(tensor, [*_static_or_dynamic(tensor, range(lead)), width])


def _materialised(per_example):
    """(squared norms, clipped) from per-example gradients {id(variable): tensor (B, *variable.shape)}."""
    squared = tf.add_n([tf.reduce_sum(tf.reshape(tf.square(p), [tf.shape(p)[0], -1]), axis=1)
                        for p in per_example.values()])

    def clipped(factors):
        return {key: tf.tensordot(tf.cast(factors, p.dtype), keep_rows(p, factors), axes=1)
                for key, p in per_example.items()}

    return squared, clipped


def _depthwise_conv(layer, inputs, kernel):
    """The depthwise convolution of a layer's call.

    TensorFlow's depthwise convolution mis-shapes (or fails on) a batch of 0 examples; the rules never see
    one, since `clipping.clipped_gradient_sum` runs an empty Poisson batch as one zero row of clip factor 0.
    """
    return keras.ops.depthwise_conv(inputs, kernel, strides=layer.strides, padding=layer.padding,
                                    dilation_rate=layer.dilation_rate, data_format=layer.data_format)


def _activation(layer, z):
    return layer.activation(z) if layer.activation is not None else z


class EinsumDenseRule:
    """EinsumDense whose kernel axes are each either contracted with the input or copied to the output.

    With b the batch letter, P the input letters not in the kernel (positions, all kept in the output),
    Kc the kernel letters of the input and Kf the kernel letters of the output, example i's kernel
    gradient is sum_P x_i[P, Kc] g_i[P, Kf]: a Dense layer's a^T g once P, Kc and Kf are each flattened.
    """

    path = "fast rule"

    @staticmethod
    def _spec(layer, rank=None):
        """(input, kernel, output) letters; with `rank`, an ellipsis spelled out in fresh letters."""
        inputs, rest = layer.equation.replace(" ", "").split(",")
        kernel, output = rest.split("->")
        if rank is not None and "..." in inputs:
            used = set(inputs + kernel + output)
            fresh = "".join([c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used][: rank - len(inputs) + 3])
            inputs, output = inputs.replace("...", fresh), output.replace("...", fresh)
        return inputs, kernel, output

    @classmethod
    def applies_to(cls, layer):
        if type(layer) is not keras.layers.EinsumDense or not _unmodified(layer):
            return False
        inputs, kernel, output = cls._spec(layer)
        if "..." in kernel or inputs.startswith("...") != output.startswith("..."):
            return False
        letters_in, letters_out = set(inputs) - {"."}, set(output) - {"."}
        dense_like = all((c in letters_in) != (c in letters_out) for c in kernel)
        kept = all(c in letters_out for c in letters_in - set(kernel))  # no input axis summed away
        same_batch = inputs.startswith("...") or (inputs[0] == output[0] and inputs[0] not in kernel)
        return dense_like and kept and same_batch

    @classmethod
    def call(cls, layer, original_call, inputs, **kwargs):
        z = tf.einsum(layer.equation, inputs, layer.kernel)
        if layer.bias is not None:
            z = z + layer.bias
        return _activation(layer, z), LayerUse(inputs, z, kwargs)

    @classmethod
    def prepare(cls, layer, original_call, uses, gradients):
        inputs, kernel, output = cls._spec(layer, uses[0].inputs.shape.rank)
        batch = inputs[0]
        positions = "".join(c for c in inputs[1:] if c not in kernel)
        contracted = "".join(c for c in kernel if c in inputs)
        free = "".join(c for c in kernel if c in output)
        sizes = dict(zip(kernel, layer.kernel.shape))
        width_in, width_out = math.prod(sizes[c] for c in contracted), math.prod(sizes[c] for c in free)

        def rows(tensor, spec, axes, width):
            moved = tf.einsum(f"{spec}->{batch}{positions}{axes}", tensor)
            return _rows(_flatten_axes(moved, 1 + len(positions), width), 1)

        a = tf.concat([rows(u.inputs, inputs, contracted, width_in) for u in uses], axis=1)
        g = tf.concat([rows(grad, output, free, width_out) for grad in gradients], axis=1)
        squared = outer_product_squared_norms(a, g)
        bias = None
        if layer.bias is not None:
            bias_letters = "".join(c for c in output if c in layer.bias_axes)
            bias = tf.add_n([tf.einsum(f"{output}->{batch}{bias_letters}", grad) for grad in gradients])
            bias = tf.reshape(bias, [-1, *layer.bias.shape])
            squared += tf.reduce_sum(tf.reshape(tf.square(bias), [tf.shape(bias)[0], -1]), axis=1)

        def clipped(factors):
            flat = tf.einsum("btd,btp->dp", keep_rows(a, factors), _scale(g, factors))
            unflat = tf.reshape(flat, [sizes[c] for c in contracted + free])
            result = {id(layer.kernel): tf.einsum(f"{contracted}{free}->{kernel}", unflat)}
            if bias is not None:
                result[id(layer.bias)] = tf.tensordot(tf.cast(factors, bias.dtype), keep_rows(bias, factors), axes=1)
            return result

        return squared, clipped


def _grouped_patches(images, kernel_size, groups, *, strides, dilations, padding):
    """Patches of (B, H, W, C) images as (B, groups, T, K * C / groups), K the kernel's spatial size."""
    height, width = kernel_size
    patches = tf.image.extract_patches(
        images, sizes=[1, height, width, 1], strides=[1, *strides, 1], rates=[1, *dilations, 1], padding=padding
    )  # (B, rows, cols, K * C), in (kernel row, kernel column, channel) order
    channels = images.shape[-1]
    patches = _rows(tf.reshape(patches, [*_static_or_dynamic(patches, range(3)), height * width,
                                         groups, channels // groups]), 3)  # (B, T, K, groups, C / groups)
    patches = tf.transpose(patches, [0, 3, 1, 2, 4])
    return _flatten_axes(patches, 3, height * width * channels // groups)


def _by_group(g, groups):
    """Output gradients (B, ..., F) as (B, groups, T, F / groups): output channel f is in group f // (F / groups)."""
    g = _rows(g, 1)
    return tf.transpose(tf.reshape(g, [*_static_or_dynamic(g, range(2)), groups, g.shape[-1] // groups]),
                        [0, 2, 1, 3])


def _grouped_norms(patches, g):
    """Per-example squared kernel-gradient norms of a grouped convolution: sum over groups of ||a_k^T g_k||^2."""
    groups, steps = patches.shape[1], patches.shape[2]
    steps = steps if steps is not None else tf.shape(patches)[2]
    lead = tf.shape(patches)[0] * groups  # read, not inferred: -1 cannot be inferred on an empty batch
    per_group = outer_product_squared_norms(tf.reshape(patches, [lead, steps, patches.shape[-1]]),
                                            tf.reshape(g, [lead, steps, g.shape[-1]]))
    return tf.reduce_sum(tf.reshape(per_group, [-1, groups]), axis=1)


class GroupedConvRule:
    """DepthwiseConv1D/2D and Conv1D/Conv2D with groups > 1 (channels_last): one outer product per group.

    A depthwise convolution is a grouped one with a group per input channel and `depth_multiplier`
    filters per group. The kernel (kh, kw, C / groups, F), read as (K, C / groups, groups, F / groups),
    gets group k's gradient patches_k^T g_k in its slot.
    """

    path = "fast rule"

    @staticmethod
    def applies_to(layer):
        depthwise = type(layer) in (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
        grouped = type(layer) in (keras.layers.Conv1D, keras.layers.Conv2D) and layer.groups > 1
        return ((depthwise or (grouped and layer.padding != "causal")) and layer.data_format == "channels_last"
                and _unmodified(layer))

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        if _depthwise(layer):
            z = _depthwise_conv(layer, inputs, layer.kernel)
        else:
            z = layer.convolution_op(inputs, layer.kernel)
        if layer.use_bias:
            z = z + layer.bias
        return _activation(layer, z), LayerUse(inputs, z, kwargs)

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        inputs = [u.inputs for u in uses]
        groups = inputs[0].shape[-1] if _depthwise(layer) else layer.groups
        kernel_sum, squared = _grouped_kernel(layer, layer.kernel.shape, groups, inputs, gradients)
        return _with_bias(layer, squared, {id(layer.kernel): kernel_sum}, gradients)


def _depthwise(layer):
    return hasattr(layer, "depth_multiplier")


class ConvolutionRule:
    """Conv1D/Conv2D: `layer_rules.ConvRule` without groups, `GroupedConvRule` with."""

    path = "fast rule"

    @staticmethod
    def _pick(layer):
        return ConvRule if ConvRule.applies_to(layer) else GroupedConvRule

    @staticmethod
    def applies_to(layer):
        return ConvRule.applies_to(layer) or GroupedConvRule.applies_to(layer)

    @classmethod
    def call(cls, layer, original_call, inputs, **kwargs):
        return cls._pick(layer).call(layer, original_call, inputs, **kwargs)

    @classmethod
    def prepare(cls, layer, original_call, uses, gradients):
        return cls._pick(layer).prepare(layer, original_call, uses, gradients)


def _grouped_kernel(layer, kernel_shape, groups, inputs, gradients):
    """(clipped kernel sum as a function of the factors, squared norms) of a grouped/depthwise kernel."""
    spatial = (1, kernel_shape[0]) if len(kernel_shape) == 3 else tuple(kernel_shape[:2])
    strides, dilations = _pair(layer.strides), _pair(layer.dilation_rate)
    images = [x if x.shape.rank == 4 else x[:, None] for x in inputs]
    a = tf.concat([_grouped_patches(x, spatial, groups, strides=strides, dilations=dilations,
                                    padding=layer.padding.upper()) for x in images], axis=2)
    g = tf.concat([_by_group(grad, groups) for grad in gradients], axis=2)
    squared = _grouped_norms(a, g)
    k = spatial[0] * spatial[1]

    def kernel_sum(factors):
        # (K * C / groups, groups, F / groups), read as the kernel (K, C / groups, F) of output channels by group
        flat = tf.einsum("bgtd,bgtp->dgp", keep_rows(a, factors), _scale(g, factors))
        return tf.reshape(tf.reshape(flat, [k, a.shape[-1] // k, groups, -1]), kernel_shape)

    return kernel_sum, squared


def _with_bias(layer, squared, result, gradients):
    """(squared, clipped) from the kernels' (clipped-sum functions, squared norms), adding a bias if any."""
    if not layer.use_bias:
        return squared, lambda factors: {key: value(factors) for key, value in result.items()}
    bias = tf.add_n([tf.reduce_sum(_rows(grad, 1), axis=1) for grad in gradients])  # (B, F)
    squared += tf.reduce_sum(tf.square(bias), axis=1)

    def clipped(factors):
        sums = {key: value(factors) for key, value in result.items()}
        sums[id(layer.bias)] = tf.tensordot(tf.cast(factors, bias.dtype), keep_rows(bias, factors), axes=1)
        return sums

    return squared, clipped


class SeparableConvRule:
    """SeparableConv1D/2D (channels_last): a depthwise kernel, then a pointwise one applied at each position.

    The pointwise kernel's per-example gradient is h^T g over positions (h the depthwise output), as for
    Dense; the depthwise kernel's is the depthwise rule fed with g pulled back through the pointwise
    kernel, g P^T.
    """

    path = "fast rule"

    @staticmethod
    def applies_to(layer):
        return (type(layer) in (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
                and layer.data_format == "channels_last" and _unmodified(layer))

    @staticmethod
    def _pointwise(layer):
        return tf.reshape(layer.pointwise_kernel, layer.pointwise_kernel.shape[-2:])

    @classmethod
    def call(cls, layer, original_call, inputs, **kwargs):
        h = _depthwise_conv(layer, inputs, layer.depthwise_kernel)
        z = tf.tensordot(h, cls._pointwise(layer), 1)
        if layer.use_bias:
            z = z + layer.bias
        return _activation(layer, z), LayerUse((inputs, h), z, kwargs)

    @classmethod
    def prepare(cls, layer, original_call, uses, gradients):
        pointwise = cls._pointwise(layer)
        a = _as_sequences([u.inputs[1] for u in uses])
        g = _as_sequences(gradients)
        squared = outer_product_squared_norms(a, g)
        pulled_back = [tf.tensordot(grad, pointwise, [[grad.shape.rank - 1], [1]]) for grad in gradients]
        inputs = [u.inputs[0] for u in uses]
        depthwise, depthwise_squared = _grouped_kernel(layer, layer.depthwise_kernel.shape, inputs[0].shape[-1],
                                                       inputs, pulled_back)
        result = {
            id(layer.depthwise_kernel): depthwise,
            id(layer.pointwise_kernel): lambda factors: tf.reshape(
                tf.einsum("btd,btp->dp", keep_rows(a, factors), _scale(g, factors)), layer.pointwise_kernel.shape),
        }
        return _with_bias(layer, squared + depthwise_squared, result, gradients)


class GroupNormalizationRule(LayerNormalizationRule):
    """GroupNormalization over the last axis: gradients sum_t xhat_t * g_t and sum_t g_t, per channel."""

    @staticmethod
    def applies_to(layer):
        return type(layer) is keras.layers.GroupNormalization and layer.axis == -1 and _unmodified(layer)

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        x = tf.cast(inputs, tf.float32 if inputs.dtype.size < 4 else inputs.dtype)
        grouped = tf.reshape(x, [*_static_or_dynamic(x, range(x.shape.rank - 1)), layer.groups, -1])
        axes = [*range(1, x.shape.rank - 1), x.shape.rank]  # all but the batch and group axes
        mean, variance = tf.nn.moments(grouped, axes=axes, keepdims=True)
        normalised = tf.reshape((grouped - mean) * tf.math.rsqrt(variance + layer.epsilon), tf.shape(x))
        z = normalised * tf.cast(layer.gamma, x.dtype) if layer.scale else normalised
        z = z + tf.cast(layer.beta, x.dtype) if layer.center else z
        return tf.cast(z, layer.compute_dtype), LayerUse(normalised, z, kwargs)


class RMSNormalizationRule:
    """RMSNormalization over the last axis: example i's scale gradient is sum_t xhat_t * g_t."""

    path = "fast rule"

    @staticmethod
    def applies_to(layer):
        return type(layer) is keras.layers.RMSNormalization and layer.axis in (-1, [-1]) and _unmodified(layer)

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        epsilon = layer.epsilon if layer.epsilon is not None else keras.config.epsilon()
        normalised = inputs * tf.math.rsqrt(tf.reduce_mean(tf.square(inputs), axis=-1, keepdims=True) + epsilon)
        z = normalised * layer.scale
        return z, LayerUse(normalised, z, kwargs)

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        per_example = tf.add_n([tf.reduce_sum(_rows(u.inputs * g, 1), axis=1) for u, g in zip(uses, gradients)])
        return _materialised({id(layer.scale): per_example})


class PReLURule:
    """PReLU: y = relu(x) - alpha * relu(-x); example i's slope gradient is -relu(-x_i) * g_i, summed over
    the shared axes."""

    path = "fast rule"

    @staticmethod
    def applies_to(layer):
        return type(layer) is keras.layers.PReLU

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        outputs = tf.nn.relu(inputs) - layer.alpha * tf.nn.relu(-inputs)
        return outputs, LayerUse(inputs, outputs, kwargs)

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        shared = [axis for axis in range(1, uses[0].inputs.shape.rank) if layer.alpha.shape[axis - 1] == 1]
        per_example = tf.add_n([
            tf.reduce_sum(-tf.nn.relu(-u.inputs) * g, axis=shared, keepdims=True) if shared
            else -tf.nn.relu(-u.inputs) * g
            for u, g in zip(uses, gradients)
        ])
        return _materialised({id(layer.alpha): tf.reshape(per_example, [-1, *layer.alpha.shape])})


for _class, _rule in (
    (keras.layers.EinsumDense, EinsumDenseRule),
    (keras.layers.Conv1D, ConvolutionRule),
    (keras.layers.Conv2D, ConvolutionRule),
    (keras.layers.DepthwiseConv1D, GroupedConvRule),
    (keras.layers.DepthwiseConv2D, GroupedConvRule),
    (keras.layers.SeparableConv1D, SeparableConvRule),
    (keras.layers.SeparableConv2D, SeparableConvRule),
    (keras.layers.GroupNormalization, GroupNormalizationRule),
    (keras.layers.RMSNormalization, RMSNormalizationRule),
    (keras.layers.PReLU, PReLURule),
):
    register_layer_rule(_class, _rule)
