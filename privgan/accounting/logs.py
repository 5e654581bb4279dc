"""Keeps dp-accounting's RDP convergence notices out of the user's log, and nothing else.

For fractional Renyi orders the RDP accountant sums a series; when it has not converged after 1,000
terms, dp-accounting logs `_compute_log_a_frac failed to converge ... Excluding this order from the epsilon
computation` and treats that order's bound as infinite. epsilon is the minimum over the remaining orders,
so it stays a valid upper bound: the notice concerns the accountant's numerics, not the user's
guarantee, and one calibration logs it dozens of times (141 of 215 lines of a `privgan-synthesize` run).
Importing `privgan.accounting` installs a filter for exactly that message on absl's logger (which
dp-accounting logs through); its other warnings, e.g. a negative Renyi divergence, still show.
"""

import logging

from absl import logging as absl_logging

_CONVERGENCE_NOTICE = "_compute_log_a_frac failed to converge"


class RdpConvergenceFilter(logging.Filter):
    """Drops dp-accounting's `_compute_log_a_frac failed to converge` records."""

    def filter(self, record):
        return not str(record.msg).startswith(_CONVERGENCE_NOTICE)


def install_rdp_convergence_filter():
    """Adds `RdpConvergenceFilter` to absl's logger once (idempotent)."""
    logger = absl_logging.get_absl_logger()
    if not any(isinstance(existing, RdpConvergenceFilter) for existing in logger.filters):
        logger.addFilter(RdpConvergenceFilter())
