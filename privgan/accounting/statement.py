"""A human-readable statement of the DP guarantee of a DP-SGD training run, for reports and README files.

Follows the reporting advice of "How to DP-fy ML" (Ponomareva et al. 2023, Sec. 5.3) as tf-privacy's
`compute_dp_sgd_privacy_statement` does, with one difference: privgan clips whole per-example
gradients (no microbatches of several examples), so the sensitivity is the clipping norm and the
noise multiplier is not halved.
"""

import copy
import dataclasses
import datetime
import math
import numbers
import textwrap
import warnings
from collections.abc import Mapping
from importlib import metadata

from privgan.accounting.events import (
    check_accountant,
    check_count,
    check_delta,
    check_noise_multiplier,
    check_positive,
    epsilon,
)

_WIDTH = 88


def steps_per_epoch(num_examples, expected_batch_size) -> int:
    """Poisson steps that touch each example once in expectation: round(N / B), at least 1.

    The one definition of an epoch of Poisson-sampled DP-SGD, used by `fit` and by the statement.
    """
    return max(1, round(num_examples / expected_batch_size))


def poisson_sampling_schedule(*, num_examples, batch_size, epochs) -> tuple[float, int]:
    """DP-SGD's sampling probability and number of steps for an epoch-based description of training.

    The steps are those `fit(epochs=...)` of a privgan DP model takes: `steps_per_epoch` per epoch.

    Args:
        num_examples: size of the training set, an integer >= 1.
        batch_size: expected batch size, an integer in [1, num_examples].
        epochs: number of passes over the data, > 0 (may be fractional).

    Returns:
        (batch_size / num_examples, ceil(epochs * round(num_examples / batch_size))).

    Raises:
        ValueError: if an argument is out of range.
    """
    num_examples = check_count(num_examples, name="num_examples", minimum=1)
    batch_size = check_count(batch_size, name="batch_size", minimum=1)
    if batch_size > num_examples:
        raise ValueError(
            f"batch_size must be in [1, num_examples={num_examples}], got {batch_size}"
        )
    epochs = check_positive(epochs, name="epochs")
    return batch_size / num_examples, _ceil(epochs * steps_per_epoch(num_examples, batch_size))


def privacy_statement(*, num_examples, batch_size, epochs, noise_multiplier, delta) -> str:
    """Describes the (epsilon, delta) guarantee of DP-SGD training under two sampling assumptions.

    Epsilon is computed with both the RDP and the PLD accountant for (a) Poisson sampling with
    q = batch_size / num_examples over ceil(epochs * round(num_examples / batch_size)) steps, and (b) each
    example used once per epoch in fixed-size batches, without any amplification by sampling.

    Args:
        num_examples: size of the training set, an integer >= 1.
        batch_size: (expected) batch size, an integer in [1, num_examples].
        epochs: number of passes over the data, > 0 (may be fractional).
        noise_multiplier: ratio of the noise standard deviation to the clipping norm, >= 0.
        delta: target delta, in (0, 1).

    Returns:
        Several paragraphs of text ending with a newline; the same inputs give the same text.

    Raises:
        ValueError: if an argument is out of range.
    """
    sampling_probability, steps = poisson_sampling_schedule(
        num_examples=num_examples, batch_size=batch_size, epochs=epochs
    )
    noise_multiplier = check_noise_multiplier(noise_multiplier)
    delta = check_delta(delta)
    passes = _ceil(epochs)

    def epsilons(**schedule):
        return tuple(
            epsilon(noise_multiplier=noise_multiplier, delta=delta, accountant=accountant, **schedule)
            for accountant in ("rdp", "pld")
        )

    rows = [
        (
            f"(a) Poisson sampling, q = {sampling_probability:.4g}, {steps} steps",
            *epsilons(sampling_probability=sampling_probability, steps=steps),
        ),
        (
            f"(b) each example used once per epoch, {passes} epochs",
            # Each example is in exactly one batch per pass, so a pass costs one unsampled Gaussian
            # mechanism: the same event as a full-batch step (sampling probability 1).
            *epsilons(sampling_probability=1.0, steps=passes),
        ),
    ]
    label_width = max(len(label) for label, _, _ in rows)
    table = [f"{'':<{label_width}}  {'RDP':>9}  {'PLD':>9}"]
    table += [f"{label:<{label_width}}  {_format(rdp):>9}  {_format(pld):>9}" for label, rdp, pld in rows]

    paragraphs = [
        _fill(
            f"DP-SGD over {num_examples} examples with batch size {batch_size} for {epochs:g} epochs "
            f"and noise multiplier {noise_multiplier:g}: each example's gradient is clipped to an L2 "
            "norm C and Gaussian noise of standard deviation noise_multiplier * C is added to the "
            "sum of clipped gradients (no microbatching)."
        ),
        _fill(
            f"Example-level differential privacy, add-or-remove-one adjacency, delta = {delta:g}, "
            f"computed with dp-accounting {_dp_accounting_version()} (RDP: Renyi DP, an upper bound; "
            "PLD: privacy loss distributions, tight up to a pessimistic discretization). Epsilon:"
        ),
        "\n".join("    " + line for line in table),
        _fill(
            f"(a) holds when every step includes each example independently with probability "
            f"q = batch_size / num_examples, so batch sizes vary around {batch_size}; this is how "
            "privgan's DP training samples its batches."
        ),
        _fill(
            "(b) is the conservative bound tf-privacy's compute_dp_sgd_privacy_statement reports for "
            "\"each example occurring once per epoch\": the data may be shuffled or in any (even "
            "adversarial) order and split into fixed-size batches, no amplification by sampling or "
            "shuffling is credited, each epoch counts as one Gaussian mechanism with the noise "
            f"multiplier above, and the {passes} epochs compose. It assumes that adding or removing one "
            "example changes only the one batch that holds it. Shuffled training is believed to be "
            "closer to (a), but (a) is not a proven guarantee for it."
        ),
        _fill(
            "What is covered: the whole sequence of noisy gradient steps, hence every intermediate "
            "model and checkpoint as well as the final model, and anything computed from them alone "
            "(such as samples drawn from a trained generator)."
        ),
        _fill(
            "Caveats: the guarantee is per example (one row of the training set). A person who "
            "contributes several rows is protected less (group privacy); no user-level bound is "
            "given here. The number of examples is treated as public. It also assumes that nothing "
            "else derived from the training data (such as normalisation statistics, category lists, "
            "hyper-parameter search or early stopping on the training data) was used or released "
            "without being charged to the same budget, that nobody knows the noise or which examples "
            "each batch held (privgan draws both from 64-bit secret seeds unless told otherwise), and "
            "it ignores floating-point effects (privgan's Gaussian is cut at 11.6 standard deviations)."
        ),
    ]
    return "\n\n".join(paragraphs) + "\n"


