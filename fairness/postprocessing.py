"""Group-specific randomised thresholds on a score: post-processing that reads the sensitive attribute.

Hardt, Price & Srebro (2016), "Equality of opportunity in supervised learning", with a tolerance: each
group g gets a mixture of thresholds on the score (predict positive when `score >= threshold`, the
threshold drawn with probability `weight`), chosen by a linear programme that maximises accuracy on the
calibration rows subject to the constraint's rates differing by at most the target between every two groups:

* demographic_parity: the selection rate P(prediction = 1 | group);
* equalized_odds: the true- and false-positive rates;
* equal_opportunity: the true-positive rate.

A mixture of thresholds reaches every point of a group's ROC convex hull, so the programme is the exact
(randomised) optimum over post-processors of the score, as fairlearn's `ThresholdOptimizer` is for
`tol=0`; unlike it, every constraint takes a tolerance. The rates are linear in the mixture weights, so the
programme is an LP in those weights (scipy's HiGHS).

**A margin for new data.** The rates are measured on finite calibration rows, so a post-processor that
meets the target there exceeds it on new rows about half the time when the target is met with equality.
With `confidence` set, the programme is solved again with the target lowered by `z * se`, where `z` is
the standard normal `confidence` quantile and `se` the largest binomial standard error of a constrained
difference at the first solution (`sqrt(r1 (1 - r1) / n1 + r2 (1 - r2) / n2)`): the gap then meets the
tolerance on new data with about that probability (as far as the calibration rows are a sample of them;
the new rows' own sampling error comes on top when the gap is measured on a finite test split).
"""

import dataclasses
import math

import numpy as np
from scipy.optimize import linprog
from scipy.stats import norm

from fairness.adversarial import check_constraint

# The rates each constraint equalises: name -> which rows' positive-prediction rate.
RATES = {
    "demographic_parity": ("selection",),
    "equalized_odds": ("true_positive", "false_positive"),
    "equal_opportunity": ("true_positive",),
}


@dataclasses.dataclass(frozen=True)
class GroupThresholds:
    """A fitted post-processor: per group code, thresholds on the score and their mixture weights.

    Attributes:
        constraint: one of `fairness.adversarial.CONSTRAINTS`.
        tolerance: the largest acceptable gap asked for, in [0, 1].
        target: the gap the LP was solved with (the tolerance less the confidence margin), in [0, tolerance].
        gap: the constraint's gap of the post-processed predictions on the calibration rows (expected over
            the randomisation).
        thresholds: one float array per group code, ascending (`inf`: never positive, `-inf`: always).
        weights: one float array per group code, non-negative, summing to 1, same lengths as `thresholds`.
    """

    constraint: str
    tolerance: float
    target: float
    gap: float
    thresholds: tuple
    weights: tuple

    def __post_init__(self):
        check_constraint(self.constraint)
        if not 0.0 <= self.target <= self.tolerance <= 1.0:
            raise ValueError(f"need 0 <= target <= tolerance <= 1, got {self.target}, {self.tolerance}")
        if len(self.thresholds) != len(self.weights) or len(self.thresholds) < 2:
            raise ValueError("thresholds and weights need one entry per group, at least two groups")
        for thresholds, weights in zip(self.thresholds, self.weights):
            if len(thresholds) != len(weights) or (np.asarray(weights) < -1e-9).any():
                raise ValueError("each group's weights must be non-negative, one per threshold")
            if not math.isclose(float(np.sum(weights)), 1.0, abs_tol=1e-6):
                raise ValueError(f"each group's weights must sum to 1, got {float(np.sum(weights))}")


def _group_rates(scores, labels, candidates):
    """Positive-prediction rates `(n_candidates,)` of one group at each threshold, per rate name (None: no rows)."""
    positive = scores[None, :] >= candidates[:, None]  # (n_candidates, n_rows)
    rates = {"selection": positive.mean(axis=1)}
    for name, label in (("true_positive", 1), ("false_positive", 0)):
        rows = labels == label
        rates[name] = positive[:, rows].mean(axis=1) if rows.any() else None
    return rates


