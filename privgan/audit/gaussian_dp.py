"""Gaussian-DP estimate of mu from canary scores, with a confidence interval (canaries as independent trials).

The scores of included and excluded canaries are two samples; a threshold on the score is a test of
"included" against "excluded" whose Gaussian-DP parameter mu_test = Phi^-1(TPR) - Phi^-1(FPR) cannot
exceed the mu of a mu-GDP mechanism (`privgan.audit.bounds.gaussian_dp_mu_interval`). For a Gaussian
mechanism the two score distributions are shifted Gaussians and every threshold gives the same mu; for
DP-SGD (a mixture over the steps where a canary is Poisson-sampled) the optimal likelihood-ratio score's
trade-off curve is close to a Gaussian one (the central limit theorem of Dong, Roth & Su 2022), so one
well-placed threshold sees most of mu. The fraction of canaries to flag is planned on scores simulated
from the claimed mechanism (public sigma, q, T and fresh randomness), so choosing it costs no
confidence; the threshold itself is read off the scores of a calibration tenth of the canaries, which
are then left out of the counts, so that the test is fixed before the canaries it counts are seen.

Assumptions of the lower end (the lower bound on mu): the canaries' outcomes are independent given
their inclusion, each included with probability 1/2 independently (as `independent_trials_bound`
assumes: true for gradient-space canaries on disjoint coordinates of a mechanism that adds independent
noise per coordinate and samples examples independently, i.e. DP-SGD as specified). It refutes "the
mechanism is mu-GDP" for every smaller mu at the stated confidence, whatever the scores' distributions;
its epsilon at delta is a lower bound on epsilon for mechanisms with a Gaussian-shaped trade-off curve
only, as for the f-DP one-run bound. The estimate and the upper end describe the chosen test, not the
mechanism (no test can bound a mechanism's privacy from above).
"""

import dataclasses
import math

import dp_accounting
import numpy as np

from privgan.audit.bounds import gaussian_dp_mu_interval

# The share of the canaries that fix the test's threshold (the rest count its true and false positives).
CALIBRATION_FRACTION = 0.1
# Candidate fractions of the canaries above the threshold, when planning it on a simulation.
PLAN_THRESHOLD_FRACTIONS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


@dataclasses.dataclass(frozen=True)
class GaussianDPEstimate:
    """The Gaussian-DP mu of one planned threshold test on canary scores, with its confidence interval.

    Attributes:
        mu_lower: lower end of the interval: the mechanism is not mu-GDP for any mu below it (confidence
            1 - alpha / 2; canaries as independent trials).
        mu_estimate: the plug-in mu of the test, Phi^-1(TPR) - Phi^-1(FPR).
        mu_upper: upper end of the interval for the test's mu; None when unbounded (no false positive, or
            every included canary flagged), which keeps the result JSON-serialisable.
        epsilon_lower: the epsilon at `delta` of a mu_lower-GDP mechanism (a lower bound on epsilon for
            Gaussian-shaped trade-off curves only).
        delta: the delta of `epsilon_lower`.
        alpha: 1 - confidence of the interval.
        score: the score the test thresholds.
        threshold: the threshold (canaries with a larger score are flagged as included), from the
            calibration canaries.
        true_positives: included canaries flagged, among those counted (not the calibration ones).
        false_positives: excluded canaries flagged, among those counted.
        num_positives: included canaries counted.
        num_negatives: excluded canaries counted.
    """

    mu_lower: float
    mu_estimate: float
    mu_upper: float | None
    epsilon_lower: float
    delta: float
    alpha: float
    score: str
    threshold: float
    true_positives: int
    false_positives: int
    num_positives: int
    num_negatives: int

    def __post_init__(self):
        # The lower end is clipped at 0; the upper one is negative for a test worse than chance.
        upper = math.inf if self.mu_upper is None else self.mu_upper
        if not (self.mu_lower >= 0 and (self.mu_lower <= upper or self.mu_lower == 0)):
            raise ValueError(f"mu_lower must be in [0, max(0, mu_upper={self.mu_upper})], got {self.mu_lower}")
        if not (0 < self.delta < 1 and 0 < self.alpha < 1):
            raise ValueError(f"delta and alpha must be in (0, 1), got {self.delta} and {self.alpha}")
        if not (0 <= self.true_positives <= self.num_positives and 0 <= self.false_positives <= self.num_negatives):
            raise ValueError(f"flagged counts must be within the canaries, got {self.true_positives}/"
                             f"{self.num_positives} and {self.false_positives}/{self.num_negatives}")

    def describe(self) -> str:
        """One line: mu's interval, its point estimate and the epsilon of the lower end."""
        confidence = f"{1 - self.alpha:.1%}"
        upper = "unbounded" if self.mu_upper is None else f"{self.mu_upper:.3f}"
        return (f"mu in [{self.mu_lower:.3f}, {upper}] ({confidence}), estimate {self.mu_estimate:.3f}; "
                f"epsilon {self.epsilon_lower:.3f} if the curve is Gaussian: {self.true_positives}/"
                f"{self.num_positives} included and {self.false_positives}/{self.num_negatives} excluded canaries "
                f"above the threshold ({self.score})")


