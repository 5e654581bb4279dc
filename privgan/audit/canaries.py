"""Canary audit in one training run (Steinke, Nasr & Jagielski 2023).

Insert m canaries into the training data, each independently with probability 1/2; train once; score
every canary; guess "included" for the highest scores and "excluded" for the lowest; count the correct
guesses; turn the count into an epsilon lower bound (`epsilon_lower_bound_one_run`). Training and
scoring are the user's functions, so a DP-SGD model, a plain Keras model or a GAN plug in the same way.
"""

import dataclasses

import numpy as np

from privgan.audit.bounds import epsilon_lower_bound_clopper_pearson, epsilon_lower_bound_one_run
from privgan.audit.metrics import AttackResult, evaluate_attack

# Candidate numbers of guesses, as fractions of the canaries; the best is kept with a Bonferroni
# correction (alpha divided by the number of candidates), so the choice costs confidence, not validity.
DEFAULT_GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# Candidate fractions of the canaries to flag as included when they are independent trials. The
# largest is 0.4, not 0.5: with perfect scores, flagging more canaries than the about m/2 +- sqrt(m)/2
# that were included would only add false positives.
DEFAULT_FLAG_FRACTIONS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.4)
# Candidate fractions of the canaries guessed "included" (top) and "excluded" (bottom) when planning a
# one-run audit on simulated scores (`plan_one_run_guesses`); every pair is tried, bottom 0 included.
PLAN_GUESS_FRACTIONS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)


def mislabelled_canaries(x, y, *, num_canaries: int, num_classes: int, seed=None):
    """Canaries made from real records given a wrong label, which a model can only learn by memorising.

    Take the records from data that is NOT otherwise in the training set (e.g. the test split), or the
    canary would be in the training data whether "included" or not.

    Args:
        x: candidate records, shape (n, ...).
        y: their integer labels in [0, num_classes), shape (n,).
        num_canaries: m, in [1, n].
        num_classes: number of classes, >= 2.
        seed: seed of the choice of records and wrong labels.

    Returns:
        `(x_canaries, y_canaries)`: m distinct records and labels each different from the true one.

    Raises:
        ValueError: if num_canaries or num_classes is out of range, or x and y differ in length.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if not 1 <= num_canaries <= len(y):
        raise ValueError(f"num_canaries must be in [1, {len(y)}], got {num_canaries}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(y), size=num_canaries, replace=False)
    # A uniform shift in [1, num_classes) gives a uniform wrong label.
    wrong = (y[chosen] + rng.integers(1, num_classes, size=num_canaries)) % num_classes
    return x[chosen], wrong.astype(y.dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class CanaryAuditResult:
    """An empirical epsilon lower bound from a canary audit, next to the accountant's epsilon.

    Attributes:
        epsilon_lower_bound: the largest epsilon refuted at significance `alpha` (0: nothing refuted).
        epsilon: the accountant's epsilon at `delta`, or None for a non-private run.
        delta: the delta of both epsilons.
        alpha: significance of the lower bound.
        num_canaries: m.
        num_guesses: r, the guesses behind the reported bound.
        num_correct: v, how many of them were right.
        attack: the canaries' scores against their inclusion, as an `AttackResult` (ROC, AUC).
    """

    epsilon_lower_bound: float
    epsilon: float | None
    delta: float
    alpha: float
    num_canaries: int
    num_guesses: int
    num_correct: int
    attack: AttackResult

    @property
    def exceeds_accountant(self) -> bool:
        """True when the lower bound is above the accountant's upper bound: a bug in the DP code."""
        return self.epsilon is not None and self.epsilon_lower_bound > self.epsilon

    def summary(self) -> str:
        """A few readable lines: both epsilons, the guesses and the attack's AUC."""
        accountant = "none (non-private)" if self.epsilon is None else f"{self.epsilon:.3f}"
        lines = [
            f"canary audit at delta={self.delta:g}: epsilon lower bound {self.epsilon_lower_bound:.3f} "
            f"(confidence {1 - self.alpha:.0%}), accountant epsilon {accountant}",
            f"  {self.num_correct}/{self.num_guesses} correct guesses over {self.num_canaries} canaries; "
            f"canary AUC {self.attack.auc:.3f}",
        ]
        if self.exceeds_accountant:
            lines.append("  WARNING: lower bound exceeds the accountant's epsilon: the DP guarantee is broken")
        return "\n".join(lines)


