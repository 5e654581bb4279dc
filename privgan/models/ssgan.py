"""SemiSupervisedGAN: a GAN whose discriminator is a K-class classifier trained from few labels, optionally with DP.

The discriminator D of Salimans et al. (2016, "Improved techniques for training GANs") outputs K class
logits l_1..l_K; "fake" is the implicit class K + 1 with logit 0, so with Z(x) = sum_k exp(l_k(x)) the
probability that x is real is D(x) = Z(x) / (Z(x) + 1). D is trained on three losses:

    labelled (x, y):   -log softmax(l(x))_y                       = lse(l) - l_y
    unlabelled real x: -log D(x)                                    = softplus(-lse(l))
    generated G(z):    -log(1 - D(G(z)))                            = softplus(lse(l))

    D loss = mean_labelled + unsupervised_weight / 2 * (mean_unlabelled + mean_generated)

and G by feature matching: || mean over real x of f(x) - mean over z of f(G(z)) ||^2 / F, with f the
F features of an intermediate layer of D (by default its layer named "features", as the builders in
`privgan.models.architectures` name the last hidden layer). The trained D is the classifier: `predict`
gives the K logits and `evaluate(x, y)` the cross-entropy and accuracy. One Keras train step takes a
Poisson sample of each stream (expected sizes `labelled_batch_size` and `unlabelled_batch_size`), one D
step, then one G step on `round(unlabelled_batch_size)` fresh latent vectors. An epoch is
round(num_unlabelled / unlabelled_batch_size) steps.

Private training (`private=True`, the default). The private dataset is the disjoint union of the
labelled examples L (an example is an (image, label) pair) and the unlabelled examples U (an image):
each person's record is in exactly one of them, and which one is a property of the record (whether
it carries a label), not something chosen by looking at the other records. Every method that reads
private images refuses, before reading, an image that the other stream read, in that call or any earlier
one, whatever the order of the calls (the paper's setting, where the labelled images are among the
unlabelled ones, is such an overlap: leave the labelled images out of `x_unlabelled`); see
`privgan.models.ssgan_streams`, which also says how the records survive save/load without being
published. The check compares exact bytes: it cannot see the same image normalised two ways, nor a
person whose two records are different images; that the sets hold different people's records is the
user's to ensure.
Each D step makes two Gaussian releases, each from its own Poisson sample and its own noise draw:

    labelled:   (sum_{i in B_L} clip_C(grad l_i) + N(0, (sigma_L C)^2)) / (q_L N_L)
    unlabelled: (sum_{j in B_U} [clip_Cg(grad u_j), clip_Cf(f(x_j))] + N(0, (sigma_U C)^2)) / (q_U N_U)

with Cg^2 + Cf^2 = C^2, so each unlabelled example moves its release, the pair (gradient, features),
by at most C. The features' noisy mean is G's feature-matching target: without it, G's loss would read
the real images directly and G would not be post-processing. The generated half of D's gradient reads
no private data: it is clipped per example to C (so that it keeps the scale of the real halves) and
not noised. D's update is a weighted sum of the releases (weights are post-processing), G's update reads
only D and the released target, so only D's steps are charged and G's steps are free.

The accounting, derived. Under add/remove-one adjacency the differing example is either labelled or
unlabelled, which the example itself decides. Say it is labelled. Then the unlabelled releases have
the same distribution on both datasets given everything released before (they read U, D's weights and
the released history only), also though the streams run interleaved and each reads the D the other
updated: in the likelihood ratio of the whole transcript, every unlabelled factor is 1. So the example's
privacy loss is the adaptive composition of the labelled releases alone: T steps of
`PoissonSampledDpEvent(q_L, GaussianDpEvent(sigma_L))`; symmetrically an unlabelled example's is T
steps of `PoissonSampledDpEvent(q_U, GaussianDpEvent(sigma_U))`. The run is (epsilon, delta)-DP with

    epsilon(delta) = max(epsilon_L(delta), epsilon_U(delta))      (parallel composition)

each computed by dp-accounting from its stream's events, recorded in a `ParallelLedger` with one
`PrivacyLedger` per stream. It is tight: the worse stream's epsilon is what one of its examples loses.
It holds only for disjoint streams: a record read by both (the same image labelled and unlabelled)
would lose the composition of both streams' events, more than either.
Composing the two streams instead (charging every step with both events) would also be correct but
would cost up to sqrt(2) in noise for the same epsilon; charging one combined noisy sum at the larger
q would force the few labelled examples to be sampled at the unlabelled rate (or every unlabelled
example to be charged at the labelled rate). Separate releases also let the two streams have their own
noise multiplier: with `noise_multiplier=None` and `labelled_noise_multiplier=None`, `fit` calibrates
each so that its stream spends exactly the target epsilon in the planned steps.

The sampling of the two streams uses one seed but different sampling streams (`privgan.dp.noise`), so
their Poisson samples never share a Philox input; both are positioned at the global DP step, so a
resumed run continues both sequences. The noise comes from the model's secret `NoiseStream`: two draws
per step, told apart by its draw counter. `fit_head`'s steps (a DP-SGD phase of the labelled stream,
with its own noise stream) take the global positions after the GAN steps before them, and later GAN
steps the positions after those: with fixed sampling and noise seeds too, no phase repeats another's
Poisson sample or noise draw.

One-shot releases. Besides DP-SGD steps, D's pieces can be set by single Gaussian releases of
sensitivity 1, each charged to the stream it reads (a `ReleasePhase` in `head_ledger` for the labelled
stream, in `projection_ledger` for the unlabelled one) and drawn at its own global noise position:
`fit_projection` (a PCA whitening layer from the unlabelled images' second moments),
`fit_centroid_head` (the last layer from the labelled examples' class sums) and `refine_centroid_head`
(k-means rounds of the last layer on the unlabelled images). With a fixed, public front end
(`privgan.models.architectures.scattering_discriminator`) they make a private classifier without any
GAN step; G then stays untrained.

Monitoring metrics `d_loss_labelled`, `d_loss_unlabelled` are noiseless means over private batches:
not covered by the guarantee. `evaluate` on private data is outside the guarantee too.

One device only (a single CPU or GPU): under a distribution strategy with several replicas `fit` refuses.
"""

