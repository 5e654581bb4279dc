"""The DP-SGD mechanism must fail these tests when clipping, summing, noise or seeding is broken."""

import numpy as np
import pytest
import tensorflow as tf

from privgan.dp import private_gradients
from privgan.dp.clipping import clip_factors, per_example_global_norms, per_example_gradients
from tests.privgan.dp.models import LOSS, conv_model, images, mlp, per_example_loss
from tests.privgan.dp.reference import clipped_sum_reference, one_at_a_time_gradients


def _noiseless_sum(model, x, y, *, clip):
    """The clipped sum (noise 0, times the divisor) as NumPy arrays."""
    grads = private_gradients(
        per_example_loss(model), model.trainable_variables, (x, y),
        l2_norm_clip=clip, noise_multiplier=0.0, expected_batch_size=1.0,
    )
    return [g.numpy() for g in grads]


def test_per_example_gradients_equal_one_at_a_time_reference():
    model = conv_model()
    x, y = images(7)
    grads = per_example_gradients(per_example_loss(model), model.trainable_variables, (x, y))
    reference = one_at_a_time_gradients(lambda a, b: LOSS(b, model(a))[0], model.trainable_variables, x, y)
    for i, example in enumerate(reference):
        for got, want in zip(grads, example):
            np.testing.assert_allclose(got[i].numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("clip", [0.05, 1.0, 100.0])
def test_clipped_sum_equals_slow_reference(clip):
    model = conv_model()
    x, y = images(9, scale=3.0)
    reference = one_at_a_time_gradients(lambda a, b: LOSS(b, model(a))[0], model.trainable_variables, x, y)
    want = clipped_sum_reference(reference, l2_norm_clip=clip)
    for got, expected in zip(_noiseless_sum(model, x, y, clip=clip), want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["auto", "vectorized"])
def test_noiseless_update_is_the_clipped_sum_over_the_expected_batch_size(method):
    # The division rides on the clip factors: both clipping paths must apply it, once.
    model = conv_model()
    x, y = images(6, scale=3.0)
    reference = one_at_a_time_gradients(lambda a, b: LOSS(b, model(a))[0], model.trainable_variables, x, y)
    want = clipped_sum_reference(reference, l2_norm_clip=0.3)
    got = private_gradients(
        per_example_loss(model), model.trainable_variables, (x, y),
        l2_norm_clip=0.3, noise_multiplier=0.0, expected_batch_size=7.5, method=method,
    )
    for g, expected in zip(got, want):
        np.testing.assert_allclose(g.numpy(), expected / 7.5, rtol=1e-5, atol=1e-7)


def test_no_clipped_norm_exceeds_the_bound_and_small_norms_are_untouched():
    model = conv_model()
    x, y = images(32, scale=5.0)
    grads = per_example_gradients(per_example_loss(model), model.trainable_variables, (x, y))
    norms = per_example_global_norms(grads).numpy()
    clip = float(np.median(norms))  # half the examples are clipped, half are not
    factors = clip_factors(tf.constant(norms), l2_norm_clip=clip).numpy()
    clipped_norms = norms * factors
    assert np.all(clipped_norms <= clip * (1 + 1e-6))
    np.testing.assert_allclose(factors[norms <= clip], 1.0)
    np.testing.assert_allclose(clipped_norms[norms > clip], clip, rtol=1e-6)


@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_sensitivity_adding_one_example_moves_the_clipped_sum_by_at_most_c(scale):
    model = mlp()
    rng = np.random.default_rng(3)
    x = (scale * rng.normal(size=(20, 5))).astype("float32")
    y = rng.integers(0, 3, 20)
    clip = 0.5
    without = _noiseless_sum(model, x[:-1], y[:-1], clip=clip)
    with_one = _noiseless_sum(model, x, y, clip=clip)
    moved = np.sqrt(sum(np.sum(np.square(a - b)) for a, b in zip(with_one, without)))
    assert moved <= clip * (1 + 1e-5)
    if scale == 10.0:  # large inputs: every gradient is clipped, so the added one moves the sum by C
        assert moved == pytest.approx(clip, rel=1e-4)


def test_noise_std_is_sigma_c_over_expected_batch_size_and_independent_across_variables():
    model = mlp(num_features=8, num_classes=8)  # 76 parameters
    x, y = images(4)[0].reshape(4, -1)[:, :8], np.arange(4) % 8
    sigma, clip, divisor = 1.3, 0.7, 16.0
    noiseless = private_gradients(
        per_example_loss(model), model.trainable_variables, (x, y),
        l2_norm_clip=clip, noise_multiplier=0.0, expected_batch_size=divisor,
    )
    draw = tf.function(
        lambda: private_gradients(
            per_example_loss(model), model.trainable_variables, (x, y),
            l2_norm_clip=clip, noise_multiplier=sigma, expected_batch_size=divisor,
        )
    )
    noise = np.stack(
        [np.concatenate([(n - c).numpy().ravel() for n, c in zip(draw(), noiseless)]) for _ in range(120)]
    )  # (draws, parameters)
    expected = sigma * clip / divisor
    assert noise.std() == pytest.approx(expected, rel=0.03)
    assert abs(noise.mean()) < 0.05 * expected  # ~5 standard errors
    # Independent draws and independent coordinates: correlations are ~0 both across steps and parameters.
    correlation_across_draws = np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1]
    correlation_across_parameters = np.corrcoef(noise[:, :38].ravel(), noise[:, 38:76].ravel())[0, 1]
    assert abs(correlation_across_draws) < 0.05 and abs(correlation_across_parameters) < 0.05


