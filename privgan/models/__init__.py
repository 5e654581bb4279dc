"""Model builders and the private generative models.

The models load lazily (`privgan.models.SemiSupervisedGAN` imports its module on first use), so that
importing a builder stays cheap.
"""

import importlib

_API = {
    "DPGAN": "privgan.models.dpgan",
    "PrivGAN": "privgan.models.privgan",
    "SemiSupervisedGAN": "privgan.models.ssgan",
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'privgan.models' has no attribute {name!r}")
