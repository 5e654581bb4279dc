"""Empirical lower bounds on epsilon from the success of a membership attack.

An accountant proves an upper bound: the training run is (epsilon, delta)-DP. An attack that tells members
from non-members too well refutes every smaller epsilon, with a stated confidence. The two bounds here
are hypothesis tests of the claim "the run is (epsilon, delta)-DP" at significance `alpha`:

- `epsilon_lower_bound_clopper_pearson` (Jagielski, Ullman & Oprea 2020): many trainings, or many
  independent trials, each giving a true/false positive; exact binomial confidence intervals.
- `epsilon_lower_bound_one_run` (Steinke, Nasr & Jagielski 2023): one training run with m canaries,
  each included independently with probability 1/2; the auditor guesses some of them.
- `gaussian_dp_lower_bound_one_run` (Mahloujifar, Melis & Chaudhuri 2024, "Auditing f-Differential
  Privacy in One Run"): the same guesses tested against the trade-off curve of mu-Gaussian DP instead
  of (epsilon, delta)-DP. It has no 2 m delta term, so it is not capped near 6 at delta = 1e-5, and it is
  tighter for mechanisms whose curve is Gaussian-shaped, as DP-SGD's nearly is; but it refutes "the
  run is mu-GDP", a stronger claim than (epsilon, delta)-DP: the epsilon it reports (the epsilon at
  delta of the rejected mu) is a lower bound for mechanisms with a Gaussian curve only.
  `fdp_one_run_margin` is that test for any trade-off curve; `privgan.audit.fdp` runs it against
  DP-SGD's own curve, the accountant's claim.
- `gaussian_dp_mu_interval`: a confidence interval for the Gaussian-DP mu of one threshold test whose
  trials (canaries) are independent, as in `epsilon_lower_bound_clopper_pearson`. A mu-GDP mechanism
  forces Phi^-1(TPR) - Phi^-1(FPR) <= mu for every test, so the interval's lower end is a lower bound on
  the mechanism's mu: the Gaussian-DP estimate of mu with its confidence interval.
"""

import math

import dp_accounting
import numpy as np
from scipy import optimize, special, stats


