"""Weight-normalised dense layers and the MLP pair of Salimans et al.'s (2016) semi-supervised MNIST GAN.

A `WeightNormDense` unit computes `g * <v, x> / ||v|| + b` (Salimans & Kingma 2016). With a fixed
scale g (`train_scale=False`, as in every hidden layer of Salimans et al.'s MNIST discriminator) each
unit's weight vector keeps the norm that `initialize_from_data` gave it: Adam can turn the direction
but cannot grow the weights. That bound is what keeps the semi-supervised discriminator from
memorising its 100 labels with ever larger logits; without it (a plain Dense MLP), training longer
made the classifier worse (issue 28: 0.944 after 10 epochs, 0.814 after 40).

`initialize_from_data` is the paper's data-dependent initialisation: layer by layer, it sets g and b
so that each unit's pre-activation has mean 0 and variance 1 on a batch. It reads the batch's
statistics, so it is for non-private training only (the builders here are not for the DP path).
"""

import math

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="privgan")
class WeightNormDense(keras.layers.Layer):
    """A dense layer with weight normalisation: `activation(g * x @ v / ||v||_column + b)`.

    Args:
        units: output width, >= 1.
        activation: a Keras activation name or None (linear).
        train_scale: whether g is trained (the paper trains it in the logit layer only).
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, units, *, activation=None, train_scale=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or int(units) != units or units < 1:
            raise ValueError(f"units must be an integer >= 1, got {units!r}")
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.train_scale = bool(train_scale)

    def build(self, input_shape):
        # Normal(0.1) directions as in the paper; only the direction matters, the norm is g's.
        self.direction = self.add_weight(shape=(int(input_shape[-1]), self.units), name="direction",
                                         initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.scale = self.add_weight(shape=(self.units,), name="scale", initializer="ones",
                                     trainable=self.train_scale)
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros")

    def normalized(self, inputs):
        """The pre-activation without bias, `x @ v / ||v||` (g = 1)."""
        norms = keras.ops.sqrt(keras.ops.sum(keras.ops.square(self.direction), axis=0) + 1e-12)
        return keras.ops.matmul(inputs, self.direction) / norms

    def call(self, inputs):
        return self.activation(self.normalized(inputs) * self.scale + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "train_scale": self.train_scale,
                "activation": keras.activations.serialize(self.activation)}


def initialize_from_data(model, x, *, training=True):
    """Sets every `WeightNormDense` layer's g and b so that its pre-activations on `x` are standardised.

    Layers are set in the model's order, each from the outputs of the layers already set (so call it on
    a freshly built model). Non-private: it reads `x`'s statistics.

    Args:
        model: a functional Keras model.
        x: a batch of the model's inputs (e.g. 500 training images).
        training: run the layers before each in training mode (the paper's init sees the noise layers'
            noise).

    Returns:
        The number of layers set.

    Raises:
        ValueError: if `x` has fewer than 2 rows.
    """
    if len(x) < 2:
        raise ValueError(f"x must have at least 2 rows to standardise on, got {len(x)}")
    count = 0
    for layer in model.layers:
        if not isinstance(layer, WeightNormDense):
            continue
        inputs = keras.Model(model.inputs, layer.input)(x, training=training)
        pre = keras.ops.convert_to_numpy(layer.normalized(inputs))
        mean, std = pre.mean(axis=0), np.sqrt(pre.var(axis=0) + 1e-8)
        layer.scale.assign(keras.ops.convert_to_numpy(layer.scale) / std)
        layer.bias.assign(-mean / std)
        count += 1
    return count


def _check_widths(hidden, name):
    if not hidden or any(isinstance(h, bool) or int(h) != h or h < 1 for h in hidden):
        raise ValueError(f"{name} must be a non-empty list of integers >= 1, got {hidden!r}")


def weight_norm_discriminator(*, input_shape, num_logits, hidden=(1000, 500, 250, 250, 250), input_noise=0.3,
                              hidden_noise=0.5):
    """Salimans et al.'s MNIST discriminator: Gaussian noise, weight-normalised ReLU layers, K logits.

    Hidden layers have a fixed scale g (set by `initialize_from_data`), the logit layer a trained one.
    The last hidden layer (before its noise) is named "features": `SemiSupervisedGAN`'s feature
    matching target. Not for DP training (its init reads the data).

    Args:
        input_shape: shape of one example, e.g. (28, 28, 1).
        num_logits: K >= 2 class logits.
        hidden: widths of the hidden layers.
        input_noise: std of the Gaussian noise on the input (training only), >= 0.
        hidden_noise: std of the Gaussian noise after each hidden layer (training only), >= 0.

    Returns:
        A Keras model `examples -> logits (batch, num_logits)`.

    Raises:
        ValueError: for an out-of-range argument.
    """
    _check_widths(hidden, "hidden")
    if isinstance(num_logits, bool) or int(num_logits) != num_logits or num_logits < 2:
        raise ValueError(f"num_logits must be an integer >= 2, got {num_logits!r}")
    for name, value in (("input_noise", input_noise), ("hidden_noise", hidden_noise)):
        if not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    examples = keras.Input(shape=tuple(input_shape), name="examples")
    h = keras.layers.Flatten()(examples)
    if input_noise:
        h = keras.layers.GaussianNoise(input_noise)(h)
    for index, units in enumerate(hidden):
        last = index == len(hidden) - 1
        h = WeightNormDense(int(units), activation="relu", name="features" if last else None)(h)
        if hidden_noise:
            h = keras.layers.GaussianNoise(hidden_noise)(h)
    logits = WeightNormDense(int(num_logits), train_scale=True, name="logits")(h)
    return keras.Model(examples, logits, name="weight_norm_discriminator")


def softplus_generator(*, output_shape, latent_dim=100, hidden=(500, 500)):
    """Salimans et al.'s MNIST generator: Dense + BatchNorm (no scale) + softplus, a weight-normalised sigmoid out.

    Args:
        output_shape: shape of one generated example, e.g. (28, 28, 1).
        latent_dim: size of the latent vector, >= 1.
        hidden: widths of the hidden layers.

    Returns:
        A Keras model `latent -> examples` in [0, 1].

    Raises:
        ValueError: for an out-of-range argument.
    """
    _check_widths(hidden, "hidden")
    if isinstance(latent_dim, bool) or int(latent_dim) != latent_dim or latent_dim < 1:
        raise ValueError(f"latent_dim must be an integer >= 1, got {latent_dim!r}")
    latent = keras.Input(shape=(int(latent_dim),), name="latent")
    h = latent
    for units in hidden:
        h = keras.layers.Dense(int(units), use_bias=False)(h)
        h = keras.layers.Activation("softplus")(keras.layers.BatchNormalization(scale=False)(h))
    h = WeightNormDense(math.prod(output_shape), activation="sigmoid", train_scale=True)(h)
    return keras.Model(latent, keras.layers.Reshape(tuple(output_shape))(h), name="softplus_generator")
