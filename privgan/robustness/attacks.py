"""Evasion attacks on a `Classifier`: FGSM, PGD (L-inf and L2, random starts, restarts), APGD-CE/DLR and
Carlini-Wagner L2, each a frozen, self-validating configuration whose `run` returns the adversarial
inputs and an `AdversarialAttackResult`.

`run` attacks a dataset batch by batch through one compiled `tf.function` per attack and batch shape.
Untargeted attacks skip the examples the classifier already gets wrong (their adversarial input is the
clean one), and each restart attacks only the examples that are still classified correctly, as in
AutoAttack; targeted attacks attack every example toward its target. Robust accuracy counts an example
only if it is classified correctly both clean and under attack.
"""

import dataclasses
import math
import weakref

import numpy as np
import tensorflow as tf

from privgan.robustness import perturbations
from privgan.robustness.classifier import Classifier


@dataclasses.dataclass(frozen=True, eq=False)
class AdversarialAttackResult:
    """The outcome of one attack on a set of examples.

    Attributes:
        attack: a readable description of the attack and its settings.
        norm: "linf" or "l2", the norm of `perturbation_norms`.
        epsilon: the radius of the threat model (None for a minimal-perturbation attack without one).
        targeted: whether the attack aimed at given target classes.
        labels: the true classes.
        clean_predictions: the classifier's predictions on the clean inputs.
        adversarial_predictions: its predictions on the adversarial inputs.
        success: per example, whether the attack met its goal (untargeted: an example classified
            correctly clean and wrongly under attack; targeted: predicted as its target).
        perturbation_norms: per example, the `norm` of adversarial minus clean input.
    """

    attack: str
    norm: str
    epsilon: float | None
    targeted: bool
    labels: np.ndarray
    clean_predictions: np.ndarray
    adversarial_predictions: np.ndarray
    success: np.ndarray
    perturbation_norms: np.ndarray

    @property
    def num_examples(self) -> int:
        return int(self.labels.size)

    @property
    def clean_correct(self) -> np.ndarray:
        return self.clean_predictions == self.labels

    @property
    def robust_correct(self) -> np.ndarray:
        """Per example: classified correctly clean and under this attack."""
        return self.clean_correct & (self.adversarial_predictions == self.labels)

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.mean()) if self.num_examples else float("nan")

    @property
    def robust_accuracy(self) -> float:
        return float(self.robust_correct.mean()) if self.num_examples else float("nan")

    @property
    def success_rate(self) -> float:
        """Untargeted: successes over the examples classified correctly clean; targeted: over all."""
        attacked = np.ones_like(self.success) if self.targeted else self.clean_correct
        return float(self.success[attacked].mean()) if attacked.any() else float("nan")

    @property
    def mean_perturbation_norm(self) -> float:
        """Mean `norm` of the successful perturbations (NaN when none succeeded)."""
        return float(self.perturbation_norms[self.success].mean()) if self.success.any() else float("nan")

    def summary(self) -> str:
        """A few readable lines: the attack, the accuracies, the success rate and the perturbation size."""
        radius = "" if self.epsilon is None else f" at epsilon={self.epsilon:g}"
        return (
            f"{self.attack} ({self.norm}{radius}, {'targeted' if self.targeted else 'untargeted'}) on "
            f"{self.num_examples} examples\n"
            f"  clean accuracy {self.clean_accuracy:.4f}, robust accuracy {self.robust_accuracy:.4f}, "
            f"success rate {self.success_rate:.4f}\n"
            f"  mean {self.norm} norm of successful perturbations {self.mean_perturbation_norm:.4f}"
        )

    def to_dict(self) -> dict:
        """The summary numbers, JSON-serialisable (NaN becomes None)."""

        def number(value):
            return None if value is None or math.isnan(value) else value

        return {
            "attack": self.attack,
            "norm": self.norm,
            "epsilon": self.epsilon,
            "targeted": self.targeted,
            "num_examples": self.num_examples,
            "clean_accuracy": number(self.clean_accuracy),
            "robust_accuracy": number(self.robust_accuracy),
            "success_rate": number(self.success_rate),
            "mean_perturbation_norm": number(self.mean_perturbation_norm),
        }


