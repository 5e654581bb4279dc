"""The fast per-layer clipping path must equal the materialised per-example path on any model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from privgan.dp import layer_rules
from privgan.dp.clipping import clipped_gradient_sum

RNG = np.random.default_rng(0)
SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


class ScaledDense(keras.layers.Layer):
    """A layer with a weight of its own and a Dense inside: its own weight needs the generic rule."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(4, activation="tanh")

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(4,), initializer="ones", name="scale")

    def call(self, inputs):
        return self.inner(inputs) * self.scale


class LooseWeightModel(keras.Model):
    """Uses a variable outside any layer's call: the whole model falls back to per-example gradients."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)
        self.offset = self.add_weight(shape=(3,), initializer="zeros", name="offset")

    def call(self, inputs):
        return self.dense(inputs) + self.offset


def _shared_layer_model():
    inputs = keras.Input((5,))
    shared = keras.layers.Dense(5, activation="tanh")
    return keras.Model(inputs, keras.layers.Dense(3)(shared(shared(inputs))))


CASES = {
    "mlp": (lambda: keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(7, activation="tanh"), keras.layers.Dense(3)]
    ),
            lambda n: RNG.normal(size=(n, 10))),
    "conv2d_stride_dilation_same": (
        lambda: keras.Sequential([
            keras.Input((12, 12, 2)),
            keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(5, 3, dilation_rate=2, padding="valid"),
            keras.layers.Flatten(), keras.layers.Dense(3)]),
        lambda n: RNG.normal(size=(n, 12, 12, 2))),
    # Kernels that are multiples of the strides, wide enough for the block Gram (odd SAME padding, VALID
    # cropping, stride 1 and 2, Conv1D).
    "conv2d_block_gram_same_odd_then_valid": (
        lambda: keras.Sequential([
            keras.Input((9, 9, 6)),
            keras.layers.Conv2D(32, 4, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(24, 3, padding="valid"),
            keras.layers.Flatten(), keras.layers.Dense(3)]),
        lambda n: RNG.normal(size=(n, 9, 9, 6))),
    "conv1d_block_gram_valid_stride": (
        lambda: keras.Sequential([
            keras.Input((11, 8)), keras.layers.Conv1D(24, 4, strides=2, activation="tanh"),
            keras.layers.Flatten(), keras.layers.Dense(3)]),
        lambda n: RNG.normal(size=(n, 11, 8))),
    "conv1d_causal_sequence_dense_layernorm": (
        lambda: keras.Sequential([
            keras.Input((9, 3)), keras.layers.Conv1D(4, 3, padding="causal", activation="tanh"),
            keras.layers.Dense(6), keras.layers.LayerNormalization(),
            keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)]),
        lambda n: RNG.normal(size=(n, 9, 3))),
    "embedding_with_repeated_tokens": (
        lambda: keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(5, 4),
                                  keras.layers.Flatten(), keras.layers.Dense(3)]),
        lambda n: RNG.integers(0, 5, (n, 6))),
    "shared_layer_called_twice": (_shared_layer_model, lambda n: RNG.normal(size=(n, 5))),
    "layernorm_rule_without_centre_then_with": (
        lambda: keras.Sequential([
            keras.Input((4, 3)), keras.layers.Dense(5), keras.layers.LayerNormalization(center=False),
            keras.layers.LayerNormalization(), keras.layers.Flatten(), keras.layers.Dense(3)]),
        lambda n: RNG.normal(size=(n, 4, 3))),
    "custom_layer_with_own_weight": (
        lambda: keras.Sequential([keras.Input((5,)), ScaledDense(), keras.layers.Dense(3)]),
        lambda n: RNG.normal(size=(n, 5))),
    "weight_outside_layers_falls_back": (LooseWeightModel, lambda n: RNG.normal(size=(n, 5))),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("clip", [0.1, 10.0])
def test_fast_path_equals_vectorized_path(name, clip):
    build, inputs = CASES[name]
    model = build()
    x = inputs(12)
    x = x.astype("int32") if x.dtype.kind == "i" else (3 * x).astype("float32")
    y = RNG.integers(0, 3, len(x))
    model(x[:1])

    def per_example_loss(batch):
        features, labels = batch
        return SCE(labels, model(features, training=True))

    fast, fast_losses, _ = clipped_gradient_sum(per_example_loss, model.trainable_variables, (x, y), l2_norm_clip=clip)
    slow, _, _ = clipped_gradient_sum(
        per_example_loss, model.trainable_variables, (x, y), l2_norm_clip=clip, method="vectorized"
    )
    assert fast_losses.shape == (12,)
    for got, want in zip(fast, slow):
        scale = float(np.max(np.abs(want.numpy()))) + 1e-12
        np.testing.assert_allclose(got.numpy() / scale, want.numpy() / scale, atol=1e-5)


def test_only_the_given_variables_are_private():
    model = CASES["mlp"][0]()
    x, y = RNG.normal(size=(6, 10)).astype("float32"), RNG.integers(0, 3, 6)
    last = model.layers[-1].trainable_variables

    def per_example_loss(batch):
        return SCE(batch[1], model(batch[0]))

    fast, _, _ = clipped_gradient_sum(per_example_loss, last, (x, y), l2_norm_clip=0.05)
    slow, _, _ = clipped_gradient_sum(per_example_loss, last, (x, y), l2_norm_clip=0.05, method="vectorized")
    assert len(fast) == 2
    for got, want in zip(fast, slow):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)


def test_a_layer_seeing_other_rows_than_the_losses_is_an_error():
    model = CASES["mlp"][0]()
    x, y = RNG.normal(size=(6, 10)).astype("float32"), RNG.integers(0, 3, 3)

    def per_example_loss(batch):  # wrong: averages pairs of examples into one loss
        logits = model(batch[0])
        return tf.reshape(SCE(tf.repeat(batch[1], 2), logits), [3, 2])[:, 0]

    with pytest.raises(tf.errors.InvalidArgumentError, match="different number of rows"):
        clipped_gradient_sum(per_example_loss, model.trainable_variables, (x, y), l2_norm_clip=1.0)


def test_unknown_method_refused():
    with pytest.raises(ValueError, match="method"):
        clipped_gradient_sum(lambda b: b, [], tf.zeros((1,)), l2_norm_clip=1.0, method="ghost")


def test_block_gram_serves_the_convolutions_it_is_cheaper_for(monkeypatch):
    calls = []
    original = layer_rules._patch_gram_from_blocks
    monkeypatch.setattr(layer_rules, "_patch_gram_from_blocks", lambda *a, **k: calls.append(1) or original(*a, **k))
    names = ("conv2d_block_gram_same_odd_then_valid", "conv1d_block_gram_valid_stride", "conv2d_stride_dilation_same")
    for name in names:
        build, inputs = CASES[name]
        model = build()
        x, y = (3 * inputs(4)).astype("float32"), RNG.integers(0, 3, 4)
        clipped_gradient_sum(lambda b, model=model: SCE(b[1], model(b[0])), model.trainable_variables, (x, y),
                             l2_norm_clip=1.0)
    assert len(calls) == 3  # both convolutions of the first model, the Conv1D; not the small or dilated ones
