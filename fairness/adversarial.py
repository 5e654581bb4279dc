"""The adversary machinery shared by the fairness models (AdversarialDebiasing, FairRepresentation, DANN).

Every model here trains a main network together with an adversary that tries to recover a group variable
(a sensitive attribute, or a domain) from the main network's output or features. This module holds what
they have in common:

* `build_mlp`: the dense sub-models (predictors, encoders, heads, adversaries).
* `encode_groups`: validation and integer coding of the group variable the adversary predicts.
* `adversary_sample_weights`: which examples the adversary sees, and with what weight, for each fairness
  constraint (LAFTR's group normalisation, Madras et al. 2018).
* `conditional_adversary_inputs`: the adversary's input when it may also see the true label (equalized
  odds / equal opportunity), as in Zhang et al. (2018).
* `adversary_loss`: the adversary's weighted cross-entropy or LAFTR's L1 loss.
* `projected_gradients`: Zhang et al.'s predictor update, which removes the component of the predictor's
  gradient that would help the adversary.
* `validate_fit_inputs`, `validate_predict_inputs`, `check_training_parameters`, `seed_keras`: the
  scikit-learn side of the estimators (checked arrays, encoded labels, reproducible Keras seeds).

Gradient reversal itself is `fairness.layers.GradientReversal`.
"""

import keras
import numpy as np
import tensorflow as tf
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

CONSTRAINTS = ("demographic_parity", "equalized_odds", "equal_opportunity")
ADVERSARY_LOSSES = ("cross_entropy", "l1")


def check_constraint(constraint):
    """Checks a fairness constraint name.

    Args:
        constraint: one of `CONSTRAINTS`.

    Returns:
        The constraint, unchanged.

    Raises:
        ValueError: if `constraint` is not one of `CONSTRAINTS`.
    """
    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}")
    return constraint


def build_mlp(
    input_dim, *, hidden_units, output_dim, seed, activation="relu", output_activation=None, name=None
):
    """A dense network: `hidden_units` layers with `activation`, then an output layer (linear by default).

    Args:
        input_dim: number of input features, >= 1.
        hidden_units: sizes of the hidden layers; empty for a linear model.
        output_dim: number of outputs, >= 1.
        seed: integer seed of the kernel initialisers, so that a fit is reproducible.
        activation: activation of the hidden layers.
        output_activation: activation of the output layer; None gives logits.
        name: name of the Keras model.

    Returns:
        A `keras.Sequential` mapping `(batch, input_dim)` to `(batch, output_dim)`.

    Raises:
        ValueError: if a size is < 1.
    """
    hidden_units = tuple(hidden_units)
    if input_dim < 1 or output_dim < 1 or any(units < 1 for units in hidden_units):
        raise ValueError(
            "input_dim, output_dim and hidden_units must be >= 1, "
            f"got {input_dim}, {output_dim}, {hidden_units}"
        )
    layers = [keras.Input(shape=(input_dim,))]
    for index, units in enumerate(hidden_units + (output_dim,)):
        is_output = index == len(hidden_units)
        layers.append(
            keras.layers.Dense(
                units,
                activation=output_activation if is_output else activation,
                kernel_initializer=keras.initializers.GlorotUniform(seed=seed + index),
            )
        )
    return keras.Sequential(layers, name=name)


def encode_groups(values, *, n_samples, name="sensitive_features"):
    """Validates a 1-D group variable and codes it as integers 0..k-1.

    Args:
        values: array-like of length `n_samples` (numbers, strings, booleans; a pandas Series, or a
            one-column DataFrame).
        n_samples: the number of rows of the features it belongs to.
        name: the argument's name, used in error messages.

    Returns:
        `(codes, groups)`: int32 codes of shape `(n_samples,)` and the sorted distinct values, with
        `groups[codes] == values`.

    Raises:
        ValueError: if the length differs from `n_samples`, if it is not 1-D, if it has missing values,
            or if it has fewer than two groups (an adversary cannot learn anything from one group).
    """
    array = np.asarray(values, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one group label per row), got shape {array.shape}")
    if len(array) != n_samples:
        raise ValueError(f"{name} must have one entry per row of X ({n_samples}), got {len(array)}")
    missing = [value is None or (isinstance(value, float) and np.isnan(value)) for value in array]
    if any(missing):
        raise ValueError(f"{name} has {sum(missing)} missing values (None/NaN); every row needs a group")
    try:
        groups, codes = np.unique(array, return_inverse=True)
    except TypeError as error:
        raise ValueError(f"{name} mixes values that cannot be compared: {error}") from error
    if len(groups) < 2:
        raise ValueError(f"{name} must contain at least 2 groups, got {len(groups)}: {list(groups)}")
    return codes.astype(np.int32), groups


