"""Tiny models and data shared by the DP tests."""

import keras
import numpy as np

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


def conv_model(num_classes=3):
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(2, 3, activation="tanh"),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes),
        ]
    )


def mlp(num_features=5, num_classes=3):
    return keras.Sequential(
        [keras.Input((num_features,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(num_classes)]
    )


def images(n, seed=0, scale=1.0, num_classes=3):
    rng = np.random.default_rng(seed)
    return (scale * rng.normal(size=(n, 6, 6, 1))).astype("float32"), rng.integers(0, num_classes, n)


def per_example_loss(model):
    def loss(batch):
        x, y = batch
        return LOSS(y, model(x))

    return loss


class MaskedScale(keras.layers.Layer):
    """A custom layer with a weight whose `call` takes the mask: masked mean of the scaled positions.

    After `Embedding(mask_zero=True)`, repeated `tf.vectorized_map` over such a model was seen to abort
    the process (double free, segfault); DP clipping must not vectorise it.
    """

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs, mask=None):
        m = keras.ops.cast(mask, inputs.dtype)[..., None]
        return keras.ops.sum(inputs * self.w * m, 1) / (keras.ops.sum(m, 1) + 1.0)

    def compute_mask(self, inputs, mask=None):
        return None


def assert_one_private_epoch_trains(private, model, x, y, *, steps):
    """Compiles `private` (the DP wrapper of `model`), fits one epoch and checks that it took `steps` DP steps
    and left every trainable variable finite and changed."""
    private.compile("sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [v.numpy() for v in model.trainable_variables]
    private.fit(x, y, epochs=1, verbose=0, delta=1e-3)
    assert int(private.dp_steps.numpy()) == steps
    after = [v.numpy() for v in model.trainable_variables]
    assert all(np.isfinite(v).all() for v in after) and all((a != b).any() for a, b in zip(after, before))
