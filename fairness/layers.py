"""Gradient reversal: identity forward, -lambda times the gradient backward (Ganin & Lempitsky 2015)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="fairness")
class GradientReversal(keras.layers.Layer):
    """Passes its input through unchanged and multiplies the incoming gradient by `-strength`.

    `strength` (the paper's lambda) lives in a non-trainable variable, so schedules can change it during
    training (`layer.strength.assign(v)`) without retracing the train step.

    Args:
        strength: initial lambda, >= 0.
        **kwargs: passed to `keras.layers.Layer`.

    Raises:
        ValueError: if `strength` is negative.
    """

    def __init__(self, strength=1.0, **kwargs):
        super().__init__(**kwargs)
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self._initial_strength = float(strength)
        self.strength = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self._initial_strength),
            trainable=False,
            name="strength",
        )

    def call(self, inputs):
        strength = tf.cast(self.strength, inputs.dtype)

        @tf.custom_gradient
        def reverse(x):
            def grad(upstream):
                return -strength * upstream

            return tf.identity(x), grad

        return reverse(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "strength": self._initial_strength}
