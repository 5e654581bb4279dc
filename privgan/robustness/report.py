"""A robustness evaluation that checks itself for gradient masking.

`robustness_report` runs an attack suite at one radius, takes the per-example worst case over it, and
runs the sanity checks of Athalye, Carlini & Wagner (2018) and Carlini et al. (2019, "On evaluating
adversarial robustness") whose failure means the attacks, not the model, are weak:

- more PGD steps never raise robust accuracy;
- PGD (iterative) is at least as strong as FGSM (one step);
- an unbounded attack (a radius covering the whole valid range) reaches 0% robust accuracy;
- robust accuracy does not rise as epsilon grows.

A failed check is reported in `summary()` and raised as a `GradientMaskingWarning`. Passing them does not
prove robustness; it rules out the commonest ways an evaluation fools itself.
"""

import dataclasses
import math
import warnings

import numpy as np

from privgan.robustness.attacks import APGD, FGSM, PGD, worst_case
from privgan.robustness.perturbations import check_threat_model


class GradientMaskingWarning(RuntimeWarning):
    """A sanity check of an adversarial evaluation failed: its robust accuracy is likely overestimated."""


@dataclasses.dataclass(frozen=True)
class MaskingCheck:
    """One sanity check: its name, whether it passed, and the numbers behind it."""

    name: str
    passed: bool
    detail: str


@dataclasses.dataclass(frozen=True, eq=False)
class RobustnessReport:
    """Robust accuracy under an attack suite, and the gradient-masking checks.

    Attributes:
        norm: "linf" or "l2".
        epsilon: the radius of the evaluation.
        results: attack description -> `AdversarialAttackResult` at `epsilon` (suite and check attacks).
        worst_case: the per-example worst case over the suite (robust only if every suite attack failed).
        epsilon_sweep: `(epsilon, robust accuracy)` pairs of the sweep check, increasing epsilon.
        checks: the `MaskingCheck`s.
    """

    norm: str
    epsilon: float
    results: dict
    worst_case: object
    epsilon_sweep: tuple
    checks: tuple

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def robust_accuracy(self) -> float:
        return self.worst_case.robust_accuracy

    def summary(self) -> str:
        lines = [
            f"robustness at {self.norm} epsilon={self.epsilon:g} on {self.worst_case.num_examples} examples: "
            f"clean accuracy {self.worst_case.clean_accuracy:.4f}, robust accuracy (worst case over "
            f"{self.worst_case.attack}) {self.robust_accuracy:.4f}"
        ]
        lines += [f"  {name}: robust accuracy {result.robust_accuracy:.4f}" for name, result in self.results.items()]
        lines += [f"  check {'passed' if c.passed else 'FAILED'}: {c.name} ({c.detail})" for c in self.checks]
        if not self.passed:
            lines.append("  WARNING: a gradient-masking check failed; the robust accuracy is likely overestimated")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "norm": self.norm,
            "epsilon": self.epsilon,
            "clean_accuracy": self.worst_case.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "worst_case_over": self.worst_case.attack,
            "attacks": {name: result.to_dict() for name, result in self.results.items()},
            "epsilon_sweep": [{"epsilon": e, "robust_accuracy": a} for e, a in self.epsilon_sweep],
            "checks": [dataclasses.asdict(check) for check in self.checks],
            "checks_passed": self.passed,
        }


def default_suite(*, epsilon, norm, steps=100, restarts=1):
    """APGD-CE and PGD with `restarts` random restarts, `steps` iterations each."""
    return (APGD(epsilon=epsilon, norm=norm, steps=steps), PGD(epsilon=epsilon, norm=norm, steps=steps,
                                                                restarts=restarts))


def _unbounded_radius(classifier, x, norm):
    low, high = classifier.valid_range
    width = high - low
    return width if norm == "linf" else width * math.sqrt(int(np.prod(np.shape(x)[1:])))


