"""DPGAN: a GAN whose discriminator is trained with DP-SGD, optionally conditioned on class labels.

Only the discriminator D reads private data, so only its update goes through the Gaussian mechanism:
each D step takes its own Poisson sample of the private set, computes the non-saturating loss of each
real example (the example is the pair (x, label) when conditional), clips each example's gradient to
`l2_norm_clip`, sums, adds N(0, (sigma C)^2) and divides by the expected batch size B
(`privgan.dp.private_gradients`). D's loss on generated samples reads no private data, so its gradient
needs no noise; it is still clipped per example to the same C and divided by the fake batch size
round(B), so that the real and fake halves of D's update keep the same scale:

    grad D = (sum_i clip(grad softplus(-D(x_i, y_i))) + N(0, (sigma C)^2)) / B
           + sum_j clip(grad softplus(D(G(z_j, c_j), c_j))) / round(B)

The generator G is updated from D alone (post-processing), so its steps cost no privacy. One Keras
train step takes `n_critic` D steps, each on its own Poisson batch, then one G step; each D step is one
`PoissonSampledDpEvent(q, GaussianDpEvent(sigma))` in the ledger, whatever `n_critic` is. Many D steps
per G step with a large expected batch (Bie et al. 2023, "Private GANs, revisited") let D keep up with G
under noise. With `ema_decay`, `generate` samples from an exponential moving average of G's weights,
updated after each G step: also post-processing, and it smooths out the noisy late G updates.

The step counter lives in a variable saved with the model, and a budget set by `fit(target_epsilon=...)`
is enforced by the sampler (no batch beyond it) and, on one device, inside the compiled train step too,
as in `privgan.dp.DPModel`. The DP noise is secret by default (`privgan.dp.noise`), whatever `seed`
and global seeds say: `seed` makes the latents and fake labels reproducible, `noise_seed` the noise
(research only; the statement then says the guarantee does not hold against anyone who knows it).

Under a `tf.distribute` strategy (build G, D and the DPGAN in its scope) each replica clips its share of
every real batch, the noise is added once (`private_gradients`), and every replica draws the same global
fake batch and keeps its own rows (`replica_rows`), so a step equals the single-device step.

The `d_loss_real` metric is the noiseless mean loss of D on the private batches: it is for monitoring
only and is not covered by the privacy guarantee. `d_loss_fake`, `g_loss` and `epsilon` are functions
of the private models only.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from privgan.accounting import PrivacyLedger
from privgan.accounting.events import check_accountant, check_budget, check_count, check_delta
from privgan.accounting.guarantees import dpgan_guarantee
from privgan.accounting.statement import PrivacyStatement
from privgan.dp.bookkeeping import DPStepBookkeeping, float32_at_least
from privgan.dp.clipping import clipped_gradient_sum
from privgan.dp.config import DPSGDConfig
from privgan.dp.mechanism import private_gradients, replica_rows
from privgan.dp.regularization import refuse_data_dependent_losses, weight_penalty_gradients
from privgan.dp.validation import check_private_model
from privgan.models.emission import SyntheticSamplesMixin, check_labels
from privgan.models.gan import GANModel

# Where the size that sets q comes from (the statement says which: `guarantees.DPGAN_SIZE_TEXTS`).
NUM_EXAMPLES_SOURCES = ("public", "released")


@keras.saving.register_keras_serializable(package="privgan")
class DPGAN(SyntheticSamplesMixin, DPStepBookkeeping, GANModel):
    """A (conditional) GAN with a DP-SGD discriminator, trained with `fit` on Poisson-sampled data.

    Args:
        generator: a built Keras model `latent -> samples`, or `[latent, labels] -> samples` when
            `num_classes` is set (see `privgan.models.architectures`). It may use BatchNormalization.
        discriminator: a built Keras model `samples -> logits (batch, 1)`, or `[samples, labels] -> logits`.
            All its trainable variables are private; it must not mix examples (no BatchNormalization).
        l2_norm_clip: clipping bound C of each real example's D gradient, > 0.
        noise_multiplier: sigma >= 0, or None to calibrate it in `fit` from the target epsilon and the
            planned number of D steps.
        num_examples: the size that sets the sampling probability q = expected_batch_size / num_examples:
            the exact N of the private set `fit` will receive, declared public (the default), or a noisy
            count released earlier in `ledger` (`num_examples_source="released"`), which keeps N private.
        expected_batch_size: q * N, the mean Poisson batch size of a D step (also the fake batch size,
            rounded).
        num_classes: None (unconditional) or the number of classes of the labels, >= 2.
        n_critic: D steps per G step, >= 1 (one Keras train step takes them all, then the G step).
        ema_decay: None (sample from G itself) or the decay in [0, 1) of an exponential moving average
            of G's weights, updated after each G step, that `generate` samples from.
        seed: seed of the latent vectors and fake labels (None: random). It never seeds the DP noise.
        noise_seed: None (secret DP noise, the default) or an integer that makes the noise reproducible,
            for research only: the guarantee then does not hold against anyone who knows it.
        ledger: a `PrivacyLedger` of earlier DP training on the same data, composed with this model's
            steps; this model's samples and noise continue after it.
        num_examples_source: "public" (num_examples is N, published in the statement, and `fit` checks
            that x has that many rows) or "released" (num_examples is a noisy count charged in `ledger`;
            `fit` takes any number of rows, and nothing but that count sizes the training).
        **kwargs: passed to `keras.Model`.

    Raises:
        ValueError: if a parameter is out of range or the models' inputs do not match `num_classes`.
        NonPrivateLayerError: if the discriminator has a layer that mixes examples (BatchNormalization).
    """

    def __init__(
        self,
        generator,
        discriminator,
        *,
        l2_norm_clip,
        noise_multiplier,
        num_examples,
        expected_batch_size,
        num_classes=None,
        n_critic=1,
        ema_decay=None,
        seed=None,
        noise_seed=None,
        ledger=None,
        num_examples_source="public",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_examples_source not in NUM_EXAMPLES_SOURCES:
            raise ValueError(f"num_examples_source must be one of {NUM_EXAMPLES_SOURCES}, got {num_examples_source!r}")
        if num_examples_source == "released" and (ledger is None or not ledger.mechanism_runs):
            raise ValueError('num_examples_source="released" needs the ledger in which the count was released')
        self.num_examples_source = num_examples_source
        if noise_multiplier is not None:
            noise_multiplier = float32_at_least(float(noise_multiplier))
        # Validated with sigma 0 when sigma is still to be calibrated; `dp_config` is then unusable for
        # accounting until `fit` sets it, and no DP step can run before.
        self.dp_config = DPSGDConfig(
            l2_norm_clip=float(l2_norm_clip),
            noise_multiplier=0.0 if noise_multiplier is None else noise_multiplier,
            num_examples=int(num_examples),
            expected_batch_size=float(expected_batch_size),
        )
        self.noise_multiplier_calibrated = noise_multiplier is not None
        if num_classes is not None and (int(num_classes) != num_classes or num_classes < 2):
            raise ValueError(f"num_classes must be None (unconditional) or an integer >= 2, got {num_classes}")
        if int(n_critic) != n_critic or n_critic < 1:
            raise ValueError(f"n_critic must be an integer >= 1, got {n_critic}")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be None or in [0, 1), got {ema_decay}")
        expected_inputs = 1 if num_classes is None else 2
        for role, model in (("generator", generator), ("discriminator", discriminator)):
            if len(model.inputs) != expected_inputs:
                raise ValueError(
                    f"{role} has {len(model.inputs)} inputs; with num_classes={num_classes} it needs "
                    f"{expected_inputs} ({'[latent or samples, labels]' if num_classes else 'one tensor'})"
                )
        check_private_model(discriminator, role="discriminator")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.num_classes = None if num_classes is None else int(num_classes)
        self.n_critic = int(n_critic)
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        # A copy of G whose weights trail G's; all its weights (BatchNorm statistics too) are averaged.
        self.ema_generator = None
        if self.ema_decay is not None:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
            self.ema_generator.trainable = False
        self.seed = seed
        self.prior_ledger = ledger if ledger is not None else PrivacyLedger()
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._add_privacy_variables(noise_seed)
        self.fake_batch_size = max(1, round(self.dp_config.expected_batch_size))
        self._add_loss_trackers()
        self.built = True

    # D has no validation loss to report: validation data could only be private data read without noise.
    refused_fit_arguments = (*DPStepBookkeeping.refused_fit_arguments, "validation_data")
    loss_metrics = ("d_loss_real", "d_loss_fake", "g_loss")

    @property
    def dp_steps_per_train_step(self):
        """D steps per Keras train step: `n_critic`."""
        return self.n_critic

    def _models_input(self, samples, labels):
        return samples if labels is None else [samples, labels]

    def _latent_and_labels(self, n):
        latent = keras.random.normal((n, self.latent_dim), seed=self.seed_generator)
        if not self.conditional:
            return latent, None
        # Uniform over classes: a public choice, not the private data's class frequencies.
        return latent, keras.random.randint((n,), 0, self.num_classes, seed=self.seed_generator, dtype="int32")

    def _fake_batch_inputs(self):
        """This replica's rows of a fresh fake batch of `fake_batch_size` (all of it on one device)."""
        latent, labels = self._latent_and_labels(self.fake_batch_size)
        return replica_rows(latent), None if labels is None else replica_rows(labels)

    def _unpack(self, data):
        if self.conditional:
            samples, labels = data
            return samples, tf.cast(labels, tf.int32)
        return (data[0] if isinstance(data, (tuple, list)) else data), None

    def train_step(self, data):
        # `data` holds n_critic Poisson batches (`poisson_batches(group_size=n_critic)`). The loop unrolls
        # in the graph: under several replicas the optimizers' cross-replica sums cannot sit in a
        # tf.cond or tf.while_loop.
        for batch in data:
            samples, labels = self._unpack(batch)
            self._take_dp_step(functools.partial(self._discriminator_step, samples, labels))
        self._generator_step()
        return self._step_logs()

    def _discriminator_step(self, samples, labels):
        variables = self.discriminator.trainable_variables

        def real_losses(batch):
            x, y = batch if self.conditional else (batch, None)
            logits = self.discriminator(self._models_input(x, y), training=True)
            losses = tf.nn.softplus(-tf.reshape(logits, [-1]))  # -log sigmoid(D): "real" label
            return losses, losses

        batch = (samples, labels) if self.conditional else samples
        # The train step reads sigma from dp_config, the value the ledger charges (a Python number: a
        # calibration in `fit` retraces the step).
        real_gradients, losses = private_gradients(
            real_losses,
            variables,
            batch,
            l2_norm_clip=self.dp_config.l2_norm_clip,
            noise_multiplier=self.dp_config.noise_multiplier,
            expected_batch_size=self.dp_config.expected_batch_size,
            noise=self.noise_stream,
            has_aux=True,
        )
        refuse_data_dependent_losses(self.discriminator, role="discriminator")
        latent, fake_labels = self._fake_batch_inputs()
        fakes = self.generator(self._models_input(latent, fake_labels), training=True)

        def fake_losses(batch):
            x, y = batch if self.conditional else (batch, None)
            logits = self.discriminator(self._models_input(x, y), training=True)
            return tf.nn.softplus(tf.reshape(logits, [-1]))  # -log(1 - sigmoid(D)): "fake" label

        # The fake half reads no private data and needs no noise, but it is clipped per example like the
        # real half: an unclipped fake gradient would outweigh the clipped real one and D would learn to
        # call everything fake.
        fake_batch = (fakes, fake_labels) if self.conditional else fakes
        fake_sum, fake_loss_values, _ = clipped_gradient_sum(
            fake_losses, variables, tf.nest.map_structure(tf.stop_gradient, fake_batch),
            l2_norm_clip=self.dp_config.l2_norm_clip,
        )
        scale = 1.0 / self.fake_batch_size
        gradients = [r + scale * f for r, f in zip(real_gradients, fake_sum)]
        penalty = weight_penalty_gradients(self.discriminator, variables)
        if penalty is not None:  # reads no data: added after the noise, as post-processing
            gradients = [g + p for g, p in zip(gradients, penalty)]
        self.d_optimizer.apply(gradients, variables)
        self.d_loss_real_tracker.update_state(losses)
        self.d_loss_fake_tracker.update_state(fake_loss_values)

    def _generator_step(self):
        variables = self.generator.trainable_variables
        latent, labels = self._fake_batch_inputs()
        with tf.GradientTape() as tape:
            fakes = self.generator(self._models_input(latent, labels), training=True)
            logits = self.discriminator(self._models_input(fakes, labels), training=True)
            losses = tf.nn.softplus(-tf.reshape(logits, [-1]))  # non-saturating: -log sigmoid(D(G(z)))
            # Divided by the global fake batch size: the optimizer sums the replicas' gradients.
            loss = tf.reduce_sum(losses) / self.fake_batch_size
        self.g_optimizer.apply(tape.gradient(loss, variables), variables)
        if self.ema_generator is not None:
            for average, current in zip(self.ema_generator.weights, self.generator.weights):
                average.assign(self.ema_decay * average + (1.0 - self.ema_decay) * tf.cast(current, average.dtype))
        self.g_loss_tracker.update_state(losses)

    def call(self, inputs, training=None):
        """Runs the generator on `latent` or `[latent, labels]`."""
        return self.generator(inputs, training=training)

    def fit(
        self,
        x=None,
        y=None,
        *,
        epochs=1,
        target_epsilon=None,
        delta=None,
        accountant="pld",
        sampling_seed=None,
        callbacks=None,
        **kwargs,
    ):
        """Trains on Poisson batches of the private data: one D step per batch, a G step every n_critic.

        An "epoch" is round(N / expected_batch_size) D steps (rounded up to a multiple of `n_critic`), so
        each example is seen about once in expectation. With `delta`, the epsilon spent is logged as
        `epsilon` after every epoch. With `target_epsilon`: if the model was made with
        `noise_multiplier=None`, sigma is first calibrated so that the planned D steps spend exactly the
        budget; in any case training stops before a D step would exceed it (whole train steps of
        `n_critic` D steps only, so up to n_critic - 1 steps' worth of the budget can go unused).

        To train on several devices, build the generator, the discriminator and the DPGAN, and compile
        it, in a `tf.distribute` strategy's scope; each step then equals the single-device step.

        Args:
            x: the private samples (e.g. images in [0, 1]), with exactly `num_examples` rows.
            y: integer labels in [0, num_classes) for a conditional GAN; None otherwise.
            epochs: number of epochs, >= 1.
            target_epsilon: optional budget, > 0; needs `delta`.
            delta: the delta of the reported epsilon, in (0, 1); None logs epsilon at 1 / N^1.1.
            accountant: "pld" or "rdp".
            sampling_seed: None (secret Poisson sampling, the default) or an integer that makes the
                batches reproducible, for research only: the guarantee does not hold against anyone
                who knows it.
            callbacks: Keras callbacks.
            **kwargs: passed to `keras.Model.fit` (e.g. `verbose`); arguments that would change the
                sampling (`batch_size`, `shuffle`, `steps_per_epoch`, ...) are refused.

        Returns:
            The `History` of `keras.Model.fit`.

        Raises:
            ValueError: for a refused or out-of-range argument, labels that do not match `num_classes`,
                a wrong number of rows, a budget without delta, sigma to calibrate without a budget or
                after earlier steps, or a budget already spent.
        """
        self._refuse_sampling_arguments(kwargs)
        epochs = check_count(epochs, name="epochs", minimum=1)
        target_epsilon, delta, accountant = check_budget(target_epsilon=target_epsilon, delta=delta,
                                                         accountant=accountant)
        data = self._check_data(x, y)
        return self._fit_on_poisson_batches(
            data, epochs=epochs, target_epsilon=target_epsilon, delta=delta, accountant=accountant,
            sampling_seed=sampling_seed, callbacks=callbacks,
            optimizers=[(self.d_optimizer, self.discriminator.trainable_variables),
                        (self.g_optimizer, self.generator.trainable_variables)],
            group_batches=True, **kwargs,
        )

    def _check_data(self, x, y):
        if x is None or isinstance(x, tf.data.Dataset):
            raise ValueError("DPGAN.fit needs the private data as arrays (it samples the batches itself)")
        x = np.asarray(x, dtype=np.float32)
        if self.num_examples_source == "public" and len(x) != self.dp_config.num_examples:
            raise ValueError(
                f"x has {len(x)} rows but the model was made for num_examples={self.dp_config.num_examples}; "
                "the sampling probability would be wrong"
            )
        if not self.conditional:
            if y is not None:
                raise ValueError("y (labels) given to an unconditional DPGAN; set num_classes to condition on them")
            return x
        if y is None:
            raise ValueError(f"a conditional DPGAN (num_classes={self.num_classes}) needs labels y")
        return x, check_labels(y, rows=len(x), num_classes=self.num_classes)

    def _sampling_generator(self):
        return self.generator if self.ema_generator is None else self.ema_generator

    def privacy_statement(self, *, delta, accountant="pld"):
        """The privacy statement of the samples this model emits.

        Args:
            delta: the delta of the reported epsilon, in (0, 1).
            accountant: "pld" or "rdp".

        Returns:
            A `PrivacyStatement` whose details are noise_multiplier, l2_norm_clip, sampling_probability,
            expected_batch_size, d_steps, num_examples, num_examples_source, conditional, the ledger,
            noise_seeding and sampling_seeding.
        """
        delta = check_delta(delta)
        accountant = check_accountant(accountant)
        ledger = self.privacy_ledger
        return PrivacyStatement(
            epsilon=ledger.epsilon(delta=delta, accountant=accountant),
            delta=delta,
            accountant=accountant,
            details={
                "noise_multiplier": self.dp_config.noise_multiplier,
                "l2_norm_clip": self.dp_config.l2_norm_clip,
                "sampling_probability": self.dp_config.sampling_probability,
                "expected_batch_size": self.dp_config.expected_batch_size,
                "d_steps": ledger.total_steps,
                "num_examples": self.dp_config.num_examples,
                "num_examples_source": self.num_examples_source,
                "conditional": self.conditional,
                "ledger": ledger.to_dict(),
                **self.randomness_policy(),
            },
            guarantee=dpgan_guarantee(conditional=self.conditional, num_examples_source=self.num_examples_source),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "l2_norm_clip": self.dp_config.l2_norm_clip,
            "noise_multiplier": self.dp_config.noise_multiplier if self.noise_multiplier_calibrated else None,
            "num_examples": self.dp_config.num_examples,
            "expected_batch_size": self.dp_config.expected_batch_size,
            "num_classes": self.num_classes,
            "n_critic": self.n_critic,
            "ema_decay": self.ema_decay,
            "seed": self.seed,
            "noise_seed": self.noise_seed,
            "ledger": self.prior_ledger.to_dict(),
            "num_examples_source": self.num_examples_source,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        config["ledger"] = PrivacyLedger.from_dict(config["ledger"])
        return cls(**config)