def adversary_sample_weights(group_codes, label_codes, *, constraint):
    """Per-example weights of the adversary's loss for a fairness constraint (LAFTR group normalisation).

    Each cell that the constraint compares gets the same total weight, so that the adversary's loss is the
    average over cells of the per-cell error (Madras et al. 2018, eqs. 4-6) and a small group is not
    ignored:

    * demographic_parity: cells are the groups;
    * equalized_odds: cells are (group, label) pairs;
    * equal_opportunity: cells are (group, positive label) pairs; negative examples get weight 0.

    Args:
        group_codes: int array `(n,)` of group codes 0..k-1.
        label_codes: int array `(n,)` of label codes; for equal_opportunity the positive label is code 1.
        constraint: one of `CONSTRAINTS`.

    Returns:
        float32 array `(n,)` with mean 1 over the examples that have a non-zero weight.

    Raises:
        ValueError: for an unknown constraint, or for equal_opportunity with labels other than 0/1 or
            without positive examples.
    """
    check_constraint(constraint)
    group_codes = np.asarray(group_codes)
    label_codes = np.asarray(label_codes)
    if constraint == "demographic_parity":
        cells = group_codes.astype(np.int64)
        used = np.ones(len(cells), dtype=bool)
    else:
        cells = group_codes.astype(np.int64) * (int(label_codes.max()) + 1) + label_codes
        used = np.ones(len(cells), dtype=bool)
        if constraint == "equal_opportunity":
            if not np.isin(label_codes, (0, 1)).all():
                raise ValueError("equal_opportunity needs binary labels (codes 0 and 1)")
            used = label_codes == 1
            if not used.any():
                raise ValueError("equal_opportunity needs positive examples (label code 1), got none")
    _, cell_index, counts = np.unique(cells[used], return_inverse=True, return_counts=True)
    weights = np.zeros(len(cells), dtype=np.float32)
    weights[used] = used.sum() / (len(counts) * counts[cell_index])
    return weights


def conditional_adversary_inputs(inputs, labels_one_hot):
    """The adversary's input when it also knows the true label: `[inputs, onehot(y) (x) inputs]`.

    For a binary task with a single predicted probability p this is Zhang et al.'s `[p, p*y, p*(1-y)]`
    up to the order of terms; in general the outer product lets the adversary use a different map for
    each label, which is what equalized odds asks to be uninformative.

    Args:
        inputs: float tensor `(batch, d)` (predicted probabilities, or a representation).
        labels_one_hot: float tensor `(batch, c)`.

    Returns:
        float tensor `(batch, d + c * d)`.
    """
    inputs = tf.convert_to_tensor(inputs)
    labels_one_hot = tf.cast(labels_one_hot, inputs.dtype)
    outer = labels_one_hot[:, :, None] * inputs[:, None, :]
    return tf.concat([inputs, tf.reshape(outer, (-1, outer.shape[1] * outer.shape[2]))], axis=1)


def adversary_loss(group_codes, logits, weights, *, kind="cross_entropy"):
    """The adversary's weighted loss at recovering the group from its logits.

    Args:
        group_codes: int tensor `(batch,)`.
        logits: float tensor `(batch, k)`.
        weights: float tensor `(batch,)` from `adversary_sample_weights`.
        kind: "cross_entropy", or "l1" for LAFTR's loss `1 - p(true group)` (for two groups this is
            `|h(z) - a|`, Madras et al. 2018).

    Returns:
        Scalar: the mean over the batch of weight times loss.

    Raises:
        ValueError: if `kind` is not one of `ADVERSARY_LOSSES`.
    """
    if kind == "cross_entropy":
        per_example = keras.losses.sparse_categorical_crossentropy(group_codes, logits, from_logits=True)
    elif kind == "l1":
        probabilities = tf.nn.softmax(logits)
        per_example = 1.0 - tf.gather(probabilities, tf.cast(group_codes, tf.int32), axis=1, batch_dims=1)
    else:
        raise ValueError(f"kind must be one of {ADVERSARY_LOSSES}, got {kind!r}")
    weights = tf.cast(weights, per_example.dtype)
    return tf.reduce_mean(weights * per_example)