def one_run_bound(scores, is_included, *, delta, alpha=0.05, guess_fractions=DEFAULT_GUESS_FRACTIONS):
    """The best one-run epsilon lower bound over several numbers of guesses.

    For each r = fraction * m (rounded, at least 1), guesses "included" for the ceil(r/2) highest scores
    and "excluded" for the floor(r/2) lowest. Each candidate is tested at alpha / (number of
    candidates), so the maximum is still a valid bound at significance alpha.

    Args:
        scores: one score per canary, higher = more likely included; shape (m,).
        is_included: whether each canary was in the training data; shape (m,).
        delta: the delta of the claim under test, in [0, 1).
        alpha: overall significance, in (0, 1).
        guess_fractions: fractions of m in (0, 1] to try.

    Returns:
        `(epsilon_lower_bound, num_guesses, num_correct, attack)` for the best candidate, with the
        `AttackResult` of the scores.

    Raises:
        ValueError: for bad shapes, a fraction outside (0, 1], or delta/alpha out of range.
    """
    attack = evaluate_attack(scores, is_included, attack="canary score")
    num_canaries = attack.scores.size
    if not guess_fractions or not all(0 < f <= 1 for f in guess_fractions):
        raise ValueError(f"guess_fractions must be non-empty fractions in (0, 1], got {guess_fractions}")
    guess_counts = sorted({max(1, round(f * num_canaries)) for f in guess_fractions})
    order = np.argsort(-attack.scores, kind="stable")
    ranked_included = attack.is_member[order]
    candidates = []
    for num_guesses in guess_counts:
        positives = (num_guesses + 1) // 2
        negatives = num_guesses - positives
        num_correct = int(ranked_included[:positives].sum())
        num_correct += int(negatives - ranked_included[num_canaries - negatives :].sum())
        bound = epsilon_lower_bound_one_run(
            num_canaries=num_canaries,
            num_guesses=num_guesses,
            num_correct=num_correct,
            delta=delta,
            alpha=alpha / len(guess_counts),
        )
        candidates.append((bound, num_guesses, num_correct))
    # max keeps the first (fewest guesses) among equal bounds.
    return (*max(candidates, key=lambda candidate: candidate[0]), attack)


def one_run_guess_outcome(scores, is_included, *, num_top: int, num_bottom: int):
    """Guesses "included" for the `num_top` highest scores and "excluded" for the `num_bottom` lowest.

    Args:
        scores: one score per canary, higher = more likely included; shape (m,).
        is_included: whether each canary was in the training data; shape (m,).
        num_top: guesses "included", >= 0.
        num_bottom: guesses "excluded", >= 0, with num_top + num_bottom <= m.

    Returns:
        `(num_guesses, num_correct)`.

    Raises:
        ValueError: if the counts are out of range or the shapes differ.
    """
    scores, is_included = np.asarray(scores, dtype=np.float64), np.asarray(is_included, dtype=bool)
    if scores.ndim != 1 or scores.shape != is_included.shape:
        raise ValueError(f"scores and is_included must be 1-D of equal length, got {scores.shape} and "
                         f"{is_included.shape}")
    if not (0 <= num_top and 0 <= num_bottom and num_top + num_bottom <= scores.size):
        raise ValueError(f"num_top and num_bottom must be >= 0 with a sum <= {scores.size}, got {num_top} and "
                         f"{num_bottom}")
    ranked_included = is_included[np.argsort(-scores, kind="stable")]
    correct = int(ranked_included[:num_top].sum()) + num_bottom - int(ranked_included[scores.size - num_bottom :].sum())
    return num_top + num_bottom, correct


