"""Fair representations learnt against an adversary through gradient reversal.

An encoder maps features to a representation Z, a task head predicts the label from Z, and an adversary
predicts the sensitive attribute from Z through a `GradientReversal` layer (Edwards & Storkey 2016), so the
encoder is pushed to make the adversary fail. The adversary's objectives are LAFTR's (Madras et al. 2018):
a group-normalised loss on Z for demographic parity, on Z with the true label for equalized odds, and
on Z with the label over positive examples only for equal opportunity (L1 as in LAFTR, or cross-entropy).
"""

import keras
import numpy as np
import tensorflow as tf
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from fairness.adversarial import (
    ADVERSARY_LOSSES,
    SoftmaxClassifierMixin,
    adversary_loss,
    adversary_sample_weights,
    build_mlp,
    check_constraint,
    check_training_parameters,
    conditional_adversary_inputs,
    encode_groups,
    seed_keras,
    validate_fit_inputs,
    validate_predict_inputs,
)
from fairness.layers import GradientReversal
from fairness.metrics import leakage
from fairness.tolerance import (
    AdversaryWeightController,
    carve_validation,
    check_standardize,
    check_tolerance,
    check_validation_fraction,
    standardization,
)


class AdversarialRepresentationModel(keras.Model):
    """Encoder + task head + adversary on the representation, trained in one step with gradient reversal.

    The loss is `task_loss + adversary_loss`; the `GradientReversal` layer between the representation and
    the adversary makes the adversary minimise its loss while the encoder receives `-adversary_weight`
    times its gradient. Batches are `(x, (labels, groups, adversary_weights))`.

    Args:
        encoder: Keras model, features -> representation `(batch, d)`.
        task_head: Keras model, representation -> class logits.
        adversary: Keras model, adversary input -> group logits; its input is Z (demographic parity) or
            `conditional_adversary_inputs(Z, onehot(y))`.
        constraint: one of `fairness.adversarial.CONSTRAINTS`.
        adversary_weight: the gradient reversal strength (lambda), >= 0; `self.gradient_reversal.strength`
            can be changed during training.
        adversary_loss_kind: "cross_entropy" or "l1" (LAFTR's).
        **kwargs: passed to `keras.Model`.
    """

    def __init__(
        self,
        encoder,
        task_head,
        adversary,
        *,
        constraint,
        adversary_weight=1.0,
        adversary_loss_kind="cross_entropy",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.task_head = task_head
        self.adversary = adversary
        self.constraint = check_constraint(constraint)
        self.adversary_loss_kind = adversary_loss_kind
        self.gradient_reversal = GradientReversal(strength=adversary_weight)
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.adversary_loss_tracker = keras.metrics.Mean(name="adversary_loss")

    @property
    def metrics(self):
        return [self.task_loss_tracker, self.adversary_loss_tracker]

    def call(self, inputs, training=False):
        return self.task_head(self.encoder(inputs, training=training), training=training)

    def train_step(self, data):
        features, (labels, groups, weights) = data
        with tf.GradientTape() as tape:
            representation = self.encoder(features, training=True)
            class_logits = self.task_head(representation, training=True)
            task_loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, class_logits, from_logits=True)
            )
            adversary_inputs = self.gradient_reversal(representation)
            if self.constraint != "demographic_parity":
                labels_one_hot = tf.one_hot(labels, class_logits.shape[-1], dtype=adversary_inputs.dtype)
                adversary_inputs = conditional_adversary_inputs(adversary_inputs, labels_one_hot)
            group_logits = self.adversary(adversary_inputs, training=True)
            group_loss = adversary_loss(groups, group_logits, weights, kind=self.adversary_loss_kind)
            loss = task_loss + group_loss
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.task_loss_tracker.update_state(task_loss)
        self.adversary_loss_tracker.update_state(group_loss)
        return {metric.name: metric.result() for metric in self.metrics}


