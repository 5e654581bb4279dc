import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from privgan.audit import (
    epsilon_lower_bound_clopper_pearson,
    epsilon_lower_bound_one_run,
    one_run_p_value,
)


# --- Clopper-Pearson (Jagielski et al. 2020) ---------------------------------------------------------


def test_clopper_pearson_perfect_attack_matches_closed_form():
    # With TP = P and FP = 0 the exact intervals have closed forms:
    # TPR_lower = (alpha/2)^(1/P) and FPR_upper = 1 - (alpha/2)^(1/N).
    alpha, delta, positives, negatives = 0.05, 1e-5, 100, 200
    expected = math.log(
        ((alpha / 2) ** (1 / positives) - delta) / (1 - (alpha / 2) ** (1 / negatives))
    )
    bound = epsilon_lower_bound_clopper_pearson(
        true_positives=positives,
        false_positives=0,
        num_positives=positives,
        num_negatives=negatives,
        delta=delta,
        alpha=alpha,
    )
    assert bound == pytest.approx(expected, rel=1e-9)


def test_clopper_pearson_matches_binomial_tail_definition():
    # Exact intervals by definition: the p at which observing k (or more / or fewer) has tail alpha/2.
    tp, positives, fp, negatives, alpha, delta = 90, 100, 10, 100, 0.05, 1e-3
    tpr_lower = optimize.brentq(lambda p: stats.binom.sf(tp - 1, positives, p) - alpha / 2, 1e-9, 1 - 1e-9)
    fpr_upper = optimize.brentq(lambda p: stats.binom.cdf(fp, negatives, p) - alpha / 2, 1e-9, 1 - 1e-9)
    expected = math.log((tpr_lower - delta) / fpr_upper)
    bound = epsilon_lower_bound_clopper_pearson(
        true_positives=tp, false_positives=fp, num_positives=positives, num_negatives=negatives,
        delta=delta, alpha=alpha,
    )
    assert bound == pytest.approx(expected, rel=1e-6)
    assert 1.0 < bound < 3.0


def test_clopper_pearson_chance_attack_gives_zero():
    assert epsilon_lower_bound_clopper_pearson(
        true_positives=50, false_positives=50, num_positives=100, num_negatives=100, delta=1e-5
    ) == 0.0


def test_clopper_pearson_grows_with_true_positives_and_shrinks_with_delta():
    def bound(tp, delta):
        return epsilon_lower_bound_clopper_pearson(
            true_positives=tp, false_positives=5, num_positives=200, num_negatives=200, delta=delta
        )

    by_tp = [bound(tp, 1e-5) for tp in (60, 100, 150, 200)]
    assert all(a < b for a, b in zip(by_tp, by_tp[1:]))
    by_delta = [bound(150, delta) for delta in (0.0, 0.1, 0.3)]
    assert all(a > b for a, b in zip(by_delta, by_delta[1:]))


def test_clopper_pearson_is_valid_at_its_confidence():
    # An attack on an exactly epsilon-DP test (TPR = e^eps FPR) must rarely refute epsilon.
    rng = np.random.default_rng(0)
    epsilon, fpr, trials = 1.0, 0.1, 400
    tpr = math.exp(epsilon) * fpr
    bounds = [
        epsilon_lower_bound_clopper_pearson(
            true_positives=int(rng.binomial(500, tpr)), false_positives=int(rng.binomial(500, fpr)),
            num_positives=500, num_negatives=500, delta=0.0,
        )
        for _ in range(trials)
    ]
    assert np.mean(np.array(bounds) > epsilon) <= 0.05
    assert np.median(bounds) > 0.4  # and it has power


# --- One run (Steinke, Nasr & Jagielski 2023) -------------------------------------------------------


def test_one_run_all_correct_without_delta_matches_closed_form():
    # v = r correct: p-value q^r with q = e^eps/(1+e^eps), so eps_LB = logit(alpha^(1/r)).
    for guesses, alpha in [(100, 0.05), (20, 0.01)]:
        expected = special.logit(alpha ** (1 / guesses))
        bound = epsilon_lower_bound_one_run(
            num_canaries=1000, num_guesses=guesses, num_correct=guesses, delta=0.0, alpha=alpha
        )
        assert bound == pytest.approx(expected, abs=1e-6)
    assert epsilon_lower_bound_one_run(
        num_canaries=1000, num_guesses=100, num_correct=100, delta=0.0
    ) == pytest.approx(3.49296543, abs=1e-6)


