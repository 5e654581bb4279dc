"""A DP-SGD phase of the unlabelled stream: a classifier trained on pseudo-labels from D's released head.

`fit_pseudo_label_classifier` (a mixin method of `SemiSupervisedGAN`) labels every unlabelled image
with the class its D scores highest, D as set by the earlier releases (e.g. `fit_centroid_head` and
`refine_centroid_head`), and trains a new classifier on those (image, pseudo-label) pairs with DP-SGD.
The classifier reads the same public front end as D (the input of D's layer "projection": for
`scattering_discriminator`, the normalised scattering coefficients), so with a linear classifier it is
Tramèr & Boneh's (2021) ScatterNet + linear model, which, trained on many examples, can draw finer class
boundaries than the centroid head that labelled them.

Privacy. An image's pseudo-label (and whether it is kept, by its margin) is a function of that image
and of D, which earlier releases set: the pair is a function of one private record, so DP-SGD on the
pairs, with each example's whole gradient clipped to C and N(0, sigma^2 C^2) added once to the sum of
a Poisson sample, is charged as usual: `PoissonSampledDpEvent(q, GaussianDpEvent(sigma))` per step,
recorded as one DP-SGD phase in the unlabelled stream's `projection_ledger`, after that stream's
releases, in the same dp-accounting ledger (`privacy_ledger`), so the statement covers it. An image
whose margin is below `min_margin` stays in the sample with a zero target: its cross-entropy term is
0, so the number of kept images, a private count, never sets the sampling rate or the divisor.

The GAN step (`generator=`). D then is Salimans et al.'s K+1-class discriminator on the front end's
features: "fake" is the implicit class with logit 0, the real images' per-example loss adds
`unsupervised_weight * softplus(-lse(logits))` (inside the clipped, noised DP-SGD sum), and after each
DP step the classifier takes a step on generated feature vectors only, `unsupervised_weight *
softplus(lse(logits(G(z))))`, and G a step on its non-saturating loss `softplus(-lse(logits(G(z))))`.
Those two steps read only G, the classifier and fresh latent vectors, never private data, so they are
post-processing and are not charged.
"""

import keras
import numpy as np
import tensorflow as tf

from privgan.accounting.events import check_count
from privgan.models.ssgan.releases import _HeadPhase, _in_batches


def pseudo_label_loss(*, unsupervised_weight=0.0):
    """A per-example loss `(targets, logits) -> (batch,)`: cross-entropy plus the K+1 "real" term.

    Args:
        unsupervised_weight: weight w >= 0 of `softplus(-lse(logits))`, the loss of calling a real
            example fake in Salimans et al.'s K+1-class discriminator (0: a plain classifier).

    Returns:
        The loss: `sum(t) lse(l) - <t, l> + w softplus(-lse(l))` for targets t, one-hot or all 0 (an
        example with a zero target adds only the unsupervised term).
    """
    weight = float(unsupervised_weight)
    if not weight >= 0:
        raise ValueError(f"unsupervised_weight must be >= 0, got {unsupervised_weight}")

    def loss(targets, logits):
        targets = tf.cast(targets, logits.dtype)
        lse = tf.reduce_logsumexp(logits, axis=-1)
        supervised = lse * tf.reduce_sum(targets, axis=-1) - tf.reduce_sum(targets * logits, axis=-1)
        return supervised + weight * tf.nn.softplus(-lse) if weight else supervised

    return loss


class _PseudoLabelPhase(_HeadPhase):
    """`fit_pseudo_label_classifier`'s DP-SGD model; with a generator, each DP step is followed by free GAN steps."""

    def __init__(self, model, *, generator=None, unsupervised_weight=0.0, fake_batch_size=100,
                 fake_optimizer=None, generator_optimizer=None, **kwargs):
        super().__init__(model, **kwargs)
        self.generator = generator
        self.unsupervised_weight = float(unsupervised_weight)
        self.fake_batch_size = int(fake_batch_size)
        self.fake_optimizer = fake_optimizer
        self.generator_optimizer = generator_optimizer
        # Latent vectors are not private: a Keras seed generator, not the secret noise stream.
        self.latent_seed = keras.random.SeedGenerator(None)

    def train_step(self, data):
        logs = super().train_step(data)
        if self.generator is not None:
            self._gan_steps()
        return logs

    def _gan_steps(self):
        """One step of the classifier on generated vectors, one of G: neither reads private data."""
        latent = (self.fake_batch_size, self.generator.inputs[0].shape[-1])
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(self.generator(keras.random.normal(latent, seed=self.latent_seed), training=True),
                                training=True)
            loss = self.unsupervised_weight * tf.reduce_mean(tf.nn.softplus(tf.reduce_logsumexp(logits, axis=-1)))
        self.fake_optimizer.apply(tape.gradient(loss, variables), variables)
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(self.generator(keras.random.normal(latent, seed=self.latent_seed), training=True),
                                training=False)
            loss = tf.reduce_mean(tf.nn.softplus(-tf.reduce_logsumexp(logits, axis=-1)))
        self.generator_optimizer.apply(tape.gradient(loss, variables), variables)


