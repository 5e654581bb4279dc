"""Weight-normalised layers: data-dependent init standardises, hidden norms stay fixed, save/load keeps them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from privgan.models.weight_norm import (
    WeightNormDense,
    initialize_from_data,
    softplus_generator,
    weight_norm_discriminator,
)


def _tiny_pair():
    discriminator = weight_norm_discriminator(input_shape=(4, 4, 1), num_logits=3, hidden=(8, 6))
    generator = softplus_generator(output_shape=(4, 4, 1), latent_dim=5, hidden=(7,))
    return discriminator, generator


def test_init_standardises_and_hidden_norms_stay_fixed_under_training():
    discriminator, generator = _tiny_pair()
    x = np.random.default_rng(0).uniform(size=(64, 4, 4, 1)).astype("float32")
    assert initialize_from_data(discriminator, x, training=False) == 3
    first = next(layer for layer in discriminator.layers if isinstance(layer, WeightNormDense))
    pre = keras.ops.convert_to_numpy(first.normalized(x.reshape(64, 16)) * first.scale + first.bias)
    np.testing.assert_allclose(pre.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(pre.std(axis=0), 1, atol=1e-3)
    assert [len(layer.trainable_weights) for layer in discriminator.layers if isinstance(layer, WeightNormDense)] \
        == [2, 2, 3]  # direction and bias; the logit layer also trains its scale
    scales = keras.ops.convert_to_numpy(first.scale).copy()
    optimizer = keras.optimizers.Adam(0.1)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = keras.ops.sum(keras.ops.square(discriminator(x, training=True)))
        optimizer.apply(tape.gradient(loss, discriminator.trainable_variables), discriminator.trainable_variables)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(first.scale), scales)
    images = generator(np.zeros((2, 5), "float32"))
    assert images.shape == (2, 4, 4, 1)


def test_round_trips_through_keras_saving(tmp_path):
    discriminator, _ = _tiny_pair()
    initialize_from_data(discriminator, np.ones((4, 4, 4, 1), "float32") * np.arange(4)[:, None, None, None])
    discriminator.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    x = np.full((2, 4, 4, 1), 0.5, "float32")
    np.testing.assert_allclose(loaded(x), discriminator(x), atol=1e-6)


@pytest.mark.parametrize("kwargs, name", [(dict(num_logits=1), "num_logits"), (dict(hidden=()), "hidden"),
                                          (dict(input_noise=-1.0), "input_noise")])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        weight_norm_discriminator(**{"input_shape": (4, 4, 1), "num_logits": 3, **kwargs})
