"""The DP-SGD core: per-example clipping, Gaussian noise, Poisson sampling, private supervised training.

Knows nothing about models beyond Keras variables and a per-example loss function.
"""

from privgan.dp.mechanism import private_gradients
from privgan.dp.sampling import poisson_batches
from privgan.dp.training import DPModel, make_private
from privgan.dp.validation import NonPrivateLayerError, check_private_model

__all__ = [
    "DPModel",
    "NonPrivateLayerError",
    "check_private_model",
    "make_private",
    "poisson_batches",
    "private_gradients",
]
