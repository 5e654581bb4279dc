"""Adversarial debiasing (Zhang, Lemoine & Mitchell 2018) as a scikit-learn classifier on Keras 3.

A predictor learns the task while an adversary tries to recover the sensitive attribute from the
predictor's output (demographic parity) or from the output and the true label (equalized odds, equal
opportunity). The predictor's update removes the direction that would help the adversary and then moves
against it (`fairness.adversarial.projected_gradients`).
"""

import keras
import numpy as np
import tensorflow as tf
from scipy.stats import norm
from sklearn.base import BaseEstimator, ClassifierMixin

from fairness.adversarial import (
    SoftmaxClassifierMixin,
    adversary_loss,
    adversary_sample_weights,
    build_mlp,
    check_constraint,
    check_training_parameters,
    conditional_adversary_inputs,
    encode_groups,
    projected_gradients,
    seed_keras,
    validate_fit_inputs,
    validate_predict_inputs,
)
from fairness.attribute_scores import best_candidate, cross_fitted_logistic
from fairness.cross_fit import (
    LockstepModel,
    assign_folds,
    averaged_predictor,
    check_cross_fit,
    lockstep_dataset,
    out_of_fold_logits,
    snapshot_ensembles,
)
from fairness.postprocessing import positive_probability
from fairness.rate_penalty import soft_rate_gap
from fairness.threshold_margin import attribute_thresholds
from fairness.tolerance import (
    AdversaryWeightController,
    carve_validation,
    check_standardize,
    check_tolerance,
    check_validation_fraction,
    group_rate_gap,
    standardization,
)

# The adversary used with a tolerance when none is given: see AdversarialDebiasing._adversary_setting.
TOLERANCE_ADVERSARY_HIDDEN_UNITS = (16,)
TOLERANCE_ADVERSARY_SPEED_UP = 10.0
# Where the constraint's gap is measured with a tolerance (AdversarialDebiasing's `violation_rows`): all the
# training rows, the held-out ones, or the larger of the two gaps.
VIOLATION_ROWS = ("all", "validation", "larger")
# The default one-sided confidence of the gap bound held to the tolerance (`gap_confidence`).
DEFAULT_GAP_CONFIDENCE = 0.75
# Folds of the plain logistic regression scored for the attribute-aware regime when the fit does not cross-fit.
DEFAULT_ATTRIBUTE_FOLDS = 3


class ProjectedDebiasingModel(keras.Model):
    """Trains `predictor` on the task and `adversary` on the sensitive attribute, Zhang et al.'s way.

    Each step: the adversary takes a gradient step on its cross-entropy; the predictor steps along
    `projected_gradients(task, adversary, adversary_weight)`. The batches are `(x, (labels, groups,
    adversary_weights))` with integer labels and groups and the weights of `adversary_sample_weights`.

    Args:
        predictor: Keras model mapping features to class logits `(batch, n_classes)`.
        adversary: Keras model mapping the adversary's input to group logits `(batch, n_groups)`; its input
            is the predictor's class log-probabilities (demographic parity), or those with their outer
            product with the one-hot label (`conditional_adversary_inputs`) otherwise.
        constraint: one of `fairness.adversarial.CONSTRAINTS`.
        **kwargs: passed to `keras.Model`.
    """

    def __init__(self, predictor, adversary, *, constraint, rate_penalty=False, **kwargs):
        super().__init__(**kwargs)
        self.predictor = predictor
        self.adversary = adversary
        self.constraint = check_constraint(constraint)
        self.rate_penalty = bool(rate_penalty)
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.adversary_loss_tracker = keras.metrics.Mean(name="adversary_loss")

    def compile(self, *, predictor_optimizer, adversary_optimizer, adversary_weight, **kwargs):
        """Sets the two optimizers and alpha.

        Args:
            predictor_optimizer: Keras optimizer of the predictor.
            adversary_optimizer: Keras optimizer of the adversary.
            adversary_weight: alpha >= 0; kept in the non-trainable variable `self.adversary_weight` so
                that a callback can change it during training.
            **kwargs: passed to `keras.Model.compile`.

        Raises:
            ValueError: if `adversary_weight` is negative.
        """
        if adversary_weight < 0:
            raise ValueError(f"adversary_weight must be >= 0, got {adversary_weight}")
        super().compile(**kwargs)
        self.predictor_optimizer = predictor_optimizer
        self.adversary_optimizer = adversary_optimizer
        self.adversary_weight = keras.Variable(
            float(adversary_weight), trainable=False, name="adversary_weight"
        )

    @property
    def metrics(self):
        return [self.task_loss_tracker, self.adversary_loss_tracker]

    def call(self, inputs, training=False):
        return self.predictor(inputs, training=training)

    def _adversary_logits(self, class_logits, labels):
        # Log-probabilities rather than probabilities: they do not saturate, which keeps the adversary's
        # gradient alive for confident predictions (the role of Zhang et al.'s learnt sharpening c).
        inputs = tf.nn.log_softmax(class_logits)
        if self.constraint != "demographic_parity":
            labels_one_hot = tf.one_hot(labels, class_logits.shape[-1], dtype=inputs.dtype)
            inputs = conditional_adversary_inputs(inputs, labels_one_hot)
        return self.adversary(inputs, training=True)

    def train_step(self, data):
        features, (labels, groups, weights) = data
        with tf.GradientTape(persistent=True) as tape:
            class_logits = self.predictor(features, training=True)
            task_loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, class_logits, from_logits=True)
            )
            group_loss = adversary_loss(groups, self._adversary_logits(class_logits, labels), weights)
            if self.rate_penalty:
                gap = soft_rate_gap(class_logits, labels, groups, constraint=self.constraint,
                                    n_groups=self.adversary.output_shape[-1])
        predictor_variables = self.predictor.trainable_variables
        adversary_variables = self.adversary.trainable_variables
        updates = projected_gradients(
            tape.gradient(task_loss, predictor_variables),
            tape.gradient(group_loss, predictor_variables),
            adversary_weight=self.adversary_weight,
        )
        if self.rate_penalty:  # `fairness.rate_penalty`: alpha times the batch's soft gap, descended
            updates = [
                update if gradient is None else update + tf.cast(self.adversary_weight, gradient.dtype) * gradient
                for update, gradient in zip(updates, tape.gradient(gap, predictor_variables))
            ]
        adversary_gradients = tape.gradient(group_loss, adversary_variables)
        del tape
        self.predictor_optimizer.apply_gradients(zip(updates, predictor_variables))
        self.adversary_optimizer.apply_gradients(zip(adversary_gradients, adversary_variables))
        self.task_loss_tracker.update_state(task_loss)
        self.adversary_loss_tracker.update_state(group_loss)
        return {metric.name: metric.result() for metric in self.metrics}


