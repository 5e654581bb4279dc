"""Meeting a stated fairness tolerance on held-out data by adapting the adversary's weight during training.

The adversarial estimators take the strength of their adversary (alpha, or the gradient reversal lambda) as a
number, but what a user can state is the constraint: "equalized-odds difference at most 0.05", "no probe
recovers the group with balanced accuracy above chance + 0.02". How much adversary that takes depends on the
table, its size and the scale of its features, so a weight tuned on one table does not carry over.

With a tolerance, the estimators carve a validation split from the training data (stratified by group and
label; never the test data; `AdversarialDebiasing` cross-fits instead by default, `fairness.cross_fit`), train
on the rest, and let `AdversaryWeightController` run a dual update on the
adversary weight w every few steps:

    violation v = the constraint's gap (hard predictions on the validation split and/or on all the training
                  rows: AdversarialDebiasing's `violation_rows`; fresh probes on the validation split)
    log w <- log w + step_size * clip((v - tolerance) / tolerance, -1, 1)

so w grows while the constraint is violated and shrinks while it is slack (the Lagrange multiplier of the
constraint, in log space so that it moves across orders of magnitude at the same pace on any table). The
adversarial game oscillates, so the model at the last step is not the one to keep: every evaluation is a
candidate, and at the end the controller restores the candidate with the best validation score among those
with v <= tolerance (or, when none has, the one with the smallest v, with a warning). The estimators report
the selected candidate's validation violation v and weight.

The step is small (0.05 on log w per evaluation, four evaluations an epoch: w moves by at most a factor
e^0.2 an epoch) and w stays within `WEIGHT_BOUNDS`: a violation measured on a few hundred validation rows is
noisy, and with larger steps w overshot to the hundreds within a few epochs, where the predictor collapsed
to a constant (exactly fair, and useless) and did not recover once w came down again.

What this does not remove: the violation of the kept candidate is measured on finite data and the
candidate was picked partly because its measured violation was low, so the violation on new data is larger,
by about the standard error of the measurement (recorded per candidate in the history: the binomial error of
the two group rates behind the gap; a few hundredths when a group has a few hundred rows in a cell). On the
held-out rows alone this was the dominant error on Adult (the women with income > 50K); on all the training
rows (fitted and held out) it is smaller, but the fitted rows make the measurement optimistic where the
predictor overfits them. `AdversarialDebiasing` takes the larger of the two by default; holding out more rows
(`validation_fraction`) shrinks the error too, at the price of fewer rows fitted.

`group_rate_gap` computes the group metrics of `fairlearn.metrics` (demographic-parity, equalized-odds and
equal-opportunity differences) with `np.bincount`: the controller evaluates them hundreds of times per fit,
and fairlearn's `MetricFrame` takes about 0.1 s per call. The tests check that both agree.
"""

import math
import warnings

import keras
import numpy as np
from sklearn.model_selection import train_test_split

# w stays within these bounds (on standardised features): below, the adversary's term vanishes next to the
# task's; above, it swamps it and the predictor collapses to a constant.
WEIGHT_BOUNDS = (1e-3, 10.0)


def check_tolerance(tolerance, *, upper=1.0):
    """Checks a tolerance: None (no constraint) or a number in (0, upper].

    Raises:
        ValueError: naming the argument and the allowed range.
    """
    if tolerance is None:
        return None
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.floating, np.integer)):
        raise ValueError(f"tolerance must be None or a number in (0, {upper:g}], got {tolerance!r}")
    if not 0.0 < tolerance <= upper:
        raise ValueError(f"tolerance must be None or a number in (0, {upper:g}], got {tolerance!r}")
    return float(tolerance)


def check_validation_fraction(validation_fraction):
    """Checks the share of the training data held out for the tolerance, in [0.05, 0.5].

    Raises:
        ValueError: naming the argument and the allowed range.
    """
    if isinstance(validation_fraction, bool) or not 0.05 <= validation_fraction <= 0.5:
        raise ValueError(f"validation_fraction must be in [0.05, 0.5], got {validation_fraction!r}")
    return float(validation_fraction)


