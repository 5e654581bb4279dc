"""Privacy accounting for DP-SGD with Google's dp-accounting: events, epsilon, calibration, ledger.

Every epsilon in privgan comes from `dp_accounting`'s RDP or PLD accountant applied to
`PoissonSampledDpEvent(q, GaussianDpEvent(sigma))` self-composed over the steps taken, composed with
the events of any other release of the private data recorded in the same `PrivacyLedger`. Training
that reads disjoint parts of the data through separate mechanisms is a `ParallelLedger` of one
`PrivacyLedger` per part (parallel composition: the worst part's epsilon).
"""

from privgan.accounting.calibration import calibrate_noise_multiplier, max_steps
from privgan.accounting.callbacks import PrivacyCallback
from privgan.accounting.events import dp_sgd_event, epsilon, epsilon_of_event
from privgan.accounting.ledger import DpSgdPhase, PrivacyLedger, ReleasePhase
from privgan.accounting.logs import quiet_accountant_logs
from privgan.accounting.parallel import ParallelLedger
from privgan.accounting.statement import privacy_statement

__all__ = [
    "DpSgdPhase",
    "ParallelLedger",
    "PrivacyCallback",
    "PrivacyLedger",
    "ReleasePhase",
    "calibrate_noise_multiplier",
    "dp_sgd_event",
    "epsilon",
    "epsilon_of_event",
    "max_steps",
    "privacy_statement",
    "quiet_accountant_logs",
]
