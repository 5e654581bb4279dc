"""DP-SGD as dp-accounting events, and the epsilon of any event under the RDP or PLD accountant.

Every privacy number in privgan comes from here: the cost of training is described as a
`dp_accounting.DpEvent` and handed to one of Google's accountants, never computed by hand.
The argument checks shared by the whole package live here too, so that every entry point rejects
bad input with the same message.
"""

import math
import numbers
import warnings

import dp_accounting

from privgan.accounting.logs import rdp_convergence_notices_filtered

ACCOUNTANTS = ("pld", "rdp")

# Neighbouring datasets differ by adding or removing one example, the relation under which
# Poisson-sampled DP-SGD is analysed (Abadi et al. 2016; Mironov et al. 2019).
_NEIGHBORING_RELATION = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE

# The accountants' own defaults, which tf-privacy's compute_dp_sgd_privacy_statement also uses:
# RDP orders 1.1 ... 10.9, 11 ... 63, 128, 256, 512, 1024 and a PLD grid of 1e-4 nats. Named here so
# that a change of default in a future dp-accounting cannot silently move our numbers.
_RDP_ORDERS = tuple(dp_accounting.rdp.rdp_privacy_accountant.DEFAULT_RDP_ORDERS)
_PLD_VALUE_DISCRETIZATION_INTERVAL = 1e-4


def check_delta(delta) -> float:
    """Returns `delta` as a float.

    Raises:
        ValueError: unless 0 < delta < 1.
    """
    if not _is_real(delta) or not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    return float(delta)


def warn_if_delta_too_large(delta, *, num_examples) -> bool:
    """Warns (UserWarning) when delta >= 1 / num_examples, where an (epsilon, delta) guarantee says little.

    A mechanism that publishes each example verbatim with probability delta is (0, delta)-DP; with
    delta >= 1/N it publishes about delta * N >= 1 examples in the clear. delta should be well below 1/N.

    Args:
        delta: the delta of the guarantee, in (0, 1).
        num_examples: the number of private examples N, >= 1.

    Returns:
        Whether it warned.
    """
    delta = check_delta(delta)
    num_examples = check_count(num_examples, name="num_examples", minimum=1)
    if delta * num_examples < 1:
        return False
    suggestion = 10.0 ** math.floor(math.log10(0.01 / num_examples))  # a power of ten below 1 / (100 N)
    warnings.warn(
        f"delta = {delta:g} is not below 1/N = {1 / num_examples:.3g} (N = {num_examples} examples): a mechanism "
        f"that publishes each example in the clear with probability delta meets such an (epsilon, delta); "
        f"choose delta well below 1/N, e.g. {suggestion:g}",
        UserWarning,
        stacklevel=2,
    )
    return True


def check_noise_multiplier(noise_multiplier) -> float:
    """Returns `noise_multiplier` as a float.

    Raises:
        ValueError: unless it is a finite number >= 0.
    """
    if not _is_real(noise_multiplier) or not 0 <= noise_multiplier < math.inf:
        raise ValueError(f"noise_multiplier must be a finite number >= 0, got {noise_multiplier!r}")
    return float(noise_multiplier)


def check_sampling_probability(sampling_probability) -> float:
    """Returns `sampling_probability` as a float.

    Raises:
        ValueError: unless 0 < sampling_probability <= 1.
    """
    if not _is_real(sampling_probability) or not 0 < sampling_probability <= 1:
        raise ValueError(f"sampling_probability must be in (0, 1], got {sampling_probability!r}")
    return float(sampling_probability)


def check_count(value, *, name: str, minimum: int) -> int:
    """Returns `value` as an int.

    Args:
        value: the number to check.
        name: the argument's name, for the error message.
        minimum: the smallest allowed value.

    Raises:
        ValueError: unless `value` is an integer >= `minimum` (floats such as 3.0 are refused too,
            since a fractional step or example count is always a bug upstream).
    """
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(value, *, name: str) -> float:
    """Returns `value` as a float.

    Raises:
        ValueError: unless `value` is a finite number > 0.
    """
    if not _is_real(value) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_accountant(accountant) -> str:
    """Returns `accountant` unchanged.

    Raises:
        ValueError: unless it is one of `ACCOUNTANTS`.
    """
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    return accountant


