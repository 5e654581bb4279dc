"""Cross-fitted gap estimates for a stated tolerance: K models in lockstep, each scored on the rows it never saw.

With one validation split, the gap that decides which candidate is kept is measured either on a few hundred
held-out rows (on a 4,000-row table a group-label cell of ~30 rows: a standard error near 0.09, so a
candidate is often kept because its gap measured low by chance) or on rows the predictor was fitted on
(optimistic where it overfits them). Both made `tolerance=0.05` overshoot on new data in most seeds of
Adult's 4,000-row sample.

Cross-fitting removes both: the training rows are cut into K folds (stratified by group and label) and K
predictor/adversary pairs train at once, pair k on every fold but k, all with the same adversary weight. At
every evaluation each row is predicted by the pair that did not train on it, so the gap is measured on all
the training rows (the binomial error of the whole table's cells, not of a fifth of them) and none of them
was fitted by the model that predicts it. The controller (`fairness.tolerance.AdversaryWeightController`)
steers the shared weight with that out-of-fold gap's upper confidence bound and keeps the candidate (one
training step of all K pairs) with the best out-of-fold accuracy among those whose bound meets the tolerance.
The returned predictor averages the K predictors' class probabilities: each was trained on (K-1)/K of the
rows, and the average varies less than any one of them.

Cost: K pairs on (K-1)/K of the rows each, about (K-1)/(1 - validation_fraction) times one fit with a
validation split (2.5 times with K = 3 and 20% held out).
"""

import keras
import numpy as np
import tensorflow as tf
from sklearn.model_selection import StratifiedKFold


def check_cross_fit(cross_fit):
    """Checks the number of folds: None (one validation split) or an integer in [2, 10].

    Raises:
        ValueError: naming the argument and the allowed range.
    """
    if cross_fit is None:
        return None
    if isinstance(cross_fit, bool) or not isinstance(cross_fit, (int, np.integer)) or not 2 <= cross_fit <= 10:
        raise ValueError(f"cross_fit must be None or an integer in [2, 10], got {cross_fit!r}")
    return int(cross_fit)


def assign_folds(group_codes, label_codes, *, folds, seed):
    """The fold of every row, stratified by (group, label) cell (by group alone where a cell is too small).

    Args:
        group_codes: int array `(n,)`.
        label_codes: int array `(n,)`.
        folds: K >= 2.
        seed: integer seed of the shuffle.

    Returns:
        int array `(n,)` of fold numbers 0..K-1.

    Raises:
        ValueError: when a group has fewer than K rows (some fold would miss it); names `cross_fit`.
    """
    group_codes = np.asarray(group_codes, dtype=np.int64)
    label_codes = np.asarray(label_codes, dtype=np.int64)
    cells = group_codes * (int(label_codes.max()) + 1) + label_codes
    counts = np.bincount(cells)
    strata = cells if (counts[counts > 0] >= folds).all() else group_codes
    if np.bincount(group_codes)[np.unique(group_codes)].min() < folds:
        raise ValueError(f"cross_fit={folds} needs at least {folds} rows in every group; give more rows or fewer folds")
    assignment = np.empty(len(group_codes), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % (2**32))
    for fold, (_, rows) in enumerate(splitter.split(np.zeros((len(strata), 1)), strata)):
        assignment[rows] = fold
    return assignment


