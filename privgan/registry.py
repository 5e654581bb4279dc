"""The one table of what `import privgan` offers: public names, DP generators, modules with saveable classes.

`privgan/__init__.py` derives from `ENTRIES` its lazily loaded top-level names (`_API`) and the modules it
imports at once (`SAVEABLE_MODULES`: Keras finds a saved custom class only if its module was imported before
`keras.models.load_model` reads the file). A new DP generator is one `Entry` here: its module, its public
name, `generators=` naming it, and `saveable=True` if it is a Keras model that can be saved; the tests then
check that it follows `DPGenerator` and returns a `PrivacyStatement`, and that its saved models load after
`import privgan`.

This module imports nothing from privgan, so that reading the table stays cheap (the docs' tests read it
without TensorFlow).
"""

import dataclasses
import importlib
from typing import Protocol, runtime_checkable


@runtime_checkable
class DPGenerator(Protocol):
    """What every privgan DP generator offers, the image models and the table engines alike.

    `fit` reads the private data once, with a budget; `generate` draws synthetic data from what was
    released (post-processing, free); `save_synthetic` writes them with their statement beside them, both
    or neither; `privacy_statement` says what the samples guarantee, as a
    `privgan.accounting.statement.PrivacyStatement`. Models take `delta` (and `accountant`) there; a table
    engine states the delta it was fitted for and takes no argument.
    """

    def fit(self, *args, **kwargs):
        """Trains on the private data, spending at most the budget given."""

    def generate(self, n, **kwargs):
        """`n` synthetic samples or rows."""

    def save_synthetic(self, path, n, **kwargs):
        """Writes `n` samples to `path` and the privacy statement beside it; returns both paths."""

    def privacy_statement(self, **kwargs):
        """The `PrivacyStatement` of the samples."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One privgan module that `import privgan` knows of.

    Attributes:
        module: the module's dotted name.
        names: the names `privgan.<name>` loads from it on first use.
        generators: those of `names` that are DP generators (`DPGenerator`).
        saveable: whether it defines Keras classes that privgan saves (`import privgan` imports it at once).
    """

    module: str
    names: tuple = ()
    generators: tuple = ()
    saveable: bool = False

    def __post_init__(self):
        if not self.module.startswith("privgan."):
            raise ValueError(f"module must be a privgan module, got {self.module!r}")
        if not set(self.generators) <= set(self.names):
            raise ValueError(f"generators must be among names {self.names}, got {self.generators}")


ENTRIES = (
    Entry("privgan.dp.mechanism", names=("private_gradients",)),
    Entry("privgan.dp.training", names=("make_private", "DPModel"), saveable=True),
    Entry("privgan.dp.sampling", names=("poisson_batches",)),
    Entry("privgan.dp.noise", names=("NoiseStream",)),
    Entry("privgan.dp.backup", names=("DPBackupAndRestore",)),
    Entry("privgan.dp.sensitivity", names=("check_sensitivity",)),
    Entry("privgan.dp.layer_rules", names=("register_layer_rule",)),
    Entry("privgan.accounting", names=("epsilon", "calibrate_noise_multiplier", "privacy_statement", "PrivacyLedger",
                                       "quiet_accountant_logs")),
    Entry("privgan.accounting.statement", names=("PrivacyStatement",)),
    Entry("privgan.registry", names=("DPGenerator",)),
    Entry("privgan.models.dpgan", names=("DPGAN",), generators=("DPGAN",), saveable=True),
    Entry("privgan.models.privgan", names=("PrivGAN",)),
    Entry("privgan.models.mean_embedding", names=("MeanEmbeddingGenerator",), generators=("MeanEmbeddingGenerator",),
          saveable=True),
    Entry("privgan.models.scattering", saveable=True),
    Entry("privgan.models.ssgan", names=("SemiSupervisedGAN",), saveable=True),
    Entry("privgan.models.weight_norm", saveable=True),
    Entry("privgan.robustness.private", saveable=True),
    Entry("privgan.robustness.smoothing", saveable=True),
    Entry("privgan.robustness.training", saveable=True),
    Entry("privgan.tabular",
          names=("TabularDPSynthesizer", "MarginalDPSynthesizer", "TableSchema", "load_schema", "infer_schema"),
          generators=("TabularDPSynthesizer", "MarginalDPSynthesizer")),
    Entry("privgan.tabular.networks", saveable=True),
)


def public_names(entries=ENTRIES):
    """Public name -> the module that defines it, for `privgan.__getattr__`.

    Raises:
        ValueError: if two entries claim the same name.
    """
    names = {}
    for entry in entries:
        for name in entry.names:
            if name in names:
                raise ValueError(f"privgan.{name} is claimed by both {names[name]} and {entry.module}")
            names[name] = entry.module
    return names


def saveable_modules(entries=ENTRIES):
    """The modules `import privgan` imports at once, in table order."""
    return tuple(entry.module for entry in entries if entry.saveable)


def generator_classes(entries=ENTRIES):
    """Name -> class of every registered DP generator (imports their modules)."""
    return {name: getattr(importlib.import_module(entry.module), name)
            for entry in entries for name in entry.generators}
