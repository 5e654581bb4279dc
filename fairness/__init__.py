"""fairness: learning without a sensitive variable (or a domain) by adversarial training on Keras 3."""

from privgan.backend import require_tensorflow_backend

require_tensorflow_backend()

from fairness.layers import GradientReversal  # noqa: E402  (backend checked first)

__all__ = ["GradientReversal"]