class PseudoLabelRelease:
    """`SemiSupervisedGAN.fit_pseudo_label_classifier` (a mixin; see the module docstring)."""

    def fit_pseudo_label_classifier(self, x_unlabelled, *, classifier, epochs, expected_batch_size, layer="projection",
                                    min_margin=0.0, unsupervised_weight=0.0, generator=None, fake_batch_size=100,
                                    generator_optimizer=None, l2_norm_clip=None, noise_multiplier=None,
                                    target_epsilon=None, delta=None, accountant="pld", optimizer="sgd",
                                    sampling_seed=None, **kwargs):
        """Trains `classifier` with DP-SGD on the unlabelled images' pseudo-labels from D; returns images -> logits.

        Args:
            x_unlabelled: the N_U unlabelled images, as in `fit`.
            classifier: a built Keras model from the input of D's layer `layer` (a flat vector) to K logits.
            epochs: epochs of Poisson-sampled steps (each round(N_U / expected_batch_size) steps), >= 1.
            expected_batch_size: expected Poisson batch size, in (0, N_U].
            layer: the layer of D whose input the classifier reads (D's front end up to it is public).
            min_margin: images whose top two logits of D differ by less get a zero target (only the
                unsupervised term, if any), >= 0.
            unsupervised_weight: w of the K+1 "real" and "fake" terms (see the module docstring), >= 0.
            generator: None (no GAN step) or a built Keras model from latent vectors to the classifier's
                input; it is trained by the free steps (needs `unsupervised_weight` > 0).
            fake_batch_size: generated vectors per free step, >= 1.
            generator_optimizer: G's Keras optimizer (default Adam(1e-3, beta_1=0.5)).
            l2_norm_clip: C (default: the model's C).
            noise_multiplier: sigma (private only), or None to calibrate it so that the unlabelled
                stream's epsilon, its earlier releases included, is `target_epsilon`.
            target_epsilon, delta, accountant: the unlabelled stream's budget (see `DPModel.fit`).
            optimizer: the classifier's Keras optimizer for the DP steps (the free steps use a copy).
            sampling_seed: seed of the Poisson sampling (None: secret).
            **kwargs: passed to `DPModel.fit` (e.g. `verbose`).

        Without DP (`private=False`) the same steps run with sigma 0 and are not charged.

        Returns:
            A Keras model `images -> K logits`: D's public front end, then the trained classifier.

        Raises:
            ValueError: for data or arguments out of range, a generator without `unsupervised_weight`,
                a budget already spent, or images that the labelled stream read (see `ssgan.streams`).
        """
        epochs = check_count(epochs, name="epochs", minimum=1)
        fake_batch_size = check_count(fake_batch_size, name="fake_batch_size", minimum=1)
        if not (isinstance(min_margin, (int, float)) and np.isfinite(min_margin) and min_margin >= 0):
            raise ValueError(f"min_margin must be a finite number >= 0, got {min_margin!r}")
        if generator is not None and not unsupervised_weight > 0:
            raise ValueError("a generator trains only through the K+1 terms: give unsupervised_weight > 0")
        x_unlabelled = self._check_images(x_unlabelled, "x_unlabelled", self.dp_config)
        if self.private:
            self.stream_records.check_and_record("fit_pseudo_label_classifier", x_unlabelled=x_unlabelled)
        rows, front = self._layer_inputs(x_unlabelled, layer)
        logits = _in_batches(keras.Model(self.discriminator.get_layer(layer).input, self.discriminator.outputs[0]),
                             rows, batch_size=4096)
        top = np.sort(logits, axis=1)
        kept = (top[:, -1] - top[:, -2] >= min_margin).astype(np.float32)
        targets = np.eye(self.num_classes, dtype=np.float32)[np.argmax(logits, axis=1)] * kept[:, None]
        fake = {}
        if generator is not None:
            fake_optimizer = keras.optimizers.get(keras.optimizers.serialize(keras.optimizers.get(optimizer)))
            generator_optimizer = generator_optimizer or keras.optimizers.Adam(1e-3, beta_1=0.5)
            fake_optimizer.build(classifier.trainable_variables)
            generator_optimizer.build(generator.trainable_variables)
            fake = dict(generator=generator, fake_optimizer=fake_optimizer, generator_optimizer=generator_optimizer,
                        fake_batch_size=fake_batch_size)
        phase = _PseudoLabelPhase(
            classifier, first_position=self._first_position() + self._steps_taken(),
            l2_norm_clip=self.dp_config.l2_norm_clip if l2_norm_clip is None else l2_norm_clip,
            noise_multiplier=noise_multiplier if self.private else 0.0, num_examples=len(rows),
            expected_batch_size=expected_batch_size, noise_seed=self.noise_seed,
            ledger=self.privacy_ledger.part_ledger("unlabelled"), unsupervised_weight=unsupervised_weight, **fake)
        phase.compile(optimizer=optimizer, loss=pseudo_label_loss(unsupervised_weight=unsupervised_weight))
        budget = dict(target_epsilon=target_epsilon, delta=delta, accountant=accountant) if self.private else {}
        phase.fit(rows, targets, epochs=epochs, sampling_seed=sampling_seed, **budget, **kwargs)
        if self.private:
            self._charge_phase("projection_ledger", phase, sampling_seed=sampling_seed)
        # The noise multiplier the steps used (calibrated, or as given): what the ledger above charged.
        self.pseudo_label_noise_multiplier = phase.dp_config.noise_multiplier
        images = self.discriminator.inputs[0]
        return keras.Model(images, classifier(front(images)), name="pseudo_label_classifier")

    def _layer_inputs(self, x_unlabelled, layer):
        """(D's layer `layer`'s input rows for the images, the public front end up to it), cached if valid."""
        try:
            dense = self.discriminator.get_layer(layer)
        except ValueError as error:
            raise ValueError(f"layer {layer!r} is not a layer of the discriminator") from error
        front = keras.Model(self.discriminator.inputs[0], dense.input)
        cached = self._cached_projection_rows(x_unlabelled)
        if cached is not None and cached[0] is dense:
            return cached[1], front
        return _in_batches(front, x_unlabelled).astype(np.float32), front