def check_standardize(standardize):
    """Checks the `standardize` parameter: None ("only with a tolerance"), True or False.

    Raises:
        ValueError: naming the argument and the allowed values.
    """
    if standardize not in (None, True, False):
        raise ValueError(f"standardize must be None, True or False, got {standardize!r}")
    return standardize


def standardization(X, *, tolerance, standardize, rows=None):
    """The mean and scale that standardise X's columns, or `(None, None)` when they are not standardised.

    Args:
        X: float32 features `(n, d)`.
        tolerance: the estimator's tolerance (None: no constraint stated).
        standardize: the estimator's parameter; None standardises only when a tolerance is set.
        rows: the rows trained on (None: all), whose statistics are used.

    Returns:
        `(mean, scale)` float32 arrays `(d,)` (a constant column gets scale 1), or `(None, None)`.
    """
    if not (tolerance is not None if standardize is None else standardize):
        return None, None
    reference = X if rows is None else X[rows]
    scale = reference.std(axis=0)
    return reference.mean(axis=0).astype(np.float32), np.where(scale > 0, scale, 1.0).astype(np.float32)


def carve_validation(group_codes, label_codes, *, fraction, seed):
    """Splits row indices into a fitting part and a validation part, stratified by (group, label) cell.

    Cells with fewer than two rows cannot be stratified; then the split is stratified by group only.

    Args:
        group_codes: int array `(n,)`.
        label_codes: int array `(n,)`.
        fraction: share of the rows in the validation part.
        seed: integer seed of the split.

    Returns:
        `(fit_indices, validation_indices)`, sorted int arrays.

    Raises:
        ValueError: if the validation part would miss a group (too few rows for the fraction).
    """
    group_codes = np.asarray(group_codes)
    label_codes = np.asarray(label_codes)
    cells = group_codes.astype(np.int64) * (int(label_codes.max()) + 1) + label_codes
    counts = np.bincount(cells)
    strata = cells if (counts[counts > 0] >= 2).all() else group_codes
    indices = np.arange(len(group_codes))
    try:
        fit, validation = train_test_split(indices, test_size=fraction, stratify=strata, random_state=seed)
    except ValueError as error:
        raise ValueError(
            f"cannot hold out validation_fraction={fraction} of {len(indices)} rows with every group in both "
            f"parts ({error}); give more rows or a larger validation_fraction"
        ) from error
    if len(np.unique(group_codes[validation])) < len(np.unique(group_codes)):
        raise ValueError(
            f"the validation part (validation_fraction={fraction}) misses a group; give more rows or a larger "
            "validation_fraction"
        )
    return np.sort(fit), np.sort(validation)


