"""Which score the group thresholds post-process when the sensitive attribute is read at prediction.

With the attribute at prediction, the constraint is met by the group thresholds
(`fairness.postprocessing`), whatever score they act on; the accuracy they leave is that of the score's
group-wise ROC curves. The debiased predictor is a poor choice there: the adversary made its score
less informative about the label (on Adult's 4,000-row sample, post-processing it at tolerance 0.02 gave
accuracy 0.811 where fairlearn's `ThresholdOptimizer` on a plain logistic regression gave 0.839). So the
attribute-aware regime considers several scores and keeps the one whose post-processed accuracy on held-out
rows is highest:

* the debiased predictor's P(y = 1) (out of fold when the estimator cross-fits, on the held-out rows
  otherwise), which the fit already has;
* a plain (unconstrained) logistic regression on the same standardised features, cross-fitted on K folds:
  its out-of-fold scores are honest held-out scores, and the K fold models' averaged probability is the score
  used at prediction. It costs K logistic-regression fits (1.4 s for K = 3 on Adult's 4,000-row sample), not
  another network: on four generated tables (`experiments.common.biased_tables`, one split each) the
  estimator's network trained without adversary and cross-fitted the same way post-processed to within 0.006
  of the logistic regression's accuracy, at 20-30 times the cost; on Adult's sample the plain network is the
  less accurate of the two (0.847 against 0.851, features only).

Each candidate's thresholds are fitted as before (the tolerance less its confidence margin, on its held-out
scores and on the score used at prediction); the candidate is chosen by the expected accuracy of its
post-processed predictions on its held-out scores only, never on rows it was fitted on, and never on test
data. The choice does not loosen the constraint: every candidate's thresholds meet the same target.
Cross-fitted, the comparison is a little pessimistic for the debiased score: its held-out scores come from
single pairs, while prediction averages them (`fairness.cross_fit`); the logistic regressions' average differs
little from each of them.
"""

import dataclasses

import numpy as np
from sklearn.linear_model import LogisticRegression

from fairness.postprocessing import positive_probability

# The scores the attribute-aware regime chooses from (`AdversarialDebiasing.attribute_score_`).
SCORES = ("debiased", "logistic_regression")


@dataclasses.dataclass(frozen=True)
class CrossFittedLogistic:
    """K logistic regressions, model k fitted on every training row outside fold k.

    Attributes:
        models: the K fitted `sklearn.linear_model.LogisticRegression`s.
        out_of_fold: float array `(n,)`: each training row's P(y = 1) from the model that did not fit it.
    """

    models: tuple
    out_of_fold: np.ndarray

    def __post_init__(self):
        if len(self.models) < 2:
            raise ValueError(f"need at least two fold models, got {len(self.models)}")
        if np.ndim(self.out_of_fold) != 1:
            raise ValueError("out_of_fold must be a 1-d array of scores")

    def scores(self, X):
        """P(y = 1) of each row, averaged over the K fold models, float array `(n,)`."""
        return np.mean([model.predict_proba(X)[:, 1] for model in self.models], axis=0)


def cross_fitted_logistic(X, labels, fold_of_row, *, max_iter=1000):
    """Fits one plain logistic regression per fold (on the other folds' rows) and scores the fold's rows.

    Args:
        X: float array `(n, d)`, standardised features.
        labels: int array `(n,)` of 0/1 labels.
        fold_of_row: int array `(n,)` of fold numbers 0..K-1, K >= 2 (`fairness.cross_fit.assign_folds`), every
            fold's complement holding both labels.
        max_iter: the solver's iteration limit, >= 1.

    Returns:
        A `CrossFittedLogistic`.

    Raises:
        ValueError: for fewer than two folds or a fold whose complement lacks a label.
    """
    fold_of_row = np.asarray(fold_of_row, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    folds = int(fold_of_row.max()) + 1 if len(fold_of_row) else 0
    if folds < 2:
        raise ValueError(f"fold_of_row must hold at least two folds, got {folds}")
    models, out_of_fold = [], np.zeros(len(labels))
    for fold in range(folds):
        inside = fold_of_row != fold
        if len(np.unique(labels[inside])) < 2:
            raise ValueError(f"the rows outside fold {fold} hold one label only: give more rows or fewer folds")
        model = LogisticRegression(max_iter=max_iter).fit(X[inside], labels[inside])
        out_of_fold[~inside] = model.predict_proba(X[~inside])[:, 1]
        models.append(model)
    return CrossFittedLogistic(models=tuple(models), out_of_fold=out_of_fold)


def expected_accuracy(post, scores, labels, groups):
    """Accuracy of the post-processed predictions, expected over their randomisation.

    Args:
        post: a `fairness.postprocessing.GroupThresholds`.
        scores: float array `(n,)` (held-out scores, to compare candidates honestly).
        labels: int array `(n,)` of 0/1 labels.
        groups: int array `(n,)` of group codes.

    Returns:
        A float in [0, 1].
    """
    positive = positive_probability(post, scores, groups)
    labels = np.asarray(labels)
    return float(np.mean(np.where(labels == 1, positive, 1.0 - positive)))


def best_candidate(candidates):
    """The name of the candidate with the highest held-out accuracy (the first listed on a tie).

    Args:
        candidates: dict name -> (post, held-out scores, labels, groups), names from `SCORES`.

    Returns:
        `(name, accuracies)`: the chosen name and the dict name -> expected held-out accuracy.
    """
    unknown = set(candidates) - set(SCORES)
    if unknown or not candidates:
        raise ValueError(f"candidates must be named from {SCORES}, got {sorted(candidates)}")
    accuracies = {name: expected_accuracy(*entry) for name, entry in candidates.items()}
    return max(accuracies, key=lambda name: (accuracies[name], -SCORES.index(name))), accuracies
