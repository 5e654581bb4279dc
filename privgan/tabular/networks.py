"""Generator and discriminator builders for tables encoded by `TableTransformer`.

The generator's last layer, `TabularActivation`, gives each span of the encoded vector its own output:
a sigmoid for a bounded numeric value and a Gumbel-softmax for a one-hot block. A plain softmax would
give D an easy tell (real rows are exactly one-hot, a softmax never is). The Gumbel-softmax samples the
category from G's logits, so G can express a categorical distribution for a fixed latent vector and the
arg-max that decoding takes is an exact sample of it (Jang et al. 2017; CTGAN, Xu et al. 2019, uses a
soft one). By default it is "hard" (straight-through): the forward pass emits the exact one-hot of the
sample, so D cannot tell real from fake rows by the softness of a block, and the gradient flows through
the soft sample. The noise is drawn at inference too.

The discriminator is `privgan.models.architectures.mlp_discriminator`: LeakyReLU, no normalisation
(BatchNormalization mixes the examples of a batch, which per-example clipping cannot bound).
"""

import keras

from privgan.models.architectures import mlp_discriminator


@keras.saving.register_keras_serializable(package="privgan")
class TabularActivation(keras.layers.Layer):
    """Sigmoid on numeric spans, Gumbel-softmax on one-hot spans of a vector of logits.

    Args:
        spans: `(start, width, activation)` triples (or `Span`s) covering the last axis in order;
            activation is "sigmoid" or "softmax".
        temperature: Gumbel-softmax temperature, > 0 (lower is closer to one-hot).
        hard: emit exact one-hot vectors (straight-through gradient of the soft sample).
        seed: seed of the Gumbel noise.
        **kwargs: passed to `keras.layers.Layer`.

    Raises:
        ValueError: if the spans are not contiguous from 0 or the temperature is not positive.
    """

    def __init__(self, spans, *, temperature=0.2, hard=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.spans = tuple(
            (int(s[0]), int(s[1]), str(s[2])) if isinstance(s, (tuple, list)) else (s.start, s.width, s.activation)
            for s in spans
        )
        position = 0
        for start, width, activation in self.spans:
            if start != position or width < 1 or activation not in ("sigmoid", "softmax"):
                raise ValueError(
                    f"spans must be contiguous (start, width >= 1, 'sigmoid'|'softmax') from 0, got {spans}"
                )
            position += width
        self.width = position
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.hard = bool(hard)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, logits):
        pieces = []
        for start, width, activation in self.spans:
            piece = logits[:, start : start + width]
            if activation == "sigmoid":
                pieces.append(keras.ops.sigmoid(piece))
                continue
            uniform = keras.random.uniform(keras.ops.shape(piece), minval=1e-20, maxval=1.0, seed=self.seed_generator)
            gumbel = -keras.ops.log(-keras.ops.log(uniform))
            soft = keras.ops.softmax((piece + gumbel) / self.temperature, axis=-1)
            if self.hard:
                one_hot = keras.ops.one_hot(keras.ops.argmax(soft, axis=-1), width, dtype=soft.dtype)
                soft = soft + keras.ops.stop_gradient(one_hot - soft)
            pieces.append(soft)
        return keras.ops.concatenate(pieces, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "spans": [list(s) for s in self.spans], "temperature": self.temperature,
            "hard": self.hard, "seed": self.seed}


def tabular_generator(
    transformer, *, latent_dim=64, hidden=(256, 256), batch_norm=True, temperature=0.2, hard=True, seed=None
):
    """An MLP generator whose output fits `transformer`'s encoding.

    Args:
        transformer: a `TableTransformer` (its `spans` shape the output layer).
        latent_dim: size of the Gaussian latent vector, >= 1.
        hidden: widths of the hidden ReLU layers.
        batch_norm: BatchNormalization after the hidden layers (G sees no private data, so it may).
        temperature: Gumbel-softmax temperature of the one-hot blocks.
        hard: emit exact one-hot blocks (straight-through Gumbel-softmax).
        seed: seed of the Gumbel noise.

    Returns:
        A Keras model `latent (batch, latent_dim) -> encoded rows (batch, transformer.width)`.

    Raises:
        ValueError: for an out-of-range argument.
    """
    if int(latent_dim) != latent_dim or latent_dim < 1:
        raise ValueError(f"latent_dim must be an integer >= 1, got {latent_dim}")
    latent = keras.Input(shape=(latent_dim,), name="latent")
    h = latent
    for units in hidden:
        if int(units) != units or units < 1:
            raise ValueError(f"hidden units must be integers >= 1, got {hidden}")
        h = keras.layers.Dense(units, use_bias=not batch_norm)(h)
        if batch_norm:
            h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
    logits = keras.layers.Dense(transformer.width, name="logits")(h)
    rows = TabularActivation(
        transformer.spans, temperature=temperature, hard=hard, seed=seed, name="tabular_activation"
    )(logits)
    return keras.Model(latent, rows, name="tabular_generator")


def tabular_discriminator(transformer, *, hidden=(256, 256)):
    """An MLP discriminator (LeakyReLU, no normalisation) for `transformer`'s encoded rows, one logit out.

    Args:
        transformer: a `TableTransformer`.
        hidden: widths of the hidden layers.

    Returns:
        A Keras model `encoded rows (batch, transformer.width) -> logits (batch, 1)`.
    """
    return mlp_discriminator(input_shape=(transformer.width,), hidden=tuple(hidden))