def _solve(blocks, counts, constraint, targets, constrained):
    """The LP over mixture weights; returns one weight array per group.

    `blocks`/`counts` (of the rows whose accuracy is maximised) give the objective; `constrained` is a list of
    `(blocks, counts)` of the row sets on which the rates must differ by at most their entry of `targets`.
    """
    sizes = [len(block["selection"]) for block in blocks]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n_variables, n_rows = offsets[-1], sum(count.sum() for count in counts)
    # Accuracy = sum_g n_g1 TPR_g + n_g0 (1 - FPR_g); the constant is dropped, linprog minimises.
    cost = np.zeros(n_variables)
    for g, block in enumerate(blocks):
        gain = np.zeros(sizes[g])
        if block["true_positive"] is not None:
            gain += counts[g][1] * block["true_positive"]
        if block["false_positive"] is not None:
            gain -= counts[g][0] * block["false_positive"]
        cost[offsets[g]:offsets[g + 1]] = -gain / n_rows
    equality = np.zeros((len(blocks), n_variables))
    for g in range(len(blocks)):
        equality[g, offsets[g]:offsets[g + 1]] = 1.0
    inequalities, bounds = [], []
    for (set_blocks, _), target in zip(constrained, targets):
        for rate in RATES[constraint]:
            for g, h in ((g, h) for g in range(len(blocks)) for h in range(len(blocks)) if g != h):
                if set_blocks[g][rate] is None or set_blocks[h][rate] is None:
                    continue  # a group without rows in the cell has no such rate (left out, as fairlearn does)
                row = np.zeros(n_variables)
                row[offsets[g]:offsets[g + 1]] = set_blocks[g][rate]
                row[offsets[h]:offsets[h + 1]] -= set_blocks[h][rate]
                inequalities.append(row)
                bounds.append(target)
    result = linprog(
        cost,
        A_ub=np.array(inequalities) if inequalities else None,
        b_ub=np.array(bounds) if inequalities else None,
        A_eq=equality,
        b_eq=np.ones(len(blocks)),
        bounds=(0.0, 1.0),
        method="highs",
    )
    if not result.success:  # cannot happen: "never positive" in every group meets any target >= 0
        raise RuntimeError(f"the threshold LP failed: {result.message}")
    weights = np.clip(result.x, 0.0, None)
    return [weights[offsets[g]:offsets[g + 1]] / weights[offsets[g]:offsets[g + 1]].sum() for g in range(len(blocks))]


def _gap_and_error(blocks, counts, weights, constraint):
    """Largest constrained difference at `weights` and the binomial standard error of the largest one."""
    cell = {"selection": None, "true_positive": 1, "false_positive": 0}
    gap, error = 0.0, 0.0
    for rate in RATES[constraint]:
        values = [
            (float(block[rate] @ w), counts[g].sum() if cell[rate] is None else counts[g][cell[rate]])
            for g, (block, w) in enumerate(zip(blocks, weights))
            if block[rate] is not None
        ]
        if len(values) < 2:
            continue
        (high, n_high), (low, n_low) = max(values), min(values)
        gap = max(high - low, gap)
        # The margin uses the largest error among the constrained differences: any of them may end up largest.
        error = max(error, math.sqrt(high * (1 - high) / n_high + low * (1 - low) / n_low))
    return gap, error


