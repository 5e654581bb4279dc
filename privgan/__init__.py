"""privgan: differentially private GANs and DP-SGD for Keras 3 on TensorFlow.

The public API is loaded lazily so that `import privgan` stays cheap beyond Keras itself; only the
modules of classes that `keras.models.load_model` must find are imported at once.
"""

import importlib

from privgan.backend import require_tensorflow_backend

require_tensorflow_backend()

__version__ = "0.1.0"

# Public name -> module that defines it.
_API = {
    "private_gradients": "privgan.dp.mechanism",
    "make_private": "privgan.dp.training",
    "DPModel": "privgan.dp.training",
    "poisson_batches": "privgan.dp.sampling",
    "NoiseStream": "privgan.dp.noise",
    "DPBackupAndRestore": "privgan.dp.backup",
    "check_sensitivity": "privgan.dp.sensitivity",
    "register_layer_rule": "privgan.dp.layer_rules",
    "epsilon": "privgan.accounting",
    "calibrate_noise_multiplier": "privgan.accounting",
    "privacy_statement": "privgan.accounting",
    "PrivacyLedger": "privgan.accounting",
    "quiet_accountant_logs": "privgan.accounting",
    "DPGAN": "privgan.models.dpgan",
    "PrivGAN": "privgan.models.privgan",
    "MeanEmbeddingGenerator": "privgan.models.mean_embedding",
    "SemiSupervisedGAN": "privgan.models.ssgan",
    "TabularDPSynthesizer": "privgan.tabular",
    "MarginalDPSynthesizer": "privgan.tabular",
    "TableSchema": "privgan.tabular",
    "load_schema": "privgan.tabular",
    "infer_schema": "privgan.tabular",
}

__all__ = sorted(_API) + ["__version__"]

# Keras finds a saved custom class only if it was registered before `load_model` reads the file, and a
# class registers when its module is imported: these modules define the classes privgan can save.
SAVEABLE_MODULES = (
    "privgan.dp.training",
    "privgan.models.dpgan",
    "privgan.models.mean_embedding",
    "privgan.models.scattering",
    "privgan.models.ssgan",
    "privgan.robustness.private",
    "privgan.robustness.smoothing",
    "privgan.robustness.training",
    "privgan.tabular.networks",
)  # tests/privgan/test_reload_and_fit_messages.py checks that every registered class is in one of them
for _module in SAVEABLE_MODULES:
    importlib.import_module(_module)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'privgan' has no attribute {name!r}")
