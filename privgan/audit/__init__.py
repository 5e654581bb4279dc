"""Privacy auditing: membership inference attacks and empirical lower bounds on epsilon.

The accountant (`privgan.accounting`) proves an upper bound on epsilon; the tools here measure a lower
bound, to audit a privacy claim and to catch bugs in DP code (a lower bound above the upper bound).
"""

from privgan.audit.bounds import (
    epsilon_lower_bound_clopper_pearson,
    epsilon_lower_bound_one_run,
    fdp_one_run_margin,
    gaussian_dp_lower_bound_one_run,
    gaussian_dp_mu_interval,
    one_run_p_value,
)
from privgan.audit.canaries import (
    CanaryAuditResult,
    independent_trials_bound,
    mislabelled_canaries,
    one_run_bound,
    run_canary_audit,
    subset_with_mislabelled_canaries,
)
from privgan.audit.classifier_attacks import (
    ShadowScores,
    confidence_threshold_attack,
    cross_entropy,
    lira_attack,
    logit_confidence,
    loss_threshold_attack,
    train_shadow_models,
)
from privgan.audit.fdp import (
    DpSgdCurveBound,
    dp_sgd_blow_up_inverse,
    dp_sgd_curve_bound,
    dp_sgd_lower_bound_one_run,
    plan_fdp_guesses,
)
from privgan.audit.gaussian_dp import GaussianDPEstimate, gaussian_dp_estimate, plan_gaussian_dp_fraction
from privgan.audit.generative_attacks import (
    discriminator_ranking_attack,
    discriminator_scores,
    distance_to_closest_synthetic_attack,
)
from privgan.audit.metrics import AttackResult, evaluate_attack, plot_epsilon_bounds, plot_roc
from privgan.audit.whitebox import WhiteboxAuditResult, run_whitebox_audit

__all__ = [
    "AttackResult",
    "CanaryAuditResult",
    "DpSgdCurveBound",
    "GaussianDPEstimate",
    "ShadowScores",
    "WhiteboxAuditResult",
    "confidence_threshold_attack",
    "cross_entropy",
    "discriminator_ranking_attack",
    "discriminator_scores",
    "dp_sgd_blow_up_inverse",
    "dp_sgd_curve_bound",
    "dp_sgd_lower_bound_one_run",
    "distance_to_closest_synthetic_attack",
    "epsilon_lower_bound_clopper_pearson",
    "epsilon_lower_bound_one_run",
    "evaluate_attack",
    "fdp_one_run_margin",
    "gaussian_dp_estimate",
    "gaussian_dp_lower_bound_one_run",
    "gaussian_dp_mu_interval",
    "independent_trials_bound",
    "lira_attack",
    "logit_confidence",
    "loss_threshold_attack",
    "mislabelled_canaries",
    "one_run_bound",
    "one_run_p_value",
    "plan_fdp_guesses",
    "plan_gaussian_dp_fraction",
    "plot_epsilon_bounds",
    "plot_roc",
    "run_canary_audit",
    "run_whitebox_audit",
    "subset_with_mislabelled_canaries",
    "train_shadow_models",
]