def _privgan_version() -> str:
    from privgan import __version__

    return __version__


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class PrivacyStatement(Mapping):
    """What a release of private data guarantees: its (epsilon, delta), how it was accounted, and in words.

    Every privgan model and table engine returns one from `privacy_statement(...)`. `to_dict()` is the
    JSON-serialisable form written beside a release (the keys the statement dicts of earlier versions had:
    the fields below plus every key of `details`). It is also a read-only mapping over those keys, so that
    code which read the former dicts (`statement["epsilon"]`, `{**statement, ...}`) keeps working; values
    come back as copies, and nothing can change a statement once made.

    Attributes:
        epsilon: the epsilon of the whole release at `delta`, >= 0 (`math.inf` when there is no bound).
        delta: the delta of the guarantee, in (0, 1).
        accountant: the dp-accounting accountant that computed epsilon, "pld" or "rdp".
        guarantee: the guarantee in words: what is covered, under which assumptions.
        details: every other entry of the statement (noise multipliers, sampling, the ledger, settings,
            ...), a mapping from strings to JSON-serialisable values; its keys must not be field names.
        warning: None, or why the guarantee does not hold or is weaker than it reads (e.g. a published
            noise seed, a schema read from the data).
        privgan_version: the privgan version that made the statement (default: this one).
        date: when it was made, ISO 8601 in UTC (default: now).

    Raises:
        ValueError: naming the field and its allowed range when a field is out of range.
    """

    epsilon: float
    delta: float
    accountant: str
    guarantee: str
    details: Mapping = dataclasses.field(default_factory=dict)
    warning: str | None = None
    privgan_version: str = dataclasses.field(default_factory=_privgan_version)
    date: str = dataclasses.field(default_factory=_utc_now)

    # Mapping brings __eq__ and sets __hash__ to None; the dataclass's field-wise __eq__ replaces the former,
    # and a statement stays unhashable, as the dicts it replaces were (its details are a dict).
    __hash__ = None

    def __post_init__(self):
        value = self.epsilon
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or math.isnan(value) or value < 0:
            raise ValueError(f"epsilon must be a number >= 0 (math.inf for no bound), got {value!r}")
        object.__setattr__(self, "epsilon", float(value))
        object.__setattr__(self, "delta", check_delta(self.delta))
        check_accountant(self.accountant)
        for name in ("guarantee", "privgan_version", "date"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.warning is not None and (not isinstance(self.warning, str) or not self.warning.strip()):
            raise ValueError(f"warning must be None or a non-empty string, got {self.warning!r}")
        if not isinstance(self.details, Mapping) or not all(isinstance(key, str) for key in self.details):
            raise ValueError(f"details must be a mapping with string keys, got {self.details!r}")
        clashes = sorted(set(self.details) & _FIELDS)
        if clashes:
            raise ValueError(f"details must not repeat the statement's fields, got the keys {clashes}")
        # A private copy: a caller's later changes to the dict it passed cannot change the statement.
        object.__setattr__(self, "details", copy.deepcopy(dict(self.details)))

    def to_dict(self) -> dict:
        """The statement as a new JSON-serialisable dict.

        Returns:
            epsilon, delta, accountant, the details' keys, privgan_version, date, guarantee and (when there
            is one) warning.
        """
        flat = {"epsilon": self.epsilon, "delta": self.delta, "accountant": self.accountant,
                **copy.deepcopy(self.details), "privgan_version": self.privgan_version, "date": self.date,
                "guarantee": self.guarantee}
        if self.warning is not None:
            flat["warning"] = self.warning
        return flat

    @classmethod
    def from_dict(cls, statement) -> "PrivacyStatement":
        """The statement that `to_dict()` wrote (e.g. read back from a release's JSON file).

        Raises:
            ValueError: if a field is missing or out of range.
        """
        statement = dict(statement)
        missing = [name for name in ("epsilon", "delta", "accountant", "guarantee") if name not in statement]
        if missing:
            raise ValueError(f"statement needs epsilon, delta, accountant and guarantee; it lacks {missing}")
        fields = {name: statement.pop(name) for name in _FIELDS - {"details"} if name in statement}
        return cls(**fields, details=statement)

    def summary(self) -> str:
        """A few lines for a console or a log: epsilon and delta, the guarantee's first sentence, the warning.

        Epsilon is rounded up to 3 decimals, never in the guarantee's favour.
        """
        shown = "inf" if math.isinf(self.epsilon) else f"{math.ceil(self.epsilon * 1000 - 1e-9) / 1000:.3f}"
        lines = [f"epsilon = {shown} at delta = {self.delta:g} ({self.accountant.upper()} accountant; "
                 f"privgan {self.privgan_version}, {self.date})"]
        lines.append(_fill(self.guarantee.split(". ", 1)[0].rstrip(".") + "."))
        if self.warning is not None:
            lines.append(_fill(f"WARNING: {self.warning}"))
        return "\n".join(lines)

    def __getitem__(self, key):
        if key in self.details:
            return copy.deepcopy(self.details[key])
        if key in _FIELDS - {"details"} and (key != "warning" or self.warning is not None):
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self):
        return len(self.to_dict())

    def __repr__(self):
        return f"PrivacyStatement(epsilon={self.epsilon!r}, delta={self.delta!r}, accountant={self.accountant!r})"


