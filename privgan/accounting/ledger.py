"""A plain-Python record of every use of the private data so far, in order.

Two kinds of phase: DP-SGD steps of constant noise and sampling (`DpSgdPhase`), and one-off releases by
any other mechanism that dp-accounting describes (`ReleasePhase`: e.g. one Gaussian release of a mean
embedding, or a marginal-based synthesizer's measurements). DP models keep their step counter in a
`tf.Variable` and build a `PrivacyLedger` snapshot when asked; the ledger is what gets saved with
checkpoints (`to_dict`) and what the accountant reads (`dp_event`).
"""

import dataclasses

import attr
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


@dataclasses.dataclass(frozen=True)
class ReleasePhase:
    """One release of the private data by a mechanism other than DP-SGD, as a dp-accounting event.

    Attributes:
        event: its privacy cost, a `dp_accounting.DpEvent` (e.g. `GaussianDpEvent(sigma)` for one
            Gaussian release of a statistic of L2 sensitivity 1 in units of the noise, or a
            `ComposedDpEvent` of several). A `ZCDpEvent` is supported by the RDP accountant only.
        description: what was released, in words, for the privacy statement.
    """

    event: dp_accounting.DpEvent
    description: str

    def __post_init__(self):
        if not isinstance(self.event, dp_accounting.DpEvent):
            raise TypeError(f"event must be a dp_accounting.DpEvent, got {self.event!r}")
        if not isinstance(self.description, str) or not self.description:
            raise ValueError(f"description must be a non-empty string, got {self.description!r}")

    def dp_event(self) -> dp_accounting.DpEvent:
        """The release's privacy cost."""
        return self.event


def event_to_dict(event: dp_accounting.DpEvent) -> dict:
    """A JSON-serialisable description of a dp-accounting event; inverse of `event_from_dict`."""

    def encode(value):
        if isinstance(value, dp_accounting.DpEvent):
            return event_to_dict(value)
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        return value

    fields = {field.name: encode(getattr(event, field.name)) for field in attr.fields(type(event))}
    return {"event": type(event).__name__, **fields}


def event_from_dict(d: dict) -> dp_accounting.DpEvent:
    """Rebuilds an event written by `event_to_dict`.

    Raises:
        ValueError: if `d` does not name a dp-accounting event or its fields do not fit it.
    """

    def decode(value):
        if isinstance(value, dict) and "event" in value:
            return event_from_dict(value)
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    fields = dict(d)
    name = fields.pop("event", None)
    cls = getattr(dp_accounting, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, dp_accounting.DpEvent)):
        raise ValueError(f"not a dp-accounting event: {name!r}")
    try:
        return cls(**{key: decode(value) for key, value in fields.items()})
    except TypeError as error:
        raise ValueError(f"fields {sorted(fields)} do not fit dp_accounting.{name}") from error


class PrivacyLedger:
    """Every use of the private data so far, in order: `DpSgdPhase`s and `ReleasePhase`s.

    Consecutive DP-SGD steps with equal noise multiplier and sampling probability are merged into one
    phase; phases that differ, and releases, are composed.

    Args:
        phases: initial phases, in the order they ran. Adjacent equal DP-SGD phases are merged.

    Raises:
        TypeError: if an element of `phases` is neither a `DpSgdPhase` nor a `ReleasePhase`.
    """

    __hash__ = None  # mutable, compared by value

    def __init__(self, phases=()):
        self._phases = []
        for phase in phases:
            if isinstance(phase, ReleasePhase):
                self._phases.append(phase)
            elif isinstance(phase, DpSgdPhase):
                self.record(
                    noise_multiplier=phase.noise_multiplier,
                    sampling_probability=phase.sampling_probability,
                    steps=phase.steps,
                )
            else:
                raise TypeError(f"phases must contain DpSgdPhase or ReleasePhase objects, got {phase!r}")

    @property
    def phases(self) -> tuple:
        """The phases, oldest first."""
        return tuple(self._phases)

    @property
    def total_steps(self) -> int:
        """The number of DP-SGD steps over all phases (releases not counted)."""
        return sum(phase.steps for phase in self._phases if isinstance(phase, DpSgdPhase))

    @property
    def mechanism_runs(self) -> int:
        """DP-SGD steps plus releases: each ran the noise stream once, at its own position.

        A model continuing this ledger starts its noise stream (and its sampling sequence) here, so
        that no position is ever used twice (see `privgan.dp.noise`).
        """
        return self.total_steps + sum(isinstance(phase, ReleasePhase) for phase in self._phases)

    def record_release(self, event, *, description) -> None:
        """Records one release of the private data by another mechanism (see `ReleasePhase`)."""
        self._phases.append(ReleasePhase(event, description))

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
            isinstance(last, DpSgdPhase)
            and last.noise_multiplier == phase.noise_multiplier
            and last.sampling_probability == phase.sampling_probability
        ):
            self._phases[-1] = dataclasses.replace(last, steps=last.steps + steps)
        else:
            self._phases.append(phase)

    def dp_event(self) -> dp_accounting.DpEvent:
        """The privacy cost of all recorded steps and releases.

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
        """The epsilon of all recorded phases at `delta` (see `privgan.accounting.epsilon_of_event`).

        Raises:
            ValueError: if delta or accountant is invalid.
            dp_accounting.UnsupportedEventError: if a release's event is not supported by `accountant`
                (a `ZCDpEvent` under "pld").
        """
        return epsilon_of_event(self.dp_event(), delta=delta, accountant=accountant)

    def copy(self) -> "PrivacyLedger":
        """An independent ledger with the same phases."""
        return PrivacyLedger(self._phases)

    def to_dict(self) -> dict:
        """A JSON-serialisable description, for checkpoints; inverse of `from_dict`."""
        return {"phases": [_phase_to_dict(phase) for phase in self._phases]}

    @classmethod
    def from_dict(cls, d: dict) -> "PrivacyLedger":
        """Rebuilds a ledger written by `to_dict`.

        Raises:
            ValueError: if `d` is not of that form or holds out-of-range values.
        """
        try:
            phases = [_phase_from_dict(p) for p in d["phases"]]
        except (KeyError, TypeError) as error:
            raise ValueError(
                "d must be a dict as written by PrivacyLedger.to_dict: {'phases': [{'noise_multiplier': "
                f"..., 'sampling_probability': ..., 'steps': ...}} or {{'release': ..., 'description': "
                f"...}}, ...]}}, got {d!r}"
            ) from error
        return cls(phases)

    def __eq__(self, other):
        if not isinstance(other, PrivacyLedger):
            return NotImplemented
        return self._phases == other._phases

    def __repr__(self):
        return f"PrivacyLedger(phases={self.phases!r})"


def _phase_to_dict(phase) -> dict:
    if isinstance(phase, ReleasePhase):
        return {"release": event_to_dict(phase.event), "description": phase.description}
    return dataclasses.asdict(phase)


def _phase_from_dict(d: dict):
    if "release" in d:
        return ReleasePhase(event_from_dict(d["release"]), d["description"])
    return DpSgdPhase(d["noise_multiplier"], d["sampling_probability"], d["steps"])
