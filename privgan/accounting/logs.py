"""Keeps dp-accounting's RDP convergence notices out of the user's log, and nothing else.

For fractional Renyi orders the RDP accountant sums a series; when it has not converged after 1,000
terms, dp-accounting logs `_compute_log_a_frac failed to converge ... Excluding this order from the epsilon
computation` and treats that order's bound as infinite. epsilon is the minimum over the remaining orders,
so it stays a valid upper bound: the notice concerns the accountant's numerics, not the user's
guarantee, and one calibration logs it dozens of times (141 of 215 lines of a `privgan-synthesize` run).

Nothing is installed at import. privgan's own RDP computations (`privgan.accounting.epsilon_of_event`)
run inside `rdp_convergence_notices_filtered`, which puts a filter for exactly that message on absl's
logger (which dp-accounting logs through) for the duration of the computation only; dp-accounting's
other warnings, e.g. a negative Renyi divergence, still show. `quiet_accountant_logs()` installs the
filter for the rest of the process, for code that calls dp-accounting's RDP accountant directly; the
console commands call it.
"""

import contextlib
import logging
import threading

from absl import logging as absl_logging

_CONVERGENCE_NOTICE = "_compute_log_a_frac failed to converge"


class RdpConvergenceFilter(logging.Filter):
    """Drops dp-accounting's `_compute_log_a_frac failed to converge` records."""

    def filter(self, record):
        return not str(record.msg).startswith(_CONVERGENCE_NOTICE)


def quiet_accountant_logs():
    """Drops the RDP accountant's convergence notices from absl's logger for the rest of the process.

    Idempotent. privgan's own epsilon computations filter them anyway; call this when your code uses
    dp-accounting's `RdpAccountant` directly and the notices clutter its log.
    """
    logger = absl_logging.get_absl_logger()
    if not any(isinstance(existing, RdpConvergenceFilter) for existing in logger.filters):
        logger.addFilter(RdpConvergenceFilter())


install_rdp_convergence_filter = quiet_accountant_logs  # its name before the filter became opt-in

_SCOPED_FILTER = RdpConvergenceFilter()
_scoped_lock = threading.Lock()
_scoped_depth = 0  # computations (in any thread) inside `rdp_convergence_notices_filtered` now


@contextlib.contextmanager
def rdp_convergence_notices_filtered():
    """Drops the RDP accountant's convergence notices logged while the block runs, then removes the filter.

    A logger's filters are shared by all threads, so the filter stays while any thread is in such a
    block; it drops only that one notice, which never concerns the guarantee.
    """
    global _scoped_depth
    logger = absl_logging.get_absl_logger()
    with _scoped_lock:
        _scoped_depth += 1
        if _scoped_depth == 1:
            logger.addFilter(_SCOPED_FILTER)
    try:
        yield
    finally:
        with _scoped_lock:
            _scoped_depth -= 1
            if _scoped_depth == 0:
                logger.removeFilter(_SCOPED_FILTER)