def plan_one_run_guesses(
    scores, is_included, *, delta, alpha=0.05, fractions=PLAN_GUESS_FRACTIONS, bound_fn=epsilon_lower_bound_one_run
):
    """The numbers of top and bottom guesses that give the best one-run bound on `scores`.

    Meant for scores simulated from the claimed mechanism before the audit: guesses planned from public
    parameters only cost the real audit nothing, whereas choosing them on the audit's own scores needs
    a multiple-testing correction (as `one_run_bound` applies).

    Args:
        scores: simulated scores, shape (m,) with m the number of canaries of the real audit.
        is_included: the simulated inclusion, shape (m,).
        delta: the delta of the claim under test, in [0, 1).
        alpha: the significance the real audit will use, in (0, 1).
        fractions: candidate fractions of m in (0, 1] for either end; each pair (and no bottom guess)
            is tried.
        bound_fn: the bound to maximise, called with keyword arguments num_canaries, num_guesses,
            num_correct, delta and alpha and returning a number: `epsilon_lower_bound_one_run` (the
            default) or another one-run bound.

    Returns:
        `(num_top, num_bottom)`.

    Raises:
        ValueError: for bad shapes, a fraction outside (0, 1], or delta/alpha out of range.
    """
    num_canaries = np.asarray(scores).size
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise ValueError(f"fractions must be non-empty fractions in (0, 1], got {fractions}")
    counts = sorted({max(1, round(f * num_canaries)) for f in fractions})
    best = None
    for num_top in counts:
        for num_bottom in [0, *counts]:
            if num_top + num_bottom > num_canaries:
                continue
            guesses, correct = one_run_guess_outcome(scores, is_included, num_top=num_top, num_bottom=num_bottom)
            bound = bound_fn(
                num_canaries=num_canaries, num_guesses=guesses, num_correct=correct, delta=delta, alpha=alpha
            )
            if best is None or bound > best[0]:
                best = (bound, num_top, num_bottom)
    return best[1], best[2]


def independent_trials_bound(scores, is_included, *, delta, alpha=0.05, flag_fractions=DEFAULT_FLAG_FRACTIONS):
    """The best Clopper-Pearson epsilon lower bound over several thresholds, canaries as independent trials.

    Each canary is one trial of "trained with it" (included) against "trained without it": the k
    highest scores are flagged, and their true and false positives give the bound of
    `epsilon_lower_bound_clopper_pearson` (Jagielski et al. 2020; Nasr et al. 2023 run one training
    per trial). Unlike `one_run_bound`, this assumes the canaries' outcomes are independent given their
    inclusion, which holds for canaries in separate runs, or for gradient-space canaries on disjoint
    coordinates of a mechanism that adds independent noise per coordinate and samples examples
    independently (DP-SGD as specified); a bound above the accountant's epsilon then refutes the
    implementation's claim to be that mechanism at that epsilon. Each threshold is tested at
    alpha / (number of thresholds), so the maximum is still a valid bound at significance alpha.

    Args:
        scores: one score per canary, higher = more likely included; shape (m,).
        is_included: whether each canary was in the training data; shape (m,), both values present.
        delta: the delta of the claim under test, in [0, 1).
        alpha: overall significance, in (0, 1).
        flag_fractions: fractions of m in (0, 1] to flag (k = fraction * m, rounded, at least 1).

    Returns:
        `(epsilon_lower_bound, num_flagged, true_positives)` for the best threshold.

    Raises:
        ValueError: for bad shapes, canaries all included or all excluded (see `evaluate_attack`), a
            fraction outside (0, 1], or delta/alpha out of range.
    """
    attack = evaluate_attack(scores, is_included, attack="canary score")
    num_canaries = attack.scores.size
    if not flag_fractions or not all(0 < f <= 1 for f in flag_fractions):
        raise ValueError(f"flag_fractions must be non-empty fractions in (0, 1], got {flag_fractions}")
    num_positives = attack.num_members
    flag_counts = sorted({max(1, round(f * num_canaries)) for f in flag_fractions})
    ranked_included = attack.is_member[np.argsort(-attack.scores, kind="stable")]
    candidates = []
    for num_flagged in flag_counts:
        true_positives = int(ranked_included[:num_flagged].sum())
        bound = epsilon_lower_bound_clopper_pearson(
            true_positives=true_positives,
            false_positives=num_flagged - true_positives,
            num_positives=num_positives,
            num_negatives=num_canaries - num_positives,
            delta=delta,
            alpha=alpha / len(flag_counts),
        )
        candidates.append((bound, num_flagged, true_positives))
    return max(candidates, key=lambda candidate: candidate[0])


