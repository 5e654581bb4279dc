"""Fast DP clipping rule for SimpleRNN, LSTM and GRU layers (and Bidirectional around them).

A recurrent layer applies its gate matrices as Dense maps at every time step: the pre-activations of
step t are z_t = x_t W + h_{t-1} U + b. Example i's gradient of (W, U, b) is therefore
sum_t [x_t, h_{t-1}, 1]^T g_t, with g_t = dL_i/dz_t, and its norm is the norm of a per-example outer
product, computed as a ghost norm or by materialising it, whichever is cheaper
(`layer_rules.outer_product_squared_norms`). No per-example gradients are built.

To expose g_t, the rule runs the layer's recurrence itself: the input projection x W + b is computed
for all steps at once before the loop (its gradient is g_t, since it enters z_t as a sum), and the loop
(`tf.scan`) returns the states h_{t-1} each step read. GRU's recurrent projection has its own gradient
where the reset gate multiplies it (reset_after) or its input (reset before): the loop returns the
reset gates too. Masked steps carry the state unchanged, so their g_t is zero and they contribute
nothing, as in Keras.

Keras' semantics are reproduced exactly (go_backwards, masks, zero_output_for_mask, initial_state,
return_state, return_sequences); the layer's output here equals its own `call`'s. Configurations the
rule does not reproduce (stateful layers, dropout, mixed precision, subclasses of the layers or their
cells) keep the generic per-example path.
"""

import keras
import tensorflow as tf

from privgan.dp.layer_rules import LayerUse, keep_rows, outer_product_squared_norms, register_layer_rule

_CELLS = {
    keras.layers.SimpleRNN: keras.layers.SimpleRNNCell,
    keras.layers.LSTM: keras.layers.LSTMCell,
    keras.layers.GRU: keras.layers.GRUCell,
}


def _biases(cell):
    """(input bias, recurrent bias) of a cell; GRU with reset_after has one of each, the others one."""
    if not cell.use_bias:
        return None, None
    if isinstance(cell, keras.layers.GRUCell) and cell.reset_after:
        return cell.bias[0], cell.bias[1]
    return cell.bias, None


def _step(cell, recurrent_bias):
    """The cell's step from (input projection z_x, states) to (output, new states, reset gate or None)."""
    activation = cell.activation if cell.activation is not None else tf.identity
    recurrent = cell.recurrent_kernel

    def simple(zx, states):
        h = activation(zx + tf.matmul(states[0], recurrent))
        return h, [h], None

    def lstm(zx, states):
        h_tm1, c_tm1 = states
        z0, z1, z2, z3 = tf.split(zx + tf.matmul(h_tm1, recurrent), 4, axis=-1)
        c = cell.recurrent_activation(z1) * c_tm1 + cell.recurrent_activation(z0) * activation(z2)
        h = cell.recurrent_activation(z3) * activation(c)
        return h, [h, c], None

    def gru(zx, states):
        h_tm1 = states[0]
        units = cell.units
        x_z, x_r, x_h = tf.split(zx, 3, axis=-1)
        if cell.reset_after:
            inner = tf.matmul(h_tm1, recurrent)
            inner = inner + recurrent_bias if recurrent_bias is not None else inner
            h_z, h_r, h_h = tf.split(inner, 3, axis=-1)
        else:
            h_z, h_r = tf.split(tf.matmul(h_tm1, recurrent[:, : 2 * units]), 2, axis=-1)
        z = cell.recurrent_activation(x_z + h_z)
        r = cell.recurrent_activation(x_r + h_r)
        h_h = r * h_h if cell.reset_after else tf.matmul(r * h_tm1, recurrent[:, 2 * units :])
        h = z * h_tm1 + (1 - z) * activation(x_h + h_h)
        return h, [h], r

    return {keras.layers.SimpleRNNCell: simple, keras.layers.LSTMCell: lstm, keras.layers.GRUCell: gru}[type(cell)]


def _initial_states(layer, x, initial_state):
    count = 2 if isinstance(layer.cell, keras.layers.LSTMCell) else 1
    if initial_state is None:
        zeros = tf.zeros([tf.shape(x)[0], layer.cell.units], x.dtype)
        return [zeros] * count
    states = [tf.cast(s, x.dtype) for s in tf.nest.flatten(initial_state)]
    if len(states) != count:
        raise ValueError(f"layer {layer.name!r} expects {count} initial states, got {len(states)}")
    return states


