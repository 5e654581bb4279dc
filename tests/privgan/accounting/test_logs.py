"""The RDP accountant's convergence notices are filtered around privgan's computations; nothing else is."""

import logging

from absl import logging as absl_logging

import privgan
from privgan.accounting import epsilon
from privgan.accounting.events import _make_accountant, dp_sgd_event
from privgan.accounting.logs import RdpConvergenceFilter

# A q and sigma for which dp-accounting's series for fractional orders does not converge (seen in a run).
NOT_CONVERGING = dict(noise_multiplier=1.0, sampling_probability=0.112478, steps=27)


def _notices(caplog):
    return [r for r in caplog.records if "failed to converge" in r.getMessage()]


def _filters():
    return [f for f in absl_logging.get_absl_logger().filters if isinstance(f, RdpConvergenceFilter)]


def test_convergence_notices_are_dropped_during_privgans_epsilon_and_the_filter_is_removed(caplog):
    before = _filters()
    with caplog.at_level(logging.WARNING):
        value = epsilon(**NOT_CONVERGING, delta=1e-2, accountant="rdp")
    assert _notices(caplog) == [] and 0 < value < float("inf")
    assert _filters() == before  # no filter left behind on the process's logger
    if not before:  # the same case through dp-accounting directly really logs them
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            _make_accountant("rdp").compose(dp_sgd_event(**NOT_CONVERGING)).get_epsilon(1e-2)
        assert _notices(caplog)


def test_quiet_accountant_logs_installs_one_filter_for_the_process():
    logger = absl_logging.get_absl_logger()
    before = _filters()
    privgan.quiet_accountant_logs()
    privgan.quiet_accountant_logs()
    try:
        assert len(_filters()) == 1
    finally:
        for added in set(_filters()) - set(before):
            logger.removeFilter(added)


def test_other_absl_warnings_still_show(caplog):
    with caplog.at_level(logging.WARNING):
        absl_logging.warning("Negative Renyi divergence of %s", -1.0)
    assert [r.getMessage() for r in caplog.records] == ["Negative Renyi divergence of -1.0"]
