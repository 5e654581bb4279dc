import keras
import pytest

from privgan.backend import require_tensorflow_backend


def test_a_non_tensorflow_keras_backend_is_refused(monkeypatch):
    # Importing privgan runs this check; Keras's other backends need jax or torch, absent here, so the
    # check itself is exercised with the backend name Keras would report.
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ImportError, match="privgan needs the TensorFlow backend of Keras, but Keras is set to 'jax'"):
        require_tensorflow_backend()


def test_the_tensorflow_backend_is_accepted():
    require_tensorflow_backend()
