"""The f-DP one-run bound tested against the accountant's own privacy curve of DP-SGD.

Mahloujifar, Melis & Chaudhuri (2024, "Auditing f-Differential Privacy in One Run") test "the run is
f-DP" from the correct guesses of a one-run canary audit (`privgan.audit.bounds.fdp_one_run_margin`), for
any trade-off curve f. Testing mu-Gaussian DP (`gaussian_dp_lower_bound_one_run`) matches DP-SGD's curve
only at one point: a subsampled Gaussian mechanism composed over T steps is less private in the tails
than in the middle, so the mu-GDP curve with the accountant's epsilon at delta = 1e-5 claims more privacy
in the middle than DP-SGD has (little where the guesses are very confident: at the MNIST schedule the two
gave 5.09 and 5.01 from the same guesses), and it is not the accountant's claim, so refuting it shows no
bug. Here the hypotheses are the privacy curves of DP-SGD itself at the audited
sampling probability q and number of steps T, one per noise multiplier sigma': the curve of the
privacy-loss distribution (PLD) that dp-accounting composes for the accountant. The bound is the
smallest sigma' (on a fine geometric grid) whose curve the guesses reject, reported as its accountant's
epsilon at delta: "the run is less private than DP-SGD with noise sigma' at this q and T, whose epsilon
is ...". On a correct mechanism with noise sigma the true curve is at least that of sigma, so every
sigma' >= sigma is rejected with probability at most alpha: the bound stays below the accountant's
epsilon (the claim it refutes is the accountant's own curve, a statement about this mechanism, not
about every (epsilon, delta)-DP mechanism).

The curve comes from the privacy profile delta(epsilon) of the pessimistic PLD on a grid of epsilons:
an (epsilon, delta(epsilon))-DP mechanism for every epsilon is f-DP with f the upper envelope of the
lines 1 - delta - e^epsilon x and e^-epsilon (1 - delta - x) (Dong, Roth & Su 2022, Proposition 2.12).
Every approximation here (pessimistic PLD, a finite epsilon grid, a coarser PLD discretisation than
the accountant's) only lowers f, a weaker claim, so the test stays valid.
"""

import bisect
import dataclasses
import functools
import math

import numpy as np
from dp_accounting.pld import privacy_loss_distribution
from scipy import special

from privgan.accounting import epsilon as accountant_epsilon
from privgan.audit.bounds import fdp_one_run_margin
from privgan.audit.canaries import one_run_guess_outcome

# Epsilons of the privacy profile behind each curve: spacing 0.02 loses at most 3e-4 of f(1 - x) against
# a 10x finer grid (measured at x in [1e-6, 0.99]); epsilons above 60 only matter for runs that are not
# private at all.
_EPSILON_GRID = np.arange(0.0, 60.0, 0.02)
# The PLD's discretisation: 10x coarser than the accountant's (1e-4), ~10x faster, and pessimistic.
_VALUE_DISCRETIZATION_INTERVAL = 1e-3
# Candidate noise multipliers sigma' = NOISE_GRID_RATIO^k: the bound rounds sigma' up by at most 0.2%,
# its epsilon down by about 0.5%.
NOISE_GRID_RATIO = 1.002
# Above this noise multiplier the curves are all but the identity: not rejecting it means no bound.
_MAX_NOISE_MULTIPLIER = 1000.0


