"""The experiments' flag for a fixed Poisson sampling seed: secret sampling unless it is given.

`--seed` seeds what may be public (splits, initialisation, latents, features); the batches are drawn
from operating-system entropy, as the accountant's amplification by sampling assumes.
"""

from absl import flags

SAMPLING_SEED_HELP = (
    "Seed of the Poisson sampling, for research only. Default None: a secret seed from the operating system. "
    "With a seed, the guarantee does not hold against anyone who knows it (the statement says so)."
)


def define_sampling_seed_flag():
    """Defines `--sampling_seed` (an integer or None) for the calling experiment."""
    flags.DEFINE_integer("sampling_seed", None, SAMPLING_SEED_HELP)