import datetime
import functools
import hashlib
import math

import dp_accounting
import keras
import numpy as np
import tensorflow as tf

from privgan.accounting import ParallelLedger, PrivacyLedger, calibrate_noise_multiplier, max_steps
from privgan.accounting.events import check_accountant, check_count, check_delta, check_noise_multiplier, check_positive
from privgan.dp.bookkeeping import DPStepBookkeeping, float32_at_least
from privgan.dp.clipping import clip_factors, clipped_gradient_sum
from privgan.dp.config import DPSGDConfig
from privgan.dp.layer_rules import keep_rows
from privgan.dp.mechanism import private_gradients
from privgan.dp.noise import gaussian_noise_like
from privgan.dp.regularization import refuse_data_dependent_losses, weight_penalty_gradients
from privgan.dp.sampling import poisson_batches
from privgan.dp.training import DPModel
from privgan.dp.validation import check_private_model
from privgan.models.ssgan_streams import StreamRecords

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


def _scaled_to_unit_ball(rows):
    """Each row of a float64 array scaled to L2 norm <= 1 (rows that are not finite become 0)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    finite = np.isfinite(norms)
    return np.where(finite, rows / np.where(finite, np.maximum(norms, 1.0), 1.0), 0.0)


def _in_batches(model, inputs, *, batch_size=1024):
    """`model`'s outputs (inference mode) for all of `inputs`, computed a batch at a time, as one NumPy array."""
    return np.concatenate([keras.ops.convert_to_numpy(model(inputs[i : i + batch_size], training=False))
                           for i in range(0, len(inputs), batch_size)])


def _fingerprint(images, weights):
    """A digest of an image array and of the weights of the model that maps it, to key a cache."""
    digest = hashlib.blake2b(np.ascontiguousarray(images).tobytes(), digest_size=16)
    for weight in weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.digest()


