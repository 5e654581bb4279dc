"""The semi-supervised GAN itself: its losses, its DP discriminator step, `fit` and its persistence.

See `privgan.models.ssgan` for the model and the derivation of its accounting; the two streams'
bookkeeping is in `streams`, the head's phase and the one-shot releases in `releases`, the privacy
statement in `statement`.
"""

import functools
import math

import keras
import numpy as np
import tensorflow as tf

from privgan.accounting import PrivacyLedger
from privgan.accounting.events import check_budget, check_count
from privgan.accounting.statement import DeprecatedPrivacyReport
from privgan.dp.bookkeeping import DPStepBookkeeping, float32_at_least
from privgan.dp.clipping import clip_factors, clipped_gradient_sum
from privgan.dp.config import DPSGDConfig
from privgan.dp.layer_rules import keep_rows
from privgan.dp.mechanism import private_gradients
from privgan.dp.noise import gaussian_noise_like
from privgan.dp.regularization import refuse_data_dependent_losses, weight_penalty_gradients
from privgan.dp.sampling import poisson_batches
from privgan.dp.validation import check_private_model
from privgan.models.gan import GANModel
from privgan.models.ssgan.pseudo_labels import PseudoLabelRelease
from privgan.models.ssgan.releases import StreamReleases
from privgan.models.ssgan.statement import ssgan_privacy_statement
from privgan.models.ssgan.streams import StreamRecords, TwoStreamAccounting

# Sampling streams (`privgan.dp.noise`): the unlabelled examples use the default stream, as a single
# private set does elsewhere; the labelled ones their own.
UNLABELLED_STREAM = 0
LABELLED_STREAM = 1
FEATURES_LAYER = "features"
LABELLED_GRADIENTS = ("all", "head", "split", "none")


def supervised_losses(logits, labels):
    """-log p(y | x, real) over the K real classes, per example."""
    return tf.reduce_logsumexp(logits, axis=-1) - tf.gather(logits, labels, axis=-1, batch_dims=1)


def real_losses(logits):
    """-log D(x), D(x) = Z / (Z + 1) with Z = sum_k exp(l_k): softplus(-logsumexp(l)), per example."""
    return tf.nn.softplus(-tf.reduce_logsumexp(logits, axis=-1))


def fake_losses(logits):
    """-log(1 - D(x)) = softplus(logsumexp(l)), per example."""
    return tf.nn.softplus(tf.reduce_logsumexp(logits, axis=-1))


def _clipped_rows(values, l2_norm_clip):
    """Each row of `values` scaled to L2 norm <= `l2_norm_clip` (rows that are not finite become 0)."""
    factors = clip_factors(tf.norm(values, axis=-1), l2_norm_clip=l2_norm_clip)
    return keep_rows(values, factors) * factors[:, None]