def _check_count(name, value, *, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def _check_guess_counts(num_canaries, num_guesses, num_correct):
    _check_count("num_canaries", num_canaries, low=1, high=math.inf)
    _check_count("num_guesses", num_guesses, low=0, high=num_canaries)
    _check_count("num_correct", num_correct, low=0, high=num_guesses)


def _check_delta_alpha(delta, alpha):
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def epsilon_lower_bound_clopper_pearson(
    *,
    true_positives: int,
    false_positives: int,
    num_positives: int,
    num_negatives: int,
    delta: float,
    alpha: float = 0.05,
) -> float:
    """Lower bound on epsilon from an attack's true and false positive counts (Jagielski et al. 2020).

    An (epsilon, delta)-DP mechanism forces TPR <= e^epsilon * FPR + delta for every test that tells
    "trained with the record" from "trained without it". With two-sided Clopper-Pearson intervals at
    confidence 1 - alpha for both rates, the bound is

        epsilon >= ln((TPR_lower - delta) / FPR_upper),

    clipped at 0 (an attack no better than chance refutes nothing).

    Args:
        true_positives: positives (trained with the record) that the attack flagged, in [0, num_positives].
        false_positives: negatives (trained without it) that the attack flagged, in [0, num_negatives].
        num_positives: number of positive trials, >= 1.
        num_negatives: number of negative trials, >= 1.
        delta: the delta of the claim under test, in [0, 1).
        alpha: significance, in (0, 1); each interval has confidence 1 - alpha.

    Returns:
        The epsilon lower bound, >= 0.

    Raises:
        TypeError: if a count is not an integer.
        ValueError: if a count, delta or alpha is out of range.
    """
    _check_count("num_positives", num_positives, low=1, high=math.inf)
    _check_count("num_negatives", num_negatives, low=1, high=math.inf)
    _check_count("true_positives", true_positives, low=0, high=num_positives)
    _check_count("false_positives", false_positives, low=0, high=num_negatives)
    _check_delta_alpha(delta, alpha)

    # Clopper-Pearson bounds are quantiles of Beta distributions; at the edges they are exactly 0 or 1.
    if true_positives == 0:
        tpr_lower = 0.0
    else:
        tpr_lower = stats.beta.ppf(alpha / 2, true_positives, num_positives - true_positives + 1)
    if false_positives == num_negatives:
        fpr_upper = 1.0
    else:
        fpr_upper = stats.beta.ppf(1 - alpha / 2, false_positives + 1, num_negatives - false_positives)
    if tpr_lower <= delta:
        return 0.0
    return max(0.0, float(math.log((tpr_lower - delta) / fpr_upper)))


def one_run_p_value(
    *, num_canaries: int, num_guesses: int, num_correct: int, epsilon: float, delta: float
) -> float:
    """Probability of at least `num_correct` correct guesses if the run were (epsilon, delta)-DP.

    Theorem 5.2 of Steinke, Nasr & Jagielski (2023): with m canaries each included independently with
    probability 1/2 and r guesses, an epsilon-DP run makes each guess correct with probability at most
    q = e^epsilon / (1 + e^epsilon), so the number W of correct guesses is stochastically dominated by
    Binomial(r, q). The delta part of the guarantee adds at most 2 m delta times the largest slope

        a = max_{i=1..v} (1/i) P[v > Binomial(r, q) >= v - i]

    so that P[W >= v] <= P[Binomial(r, q) >= v] + 2 m delta a.

    Args:
        num_canaries: m, the number of canaries, >= 1.
        num_guesses: r, guesses made (abstentions excluded), in [0, m].
        num_correct: v, correct guesses, in [0, r].
        epsilon: the epsilon of the claim under test, >= 0.
        delta: the delta of the claim under test, in [0, 1).

    Returns:
        The p-value, in [0, 1].

    Raises:
        TypeError: if a count is not an integer.
        ValueError: if a count, epsilon or delta is out of range.
    """
    _check_guess_counts(num_canaries, num_guesses, num_correct)
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}")

    q = special.expit(epsilon)  # accuracy of epsilon-DP randomized response
    p_value = stats.binom.sf(num_correct - 1, num_guesses, q)
    if delta > 0 and num_correct > 0:
        i = np.arange(1, num_correct + 1)
        # P[v > Binomial >= v - i] as running sums of the pmf, which keeps precision where the cdf is ~1.
        band = np.cumsum(stats.binom.pmf(num_correct - i, num_guesses, q))
        p_value += 2 * num_canaries * delta * np.max(band / i)
    return float(min(p_value, 1.0))


def epsilon_lower_bound_one_run(
    *, num_canaries: int, num_guesses: int, num_correct: int, delta: float, alpha: float = 0.05
) -> float:
    """Lower bound on epsilon from one training run with randomly included canaries (Steinke et al. 2023).

    The largest epsilon whose (epsilon, delta)-DP claim is rejected at significance alpha, i.e. whose
    `one_run_p_value` is below alpha; 0 if even epsilon = 0 is not rejected.

    Args:
        num_canaries: m, the number of canaries, each included with probability 1/2; >= 1.
        num_guesses: r, guesses made (abstentions excluded), in [0, m].
        num_correct: v, correct guesses, in [0, r].
        delta: the delta of the claim under test, in [0, 1).
        alpha: significance, in (0, 1).

    Returns:
        The epsilon lower bound, >= 0.

    Raises:
        TypeError: if a count is not an integer.
        ValueError: if a count, delta or alpha is out of range.
    """
    _check_delta_alpha(delta, alpha)

    def margin(epsilon):
        # Positive while the claim "(epsilon, delta)-DP" is still rejected.
        return alpha - one_run_p_value(
            num_canaries=num_canaries,
            num_guesses=num_guesses,
            num_correct=num_correct,
            epsilon=epsilon,
            delta=delta,
        )

    if margin(0.0) <= 0:
        return 0.0
    low, high = 0.0, 1.0
    # The p-value tends to 1 as epsilon grows (every guess may then be right), so this ends.
    while margin(high) > 0:
        low, high = high, 2 * high
    return float(optimize.brentq(margin, low, high, xtol=1e-9))


