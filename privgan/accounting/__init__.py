"""Privacy accounting for DP-SGD with Google's dp-accounting: events, epsilon, calibration, ledger.

Every epsilon in privgan comes from `dp_accounting`'s RDP or PLD accountant applied to
`PoissonSampledDpEvent(q, GaussianDpEvent(sigma))` self-composed over the steps taken, composed with
the events of any other release of the private data recorded in the same `PrivacyLedger`.
"""

from privgan.accounting.calibration import calibrate_noise_multiplier, max_steps
from privgan.accounting.callbacks import PrivacyCallback
from privgan.accounting.events import dp_sgd_event, epsilon, epsilon_of_event
from privgan.accounting.ledger import DpSgdPhase, PrivacyLedger, ReleasePhase
from privgan.accounting.logs import install_rdp_convergence_filter
from privgan.accounting.statement import privacy_statement

install_rdp_convergence_filter()

__all__ = [
    "DpSgdPhase",
    "PrivacyCallback",
    "PrivacyLedger",
    "ReleasePhase",
    "calibrate_noise_multiplier",
    "dp_sgd_event",
    "epsilon",
    "epsilon_of_event",
    "max_steps",
    "privacy_statement",
]
