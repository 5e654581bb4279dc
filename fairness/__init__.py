"""fairness: learning without a sensitive variable (or a domain) by adversarial training on Keras 3."""

from privgan.backend import require_tensorflow_backend

require_tensorflow_backend()

from fairness import metrics  # noqa: E402
from fairness.data import load_adult, make_biased_toy  # noqa: E402
from fairness.debiasing import AdversarialDebiasing  # noqa: E402
from fairness.domain_adaptation import DANN  # noqa: E402
from fairness.layers import GradientReversal  # noqa: E402  (backend checked first)
from fairness.representation import FairRepresentation  # noqa: E402

__all__ = [
    "AdversarialDebiasing",
    "DANN",
    "FairRepresentation",
    "GradientReversal",
    "load_adult",
    "make_biased_toy",
    "metrics",
]
