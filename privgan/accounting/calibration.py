"""Inverting the accountant: the noise multiplier for a target epsilon, the steps left in a budget.

Both searches rely on epsilon being monotone: decreasing in the noise multiplier, increasing in the
number of steps. A PLD evaluation costs ~0.1-1.5 s at ~10^4 steps and an RDP one ~0.02 s, so a PLD
search starts from the RDP answer (close to the PLD one, usually a little more conservative), brackets
the boundary by geometric expansion and then narrows the bracket with interpolation-guided bisection
(see `_refine`): about 5-8 PLD evaluations instead of ~15 for plain bisection.
"""

import math
import warnings

from privgan.accounting.events import (
    check_accountant,
    check_count,
    check_delta,
    check_noise_multiplier,
    check_positive,
    check_sampling_probability,
    epsilon,
)
from privgan.accounting.ledger import PrivacyLedger

RELATIVE_TOLERANCE = 1e-3
# Beyond these the search gives up: no realistic training run needs more noise or more steps.
_MAX_NOISE_MULTIPLIER = 1e6
MAX_STEPS = 2**31 - 1
# A calibrated DP-SGD sigma above this drowns the clipped gradients (noise norm sigma C sqrt(parameters) against
# a batch's sum of at most B C): the phase spends its budget on updates that are mostly noise.
HUGE_NOISE_MULTIPLIER = 10.0

# First bracket around a guess: x2 without a guess, x1.1 around an RDP guess for PLD. The ratio is
# squared at every expansion, so even a poor guess is bracketed in a few evaluations.
_RATIO_WITHOUT_GUESS = 2.0
_RATIO_AROUND_RDP_GUESS = 1.1


def calibrate_noise_multiplier(
    *,
    target_epsilon,
    delta,
    sampling_probability,
    steps,
    accountant: str = "pld",
    ledger: PrivacyLedger | None = None,
) -> float:
    """The smallest noise multiplier whose DP-SGD epsilon is at most `target_epsilon`.

    Poisson-sampled DP-SGD as in `privgan.accounting.dp_sgd_event`, after `ledger`'s phases when given
    (a second phase calibrated for what the first one left). The result `sigma` satisfies
    `epsilon(sigma) <= target_epsilon < epsilon(sigma * (1 - 1e-3))`. With `sampling_probability=1` and
    `steps=1` it is the noise multiplier of one Gaussian release of sensitivity 1
    (`dp_accounting.GaussianDpEvent(sigma)`).

    Args:
        target_epsilon: the privacy budget, > 0.
        delta: target delta, in (0, 1).
        sampling_probability: Poisson sampling probability, in (0, 1].
        steps: number of DP-SGD steps, an integer >= 0 (0 steps need no noise: returns 0.0).
        accountant: "pld" or "rdp".
        ledger: earlier uses of the same data (not modified), composed before these steps; None for
            a fresh start.

    Returns:
        The noise multiplier.

    Raises:
        ValueError: if an argument is out of range, or if no noise multiplier up to 1e6 reaches
            `target_epsilon` (e.g. because the ledger alone already spends it).
    """
    target_epsilon = check_positive(target_epsilon, name="target_epsilon")
    delta = check_delta(delta)
    sampling_probability = check_sampling_probability(sampling_probability)
    steps = check_count(steps, name="steps", minimum=0)
    accountant = check_accountant(accountant)
    if steps == 0:
        return 0.0

    def excess(noise_multiplier):
        if noise_multiplier > _MAX_NOISE_MULTIPLIER:
            raise ValueError(
                f"target_epsilon={target_epsilon} is not reached with accountant={accountant!r} by any "
                f"noise_multiplier up to {_MAX_NOISE_MULTIPLIER:g} (delta={delta}, steps={steps}, "
                f"sampling_probability={sampling_probability})"
            )
        if ledger is None:
            value = epsilon(
                noise_multiplier=noise_multiplier,
                sampling_probability=sampling_probability,
                steps=steps,
                delta=delta,
                accountant=accountant,
            )
        else:
            extended = ledger.copy()
            extended.record(
                noise_multiplier=noise_multiplier, sampling_probability=sampling_probability, steps=steps
            )
            value = extended.epsilon(delta=delta, accountant=accountant)
        return _log_ratio(value, target_epsilon)

    guess, ratio = 1.0, _RATIO_WITHOUT_GUESS
    if accountant == "pld":
        try:
            guess = calibrate_noise_multiplier(
                target_epsilon=target_epsilon,
                delta=delta,
                sampling_probability=sampling_probability,
                steps=steps,
                accountant="rdp",
                ledger=ledger,
            )
            ratio = _RATIO_AROUND_RDP_GUESS
        except ValueError:
            pass  # RDP's looser bound of the ledger alone can exceed a budget that PLD still reaches
    inside, outside = _bracket_noise_multiplier(excess, guess, ratio)
    return _refine(excess, inside, outside, integer=False)