_FIELDS = frozenset(field.name for field in dataclasses.fields(PrivacyStatement))


class DeprecatedPrivacyReport:
    """`privacy_report`, the former name of a model's `privacy_statement`, kept for old code (a mixin)."""

    def privacy_report(self, *, delta, accountant="pld"):
        """Deprecated: `privacy_statement(delta=..., accountant=...).to_dict()`, the dict it returned before."""
        warnings.warn(f"{type(self).__name__}.privacy_report is deprecated: use privacy_statement, which returns a "
                      "PrivacyStatement (its to_dict() is the former dict)", DeprecationWarning, stacklevel=2)
        return self.privacy_statement(delta=delta, accountant=accountant).to_dict()


def _ceil(value: float) -> int:
    # Rounded first so that float noise does not add a step: 0.3 * 60000 / 150 is 120.00000000000001.
    return math.ceil(round(value, 9))


def _format(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}"


def _fill(text: str) -> str:
    return textwrap.fill(text, width=_WIDTH)


def _dp_accounting_version() -> str:
    try:
        return metadata.version("dp-accounting")
    except metadata.PackageNotFoundError:
        return "(unknown version)"


# Keys whose value, rounded, must not make the guarantee look stronger than it is: a larger epsilon or
# sampling probability, a smaller noise multiplier.
_ROUND_UP = ("epsilon", "sampling_probability")
_ROUND_DOWN = ("noise_multiplier",)


def rounded_statement(statement, *, significant=6):
    """A JSON statement with its floats rounded to `significant` digits, never in the guarantee's favour.

    A statement reads `epsilon: 0.999315`, not `0.9993153965631083` or a float32's `1.600147008895874`.
    Values under the keys "epsilon" and "sampling_probability" are rounded up and "noise_multiplier" down
    (at any depth, the ledger's phases included), so that the stated numbers never promise more privacy than
    the exact ones; all other floats are rounded to nearest. Integers, strings and the rest are unchanged.

    Args:
        statement: a JSON-serialisable dict (nested dicts and lists are rounded too).
        significant: significant digits kept, >= 1.

    Returns:
        A new dict.
    """

    def rounded(value, key):
        if isinstance(value, dict):
            return {k: rounded(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [rounded(v, key) for v in value]
        if not isinstance(value, float) or not math.isfinite(value) or value == 0:
            return value
        nearest = float(f"{value:.{significant}g}")
        scale = 10.0 ** (math.floor(math.log10(abs(value))) - significant + 1)
        if key in _ROUND_UP and nearest < value:
            return float(f"{nearest + scale:.{significant}g}")
        if key in _ROUND_DOWN and nearest > value:
            return float(f"{nearest - scale:.{significant}g}")
        return nearest

    return rounded(dict(statement), None)