def projected_gradients(task_gradients, adversary_gradients, *, adversary_weight):
    """Zhang et al. (2018)'s predictor update direction, variable by variable.

    `g_task - proj_{g_adv} g_task - adversary_weight * g_adv`, where `g_adv` is the gradient of the
    adversary's loss with respect to the predictor's weights. The projection removes the part of the task
    step that would make the adversary's job easier; the last term moves against the adversary.

    Args:
        task_gradients: list of gradients of the task loss (None for unconnected variables).
        adversary_gradients: list of gradients of the adversary's loss, same variables and order.
        adversary_weight: scalar alpha >= 0 (a float or a tensor, so that it can follow a schedule).

    Returns:
        List of update directions for an optimizer's `apply_gradients`.
    """
    updates = []
    for task, adversary in zip(task_gradients, adversary_gradients):
        if adversary is None:
            updates.append(task)
            continue
        if task is None:
            task = tf.zeros_like(adversary)
        unit = tf.math.divide_no_nan(adversary, tf.norm(adversary))
        projection = tf.reduce_sum(task * unit) * unit
        updates.append(task - projection - tf.cast(adversary_weight, task.dtype) * adversary)
    return updates


def check_training_parameters(*, adversary_weight, epochs, batch_size, learning_rate):
    """Checks the training parameters shared by the adversarial estimators.

    Raises:
        ValueError: naming the first parameter out of range.
    """
    if not adversary_weight >= 0:
        raise ValueError(f"adversary_weight must be >= 0, got {adversary_weight}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")


def validate_fit_inputs(estimator, X, y):
    """Checks X and y for a classifier's `fit` and encodes the labels; sets `n_features_in_` and `classes_`.

    Args:
        estimator: the scikit-learn estimator being fitted.
        X: array-like `(n_samples, n_features)` of numbers without NaN.
        y: class labels `(n_samples,)`.

    Returns:
        `(X, labels)`: float32 features and int32 label codes indexing `estimator.classes_`.

    Raises:
        ValueError: for NaN/infinite or non-numeric X, a length mismatch, continuous y, or one class.
    """
    X, y = validate_data(estimator, X, y, dtype=[np.float64, np.float32])
    check_classification_targets(y)
    encoder = LabelEncoder().fit(y)
    if len(encoder.classes_) < 2:
        raise ValueError(f"y must contain at least 2 classes, got 1 class: {encoder.classes_}")
    estimator.classes_ = encoder.classes_
    return X.astype(np.float32), encoder.transform(y).astype(np.int32)


def validate_predict_inputs(estimator, X):
    """Checks that `estimator` is fitted and that X matches the features seen in `fit`.

    Returns:
        X as a float32 array.

    Raises:
        sklearn.exceptions.NotFittedError: before `fit`.
        ValueError: for NaN/infinite or non-numeric X, or another number of features.
    """
    check_is_fitted(estimator)
    return validate_data(estimator, X, dtype=[np.float64, np.float32], reset=False).astype(np.float32)


def seed_keras(random_state):
    """Seeds Keras (and NumPy, Python, TensorFlow) from a scikit-learn `random_state`.

    Keras's shuffling in `fit` draws from the global TensorFlow seed, so a reproducible fit needs the global
    seeds set; the returned integer seeds the initialisers.

    Args:
        random_state: int, `np.random.RandomState` or None (a fresh seed).

    Returns:
        The integer seed used.
    """
    seed = int(check_random_state(random_state).randint(2**31 - 1 - 10_000))
    keras.utils.set_random_seed(seed)
    return seed


class SoftmaxClassifierMixin:
    """`predict_proba` and `predict` of the Keras-backed estimators, from their `_logits(X)`."""

    def predict_proba(self, X):
        """Class probabilities.

        Args:
            X: array-like `(n_samples, n_features)`.

        Returns:
            `(n_samples, n_classes)` array, columns in the order of `classes_`.
        """
        logits = self._logits(X)
        return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1)).astype(np.float64)

    def predict(self, X):
        """Most probable class of each row.

        Args:
            X: array-like `(n_samples, n_features)`.

        Returns:
            `(n_samples,)` array of labels from `classes_`.
        """
        probabilities = self.predict_proba(X)  # first: it raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(probabilities, axis=1)]
