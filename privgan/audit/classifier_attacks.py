"""Membership inference against classifiers: loss/confidence thresholds and LiRA.

The attacks take predicted class probabilities, not models, so they work for any framework; only LiRA's
shadow training calls back into the user's code, through `train_fn(x, y) -> model` and
`predict_fn(model, x) -> probabilities`, the same functions that trained the target model.
"""

import dataclasses

import numpy as np
from scipy import stats

from privgan.audit.metrics import AttackResult, evaluate_attack

# Probabilities are clipped to this before taking logs: float32 softmax outputs reach exactly 0 and 1.
_TINY = 1e-30


def _check_probabilities(probabilities):
    """Validates class probabilities of shape (n, C); returns them as float64."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise ValueError(
            f"probabilities must have shape (num_examples, num_classes), got {probabilities.shape}"
        )
    # The tolerance admits float32 softmax rounding; NaN fails both comparisons.
    if not np.all((probabilities >= 0) & (probabilities <= 1 + 1e-6)):
        raise ValueError("probabilities must be in [0, 1] (pass softmax outputs, not logits)")
    return np.minimum(probabilities, 1.0)


def _true_label_probabilities(probabilities, labels):
    """Validates (n, C) probabilities and (n,) integer labels; returns (p_true, probabilities)."""
    probabilities = _check_probabilities(probabilities)
    labels = np.asarray(labels)
    if labels.shape != probabilities.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be integer class indices of shape ({probabilities.shape[0]},), got "
            f"shape {labels.shape} and dtype {labels.dtype}"
        )
    num_classes = probabilities.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes - 1}]")
    return probabilities[np.arange(labels.size), labels], probabilities


def cross_entropy(probabilities, labels) -> np.ndarray:
    """Per-example cross-entropy -log p(label).

    Args:
        probabilities: predicted class probabilities, shape (n, num_classes).
        labels: integer class labels, shape (n,).

    Returns:
        Array of shape (n,).

    Raises:
        ValueError: if shapes, label range or probability range are wrong.
    """
    p_true, _ = _true_label_probabilities(probabilities, labels)
    return -np.log(np.maximum(p_true, _TINY))


def logit_confidence(probabilities, labels) -> np.ndarray:
    """LiRA's logit-scaled confidence log(p_y / (1 - p_y)), roughly Gaussian across trainings.

    The denominator is the sum of the other classes' probabilities rather than 1 - p_y, which keeps
    precision when p_y is close to 1.

    Args:
        probabilities: predicted class probabilities, shape (n, num_classes).
        labels: integer class labels, shape (n,).

    Returns:
        Array of shape (n,).

    Raises:
        ValueError: if shapes, label range or probability range are wrong.
    """
    p_true, probabilities = _true_label_probabilities(probabilities, labels)
    p_other = probabilities.sum(axis=1) - p_true
    return np.log(np.maximum(p_true, _TINY)) - np.log(np.maximum(p_other, _TINY))


def loss_threshold_attack(*, probabilities, labels, is_member) -> AttackResult:
    """Loss threshold attack (Yeom et al. 2018): training records have lower loss.

    Args:
        probabilities: the target model's class probabilities on the records, shape (n, num_classes).
        labels: the records' integer labels, shape (n,).
        is_member: whether each record was in the target's training set, shape (n,).

    Returns:
        An `AttackResult` scored by -cross-entropy.

    Raises:
        ValueError: if the inputs have inconsistent shapes or invalid values.
    """
    return evaluate_attack(-cross_entropy(probabilities, labels), is_member, attack="loss threshold")


def confidence_threshold_attack(*, probabilities, is_member) -> AttackResult:
    """Confidence threshold attack (Salem et al. 2019): the model is surer of its training records.

    Needs no labels: the score is the largest predicted class probability.

    Args:
        probabilities: the target model's class probabilities on the records, shape (n, num_classes).
        is_member: whether each record was in the target's training set, shape (n,).

    Returns:
        An `AttackResult` scored by max probability.

    Raises:
        ValueError: if the inputs have inconsistent shapes or invalid values.
    """
    probabilities = _check_probabilities(probabilities)
    return evaluate_attack(probabilities.max(axis=1), is_member, attack="confidence threshold")


def keras_predict(model, x):
    """Default `predict_fn`: a Keras model's outputs, which must be class probabilities."""
    return model.predict(x, verbose=0)


@dataclasses.dataclass(frozen=True, eq=False)
class ShadowScores:
    """LiRA's view of K shadow models on n records.

    Attributes:
        confidences: logit-scaled confidences, shape (K, n).
        in_training: whether record j was in shadow model k's training set, shape (K, n).
    """

    confidences: np.ndarray
    in_training: np.ndarray

    @property
    def num_shadow_models(self) -> int:
        return self.confidences.shape[0]