def group_rate_gap(
    label_codes, predicted_codes, group_codes, *, constraint, n_classes=2, with_error=False, bound_multiplier=None
):
    """The largest gap between groups in the rate the constraint equalises (fairlearn's definitions).

    * demographic_parity: P(prediction = c | group), largest max-min gap over classes c; for binary labels
      this is `fairlearn.metrics.demographic_parity_difference`.
    * equalized_odds: P(prediction = c | label = k, group), largest gap over (k, c); for binary labels this
      is `equalized_odds_difference` (the larger of the true- and false-positive-rate gaps).
    * equal_opportunity: P(prediction = 1 | label = 1, group), the true-positive-rate gap
      (`equal_opportunity_difference`).

    A (label, group) cell without rows is left out.

    Args:
        label_codes: int array `(n,)` of true label codes 0..n_classes-1.
        predicted_codes: int array `(n,)` of predicted label codes.
        group_codes: int array `(n,)` of group codes 0..k-1.
        constraint: one of `fairness.adversarial.CONSTRAINTS`.
        n_classes: number of label codes.
        with_error: also return the binomial standard error of the largest gap,
            `sqrt(r1 (1 - r1) / n1 + r2 (1 - r2) / n2)` for the two groups' rates that make it.
        bound_multiplier: None, or z >= 0: also return the upper bound `max over (label, class) of
            gap + z * standard_error`, each rate gap with its own cells' error. The largest gap alone is not
            enough: on Adult the false-positive-rate gap (cells of thousands of rows, an error of ~0.01) was
            often the largest while the true-positive-rate gap, measured a little lower on a cell of ~150
            women, carried an error of ~0.04 and was the one that overshot on new data.

    Returns:
        The gap, a float in [0, 1]; with `with_error`, `(gap, standard_error)`; with `bound_multiplier`,
        `(gap, standard_error, bound)`.
    """
    label_codes = np.asarray(label_codes, dtype=np.int64)
    predicted_codes = np.asarray(predicted_codes, dtype=np.int64)
    group_codes = np.asarray(group_codes, dtype=np.int64)
    n_groups = int(group_codes.max()) + 1
    if constraint == "demographic_parity":
        conditions = np.zeros_like(label_codes)  # one condition: everyone
        n_conditions = 1
    else:
        conditions, n_conditions = label_codes, n_classes
    if constraint == "equal_opportunity":
        keep = label_codes == 1
        conditions, predicted_codes, group_codes = conditions[keep], predicted_codes[keep], group_codes[keep]
    cell = conditions * n_groups + group_codes
    totals = np.bincount(cell, minlength=n_conditions * n_groups).reshape(n_conditions, n_groups)
    hits = np.bincount(
        cell * n_classes + predicted_codes, minlength=n_conditions * n_groups * n_classes
    ).reshape(n_conditions, n_groups, n_classes)
    gap, error, bound = 0.0, 0.0, 0.0
    z = 0.0 if bound_multiplier is None else float(bound_multiplier)
    classes = [1] if constraint == "equal_opportunity" else range(n_classes)
    for condition in range(n_conditions):
        present = totals[condition] > 0
        if present.sum() < 2:
            continue
        counts = totals[condition][present]
        rates = hits[condition][present] / counts[:, None]
        for c in classes:
            high, low = int(np.argmax(rates[:, c])), int(np.argmin(rates[:, c]))
            this_error = math.sqrt(sum(rates[g, c] * (1 - rates[g, c]) / counts[g] for g in (high, low)))
            if rates[high, c] - rates[low, c] > gap:
                gap, error = float(rates[high, c] - rates[low, c]), this_error
            bound = max(bound, float(rates[high, c] - rates[low, c]) + z * this_error)
    if bound_multiplier is not None:
        return gap, error, bound
    return (gap, error) if with_error else gap