class _BlowUpInverse:
    """x -> f(1 - x) for DP-SGD's curve f: the upper envelope of lines, evaluated in O(log lines)."""

    def __init__(self, deltas):
        epsilons = _EPSILON_GRID
        # f(1 - x) >= e^-eps (x - delta) and >= 1 - delta - e^eps (1 - x) for every eps, and >= 0.
        slopes = np.concatenate([np.exp(-epsilons), np.exp(epsilons), [0.0]])
        intercepts = np.concatenate([-np.exp(-epsilons) * deltas, 1.0 - deltas - np.exp(epsilons), [0.0]])
        self._slopes, self._intercepts = [], []
        for slope, intercept in sorted(zip(slopes.tolist(), intercepts.tolist())):
            if self._slopes and slope == self._slopes[-1]:
                self._pop()  # same slope, smaller intercept (sorted): never on top
            while len(self._slopes) >= 2 and self._last_is_hidden(slope, intercept):
                self._pop()
            self._slopes.append(slope)
            self._intercepts.append(intercept)
        # Line k + 1 takes over from line k at breaks[k].
        self._breaks = [(self._intercepts[k] - self._intercepts[k + 1]) / (self._slopes[k + 1] - self._slopes[k])
                        for k in range(len(self._slopes) - 1)]

    def _pop(self):
        self._slopes.pop()
        self._intercepts.pop()

    def _last_is_hidden(self, slope, intercept):
        # The last line never tops the envelope if the new one overtakes the one before it no later.
        s1, c1, s2, c2 = self._slopes[-2], self._intercepts[-2], self._slopes[-1], self._intercepts[-1]
        return (c1 - intercept) * (s2 - s1) <= (c1 - c2) * (slope - s1)

    def __call__(self, x):
        k = bisect.bisect_right(self._breaks, x)
        return max(self._slopes[k] * x + self._intercepts[k], 0.0)


def _privacy_profile(noise_multiplier, sampling_probability, steps):
    # delta(epsilon) on the grid, from dp-accounting's pessimistic PLD of DP-SGD (add or remove one).
    pld = privacy_loss_distribution.from_gaussian_mechanism(
        noise_multiplier, sampling_prob=sampling_probability,
        value_discretization_interval=_VALUE_DISCRETIZATION_INTERVAL,
    ).self_compose(steps)
    return np.clip(np.asarray(pld.get_delta_for_epsilon(_EPSILON_GRID), dtype=np.float64), 0.0, 1.0)


def dp_sgd_blow_up_inverse(*, noise_multiplier: float, sampling_probability: float, steps: int):
    """x -> f(1 - x), for f (a lower bound on) the privacy curve of DP-SGD at sigma, q and T.

    The least probability that an event of probability x under one of two neighbouring datasets has
    under the other: what `privgan.audit.bounds.fdp_one_run_margin` needs. From dp-accounting's
    pessimistic PLD, as the accountant's epsilon.

    Args:
        noise_multiplier: sigma, > 0.
        sampling_probability: q, in (0, 1].
        steps: T, >= 1.

    Returns:
        A function of x in [0, 1].
    """
    return _BlowUpInverse(_privacy_profile(noise_multiplier, sampling_probability, steps))


@functools.lru_cache(maxsize=256)
def _dp_sgd_curve(grid_index, sampling_probability, steps):
    # The blow-up inverse of DP-SGD's curve at sigma' = NOISE_GRID_RATIO^grid_index, and delta at the
    # last grid epsilon (not tiny: the grid does not cover this curve).
    deltas = _privacy_profile(NOISE_GRID_RATIO ** grid_index, sampling_probability, steps)
    return _BlowUpInverse(deltas), float(deltas[-1])


@dataclasses.dataclass(frozen=True)
class DpSgdCurveBound:
    """The f-DP one-run bound against DP-SGD's privacy curves at a fixed q and T.

    Attributes:
        noise_multiplier: the smallest sigma' on the grid whose curve the guesses reject; math.inf when
            none is (nothing refuted).
        candidate: index of the (num_guesses, num_correct) candidate that rejects it; -1 when none does.
        at_grid_end: True when even the least private curve searched (epsilon beyond the profile's grid,
            about 60) is rejected: the run may be less private still.
    """

    noise_multiplier: float
    candidate: int
    at_grid_end: bool

    def epsilon(self, *, sampling_probability, steps, delta) -> float:
        """The accountant's (PLD) epsilon at `delta` of DP-SGD with the rejected noise multiplier; 0 if none."""
        if math.isinf(self.noise_multiplier):
            return 0.0
        return float(accountant_epsilon(noise_multiplier=self.noise_multiplier,
                                        sampling_probability=sampling_probability, steps=steps, delta=delta))


def _check_candidates(candidates, num_canaries):
    if isinstance(num_canaries, bool) or not isinstance(num_canaries, (int, np.integer)) or num_canaries < 1:
        raise ValueError(f"num_canaries must be an integer >= 1, got {num_canaries!r}")
    candidates = [(int(guesses), int(correct)) for guesses, correct in candidates]
    if not candidates:
        raise ValueError("candidates must hold at least one (num_guesses, num_correct) pair")
    for guesses, correct in candidates:
        if not 0 <= correct <= guesses <= num_canaries:
            raise ValueError(f"each candidate (num_guesses, num_correct) must have 0 <= num_correct <= num_guesses "
                             f"<= num_canaries={num_canaries}, got ({guesses}, {correct})")
    return candidates


