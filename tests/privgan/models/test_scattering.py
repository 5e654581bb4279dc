"""Scattering2D and the scattering discriminator: shapes, per-example outputs, sensitivity under DP-SGD."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from privgan.dp import check_sensitivity
from privgan.models.architectures import scattering_discriminator
from privgan.models.scattering import Scattering2D, morlet_filter
from privgan.models.ssgan import supervised_losses


def images(n, side, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, side, side, 1)).astype("float32")


def test_mnist_sized_output_has_81_channels_of_7x7_and_finite_gradients():
    layer = Scattering2D(scales=2, orientations=8)
    x = tf.Variable(images(2, 28))
    with tf.GradientTape() as tape:
        out = layer(x)
        total = tf.reduce_sum(out)
    assert out.shape == (2, 7, 7, 81) and layer.channels == 81
    assert bool(tf.reduce_all(tf.math.is_finite(tape.gradient(total, x))))
    assert not layer.trainable_weights


def test_each_examples_output_depends_on_that_example_alone():
    layer = Scattering2D(scales=1, orientations=4)
    x = images(5, 8)
    together = layer(x).numpy()
    alone = np.concatenate([layer(x[i : i + 1]).numpy() for i in range(5)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_wavelets_have_zero_mean_so_constant_images_give_no_first_order_energy():
    assert abs(morlet_filter(16, scale=1, theta=0.3, orientations=8).sum()) < 1e-9
    out = Scattering2D(scales=1, orientations=4)(np.full((1, 8, 8, 1), 0.7, "float32")).numpy()
    np.testing.assert_allclose(out[..., 0], 0.7, rtol=1e-4)  # order 0: the low-pass of a constant
    assert np.all(out[..., 1:] < 1e-2)  # order 1: |x * psi| = sqrt(epsilon) only


@pytest.mark.parametrize("kwargs, message", [
    ({"scales": 0}, "scales"), ({"orientations": 1.5}, "orientations"), ({"epsilon": 0.0}, "epsilon")])
def test_bad_layer_arguments_give_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Scattering2D(**kwargs)


def test_bad_builder_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="must be a multiple of 2"):
        scattering_discriminator(input_shape=(10, 10, 1), num_logits=3, scales=2, orientations=2, groups=1)
    with pytest.raises(ValueError, match="groups must divide"):
        scattering_discriminator(input_shape=(8, 8, 1), num_logits=3, scales=1, orientations=4, groups=2)


def test_removing_one_example_moves_the_clipped_gradient_sum_by_at_most_c():
    keras.utils.set_random_seed(0)
    model = scattering_discriminator(input_shape=(8, 8, 1), num_logits=3, scales=1, orientations=4, groups=5,
                                     projection=6, hidden=(8,))
    x = images(10, 8) * 20  # large inputs and a small C: every gradient is clipped
    y = np.arange(10, dtype="int32") % 3

    def losses(batch):
        return supervised_losses(model(batch[0], training=True), batch[1])

    report = check_sensitivity(losses, model.trainable_variables, (x, y), l2_norm_clip=0.01, max_examples=10)
    assert report.passed, report.summary()