class AdversarialDebiasing(SoftmaxClassifierMixin, ClassifierMixin, BaseEstimator):
    """Classifier whose predictions an adversary cannot use to recover a sensitive attribute.

    Zhang, Lemoine & Mitchell (2018), "Mitigating unwanted biases with adversarial learning". The predictor
    is a dense network (`hidden_units=()` gives the paper's logistic regression); the adversary is a dense
    network on the predictor's class log-probabilities, and for "equalized_odds"/"equal_opportunity" also on
    their product with the true label. The adversary's loss uses LAFTR's group normalisation (every group,
    or group-label cell, counts equally; see `fairness.adversarial.adversary_sample_weights`), so a small
    group is not ignored.

    `fit(X, y, sensitive_features=s)` trains with the adversary. With `debias=False` the same predictor is
    trained without adversary and `sensitive_features` is not needed: the unconstrained baseline, and the
    configuration that scikit-learn's generic estimator checks exercise (they call `fit(X, y)`).
    With `debias=True`, `fit(X, y)` without sensitive features raises a ValueError rather than silently
    training an unconstrained model. With metadata routing enabled, `set_fit_request(sensitive_features=True)`
    lets pipelines and searches pass the sensitive features to `fit`.

    **Stating the constraint instead of alpha.** With `tolerance` set, `fit` cross-fits (`cross_fit`, below; the
    default), or with `cross_fit=None` holds out `validation_fraction` of the training rows (stratified by group
    and label) and trains on the rest, and adapts alpha during training so that the constraint's gap
    (demographic-parity, equalized-odds or equal-opportunity difference of the hard predictions, as fairlearn
    defines them) is at most `tolerance`: a dual update on log alpha every quarter epoch, and the candidate most
    accurate on the held-out rows among those that meet the tolerance is kept (`fairness.tolerance`). By default
    (`violation_rows="larger"`) the gap is the larger of two measurements: on the held-out rows, and on all the
    training rows (fitted and held out together). The held-out gap alone is noisy where a group-label cell is
    small (235 women with income > 50K among Adult's held-out rows: a standard error of about 0.04), so a
    candidate could be kept because it measured low by chance; the gap on all the rows is less noisy but
    optimistic where the predictor overfits its fitted rows (a few thousand rows, many epochs). Taking the
    larger guards against both: on Adult it gave the same test gaps as the all-rows measure; on two of the three
    smaller tables of the README it carried over better than either, on the third better than the held-out gap
    alone (`experiments/fairness_peers_adult.py`). `violation_rows="all"` or `"validation"` use one measurement
    only. `adversary_weight` is then only alpha's starting value, and the adversary defaults to a 16-unit hidden
    layer trained ten times faster than the predictor, which follows a changing alpha without the oscillation of
    the paper's linear one. The features are standardised inside the estimator (`standardize`), so the same
    tolerance works whatever their scale. Without `tolerance` the estimator trains with the fixed alpha on all
    rows, as before.

    **The gap itself in the loss, and an ensemble of the last candidates.** With `tolerance` (and
    `rate_penalty`, the default) the predictor also descends alpha times the batch's soft group-rate gap
    (`fairness.rate_penalty`): on Adult's 4,000-row sample the adversary alone left the gap at 0.05-0.09 with
    alpha at its upper bound. With `ensemble=M` (default 5) the returned predictor averages the class
    probabilities of the M most accurate candidates that met the tolerance, if that average meets it too on
    the same rows (`fairness.cross_fit.snapshot_ensembles`): the game oscillates, and one snapshot is a draw
    from the oscillation.

    **A bound, not a point estimate.** The kept candidate was picked partly because its measured gap was low,
    so the point estimate is optimistic on new data. With `gap_confidence=q` what is held to the tolerance
    (to pick the candidate and to steer alpha) is `gap + z_q * standard_error` on each set of rows measured
    (the binomial error of the two group rates behind the gap; `z_q` the standard normal quantile), the
    larger over the sets for `violation_rows="larger"`. Each rate gap (for equalized odds: the true- and the
    false-positive-rate gap) is bounded with its own cells' error and the largest bound is held, so a gap
    measured on a small cell (Adult's women with income > 50K) cannot hide behind a larger gap measured
    precisely on a big one. `gap_confidence=None` holds the point estimate.

    **Two regimes at prediction.** `predict(X)` / `predict_proba(X)` read the features only: the
    in-processing regime, which needs no sensitive attribute at prediction. With `tolerance` set and a binary
    label, `fit` also fits group-specific randomised thresholds (`fairness.postprocessing`, Hardt et al. 2016
    with a tolerance) on two scores, the kept predictor's P(y = 1) and a cross-fitted plain logistic
    regression's, and keeps the one whose post-processed accuracy on held-out rows is higher
    (`fairness.attribute_scores`: the debiased score has lost accuracy the thresholds need not give up);
    `predict(X, sensitive_features=s)` / `predict_proba(X, sensitive_features=s)` apply them: the constraint
    is then met up to `postprocess_tolerance` (default: `tolerance`) on new rows with probability about
    `max(gap_confidence, 0.9)` (`fairness.threshold_margin`: a bootstrap margin that also covers the optimism
    of choosing the thresholds); the predictions are randomised (`predict`'s `random_state`). This reads
    the sensitive attribute of the person being classified, which some laws treat as disparate treatment:
    see the fairness guide.

    Args:
        constraint: "demographic_parity", "equalized_odds" or "equal_opportunity" (binary labels; the
            adversary only learns from positive examples).
        adversary_weight: alpha, the weight of the term that moves the predictor against the adversary (with
            `tolerance`: its starting value).
        tolerance: None, or the largest acceptable gap of the constraint on the validation split, in (0, 1].
        validation_fraction: share of the training rows held out when `tolerance` is set, in [0.05, 0.5]
            (not with `cross_fit`).
        cross_fit: K in [2, 10] (default 3), or None (one validation split): with `tolerance`, train K
            predictor/adversary pairs in lockstep on K-fold splits, measure every candidate's gap and accuracy
            out of fold on all the training rows, and return the average of the kept pairs
            (`fairness.cross_fit`; about 2.5 times the training time at K = 3). `validation_fraction` and
            `violation_rows` are then unused. The default since it held `tolerance=0.05` on the test split in
            10 of 10 seeds of Adult's 4,000-row sample, against 8 of 10 with one split (the fairness guide).
        gap_confidence: None, or the one-sided confidence in [0.5, 1) of the upper bound on the gap that is
            held to the tolerance (in training; the group thresholds use at least 0.9); None holds the point
            estimate.
        postprocess_tolerance: None (the same as `tolerance`) or the gap in (0, 1] the group thresholds of
            `predict(X, sensitive_features=s)` are fitted to.
        violation_rows: where the constraint's gap is measured when `tolerance` is set: "larger" (the larger
            of the next two), "all" (the training rows, fitted and held out) or "validation" (the held-out rows
            only).
        rate_penalty: with `tolerance`, also descend alpha times the soft group-rate gap (True or False).
        ensemble: with `tolerance`, average up to this many of the most accurate candidates that met it, an
            integer in [1, 20] (1: the single most accurate one).
        standardize: whether to standardise the features with the mean and standard deviation of the rows
            trained on; None means "only when `tolerance` is set".
        debias: False trains the predictor alone (sensitive features ignored).
        hidden_units: hidden layer sizes of the predictor.
        adversary_hidden_units: hidden layer sizes of the adversary (() is the paper's linear adversary);
            None: `()` without `tolerance`, `TOLERANCE_ADVERSARY_HIDDEN_UNITS` with it.
        epochs: passes over the training data.
        batch_size: examples per step.
        learning_rate: Adam learning rate of the predictor (and of the adversary, unless
            `adversary_learning_rate` is given).
        adversary_learning_rate: Adam learning rate of the adversary; None: `learning_rate` without
            `tolerance`, `TOLERANCE_ADVERSARY_SPEED_UP * learning_rate` with it.
        random_state: int, RandomState or None; seeds Keras (initialisation and shuffling) in `fit`.
        verbose: Keras `fit` verbosity.
        run_eagerly: train without compiling the train step (Keras `compile(run_eagerly=...)`): slower per
            step, but for a few dozen steps on tiny data quicker than tracing, and easier to debug.

    Attributes:
        classes_: the class labels.
        groups_: the sensitive groups seen in `fit` (debias=True only).
        n_features_in_: number of features.
        predictor_: the fitted Keras predictor (features -> class logits).
        adversary_: the fitted Keras adversary (debias=True only; with `cross_fit`, the first pair's).
        history_: the Keras training history (`dict` of per-epoch losses).
        adversary_weight_: the alpha the returned predictor was trained with (with `tolerance`: alpha when the
            kept candidate was taken; without adversary: 0).
        constraint_violation_: the constraint's gap of the returned predictor on the rows `violation_rows`
            names (with `cross_fit`: the larger-bounded of the pairs' out-of-fold gap and the averaged
            predictor's gap on all the training rows; None without `tolerance`).
        ensemble_size_: with `tolerance`, how many candidates the returned predictor averages.
        adaptation_history_: with `tolerance`, one dict per evaluation (step, weight, violation, score =
            accuracy on the held-out rows); otherwise empty.
        feature_mean_, feature_scale_: the standardisation applied to X (None when `standardize` is off).
        group_thresholds_: the `fairness.postprocessing.GroupThresholds` of the attribute-aware predictions
            (None without `tolerance` or with more than two classes).
        attribute_score_, attribute_accuracies_: the score they act on ("debiased" or "logistic_regression") and
            each candidate's post-processed accuracy on its held-out scores; attribute_scorer_: the
            `fairness.attribute_scores.CrossFittedLogistic` when that score was kept, else None.
    """

    def __init__(
        self,
        *,
        constraint="demographic_parity",
        adversary_weight=0.1,
        tolerance=None,
        validation_fraction=0.2,
        cross_fit=3,
        gap_confidence=DEFAULT_GAP_CONFIDENCE,
        postprocess_tolerance=None,
        violation_rows="larger",
        rate_penalty=True,
        ensemble=5,
        standardize=None,
        debias=True,
        hidden_units=(64,),
        adversary_hidden_units=None,
        epochs=50,
        batch_size=128,
        learning_rate=1e-3,
        adversary_learning_rate=None,
        random_state=None,
        verbose=0,
        run_eagerly=False,
    ):
        self.constraint = constraint
        self.adversary_weight = adversary_weight
        self.tolerance = tolerance
        self.validation_fraction = validation_fraction
        self.cross_fit = cross_fit
        self.gap_confidence = gap_confidence
        self.postprocess_tolerance = postprocess_tolerance
        self.violation_rows = violation_rows
        self.rate_penalty = rate_penalty
        self.ensemble = ensemble
        self.standardize = standardize
        self.debias = debias
        self.hidden_units = hidden_units
        self.adversary_hidden_units = adversary_hidden_units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.adversary_learning_rate = adversary_learning_rate
        self.random_state = random_state
        self.verbose = verbose
        self.run_eagerly = run_eagerly

    def fit(self, X, y, *, sensitive_features=None):
        """Trains the predictor (and, if `debias`, the adversary).

        Args:
            X: array-like `(n_samples, n_features)` of numbers, no NaN.
            y: class labels `(n_samples,)`, at least two classes.
            sensitive_features: group of each row `(n_samples,)`, at least two groups, no missing values;
                required when `debias=True`.

        Returns:
            self.

        Raises:
            ValueError: for a bad parameter, bad X/y (NaN, wrong dtype, length mismatch, one class), or a
                missing or bad `sensitive_features`.
        """
        check_constraint(self.constraint)
        check_training_parameters(
            adversary_weight=self.adversary_weight,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
        )
        if self.adversary_learning_rate is not None and not self.adversary_learning_rate > 0:
            raise ValueError(f"adversary_learning_rate must be None or > 0, got {self.adversary_learning_rate}")
        tolerance = check_tolerance(self.tolerance)
        check_validation_fraction(self.validation_fraction)
        cross_fit = check_cross_fit(self.cross_fit)
        cross_fit = cross_fit if tolerance is not None else None  # without a tolerance nothing is measured
        if self.gap_confidence is not None and (
            isinstance(self.gap_confidence, bool) or not 0.5 <= self.gap_confidence < 1.0
        ):
            raise ValueError(f"gap_confidence must be None or in [0.5, 1), got {self.gap_confidence!r}")
        postprocess_tolerance = check_tolerance(self.postprocess_tolerance)
        if isinstance(self.ensemble, bool) or not isinstance(self.ensemble, (int, np.integer)) or not (
            1 <= self.ensemble <= 20
        ):
            raise ValueError(f"ensemble must be an integer in [1, 20], got {self.ensemble!r}")
        if self.rate_penalty not in (True, False):
            raise ValueError(f"rate_penalty must be True or False, got {self.rate_penalty!r}")
        if self.violation_rows not in VIOLATION_ROWS:
            raise ValueError(f"violation_rows must be one of {VIOLATION_ROWS}, got {self.violation_rows!r}")
        check_standardize(self.standardize)
        if tolerance is not None and not self.debias:
            raise ValueError("tolerance needs debias=True: without the adversary nothing can meet it")
        X, labels = validate_fit_inputs(self, X, y)
        if self.debias and sensitive_features is None:
            raise ValueError(
                "sensitive_features is required when debias=True; "
                "use debias=False for the unconstrained baseline"
            )
        for stale in ("adversary_", "groups_", "ensemble_size_"):  # left by an earlier fit with debias=True
            self.__dict__.pop(stale, None)
        seed = seed_keras(self.random_state)
        if self.debias:
            groups, self.groups_ = encode_groups(sensitive_features, n_samples=len(X))
        fit_rows = validation_rows = fold_of_row = None
        if cross_fit is not None:
            fold_of_row = assign_folds(groups, labels, folds=cross_fit, seed=seed)
        elif tolerance is not None:
            fit_rows, validation_rows = carve_validation(
                groups, labels, fraction=self.validation_fraction, seed=seed
            )
        self.feature_mean_, self.feature_scale_ = standardization(
            X, tolerance=tolerance, standardize=self.standardize, rows=fit_rows
        )
        if self.feature_mean_ is not None:
            X = (X - self.feature_mean_) / self.feature_scale_
        self.predictor_ = build_mlp(
            X.shape[1],
            hidden_units=self.hidden_units,
            output_dim=len(self.classes_),
            seed=seed,
            name="predictor",
        )
        self.adversary_weight_ = float(self.adversary_weight) if self.debias else 0.0
        self.constraint_violation_ = None
        self.group_thresholds_ = self.attribute_score_ = self.attribute_scorer_ = None
        self.attribute_accuracies_ = {}
        self.adaptation_history_ = []
        if self.debias:
            if cross_fit is not None:
                history, scores = self._fit_cross_fitted(X, labels, groups, seed, fold_of_row)
            else:
                history, scores = self._fit_adversarially(X, labels, groups, seed, fit_rows, validation_rows), None
            if tolerance is not None and len(self.classes_) == 2:
                self._fit_attribute_regime(X, labels, groups, validation_rows, fold_of_row, seed,
                                           tolerance=postprocess_tolerance or tolerance, scores=scores)
        else:
            self.predictor_.compile(
                optimizer=keras.optimizers.Adam(self.learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                run_eagerly=self.run_eagerly,
            )
            history = self.predictor_.fit(
                X, labels, epochs=self.epochs, batch_size=self.batch_size, verbose=self.verbose
            )
        self.history_ = history.history
        return self

    def _pair(self, predictor, seed, *, name="adversary"):
        # The predictor with a fresh adversary, compiled: the model that trains them.
        n_classes = len(self.classes_)
        conditional = self.constraint != "demographic_parity"
        adversary = build_mlp(
            n_classes * (1 + n_classes) if conditional else n_classes,
            hidden_units=self._adversary_setting("hidden_units"),
            output_dim=len(self.groups_),
            seed=seed,
            name=name,
        )
        model = ProjectedDebiasingModel(predictor, adversary, constraint=self.constraint,
                                        rate_penalty=self.tolerance is not None and self.rate_penalty)
        model.compile(
            predictor_optimizer=keras.optimizers.Adam(self.learning_rate),
            adversary_optimizer=keras.optimizers.Adam(self._adversary_setting("learning_rate")),
            adversary_weight=self.adversary_weight,
            run_eagerly=self.run_eagerly,
        )
        return model

    def _fit_cross_fitted(self, X, labels, groups, seed, fold_of_row):
        # `fairness.cross_fit`: K pairs in lockstep, the gap and accuracy of every candidate measured out of fold.
        folds = int(fold_of_row.max()) + 1
        predictors = [self.predictor_] + [
            build_mlp(X.shape[1], hidden_units=self.hidden_units, output_dim=len(self.classes_), seed=seed + fold,
                      name=f"predictor_{fold}")
            for fold in range(1, folds)
        ]
        members = [self._pair(predictor, seed + 1000 + fold, name=f"adversary_{fold}")
                   for fold, predictor in enumerate(predictors)]
        model = LockstepModel(members)
        model.compile(adversary_weight=self.adversary_weight, run_eagerly=self.run_eagerly)
        member_weights = []
        for fold in range(folds):
            # Recomputed on each pair's rows, so that every cell counts equally for each adversary.
            rows, weights = fold_of_row != fold, np.zeros(len(X), dtype=np.float32)
            weights[rows] = adversary_sample_weights(groups[rows], labels[rows], constraint=self.constraint)
            member_weights.append(weights)
        dataset, steps = lockstep_dataset(X, labels, groups, member_weights, fold_of_row,
                                          batch_size=self.batch_size, seed=seed)
        z = 0.0 if self.gap_confidence is None else float(norm.ppf(self.gap_confidence))

        def measure():
            # The out-of-fold predictions make the gap honest for one pair; the averaged predictor that is
            # returned predicts more sharply than any pair (on Adult's 4k sample its test gap was up to 0.05
            # above its pairs' out-of-fold gap), so its own gap on all the rows is held to the tolerance too.
            logits, outside = out_of_fold_logits(predictors, X, fold_of_row, with_average=True)
            gaps = [group_rate_gap(labels, np.argmax(values, axis=1), groups, constraint=self.constraint,
                                   n_classes=len(self.classes_), bound_multiplier=z) for values in (outside, logits)]
            gap, error, bound = max(gaps, key=lambda gap: gap[2])
            accuracy = np.mean(np.argmax(outside, axis=1) == labels)
            return gap, float(accuracy), error, bound

        controller = AdversaryWeightController(
            weight=model.adversary_weight, measure=measure, tolerance=self.tolerance,
            models=[part for member in members for part in (member.predictor, member.adversary)],
            description=f"{self.constraint} difference (out of fold)", keep=self.ensemble,
        )
        history = model.fit(dataset, epochs=self.epochs, steps_per_epoch=steps, shuffle=False, verbose=self.verbose,
                            callbacks=[controller])
        self.adversary_ = members[0].adversary
        self._record_selection(controller, measure, predictors, n_features=X.shape[1])
        scores = keras.ops.convert_to_numpy(
            keras.ops.softmax(out_of_fold_logits(predictors, X, fold_of_row), axis=-1))[:, 1]
        self.predictor_ = averaged_predictor(predictors, n_features=X.shape[1])
        return history, scores

    def _fit_adversarially(self, X, labels, groups, seed, fit_rows, validation_rows):
        weights = adversary_sample_weights(groups, labels, constraint=self.constraint)
        n_classes = len(self.classes_)
        model = self._pair(self.predictor_, seed + 1000)
        self.adversary_ = model.adversary
        if fit_rows is None:
            return model.fit(
                X, (labels, groups, weights), epochs=self.epochs, batch_size=self.batch_size, verbose=self.verbose
            )
        # The adversary's weights are recomputed on the rows it trains on, so every cell still counts equally.
        fit_weights = adversary_sample_weights(groups[fit_rows], labels[fit_rows], constraint=self.constraint)
        # The gap is measured on the rows `violation_rows` names, accuracy on the held-out rows only.
        z = 0.0 if self.gap_confidence is None else float(norm.ppf(self.gap_confidence))
        # (rows, multiplier of their standard error in the bound). With "larger" the held-out gap enters as a
        # point estimate: it guards against overfitting, and bounding it too (cells of ~30 rows on a 4,000-row
        # table: an error of ~0.09) left no candidate within a tolerance of 0.05 and drove alpha to collapse.
        measured = {
            "all": [(np.arange(len(X)), z)],
            "validation": [(validation_rows, z)],
            "larger": [(np.arange(len(X)), z), (validation_rows, 0.0)],
        }[self.violation_rows]

        current = [self.predictor_]  # the model measured: the training one, then the ensemble

        def measure():
            predicted = np.argmax(keras.ops.convert_to_numpy(current[0](X, training=False)), axis=1)
            gaps = [
                group_rate_gap(
                    labels[rows],
                    predicted[rows],
                    groups[rows],
                    constraint=self.constraint,
                    n_classes=n_classes,
                    bound_multiplier=multiplier,
                )
                for rows, multiplier in measured
            ]
            violation, error, bound = max(gaps, key=lambda gap: gap[2])
            accuracy = np.mean(predicted[validation_rows] == labels[validation_rows])
            return violation, float(accuracy), error, bound

        controller = AdversaryWeightController(
            weight=model.adversary_weight,
            measure=measure,
            tolerance=self.tolerance,
            models=[self.predictor_, self.adversary_],
            description=f"{self.constraint} difference",
            keep=self.ensemble,
        )
        history = model.fit(
            X[fit_rows],
            (labels[fit_rows], groups[fit_rows], fit_weights),
            epochs=self.epochs,
            batch_size=self.batch_size,
            verbose=self.verbose,
            callbacks=[controller],
        )
        self._record_selection(controller, measure, current, n_features=X.shape[1])
        self.predictor_ = current[0]
        return history

    def _record_selection(self, controller, measure, predictors, *, n_features):
        # The kept candidate, or the ensemble of the `ensemble` best ones (`fairness.cross_fit.snapshot_ensembles`)
        # when that still meets the tolerance on the same rows; `predictors` (read by `measure`) is updated in place.
        self.adversary_weight_ = controller.selected["weight"]
        self.constraint_violation_ = controller.selected["violation"]
        self.adaptation_history_ = controller.history
        self.ensemble_size_ = 1
        if len(controller.kept) < 2:
            return
        single = list(predictors)
        predictors[:] = snapshot_ensembles(single, controller.kept, n_features=n_features)
        violation, _, _, bound = measure()
        if bound <= self.tolerance:
            self.constraint_violation_, self.ensemble_size_ = float(violation), len(controller.kept)
        else:
            predictors[:] = single

    def _fit_attribute_regime(self, X, labels, groups, validation_rows, fold_of_row, seed, *, tolerance, scores):
        # `fairness.attribute_scores`: group thresholds on the debiased score and on a cross-fitted plain logistic
        # regression's, each meeting the tolerance; kept: the one more accurate on its held-out scores. The
        # debiased score's held-out rows are all rows out of fold (cross-fitted) or the validation rows.
        held_out = np.arange(len(labels)) if scores is not None else validation_rows
        debiased = self._positive_scores(X)
        folds = fold_of_row if fold_of_row is not None else assign_folds(
            groups, labels, folds=DEFAULT_ATTRIBUTE_FOLDS, seed=seed)
        logistic = cross_fitted_logistic(X, labels, folds)
        candidates = {
            "debiased": (self._fit_group_thresholds(debiased, labels, groups, validation_rows, tolerance=tolerance,
                                                    scores=scores, seed=seed), debiased if scores is None else scores),
            "logistic_regression": (self._fit_group_thresholds(logistic.scores(X), labels, groups, None, seed=seed,
                                                               tolerance=tolerance, scores=logistic.out_of_fold),
                                    logistic.out_of_fold),
        }
        self.attribute_score_, self.attribute_accuracies_ = best_candidate(
            {name: (post, values[held_out], labels[held_out], groups[held_out])
             for name, (post, values) in candidates.items()})
        self.group_thresholds_ = candidates[self.attribute_score_][0]
        self.attribute_scorer_ = logistic if self.attribute_score_ == "logistic_regression" else None

    def _fit_group_thresholds(self, predicted, labels, groups, validation_rows, *, tolerance, scores=None, seed=0):
        # `predicted`: the score used at prediction, on every training row; `scores`: held-out (out-of-fold) ones.
        # Calibrated on the rows `violation_rows` names, as the gap in training: the held-out rows alone left
        # cells of ~150 rows whose noise carried a gap of 0.07 to fresh data at tolerance 0.05 on the generated
        # table; all the rows carried 0.035-0.05; "larger" asks both. With `scores`, the thresholds act on an
        # averaged predictor's score, sharper than the out-of-fold `scores` (fitted on the latter alone they
        # missed 0.05 on fresh rows, at 0.074), so they must meet it on both, each row counted once with each.
        # The margin: `fairness.threshold_margin` (the bootstrap, a row's two scores drawn together).
        settings = dict(constraint=self.constraint, tolerance=tolerance, gap_confidence=self.gap_confidence, seed=seed)
        if scores is not None:
            n = len(labels)
            return attribute_thresholds(
                np.concatenate([predicted, scores]), np.tile(labels, 2), np.tile(groups, 2),
                units=np.tile(np.arange(n), 2), also_meet_on=(np.arange(n), np.arange(n, 2 * n)), **settings)
        if self.violation_rows == "validation":
            predicted, labels, groups = predicted[validation_rows], labels[validation_rows], groups[validation_rows]
        return attribute_thresholds(predicted, labels, groups, **settings,
                                    also_meet_on=(validation_rows,) if self.violation_rows == "larger" else ())

    def _adversary_setting(self, name):
        # An adversary weight that changes during training needs an adversary that keeps up: with the
        # linear adversary at the predictor's pace, the game oscillated (the gap flipped sign as alpha rose)
        # and no alpha met the tolerance on our generated table; a 16-unit adversary ten times faster
        # followed smoothly. Fixed-alpha fits keep the paper's linear adversary.
        adapting = self.tolerance is not None
        if name == "hidden_units":
            if self.adversary_hidden_units is not None:
                return self.adversary_hidden_units
            return TOLERANCE_ADVERSARY_HIDDEN_UNITS if adapting else ()
        if self.adversary_learning_rate is not None:
            return self.adversary_learning_rate
        return self.learning_rate * (TOLERANCE_ADVERSARY_SPEED_UP if adapting else 1.0)

    def _positive_scores(self, X):
        # P(y = classes_[1]) of standardised features, the score the group thresholds act on.
        return keras.ops.convert_to_numpy(keras.ops.softmax(self.predictor_(X, training=False), axis=-1))[:, 1]

    def predict_proba(self, X, *, sensitive_features=None):
        """Class probabilities; with `sensitive_features`, those of the group-thresholded predictions.

        Args:
            X: array-like `(n_samples, n_features)`.
            sensitive_features: None (the default: the attribute is not read), or the group of each row,
                groups seen in `fit`: P(prediction = each class) under the group thresholds.

        Returns:
            `(n_samples, n_classes)` array, columns in the order of `classes_`.

        Raises:
            ValueError: with `sensitive_features` when `fit` fitted no group thresholds (no `tolerance`, or
                more than two classes), or for an unseen group.
        """
        if sensitive_features is None:
            return super().predict_proba(X)
        X = validate_predict_inputs(self, X)
        if getattr(self, "group_thresholds_", None) is None:
            raise ValueError(
                "sensitive_features at prediction needs group thresholds, fitted only with tolerance set and a "
                "binary label; predict(X) without it uses the features only"
            )
        groups = self._group_codes(sensitive_features, n_samples=len(X))
        if self.feature_mean_ is not None:
            X = (X - self.feature_mean_) / self.feature_scale_
        scores = self._positive_scores(X) if self.attribute_scorer_ is None else self.attribute_scorer_.scores(X)
        positive = positive_probability(self.group_thresholds_, scores, groups)
        return np.stack([1.0 - positive, positive], axis=1)

    def _group_codes(self, sensitive_features, *, n_samples):
        values = np.asarray(sensitive_features, dtype=object).reshape(-1)
        if len(values) != n_samples:
            raise ValueError(f"sensitive_features must have one entry per row of X ({n_samples}), got {len(values)}")
        known = {group: code for code, group in enumerate(self.groups_)}
        unseen = sorted({str(value) for value in values if value not in known})
        if unseen:
            raise ValueError(
                f"sensitive_features has groups not seen in fit: {unseen[:5]}; known: {list(self.groups_)}"
            )
        return np.array([known[value] for value in values], dtype=np.int64)

    def predict(self, X, *, sensitive_features=None, random_state=None):
        """Predicted class of each row; with `sensitive_features`, the group-thresholded (randomised) one.

        Args:
            X: array-like `(n_samples, n_features)`.
            sensitive_features: None (the default: the most probable class from the features only), or the
                group of each row: a draw from `predict_proba(X, sensitive_features=...)`.
            random_state: seed of that draw (None: fresh entropy); unused without `sensitive_features`.

        Returns:
            `(n_samples,)` array of labels from `classes_`.
        """
        if sensitive_features is None:
            return super().predict(X)
        positive = self.predict_proba(X, sensitive_features=sensitive_features)[:, 1]
        draws = np.random.default_rng(random_state).random(len(positive))
        return self.classes_[(draws < positive).astype(int)]

    def _logits(self, X):
        X = validate_predict_inputs(self, X)  # first: it raises NotFittedError before predictor_ is read
        if self.feature_mean_ is not None:
            X = (X - self.feature_mean_) / self.feature_scale_
        return self.predictor_(X, training=False)
