"""The experiments' flag for a fixed Poisson sampling seed: secret sampling unless it is given.

`--seed` seeds what may be public (splits, initialisation, latents, features); the batches are drawn
from operating-system entropy, as the accountant's amplification by sampling assumes.
"""

import sys

from absl import flags

SAMPLING_SEED_HELP = (
    "Seed of the Poisson sampling, for research only. Default None: a secret seed from the operating system. "
    "With a seed, the guarantee does not hold against anyone who knows it (the statement says so)."
)


def define_sampling_seed_flag(*, flag_values=flags.FLAGS):
    """Defines `--sampling_seed` (an integer or None) for the calling experiment.

    The flag is filed under the calling script, as absl names it (`sys.argv[0]` for `__main__`), so that it
    is among the script's own flags that `experiments.common.reporting` records in results.json.

    Args:
        flag_values: the `absl.flags.FlagValues` to define it in (default `absl.flags.FLAGS`).
    """
    caller = sys._getframe(1).f_globals.get("__name__")
    flags.DEFINE_integer("sampling_seed", None, SAMPLING_SEED_HELP, flag_values=flag_values,
                         module_name=sys.argv[0] if caller == "__main__" else caller)