def warn_if_noise_multiplier_huge(noise_multiplier, *, target_epsilon, delta, accountant="pld", ledger=None,
                                  what="the DP-SGD steps"):
    """Warns (UserWarning) when a calibrated DP-SGD sigma exceeds `HUGE_NOISE_MULTIPLIER` (10).

    The usual cause is a budget split in which an earlier phase (e.g. the DP-MERF release that warm-starts
    a DPGAN, calibrated for the whole target epsilon) leaves the next one almost nothing: the message says
    what the earlier phases in `ledger` spend, so that the user can give them a share of the budget instead.

    Args:
        noise_multiplier: the calibrated sigma.
        target_epsilon: the budget it was calibrated for (of the whole ledger).
        delta: delta of the budget.
        accountant: "pld" or "rdp".
        ledger: the earlier phases, or None.
        what: how to call the calibrated steps in the message.

    Returns:
        Whether it warned.
    """
    if not noise_multiplier > HUGE_NOISE_MULTIPLIER:
        return False
    message = (f"{what} get noise_multiplier = {noise_multiplier:.3g} (> {HUGE_NOISE_MULTIPLIER:g}) for "
               f"target_epsilon = {target_epsilon:g}: their updates are mostly noise")
    if ledger is not None and ledger.phases:
        spent = ledger.epsilon(delta=delta, accountant=accountant)
        message += (f". The earlier phases already spend epsilon = {spent:.4g} of it; give them a share of the "
                    f"budget (e.g. release with target_epsilon = {target_epsilon / 2:g}, then fit with "
                    f"target_epsilon = {target_epsilon:g}) or skip this phase")
    else:
        message += "; give them a larger budget, fewer steps or a smaller sampling probability"
    warnings.warn(message, UserWarning, stacklevel=3)
    return True


def max_steps(
    *,
    target_epsilon,
    delta,
    noise_multiplier,
    sampling_probability,
    accountant: str = "pld",
    ledger: PrivacyLedger | None = None,
) -> int:
    """The largest number of further DP-SGD steps that keeps epsilon within `target_epsilon`.

    The steps are recorded after `ledger`'s phases exactly as `PrivacyLedger.record` would, so
    `ledger.epsilon(...)` after recording the returned number of steps is <= `target_epsilon`, and
    one more step would exceed it.

    Args:
        target_epsilon: the privacy budget, > 0.
        delta: target delta, in (0, 1).
        noise_multiplier: noise multiplier of the further steps, >= 0.
        sampling_probability: their Poisson sampling probability, in (0, 1].
        accountant: "pld" or "rdp".
        ledger: steps already taken (not modified); None for a fresh start.

    Returns:
        The number of steps, >= 0 (0 also when the ledger alone already exceeds the budget),
        at most 2**31 - 1.

    Raises:
        ValueError: if an argument is out of range.
    """
    target_epsilon = check_positive(target_epsilon, name="target_epsilon")
    delta = check_delta(delta)
    noise_multiplier = check_noise_multiplier(noise_multiplier)
    sampling_probability = check_sampling_probability(sampling_probability)
    accountant = check_accountant(accountant)
    base = PrivacyLedger() if ledger is None else ledger

    def excess(steps):
        extended = base.copy()
        extended.record(
            noise_multiplier=noise_multiplier, sampling_probability=sampling_probability, steps=steps
        )
        return _log_ratio(extended.epsilon(delta=delta, accountant=accountant), target_epsilon)

    if accountant == "rdp":
        guess, ratio = 1, _RATIO_WITHOUT_GUESS
    else:
        guess = max_steps(
            target_epsilon=target_epsilon,
            delta=delta,
            noise_multiplier=noise_multiplier,
            sampling_probability=sampling_probability,
            accountant="rdp",
            ledger=ledger,
        )
        ratio = _RATIO_AROUND_RDP_GUESS
    inside, outside = _bracket_steps(excess, max(guess, 1), ratio)
    return _refine(excess, inside, outside, integer=True)


def _log_ratio(value, target):
    """log(value / target), with 0 -> -inf and inf -> inf; <= 0 means within the budget."""
    return math.log(value / target) if value > 0 else -math.inf


