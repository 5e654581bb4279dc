"""Domain-adversarial training of neural networks, DANN (Ganin et al., JMLR 2016).

Features are learnt so that a label predictor does well on the labelled source domain while a domain
classifier, trained through a gradient-reversal layer, cannot tell source features from target features:
the same game as adversarial fairness with the domain as the variable to remove.
"""

import keras
import tensorflow as tf

from fairness.adversarial import adversary_loss
from fairness.layers import GradientReversal
from fairness.schedules import AnnealedLearningRate, GradientReversalSchedule


class DANN(keras.Model):
    """Feature extractor, label predictor and domain classifier behind a `GradientReversal` layer.

    Each training batch is half labelled source examples, half unlabelled target examples. The loss is
    `label_loss(source) + domain_loss(source and target)`; the domain loss's gradient reaches the feature
    extractor multiplied by `-lambda_p` (`fairness.schedules.reversal_strength`, assigned every batch).

    Example:
        >>> dann = DANN(features, labels, domains)
        >>> dann.compile()  # momentum SGD with the paper's annealed learning rate
        >>> dann.fit(source_x, source_y, target_x, epochs=10)
        >>> target_logits = dann.predict(target_x)

    Args:
        feature_extractor: Keras model, inputs -> features.
        label_predictor: Keras model, features -> class logits (N, num_classes).
        domain_classifier: Keras model, features -> two domain logits (N, 2): source, target.
        gamma: steepness of the reversal-strength schedule, > 0 (the paper uses 10).
        max_reversal_strength: reversal strength reached at the end of training, >= 0; 0 gives the
            source-only baseline (same networks and training, the domain classifier only watches).
        seed: seed of the batch shuffling (None: not reproducible).
        **kwargs: passed to `keras.Model`.
    """

    def __init__(
        self,
        feature_extractor,
        label_predictor,
        domain_classifier,
        *,
        gamma=10.0,
        max_reversal_strength=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if max_reversal_strength < 0:
            raise ValueError(f"max_reversal_strength must be >= 0, got {max_reversal_strength}")
        self.feature_extractor = feature_extractor
        self.label_predictor = label_predictor
        self.domain_classifier = domain_classifier
        self.gradient_reversal = GradientReversal(strength=0.0, name="gradient_reversal")
        self.gamma = float(gamma)
        self.max_reversal_strength = float(max_reversal_strength)
        self.seed = seed
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.label_loss_tracker = keras.metrics.Mean(name="label_loss")
        self.domain_loss_tracker = keras.metrics.Mean(name="domain_loss")
        self.label_accuracy = keras.metrics.SparseCategoricalAccuracy(name="label_accuracy")
        self.domain_accuracy = keras.metrics.SparseCategoricalAccuracy(name="domain_accuracy")
        self._annealed_sgd = None

    def compile(self, optimizer=None, *, learning_rate=0.01, momentum=0.9, **kwargs):
        """Configures training.

        Args:
            optimizer: a Keras optimizer; None means the paper's momentum SGD whose learning rate follows
                `fairness.schedules.AnnealedLearningRate` over the first `fit` call.
            learning_rate: mu_0 of the default optimizer, > 0.
            momentum: momentum of the default optimizer, in [0, 1).
            **kwargs: passed to `keras.Model.compile` (e.g. `run_eagerly`, `jit_compile`).

        Raises:
            ValueError: if `learning_rate` or `momentum` is out of range.
        """
        self._annealed_sgd = None
        if optimizer is None:
            if learning_rate <= 0:
                raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
            if not 0 <= momentum < 1:
                raise ValueError(f"momentum must be in [0, 1), got {momentum}")
            self._annealed_sgd = (float(learning_rate), float(momentum))
            # Replaced in fit, once the number of steps that the annealing spans is known.
            optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.label_loss_tracker,
            self.domain_loss_tracker,
            self.label_accuracy,
            self.domain_accuracy,
        ]

    def call(self, inputs, training=False):
        return self.label_predictor(self.feature_extractor(inputs, training=training), training=training)

    def transform(self, x, *, batch_size=256):
        """The learnt features of `x` (domain-invariant once trained).

        Args:
            x: inputs of the feature extractor.
            batch_size: examples per forward pass.

        Returns:
            A NumPy array of features.
        """
        return self.feature_extractor.predict(x, batch_size=batch_size, verbose=0)

    def fit(self, source_x, source_y, target_x, *, batch_size=64, epochs=1, callbacks=None, verbose="auto"):
        """Trains on labelled source and unlabelled target examples.

        An epoch is one pass over the source set; target examples are drawn, reshuffled, as needed.
        The training progress p of the schedules runs from 0 to 1 over this call: the reversal strength
        restarts from 0 at each call, while the default optimizer's learning rate is annealed over the
        first call only (later calls continue at its final value).

        Args:
            source_x: source inputs.
            source_y: integer source labels.
            target_x: target inputs (no labels).
            batch_size: examples per step, even and >= 2: half source, half target.
            epochs: passes over the source set, >= 1.
            callbacks: further Keras callbacks.
            verbose: as in `keras.Model.fit`.

        Returns:
            The Keras `History`, with loss, label_loss, domain_loss, label_accuracy and domain_accuracy.

        Raises:
            ValueError: if an argument is out of range or the sets do not match.
        """
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size must be an even number >= 2, got {batch_size}")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        n_source, n_target = len(source_x), len(target_x)
        if len(source_y) != n_source:
            raise ValueError(f"source_x and source_y differ in length: {n_source} vs {len(source_y)}")
        half = min(batch_size // 2, n_source, n_target)
        if half < 1:
            raise ValueError("source_x and target_x must each hold at least one example")
        steps_per_epoch = n_source // half
        total_steps = epochs * steps_per_epoch
        if self._annealed_sgd is not None and not self.optimizer.built:
            learning_rate, momentum = self._annealed_sgd
            self.optimizer = keras.optimizers.SGD(
                learning_rate=AnnealedLearningRate(learning_rate, total_steps=total_steps), momentum=momentum
            )
        schedule = GradientReversalSchedule(
            self.gradient_reversal,
            total_steps=total_steps,
            gamma=self.gamma,
            max_strength=self.max_reversal_strength,
        )
        dataset = self._batches(source_x, source_y, target_x, half)
        return super().fit(
            dataset,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=[schedule, *(callbacks or [])],
            verbose=verbose,
            shuffle=False,  # the batches are already shuffled
        )

    def _batches(self, source_x, source_y, target_x, half):
        # Both streams repeat so that fit's steps_per_epoch, not the end of a stream, ends an epoch.
        seed = None if self.seed is None else int(self.seed)
        source = (
            tf.data.Dataset.from_tensor_slices((source_x, source_y))
            .shuffle(len(source_x), seed=seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(half, drop_remainder=True)
        )
        target = (
            tf.data.Dataset.from_tensor_slices(target_x)
            .shuffle(len(target_x), seed=None if seed is None else seed + 1, reshuffle_each_iteration=True)
            .repeat()
            .batch(half, drop_remainder=True)
        )
        return tf.data.Dataset.zip(source, target).map(lambda s, t: ((s[0], t), s[1])).prefetch(2)

    def train_step(self, data):
        (source_x, target_x), source_y = data
        n_source = tf.shape(source_x)[0]
        domain_labels = tf.concat([tf.zeros(n_source, tf.int32), tf.ones(tf.shape(target_x)[0], tf.int32)], 0)
        inputs = tf.concat([tf.cast(source_x, self.compute_dtype), tf.cast(target_x, self.compute_dtype)], 0)
        with tf.GradientTape() as tape:
            features = self.feature_extractor(inputs, training=True)
            label_logits = self.label_predictor(features[:n_source], training=True)
            domain_logits = self.domain_classifier(self.gradient_reversal(features), training=True)
            label_loss = keras.ops.mean(
                keras.losses.sparse_categorical_crossentropy(source_y, label_logits, from_logits=True)
            )
            # Both domains count equally: the batch is half source, half target.
            domain_loss = adversary_loss(domain_labels, domain_logits, tf.ones_like(domain_labels, tf.float32))
            loss = label_loss + domain_loss
        variables = (
            self.feature_extractor.trainable_variables
            + self.label_predictor.trainable_variables
            + self.domain_classifier.trainable_variables
        )
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.loss_tracker.update_state(loss)
        self.label_loss_tracker.update_state(label_loss)
        self.domain_loss_tracker.update_state(domain_loss)
        self.label_accuracy.update_state(source_y, label_logits)
        self.domain_accuracy.update_state(domain_labels, domain_logits)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        # Evaluation sees labelled examples of one domain (e.g. the target's test set): label metrics only.
        x, y = data
        label_logits = self(x, training=False)
        self.label_loss_tracker.update_state(
            keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, label_logits, from_logits=True))
        )
        self.label_accuracy.update_state(y, label_logits)
        return {metric.name: metric.result() for metric in (self.label_loss_tracker, self.label_accuracy)}
