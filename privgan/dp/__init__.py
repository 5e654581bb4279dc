"""The DP-SGD core: per-example clipping, secret Gaussian noise, Poisson sampling, private supervised training.

Knows nothing about models beyond Keras variables and a per-example loss function.
"""

from privgan.dp import (
    rules_modern,  # noqa: F401  (registers the fast rules of modern layers)
    rules_recurrent,  # noqa: F401  (registers the SimpleRNN/LSTM/GRU rule)
)
from privgan.dp.backup import DPBackupAndRestore
from privgan.dp.layer_rules import LayerUse, register_layer_rule
from privgan.dp.mechanism import private_gradients
from privgan.dp.noise import NoiseStream
from privgan.dp.sampling import poisson_batches
from privgan.dp.sensitivity import SensitivityReport, check_sensitivity
from privgan.dp.training import DPModel, make_private
from privgan.dp.validation import NonPrivateLayerError, check_private_model

__all__ = [
    "DPBackupAndRestore",
    "DPModel",
    "LayerUse",
    "NoiseStream",
    "NonPrivateLayerError",
    "SensitivityReport",
    "check_private_model",
    "check_sensitivity",
    "make_private",
    "poisson_batches",
    "register_layer_rule",
    "private_gradients",
]
