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


# --- f-DP one run (Mahloujifar, Melis & Chaudhuri 2024) ----------------------------------------------


def _paper_rejects(m, guesses, correct, mu, alpha):
    # Written from the paper's numerical test, independently of privgan's loop: tables r[i], h[i] for
    # i = correct .. 0 over an alphabet of k = 2 values (the canary's bit), threshold tau = alpha c' / m,
    # r[c] = tau c / c', h[c] = tau (c' - c) / c', no early exit and no cap; the claim "mu-GDP" survives
    # iff r[0] + h[0] <= c' / m.
    k = 2
    inverse_blow_up = lambda x: special.ndtr(special.ndtri(min(x, 1.0)) - mu)  # noqa: E731
    tau = alpha * guesses / m
    r = [0.0] * (correct + 1)
    h = [0.0] * (correct + 1)
    r[correct], h[correct] = tau * correct / guesses, tau * (guesses - correct) / guesses
    for i in range(correct - 1, -1, -1):
        h[i] = max(h[i + 1], (k - 1) * inverse_blow_up(r[i + 1]))
        r[i] = r[i + 1] + i / (guesses - i) * (h[i] - h[i + 1])
    return r[0] + h[0] > guesses / m


def _paper_mu_bound(m, guesses, correct, alpha):
    # Bisection on the paper's test (rejection is monotone: a larger mu allows more correct guesses).
    low, high = 0.0, 20.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if _paper_rejects(m, guesses, correct, middle, alpha) else (low, middle)
    return low


@pytest.mark.parametrize(
    "m, guesses, correct, alpha",
    [(1000, 100, 100, 0.05), (1000, 100, 90, 0.05), (10_000, 300, 282, 0.0125), (10_000, 200, 164, 0.05),
     (500, 60, 41, 0.1)],
)
def test_gaussian_dp_bound_matches_the_papers_test(m, guesses, correct, alpha):
    from privgan.audit import gaussian_dp_lower_bound_one_run

    mu, epsilon = gaussian_dp_lower_bound_one_run(
        num_canaries=m, num_guesses=guesses, num_correct=correct, delta=1e-5, alpha=alpha
    )
    assert mu == pytest.approx(_paper_mu_bound(m, guesses, correct, alpha), abs=1e-6)
    assert mu > 0
    # Just below the bound the paper's test rejects mu-GDP; just above it does not.
    assert _paper_rejects(m, guesses, correct, mu - 1e-4, alpha)
    assert not _paper_rejects(m, guesses, correct, mu + 1e-4, alpha)
    # The epsilon is that of a Gaussian mechanism with noise multiplier 1 / mu at delta: its delta(epsilon)
    # (Balle & Wang 2018) is Phi(-eps / mu + mu / 2) - e^eps Phi(-eps / mu - mu / 2).
    gaussian_delta = stats.norm.cdf(-epsilon / mu + mu / 2) - math.exp(epsilon) * stats.norm.cdf(-epsilon / mu - mu / 2)
    assert gaussian_delta == pytest.approx(1e-5, rel=1e-4)


def test_gaussian_dp_bound_with_one_correct_guess_has_a_closed_form():
    # With v = 1 the recursion has one step: h_0 = max(alpha (r - 1) / m, Phi(Phi^-1(alpha / m) - mu)),
    # r_0 = alpha / m, and mu-GDP is rejected iff r_0 + h_0 > r / m: with r = 1 iff
    # Phi(Phi^-1(alpha / m) - mu) > (1 - alpha) / m, i.e. mu < Phi^-1(alpha / m) - Phi^-1((1 - alpha) / m),
    # which is negative: one guess out of one never rejects anything.
    from privgan.audit import gaussian_dp_lower_bound_one_run

    assert stats.norm.ppf(0.05 / 10) - stats.norm.ppf(0.95 / 10) < 0
    assert gaussian_dp_lower_bound_one_run(num_canaries=10, num_guesses=1, num_correct=1, delta=1e-5) == (0.0, 0.0)
    assert gaussian_dp_lower_bound_one_run(num_canaries=10, num_guesses=5, num_correct=0, delta=1e-5) == (0.0, 0.0)


def test_gaussian_dp_bound_is_valid_and_informative_on_a_gaussian_mechanism():
    # 200 simulated one-run audits of an exactly mu-GDP mechanism (mu = 1): canary j's observation is
    # N(mu b_j, 1). Guessing the 50 highest "included" and the 50 lowest "excluded", the bound must exceed
    # the true mu in at most about alpha of the runs, and should see most of it.
    from privgan.audit import gaussian_dp_lower_bound_one_run

    rng = np.random.default_rng(0)
    mu, alpha, m = 1.0, 0.1, 1000
    bounds = []
    for _ in range(200):
        included = rng.random(m) < 0.5
        order = np.argsort(-(rng.normal(size=m) + mu * included))
        correct = int(included[order[:50]].sum() + (~included[order[-50:]]).sum())
        bounds.append(gaussian_dp_lower_bound_one_run(
            num_canaries=m, num_guesses=100, num_correct=correct, delta=1e-5, alpha=alpha
        )[0])
    bounds = np.array(bounds)
    assert np.mean(bounds > mu) <= alpha  # measured 0 of 200 (largest 0.98)
    assert np.median(bounds) > 0.4 * mu  # measured 0.66


def test_gaussian_dp_bound_refuses_bad_arguments():
    from privgan.audit import gaussian_dp_lower_bound_one_run

    with pytest.raises(ValueError, match="num_correct must be in"):
        gaussian_dp_lower_bound_one_run(num_canaries=10, num_guesses=5, num_correct=6, delta=1e-5)
    with pytest.raises(ValueError, match="delta must be in"):
        gaussian_dp_lower_bound_one_run(num_canaries=10, num_guesses=5, num_correct=5, delta=0.0)