def _check_positive_number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="privgan")
class SemiSupervisedGAN(DeprecatedPrivacyReport, TwoStreamAccounting, StreamReleases, PseudoLabelRelease,
                        DPStepBookkeeping, GANModel):
    """A semi-supervised GAN (K-class discriminator, feature matching), with DP-SGD on D by default.

    Args:
        generator: a built Keras model `latent -> images` (it may use BatchNormalization).
        discriminator: a built Keras model `images -> logits (batch, K)`, K >= 2 (e.g.
            `mlp_discriminator(..., num_logits=10)` or `dcgan_discriminator(..., num_logits=10)`). With
            `private`, no layer may mix examples (BatchNormalization is refused).
        num_labelled: N_L, the number of labelled examples `fit` will receive, >= 1.
        num_unlabelled: N_U, the number of unlabelled examples, >= 1.
        labelled_batch_size: q_L * N_L, the expected Poisson batch size of the labelled stream, in (0, N_L].
        unlabelled_batch_size: q_U * N_U, that of the unlabelled stream (also the generated batch size,
            rounded), in (0, N_U].
        feature_layer: name of D's layer whose output G matches; None: the layer named "features" if D
            has one, else the input of D's last layer.
        unsupervised_weight: weight of the GAN losses of D relative to the labelled loss, >= 0.
        labelled_gradient: which of D's variables the labelled loss trains: "all"; "head" (the last
            layer's only: the features are then learnt from the unlabelled GAN losses alone); or "split"
            (as "head", and the GAN losses train every layer but the last, which then learns from the
            labels alone); or "none" (`fit` does not read the labels: no labelled release, nothing
            charged to the labelled stream; train the head afterwards with `fit_head`). Under DP the
            labelled release then has the head's few dimensions instead of all of D's, so the same noise
            multiplier costs far less signal: with ~100 labelled examples, the noise of a release over
            all of D's weights swamps their gradients.
        private: train D with DP-SGD (the default). False trains without clipping or noise, and without
            a privacy guarantee; the clipping and noise arguments must then be left None.
        l2_norm_clip: C > 0, each private example's sensitivity in its stream's release (private only).
        feature_l2_norm_clip: Cf in (0, C), the part of an unlabelled example's bound spent on its
            features (G's target); its gradient is clipped to sqrt(C^2 - Cf^2). None: C / 2.
        noise_multiplier: sigma_U >= 0 of the unlabelled stream, or None to calibrate it in `fit`.
        labelled_noise_multiplier: sigma_L >= 0 of the labelled stream, or None to calibrate it in `fit`
            (both None or both given).
        seed: seed of the latent vectors (None: random). It never seeds the DP noise.
        noise_seed: None (secret DP noise) or an integer that makes it reproducible, for research only.
        ledger: a `PrivacyLedger` of earlier DP training on the whole dataset, composed before both
            streams (for a `ParallelLedger`, pass its `composed()`).
        head_ledger: the `PrivacyLedger` of earlier `fit_head` / `fit_centroid_head` phases of the
            labelled stream (restored from a saved model).
        projection_ledger: the `PrivacyLedger` of earlier `fit_projection` releases of the unlabelled
            stream (restored from a saved model).
        stream_records: the `StreamRecords` of the images each stream read (restored from a saved model;
            None: a new model, nothing read yet).
        **kwargs: passed to `keras.Model`.

    Raises:
        ValueError: if an argument is out of range or does not fit `private`.
        NonPrivateLayerError: with `private`, if D has a layer that mixes examples.
    """

    def __init__(
        self,
        generator,
        discriminator,
        *,
        num_labelled,
        num_unlabelled,
        labelled_batch_size,
        unlabelled_batch_size,
        feature_layer=None,
        unsupervised_weight=1.0,
        labelled_gradient="all",
        private=True,
        l2_norm_clip=None,
        feature_l2_norm_clip=None,
        noise_multiplier=None,
        labelled_noise_multiplier=None,
        seed=None,
        noise_seed=None,
        ledger=None,
        head_ledger=None,
        projection_ledger=None,
        stream_records=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.private = bool(private)
        if self.private:
            if l2_norm_clip is None:
                raise ValueError("l2_norm_clip is required for private training (private=True)")
            clip = _check_positive_number(l2_norm_clip, "l2_norm_clip")
            feature_clip = clip / 2 if feature_l2_norm_clip is None else _check_positive_number(
                feature_l2_norm_clip, "feature_l2_norm_clip")
            if not feature_clip < clip:
                raise ValueError(f"feature_l2_norm_clip must be in (0, l2_norm_clip={clip}), got {feature_clip}")
            if labelled_gradient == "none":
                if labelled_noise_multiplier is not None:
                    raise ValueError("labelled_gradient='none' makes no labelled release in fit: leave "
                                     "labelled_noise_multiplier None")
                labelled_noise_multiplier = 0.0 if noise_multiplier is not None else None
            if (noise_multiplier is None) != (labelled_noise_multiplier is None):
                raise ValueError("noise_multiplier and labelled_noise_multiplier are both given or both None "
                                 "(calibrated in fit)")
        else:
            given = [name for name, value in (("l2_norm_clip", l2_norm_clip), ("feature_l2_norm_clip",
                     feature_l2_norm_clip), ("noise_multiplier", noise_multiplier), ("labelled_noise_multiplier",
                     labelled_noise_multiplier)) if value is not None]
            if given:
                raise ValueError(f"private=False trains without clipping or noise: leave {given} None")
            # Placeholders for the sampling configuration; a non-private step neither clips nor noises,
            # and its ledger charges sigma = 0, i.e. epsilon = infinity.
            clip, feature_clip, noise_multiplier, labelled_noise_multiplier = 1.0, 0.5, 0.0, 0.0
        self.noise_multiplier_calibrated = noise_multiplier is not None

        def config(sigma, examples, batch, name):
            check_count(examples, name=f"num_{name}", minimum=1)
            if not 0 < batch <= examples:
                raise ValueError(f"{name}_batch_size must be in (0, num_{name}={examples}], got {batch}")
            sigma = 0.0 if sigma is None else float32_at_least(float(sigma))
            return DPSGDConfig(l2_norm_clip=clip, noise_multiplier=sigma, num_examples=int(examples),
                               expected_batch_size=float(batch))

        self.dp_config = config(noise_multiplier, num_unlabelled, unlabelled_batch_size, "unlabelled")
        self.labelled_config = config(labelled_noise_multiplier, num_labelled, labelled_batch_size, "labelled")
        self.feature_l2_norm_clip = feature_clip
        self.gradient_l2_norm_clip = math.sqrt(clip * clip - feature_clip * feature_clip)
        if labelled_gradient not in LABELLED_GRADIENTS:
            raise ValueError(f"labelled_gradient must be one of {LABELLED_GRADIENTS}, got {labelled_gradient!r}")
        self.labelled_gradient = labelled_gradient
        if not unsupervised_weight >= 0:
            raise ValueError(f"unsupervised_weight must be >= 0, got {unsupervised_weight}")
        self.unsupervised_weight = float(unsupervised_weight)
        for role, model in (("generator", generator), ("discriminator", discriminator)):
            if len(model.inputs) != 1 or len(model.outputs) != 1:
                raise ValueError(f"{role} must have one input and one output, got {len(model.inputs)} and "
                                 f"{len(model.outputs)}")
        self.num_classes = int(discriminator.outputs[0].shape[-1])
        if len(discriminator.outputs[0].shape) != 2 or self.num_classes < 2:
            raise ValueError(f"discriminator must output (batch, K) class logits with K >= 2, got shape "
                             f"{tuple(discriminator.outputs[0].shape)}")
        if tuple(generator.outputs[0].shape[1:]) != tuple(discriminator.inputs[0].shape[1:]):
            raise ValueError(f"generator emits {tuple(generator.outputs[0].shape[1:])} but the discriminator "
                             f"takes {tuple(discriminator.inputs[0].shape[1:])}")
        if self.private:
            check_private_model(discriminator, role="discriminator")
        self.generator = generator
        self.discriminator = discriminator
        self.feature_layer = feature_layer
        # Not an attribute Keras tracks: it shares D's layers, whose weights D already saves.
        object.__setattr__(self, "_features_and_logits", _with_features(discriminator, feature_layer))
        object.__setattr__(self, "_head_input", keras.Model(discriminator.inputs[0], discriminator.layers[-1].input))
        self.num_features = int(self._features_and_logits.outputs[0].shape[-1])
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.fake_batch_size = max(1, round(self.dp_config.expected_batch_size))
        self.seed = seed
        self.prior_ledger = PrivacyLedger() if ledger is None else ledger
        if not isinstance(self.prior_ledger, PrivacyLedger):
            raise TypeError(f"ledger must be a PrivacyLedger (for a ParallelLedger pass .composed()), got {ledger!r}")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.head_ledger = PrivacyLedger() if head_ledger is None else head_ledger
        self.projection_ledger = PrivacyLedger() if projection_ledger is None else projection_ledger
        # Which images each stream read (`privgan.models.ssgan.streams`); not a Keras-tracked attribute.
        if stream_records is not None and not isinstance(stream_records, StreamRecords):
            raise TypeError(f"stream_records must be a StreamRecords or None, got {stream_records!r}")
        object.__setattr__(self, "stream_records", StreamRecords() if stream_records is None else stream_records)
        self._add_privacy_variables(noise_seed)
        # G's feature-matching target: the (noisy, when private) mean features of the last real batch.
        self.feature_target = self.add_weight(shape=(self.num_features,), initializer="zeros", trainable=False,
                                              name="feature_target")
        self._add_loss_trackers()
        self.test_loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.built = True

    refused_fit_arguments = (*DPStepBookkeeping.refused_fit_arguments, "validation_data")

    loss_metrics = ("d_loss_labelled", "d_loss_unlabelled", "d_loss_fake", "g_loss")

    @property
    def metrics(self):
        return [*super().metrics, self.test_loss_tracker, self.accuracy_tracker]

    def _sampled_dataset(self, data, *, steps, seed, first_step, group_size):
        labelled, unlabelled = data
        kwargs = dict(steps=steps, seed=seed, first_step=first_step, group_size=group_size)
        return tf.data.Dataset.zip((
            poisson_batches(labelled, sampling_probability=self.labelled_config.sampling_probability,
                            stream=LABELLED_STREAM, **kwargs),
            poisson_batches(unlabelled, sampling_probability=self.dp_config.sampling_probability,
                            stream=UNLABELLED_STREAM, **kwargs),
        ))

    # --- training ----------------------------------------------------------------------------------

    def _features(self, images, training):
        return self._features_and_logits(images, training=training)

    def train_step(self, data):
        (labelled_images, labels), unlabelled_images = data
        labels = tf.cast(labels, tf.int32)
        step = self._private_discriminator_step if self.private else self._discriminator_step
        self._take_dp_step(functools.partial(step, labelled_images, labels, unlabelled_images))
        # Without DP, G matches the real batch's features under the updated D, as Salimans et al. do; a
        # private G may only read the target released in the D step.
        self._generator_step(None if self.private else unlabelled_images)
        return {m.name: m.result() for m in self.metrics[:4]}

    def labelled_losses(self, batch):
        """Per-example labelled losses of `(images, labels)` (D in training mode).

        With `labelled_gradient="head"` the features feeding D's last layer are held fixed
        (stop_gradient), so the losses reach the last layer's variables only.
        """
        images, labels = batch
        if self.labelled_gradient == "all":
            return supervised_losses(self.discriminator(images, training=True), labels)
        head = self.discriminator.layers[-1]
        features = tf.stop_gradient(self._head_input(images, training=True))
        return supervised_losses(head(features), labels)

    def unlabelled_losses(self, images):
        """Per-example losses of real unlabelled images, and their features: `(losses, features)`."""
        features, logits = self._features(images, training=True)
        return real_losses(logits), features

    def _labelled_variables(self):
        if self.labelled_gradient == "head":
            return list(self.discriminator.layers[-1].trainable_variables)
        return list(self.discriminator.trainable_variables)

    def unlabelled_clipped_sum(self, images):
        """The unlabelled stream's release before noise: D's gradients and the features, clipped per example.

        Each example's gradient is clipped to sqrt(C^2 - Cf^2) and its features to Cf, so the pair moves
        the sum by at most C: the sensitivity the stream's noise is calibrated to.

        Returns:
            `(sums, losses)`: the clipped gradient sums of D's trainable variables followed by the
            clipped feature sum (a list), and the per-example losses.
        """

        def with_aux(batch):
            losses, features = self.unlabelled_losses(batch)
            return losses, (losses, features)

        gradient_sum, _, (losses, features) = clipped_gradient_sum(
            with_aux, self.discriminator.trainable_variables, images, l2_norm_clip=self.gradient_l2_norm_clip,
            has_aux=True,
        )
        feature_sum = tf.reduce_sum(_clipped_rows(features, self.feature_l2_norm_clip), axis=0)
        return gradient_sum + [feature_sum], losses

    def _fake_images(self):
        latent = keras.random.normal((self.fake_batch_size, self.latent_dim), seed=self.seed_generator)
        return tf.stop_gradient(self.generator(latent, training=True))

    def _combine(self, labelled, unlabelled, fake):
        """D's gradient from the three losses' (lists over D's trainable variables)."""
        half = self.unsupervised_weight / 2
        head = {id(v) for v in self.discriminator.layers[-1].trainable_variables}
        split = self.labelled_gradient == "split"
        if self.labelled_gradient == "none":
            labelled = [tf.zeros_like(a) for a in labelled]
        return [a if split and id(v) in head else a + half * (b + c)
                for v, a, b, c in zip(self.discriminator.trainable_variables, labelled, unlabelled, fake)]

    def _apply_discriminator_gradients(self, gradients, variables):
        penalty = weight_penalty_gradients(self.discriminator, variables)
        if penalty is not None:  # reads no data: added after the noise
            gradients = [g + p for g, p in zip(gradients, penalty)]
        self.d_optimizer.apply(gradients, variables)

    def _private_discriminator_step(self, labelled_images, labels, unlabelled_images):
        variables = self.discriminator.trainable_variables
        labelled = self.labelled_config
        unlabelled = self.dp_config

        def labelled_with_aux(batch):
            losses = self.labelled_losses(batch)
            return losses, losses

        # Release 1: the labelled stream (its own noise draw), of the variables the labelled loss trains.
        if self.labelled_gradient == "none":  # no release: the labels are not read
            labelled_gradients = [tf.zeros_like(v) for v in variables]
        else:
            trained = self._labelled_variables()
            released, labelled_values = private_gradients(
                labelled_with_aux, trained, (labelled_images, labels), l2_norm_clip=labelled.l2_norm_clip,
                noise_multiplier=labelled.noise_multiplier, expected_batch_size=labelled.expected_batch_size,
                noise=self.noise_stream, has_aux=True,
            )
            by_variable = {id(v): g for v, g in zip(trained, released)}
            labelled_gradients = [by_variable.get(id(v), tf.zeros_like(v)) for v in variables]
            self.d_loss_labelled_tracker.update_state(labelled_values)
        refuse_data_dependent_losses(self.discriminator, role="discriminator")

        # Release 2: the unlabelled stream, gradient and features together (one noise draw for both).
        released, unlabelled_values = self.unlabelled_clipped_sum(unlabelled_images)
        dtype = released[-1].dtype
        stddev = tf.cast(unlabelled.noise_multiplier, dtype) * tf.cast(unlabelled.l2_norm_clip, dtype)
        noise = gaussian_noise_like(released, stddev=stddev, seed=self.noise_stream.next_seed())
        divisor = unlabelled.expected_batch_size
        released = [(r + n) / tf.cast(divisor, r.dtype) for r, n in zip(released, noise)]
        unlabelled_gradients, feature_mean = released[:-1], released[-1]

        # Generated images read no private data: clipped for scale, not noised.
        fake_sum, fake_values, _ = clipped_gradient_sum(
            lambda images: fake_losses(self.discriminator(images, training=True)), variables, self._fake_images(),
            l2_norm_clip=unlabelled.l2_norm_clip,
        )
        fake_gradients = [f / self.fake_batch_size for f in fake_sum]
        self._apply_discriminator_gradients(
            self._combine(labelled_gradients, unlabelled_gradients, fake_gradients), variables
        )
        self.feature_target.assign(tf.cast(feature_mean, self.feature_target.dtype))
        self.d_loss_unlabelled_tracker.update_state(unlabelled_values)
        self.d_loss_fake_tracker.update_state(fake_values)

    def _discriminator_step(self, labelled_images, labels, unlabelled_images):
        variables = self.discriminator.trainable_variables
        fakes = self._fake_images()
        # Sums over the Poisson batches divided by their expected sizes, as in the private step (and
        # defined for an empty batch).
        with tf.GradientTape(persistent=True) as tape:
            labelled_values = self.labelled_losses((labelled_images, labels))
            unlabelled_values, features = self.unlabelled_losses(unlabelled_images)
            fake_values = fake_losses(self.discriminator(fakes, training=True))
            losses = [tf.reduce_sum(labelled_values) / self.labelled_config.expected_batch_size,
                      tf.reduce_sum(unlabelled_values) / self.dp_config.expected_batch_size,
                      tf.reduce_mean(fake_values)]
        gradients = [tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                     for loss in losses]
        del tape
        self._apply_discriminator_gradients(self._combine(*gradients), variables)
        feature_mean = tf.reduce_sum(features, axis=0) / self.dp_config.expected_batch_size
        self.feature_target.assign(tf.cast(tf.stop_gradient(feature_mean), self.feature_target.dtype))
        self.d_loss_labelled_tracker.update_state(labelled_values)
        self.d_loss_unlabelled_tracker.update_state(unlabelled_values)
        self.d_loss_fake_tracker.update_state(fake_values)

    def _generator_step(self, real_images=None):
        """One feature-matching step of G, towards `feature_target` or, given, `real_images`' mean features."""
        variables = self.generator.trainable_variables
        if real_images is not None:
            real_features, _ = self._features(real_images, training=True)
            self.feature_target.assign(tf.stop_gradient(tf.reduce_mean(real_features, axis=0)))
        latent = keras.random.normal((self.fake_batch_size, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            fakes = self.generator(latent, training=True)
            features, _ = self._features(fakes, training=True)
            if self.private:  # compared with the clipped real features of the released target
                features = _clipped_rows(features, self.feature_l2_norm_clip)
            difference = tf.reduce_mean(features, axis=0) - tf.cast(self.feature_target, features.dtype)
            loss = tf.reduce_mean(tf.square(difference))
        self.g_optimizer.apply(tape.gradient(loss, variables), variables)
        self.g_loss_tracker.update_state(loss)

    # --- classifier -------------------------------------------------------------------------------

    def call(self, inputs, training=None):
        """The discriminator's K class logits for `inputs` (images)."""
        return self.discriminator(inputs, training=training)

    def test_step(self, data):
        images, labels = data[0], tf.cast(data[1], tf.int32)
        logits = self.discriminator(images, training=False)
        self.test_loss_tracker.update_state(supervised_losses(logits, labels))
        self.accuracy_tracker.update_state(labels, logits)
        return {m.name: m.result() for m in (self.test_loss_tracker, self.accuracy_tracker)}

    def predict_labels(self, images, *, batch_size=512):
        """The most likely of the K classes for each image, as an int64 array."""
        return np.argmax(self.predict(images, batch_size=batch_size, verbose=0), axis=-1)

    # --- fit ---------------------------------------------------------------------------------------

    def fit(
        self,
        x_labelled,
        y_labelled,
        x_unlabelled,
        *,
        epochs=1,
        target_epsilon=None,
        delta=None,
        accountant="pld",
        sampling_seed=None,
        callbacks=None,
        **kwargs,
    ):
        """Trains on Poisson samples of the labelled and the unlabelled examples, one D and one G step each.

        An epoch is round(num_unlabelled / unlabelled_batch_size) steps. With `delta`, the epsilon spent
        is logged as `epsilon` after every epoch. With `target_epsilon` (private only): if the noise
        multipliers are None, each stream's is first calibrated so that the planned steps spend exactly
        the budget; in any case training stops before a step would exceed it.

        Args:
            x_labelled: the N_L labelled images.
            y_labelled: their N_L integer labels in [0, K).
            x_unlabelled: the N_U unlabelled images (none of them a labelled example's record).
            epochs: number of epochs, >= 1.
            target_epsilon: optional budget, > 0; needs `delta`.
            delta: the delta of the reported epsilon, in (0, 1).
            accountant: "pld" or "rdp".
            sampling_seed: seed of both streams' Poisson sampling (None: secret).
            callbacks: Keras callbacks.
            **kwargs: passed to `keras.Model.fit` (e.g. `verbose`); arguments that would change the
                sampling (`batch_size`, `shuffle`, ...) and `validation_data` are refused.

        Returns:
            The `History` of `keras.Model.fit`.

        Raises:
            ValueError: for a refused or out-of-range argument, data of the wrong size or labels out of
                range, a budget without delta or on a non-private model, noise multipliers to
                calibrate without a budget, a budget already spent, or images that the other
                stream read, now or earlier (or whose earlier reads are unknown: see `ssgan.streams`).
            NotImplementedError: under a distribution strategy with several replicas.
        """
        self._refuse_sampling_arguments(kwargs)
        if self.distribute_strategy.num_replicas_in_sync > 1:
            raise NotImplementedError("SemiSupervisedGAN trains on one device; build it outside a multi-replica "
                                      "strategy")
        epochs = check_count(epochs, name="epochs", minimum=1)
        target_epsilon, delta, accountant = check_budget(target_epsilon=target_epsilon, delta=delta,
                                                         accountant=accountant)
        if not self.private and (target_epsilon is not None or delta is not None):
            raise ValueError("a non-private SemiSupervisedGAN (private=False) has no privacy budget: "
                             "leave target_epsilon and delta None")
        data = self._check_data(x_labelled, y_labelled, x_unlabelled)
        if self.private:
            self.stream_records.check_and_record("fit", x_labelled=data[0][0], x_unlabelled=data[1])
        return self._fit_on_poisson_batches(
            data, epochs=epochs, target_epsilon=target_epsilon, delta=delta, accountant=accountant,
            sampling_seed=sampling_seed, callbacks=callbacks,
            optimizers=[(self.d_optimizer, self.discriminator.trainable_variables),
                        (self.g_optimizer, self.generator.trainable_variables)],
            group_batches=False, **kwargs,
        )

    def _check_data(self, x_labelled, y_labelled, x_unlabelled):
        return self._check_labelled(x_labelled, y_labelled), self._check_images(x_unlabelled, "x_unlabelled",
                                                                                self.dp_config)

    def _check_images(self, x, name, config):
        shape = tuple(self.discriminator.inputs[0].shape[1:])
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != shape or len(x) != config.num_examples:
            raise ValueError(f"{name} must have shape ({config.num_examples}, {', '.join(map(str, shape))}) "
                             f"as the model was made for, got {x.shape}; the sampling probability would be wrong")
        return x

    def _check_labelled(self, x_labelled, y_labelled):
        x_labelled = self._check_images(x_labelled, "x_labelled", self.labelled_config)
        labels = np.asarray(y_labelled)
        rows = self.labelled_config.num_examples
        if labels.shape != (rows,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"y_labelled must be {rows} integers (shape ({rows},)), got {labels.dtype} of shape "
                             f"{labels.shape}")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"y_labelled must be in [0, K={self.num_classes}), got [{labels.min()}, {labels.max()}]")
        return x_labelled, labels.astype(np.int32)

    # --- statement and persistence ---------------------------------------------------------------

    def privacy_statement(self, *, delta, accountant="pld"):
        """The privacy statement of the trained classifier (D) and anything derived from it.

        Args:
            delta: the delta of the reported epsilon, in (0, 1).
            accountant: "pld" or "rdp".

        Returns:
            A `PrivacyStatement`: epsilon (the worse stream's) and, in its details, each stream's epsilon,
            noise multiplier, sampling probability, expected batch size and number of examples, the clipping
            bounds, the DP steps, the ledger and the seeding of noise and sampling.

        Raises:
            ValueError: for a non-private model, or an invalid delta or accountant.
        """
        return ssgan_privacy_statement(self, delta=delta, accountant=accountant)

    def get_config(self):
        calibrated = self.noise_multiplier_calibrated
        config = {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "num_labelled": self.labelled_config.num_examples,
            "num_unlabelled": self.dp_config.num_examples,
            "labelled_batch_size": self.labelled_config.expected_batch_size,
            "unlabelled_batch_size": self.dp_config.expected_batch_size,
            "feature_layer": self.feature_layer,
            "unsupervised_weight": self.unsupervised_weight,
            "labelled_gradient": self.labelled_gradient,
            "private": self.private,
            "seed": self.seed,
            "noise_seed": self.noise_seed,
            "ledger": self.prior_ledger.to_dict(),
            "head_ledger": self.head_ledger.to_dict(),
            "projection_ledger": self.projection_ledger.to_dict(),
            "stream_records": self.stream_records.get_config(),  # an id and a count, no digest
        }
        if self.private:
            config.update(
                l2_norm_clip=self.dp_config.l2_norm_clip,
                feature_l2_norm_clip=self.feature_l2_norm_clip,
                noise_multiplier=self.dp_config.noise_multiplier if calibrated else None,
                labelled_noise_multiplier=(self.labelled_config.noise_multiplier
                                           if calibrated and self.labelled_gradient != "none" else None),
            )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        config["ledger"] = PrivacyLedger.from_dict(config["ledger"])
        config["head_ledger"] = PrivacyLedger.from_dict(config.get("head_ledger", {"phases": []}))
        config["projection_ledger"] = PrivacyLedger.from_dict(config.get("projection_ledger", {"phases": []}))
        # Missing in files saved before the records were kept: the records are then unknown.
        config["stream_records"] = StreamRecords.from_config(config.get("stream_records"))
        return cls(**config)


def _with_features(discriminator, feature_layer):
    """A model `images -> (features, logits)` sharing `discriminator`'s layers."""
    if feature_layer is None:
        names = {layer.name for layer in discriminator.layers}
        if FEATURES_LAYER in names:
            features = discriminator.get_layer(FEATURES_LAYER).output
        else:
            features = discriminator.layers[-1].input
    else:
        try:
            features = discriminator.get_layer(feature_layer).output
        except ValueError as error:
            raise ValueError(f"feature_layer {feature_layer!r} is not a layer of the discriminator") from error
    if isinstance(features, (list, tuple)) or len(features.shape) != 2:
        raise ValueError(f"the feature layer must output one (batch, F) tensor, got {features}; flatten it first")
    return keras.Model(discriminator.inputs[0], [features, discriminator.outputs[0]])
