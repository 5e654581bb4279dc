"""Refuses to run on a Keras backend other than TensorFlow.

The DP-SGD core relies on `tf.GradientTape`, `tf.function` and pfor vectorisation; on another backend
it would not fail loudly but silently compute something else, which a privacy library must not do.
"""

import keras


def require_tensorflow_backend() -> None:
    """Checks that Keras runs on TensorFlow.

    Raises:
        ImportError: if Keras is configured with another backend (`KERAS_BACKEND` or ~/.keras/keras.json).
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(
            f"privgan needs the TensorFlow backend of Keras, but Keras is set to {backend!r}. "
            "Set the environment variable KERAS_BACKEND=tensorflow (before importing keras) or edit "
            "~/.keras/keras.json."
        )