class RecurrentRule:
    """SimpleRNN, LSTM, GRU: per-example norms from x_t, h_{t-1} and the gradients of the pre-activations."""

    path = "fast rule"

    @staticmethod
    def applies_to(layer):
        cell = getattr(layer, "cell", None)
        return (
            type(layer) in _CELLS
            and type(cell) is _CELLS[type(layer)]
            and not layer.stateful
            and not cell.dropout
            and not cell.recurrent_dropout
            and layer.compute_dtype == layer.variable_dtype
        )

    @staticmethod
    def variables(layer):
        return list(layer.trainable_variables)  # the cell's: the layer has none of its own

    @staticmethod
    def call(layer, original_call, inputs, mask=None, initial_state=None, **kwargs):
        cell = layer.cell
        x = tf.cast(inputs, layer.compute_dtype)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if layer.go_backwards:  # Keras steps through the reversed sequence and returns outputs in that order
            x = tf.reverse(x, [1])
            mask = tf.reverse(mask, [1]) if mask is not None else None
        input_bias, recurrent_bias = _biases(cell)
        zx = tf.tensordot(x, cell.kernel, 1)
        zx = zx + input_bias if input_bias is not None else zx  # the watched tensor: its gradient is g_t
        states = _initial_states(layer, x, initial_state)
        step = _step(cell, recurrent_bias)
        zero_output = layer.zero_output_for_mask

        def scan_step(carry, elements):
            states, previous_output = list(carry[0]), carry[1]
            output, new_states, reset = step(elements[0], states)
            if len(elements) > 1:  # a masked step keeps the states, and outputs zeros or the last output
                keep = elements[1][:, None]
                new_states = [tf.where(keep, new, old) for new, old in zip(new_states, states)]
                output = tf.where(keep, output, tf.zeros_like(output) if zero_output else previous_output)
            reset = reset if reset is not None else carry[3]
            return tuple(new_states), output, states[0], reset

        batch = tf.shape(x)[0]
        has_reset = isinstance(cell, keras.layers.GRUCell)
        initial = (
            tuple(states), tf.zeros_like(states[0]), tf.zeros_like(states[0]),
            tf.zeros_like(states[0]) if has_reset else tf.zeros([batch, 0], x.dtype),
        )
        elements = (tf.transpose(zx, [1, 0, 2]),)
        if mask is not None:
            elements += (tf.transpose(tf.cast(mask, tf.bool)),)
        all_states, outputs, previous, resets = tf.scan(scan_step, elements, initializer=initial)
        major = [1, 0, 2]
        sequence = tf.transpose(outputs, major)
        output = sequence if layer.return_sequences else outputs[-1]
        use = LayerUse(
            (x, tf.transpose(previous, major), tf.transpose(resets, major) if has_reset else None), zx, kwargs
        )
        if layer.return_state:
            return (output, *[s[-1] for s in all_states]), use
        return output, use

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        cell = layer.cell
        x, previous, resets = (
            None if parts[0] is None else tf.concat(parts, axis=1) for parts in zip(*[u.inputs for u in uses])
        )
        g = tf.concat(gradients, axis=1)
        blocks = _blocks(cell, x, previous, resets, g)
        squared = tf.add_n([outer_product_squared_norms(a, g_block) for a, g_block in blocks])

        def clipped(factors):
            kept = tf.reshape(tf.cast(factors, g.dtype), [-1, 1, 1])
            sums = [tf.einsum("btd,btp->dp", keep_rows(a, factors), keep_rows(gb, factors) * kept) for a, gb in blocks]
            return _assemble(cell, x.shape[-1], sums)

        return squared, clipped


def _with_ones(a, use_bias):
    # A column of ones makes the bias gradient, sum_t g_t, part of the same outer product.
    return tf.concat([a, tf.ones_like(a[..., :1])], axis=-1) if use_bias else a


def _blocks(cell, x, previous, resets, g):
    """(a, g) pairs whose per-example products a^T g hold all of the layer's per-example gradients.

    SimpleRNN and LSTM: one, [x, h_prev, 1] against g. GRU: [x, 1] against g for the kernel and input
    bias; the recurrent kernel's columns see the gradient of their own products (reset_after: r * g on
    the candidate's columns, with the recurrent bias; before: their input is r * h_prev).
    """
    if not isinstance(cell, keras.layers.GRUCell):
        return [(_with_ones(tf.concat([x, previous], axis=-1), cell.use_bias), g)]
    units = cell.units
    blocks = [(_with_ones(x, cell.use_bias), g)]
    if cell.reset_after:
        recurrent_g = tf.concat([g[..., : 2 * units], resets * g[..., 2 * units :]], axis=-1)
        return blocks + [(_with_ones(previous, cell.use_bias), recurrent_g)]
    return blocks + [(previous, g[..., : 2 * units]), (resets * previous, g[..., 2 * units :])]


def _assemble(cell, width, sums):
    """{id(variable): clipped sum} from the clipped sums of `_blocks`' products, in its order."""
    units = cell.units
    if not isinstance(cell, keras.layers.GRUCell):
        result = {id(cell.kernel): sums[0][:width], id(cell.recurrent_kernel): sums[0][width : width + units]}
        if cell.use_bias:
            result[id(cell.bias)] = sums[0][width + units]
        return result
    result = {id(cell.kernel): sums[0][:width]}
    if cell.reset_after:
        result[id(cell.recurrent_kernel)] = sums[1][:units]
        if cell.use_bias:
            result[id(cell.bias)] = tf.stack([sums[0][width], sums[1][units]])
    else:
        result[id(cell.recurrent_kernel)] = tf.concat([sums[1], sums[2]], axis=1)
        if cell.use_bias:
            result[id(cell.bias)] = sums[0][width]
    return result


for _layer_class in _CELLS:
    register_layer_rule(_layer_class, RecurrentRule)
