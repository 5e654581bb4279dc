"""A plain-Python record of the DP-SGD steps taken so far, as phases of constant noise and sampling.

DP models keep their step counter in a `tf.Variable` and build a `PrivacyLedger` snapshot when asked;
the ledger is what gets saved with checkpoints (`to_dict`) and what the accountant reads (`dp_event`).
"""

import dataclasses

import dp_accounting

from privgan.accounting.events import (
    check_count,
    check_noise_multiplier,
    check_sampling_probability,
    dp_sgd_event,
    epsilon_of_event,
)


@dataclasses.dataclass(frozen=True)
class DpSgdPhase:
    """Consecutive DP-SGD steps with the same noise multiplier and sampling probability.

    Attributes:
        noise_multiplier: ratio of the noise standard deviation to the clipping norm, >= 0.
        sampling_probability: Poisson sampling probability of each example, in (0, 1].
        steps: number of steps in the phase, an integer >= 1.
    """

    noise_multiplier: float
    sampling_probability: float
    steps: int

    def __post_init__(self):
        # Normalised to built-in types so that phases from numpy or TensorFlow values compare equal
        # and serialise to JSON.
        object.__setattr__(self, "noise_multiplier", check_noise_multiplier(self.noise_multiplier))
        object.__setattr__(
            self, "sampling_probability", check_sampling_probability(self.sampling_probability)
        )
        object.__setattr__(self, "steps", check_count(self.steps, name="steps", minimum=1))

    def dp_event(self) -> dp_accounting.DpEvent:
        """The phase's privacy cost (see `privgan.accounting.dp_sgd_event`)."""
        return dp_sgd_event(
            noise_multiplier=self.noise_multiplier,
            sampling_probability=self.sampling_probability,
            steps=self.steps,
        )


class PrivacyLedger:
    """The DP-SGD steps taken so far, in order, as a sequence of `DpSgdPhase`.

    Consecutive steps with equal noise multiplier and sampling probability are merged into one
    phase; phases that differ are composed.

    Args:
        phases: initial phases, in the order they ran. Adjacent equal ones are merged.

    Raises:
        TypeError: if an element of `phases` is not a `DpSgdPhase`.
    """

    __hash__ = None  # mutable, compared by value

    def __init__(self, phases=()):
        self._phases = []
        for phase in phases:
            if not isinstance(phase, DpSgdPhase):
                raise TypeError(f"phases must contain DpSgdPhase objects, got {phase!r}")
            self.record(
                noise_multiplier=phase.noise_multiplier,
                sampling_probability=phase.sampling_probability,
                steps=phase.steps,
            )

    @property
    def phases(self) -> tuple:
        """The phases, oldest first."""
        return tuple(self._phases)

    @property
    def total_steps(self) -> int:
        """The number of DP-SGD steps over all phases."""
        return sum(phase.steps for phase in self._phases)

    def record(self, *, noise_multiplier, sampling_probability, steps=1) -> None:
        """Records `steps` DP-SGD steps at the given noise multiplier and sampling probability.

        Args:
            noise_multiplier: ratio of the noise standard deviation to the clipping norm, >= 0.
            sampling_probability: Poisson sampling probability, in (0, 1].
            steps: number of steps, an integer >= 0 (0 records nothing).

        Raises:
            ValueError: if an argument is out of range.
        """
        noise_multiplier = check_noise_multiplier(noise_multiplier)
        sampling_probability = check_sampling_probability(sampling_probability)
        steps = check_count(steps, name="steps", minimum=0)
        if steps == 0:
            return
        phase = DpSgdPhase(noise_multiplier, sampling_probability, steps)
        last = self._phases[-1] if self._phases else None
        if (
            last is not None
            and last.noise_multiplier == phase.noise_multiplier
            and last.sampling_probability == phase.sampling_probability
        ):
            self._phases[-1] = dataclasses.replace(last, steps=last.steps + steps)
        else:
            self._phases.append(phase)

    def dp_event(self) -> dp_accounting.DpEvent:
        """The privacy cost of all recorded steps.

        Returns:
            `NoOpDpEvent()` when empty, the phase's event for one phase, else a `ComposedDpEvent`
            of the phases' events in order.
        """
        if not self._phases:
            return dp_accounting.NoOpDpEvent()
        if len(self._phases) == 1:
            return self._phases[0].dp_event()
        return dp_accounting.ComposedDpEvent([phase.dp_event() for phase in self._phases])

    def epsilon(self, *, delta, accountant: str = "pld") -> float:
        """The epsilon of all recorded steps at `delta` (see `privgan.accounting.epsilon_of_event`).

        Raises:
            ValueError: if delta or accountant is invalid.
        """
        return epsilon_of_event(self.dp_event(), delta=delta, accountant=accountant)

    def copy(self) -> "PrivacyLedger":
        """An independent ledger with the same phases."""
        return PrivacyLedger(self._phases)

    def to_dict(self) -> dict:
        """A JSON-serialisable description, for checkpoints; inverse of `from_dict`."""
        return {"phases": [dataclasses.asdict(phase) for phase in self._phases]}

    @classmethod
    def from_dict(cls, d: dict) -> "PrivacyLedger":
        """Rebuilds a ledger written by `to_dict`.

        Raises:
            ValueError: if `d` is not of that form or holds out-of-range values.
        """
        try:
            phases = [
                DpSgdPhase(p["noise_multiplier"], p["sampling_probability"], p["steps"])
                for p in d["phases"]
            ]
        except (KeyError, TypeError) as error:
            raise ValueError(
                "d must be a dict as written by PrivacyLedger.to_dict: {'phases': [{'noise_multiplier': "
                f"..., 'sampling_probability': ..., 'steps': ...}}, ...]}}, got {d!r}"
            ) from error
        return cls(phases)

    def __eq__(self, other):
        if not isinstance(other, PrivacyLedger):
            return NotImplemented
        return self._phases == other._phases

    def __repr__(self):
        return f"PrivacyLedger(phases={self.phases!r})"
