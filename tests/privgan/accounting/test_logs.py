"""The RDP accountant's convergence notices are filtered; its other warnings are not."""

import logging

from absl import logging as absl_logging

import privgan.accounting  # noqa: F401  (installs the filter)
from privgan.accounting import epsilon
from privgan.accounting.logs import RdpConvergenceFilter

# A q and sigma for which dp-accounting's series for fractional orders does not converge (seen in a run).
NOT_CONVERGING = dict(noise_multiplier=1.0, sampling_probability=0.112478, steps=27, delta=1e-2, accountant="rdp")


def _notices(caplog):
    return [r for r in caplog.records if "failed to converge" in r.getMessage()]


def test_convergence_notices_are_dropped_and_appear_without_the_filter(caplog):
    logger = absl_logging.get_absl_logger()
    with caplog.at_level(logging.WARNING):
        value = epsilon(**NOT_CONVERGING)
    assert _notices(caplog) == [] and 0 < value < float("inf")
    filters = [f for f in logger.filters if isinstance(f, RdpConvergenceFilter)]
    assert len(filters) == 1
    logger.removeFilter(filters[0])
    try:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert epsilon(**NOT_CONVERGING) == value
        assert _notices(caplog)  # the case really logs them, so the first assertion tested the filter
    finally:
        logger.addFilter(filters[0])


def test_other_absl_warnings_still_show(caplog):
    with caplog.at_level(logging.WARNING):
        absl_logging.warning("Negative Renyi divergence of %s", -1.0)
    assert [r.getMessage() for r in caplog.records] == ["Negative Renyi divergence of -1.0"]