@pytest.mark.parametrize("guesses,correct", [(2, 2), (3, 2)])
def test_one_run_p_value_with_delta_matches_hand_computation(guesses, correct):
    # Theorem: p = P[Bin(r,q) >= v] + 2 m delta max_i (1/i) P[v > Bin(r,q) >= v - i], written out by hand.
    m, epsilon, delta = 10, 1.0, 0.01
    q = math.exp(epsilon) / (1 + math.exp(epsilon))
    if guesses == 2:  # v = 2 of r = 2
        tail = q**2
        bands = [2 * q * (1 - q), (2 * q * (1 - q) + (1 - q) ** 2) / 2]
    else:  # v = 2 of r = 3
        tail = 3 * q**2 * (1 - q) + q**3
        bands = [3 * q * (1 - q) ** 2, (3 * q * (1 - q) ** 2 + (1 - q) ** 3) / 2]
    expected = tail + 2 * m * delta * max(bands)
    p_value = one_run_p_value(
        num_canaries=m, num_guesses=guesses, num_correct=correct, epsilon=epsilon, delta=delta
    )
    assert p_value == pytest.approx(expected, rel=1e-12)


def test_one_run_bound_is_where_p_value_crosses_alpha():
    kwargs = dict(num_canaries=1000, num_guesses=200, num_correct=170, delta=1e-5)
    bound = epsilon_lower_bound_one_run(**kwargs, alpha=0.05)
    assert bound > 0
    assert one_run_p_value(**kwargs, epsilon=bound - 1e-4) < 0.05
    assert one_run_p_value(**kwargs, epsilon=bound + 1e-4) >= 0.05


def test_one_run_grows_with_correct_guesses_and_shrinks_with_delta():
    def bound(correct, delta):
        return epsilon_lower_bound_one_run(
            num_canaries=1000, num_guesses=100, num_correct=correct, delta=delta
        )

    by_correct = [bound(v, 1e-5) for v in (70, 80, 90, 100)]
    assert all(a < b for a, b in zip(by_correct, by_correct[1:]))
    by_delta = [bound(90, delta) for delta in (0.0, 1e-4, 1e-3)]
    assert all(a > b for a, b in zip(by_delta, by_delta[1:]))
    assert bound(50, 1e-5) == 0.0  # chance-level guessing refutes nothing


def test_one_run_is_valid_at_its_confidence():
    # Guesses as good as epsilon-DP randomized response allows must rarely refute epsilon.
    rng = np.random.default_rng(0)
    epsilon, guesses = 1.0, 500
    correct = rng.binomial(guesses, special.expit(epsilon), size=300)
    bounds = np.array([
        epsilon_lower_bound_one_run(num_canaries=1000, num_guesses=guesses, num_correct=int(v), delta=0.0)
        for v in correct
    ])
    assert np.mean(bounds > epsilon) <= 0.05
    assert np.median(bounds) > 0.6


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(delta=1.5), ValueError, "delta must be in"),
        (dict(alpha=0.0), ValueError, "alpha must be in"),
        (dict(num_correct=11), ValueError, "num_correct must be in"),
        (dict(num_guesses=2000), ValueError, "num_guesses must be in"),
        (dict(num_correct=5.0), TypeError, "num_correct must be an integer"),
    ],
)
def test_one_run_rejects_bad_arguments(kwargs, error, match):
    arguments = dict(num_canaries=1000, num_guesses=10, num_correct=5, delta=1e-5, alpha=0.05)
    with pytest.raises(error, match=match):
        epsilon_lower_bound_one_run(**{**arguments, **kwargs})


def test_clopper_pearson_rejects_bad_arguments():
    with pytest.raises(ValueError, match="false_positives must be in"):
        epsilon_lower_bound_clopper_pearson(
            true_positives=1, false_positives=11, num_positives=10, num_negatives=10, delta=0.0
        )