def train_shadow_models(
    *, x, y, train_fn, predict_fn=keras_predict, num_shadow_models: int, seed=None
) -> ShadowScores:
    """Trains K shadow models on random halves of a data pool and scores every record of the pool.

    Each record is in the training set of exactly floor(K/2) shadow models (as in Carlini et al.'s code),
    so that every record has both IN and OUT observations.

    Args:
        x: the pool of records the attacker can draw from (it includes the records to attack), shape
            (n, ...).
        y: their integer labels, shape (n,).
        train_fn: `train_fn(x, y) -> model`, the same training procedure as the target model's.
        predict_fn: `predict_fn(model, x) -> probabilities` of shape (n, num_classes).
        num_shadow_models: K, >= 2.
        seed: seed of the random halves.

    Returns:
        A `ShadowScores`.

    Raises:
        ValueError: if num_shadow_models < 2 or x and y have different lengths.
    """
    if num_shadow_models < 2:
        raise ValueError(f"num_shadow_models must be >= 2, got {num_shadow_models}")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    # Ranking a uniform matrix column-wise gives each record a random set of exactly K//2 shadows.
    ranks = rng.random((num_shadow_models, len(y))).argsort(axis=0).argsort(axis=0)
    in_training = ranks < num_shadow_models // 2
    confidences = np.empty(in_training.shape)
    for k, keep in enumerate(in_training):
        model = train_fn(x[keep], y[keep])
        confidences[k] = logit_confidence(predict_fn(model, x), y)
    return ShadowScores(confidences=confidences, in_training=in_training)


def _fit_gaussians(confidences, mask, *, global_variance):
    """Per-record mean and standard deviation of the confidences where `mask` holds."""
    counts = mask.sum(axis=0)
    minimum = 1 if global_variance else 2
    if counts.min() < minimum:
        raise ValueError(
            f"every record needs >= {minimum} IN and OUT shadow models, got {counts.min()}; "
            "train more shadow models"
        )
    observed = np.where(mask, confidences, np.nan)
    mean = np.nanmean(observed, axis=0)
    if global_variance:
        # Pooled within-record deviation: how much one record's confidence varies across trainings.
        residuals = (observed - mean)[mask]
        degrees_of_freedom = max(residuals.size - mean.size, 1)
        std = np.full_like(mean, np.sqrt(np.sum(residuals**2) / degrees_of_freedom))
    else:
        std = np.nanstd(observed, axis=0, ddof=1)
    # A floor keeps the densities finite when a record's confidence never varies.
    return mean, np.maximum(std, 1e-8)


def lira_attack(
    *, probabilities, labels, is_member, shadow_scores: ShadowScores, online: bool = True,
    global_variance: bool = True,
) -> AttackResult:
    """Likelihood ratio attack (LiRA, Carlini et al. 2022).

    For each record, fits Gaussians to the shadow models' logit-scaled confidences when the record was
    IN and OUT of their training sets. Online LiRA scores the likelihood ratio of the target's
    confidence under the two; offline LiRA only uses OUT models and scores how far the target's
    confidence lies above them (one-sided test).

    Args:
        probabilities: the target model's class probabilities on the records, shape (n, num_classes).
        labels: the records' integer labels, shape (n,).
        is_member: whether each record was in the target's training set, shape (n,).
        shadow_scores: from `train_shadow_models` on the same records, in the same order.
        online: use IN and OUT shadow models (True) or OUT models only (False).
        global_variance: share one variance across records (the paper's advice below ~64 shadow models)
            instead of estimating one per record.

    Returns:
        An `AttackResult`.

    Raises:
        ValueError: if shapes disagree or there are too few IN/OUT observations per record.
    """
    target = logit_confidence(probabilities, labels)
    confidences, in_training = shadow_scores.confidences, shadow_scores.in_training
    if confidences.shape[1:] != target.shape:
        raise ValueError(
            f"shadow_scores cover {confidences.shape[1]} records but probabilities has {target.size}"
        )
    mean_out, std_out = _fit_gaussians(confidences, ~in_training, global_variance=global_variance)
    if online:
        mean_in, std_in = _fit_gaussians(confidences, in_training, global_variance=global_variance)
        scores = stats.norm.logpdf(target, mean_in, std_in) - stats.norm.logpdf(target, mean_out, std_out)
        name = "LiRA online"
    else:
        scores = stats.norm.logcdf(target, mean_out, std_out)
        name = "LiRA offline"
    return evaluate_attack(scores, is_member, attack=f"{name} ({shadow_scores.num_shadow_models} shadows)")
