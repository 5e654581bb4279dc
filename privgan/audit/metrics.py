"""How well membership scores separate members from non-members: ROC, AUC, advantage, TPR at low FPR.

Every attack in `privgan.audit` reduces to one score per record (higher = "more likely a member") and
is evaluated here, so that all attacks report the same numbers and the same ROC plot.
"""

import dataclasses

import numpy as np
from matplotlib.figure import Figure
from sklearn import metrics as sklearn_metrics

# The low false-positive rates that Carlini et al. (2022) argue matter for membership inference.
LOW_FALSE_POSITIVE_RATES = (0.001, 0.01)


@dataclasses.dataclass(frozen=True, eq=False)
class AttackResult:
    """Outcome of a membership inference attack over a set of records.

    Attributes:
        attack: name of the attack, used in summaries and plot legends.
        scores: one score per record; higher means "more likely a member".
        is_member: the ground truth, True for records in the training set.
        false_positive_rates: ROC curve abscissae, increasing from 0 to 1.
        true_positive_rates: ROC curve ordinates matching `false_positive_rates`.
        auc: area under the ROC curve (0.5 is chance).
        max_advantage: max over thresholds of |TPR - FPR| (Yeom et al. 2018's membership advantage).
        tpr_at_fpr: for each FPR in `LOW_FALSE_POSITIVE_RATES`, the best TPR at a FPR no larger than it
            (with fewer than 1/FPR non-members, that is the TPR at zero false positives).
    """

    attack: str
    scores: np.ndarray
    is_member: np.ndarray
    false_positive_rates: np.ndarray
    true_positive_rates: np.ndarray
    auc: float
    max_advantage: float
    tpr_at_fpr: dict

    @property
    def num_members(self) -> int:
        return int(self.is_member.sum())

    @property
    def num_non_members(self) -> int:
        return int(self.is_member.size - self.is_member.sum())

    def top_k_precision(self, k: int | None = None) -> float:
        """Fraction of members among the k highest-scoring records.

        With the default k (the number of members) this is the "attack accuracy" that LOGAN
        (Hayes et al. 2019) and privGAN (Mukherjee et al. 2021) report: 0.5 is chance when members
        and non-members are equally many.

        Args:
            k: how many top-scoring records to guess as members, in [1, number of records].

        Returns:
            The precision of those k guesses.

        Raises:
            ValueError: if k is out of range.
        """
        k = self.num_members if k is None else k
        if not 1 <= k <= self.scores.size:
            raise ValueError(f"k must be in [1, {self.scores.size}], got {k}")
        # A stable sort keeps the result deterministic when scores tie.
        top = np.argsort(-self.scores, kind="stable")[:k]
        return float(self.is_member[top].mean())

    def summary(self) -> str:
        """A few readable lines: the attack, the data sizes and the headline metrics."""
        low_fpr = ", ".join(f"TPR@FPR={fpr:.1%}: {tpr:.3f}" for fpr, tpr in self.tpr_at_fpr.items())
        return (
            f"{self.attack}: {self.num_members} members vs {self.num_non_members} non-members\n"
            f"  AUC {self.auc:.3f}, max advantage |TPR-FPR| {self.max_advantage:.3f}, "
            f"top-k precision {self.top_k_precision():.3f}\n"
            f"  {low_fpr}"
        )


def evaluate_attack(scores, is_member, *, attack: str) -> AttackResult:
    """Computes the ROC curve and its summary numbers for membership scores.

    Args:
        scores: array-like of shape (n,), finite; higher means "more likely a member".
        is_member: array-like of shape (n,) of booleans (or 0/1), with both members and non-members.
        attack: a name for the attack.

    Returns:
        An `AttackResult`.

    Raises:
        ValueError: if the arrays are not 1-D of equal length, scores are not finite, or one class is
            missing.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member)
    if scores.ndim != 1 or is_member.shape != scores.shape:
        raise ValueError(
            f"scores and is_member must be 1-D arrays of equal length, got shapes {scores.shape} "
            f"and {is_member.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must all be finite")
    if not np.all((is_member == 0) | (is_member == 1)):
        raise ValueError("is_member must contain only booleans or 0/1")
    is_member = is_member.astype(bool)
    if is_member.all() or not is_member.any():
        raise ValueError("is_member must contain both members and non-members")

    fpr, tpr, _ = sklearn_metrics.roc_curve(is_member, scores, drop_intermediate=False)
    tpr_at_fpr = {target: float(tpr[fpr <= target].max()) for target in LOW_FALSE_POSITIVE_RATES}
    return AttackResult(
        attack=attack,
        scores=scores,
        is_member=is_member,
        false_positive_rates=fpr,
        true_positive_rates=tpr,
        auc=float(sklearn_metrics.auc(fpr, tpr)),
        max_advantage=float(np.max(np.abs(tpr - fpr))),
        tpr_at_fpr=tpr_at_fpr,
    )


def plot_roc(results, *, log_scale: bool = True) -> Figure:
    """Draws the ROC curves of one or several attacks on one figure.

    Log-log axes (the default) show the low-FPR regime where a confident attack differs from a lucky
    one; the diagonal is chance.

    Args:
        results: an `AttackResult` or a sequence of them.
        log_scale: whether to draw both axes on a log scale.

    Returns:
        A matplotlib `Figure` (not attached to pyplot); save it with `figure.savefig(path)`.
    """
    if isinstance(results, AttackResult):
        results = [results]
    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot()
    for result in results:
        axes.plot(
            result.false_positive_rates,
            result.true_positive_rates,
            label=f"{result.attack} (AUC {result.auc:.3f})",
        )
    smallest_rate = 1.0 / max(r.num_non_members for r in results)
    # Many points so that the diagonal stays visible on log axes, where 0 cannot be drawn.
    chance = np.geomspace(smallest_rate / 2, 1, num=50)
    axes.plot(chance, chance, linestyle="--", color="grey", label="chance")
    if log_scale:
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlim(smallest_rate / 2, 1)
        axes.set_ylim(smallest_rate / 2, 1)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    return figure


def plot_epsilon_bounds(runs, *, delta: float, alpha: float, title=None) -> Figure:
    """Bars of the accountant's epsilon (upper bound) next to the audit's lower bound, one pair per run.

    Args:
        runs: dicts with "name", "epsilon" (the accountant's, None for a non-private run) and
            "epsilon_lower_bound".
        delta: the delta of both bounds (axis label).
        alpha: significance of the lower bounds (legend).
        title: optional title.

    Returns:
        A matplotlib `Figure` (not attached to pyplot).
    """
    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    positions = np.arange(len(runs))
    axes.bar(positions - 0.2, [run["epsilon"] or 0.0 for run in runs], width=0.4,
             label="accountant epsilon (upper bound)")
    axes.bar(positions + 0.2, [run["epsilon_lower_bound"] for run in runs], width=0.4,
             label=f"canary audit (lower bound, {1 - alpha:.0%})")
    for position, run in zip(positions, runs):
        if run["epsilon"] is None:
            axes.annotate("none", (position - 0.2, 0), ha="center", va="bottom", fontsize="small")
    axes.set_xticks(positions, [run["name"] for run in runs])
    axes.set_ylabel(f"epsilon at delta={delta:g}")
    axes.legend(fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return figure