class FairRepresentation(SoftmaxClassifierMixin, TransformerMixin, ClassifierMixin, BaseEstimator):
    """Learns a representation Z of X that predicts y but from which an adversary cannot recover s.

    Edwards & Storkey (2016) with the adversary objectives of LAFTR (Madras et al. 2018). `transform`
    gives Z for downstream models (check with `fairness.metrics.leakage` that s is really gone: the
    adversary of training is not the only classifier that could look); `predict` uses the task head.
    `adversary_weight=0` trains the same networks without pressure on Z: the unconstrained baseline.

    **Stating the leakage instead of lambda.** With `tolerance` set, `fit` holds out `validation_fraction` of
    the training rows (stratified by group and label), trains on the rest, and after every epoch measures the
    leakage of the held-out rows' Z with fresh probes (`fairness.metrics.leakage`: the best cross-validated
    balanced accuracy of a logistic regression and an MLP predicting s). A dual update on log lambda raises
    the reversal strength while the leakage exceeds chance + `tolerance` and lowers it while it is below,
    and the epoch with the best validation accuracy of the task head among those within the tolerance is
    kept (`fairness.tolerance`). The features are standardised inside the estimator (`standardize`).
    Without `tolerance` the estimator trains with the fixed lambda on all rows, as before.

    Args:
        constraint: "demographic_parity" (adversary sees Z), "equalized_odds" (Z and y), or
            "equal_opportunity" (Z and y, positive examples only; binary y).
        adversary_weight: gradient reversal strength lambda, >= 0 (with `tolerance`: its starting value).
        tolerance: None, or the largest acceptable leakage above chance on the validation split: the fresh
            probes' balanced accuracy may be at most `1 / n_groups + tolerance`; in (0, 0.5].
        validation_fraction: share of the training rows held out when `tolerance` is set, in [0.05, 0.5].
        standardize: whether to standardise the features with the mean and standard deviation of the rows
            trained on; None means "only when `tolerance` is set".
        representation_dim: size of Z.
        encoder_hidden_units: hidden layer sizes of the encoder.
        head_hidden_units: hidden layer sizes of the task head.
        adversary_hidden_units: hidden layer sizes of the adversary.
        adversary_loss: "cross_entropy" or "l1" (LAFTR's loss), both group-normalised as in LAFTR; on our
            data cross-entropy trains a stronger adversary and leaves less for fresh probes to find.
        epochs: passes over the training data.
        batch_size: examples per step.
        learning_rate: Adam learning rate.
        random_state: int, RandomState or None; seeds Keras in `fit`.
        verbose: Keras `fit` verbosity.
        run_eagerly: train without compiling the train step (Keras `compile(run_eagerly=...)`): slower per
            step, but for a few dozen steps on tiny data quicker than tracing, and easier to debug.

    Attributes:
        classes_, groups_, n_features_in_: labels, sensitive groups and number of features seen in `fit`.
        encoder_, task_head_, adversary_: the fitted Keras sub-models.
        history_: the Keras training history.
        adversary_weight_: the lambda of the returned model (with `tolerance`: lambda when the kept epoch
            ended).
        constraint_violation_: with `tolerance`, the validation leakage of the returned model above chance
            (balanced accuracy minus `1 / n_groups`); None otherwise.
        adaptation_history_: with `tolerance`, one dict per epoch (step, weight, violation, score =
            validation accuracy of the task head); otherwise empty.
        feature_mean_, feature_scale_: the standardisation applied to X (None when `standardize` is off).
    """

    def __init__(
        self,
        *,
        constraint="demographic_parity",
        adversary_weight=1.0,
        tolerance=None,
        validation_fraction=0.2,
        standardize=None,
        representation_dim=8,
        encoder_hidden_units=(64,),
        head_hidden_units=(),
        adversary_hidden_units=(32,),
        adversary_loss="cross_entropy",
        epochs=30,
        batch_size=128,
        learning_rate=1e-3,
        random_state=None,
        verbose=0,
        run_eagerly=False,
    ):
        self.constraint = constraint
        self.adversary_weight = adversary_weight
        self.tolerance = tolerance
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.representation_dim = representation_dim
        self.encoder_hidden_units = encoder_hidden_units
        self.head_hidden_units = head_hidden_units
        self.adversary_hidden_units = adversary_hidden_units
        self.adversary_loss = adversary_loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.verbose = verbose
        self.run_eagerly = run_eagerly

    def fit(self, X, y, *, sensitive_features):
        """Trains encoder, task head and adversary.

        Args:
            X: array-like `(n_samples, n_features)` of numbers, no NaN.
            y: class labels `(n_samples,)`, at least two classes.
            sensitive_features: group of each row `(n_samples,)`, at least two groups, no missing values.

        Returns:
            self.

        Raises:
            ValueError: for a bad parameter, bad X/y, or bad `sensitive_features`.
        """
        check_constraint(self.constraint)
        check_training_parameters(
            adversary_weight=self.adversary_weight,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
        )
        if self.adversary_loss not in ADVERSARY_LOSSES:
            raise ValueError(f"adversary_loss must be one of {ADVERSARY_LOSSES}, got {self.adversary_loss!r}")
        tolerance = check_tolerance(self.tolerance, upper=0.5)
        check_validation_fraction(self.validation_fraction)
        check_standardize(self.standardize)
        X, labels = validate_fit_inputs(self, X, y)
        groups, self.groups_ = encode_groups(sensitive_features, n_samples=len(X))
        seed = seed_keras(self.random_state)
        fit_rows = validation_rows = None
        if tolerance is not None:
            fit_rows, validation_rows = carve_validation(groups, labels, fraction=self.validation_fraction, seed=seed)
        self.feature_mean_, self.feature_scale_ = standardization(
            X, tolerance=tolerance, standardize=self.standardize, rows=fit_rows
        )
        if self.feature_mean_ is not None:
            X = (X - self.feature_mean_) / self.feature_scale_
        n_classes = len(self.classes_)
        self.encoder_ = build_mlp(
            X.shape[1],
            hidden_units=self.encoder_hidden_units,
            output_dim=self.representation_dim,
            seed=seed,
            # A bounded Z: an unbounded one can hide the group from the current adversary by rescaling
            # directions, which fresh probes on standardised Z still find.
            output_activation="tanh",
            name="encoder",
        )
        self.task_head_ = build_mlp(
            self.representation_dim,
            hidden_units=self.head_hidden_units,
            output_dim=n_classes,
            seed=seed + 100,
            name="task_head",
        )
        conditional = self.constraint != "demographic_parity"
        adversary_input_dim = self.representation_dim * (1 + n_classes if conditional else 1)
        self.adversary_ = build_mlp(
            adversary_input_dim,
            hidden_units=self.adversary_hidden_units,
            output_dim=len(self.groups_),
            seed=seed + 200,
            name="adversary",
        )
        model = AdversarialRepresentationModel(
            self.encoder_,
            self.task_head_,
            self.adversary_,
            constraint=self.constraint,
            adversary_weight=self.adversary_weight,
            adversary_loss_kind=self.adversary_loss,
        )
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), run_eagerly=self.run_eagerly)
        self.adversary_weight_ = float(self.adversary_weight)
        self.constraint_violation_ = None
        self.adaptation_history_ = []
        callbacks = []
        if fit_rows is None:
            fit_rows = np.arange(len(X))
        else:
            controller = self._controller(model, X[validation_rows], labels[validation_rows], groups[validation_rows])
            callbacks.append(controller)
        weights = adversary_sample_weights(groups[fit_rows], labels[fit_rows], constraint=self.constraint)
        history = model.fit(
            X[fit_rows],
            (labels[fit_rows], groups[fit_rows], weights),
            epochs=self.epochs,
            batch_size=self.batch_size,
            verbose=self.verbose,
            callbacks=callbacks,
        )
        if callbacks:
            self.adversary_weight_ = controller.selected["weight"]
            self.constraint_violation_ = controller.selected["violation"]
            self.adaptation_history_ = controller.history
        self.history_ = history.history
        return self

    def _controller(self, model, validation_X, validation_labels, validation_groups):
        chance = 1.0 / len(self.groups_)

        def measure():
            representation = self.encoder_(validation_X, training=False)
            logits = self.task_head_(representation, training=False)
            accuracy = float(np.mean(np.argmax(keras.ops.convert_to_numpy(logits), axis=1) == validation_labels))
            leaked = leakage(keras.ops.convert_to_numpy(representation), validation_groups, random_state=0)
            return leaked.max_balanced_accuracy - chance, accuracy

        return AdversaryWeightController(
            weight=model.gradient_reversal.strength,
            measure=measure,
            tolerance=self.tolerance,
            models=[self.encoder_, self.task_head_, self.adversary_],
            evaluations_per_epoch=1,
            step_size=0.2,  # one evaluation an epoch: the per-epoch pace of AdversarialDebiasing's four
            description="leakage above chance",
        )

    def transform(self, X):
        """The representation Z.

        Args:
            X: array-like `(n_samples, n_features)`.

        Returns:
            float32 array `(n_samples, representation_dim)`.
        """
        X = validate_predict_inputs(self, X)
        if self.feature_mean_ is not None:
            X = (X - self.feature_mean_) / self.feature_scale_
        return keras.ops.convert_to_numpy(self.encoder_(X, training=False))

    def _logits(self, X):
        representation = self.transform(X)  # first: it raises NotFittedError before task_head_ is read
        return self.task_head_(representation, training=False)