def _split(scores, is_included):
    scores, is_included = np.asarray(scores, dtype=np.float64), np.asarray(is_included, dtype=bool)
    if scores.ndim != 1 or scores.shape != is_included.shape:
        raise ValueError(f"scores and is_included must be 1-D of equal length, got {scores.shape} and "
                         f"{is_included.shape}")
    if is_included.all() or not is_included.any():
        raise ValueError("is_included must hold both included and excluded canaries")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    return scores[is_included], scores[~is_included]


def _expected_lower(included, excluded, fraction, *, num_positives, num_negatives, alpha):
    # The lower end a pessimistic real audit would get if its rates were the simulation's, at its own
    # sizes: counts moved one binomial standard deviation against the test, so that a test with few
    # false positives (whose real lower end varies most from run to run) wins only by a clear margin.
    threshold = np.quantile(np.concatenate([included, excluded]), 1 - fraction)
    tpr, fpr = np.mean(included > threshold), np.mean(excluded > threshold)
    true_positives = tpr * num_positives - math.sqrt(tpr * (1 - tpr) * num_positives)
    false_positives = fpr * num_negatives + math.sqrt(fpr * (1 - fpr) * num_negatives)
    return gaussian_dp_mu_interval(
        true_positives=int(np.clip(round(true_positives), 0, num_positives)),
        false_positives=int(np.clip(round(false_positives), 0, num_negatives)),
        num_positives=num_positives, num_negatives=num_negatives, alpha=alpha,
    )[0]


def _check_fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a fraction in (0, 1), got {value!r}")


def calibration_size(num_canaries: int, calibration_fraction: float = CALIBRATION_FRACTION) -> int:
    """How many canaries (the first ones) fix the threshold of `gaussian_dp_estimate`; ValueError if none or all."""
    size = math.ceil(calibration_fraction * num_canaries)
    if not 1 <= size <= num_canaries - 2:
        raise ValueError(f"calibration_fraction={calibration_fraction} of {num_canaries} canaries leaves no "
                         "canaries to calibrate on or too few to test on")
    return size