def fdp_one_run_margin(*, num_canaries, num_guesses, num_correct, blow_up_inverse, alpha):
    """Positive when v correct guesses out of r reject "the run is f-DP" at significance alpha.

    The numerical test of Mahloujifar, Melis & Chaudhuri (2024): under an f-DP mechanism, walk down from
    v correct guesses to 0 with r_i (probability mass of runs with i correct guesses among the
    rejected ones) and h_i (that of their wrong guesses), starting at r_v = alpha v / m and
    h_v = alpha (r - v) / m, with

        h_i = max(h_{i+1}, blow_up_inverse(r_{i+1})),  r_i = r_{i+1} + i / (r - i) (h_i - h_{i+1}).

    The claim is consistent with the observation iff r_0 + h_0 <= r / m.

    Args:
        num_canaries: m.
        num_guesses: r.
        num_correct: v.
        blow_up_inverse: x -> the least probability that an event of probability x under one of two
            neighbouring inputs can have under the other, for a symmetric trade-off curve f: f(1 - x)
            (for mu-GDP, Phi(Phi^-1(x) - mu)). A smaller function (a weaker claim) keeps the test valid.
        alpha: significance.

    Returns:
        r_0 + h_0 - r / m: positive when the claim is rejected.
    """
    ratio_mass = alpha * num_correct / num_canaries
    wrong_mass = alpha * (num_guesses - num_correct) / num_canaries
    for i in range(num_correct - 1, -1, -1):
        blown = blow_up_inverse(ratio_mass)
        if blown <= wrong_mass:
            break  # h stays, so r stays: nothing changes from here down
        # r can only reach 1 when the claim is already rejected; capping keeps Phi^-1 finite.
        ratio_mass = min(ratio_mass + i / (num_guesses - i) * (blown - wrong_mass), 1.0)
        wrong_mass = blown
    return ratio_mass + wrong_mass - num_guesses / num_canaries


def _gaussian_dp_margin(*, num_canaries, num_guesses, num_correct, mu, alpha):
    # mu-GDP's curve f(x) = Phi(Phi^-1(1 - x) - mu), so f(1 - x) = Phi(Phi^-1(x) - mu).
    return fdp_one_run_margin(
        num_canaries=num_canaries, num_guesses=num_guesses, num_correct=num_correct, alpha=alpha,
        blow_up_inverse=lambda x: float(special.ndtr(special.ndtri(x) - mu)),
    )


def gaussian_dp_lower_bound_one_run(
    *, num_canaries: int, num_guesses: int, num_correct: int, delta: float, alpha: float = 0.05
) -> tuple:
    """Lower bounds on mu (Gaussian DP) and on its epsilon from one run (Mahloujifar, Melis & Chaudhuri 2024).

    The largest mu whose mu-GDP claim is rejected at significance alpha by v correct guesses out of r
    on m canaries, each included independently with probability 1/2 (the guesses may say "included"
    or "excluded", as for `epsilon_lower_bound_one_run`), and the epsilon at `delta` of a mu-GDP
    mechanism (a Gaussian mechanism with noise multiplier 1 / mu), from dp-accounting.

    Args:
        num_canaries: m, the number of canaries, >= 1.
        num_guesses: r, guesses made (abstentions excluded), in [0, m].
        num_correct: v, correct guesses, in [0, r].
        delta: the delta of the reported epsilon, in (0, 1).
        alpha: significance, in (0, 1).

    Returns:
        `(mu, epsilon)`, both >= 0 (0 when even mu -> 0 is not rejected).

    Raises:
        TypeError: if a count is not an integer.
        ValueError: if a count, delta or alpha is out of range.
    """
    _check_guess_counts(num_canaries, num_guesses, num_correct)
    _check_delta_alpha(delta, alpha)
    if delta == 0:
        raise ValueError("delta must be in (0, 1) for the Gaussian-DP bound (its epsilon at delta = 0 is infinite)")

    def margin(mu):
        return _gaussian_dp_margin(
            num_canaries=num_canaries, num_guesses=num_guesses, num_correct=num_correct, mu=mu, alpha=alpha
        )

    if num_correct == 0 or margin(1e-9) <= 0:
        return 0.0, 0.0
    low, high = 1e-9, 1.0
    # As mu grows the blow-up inverse vanishes and r_0 + h_0 falls to alpha r / m < r / m, so this ends.
    while margin(high) > 0:
        low, high = high, 2 * high
    mu = float(optimize.brentq(margin, low, high, xtol=1e-9))
    return mu, float(dp_accounting.get_epsilon_gaussian(1 / mu, delta))