def check_budget(*, target_epsilon, delta, accountant):
    """The budget arguments of a `fit` or a release, checked: `(target_epsilon, delta, accountant)`.

    Either may be None (no budget, or epsilon logged at a default delta); a target epsilon needs a delta.

    Raises:
        ValueError: for an unknown accountant, a delta outside (0, 1), a target epsilon that is not a finite
            number > 0, or a target epsilon without delta.
    """
    accountant = check_accountant(accountant)
    if delta is not None:
        delta = check_delta(delta)
    if target_epsilon is not None:
        target_epsilon = check_positive(target_epsilon, name="target_epsilon")
        if delta is None:
            raise ValueError("target_epsilon needs delta")
    return target_epsilon, delta, accountant


def dp_sgd_event(*, noise_multiplier, sampling_probability, steps) -> dp_accounting.DpEvent:
    """The privacy cost of `steps` steps of Poisson-sampled DP-SGD.

    Each step samples every example independently with probability `sampling_probability`, clips
    per-example gradients to an L2 norm C and adds Gaussian noise of standard deviation
    `noise_multiplier * C` to their sum.

    Args:
        noise_multiplier: ratio of the noise standard deviation to the clipping norm, >= 0.
        sampling_probability: probability that an example is in a batch, in (0, 1].
        steps: number of steps, an integer >= 0.

    Returns:
        `SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)`, or
        `NoOpDpEvent()` for zero steps (dp-accounting refuses a self-composition of count 0).

    Raises:
        ValueError: if an argument is out of range.
    """
    noise_multiplier = check_noise_multiplier(noise_multiplier)
    sampling_probability = check_sampling_probability(sampling_probability)
    steps = check_count(steps, name="steps", minimum=0)
    if steps == 0:
        return dp_accounting.NoOpDpEvent()
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            sampling_probability, dp_accounting.GaussianDpEvent(noise_multiplier)
        ),
        steps,
    )


def epsilon_of_event(event: dp_accounting.DpEvent, *, delta, accountant: str = "pld") -> float:
    """The epsilon at which `event` is (epsilon, delta)-DP, add-or-remove-one adjacency.

    Args:
        event: any event the chosen accountant supports.
        delta: target delta, in (0, 1).
        accountant: "pld" (privacy loss distributions: tight, slower) or "rdp" (Renyi DP: a looser
            upper bound, fast).

    Returns:
        Epsilon >= 0; 0.0 for an event that releases nothing, `math.inf` when the event has no
        finite guarantee (e.g. noise_multiplier 0).

    Raises:
        ValueError: if delta or accountant is invalid.
        dp_accounting.UnsupportedEventError: if the accountant cannot handle `event`.
    """
    delta = check_delta(delta)
    accountant = check_accountant(accountant)
    privacy_accountant = _make_accountant(accountant)
    if accountant != "rdp":
        return float(privacy_accountant.compose(event).get_epsilon(delta))
    # Its convergence notices concern the accountant's numerics, not the bound (see `logs`).
    with rdp_convergence_notices_filtered():
        return float(privacy_accountant.compose(event).get_epsilon(delta))


def epsilon(*, noise_multiplier, sampling_probability, steps, delta, accountant: str = "pld") -> float:
    """The epsilon of `steps` steps of Poisson-sampled DP-SGD (see `dp_sgd_event`).

    Args:
        noise_multiplier: ratio of the noise standard deviation to the clipping norm, >= 0.
        sampling_probability: probability that an example is in a batch, in (0, 1].
        steps: number of steps, an integer >= 0.
        delta: target delta, in (0, 1).
        accountant: "pld" or "rdp".

    Returns:
        Epsilon; 0.0 for zero steps, `math.inf` for noise_multiplier 0 and steps > 0.

    Raises:
        ValueError: if an argument is out of range.
    """
    event = dp_sgd_event(
        noise_multiplier=noise_multiplier, sampling_probability=sampling_probability, steps=steps
    )
    return epsilon_of_event(event, delta=delta, accountant=accountant)


def _make_accountant(accountant: str) -> dp_accounting.PrivacyAccountant:
    if accountant == "rdp":
        return dp_accounting.rdp.RdpAccountant(_RDP_ORDERS, _NEIGHBORING_RELATION)
    return dp_accounting.pld.PLDAccountant(
        _NEIGHBORING_RELATION, value_discretization_interval=_PLD_VALUE_DISCRETIZATION_INTERVAL
    )


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