def _bracket_noise_multiplier(excess, guess, ratio):
    """Returns (inside, outside) (x, excess(x)) pairs around the budget, expanding geometrically.

    Larger noise multipliers are inside the budget.
    """
    point = (guess, excess(guess))
    while True:
        x, value = point
        neighbour_x = x / ratio if value <= 0 else x * ratio
        neighbour = (neighbour_x, excess(neighbour_x))
        if (value <= 0) != (neighbour[1] <= 0):
            return (point, neighbour) if value <= 0 else (neighbour, point)
        point = neighbour
        ratio *= ratio


def _bracket_steps(excess, guess, ratio):
    """Returns (inside, outside) (x, excess(x)) pairs around the budget, expanding geometrically.

    Smaller step counts are inside the budget. 0 further steps count as inside without being
    evaluated: if even the ledger alone is over budget, the search then ends at 0 all the same.
    Beyond `MAX_STEPS` counts as outside.
    """
    point = (guess, excess(guess))
    while True:
        x, value = point
        if value <= 0:
            neighbour_x = max(math.ceil(x * ratio), x + 1)
            if neighbour_x > MAX_STEPS:
                return point, (MAX_STEPS + 1, math.inf)
        else:
            neighbour_x = math.floor(x / ratio)
            if neighbour_x == 0:
                return (0, -math.inf), point
        neighbour = (neighbour_x, excess(neighbour_x))
        if (value <= 0) != (neighbour[1] <= 0):
            return (point, neighbour) if value <= 0 else (neighbour, point)
        point = neighbour
        ratio *= ratio


def _refine(excess, inside, outside, *, integer):
    """Narrows a bracket of the budget boundary and returns the inside end.

    Epsilon is close to a power law in both the noise multiplier and the step count, so a linear
    interpolation of log(epsilon) in log(x) lands within a step or two of the boundary once the
    bracket is narrow. Each round probes a pair of adjacent points around that estimate, which
    finishes the search when the estimate is good. The Illinois rule (halving the interpolation
    weight of an end that stays put while the other moves twice) stops estimates from creeping up on
    the boundary from one side, and two slow rounds in a row (bracket not halved) fall back to a
    bisection step, so the search always terminates.

    Args:
        excess: x -> log(epsilon(x) / target_epsilon), monotone in x; <= 0 means within the budget.
        inside: (x, excess(x)) with excess(x) <= 0.
        outside: (x, excess(x)) with excess(x) > 0.
        integer: x are step counts, done when inside and outside are adjacent; otherwise noise
            multipliers, done when they are within `RELATIVE_TOLERANCE` of each other.

    Returns:
        The final inside x.
    """
    # Keyed by "within budget"; the interpolation uses `weights`, the Illinois-scaled excesses.
    ends = {True: inside[0], False: outside[0]}
    weights = {True: inside[1], False: outside[1]}
    last_moved = None

    def width():
        return abs(ends[False] - ends[True])

    def done():
        if integer:
            return width() <= 1
        return min(ends.values()) >= (1 - RELATIVE_TOLERANCE) * max(ends.values())

    def probe(x):
        nonlocal last_moved
        if done() or not min(ends.values()) < x < max(ends.values()):
            return
        value = excess(x)
        side = value <= 0
        ends[side], weights[side] = x, value
        if last_moved is side:
            weights[not side] /= 2
        last_moved = side

    slow_rounds = 0
    while not done():
        start_width = width()
        for x in _probes_around_estimate(
            (ends[True], weights[True]), (ends[False], weights[False]), integer=integer
        ):
            probe(x)
        slow_rounds = slow_rounds + 1 if width() > start_width / 2 else 0
        if slow_rounds >= 2:
            probe((ends[True] + ends[False]) // 2 if integer else math.sqrt(ends[True] * ends[False]))
    return ends[True]


def _probes_around_estimate(inside, outside, *, integer):
    """Two adjacent points straddling the interpolated boundary: the inside one first."""
    (x_in, e_in), (x_out, e_out) = inside, outside
    if not all(math.isfinite(v) for v in (e_in, e_out)) or min(x_in, x_out) <= 0:
        return ()
    log_x = math.log(x_in) + (math.log(x_out) - math.log(x_in)) * (-e_in) / (e_out - e_in)
    estimate = math.exp(log_x)
    toward_outside = 1 if x_out > x_in else -1
    if integer:
        first = math.floor(estimate) if toward_outside > 0 else math.ceil(estimate)
        return first, first + toward_outside
    # A pair this close (relative gap 2/3 of the tolerance) ends the search if it straddles.
    step = 1 + RELATIVE_TOLERANCE / 3
    return estimate * step**-toward_outside, estimate * step**toward_outside
