"""Parallel composition: the privacy of training that reads disjoint parts of one private dataset separately.

When a private dataset is the disjoint union of parts (say its labelled and its unlabelled examples,
told apart by the example itself: whether it carries a label) and each part is read only by its own
mechanisms, adding or removing one example changes one part only. The outputs of the other parts'
mechanisms then have the same distribution on both neighbouring datasets, also when the mechanisms
run interleaved and adaptively (each reading the models the others updated): in the likelihood ratio
of the whole transcript, every factor of another part's mechanism is 1. So the privacy loss of an
example of part p is that of the composition of p's events alone (after any `prior` use of the whole
dataset), and the guarantee of the run is the worst part's (McSherry 2009, parallel composition):

    epsilon(delta) = max over parts p of epsilon(compose(prior, events of p), delta)

Every epsilon here still comes from dp-accounting's accountants applied to each part's events; only
the maximum over parts is taken outside them. It is tight: the worst part's epsilon is attained by an
example of that part.

It is valid only if the parts are disjoint: each person's record is in exactly one part, and which
part is decided by the record itself (not chosen by reading the other records). A record in two parts
(the same image labelled and unlabelled) goes through both parts' mechanisms and loses their
composition, which `composed()` bounds; the maximum would understate it. Callers must refuse such
overlaps or use `composed()`.
"""

from privgan.accounting.events import check_accountant, check_delta
from privgan.accounting.ledger import PrivacyLedger


class ParallelLedger:
    """The privacy record of training on disjoint parts of one private dataset (parallel composition).

    Valid only when each person's record is in one part (see the module docstring).

    Args:
        parts: a mapping from each part's name to the `PrivacyLedger` of the mechanisms that read that
            part only (e.g. `{"labelled": ..., "unlabelled": ...}`), at least one.
        prior: a `PrivacyLedger` of earlier uses of the whole dataset, composed before every part.

    Raises:
        TypeError: if a part or `prior` is not a `PrivacyLedger`.
        ValueError: if `parts` is empty or a name is not a non-empty string.
    """

    __hash__ = None  # mutable parts, compared by value

    def __init__(self, parts, *, prior=None):
        parts = dict(parts)
        if not parts:
            raise ValueError("parts must name at least one part of the dataset")
        for name, ledger in parts.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"part names must be non-empty strings, got {name!r}")
            if not isinstance(ledger, PrivacyLedger):
                raise TypeError(f"part {name!r} must be a PrivacyLedger, got {ledger!r}")
        prior = PrivacyLedger() if prior is None else prior
        if not isinstance(prior, PrivacyLedger):
            raise TypeError(f"prior must be a PrivacyLedger, got {prior!r}")
        self._parts = parts
        self.prior = prior

    @property
    def parts(self):
        """The parts' own ledgers (without `prior`), by name."""
        return dict(self._parts)

    def part_ledger(self, name):
        """What an example of part `name` went through: `prior`'s phases, then the part's own."""
        return PrivacyLedger(self.prior.phases + self._parts[name].phases)

    def part_epsilons(self, *, delta, accountant="pld"):
        """Each part's epsilon at `delta`, by name (see `PrivacyLedger.epsilon`)."""
        delta = check_delta(delta)
        accountant = check_accountant(accountant)
        return {name: self.part_ledger(name).epsilon(delta=delta, accountant=accountant) for name in self._parts}

    def epsilon(self, *, delta, accountant="pld"):
        """The guarantee of the whole run: the largest part's epsilon at `delta`."""
        return max(self.part_epsilons(delta=delta, accountant=accountant).values())

    @property
    def total_steps(self):
        """DP-SGD steps an example of the most-stepped part went through (prior's included)."""
        return max(self.part_ledger(name).total_steps for name in self._parts)

    @property
    def mechanism_runs(self):
        """The largest number of noise-stream positions used by an example's part (prior's included)."""
        return max(self.part_ledger(name).mechanism_runs for name in self._parts)

    def composed(self):
        """A `PrivacyLedger` composing everything, prior and all parts: a valid, looser bound.

        For code that takes a plain ledger (e.g. `ledger=` of a later training phase on the same data):
        composing parts that a neighbouring dataset cannot change together overcharges them, never
        undercharges.
        """
        phases = list(self.prior.phases)
        for ledger in self._parts.values():
            phases.extend(ledger.phases)
        return PrivacyLedger(phases)

    def to_dict(self):
        """A JSON-serialisable description; inverse of `from_dict`."""
        return {
            "composition": "parallel (disjoint parts; epsilon is the largest part's)",
            "prior": self.prior.to_dict(),
            "parts": {name: ledger.to_dict() for name, ledger in self._parts.items()},
        }

    @classmethod
    def from_dict(cls, d):
        """Rebuilds a ledger written by `to_dict`.

        Raises:
            ValueError: if `d` is not of that form.
        """
        try:
            parts = {name: PrivacyLedger.from_dict(part) for name, part in d["parts"].items()}
            prior = PrivacyLedger.from_dict(d["prior"])
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                "d must be a dict as written by ParallelLedger.to_dict: {'prior': <ledger dict>, 'parts': "
                f"{{name: <ledger dict>, ...}}}}, got {d!r}"
            ) from error
        return cls(parts, prior=prior)

    def __eq__(self, other):
        if not isinstance(other, ParallelLedger):
            return NotImplemented
        return self.prior == other.prior and self._parts == other._parts

    def __repr__(self):
        return f"ParallelLedger(parts={self._parts!r}, prior={self.prior!r})"