def robustness_report(classifier, x, y, *, epsilon, norm="linf", suite=None, few_steps=10, many_steps=100,
                      sweep=(0.25, 0.5, 1.0, 1.5), sweep_steps=20, tolerance=0.01, batch_size=256, seed=None,
                      warn=True):
    """Evaluates `classifier` on `(x, y)` under a suite of attacks and checks the evaluation.

    Args:
        classifier: a `privgan.robustness.Classifier`.
        x, y: the evaluation examples (a held-out split) and labels.
        epsilon: the radius, > 0.
        norm: "linf" or "l2".
        suite: the attacks whose worst case is the robust accuracy; None: `default_suite`.
        few_steps, many_steps: PGD steps of the "more steps" check (the many-step run is also compared
            with FGSM).
        sweep: multiples of `epsilon` for the monotonicity check (PGD with `sweep_steps` steps).
        sweep_steps: PGD steps at each radius of the sweep.
        tolerance: slack, as a fraction of the examples, before a comparison counts as failed (random
            starts make two runs differ by a few examples).
        batch_size: examples per compiled attack call.
        seed: seed of the attacks' random starts (None: random).
        warn: raise a `GradientMaskingWarning` when a check fails.

    Returns:
        A `RobustnessReport`.

    Raises:
        ValueError: for a bad radius, norm, tolerance or sweep.
    """
    check_threat_model(norm=norm, epsilon=epsilon)
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    if not sweep or any(not m > 0 for m in sweep):
        raise ValueError(f"sweep must be a non-empty sequence of multiples > 0, got {sweep}")
    if few_steps >= many_steps:
        raise ValueError(f"few_steps ({few_steps}) must be smaller than many_steps ({many_steps})")
    rng = np.random.default_rng(seed)

    def run(attack):
        return attack.run(classifier, x, y, batch_size=batch_size, seed=int(rng.integers(2**31)))[1]

    suite = tuple(suite) if suite is not None else default_suite(epsilon=epsilon, norm=norm, steps=many_steps)
    results = {}
    for attack in suite:
        result = run(attack)
        results[result.attack] = result
    combined = worst_case(results.values(), attack=" + ".join(results))
    fgsm = run(FGSM(epsilon=epsilon, norm=norm))
    few = run(PGD(epsilon=epsilon, norm=norm, steps=few_steps))
    many = run(PGD(epsilon=epsilon, norm=norm, steps=many_steps))
    for result in (fgsm, few, many):
        results.setdefault(result.attack, result)
    unbounded_epsilon = _unbounded_radius(classifier, x, norm)
    unbounded = run(PGD(epsilon=unbounded_epsilon, norm=norm, steps=many_steps))
    sweep_results = [
        (epsilon * m, run(PGD(epsilon=epsilon * m, norm=norm, steps=sweep_steps)).robust_accuracy)
        for m in sorted(sweep)
    ]
    rises = [(a, b) for a, b in zip(sweep_results, sweep_results[1:]) if b[1] > a[1] + tolerance]
    checks = (
        MaskingCheck(
            "more PGD steps never raise robust accuracy",
            many.robust_accuracy <= few.robust_accuracy + tolerance,
            f"PGD-{few_steps} {few.robust_accuracy:.4f}, PGD-{many_steps} {many.robust_accuracy:.4f}",
        ),
        MaskingCheck(
            "PGD is at least as strong as FGSM",
            many.robust_accuracy <= fgsm.robust_accuracy + tolerance,
            f"FGSM {fgsm.robust_accuracy:.4f}, PGD-{many_steps} {many.robust_accuracy:.4f}",
        ),
        MaskingCheck(
            "an unbounded attack reaches 0% robust accuracy",
            unbounded.robust_accuracy <= tolerance,
            f"PGD-{many_steps} at epsilon={unbounded_epsilon:g} (the whole valid range): "
            f"{unbounded.robust_accuracy:.4f}",
        ),
        MaskingCheck(
            "robust accuracy falls as epsilon grows",
            not rises,
            ", ".join(f"eps {e:g}: {a:.4f}" for e, a in sweep_results),
        ),
    )
    report = RobustnessReport(norm=norm, epsilon=float(epsilon), results=results, worst_case=combined,
                              epsilon_sweep=tuple(sweep_results), checks=checks)
    if warn and not report.passed:
        failed = "; ".join(f"{c.name} ({c.detail})" for c in checks if not c.passed)
        warnings.warn(f"gradient-masking check failed: {failed}", GradientMaskingWarning, stacklevel=2)
    return report