def test_empty_batch_gives_pure_noise_inside_tf_function():
    model = conv_model()
    x, y = images(0)
    signature = [tf.TensorSpec([None, 6, 6, 1], tf.float32), tf.TensorSpec([None], tf.int64)]

    @tf.function(input_signature=signature)
    def step(x, y):
        return private_gradients(
            per_example_loss(model), model.trainable_variables, (x, y),
            l2_norm_clip=2.0, noise_multiplier=0.0, expected_batch_size=4.0,
        )

    for grad, variable in zip(step(x, y.astype("int64")), model.trainable_variables):
        assert grad.shape == variable.shape
        np.testing.assert_array_equal(grad.numpy(), 0.0)
    x, y = images(5)
    assert all(g.shape == v.shape for g, v in zip(step(x, y.astype("int64")), model.trainable_variables))


@pytest.mark.parametrize("compiled", [False, True])
def test_an_empty_batch_through_strided_convolutions_gives_pure_noise(compiled):
    """TensorFlow's Conv2D fails on zero rows here ("input depth must be evenly divisible by filter depth"),
    in plain Keras too; Poisson sampling draws empty batches, so the DP step must not run the model on none."""
    from privgan.models.architectures import dcgan_discriminator

    model = dcgan_discriminator(image_shape=(16, 16, 1), width=8)

    def losses(x):
        loss = tf.reshape(model(x), [-1])
        return loss, (loss, x)

    def step(x):
        return private_gradients(losses, model.trainable_variables, x, l2_norm_clip=1.0, noise_multiplier=0.0,
                                 expected_batch_size=4.0, has_aux=True)

    if compiled:
        step = tf.function(step, input_signature=[tf.TensorSpec([None, 16, 16, 1], tf.float32)])
    for rows in (0, 3, 0):
        gradients, (loss, x) = step(tf.ones([rows, 16, 16, 1]))
        assert loss.shape[0] == rows and x.shape[0] == rows
        assert all(g.shape == v.shape for g, v in zip(gradients, model.trainable_variables))
        assert any(np.any(g.numpy()) for g in gradients) == (rows > 0)


@pytest.mark.parametrize(
    "argument, value, message",
    [("l2_norm_clip", 0.0, "l2_norm_clip must be > 0"), ("noise_multiplier", -1.0, "noise_multiplier must be >= 0"),
     ("expected_batch_size", 0, "expected_batch_size must be > 0")],
)
def test_bad_parameters_are_refused(argument, value, message):
    model = mlp()
    kwargs = {"l2_norm_clip": 1.0, "noise_multiplier": 1.0, "expected_batch_size": 2.0, argument: value}
    x, y = np.zeros((2, 5), "float32"), np.zeros(2, "int64")
    with pytest.raises(ValueError, match=message):
        private_gradients(per_example_loss(model), model.trainable_variables, (x, y), **kwargs)


def test_a_fixed_seed_is_refused_because_it_would_repeat_the_noise():
    model = mlp()
    x, y = np.zeros((2, 5), "float32"), np.zeros(2, "int64")
    with pytest.raises(TypeError, match="NoiseStream"):
        private_gradients(per_example_loss(model), model.trainable_variables, (x, y), l2_norm_clip=1.0,
                          noise_multiplier=1.0, expected_batch_size=2.0, noise=7)