def _clopper_pearson(successes, trials, tail):
    # One-sided Clopper-Pearson limits at `tail`: exactly 0 or 1 at the edges.
    lower = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    upper = 1.0 if successes == trials else float(stats.beta.ppf(1 - tail, successes + 1, trials - successes))
    return lower, upper


def gaussian_dp_mu_interval(
    *, true_positives: int, false_positives: int, num_positives: int, num_negatives: int, alpha: float = 0.05
) -> tuple:
    """Confidence interval for the Gaussian-DP mu of one threshold test over independent trials.

    A test of "with the record" (positives) against "without it" (negatives) that flags a positive with
    probability TPR and a negative with probability FPR has the Gaussian-DP parameter
    mu_test = Phi^-1(TPR) - Phi^-1(FPR), and a mu-GDP mechanism forces mu_test <= mu for every test
    (Dong, Roth & Su 2022). With the flagged counts of independent trials and one-sided Clopper-Pearson
    limits at alpha / 4 on each rate,

        lower = Phi^-1(TPR_lower) - Phi^-1(FPR_upper),  upper = Phi^-1(TPR_upper) - Phi^-1(FPR_lower)

    is a confidence interval for mu_test at level 1 - alpha (its lower end alone at 1 - alpha / 2), so a
    lower end above mu refutes "the mechanism is mu-GDP". The threshold must be fixed before the trials
    are seen (e.g. planned on a simulation), or the candidates share alpha. The estimate is the plug-in
    Phi^-1(TP / P) - Phi^-1(FP / N), with counts of 0 or all moved half a trial inwards so it is finite.

    Args:
        true_positives: positives flagged, in [0, num_positives].
        false_positives: negatives flagged, in [0, num_negatives].
        num_positives: number of positive trials, >= 1.
        num_negatives: number of negative trials, >= 1.
        alpha: 1 - confidence of the interval, in (0, 1).

    Returns:
        `(lower, estimate, upper)`: lower >= 0 (0 when the test refutes nothing), upper possibly inf (no
        false positive, or every positive flagged).

    Raises:
        TypeError: if a count is not an integer.
        ValueError: if a count or alpha is out of range.
    """
    _check_count("num_positives", num_positives, low=1, high=math.inf)
    _check_count("num_negatives", num_negatives, low=1, high=math.inf)
    _check_count("true_positives", true_positives, low=0, high=num_positives)
    _check_count("false_positives", false_positives, low=0, high=num_negatives)
    _check_delta_alpha(0.0, alpha)
    tpr_lower, tpr_upper = _clopper_pearson(true_positives, num_positives, alpha / 4)
    fpr_lower, fpr_upper = _clopper_pearson(false_positives, num_negatives, alpha / 4)
    lower = float(special.ndtri(tpr_lower) - special.ndtri(fpr_upper))  # -inf at an edge: refutes nothing
    upper = float(special.ndtri(tpr_upper) - special.ndtri(fpr_lower))  # inf at an edge

    def rate(count, total):
        return min(max(count, 0.5), total - 0.5) / total

    estimate = float(special.ndtri(rate(true_positives, num_positives)) - special.ndtri(rate(false_positives,
                                                                                            num_negatives)))
    return max(lower, 0.0), estimate, upper