def subset_with_mislabelled_canaries(train, test, *, num_train: int, num_canaries: int, num_classes: int, seed=None):
    """A training subset, mislabelled canaries made from `test`, and the rest of `test` for evaluation.

    The canaries come from the test split, so an excluded canary is absent from training altogether.

    Args:
        train: `(x, y)` arrays of the training split.
        test: `(x, y)` arrays of the test split.
        num_train: rows of the training subset, in [1, len(train)].
        num_canaries: m, in [1, len(test)].
        num_classes: number of classes, >= 2.
        seed: seed of the subset, the canary records and their wrong labels.

    Returns:
        `((x, y), (x_canaries, y_canaries), (x_held_out, y_held_out))`.

    Raises:
        ValueError: if a count is out of range.
    """
    (x_train, y_train), (x_test, y_test) = train, test
    if not 1 <= num_train <= len(y_train):
        raise ValueError(f"num_train must be in [1, {len(y_train)}], got {num_train}")
    if not 1 <= num_canaries <= len(y_test):
        raise ValueError(f"num_canaries must be in [1, {len(y_test)}], got {num_canaries}")
    rng = np.random.default_rng(seed)
    subset = rng.choice(len(y_train), size=num_train, replace=False)
    canary_rows = rng.choice(len(y_test), size=num_canaries, replace=False)
    held_out = np.setdiff1d(np.arange(len(y_test)), canary_rows)
    canaries = mislabelled_canaries(
        x_test[canary_rows], y_test[canary_rows], num_canaries=num_canaries, num_classes=num_classes, seed=seed
    )
    return (x_train[subset], y_train[subset]), canaries, (x_test[held_out], y_test[held_out])


def run_canary_audit(
    *,
    x,
    y,
    x_canaries,
    y_canaries,
    train_fn,
    score_fn,
    delta: float,
    alpha: float = 0.05,
    epsilon_fn=None,
    guess_fractions=DEFAULT_GUESS_FRACTIONS,
    seed=None,
) -> CanaryAuditResult:
    """Runs a one-training-run canary audit.

    Args:
        x: the ordinary training records, shape (n, ...).
        y: their labels, shape (n,).
        x_canaries: m canary records (e.g. from `mislabelled_canaries`), shape (m, ...).
        y_canaries: their labels, shape (m,).
        train_fn: `train_fn(x, y) -> model`; receives the ordinary records plus the included canaries,
            shuffled together.
        score_fn: `score_fn(model, x_canaries, y_canaries) -> scores` of shape (m,), higher = more
            likely included (e.g. minus the loss).
        delta: the delta of the claim under test, in [0, 1).
        alpha: significance of the lower bound, in (0, 1).
        epsilon_fn: optional `epsilon_fn(model) -> float | None`, the accountant's epsilon at `delta`
            (e.g. `lambda m: m.privacy_spent(delta=delta)` for a `DPModel`).
        guess_fractions: see `one_run_bound`.
        seed: seed of the canaries' inclusion and of the shuffle.

    Returns:
        A `CanaryAuditResult`.

    Raises:
        ValueError: if array lengths disagree, or any argument of `one_run_bound` is invalid.
    """
    x, y = np.asarray(x), np.asarray(y)
    x_canaries, y_canaries = np.asarray(x_canaries), np.asarray(y_canaries)
    if len(x) != len(y) or len(x_canaries) != len(y_canaries):
        raise ValueError(
            f"x/y and x_canaries/y_canaries must pair up, got lengths {len(x)}/{len(y)} and "
            f"{len(x_canaries)}/{len(y_canaries)}"
        )
    if x.shape[1:] != x_canaries.shape[1:]:
        raise ValueError(f"canaries must have the records' shape {x.shape[1:]}, got {x_canaries.shape[1:]}")
    rng = np.random.default_rng(seed)
    is_included = rng.random(len(x_canaries)) < 0.5
    train_x = np.concatenate([x, x_canaries[is_included]])
    train_y = np.concatenate([y, y_canaries[is_included]])
    shuffle = rng.permutation(len(train_y))
    model = train_fn(train_x[shuffle], train_y[shuffle])

    scores = np.asarray(score_fn(model, x_canaries, y_canaries), dtype=np.float64).reshape(-1)
    bound, num_guesses, num_correct, attack = one_run_bound(
        scores, is_included, delta=delta, alpha=alpha, guess_fractions=guess_fractions
    )
    epsilon = None if epsilon_fn is None else epsilon_fn(model)
    return CanaryAuditResult(
        epsilon_lower_bound=bound,
        epsilon=None if epsilon is None else float(epsilon),
        delta=delta,
        alpha=alpha,
        num_canaries=len(x_canaries),
        num_guesses=num_guesses,
        num_correct=num_correct,
        attack=attack,
    )