def worst_case(results, *, attack="worst case"):
    """Combines attacks run on the same examples: an example is robust only if every attack failed on it.

    Args:
        results: `AdversarialAttackResult`s of untargeted attacks on the same examples, with one norm.
        attack: the combined result's description.

    Returns:
        An `AdversarialAttackResult` whose adversarial prediction per example is that of the first
        successful attack (else the first attack's), with the matching perturbation norm.

    Raises:
        ValueError: if the results disagree in examples or norm, or any is targeted.
    """
    results = list(results)
    if not results:
        raise ValueError("results must not be empty")
    first = results[0]
    for result in results:
        if result.targeted or result.norm != first.norm or not np.array_equal(result.labels, first.labels):
            raise ValueError("worst_case needs untargeted results of one norm on the same examples")
    predictions = first.adversarial_predictions.copy()
    norms = first.perturbation_norms.copy()
    success = first.success.copy()
    for result in results[1:]:
        take = result.success & ~success
        predictions[take] = result.adversarial_predictions[take]
        norms[take] = result.perturbation_norms[take]
        success |= result.success
    return AdversarialAttackResult(
        attack=attack, norm=first.norm, epsilon=first.epsilon, targeted=False, labels=first.labels,
        clean_predictions=first.clean_predictions, adversarial_predictions=predictions, success=success,
        perturbation_norms=norms,
    )


_COMPILED = weakref.WeakKeyDictionary()


def _seed_source(seed):
    # Stateless seeds for each compiled call; None draws the generator's state from OS entropy.
    return np.random.default_rng(seed)


def _next_seed(rng):
    return tf.constant(rng.integers(0, 2**31 - 1, size=2), tf.int64)


class _Attack:
    """Shared driver: validation of the data, batching, restarts on the still-robust examples, the result."""

    norm: str
    epsilon: float | None
    targeted: bool

    def _check(self):
        perturbations.check_threat_model(norm=self.norm, epsilon=self.epsilon)

    def _restarts(self):
        return 1

    def _describe(self):
        raise NotImplementedError

    def _perturb_batch(self, classifier, x, labels, targets, seed):
        """Returns `(x_adv, success)` for one batch (tensors); compiled by `run`."""
        raise NotImplementedError

    def _random_start(self, classifier, x, seed):
        return perturbations.random_start(x, epsilon=self.epsilon, norm=self.norm, valid_range=classifier.valid_range,
                                          seed=seed)

    def _compiled(self, classifier):
        # One tf.function per (classifier, attack), so that running an attack again does not retrace.
        functions = _COMPILED.setdefault(classifier, {})
        if self not in functions:
            functions[self] = tf.function(
                lambda xb, yb, tb, sb: self._perturb_batch(classifier, xb, yb, tb, sb), reduce_retracing=True
            )
        return functions[self]

    def run(self, classifier, x, y, *, target_labels=None, batch_size=256, seed=None):
        """Attacks `x` (labels `y`) and returns `(x_adv, result)`.

        Args:
            classifier: a `Classifier` (its model, output kind and valid range).
            x: inputs, inside `classifier.valid_range`.
            y: integer labels.
            target_labels: None for an untargeted attack, else the class to reach for each example.
            batch_size: examples per compiled call, >= 1.
            seed: seed of the random starts (None: fresh randomness from the OS).

        Returns:
            `(x_adv, result)`: a float32 array like `x`, and an `AdversarialAttackResult`.

        Raises:
            ValueError: on inputs outside the valid range, mismatched lengths, or a bad `batch_size`.
        """
        if not isinstance(classifier, Classifier):
            raise TypeError(f"classifier must be a privgan.robustness.Classifier, got {type(classifier).__name__}")
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
        classifier.check_inputs(x)
        _check_targets(self.targeted, target_labels)
        targeted = self.targeted
        if targeted:
            target_labels = np.asarray(target_labels).astype(np.int64).reshape(-1)
            if len(target_labels) != len(y):
                raise ValueError(f"target_labels has {len(target_labels)} rows but y has {len(y)}")
        rng = _seed_source(seed)
        compiled = self._compiled(classifier)
        clean_predictions = classifier.predict_labels(x, batch_size=batch_size)
        x_adv = x.copy()
        success = np.zeros(len(x), bool)
        # Untargeted: only correctly classified examples are attacked (the rest are already wrong).
        pending = np.ones(len(x), bool) if targeted else clean_predictions == y
        for _ in range(self._restarts()):
            indices = np.flatnonzero(pending & ~success)
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                targets = tf.constant(target_labels[chunk]) if targeted else tf.zeros_like(tf.constant(y[chunk]))
                batch_adv, batch_success = compiled(
                    tf.constant(x[chunk]), tf.constant(y[chunk]), targets, _next_seed(rng)
                )
                batch_adv, batch_success = np.asarray(batch_adv), np.asarray(batch_success)
                # A restart replaces an earlier point only by a successful one.
                replace = batch_success | (x_adv[chunk] == x[chunk]).all(axis=tuple(range(1, x.ndim)))
                x_adv[chunk[replace]] = batch_adv[replace]
                success[chunk] |= batch_success
        adversarial_predictions = classifier.predict_labels(x_adv, batch_size=batch_size)
        # Re-read success from the final predictions, so that the result agrees with them exactly.
        success = adversarial_predictions == target_labels if targeted else (
            (clean_predictions == y) & (adversarial_predictions != y))
        norms = np.asarray(perturbations.per_example_norms(tf.constant(x_adv - x), self.norm))
        result = AdversarialAttackResult(
            attack=self._describe(), norm=self.norm, epsilon=self.epsilon, targeted=targeted, labels=y,
            clean_predictions=clean_predictions, adversarial_predictions=adversarial_predictions,
            success=success, perturbation_norms=norms,
        )
        return x_adv, result