def plan_gaussian_dp_fraction(
    scores, is_included, *, num_positives: int, num_negatives: int, alpha: float = 0.05,
    fractions=PLAN_THRESHOLD_FRACTIONS,
) -> float:
    """The fraction of canaries to flag whose test gives the largest lower end of mu on simulated scores.

    Meant for scores simulated from the claimed mechanism before the audit (public parameters only), so
    that choosing it costs the real audit no confidence. Each candidate flags that fraction of the
    simulated canaries; its lower end is computed at the real test's numbers of canaries, with the
    counts moved one standard deviation against the test (a pessimistic run), which keeps the noisy
    small-count tests from winning on the simulation's luck.

    Args:
        scores: simulated scores, shape (n,), higher = more likely included.
        is_included: the simulated inclusion, shape (n,), both values present.
        num_positives: included canaries the real test will count, >= 1.
        num_negatives: excluded canaries the real test will count, >= 1.
        alpha: the alpha the real audit will use, in (0, 1).
        fractions: candidate fractions, each in (0, 1).

    Returns:
        The fraction, one of `fractions` (the largest among equally good ones: when the simulation sees
        nothing, e.g. a score meant for a fault, flagging half is the test least at the mercy of a few
        canaries).

    Raises:
        ValueError: for bad shapes, one-sided inclusion, non-finite scores or a fraction out of range.
    """
    included, excluded = _split(scores, is_included)
    if not fractions:
        raise ValueError("fractions must be non-empty")
    for fraction in fractions:
        _check_fraction("fractions", fraction)
    fractions = sorted(fractions, reverse=True)
    expected = [
        _expected_lower(included, excluded, fraction, num_positives=num_positives, num_negatives=num_negatives,
                        alpha=alpha)
        for fraction in fractions
    ]
    return fractions[int(np.argmax(expected))]


def gaussian_dp_estimate(
    scores, is_included, *, flag_fraction: float, delta: float, alpha: float = 0.05,
    calibration_fraction: float = CALIBRATION_FRACTION, score: str = "score",
) -> GaussianDPEstimate:
    """The Gaussian-DP mu of a threshold test on the audit's canaries, with its confidence interval.

    The first `calibration_fraction` of the canaries fix the threshold: the score above which
    `flag_fraction` of them lie (their inclusion is not used). The test is then counted on the other
    canaries only, so that its threshold does not depend on them and their flagged counts are exact
    binomials (given independent canaries). A threshold read off the scores adapts to a broken mechanism
    whose scores have another scale than the simulation's, where a threshold taken from the simulation
    would flag nothing.

    Args:
        scores: one score per canary, shape (m,), higher = more likely included.
        is_included: whether each canary was included, shape (m,), both values present among the canaries
            after the calibration ones.
        flag_fraction: the fraction of canaries to flag, in (0, 1), fixed before the scores were seen
            (`plan_gaussian_dp_fraction`).
        delta: the delta of the reported epsilon, in (0, 1).
        alpha: 1 - confidence of the interval, in (0, 1).
        calibration_fraction: the fraction of canaries (the first ones) that fix the threshold, in (0, 1).
        score: the score's name, for the report.

    Returns:
        A `GaussianDPEstimate`.

    Raises:
        ValueError: for bad shapes, one-sided inclusion, non-finite scores, or a fraction, delta or alpha out
            of range.
    """
    scores, is_included = np.asarray(scores, dtype=np.float64), np.asarray(is_included, dtype=bool)
    _check_fraction("flag_fraction", flag_fraction)
    _check_fraction("calibration_fraction", calibration_fraction)
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    _split(scores, is_included)  # shapes and finiteness
    calibration = calibration_size(scores.size, calibration_fraction)
    threshold = float(np.quantile(scores[:calibration], 1 - flag_fraction))
    included, excluded = _split(scores[calibration:], is_included[calibration:])
    true_positives, false_positives = int(np.sum(included > threshold)), int(np.sum(excluded > threshold))
    lower, estimate, upper = gaussian_dp_mu_interval(
        true_positives=true_positives, false_positives=false_positives, num_positives=included.size,
        num_negatives=excluded.size, alpha=alpha,
    )
    epsilon = 0.0 if lower == 0 else float(dp_accounting.get_epsilon_gaussian(1 / lower, delta))
    return GaussianDPEstimate(
        mu_lower=lower, mu_estimate=estimate, mu_upper=upper if math.isfinite(upper) else None,
        epsilon_lower=epsilon, delta=delta, alpha=alpha,
        score=score, threshold=threshold, true_positives=true_positives, false_positives=false_positives,
        num_positives=int(included.size), num_negatives=int(excluded.size),
    )
