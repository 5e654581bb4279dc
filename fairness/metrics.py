"""Fairness metrics: fairlearn's group metrics, a one-call report, and the leakage of a representation.

The group metrics are fairlearn's (`demographic_parity_difference`, `equalized_odds_difference`,
`MetricFrame`), re-exported here and not re-implemented. `leakage` asks whether a sensitive variable can
still be recovered from a representation by classifiers that were not part of its training.
"""

import dataclasses

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fairness.adversarial import encode_groups

__all__ = [
    "FairnessReport",
    "LeakageResult",
    "MetricFrame",
    "demographic_parity_difference",
    "equalized_odds_difference",
    "fairness_report",
    "leakage",
]


@dataclasses.dataclass(frozen=True)
class FairnessReport:
    """Accuracy and group-fairness gaps of a classifier's predictions.

    Attributes:
        accuracy: overall accuracy.
        demographic_parity_difference: largest gap in selection rate between groups.
        equalized_odds_difference: largest gap in true- or false-positive rate between groups.
        accuracy_by_group: accuracy of each group.
        selection_rate_by_group: share of positive predictions in each group.
    """

    accuracy: float
    demographic_parity_difference: float
    equalized_odds_difference: float
    accuracy_by_group: dict
    selection_rate_by_group: dict

    def summary(self):
        """One readable line per metric."""
        by_group = ", ".join(
            f"{group}: acc {accuracy:.3f} / sel {self.selection_rate_by_group[group]:.3f}"
            for group, accuracy in self.accuracy_by_group.items()
        )
        return (
            f"accuracy {self.accuracy:.4f}\n"
            f"demographic parity difference {self.demographic_parity_difference:.4f}\n"
            f"equalized odds difference {self.equalized_odds_difference:.4f}\n"
            f"by group: {by_group}"
        )


def fairness_report(y_true, y_pred, *, sensitive_features):
    """Accuracy, demographic-parity and equalized-odds differences (fairlearn) of binary predictions.

    Args:
        y_true: true binary labels `(n,)`.
        y_pred: predicted binary labels `(n,)`.
        sensitive_features: group of each row `(n,)`.

    Returns:
        A FairnessReport.
    """
    frame = MetricFrame(
        metrics={"accuracy": accuracy_score, "selection_rate": selection_rate},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sensitive_features,
    )
    return FairnessReport(
        accuracy=float(accuracy_score(y_true, y_pred)),
        demographic_parity_difference=float(
            demographic_parity_difference(y_true, y_pred, sensitive_features=sensitive_features)
        ),
        equalized_odds_difference=float(
            equalized_odds_difference(y_true, y_pred, sensitive_features=sensitive_features)
        ),
        accuracy_by_group={str(k): float(v) for k, v in frame.by_group["accuracy"].items()},
        selection_rate_by_group={str(k): float(v) for k, v in frame.by_group["selection_rate"].items()},
    )


@dataclasses.dataclass(frozen=True)
class LeakageResult:
    """How well fresh classifiers recover a sensitive variable from a representation.

    Attributes:
        balanced_accuracy: cross-validated balanced accuracy of each probe ("logistic_regression", "mlp").
        chance: balanced accuracy of guessing (1 / number of groups).
    """

    balanced_accuracy: dict
    chance: float

    @property
    def max_balanced_accuracy(self):
        """The best probe's balanced accuracy: the leakage that counts."""
        return max(self.balanced_accuracy.values())

    def summary(self):
        """One readable line per probe, and the worst case."""
        lines = [f"{name}: balanced accuracy {value:.4f}" for name, value in self.balanced_accuracy.items()]
        lines.append(f"leakage (best probe) {self.max_balanced_accuracy:.4f}, chance {self.chance:.4f}")
        return "\n".join(lines)


def leakage(Z, s, *, cv=3, max_samples=10000, random_state=0):
    """Balanced accuracy of fresh classifiers that predict `s` from `Z`, cross-validated.

    The probes are a logistic regression and a small MLP (32 hidden units), each on standardised `Z`,
    scored out-of-fold. Near `chance` means the variable was really removed from `Z`, not only hidden from
    the adversary it was trained against. Use `Z` of held-out data.

    Args:
        Z: array-like `(n, d)` representation.
        s: sensitive group of each row `(n,)`, at least two groups.
        cv: number of stratified folds, >= 2.
        max_samples: rows used at most (a random subset beyond that keeps the MLP quick), >= cv.
        random_state: seed of the folds, the subset and the MLP.

    Returns:
        A LeakageResult.

    Raises:
        ValueError: if `Z` and `s` disagree in length, `s` has one group or missing values, `Z` is not
            2-D numeric without NaN, or `cv`/`max_samples` are out of range.
    """
    Z = np.asarray(Z)
    if Z.ndim != 2 or not np.issubdtype(Z.dtype, np.number):
        raise ValueError(f"Z must be a 2-D numeric array, got shape {Z.shape} and dtype {Z.dtype}")
    if not np.isfinite(Z).all():
        raise ValueError("Z contains NaN or infinite values")
    if cv < 2:
        raise ValueError(f"cv must be >= 2, got {cv}")
    if max_samples < cv:
        raise ValueError(f"max_samples must be >= cv ({cv}), got {max_samples}")
    codes, groups = encode_groups(s, n_samples=len(Z), name="s")
    rng = np.random.default_rng(random_state)
    if len(Z) > max_samples:
        keep = rng.choice(len(Z), size=max_samples, replace=False)
        Z, codes = Z[keep], codes[keep]
    probes = {
        "logistic_regression": LogisticRegression(max_iter=1000),
        "mlp": MLPClassifier(
            hidden_layer_sizes=(32,), max_iter=300, early_stopping=True, random_state=random_state
        ),
    }
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    scores = {}
    for name, probe in probes.items():
        predicted = cross_val_predict(make_pipeline(StandardScaler(), probe), Z, codes, cv=folds)
        scores[name] = float(balanced_accuracy_score(codes, predicted))
    return LeakageResult(balanced_accuracy=scores, chance=1.0 / len(groups))