def _check_positive_number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="privgan")
class SemiSupervisedGAN(DPStepBookkeeping, keras.Model):
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
        # Which images each stream read (`privgan.models.ssgan_streams`); not a Keras-tracked attribute.
        if stream_records is not None and not isinstance(stream_records, StreamRecords):
            raise TypeError(f"stream_records must be a StreamRecords or None, got {stream_records!r}")
        object.__setattr__(self, "stream_records", StreamRecords() if stream_records is None else stream_records)
        self._add_privacy_variables(noise_seed)
        # G's feature-matching target: the (noisy, when private) mean features of the last real batch.
        self.feature_target = self.add_weight(shape=(self.num_features,), initializer="zeros", trainable=False,
                                              name="feature_target")
        self.d_loss_labelled_tracker = keras.metrics.Mean(name="d_loss_labelled")
        self.d_loss_unlabelled_tracker = keras.metrics.Mean(name="d_loss_unlabelled")
        self.d_loss_fake_tracker = keras.metrics.Mean(name="d_loss_fake")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.test_loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.built = True

    refused_fit_arguments = (*DPStepBookkeeping.refused_fit_arguments, "validation_data")

    @property
    def metrics(self):
        return [self.d_loss_labelled_tracker, self.d_loss_unlabelled_tracker, self.d_loss_fake_tracker,
                self.g_loss_tracker, self.test_loss_tracker, self.accuracy_tracker]

    def compile(self, d_optimizer="adam", g_optimizer="adam", **kwargs):
        """Sets the optimizers of D and G.

        Args:
            d_optimizer: a Keras optimizer (or its name) for the discriminator.
            g_optimizer: a Keras optimizer (or its name) for the generator.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`, `run_eagerly`).
        """
        super().compile(**kwargs)
        self.d_optimizer = keras.optimizers.get(d_optimizer)
        self.g_optimizer = keras.optimizers.get(g_optimizer)

    def get_compile_config(self):
        # Optimizer state is not saved: compile again after `keras.models.load_model`.
        return {}

    # --- privacy bookkeeping of two streams -------------------------------------------------------

    def _streams(self):
        return {"labelled": self.labelled_config, "unlabelled": self.dp_config}

    def _first_position(self):
        # `fit_head`'s steps took the positions after the GAN steps before them (see the module docstring).
        return (self.prior_ledger.mechanism_runs + self.head_ledger.mechanism_runs
                + self.projection_ledger.mechanism_runs)

    def _step_parameters(self):
        return {
            "noise_multiplier": self.dp_config.noise_multiplier,
            "labelled_noise_multiplier": self.labelled_config.noise_multiplier,
            "l2_norm_clip": self.dp_config.l2_norm_clip,
            "feature_l2_norm_clip": self.feature_l2_norm_clip,
            "sampling_probability": self.dp_config.sampling_probability,
            "labelled_sampling_probability": self.labelled_config.sampling_probability,
        }

    @property
    def privacy_ledger(self):
        """A `ParallelLedger`: one `PrivacyLedger` per stream, after the prior ledger of the whole data.

        A non-private model's steps are charged with noise multiplier 0: its epsilon is infinite.
        """
        steps = self._steps_taken()
        parts = {}
        for name, config in self._streams().items():
            ledger = PrivacyLedger()
            if name == "unlabelled" or self.labelled_gradient != "none":
                ledger.record(noise_multiplier=config.noise_multiplier,
                              sampling_probability=config.sampling_probability, steps=steps)
            parts[name] = ledger
        # The head's own training (`fit_head`) read the labelled examples only.
        parts["labelled"] = PrivacyLedger(parts["labelled"].phases + self.head_ledger.phases)
        # `fit_projection`'s releases read the unlabelled examples only.
        parts["unlabelled"] = PrivacyLedger(parts["unlabelled"].phases + self.projection_ledger.phases)
        return ParallelLedger(parts, prior=self.prior_ledger)

    def _training_plan(self, epochs, remaining, target_epsilon, delta):
        plan = super()._training_plan(epochs, remaining, target_epsilon, delta)
        return plan.replace("noise_multiplier", "noise_multiplier (unlabelled stream)", 1) + (
            f" Labelled stream: noise_multiplier {self.labelled_config.noise_multiplier:.4g}, sampling probability "
            f"{self.labelled_config.sampling_probability:.4g}; epsilon is the worse stream's.")

    def _max_further_steps(self, *, target_epsilon, delta, accountant):
        ledger = self.privacy_ledger
        return min(
            max_steps(target_epsilon=target_epsilon, delta=delta, noise_multiplier=config.noise_multiplier,
                      sampling_probability=config.sampling_probability, accountant=accountant,
                      ledger=ledger.part_ledger(name))
            for name, config in self._streams().items()
            if name == "unlabelled" or self.labelled_gradient != "none"
        )

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
                stream read, now or earlier (or whose earlier reads are unknown: see `ssgan_streams`).
            NotImplementedError: under a distribution strategy with several replicas.
        """
        self._refuse_sampling_arguments(kwargs)
        if self.distribute_strategy.num_replicas_in_sync > 1:
            raise NotImplementedError(
                "SemiSupervisedGAN trains on one device; build it outside a multi-replica strategy"
            )
        epochs = check_count(epochs, name="epochs", minimum=1)
        accountant = check_accountant(accountant)
        if delta is not None:
            delta = check_delta(delta)
        if target_epsilon is not None:
            target_epsilon = check_positive(target_epsilon, name="target_epsilon")
            if delta is None:
                raise ValueError("target_epsilon needs delta")
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

    def _calibrate(self, *, epochs, target_epsilon, delta, accountant):
        if target_epsilon is None:
            raise ValueError(
                "noise multipliers of None are calibrated in fit, which then needs target_epsilon and delta"
            )
        if self._steps_taken():
            raise ValueError("noise multipliers can only be calibrated before this model's first DP step")
        steps = self.planned_dp_steps(epochs)
        ledger = self.privacy_ledger

        def calibrated(name, config):
            # After what the stream's examples went through already (a prior ledger, `fit_head`'s steps).
            sigma = calibrate_noise_multiplier(target_epsilon=target_epsilon, delta=delta, steps=steps,
                                               sampling_probability=config.sampling_probability, accountant=accountant,
                                               ledger=ledger.part_ledger(name))
            return DPSGDConfig(l2_norm_clip=config.l2_norm_clip, noise_multiplier=float32_at_least(sigma),
                               num_examples=config.num_examples, expected_batch_size=config.expected_batch_size)

        # Parallel composition: each stream may spend the whole budget.
        self.dp_config = calibrated("unlabelled", self.dp_config)
        if self.labelled_gradient != "none":
            self.labelled_config = calibrated("labelled", self.labelled_config)
        self.noise_multiplier_calibrated = True
        self.train_function = None  # a step traced before holds the old sigmas

    def fit_head(self, x_labelled, y_labelled, *, epochs, expected_batch_size, l2_norm_clip=None,
                 noise_multiplier=None, target_epsilon=None, delta=None, accountant="pld", optimizer="adam",
                 sampling_seed=None, **kwargs):
        """Trains D's last layer on the labelled examples with the features frozen (DP-SGD when private).

        The features of the labelled images come from the trained D (in inference mode), which is a
        function of the earlier releases only; each (features, label) pair is one private example,
        clipped per example. The head's steps read the labelled stream only, so they go to its part of
        the `ParallelLedger` (`head_ledger`), composed after that stream's earlier events (its GAN
        releases, earlier `fit_head` phases, the prior ledger): with `labelled_gradient="none"` in `fit`,
        the GAN phase reads no labels, and this is the labelled stream's whole cost. On a fixed, convex
        problem the labels' budget is not spent chasing features that keep moving. `x_labelled` must
        share no image with the unlabelled images read earlier (checked, as exact bytes).
        The phase's Poisson samples and noise draws take the global positions after this model's steps
        so far, so they repeat none of the GAN phase's, whatever seeds are given.

        Args:
            x_labelled, y_labelled: the N_L labelled images and their labels, as in `fit`.
            epochs: epochs of Poisson-sampled steps over the labelled examples, >= 1.
            expected_batch_size: expected Poisson batch size, in (0, N_L].
            l2_norm_clip: C of the head's per-example gradients (private only; default: the model's C).
            noise_multiplier: sigma, or None to calibrate it to `target_epsilon` (private only).
            target_epsilon, delta, accountant: the labelled stream's budget (see `DPModel.fit`).
            optimizer: a Keras optimizer for the head.
            sampling_seed: seed of the Poisson sampling (None: secret).
            **kwargs: passed to the head's `fit` (e.g. `verbose`).

        The noise is seeded as the model's (its `noise_seed`: secret unless the model was given one),
        so that the statement's `noise_seeding` covers this phase too.

        Returns:
            The `History` of the head's training.

        Raises:
            ValueError: for data or arguments out of range, as `fit` and `DPModel.fit` check them, or
                images that the other stream read, now or earlier (or whose earlier reads are unknown: see
                `ssgan_streams`).
        """
        x_labelled, labels = self._check_labelled(x_labelled, y_labelled)
        if self.private:
            self.stream_records.check_and_record("fit_head", x_labelled=x_labelled)
        features = _in_batches(self._head_input, x_labelled)
        head = self.discriminator.layers[-1]
        model = keras.Sequential([keras.Input(features.shape[1:]), head])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if not self.private:
            model.compile(optimizer=optimizer, loss=loss)
            return model.fit(features, labels, epochs=epochs, batch_size=max(1, round(expected_batch_size)), **kwargs)
        private = _HeadPhase(
            model, first_position=self._first_position() + self._steps_taken(),
            l2_norm_clip=self.dp_config.l2_norm_clip if l2_norm_clip is None else l2_norm_clip,
            noise_multiplier=noise_multiplier, num_examples=len(features), expected_batch_size=expected_batch_size,
            noise_seed=self.noise_seed, ledger=self.privacy_ledger.part_ledger("labelled"),
        )
        private.compile(optimizer=optimizer, loss=loss)
        history = private.fit(features, labels, epochs=epochs, target_epsilon=target_epsilon, delta=delta,
                              accountant=accountant, sampling_seed=sampling_seed, **kwargs)
        head_ledger = self.head_ledger.copy()
        head_ledger.record(noise_multiplier=private.dp_config.noise_multiplier,
                           sampling_probability=private.dp_config.sampling_probability, steps=private._steps_taken())
        self.head_ledger = head_ledger
        self.train_function = None  # a traced GAN step holds the positions from before these steps
        self.sampling_seed_fixed = bool(self.sampling_seed_fixed) or sampling_seed is not None
        return history

    def fit_centroid_head(self, x_labelled, y_labelled, *, noise_multiplier=None, target_epsilon=None, delta=None,
                          accountant="pld"):
        """Sets D's last layer to the (noisy, when private) class sums of the labelled examples' features.

        A one-shot alternative to `fit_head` for few labels: each labelled example's features f (D's
        input to its last layer, frozen, in inference mode), scaled to L2 norm <= 1, are added to the
        row of its class, S_k = sum_{i: y_i = k} f_i. Adding or removing one example moves one row by
        at most 1, so S + N(0, sigma^2) per entry is one Gaussian release of sensitivity 1, charged to
        the labelled stream as `GaussianDpEvent(sigma)` after its earlier events. The head then scores
        logit_k(x) = <f(x), S_k> / (N_L / K) with bias 0 (a nearest-centroid rule for unit-norm
        features, as `scattering_discriminator` gives). For a fixed test image the noise moves each
        logit by N(0, sigma^2 |f|^2 / (N_L / K)^2) whatever the feature dimension, whereas DP-SGD on the
        same head adds noise of norm growing with the square root of its K F parameters at every step.
        The release takes the global noise position after this model's steps and releases so far.

        Args:
            x_labelled, y_labelled: the N_L labelled images and their labels, as in `fit`.
            noise_multiplier: sigma (private only), or None to calibrate it so that the labelled
                stream's epsilon, this release included, is `target_epsilon`.
            target_epsilon, delta, accountant: the labelled stream's budget; with a given
                `noise_multiplier` the budget, when given, is checked.

        Raises:
            ValueError: for data or arguments out of range, a last layer that is not a Dense layer
                with bias, a release that would exceed the budget, or images that the other
                stream read, now or earlier (or whose earlier reads are unknown: see `ssgan_streams`).
        """
        x_labelled, labels = self._check_labelled(x_labelled, y_labelled)
        head = self._dense_head("fit_centroid_head")
        if self.private:
            self.stream_records.check_and_record("fit_centroid_head", x_labelled=x_labelled)
        features = _scaled_to_unit_ball(_in_batches(self._head_input, x_labelled).astype(np.float64))
        sums = np.zeros((self.num_classes, features.shape[1]))
        np.add.at(sums, labels, features)
        if self.private:
            sigma = self._release_noise_multiplier("labelled", noise_multiplier, target_epsilon, delta, accountant)
            sums = self._gaussian_release(sums, sigma=sigma, ledger="head_ledger", description=(
                f"class sums of the labelled examples' features ({self.num_classes} x {sums.shape[1]}, each "
                "example's features scaled to L2 norm <= 1), L2 sensitivity 1, Gaussian noise of std "
                "noise_multiplier"))
        per_class = self.labelled_config.num_examples / self.num_classes
        head.kernel.assign((sums.T / per_class).astype(head.kernel.dtype))
        head.bias.assign(np.zeros(head.bias.shape, head.bias.dtype))

    def refine_centroid_head(self, x_unlabelled, *, rounds, noise_multiplier=None, target_epsilon=None, delta=None,
                             accountant="pld"):
        """Refines D's centroid head on the unlabelled images: `rounds` of spherical k-means, each a Gaussian release.

        Starting from D's last layer (e.g. set by `fit_centroid_head`), each round assigns every
        unlabelled image to the class whose (unit-normalised) head column scores its features highest
        (a function of the image and of earlier releases only), and releases the class sums of the
        assigned features, each scaled to L2 norm <= 1, plus N(0, sigma^2) per entry: one Gaussian
        release of sensitivity 1 per round (one image moves one row by at most 1), charged to the
        unlabelled stream as `GaussianDpEvent(sigma)`. The head's columns become the released sums,
        unit-normalised, with bias 0. With thousands of images per class the sums are long next to the
        noise, so the rounds cost little epsilon at a large sigma; what the labelled release only
        roughly located, the unlabelled images' clusters then pin down. Each release takes the next
        global noise position.

        Args:
            x_unlabelled: the N_U unlabelled images, as in `fit`.
            rounds: number of k-means rounds (releases), >= 1.
            noise_multiplier: sigma of every round (private only), or None to calibrate it so that the
                unlabelled stream's epsilon, these rounds included, is `target_epsilon`.
            target_epsilon, delta, accountant: the unlabelled stream's budget; with a given
                `noise_multiplier` the budget, when given, is checked.

        Raises:
            ValueError: for data or arguments out of range, a last layer that is not a Dense layer with
                bias, releases that would exceed the budget, or images that the other
                stream read, now or earlier (or whose earlier reads are unknown: see `ssgan_streams`).
        """
        rounds = check_count(rounds, name="rounds", minimum=1)
        head = self._dense_head("refine_centroid_head")
        x_unlabelled = self._check_images(x_unlabelled, "x_unlabelled", self.dp_config)
        if self.private:
            self.stream_records.check_and_record("refine_centroid_head", x_unlabelled=x_unlabelled)
        features = _scaled_to_unit_ball(self._unlabelled_head_inputs(x_unlabelled).astype(np.float64))
        if self.private:
            sigma = self._release_noise_multiplier("unlabelled", noise_multiplier, target_epsilon, delta, accountant,
                                                   releases=rounds)
        centroids = keras.ops.convert_to_numpy(head.kernel).T.astype(np.float64)
        for _ in range(rounds):
            norms = np.linalg.norm(centroids, axis=1, keepdims=True)
            assigned = np.argmax(features @ (centroids / np.maximum(norms, 1e-12)).T, axis=1)
            centroids = np.zeros_like(centroids)
            np.add.at(centroids, assigned, features)
            if self.private:
                centroids = self._gaussian_release(centroids, sigma=sigma, ledger="projection_ledger", description=(
                    f"k-means round: class sums of the unlabelled examples' features ({self.num_classes} x "
                    f"{centroids.shape[1]}, each scaled to L2 norm <= 1), assigned by the released head, L2 "
                    "sensitivity 1, Gaussian noise of std noise_multiplier"))
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        head.kernel.assign((centroids / np.maximum(norms, 1e-12)).T.astype(head.kernel.dtype))
        head.bias.assign(np.zeros(head.bias.shape, head.bias.dtype))

    def _unlabelled_head_inputs(self, x_unlabelled):
        """D's input to its last layer for each image, from `fit_projection`'s rows when they are still valid."""
        cache = getattr(self, "_projection_cache", None)
        if cache is not None:
            dense, fingerprint, rows = cache
            projection_weights = keras.Model(self.discriminator.inputs[0], dense.input).weights
            if fingerprint == _fingerprint(x_unlabelled, projection_weights):
                return _in_batches(keras.Model(dense.input, self.discriminator.layers[-1].input), rows, batch_size=4096)
        return _in_batches(self._head_input, x_unlabelled)

    def _dense_head(self, method):
        head = self.discriminator.layers[-1]
        if not isinstance(head, keras.layers.Dense) or not head.use_bias:
            raise ValueError(f"{method} sets a Dense last layer with bias; D's is {type(head).__name__}")
        return head

    def fit_projection(self, x_unlabelled, *, layer="projection", noise_multiplier=None, target_epsilon=None,
                       delta=None, accountant="pld"):
        """Sets a Dense layer of D to a PCA whitening of its inputs, from a Gaussian release of the unlabelled stream.

        Each unlabelled image's input v to the layer (D frozen, in inference mode), scaled to L2 norm
        <= 1, adds v v^T to the second-moment matrix M = sum_j v_j v_j^T (d x d). Adding or removing
        one image moves M by at most ||v v^T||_F = |v|^2 <= 1, so M + E, E with independent N(0,
        sigma^2) entries, is one Gaussian release of sensitivity 1, charged to the unlabelled stream
        as `GaussianDpEvent(sigma)` (symmetrising it afterwards is post-processing). The layer's kernel
        (d x k, no bias) becomes the top k eigenvectors of the symmetrised release, each divided by the
        square root of its eigenvalue: the unlabelled images' main directions, equalised, so that a
        class-centroid head (`fit_centroid_head`) is not dominated by the few directions of largest
        variance that every digit shares. Many unlabelled images make the release's noise small next
        to M's leading eigenvalues, which grow with their number. The release takes the global noise
        position after this model's steps and releases so far.

        Args:
            x_unlabelled: the N_U unlabelled images, as in `fit` (the same records: each stream's
                releases are charged to its own examples).
            layer: name of a Dense layer of D without bias whose input is a flat vector
                (`scattering_discriminator(..., projection=k)` names it "projection").
            noise_multiplier: sigma (private only), or None to calibrate it so that the unlabelled
                stream's epsilon, this release included, is `target_epsilon`.
            target_epsilon, delta, accountant: the unlabelled stream's budget; with a given
                `noise_multiplier` the budget, when given, is checked.

        Raises:
            ValueError: for data or arguments out of range, a layer that is not a Dense layer without
                bias, a release that would exceed the budget, or images that the other
                stream read, now or earlier (or whose earlier reads are unknown: see `ssgan_streams`).
        """
        try:
            dense = self.discriminator.get_layer(layer)
        except ValueError as error:
            raise ValueError(f"layer {layer!r} is not a layer of the discriminator") from error
        if not isinstance(dense, keras.layers.Dense) or dense.use_bias:
            raise ValueError(f"layer {layer!r} must be a Dense layer without bias, got {type(dense).__name__}")
        x_unlabelled = self._check_images(x_unlabelled, "x_unlabelled", self.dp_config)
        if self.private:
            self.stream_records.check_and_record("fit_projection", x_unlabelled=x_unlabelled)
        inputs = keras.Model(self.discriminator.inputs[0], dense.input)
        dimension, components = dense.kernel.shape
        moments = np.zeros((dimension, dimension))
        cached = []
        for i in range(0, len(x_unlabelled), 1024):
            rows = keras.ops.convert_to_numpy(inputs(x_unlabelled[i : i + 1024], training=False))
            cached.append(rows.astype(np.float32))
            rows = _scaled_to_unit_ball(rows.astype(np.float64))
            moments += rows.T @ rows
        # `refine_centroid_head` on the same images starts from these rows instead of the images: a
        # scattering front end costs most of the time. Kept in memory only, keyed by the images and by
        # the weights that computed them.
        object.__setattr__(self, "_projection_cache",
                           (dense, _fingerprint(x_unlabelled, inputs.weights), np.concatenate(cached)))
        if self.private:
            sigma = self._release_noise_multiplier("unlabelled", noise_multiplier, target_epsilon, delta, accountant)
            moments = self._gaussian_release(moments, sigma=sigma, ledger="projection_ledger", description=(
                f"second-moment matrix ({dimension} x {dimension}) of the unlabelled examples' inputs to D's layer "
                f"{layer!r}, each scaled to L2 norm <= 1, L2 sensitivity 1, Gaussian noise of std noise_multiplier"))
        values, vectors = np.linalg.eigh((moments + moments.T) / 2)
        values, vectors = values[::-1][:components], vectors[:, ::-1][:, :components]
        # Noise can leave an eigenvalue <= 0 among the top k only when k exceeds what the data support.
        floor = max(values[0], 1.0) * 1e-6
        dense.kernel.assign((vectors / np.sqrt(np.maximum(values, floor))).astype(dense.kernel.dtype))

    def _gaussian_release(self, values, *, sigma, ledger, description):
        """`values` (float64, sensitivity 1) plus N(0, sigma^2) per entry, recorded in the ledger attribute `ledger`.

        The noise is drawn at the current global position, then the release is recorded, which moves the
        position on (see `_first_position`): later steps and releases never reuse this draw.
        """
        (noise,) = gaussian_noise_like([tf.zeros(values.shape, tf.float64)], stddev=sigma,
                                       seed=self.noise_stream.next_seed())
        updated = getattr(self, ledger).copy()
        updated.record_release(dp_accounting.GaussianDpEvent(sigma), description=description)
        setattr(self, ledger, updated)
        self.train_function = None  # the compiled step's positions start after this release
        return values + keras.ops.convert_to_numpy(noise)

    def _release_noise_multiplier(self, stream, noise_multiplier, target_epsilon, delta, accountant, releases=1):
        """The sigma of `releases` Gaussian releases (sensitivity 1) charged to `stream`, calibrated or checked."""
        accountant = check_accountant(accountant)
        if (target_epsilon is None) != (delta is None):
            raise ValueError("target_epsilon and delta go together")
        ledger = self.privacy_ledger.part_ledger(stream)
        if noise_multiplier is None:
            if target_epsilon is None:
                raise ValueError("noise_multiplier=None is calibrated to target_epsilon, which then needs delta")
            # A Gaussian release of sensitivity 1 is DP-SGD's full-batch step (q = 1).
            noise_multiplier = calibrate_noise_multiplier(
                target_epsilon=check_positive(target_epsilon, name="target_epsilon"), delta=check_delta(delta),
                sampling_probability=1.0, steps=releases, accountant=accountant, ledger=ledger)
        sigma = check_noise_multiplier(noise_multiplier)
        if not sigma > 0:
            raise ValueError("a private release needs noise_multiplier > 0")
        if target_epsilon is not None:
            for _ in range(releases):
                ledger.record_release(dp_accounting.GaussianDpEvent(sigma), description="a planned release")
            spent = ledger.epsilon(delta=delta, accountant=accountant)
            if spent > target_epsilon:
                raise ValueError(f"a release with noise_multiplier={sigma:g} would spend epsilon={spent:.4g} > "
                                 f"target_epsilon={target_epsilon} on the {stream} stream (earlier events included)")
        return sigma

    # --- statement and persistence ---------------------------------------------------------------

    def privacy_report(self, *, delta, accountant="pld"):
        """The privacy statement of the trained classifier (D) and anything derived from it, as a dict.

        Args:
            delta: the delta of the reported epsilon, in (0, 1).
            accountant: "pld" or "rdp".

        Returns:
            A JSON-serialisable dict: epsilon (the worse stream's), the per-stream epsilons, delta,
            accountant, each stream's noise multiplier, sampling probability, expected batch size and
            number of examples, the clipping bounds, the DP steps, the ledger, the seeding of noise and
            sampling, version, date and the guarantee in words.

        Raises:
            ValueError: for a non-private model, or an invalid delta or accountant.
        """
        from privgan import __version__

        if not self.private:
            raise ValueError(
                "this SemiSupervisedGAN was trained without DP (private=False): it has no privacy statement"
            )
        delta = check_delta(delta)
        accountant = check_accountant(accountant)
        ledger = self.privacy_ledger
        epsilons = ledger.part_epsilons(delta=delta, accountant=accountant)
        streams = {
            name: {
                "epsilon": epsilons[name],
                "noise_multiplier": config.noise_multiplier,
                "sampling_probability": config.sampling_probability,
                "expected_batch_size": config.expected_batch_size,
                "num_examples": config.num_examples,
            }
            for name, config in self._streams().items()
        }
        for name, stream in streams.items():
            # No GAN step read the stream: its only costs are its phases and releases below.
            if not self._steps_taken() or (name == "labelled" and self.labelled_gradient == "none"):
                stream.update(noise_multiplier=None, sampling_probability=None, expected_batch_size=None)
        streams["labelled"]["head_phases"] = self.head_ledger.to_dict()["phases"]
        streams["unlabelled"]["projection_phases"] = self.projection_ledger.to_dict()["phases"]
        return {
            "epsilon": max(epsilons.values()),
            "delta": delta,
            "accountant": accountant,
            "streams": streams,
            "l2_norm_clip": self.dp_config.l2_norm_clip,
            "feature_l2_norm_clip": self.feature_l2_norm_clip,
            "d_steps": self._steps_taken(),
            "ledger": ledger.to_dict(),
            **self.randomness_policy(),
            "privgan_version": __version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "guarantee": (
                "Example-level (epsilon, delta)-DP, add-or-remove-one adjacency, for the classifier (the "
                "discriminator) and everything derived from it, the generator included. The private data are "
                "the labelled examples, each an (image, label) pair, and the unlabelled images: both labels "
                "and images are covered. Each discriminator step made a Gaussian release per stream read "
                "(the labelled one only if the labelled stream's noise_multiplier is not null), each from its "
                "own Poisson sample: the labelled examples' gradients clipped to l2_norm_clip, and the "
                "unlabelled examples' (gradient, features) pairs clipped to l2_norm_clip together (features to "
                "feature_l2_norm_clip; the noisy mean features are the generator's feature-matching target), "
                "each noised with std noise_multiplier * l2_norm_clip of its stream. The labelled stream's "
                "head_phases are DP-SGD phases of the last layer on frozen features (fit_head) or Gaussian releases "
                "of its class centroids (fit_centroid_head); the unlabelled stream's projection_phases are "
                "Gaussian releases of its feature second moments (fit_projection) and of k-means class sums "
                "(refine_centroid_head), each of L2 sensitivity 1 as described there. Each stream's "
                "epsilon composes, with dp-accounting, its d_steps PoissonSampledDpEvent(sampling_probability, "
                "GaussianDpEvent(noise_multiplier)), its head or projection phases and any prior ledger; epsilon is "
                "the larger of the two streams' (parallel composition). That assumes each person's record is in one "
                "stream only (labelled or unlabelled, decided by the record itself): every method that read private "
                "images refused an image that the other stream had read, but the check compares exact bytes, so the "
                "same image normalised two ways, or a person with two different records in the two sets, would pass it "
                "and lose more than epsilon: record-level disjointness is the user's to ensure. "
                "The generator read only the discriminator and the released target, so its steps cost nothing. "
                "The numbers of examples are treated as public. It assumes "
                "nothing else derived from the private data (hyper-parameters tuned on it, evaluations on it, "
                "data-derived normalisation) was used or released, that nobody knows the noise (see "
                "noise_seeding) or the batches (see sampling_seeding), and it ignores floating-point "
                "effects: the noise's tails are cut at 11.6 standard deviations (privgan.dp.noise)."
            ),
        }

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


class _HeadPhase(DPModel):
    """The `DPModel` of `fit_head`: charged after the labelled stream's ledger, at positions after the GAN's.

    Its `ledger` is the labelled stream's (what its examples went through); its Poisson samples and noise
    draws start at `first_position`, the host's next global position, not at that ledger's end (which,
    when the GAN phase read no labels, would be the GAN phase's own first positions).
    """

    def __init__(self, model, *, first_position, **kwargs):
        super().__init__(model, **kwargs)
        self._head_first_position = int(first_position)

    def _first_position(self):
        return self._head_first_position


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
