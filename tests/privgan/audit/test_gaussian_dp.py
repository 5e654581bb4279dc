"""Gaussian-DP estimate of mu from canary scores: valid on exactly mu-GDP data, tighter than the f-DP
one-run bound on the same scores, and adaptive to scores on another scale than the simulation's."""

import numpy as np
import pytest
from scipy import special, stats

from privgan.audit import (
    gaussian_dp_estimate,
    gaussian_dp_lower_bound_one_run,
    gaussian_dp_mu_interval,
    plan_gaussian_dp_fraction,
)
from privgan.audit.canaries import one_run_guess_outcome, plan_one_run_guesses


def _gaussian_scores(rng, *, mu, num_canaries):
    # Canary j's score is N(mu b_j, 1): the test "score > t" then has Phi^-1(TPR) - Phi^-1(FPR) = mu for
    # every t, so the data are exactly mu-GDP and every threshold sees all of mu (the hardest case for
    # validity).
    included = rng.random(num_canaries) < 0.5
    return rng.normal(size=num_canaries) + mu * included, included


def test_interval_matches_clopper_pearson_limits():
    # Computed independently: one-sided Clopper-Pearson limits at alpha / 4 as Beta quantiles.
    alpha = 0.1
    lower, estimate, upper = gaussian_dp_mu_interval(
        true_positives=60, false_positives=10, num_positives=200, num_negatives=300, alpha=alpha
    )
    tpr_lower, tpr_upper = stats.beta.ppf(alpha / 4, 60, 141), stats.beta.ppf(1 - alpha / 4, 61, 140)
    fpr_lower, fpr_upper = stats.beta.ppf(alpha / 4, 10, 291), stats.beta.ppf(1 - alpha / 4, 11, 290)
    assert lower == pytest.approx(special.ndtri(tpr_lower) - special.ndtri(fpr_upper))
    assert upper == pytest.approx(special.ndtri(tpr_upper) - special.ndtri(fpr_lower))
    assert estimate == pytest.approx(special.ndtri(0.3) - special.ndtri(10 / 300))
    assert 0 < lower < estimate < upper


def test_interval_edges():
    # No true positive refutes nothing; no false positive leaves the test's mu unbounded above.
    assert gaussian_dp_mu_interval(true_positives=0, false_positives=0, num_positives=10, num_negatives=10)[0] == 0
    lower, estimate, upper = gaussian_dp_mu_interval(
        true_positives=10, false_positives=0, num_positives=10, num_negatives=10
    )
    assert 0 < lower < estimate and upper == np.inf
    with pytest.raises(ValueError, match="false_positives must be in"):
        gaussian_dp_mu_interval(true_positives=1, false_positives=11, num_positives=10, num_negatives=10)
    with pytest.raises(ValueError, match="alpha must be in"):
        gaussian_dp_mu_interval(true_positives=1, false_positives=1, num_positives=10, num_negatives=10, alpha=0)


def test_estimate_is_valid_on_exactly_gaussian_dp_data():
    # 400 simulated audits of an exactly mu-GDP mechanism: the lower end must exceed the true mu in at
    # most alpha / 2 of them (the interval's lower end alone has confidence 1 - alpha / 2), and the
    # interval must cover the test's mu (= mu here) in at least 1 - alpha of them.
    rng = np.random.default_rng(0)
    mu, alpha = 1.0, 0.1
    lower, covered = [], []
    for _ in range(400):
        scores, included = _gaussian_scores(rng, mu=mu, num_canaries=2000)
        estimate = gaussian_dp_estimate(scores, included, flag_fraction=0.2, delta=1e-5, alpha=alpha)
        lower.append(estimate.mu_lower)
        covered.append(estimate.mu_lower <= mu <= estimate.mu_upper)
    assert np.mean(np.array(lower) > mu) <= alpha / 2  # measured 3 of 400 (largest 1.06)
    assert np.mean(covered) >= 1 - alpha  # measured 0.99
    assert np.median(lower) > 0.7 * mu  # measured 0.79