def dp_sgd_curve_bound(
    candidates, *, num_canaries: int, sampling_probability: float, steps: int, alpha,
    start_noise_multiplier: float = 1.0,
) -> DpSgdCurveBound:
    """The smallest noise multiplier whose DP-SGD curve (at q and T) some candidate's guesses reject.

    Each candidate is one test at its significance in `alpha` (divide the total among them beforehand,
    equally or not: Bonferroni), so the result is a valid bound at the sum of their significances. The
    search brackets the answer from `start_noise_multiplier` (e.g. the audited run's sigma: it changes
    only the work, not the result) by doubling steps on the grid, then bisects; rejection is monotone
    in sigma' (more noise, a stronger claim, easier to reject).

    Args:
        candidates: (num_guesses, num_correct) pairs from the same m canaries, each included
            independently with probability 1/2 (guesses may say "included" or "excluded").
        num_canaries: m, >= 1.
        sampling_probability: q of the audited run, in (0, 1].
        steps: T of the audited run, >= 1.
        alpha: significance of each candidate's test, in (0, 1): one number for all, or one per candidate.
        start_noise_multiplier: where the search starts, > 0.

    Returns:
        A `DpSgdCurveBound`.

    Raises:
        ValueError: if an argument is out of range.
    """
    candidates = _check_candidates(candidates, num_canaries)
    if not 0 < sampling_probability <= 1:
        raise ValueError(f"sampling_probability must be in (0, 1], got {sampling_probability}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    alphas = [float(a) for a in np.broadcast_to(np.asarray(alpha, dtype=np.float64), (len(candidates),))] \
        if np.ndim(alpha) in (0, 1) and np.size(alpha) in (1, len(candidates)) else None
    if alphas is None or not all(0 < a < 1 for a in alphas):
        raise ValueError(f"alpha must be in (0, 1), one number or one per candidate ({len(candidates)}), got {alpha}")
    if not 0 < start_noise_multiplier < math.inf:
        raise ValueError(f"start_noise_multiplier must be a finite number > 0, got {start_noise_multiplier}")

    def rejecting(index):
        # The first candidate that rejects the curve at grid index `index`, or -1.
        blow_up_inverse, _ = _dp_sgd_curve(index, float(sampling_probability), int(steps))
        for position, ((guesses, correct), significance) in enumerate(zip(candidates, alphas)):
            if correct > 0 and fdp_one_run_margin(num_canaries=num_canaries, num_guesses=guesses, num_correct=correct,
                                                  blow_up_inverse=blow_up_inverse, alpha=significance) > 0:
                return position
        return -1

    def beyond_grid(index):
        return _dp_sgd_curve(index, float(sampling_probability), int(steps))[1] > 1e-12

    top = math.ceil(math.log(_MAX_NOISE_MULTIPLIER) / math.log(NOISE_GRID_RATIO))
    index = min(round(math.log(start_noise_multiplier) / math.log(NOISE_GRID_RATIO)), top)
    step = 64  # 1.002^64 = 1.14
    if rejecting(index) >= 0:
        rejected = index
        while not beyond_grid(rejected):
            index = rejected - step
            if rejecting(index) < 0:
                break
            rejected, step = index, 2 * step
        else:
            return DpSgdCurveBound(NOISE_GRID_RATIO ** rejected, rejecting(rejected), True)
        kept = index
    else:
        kept = index
        while True:
            if kept >= top:
                return DpSgdCurveBound(math.inf, -1, False)
            index = min(kept + step, top)
            if rejecting(index) >= 0:
                break
            kept, step = index, 2 * step
        rejected = index
    # Invariant: the curve at `kept` is not rejected, the one at `rejected` is; kept < rejected.
    while rejected - kept > 1:
        middle = (kept + rejected) // 2
        if rejecting(middle) >= 0:
            rejected = middle
        else:
            kept = middle
    return DpSgdCurveBound(NOISE_GRID_RATIO ** rejected, rejecting(rejected), False)


def dp_sgd_lower_bound_one_run(
    *, num_canaries: int, num_guesses: int, num_correct: int, sampling_probability: float, steps: int,
    delta: float, alpha: float = 0.05,
) -> tuple:
    """The f-DP one-run bound of one set of guesses against DP-SGD's curves: `(noise_multiplier, epsilon)`.

    Args:
        num_canaries: m, each included independently with probability 1/2, >= 1.
        num_guesses: r, guesses made (abstentions excluded), in [0, m].
        num_correct: v, correct guesses, in [0, r].
        sampling_probability: q of the audited run, in (0, 1].
        steps: T of the audited run, >= 1.
        delta: the delta of the reported epsilon, in (0, 1).
        alpha: significance, in (0, 1).

    Returns:
        The smallest grid noise multiplier whose DP-SGD curve is rejected (math.inf if none) and the
        accountant's epsilon at `delta` of DP-SGD with it (0 if none): the run is not as private as that.

    Raises:
        ValueError: if an argument is out of range.
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    bound = dp_sgd_curve_bound([(num_guesses, num_correct)], num_canaries=num_canaries,
                               sampling_probability=sampling_probability, steps=steps, alpha=alpha)
    return bound.noise_multiplier, bound.epsilon(sampling_probability=sampling_probability, steps=steps, delta=delta)


# Candidate numbers of "included" (top) and "excluded" (bottom) guesses, as fractions of the canaries,
# when planning the f-DP bound on a simulation: finer than Steinke's plan where the optimum lies at the
# MNIST schedule (~1% top, ~0.3% bottom for 10^5 canaries), as the simulation is free.
PLAN_TOP_FRACTIONS = (0.003, 0.005, 0.007, 0.01, 0.012, 0.015, 0.02, 0.03, 0.05, 0.1, 0.3)
PLAN_BOTTOM_FRACTIONS = (0.0, 0.001, 0.002, 0.003, 0.005, 0.007, 0.01, 0.015, 0.03, 0.1)


def plan_fdp_guesses(scores, is_included, *, sampling_probability, steps, alpha, start_noise_multiplier=1.0,
                     calibrated=False):
    """The numbers of top and bottom guesses that give the best `dp_sgd_curve_bound` on `scores`.

    Meant for scores simulated from the claimed mechanism before the audit (public sigma, q and T), so
    the choice costs the real audit no confidence.

    Args:
        scores: simulated scores, shape (m,), higher = more likely included.
        is_included: the simulated inclusion, shape (m,).
        sampling_probability: q, in (0, 1].
        steps: T, >= 1.
        alpha: the significance the real audit will test each candidate at, in (0, 1).
        start_noise_multiplier: where the search starts (the claimed sigma saves work).
        calibrated: True when each score is the exact log-likelihood ratio of "included" against
            "excluded" under the simulated mechanism, so that a canary with score s is included with
            probability sigmoid(s): the candidates are then compared at their expected numbers of
            correct guesses instead of the simulation's draw, which spares the plan most of the noise
            of a few wrong guesses among the top ones.

    Returns:
        `(num_top, num_bottom)`; the largest candidate pair when none rejects anything.
    """
    num_canaries = np.asarray(scores).size
    pairs = sorted({(max(1, round(top * num_canaries)), round(bottom * num_canaries))
                    for top in PLAN_TOP_FRACTIONS for bottom in PLAN_BOTTOM_FRACTIONS
                    if round(top * num_canaries) + round(bottom * num_canaries) <= num_canaries})
    if calibrated:
        ranked = special.expit(np.sort(np.asarray(scores, dtype=np.float64))[::-1])
        top_correct = np.concatenate([[0.0], np.cumsum(ranked)])
        bottom_correct = np.concatenate([[0.0], np.cumsum(1 - ranked[::-1])])
        outcomes = [(top + bottom, round(top_correct[top] + bottom_correct[bottom])) for top, bottom in pairs]
    else:
        outcomes = [one_run_guess_outcome(scores, is_included, num_top=top, num_bottom=bottom) for top, bottom in pairs]
    bound = dp_sgd_curve_bound(outcomes, num_canaries=num_canaries, sampling_probability=sampling_probability,
                               steps=steps, alpha=alpha, start_noise_multiplier=start_noise_multiplier)
    return pairs[bound.candidate]