def fit_group_thresholds(
    scores, labels, groups, *, constraint, tolerance, confidence=None, max_thresholds=200, also_meet_on=()
):
    """Fits the accuracy-maximising group thresholds that meet `tolerance` on the calibration rows.

    Accuracy is maximised on all the rows given; the tolerance (less its margin) must hold on all of them
    and, separately, on each subset of `also_meet_on` (e.g. the held-out rows among rows partly fitted on).

    Args:
        scores: float array `(n,)`, larger means more likely positive (e.g. P(y = 1)).
        labels: int array `(n,)` of 0/1 labels.
        groups: int array `(n,)` of group codes 0..k-1, every code present, k >= 2.
        constraint: one of `fairness.adversarial.CONSTRAINTS`.
        tolerance: the largest acceptable gap, in [0, 1].
        confidence: None (solve at the tolerance), or a probability in [0.5, 1): solve again with the target
            lowered by the margin of the module docstring.
        max_thresholds: candidate thresholds per group (quantiles of its scores), >= 2.
        also_meet_on: index arrays of row subsets on which the tolerance must hold too; each holds every group.

    Returns:
        A `GroupThresholds`.

    Raises:
        ValueError: for a bad argument (naming it and its allowed range).
    """
    check_constraint(constraint)
    if isinstance(tolerance, bool) or not 0.0 <= tolerance <= 1.0:
        raise ValueError(f"tolerance must be in [0, 1], got {tolerance!r}")
    if confidence is not None and not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be None or in [0.5, 1), got {confidence!r}")
    if isinstance(max_thresholds, bool) or max_thresholds < 2:
        raise ValueError(f"max_thresholds must be an integer >= 2, got {max_thresholds!r}")
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    if not (scores.shape == labels.shape == groups.shape) or scores.ndim != 1:
        raise ValueError(f"scores, labels and groups must be 1-d of one length, got {scores.shape}, "
                         f"{labels.shape}, {groups.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0/1: group thresholds need a binary label")
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    if n_groups < 2 or len(np.unique(groups)) != n_groups:
        raise ValueError(f"groups must hold every code 0..k-1 with k >= 2, got codes {np.unique(groups)}")
    subsets = [np.asarray(rows) for rows in also_meet_on]
    if any(len(np.unique(groups[rows])) != n_groups for rows in subsets):
        raise ValueError("every subset of also_meet_on must hold every group")
    thresholds = []
    for g in range(n_groups):
        quantiles = np.quantile(scores[groups == g], np.linspace(0.0, 1.0, max_thresholds))
        thresholds.append(np.unique(np.concatenate([[-np.inf], quantiles, [np.inf]])))

    def cells(rows):
        masks = [(groups == g) & rows for g in range(n_groups)]
        return (
            [_group_rates(scores[m], labels[m], t) for m, t in zip(masks, thresholds)],
            [np.bincount(labels[m], minlength=2) for m in masks],
        )

    row_sets = [np.ones(len(scores), dtype=bool)] + [np.isin(np.arange(len(scores)), rows) for rows in subsets]
    constrained = [cells(rows) for rows in row_sets]
    blocks, counts = constrained[0]
    targets = [float(tolerance)] * len(constrained)
    weights = _solve(blocks, counts, constraint, targets, constrained)
    if confidence is not None and confidence > 0.5:
        # Twice: the error depends on the rates, which move when the targets do.
        for _ in range(2):
            errors = [_gap_and_error(b, c, weights, constraint)[1] for b, c in constrained]
            targets = [max(float(tolerance) - norm.ppf(confidence) * error, 0.0) for error in errors]
            weights = _solve(blocks, counts, constraint, targets, constrained)
    gap = max(_gap_and_error(b, c, weights, constraint)[0] for b, c in constrained)
    target = min(targets)
    keep = [w > 1e-9 for w in weights]  # thresholds the mixture never draws are dropped
    return GroupThresholds(
        constraint=constraint,
        tolerance=float(tolerance),
        target=target,
        gap=float(gap),
        thresholds=tuple(t[k] for t, k in zip(thresholds, keep)),
        weights=tuple(w[k] / w[k].sum() for w, k in zip(weights, keep)),
    )


def positive_probability(post, scores, groups):
    """P(prediction = 1) of each row under the fitted mixture of its group's thresholds.

    Args:
        post: a `GroupThresholds`.
        scores: float array `(n,)`, on the scale the post-processor was fitted on.
        groups: int array `(n,)` of group codes of the fit.

    Returns:
        float array `(n,)` in [0, 1].

    Raises:
        ValueError: if a group code was not seen in the fit.
    """
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    if len(groups) and (groups.min() < 0 or groups.max() >= len(post.thresholds)):
        raise ValueError(f"group codes must be in [0, {len(post.thresholds) - 1}], the groups seen in fit")
    probability = np.zeros(len(scores))
    for g, (thresholds, weights) in enumerate(zip(post.thresholds, post.weights)):
        rows = groups == g
        probability[rows] = (scores[rows, None] >= thresholds[None, :]) @ weights
    return np.clip(probability, 0.0, 1.0)
