"""privgan: differentially private GANs and DP-SGD for Keras 3 on TensorFlow.

The public API is loaded lazily so that `import privgan` stays cheap beyond Keras itself; only the
modules of classes that `keras.models.load_model` must find are imported at once.
"""

import importlib

from privgan import registry
from privgan.backend import require_tensorflow_backend

require_tensorflow_backend()

__version__ = "0.1.0"

# Public name -> module that defines it, and the modules whose Keras classes `keras.models.load_model` must
# find (a class registers when its module is imported): both come from the one table in `privgan.registry`,
# where a new generator is added. tests/privgan/test_reload_and_fit_messages.py checks that every registered
# class is in one of those modules.
_API = registry.public_names()

__all__ = sorted(_API) + ["__version__"]

SAVEABLE_MODULES = registry.saveable_modules()
for _module in SAVEABLE_MODULES:
    importlib.import_module(_module)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'privgan' has no attribute {name!r}")
