"""A JAX DP-SGD step on the architectures of `benchmarks.dp_step`, for the comparison there.

What JAX DP libraries (jax-privacy, Objax) do: per-example gradients by `jax.vmap` of `jax.grad`, each
clipped to C = 1 over all parameters, summed, Gaussian noise with sigma = 1 added, divided by the batch
size, then Adam; the whole step under `jax.jit`. The plain step (mean loss, one gradient, Adam) is timed
too, for JAX's own DP / plain ratio. Same layers and shapes as the Keras models (a 4x4 stride-2
convolution with padding 1 on each side is Keras' "same" on 28x28 and 14x14). Importing this module
needs jax; `dp_step` skips the comparison when it is missing.
"""

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("plain", "dp")
_LEARNING_RATE, _BETA_1, _BETA_2, _EPSILON = 1e-4, 0.9, 0.999, 1e-7


def _dense(key, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return {"w": jax.random.uniform(key, (fan_in, fan_out), minval=-limit, maxval=limit), "b": jnp.zeros(fan_out)}


def _conv(key, size, channels, filters):
    limit = np.sqrt(6.0 / (size * size * (channels + filters)))
    return {"w": jax.random.uniform(key, (size, size, channels, filters), minval=-limit, maxval=limit),
            "b": jnp.zeros(filters)}


def _discriminator_params(key):
    keys = jax.random.split(key, 3)
    return [_conv(keys[0], 4, 1, 64), _conv(keys[1], 4, 64, 128), _dense(keys[2], 7 * 7 * 128, 1)]


def _discriminator(params, x):
    for layer in params[:2]:
        x = jax.lax.conv_general_dilated(
            x, layer["w"], window_strides=(2, 2), padding=((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        ) + layer["b"]
        x = jnp.where(x > 0, x, 0.2 * x)
    x = x.reshape(x.shape[0], -1)
    return x @ params[2]["w"] + params[2]["b"]


def _mlp_params(key):
    keys = jax.random.split(key, 3)
    return [_dense(keys[0], 784, 512), _dense(keys[1], 512, 512), _dense(keys[2], 512, 10)]


def _mlp(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def _lstm_params(key):
    keys = jax.random.split(key, 3)
    cell = _dense(keys[0], 28 + 128, 4 * 128)  # [kernel; recurrent kernel], gates in Keras' order i, f, c, o
    return [cell, _dense(keys[2], 128, 10)]


def _lstm(params, x):
    cell, head = params

    def step(carry, x_t):
        h, c = carry
        i, f, g, o = jnp.split(jnp.concatenate([x_t, h], axis=1) @ cell["w"] + cell["b"], 4, axis=1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    zeros = jnp.zeros((x.shape[0], 128), x.dtype)
    (h, _), _ = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(x, 0, 1))
    return h @ head["w"] + head["b"]


# The JAX twin of each `benchmarks.dp_step` case: (parameter initialiser, model, input shape).
BUILDERS = {
    "dcgan_discriminator": (_discriminator_params, _discriminator, (28, 28, 1)),
    "dcgan_discriminator_256": (_discriminator_params, _discriminator, (28, 28, 1)),
    "mlp": (_mlp_params, _mlp, (784,)),
    "mnist_lstm": (_lstm_params, _lstm, (28, 28)),
}


def _adam(params, state, gradients):
    step, first, second = state
    step = step + 1
    first = jax.tree.map(lambda m, g: _BETA_1 * m + (1 - _BETA_1) * g, first, gradients)
    second = jax.tree.map(lambda v, g: _BETA_2 * v + (1 - _BETA_2) * g * g, second, gradients)
    scale = _LEARNING_RATE * jnp.sqrt(1 - _BETA_2**step) / (1 - _BETA_1**step)
    params = jax.tree.map(lambda p, m, v: p - scale * m / (jnp.sqrt(v) + _EPSILON), params, first, second)
    return params, (step, first, second)


def jax_step(case, *, mode, batch_size, num_classes):
    """A function that takes one JAX training step (plain or DP-SGD, then Adam) on a fixed batch.

    Args:
        case: a key of `BUILDERS`.
        mode: "plain" or "dp".
        batch_size: rows of the batch.
        num_classes: 1 for a binary logit (sigmoid cross-entropy), else the number of classes.

    Returns:
        A function of no arguments running one step and returning the loss as a float.

    Raises:
        ValueError: for an unknown case or mode.
    """
    if case not in BUILDERS:
        raise ValueError(f"case must be one of {sorted(BUILDERS)}, got {case!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    init, model, input_shape = BUILDERS[case]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch_size, *input_shape)).astype("float32"))
    if num_classes == 1:
        y = jnp.asarray(rng.integers(0, 2, (batch_size, 1)).astype("float32"))

        def losses(params, features, labels):
            logits = model(params, features)
            return jnp.mean(jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits))), axis=1)
    else:
        y = jnp.asarray(rng.integers(0, num_classes, batch_size))

        def losses(params, features, labels):
            logits = model(params, features)
            return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)[:, 0]

    params = init(jax.random.PRNGKey(0))
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = (jnp.zeros((), jnp.int32), zeros, zeros)

    def mean_loss(params, features, labels):
        return jnp.mean(losses(params, features, labels))

    @jax.jit
    def plain(params, state, key):
        del key
        value, gradients = jax.value_and_grad(mean_loss)(params, x, y)
        params, state = _adam(params, state, gradients)
        return params, state, value

    def one_loss(params, feature, label):
        return losses(params, feature[None], label[None])[0]

    @jax.jit
    def private(params, state, key):
        per_example = jax.vmap(jax.grad(one_loss), in_axes=(None, 0, 0))(params, x, y)
        leaves = jax.tree.leaves(per_example)
        norms = jnp.sqrt(sum(jnp.sum(jnp.square(g.reshape(batch_size, -1)), axis=1) for g in leaves))
        factors = jnp.minimum(1.0, 1.0 / jnp.maximum(norms, 1e-12))
        summed = jax.tree.map(lambda g: jnp.tensordot(factors, g, axes=1), per_example)
        keys = jax.random.split(key, len(leaves))
        noise = jax.tree.unflatten(
            jax.tree.structure(summed),
            [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, jax.tree.leaves(summed))],
        )
        gradients = jax.tree.map(lambda s, n: (s + n) / batch_size, summed, noise)
        params, state = _adam(params, state, gradients)
        return params, state, jnp.mean(losses(params, x, y))

    step_function = plain if mode == "plain" else private
    holder = {"params": params, "state": state, "key": jax.random.PRNGKey(1)}

    def step():
        holder["key"], key = jax.random.split(holder["key"])
        holder["params"], holder["state"], value = step_function(holder["params"], holder["state"], key)
        return float(value.block_until_ready())

    return step