def _objective(classifier, labels, targets, loss, targeted):
    return perturbations.classification_objective(
        classifier.logits, labels, loss=loss, targets=targets if targeted else None
    )


def _check_positive_int(name, value):
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_positive(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class FGSM(_Attack):
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size epsilon.

    For L2 the step follows the normalised gradient (the "fast gradient method").

    Attributes:
        epsilon: the radius, > 0.
        norm: "linf" or "l2".
        targeted: whether `run` must be given target labels (it checks).
    """

    epsilon: float
    norm: str = "linf"
    targeted: bool = False

    def __post_init__(self):
        self._check()

    def _describe(self):
        return "FGSM"

    def _perturb_batch(self, classifier, x, labels, targets, seed):
        objective = _objective(classifier, labels, targets, "ce", self.targeted)
        x_last, _, _ = perturbations.projected_gradient_ascent(
            objective, x, start=x, epsilon=self.epsilon, norm=self.norm, step_size=self.epsilon, steps=1,
            valid_range=classifier.valid_range,
        )
        return x_last, objective(x_last)[1]


def _check_targets(targeted, target_labels):
    if targeted and target_labels is None:
        raise ValueError("a targeted attack needs target_labels")
    if not targeted and target_labels is not None:
        raise ValueError("target_labels given to an untargeted attack; set targeted=True")


@dataclasses.dataclass(frozen=True)
class PGD(_Attack):
    """Projected gradient descent (Madry et al. 2018) on the cross-entropy, L-inf or L2.

    Attributes:
        epsilon: the radius, > 0.
        norm: "linf" or "l2".
        steps: gradient steps per restart, >= 1.
        step_size: step length in `norm`; None: 2.5 * epsilon / steps (Madry et al.'s rule).
        random_start: start each restart at a uniform point of the ball (else at the clean input).
        restarts: independent runs; each attacks the examples not yet fooled.
        targeted: whether `run` must be given target labels.
        loss: "ce" or "dlr".
    """

    epsilon: float
    norm: str = "linf"
    steps: int = 40
    step_size: float | None = None
    random_start: bool = True
    restarts: int = 1
    targeted: bool = False
    loss: str = "ce"

    def __post_init__(self):
        self._check()
        _check_positive_int("steps", self.steps)
        _check_positive_int("restarts", self.restarts)
        if self.step_size is not None:
            _check_positive("step_size", self.step_size)
        if self.loss not in ("ce", "dlr"):
            raise ValueError(f"loss must be 'ce' or 'dlr', got {self.loss!r}")

    @property
    def resolved_step_size(self):
        return self.step_size if self.step_size is not None else 2.5 * self.epsilon / self.steps

    def _restarts(self):
        return self.restarts

    def _describe(self):
        loss = "" if self.loss == "ce" else f"-{self.loss.upper()}"
        return f"PGD{loss}-{self.steps}" + (f"x{self.restarts}" if self.restarts > 1 else "")

    def _perturb_batch(self, classifier, x, labels, targets, seed):
        objective = _objective(classifier, labels, targets, self.loss, self.targeted)
        start = self._random_start(classifier, x, seed) if self.random_start else x
        _, x_best, found = perturbations.projected_gradient_ascent(
            objective, x, start=start, epsilon=self.epsilon, norm=self.norm, step_size=self.resolved_step_size,
            steps=self.steps, valid_range=classifier.valid_range,
        )
        return x_best, found


@dataclasses.dataclass(frozen=True)
class APGD(_Attack):
    """Auto-PGD (Croce & Hein 2020) with the cross-entropy ("ce", APGD-CE) or DLR ("dlr", APGD-DLR) loss.

    No step size to tune: it starts at 2 epsilon and is halved at checkpoints when progress stalls
    (see `perturbations.auto_projected_gradient_ascent`).

    Attributes:
        epsilon: the radius, > 0.
        norm: "linf" or "l2".
        steps: iterations per restart, >= 1 (100 in AutoAttack).
        restarts: independent runs from random starts, each on the examples not yet fooled.
        loss: "ce" or "dlr" (DLR needs >= 3 classes, >= 4 when targeted).
        rho: the checkpoint test's fraction of loss increases (0.75).
        targeted: whether `run` must be given target labels.
    """

    epsilon: float
    norm: str = "linf"
    steps: int = 100
    restarts: int = 1
    loss: str = "ce"
    rho: float = 0.75
    targeted: bool = False

    def __post_init__(self):
        self._check()
        _check_positive_int("steps", self.steps)
        _check_positive_int("restarts", self.restarts)
        if self.loss not in ("ce", "dlr"):
            raise ValueError(f"loss must be 'ce' or 'dlr', got {self.loss!r}")
        if not 0 < self.rho < 1:
            raise ValueError(f"rho must be in (0, 1), got {self.rho!r}")

    def _restarts(self):
        return self.restarts

    def _describe(self):
        return f"APGD-{self.loss.upper()}-{self.steps}" + (f"x{self.restarts}" if self.restarts > 1 else "")

    def _perturb_batch(self, classifier, x, labels, targets, seed):
        objective = _objective(classifier, labels, targets, self.loss, self.targeted)
        _, x_best, found = perturbations.auto_projected_gradient_ascent(
            objective, x, start=self._random_start(classifier, x, seed), epsilon=self.epsilon, norm=self.norm,
            steps=self.steps, valid_range=classifier.valid_range, rho=self.rho,
        )
        return x_best, found


@dataclasses.dataclass(frozen=True)
class CarliniWagnerL2(_Attack):
    """Carlini & Wagner's L2 attack (2017): the smallest L2 perturbation that changes the prediction.

    A minimal-perturbation attack: without `epsilon` every example it fools counts as not robust; with
    `epsilon`, perturbations larger than it are discarded (the example counts as robust at that radius).

    Attributes:
        epsilon: optional radius at which robust accuracy is reported, > 0.
        binary_search_steps: searches over the constant c, >= 1.
        steps: Adam steps per search, >= 1.
        learning_rate: Adam's step, > 0.
        initial_const: the first c, > 0.
        confidence: the margin kappa >= 0 an adversarial point must clear.
        targeted: whether `run` must be given target labels.
    """

    epsilon: float | None = None
    binary_search_steps: int = 9
    steps: int = 200
    learning_rate: float = 0.01
    initial_const: float = 0.01
    confidence: float = 0.0
    targeted: bool = False
    norm: str = dataclasses.field(default="l2", init=False)

    def __post_init__(self):
        if self.epsilon is not None:
            self._check()
        _check_positive_int("binary_search_steps", self.binary_search_steps)
        _check_positive_int("steps", self.steps)
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("initial_const", self.initial_const)
        if not (math.isfinite(self.confidence) and self.confidence >= 0):
            raise ValueError(f"confidence must be a finite number >= 0, got {self.confidence!r}")

    def _describe(self):
        return f"CW-L2 ({self.binary_search_steps}x{self.steps} steps)"

    def _perturb_batch(self, classifier, x, labels, targets, seed):
        x_adv, found = perturbations.carlini_wagner_l2(
            classifier.logits, x, labels, targets=targets if self.targeted else None,
            valid_range=classifier.valid_range, binary_search_steps=self.binary_search_steps, steps=self.steps,
            learning_rate=self.learning_rate, initial_const=self.initial_const, confidence=self.confidence,
        )
        if self.epsilon is not None:
            within = perturbations.per_example_norms(x_adv - x, "l2") <= self.epsilon
            found = tf.logical_and(found, within)
            x_adv = tf.where(tf.reshape(found, [-1] + [1] * (x.shape.rank - 1)), x_adv, x)
        return x_adv, found
