import numpy as np
import tensorflow as tf

from fairness import GradientReversal


def test_forward_is_identity_and_gradient_is_reversed_and_scaled():
    layer = GradientReversal(strength=0.7)
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 3)), dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(3.0 * y)
    np.testing.assert_allclose(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), np.full((4, 3), -0.7 * 3.0), rtol=1e-6)


def test_strength_changes_inside_a_compiled_function():
    layer = GradientReversal(strength=1.0)
    x = tf.ones((2, 2))

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, x)

    np.testing.assert_allclose(grad().numpy(), -1.0)
    layer.strength.assign(0.25)
    np.testing.assert_allclose(grad().numpy(), -0.25)


def test_negative_strength_refused():
    import pytest

    with pytest.raises(ValueError, match="strength"):
        GradientReversal(strength=-1.0)