def test_estimate_is_tighter_than_the_f_dp_one_run_bound_on_the_same_scores():
    # Same scores, each bound with its own choice planned on a simulation of the same mechanism: the
    # independent-trials estimate uses the trade-off curve's Gaussian shape, the one-run test only counts
    # guesses (and needs no independence).
    rng = np.random.default_rng(1)
    mu, alpha, m = 1.0, 0.05, 2000
    simulated, simulated_included = _gaussian_scores(rng, mu=mu, num_canaries=m)
    fraction = plan_gaussian_dp_fraction(simulated, simulated_included, num_positives=900, num_negatives=900,
                                         alpha=alpha)
    num_top, num_bottom = plan_one_run_guesses(
        simulated, simulated_included, delta=1e-5, alpha=alpha,
        bound_fn=lambda **counts: gaussian_dp_lower_bound_one_run(**counts)[0],
    )
    new, old = [], []
    for _ in range(20):
        scores, included = _gaussian_scores(rng, mu=mu, num_canaries=m)
        new.append(gaussian_dp_estimate(scores, included, flag_fraction=fraction, delta=1e-5, alpha=alpha).mu_lower)
        guesses, correct = one_run_guess_outcome(scores, included, num_top=num_top, num_bottom=num_bottom)
        old.append(gaussian_dp_lower_bound_one_run(
            num_canaries=m, num_guesses=guesses, num_correct=correct, delta=1e-5, alpha=alpha
        )[0])
    assert np.all(np.array(new) <= mu)
    assert np.mean(np.array(new) > np.array(old)) >= 0.9  # measured 20 of 20
    assert np.mean(new) > np.mean(old) + 0.1  # measured 0.79 against 0.61


def test_threshold_follows_scores_on_another_scale():
    # A broken mechanism can move every score far from the simulation's (noise repeated across steps
    # makes the differenced score of every excluded canary its minimum): the threshold comes from the
    # audit's own calibration canaries, so the test still flags the right ones.
    rng = np.random.default_rng(2)
    included = rng.random(4000) < 0.5
    scores = np.where(included, 1e6 + rng.random(4000), -1e6)
    estimate = gaussian_dp_estimate(scores, included, flag_fraction=0.3, delta=1e-5)
    assert estimate.false_positives == 0 and estimate.true_positives > 0.5 * estimate.num_positives
    assert estimate.mu_lower > 2.5 and estimate.mu_upper is None and estimate.epsilon_lower > 8  # measured 2.89


def test_planned_fraction_flags_half_the_canaries_when_the_scores_separate():
    # Scores that separate perfectly are best used by flagging every included canary (about half).
    rng = np.random.default_rng(3)
    scores, included = _gaussian_scores(rng, mu=10.0, num_canaries=20000)
    assert plan_gaussian_dp_fraction(scores, included, num_positives=9000, num_negatives=9000) == 0.5
    with pytest.raises(ValueError, match=r"fractions must be a fraction in \(0, 1\)"):
        plan_gaussian_dp_fraction(scores, included, num_positives=9000, num_negatives=9000, fractions=(0.1, 1.0))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"flag_fraction": 1.0}, r"flag_fraction must be a fraction in \(0, 1\)"),
        ({"calibration_fraction": 0.0}, r"calibration_fraction must be a fraction in \(0, 1\)"),
        ({"delta": 0.0}, r"delta must be in \(0, 1\)"),
        ({"scores": np.zeros(5)}, "scores and is_included must be 1-D of equal length"),
        ({"is_included": np.ones(10, bool)}, "both included and excluded"),
    ],
)
def test_estimate_refuses_bad_arguments(change, message):
    arguments = {"scores": np.arange(10.0), "is_included": np.arange(10) % 2 == 0, "flag_fraction": 0.2,
                 "delta": 1e-5, **change}
    with pytest.raises(ValueError, match=message):
        gaussian_dp_estimate(**arguments)