class AdversaryWeightController(keras.callbacks.Callback):
    """Adapts an adversary weight to meet a tolerance on validation data and keeps the best candidate.

    Every `interval` training steps it calls `measure()`, which returns `(violation, score)` of the current
    models (on the validation split, or whatever rows `measure` reads), records it, keeps a copy of `models`'
    weights when the violation meets the tolerance and the score is the best so far, and updates the weight
    variable by the dual step of the
    module docstring. At the end of training it restores the kept candidate (the least-violating one when
    none met the tolerance, with a `RuntimeWarning`).

    Args:
        weight: the non-trainable Keras variable holding the adversary weight (alpha or lambda).
        measure: callable `() -> (violation, score)`, `() -> (violation, score, standard_error)` or
            `() -> (violation, score, standard_error, bound)`; larger scores are better; a returned bound
            replaces `violation + error_multiplier * standard_error`.
        error_multiplier: z >= 0; the quantity held to the tolerance (selection and dual step) is the upper
            bound `violation + z * standard_error` (0: the point estimate; 1.28: a one-sided 90% bound).
        tolerance: the largest acceptable violation, > 0.
        models: the Keras models whose weights make a candidate.
        interval: training steps between evaluations, >= 1; None evaluates `evaluations_per_epoch` times an
            epoch.
        evaluations_per_epoch: used when `interval` is None, >= 1.
        step_size: the dual step on log w per evaluation, > 0.
        description: what is measured, for the warning (e.g. "equalized-odds difference").
        keep: how many of the best-scoring candidates that meet the tolerance to keep, >= 1; the first is
            restored, all of them are in `kept` (for an ensemble).

    Attributes:
        history: one dict per evaluation: step, weight, violation, standard_error, bound, score.
        selected: the restored candidate's dict, plus "meets_tolerance"; None before training ends.
        kept: after training, the weights (one list per model) of up to `keep` candidates that met the
            tolerance, best score first; empty when none met it.
    """

    def __init__(
        self,
        *,
        weight,
        measure,
        tolerance,
        models,
        interval=None,
        evaluations_per_epoch=4,
        step_size=0.05,
        error_multiplier=0.0,
        description="constraint violation",
        keep=1,
    ):
        super().__init__()
        if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1:
            raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
        if interval is not None and interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")
        if evaluations_per_epoch < 1:
            raise ValueError(f"evaluations_per_epoch must be >= 1, got {evaluations_per_epoch}")
        if step_size <= 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        if not error_multiplier >= 0:
            raise ValueError(f"error_multiplier must be >= 0, got {error_multiplier}")
        self.weight = weight
        self.measure = measure
        self.tolerance = check_tolerance(tolerance)
        self.models = list(models)
        self.interval = interval
        self.evaluations_per_epoch = evaluations_per_epoch
        self.step_size = float(step_size)
        self.error_multiplier = float(error_multiplier)
        self.description = description
        self.keep = int(keep)
        self.history = []
        self.selected = None
        self.kept = []

    def on_train_begin(self, logs=None):
        if self.interval is None:
            steps = self.params.get("steps")
            if not steps:
                raise ValueError("interval must be given when fit does not know its number of steps per epoch")
            self._interval = max(1, steps // self.evaluations_per_epoch)
        else:
            self._interval = self.interval
        self._step = 0
        self.history = []
        self.selected = None
        self.kept = []
        self._meeting = []  # (score, record, weights) of the best-scoring candidates meeting the tolerance
        self._least = None  # (violation, record, weights) of the least-violating candidate
        start = min(max(float(keras.ops.convert_to_numpy(self.weight)), WEIGHT_BOUNDS[0]), WEIGHT_BOUNDS[1])
        self.weight.assign(start)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self._interval == 0:
            self._evaluate()

    def _evaluate(self):
        violation, score, *rest = self.measure()
        error = float(rest[0]) if rest else 0.0
        weight = float(keras.ops.convert_to_numpy(self.weight))
        bound = float(rest[1]) if len(rest) > 1 else float(violation) + self.error_multiplier * error
        record = {
            "step": self._step,
            "weight": weight,
            "violation": float(violation),
            "standard_error": error,
            "bound": bound,
            "score": float(score),
        }
        self.history.append(record)
        if bound <= self.tolerance and (len(self._meeting) < self.keep or score > self._meeting[-1][0]):
            self._meeting = sorted(self._meeting + [(score, record, self._snapshot())],
                                   key=lambda candidate: -candidate[0])[: self.keep]
        if self._least is None or bound < self._least[0]:
            self._least = (bound, record, self._snapshot())
        relative = min(max((bound - self.tolerance) / self.tolerance, -1.0), 1.0)
        updated = weight * math.exp(self.step_size * relative)
        self.weight.assign(min(max(updated, WEIGHT_BOUNDS[0]), WEIGHT_BOUNDS[1]))

    def _snapshot(self):
        return [[np.array(value) for value in model.get_weights()] for model in self.models]

    def on_train_end(self, logs=None):
        if not self.history or self.history[-1]["step"] != self._step:
            self._evaluate()  # the last steps are a candidate too
        if self._meeting:
            _, record, weights = self._meeting[0]
            self.kept = [candidate[2] for candidate in self._meeting]
        else:
            _, record, weights = self._least
            warnings.warn(
                f"no candidate met the tolerance {self.tolerance:g} on the rows measured: keeping the one "
                f"with the smallest {self.description} ({record['violation']:.4f} ± "
                f"{record['standard_error']:.4f}); train longer or allow a larger tolerance",
                RuntimeWarning,
                stacklevel=2,
            )
        for model, values in zip(self.models, weights):
            model.set_weights(values)
        self.selected = {**record, "meets_tolerance": record["bound"] <= self.tolerance}