class LockstepModel(keras.Model):
    """Trains K `ProjectedDebiasingModel`s one step each per batch, sharing one adversary weight.

    A batch is a tuple of K member batches (the members' own rows). `adversary_weight` is the variable the
    controller adapts; `compile` hands it to every member.

    Args:
        members: the K compiled `ProjectedDebiasingModel`s.
        **kwargs: passed to `keras.Model`.
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        self.members = list(members)

    def compile(self, *, adversary_weight, **kwargs):
        """Creates the shared alpha (a non-trainable variable) and gives it to every member."""
        super().compile(**kwargs)
        self.adversary_weight = keras.Variable(float(adversary_weight), trainable=False, name="adversary_weight")
        for member in self.members:
            member.adversary_weight = self.adversary_weight

    def call(self, inputs, training=False):
        return [member(batch[0], training=training) for member, batch in zip(self.members, inputs)]

    def train_step(self, data):
        logs = [member.train_step(batch) for member, batch in zip(self.members, data)]
        return {name: tf.add_n([log[name] for log in logs]) / len(logs) for name in logs[0]}


def lockstep_dataset(X, labels, groups, member_weights, fold_of_row, *, batch_size, seed):
    """The zipped, endlessly reshuffled batches of each member's rows, and the steps in an epoch.

    Member k trains on the rows outside fold k; an epoch is the member with the fewest rows seeing them once.

    Args:
        X: float32 features `(n, d)`.
        labels: int array `(n,)`.
        groups: int array `(n,)`.
        member_weights: K float arrays `(n,)`: member k's adversary sample weights (read on its rows only).
        fold_of_row: the `assign_folds` result.
        batch_size: rows per member batch.
        seed: integer seed of the shuffles.

    Returns:
        `(dataset, steps_per_epoch)`.
    """
    parts, smallest = [], len(X)
    for fold, weights in enumerate(member_weights):
        rows = np.flatnonzero(fold_of_row != fold)
        smallest = min(smallest, len(rows))
        part = tf.data.Dataset.from_tensor_slices((X[rows], (labels[rows], groups[rows], weights[rows])))
        part = part.shuffle(len(rows), seed=seed + fold, reshuffle_each_iteration=True)
        parts.append(part.repeat().batch(batch_size))
    return tf.data.Dataset.zip(tuple(parts)).prefetch(2), -(-smallest // batch_size)


def out_of_fold_logits(predictors, X, fold_of_row, *, with_average=False):
    """Each row's class logits from the predictor that did not train on it, `(n, n_classes)` numpy.

    With `with_average`, returns `(averaged, out_of_fold)`: first the logits of `averaged_predictor`.
    """
    logits = np.stack([keras.ops.convert_to_numpy(predictor(X, training=False)) for predictor in predictors])
    outside = logits[fold_of_row, np.arange(len(X))]
    if not with_average:
        return outside
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    return np.log(np.maximum(probabilities.mean(axis=0), 1e-12)), outside


def averaged_predictor(predictors, *, n_features, name="predictor"):
    """A Keras model whose logits are the log of the K predictors' averaged class probabilities."""
    inputs = keras.Input((n_features,))
    probabilities = keras.ops.mean(
        keras.ops.stack([keras.ops.softmax(predictor(inputs), axis=-1) for predictor in predictors]), axis=0
    )
    # log(p) are logits whose softmax is p; the floor keeps a saturated class finite.
    return keras.Model(inputs, keras.ops.log(keras.ops.maximum(probabilities, 1e-12)), name=name)


def snapshot_ensembles(predictors, kept, *, n_features):
    """Per predictor, the average of its kept snapshots: the ensemble of the last candidates.

    The adversarial game oscillates: from one evaluation to the next (a quarter epoch) the measured gap on full
    Adult jumped between 0.03 and 0.13 while alpha moved by a few percent, so one kept snapshot is a draw from that
    oscillation. Averaging the class probabilities of the few best candidates that met the tolerance evens it
    out (the caller measures the ensemble's gap again and keeps it only if it still meets the tolerance).

    Args:
        predictors: the K Keras predictors (K = 1 without cross-fitting), whose architecture is cloned.
        kept: snapshots from `AdversaryWeightController.kept`: each a list of weights per controlled model,
            predictor k's at index `2 k` (the controller's models are predictor/adversary pairs).
        n_features: input width.

    Returns:
        K Keras models, each averaging predictor k's class probabilities over the snapshots.
    """
    ensembles = []
    for fold, predictor in enumerate(predictors):
        members = []
        for number, snapshot in enumerate(kept):
            member = keras.models.clone_model(predictor)
            member.name = f"{predictor.name}_snapshot_{number}"
            member.set_weights(snapshot[2 * fold])
            members.append(member)
        ensembles.append(averaged_predictor(members, n_features=n_features, name=f"{predictor.name}_ensemble"))
    return ensembles
