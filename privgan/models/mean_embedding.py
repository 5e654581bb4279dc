r"""DP-MERF: a generator trained against one private release of the data's random-feature mean embedding.

Harder, Adamczewski & Park (2021), "DP-MERF: Differentially private mean embeddings with random features
for practical privacy-preserving data generation". The private data are read ONCE: the sum of a bounded
feature map over all examples is released with Gaussian noise, charged to the ledger as one
`dp_accounting.GaussianDpEvent(noise_multiplier)`. Everything after that — training a generator whose
samples' mean embedding matches the released one — reads only the release, so it is post-processing and
free: the generator can train for as long as compute allows, and a small data set costs no more noise.

The feature map. phi(x) = sqrt(1/F) [cos(w_1.x), sin(w_1.x), ..., cos(w_F.x), sin(w_F.x)] with F frequencies
w ~ N(0, I / l^2) drawn from a public seed, one length scale l per frequency (cycled through
`length_scales`), so phi(x).phi(x') approximates the mean of the Gaussian kernels exp(-|x - x'|^2 / 2 l^2)
(Rahimi & Recht 2007) and |phi(x)| = 1 EXACTLY for every x (cos^2 + sin^2 = 1). `features="scattering"`
or `"both"` replace or join it with the same features of the public wavelet scattering transform
(`privgan.models.embedding_features`), again of norm exactly 1. The released statistic
adds a count channel and, when conditional, puts each example in the block of its label:

    psi(x, y) = e_y (x) [alpha phi(x), beta],   alpha^2 + beta^2 = 1,   T = sum_i psi(x_i, y_i) + N(0, sigma^2 I)

L2 sensitivity under add/remove-one adjacency, an example being the pair (x, y): adding or removing one
example changes T by psi(x, y), whose norm is sqrt(alpha^2 |phi(x)|^2 + beta^2) = 1; only the block of
ITS label moves, so the K per-class blocks together still have sensitivity 1 (not sqrt(K): one example is
in one class). The noise is N(0, sigma^2) on every coordinate, i.e. sigma times the sensitivity. With the
label in the example other release forms change this: under replace-one adjacency a record whose label
changes moves two blocks (|psi(x, y) - psi(x', y')| = sqrt(2)) and one whose label stays moves one by up
to 2 alpha, so the replace-one sensitivity is max(sqrt(2), 2 alpha) (2 alpha when unconditional);
releasing per-class MEANS instead of sums would divide by the private class counts (sensitivity of order
1 / N_c, and the counts themselves leak); `mean_embedding_sensitivity` states each case and the tests
check them. privgan uses add/remove-one and releases sums, so: sensitivity 1, and the class counts come
from the noisy count channel (no count is treated as public, not even N).

After the release: the class means target_c = T_c[:-1] / (alpha max(T_c[-1] / beta, 1)) and the noisy
class counts (`class_counts_`) are functions of T alone. Each train step draws a balanced batch of labels
and latents, and minimises sum_c |target_c - mean_j phi(G(z_j, c))|^2, with the generated half's squared
norm in its unbiased (U-statistic) form: the biased form rewards every sample of a class sitting on the
same point, i.e. it pushes towards collapse at small batches.

The length scales are public choices (defaults fit data in [0, 1] by their dimension alone; a median
heuristic on the private data would leak). The noise comes from `privgan.dp.noise.NoiseStream`: secret by
default (64 bits of OS entropy, whatever global seed is set), at the ledger's next position; `noise_seed`
makes it reproducible for research, and the statement then says so.
"""

import math

import dp_accounting
import keras
import numpy as np
import tensorflow as tf

from privgan.accounting import PrivacyLedger, calibrate_noise_multiplier
from privgan.accounting.events import (
    check_accountant,
    check_budget,
    check_delta,
    check_noise_multiplier,
    check_positive,
)
from privgan.accounting.guarantees import mean_embedding_guarantee
from privgan.accounting.statement import PrivacyStatement
from privgan.dp.noise import NoiseStream, gaussian_noise_like
from privgan.models.embedding_features import FEATURE_MAPS, build_feature_map
from privgan.models.emission import SyntheticSamplesMixin, check_labels

ADJACENCIES = ("add_remove", "replace_one")
_RELEASE_CHUNK = 2048


def default_length_scales(dimension):
    """Public default length scales of the Gaussian kernels for data in [0, 1]^dimension.

    Three scales around 0.35 sqrt(d) (about the typical distance between two MNIST digits in [0, 1],
    10.2 for d = 784, as DP-MERF's MNIST setting sqrt(105)): x 0.5, x 1, x 2, so that both the coarse
    shape and finer strokes contribute. A function of the dimension only, never of the data.
    """
    base = 0.35 * math.sqrt(dimension)
    return (0.5 * base, base, 2.0 * base)


def mean_embedding_sensitivity(*, num_classes=None, count_weight, adjacency="add_remove"):
    """The L2 sensitivity of the released sum T = sum_i e_{y_i} (x) [alpha phi(x_i), beta] (see module doc).

    Args:
        num_classes: None (unconditional) or the number of label blocks, >= 2.
        count_weight: beta, the weight of the count channel, in [0, 1); alpha = sqrt(1 - beta^2).
        adjacency: "add_remove" (add or remove one example: privgan's adjacency) or "replace_one".

    Returns:
        1.0 for add/remove-one; for replace-one 2 alpha (unconditional) or max(sqrt(2), 2 alpha)
        (conditional: a label change moves two blocks by unit vectors).

    Raises:
        ValueError: for an out-of-range argument.
    """
    if not 0.0 <= count_weight < 1.0:
        raise ValueError(f"count_weight must be in [0, 1), got {count_weight}")
    if adjacency not in ADJACENCIES:
        raise ValueError(f"adjacency must be one of {ADJACENCIES}, got {adjacency!r}")
    if adjacency == "add_remove":
        return 1.0
    alpha = math.sqrt(1.0 - count_weight**2)
    return 2.0 * alpha if num_classes is None else max(math.sqrt(2.0), 2.0 * alpha)


@keras.saving.register_keras_serializable(package="privgan")
class RandomFourierFeatures(keras.layers.Layer):
    """phi(x) = sqrt(1/F) [cos(W x), sin(W x)] of the flattened input: unit norm, F = num_features / 2.

    Args:
        num_features: output width 2F, an even integer >= 2.
        length_scales: kernel length scales l > 0; frequency j has scale length_scales[j mod len].
        seed: seed of the frequencies (public: they do not depend on the data).
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, num_features, *, length_scales, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_features) != num_features or num_features < 2 or num_features % 2:
            raise ValueError(f"num_features must be an even integer >= 2, got {num_features}")
        length_scales = tuple(float(v) for v in length_scales)
        if not length_scales or min(length_scales) <= 0:
            raise ValueError(f"length_scales must be positive numbers, got {length_scales}")
        self.num_features = int(num_features)
        self.length_scales = length_scales
        self.seed = seed

    def build(self, input_shape):
        dimension = math.prod(input_shape[1:])
        frequencies = self.num_features // 2
        scales = np.resize(np.asarray(self.length_scales), frequencies)
        rng = np.random.default_rng(self.seed)
        initial = (rng.standard_normal((dimension, frequencies)) / scales).astype("float32")
        self.frequencies = self.add_weight(
            shape=(dimension, frequencies), initializer=keras.initializers.Constant(initial), trainable=False,
            name="frequencies",
        )

    def call(self, inputs):
        flat = keras.ops.reshape(inputs, (keras.ops.shape(inputs)[0], -1))
        projections = keras.ops.matmul(keras.ops.cast(flat, self.frequencies.dtype), self.frequencies)
        scale = 1.0 / math.sqrt(self.num_features // 2)
        return scale * keras.ops.concatenate([keras.ops.cos(projections), keras.ops.sin(projections)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_features)

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features,
                "length_scales": list(self.length_scales), "seed": self.seed}


@keras.saving.register_keras_serializable(package="privgan")
class MeanEmbeddingGenerator(SyntheticSamplesMixin, keras.Model):
    """DP-MERF: a (conditional) generator fitted to one Gaussian release of a random-feature mean embedding.

    Args:
        generator: a built Keras model `latent -> samples` or, with `num_classes`, `[latent, labels] ->
            samples` (e.g. `privgan.models.architectures.dcgan_generator` / `mlp_generator`), emitting
            values in the range of the private data.
        num_classes: None (unconditional) or the number of classes, >= 2.
        num_features: width of the random-feature map (2 x frequencies), an even integer >= 2.
        length_scales: public kernel length scales of the pixel features; None for
            `default_length_scales(dimension)`.
        features: the unit-norm feature map, one of `privgan.models.embedding_features.FEATURE_MAPS`:
            "pixels" (DP-MERF's random Fourier features of the pixels), "scattering" (of the public wavelet
            scattering transform) or "both" (the two, weights a^2 + b^2 = 1); the sensitivity stays 1.
        feature_options: keyword options of the scattering feature maps (e.g. `pixel_weight`,
            `orientations`, `scattering_length_scales`); None for the defaults.
        count_weight: beta in [0, 1), the share of the unit-norm example vector given to the count channel.
        noise_multiplier: sigma > 0 of the release (noise std / sensitivity), or None to calibrate it in
            `fit` from the target epsilon (after the `ledger`'s earlier phases).
        batch_size: generated samples per train step (balanced over classes), >= 2 per class.
        seed: seed of the frequencies, latents and labels (None: random); never of the DP noise.
        noise_seed: None (default): the release's noise comes from a secret OS-entropy source. An integer
            makes it reproducible, for research only: the statement then says that there is no guarantee
            against anyone who knows the seed.
        ledger: a `PrivacyLedger` of earlier uses of the same private data, composed with this release.
        **kwargs: passed to `keras.Model`.

    Attributes:
        class_counts_: after `fit`, the noisy example counts per class (floats, from the release).
    """

    def __init__(
        self,
        generator,
        *,
        num_classes=None,
        num_features=8000,
        length_scales=None,
        features="pixels",
        feature_options=None,
        count_weight=0.1,
        noise_multiplier=None,
        batch_size=500,
        seed=None,
        noise_seed=None,
        ledger=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_classes is not None and (int(num_classes) != num_classes or num_classes < 2):
            raise ValueError(f"num_classes must be None (unconditional) or an integer >= 2, got {num_classes}")
        expected_inputs = 1 if num_classes is None else 2
        if len(generator.inputs) != expected_inputs:
            raise ValueError(f"generator has {len(generator.inputs)} inputs; with num_classes={num_classes} it "
                             f"needs {expected_inputs}")
        if not 0.0 < count_weight < 1.0:
            raise ValueError(f"count_weight must be in (0, 1), got {count_weight}")
        if noise_multiplier is not None:
            noise_multiplier = check_positive(noise_multiplier, name="noise_multiplier")
        blocks = 1 if num_classes is None else int(num_classes)
        if int(batch_size) != batch_size or batch_size < 2 * blocks:
            raise ValueError(f"batch_size must be an integer >= {2 * blocks} (two samples per class), got {batch_size}")
        self.generator = generator
        self.num_classes = None if num_classes is None else int(num_classes)
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.sample_shape = tuple(generator.outputs[0].shape[1:])
        dimension = math.prod(self.sample_shape)
        self.length_scales = tuple(default_length_scales(dimension) if length_scales is None else length_scales)
        if features not in FEATURE_MAPS:
            raise ValueError(f"features must be one of {FEATURE_MAPS}, got {features!r}")
        self.feature_map = features
        # Kept as a tuple of pairs: Keras would wrap a dict attribute in a tracking type.
        self._feature_options = tuple(sorted(
            (key, tuple(value) if isinstance(value, (list, tuple)) else value)
            for key, value in dict(feature_options or {}).items()
        ))
        self.features = build_feature_map(features, num_features=num_features, sample_shape=self.sample_shape,
                                          length_scales=self.length_scales, seed=seed, options=self.feature_options)
        self.num_features = int(num_features)
        self.count_weight = float(count_weight)
        self.noise_multiplier = noise_multiplier
        self.batch_size = int(batch_size)
        self.seed = seed
        self.noise_seed = noise_seed
        self.prior_ledger = ledger if ledger is not None else PrivacyLedger()
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The release is the ledger's next mechanism run: its noise takes that stream position, so that a
        # reproducible noise_seed shared with earlier phases never repeats their noise.
        self.noise_stream = NoiseStream(
            seed=noise_seed, position=lambda: tf.constant(self.prior_ledger.mechanism_runs, tf.int64)
        )
        self._blocks = blocks
        # The noisy release T (blocks x (num_features + 1)): differentially private, saved with the model.
        self.release = self.add_weight(shape=(blocks, self.num_features + 1), initializer="zeros", trainable=False,
                                       name="release", dtype="float64")
        self.released = self.add_weight(shape=(), initializer="zeros", trainable=False, name="released", dtype="int32")
        self.release_noise_multiplier = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                                        name="release_noise_multiplier", dtype="float64")
        self.loss_tracker = keras.metrics.Mean(name="mmd2")
        self.built = True

    @property
    def feature_options(self):
        """The options of the scattering feature maps, as given (sequences as lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in self._feature_options}

    @property
    def metrics(self):
        return [self.loss_tracker]

    @property
    def has_released(self):
        """Whether the private data's embedding has been released (the privacy cost is then spent)."""
        return bool(keras.ops.convert_to_numpy(self.released))

    @property
    def alpha(self):
        """Weight of the feature block in the example vector: sqrt(1 - count_weight^2)."""
        return math.sqrt(1.0 - self.count_weight**2)

    @property
    def l2_sensitivity(self):
        """The L2 sensitivity of the release under add/remove-one adjacency: 1 (see module doc)."""
        return mean_embedding_sensitivity(num_classes=self.num_classes, count_weight=self.count_weight)

    def _sampling_generator(self):
        return self.generator

    def compile(self, optimizer="adam", **kwargs):
        """Sets the generator's optimizer.

        Args:
            optimizer: a Keras optimizer (or its name).
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`).
        """
        super().compile(**kwargs)
        self.optimizer = keras.optimizers.get(optimizer)

    def get_compile_config(self):
        return {}

    # The private part: one pass over the data, one Gaussian release. -----------------------------------

    def embedding_sum(self, x, y=None):
        """The noiseless statistic sum_i psi(x_i, y_i) (blocks x (num_features + 1), float64).

        This reads the private data without noise: it is what `fit` releases with noise, exposed for
        tests of the sensitivity; never publish it.
        """
        x = np.asarray(x, dtype=np.float32)
        labels = np.zeros(len(x), np.int64) if y is None else np.asarray(y, dtype=np.int64)
        total = np.zeros((self._blocks, self.num_features + 1))
        for start in range(0, len(x), _RELEASE_CHUNK):
            chunk = keras.ops.convert_to_numpy(self.features(x[start : start + _RELEASE_CHUNK])).astype(np.float64)
            chunk_labels = labels[start : start + _RELEASE_CHUNK]
            np.add.at(total[:, :-1], chunk_labels, self.alpha * chunk)
            np.add.at(total[:, -1], chunk_labels, self.count_weight)
        return total

    def _check_data(self, x, y):
        if x is None:
            raise ValueError("fit needs the private data x for the release")
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.sample_shape:
            raise ValueError(
                f"x must have samples of shape {self.sample_shape} (the generator's output), got {x.shape[1:]}"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains NaN or infinite values")
        if self.conditional:
            if y is None:
                raise ValueError(f"a conditional {type(self).__name__} (num_classes={self.num_classes}) needs labels y")
            y = check_labels(y, rows=len(x), num_classes=self.num_classes)
        elif y is not None:
            raise ValueError("y (labels) given to an unconditional MeanEmbeddingGenerator; set num_classes")
        return x, y

    def release_embedding(self, x, y=None, *, target_epsilon=None, delta=None, accountant="pld"):
        """Reads the private data once and releases their embedding with Gaussian noise (one ledger event).

        `fit` calls it on its first call; call it yourself to release first and train later. With
        `noise_multiplier=None`, sigma is calibrated so that the ledger's total epsilon (earlier phases
        and this release) is `target_epsilon`.

        Args:
            x: the private samples, shaped like the generator's output.
            y: their integer labels in [0, num_classes) for a conditional generator.
            target_epsilon: the budget of the whole ledger, > 0 (needs `delta`); with a fixed
                `noise_multiplier` it is checked, not calibrated for.
            delta: delta of the budget, in (0, 1).
            accountant: "pld" or "rdp".

        Raises:
            ValueError: for data that do not fit, a second release, a budget without delta, or a release
                that would exceed the budget.
        """
        if self.has_released:
            raise ValueError("the embedding was already released; a second release would cost a second epsilon")
        target_epsilon, delta, accountant = check_budget(target_epsilon=target_epsilon, delta=delta,
                                                         accountant=accountant)
        x, y = self._check_data(x, y)
        sigma = self.noise_multiplier
        if sigma is None:
            if target_epsilon is None:
                raise ValueError(
                    "noise_multiplier=None is calibrated in fit, which then needs target_epsilon and delta"
                )
            # One Gaussian mechanism of sensitivity 1 is DP-SGD's single full-batch step (q = 1).
            sigma = calibrate_noise_multiplier(target_epsilon=target_epsilon, delta=delta, sampling_probability=1.0,
                                               steps=1, accountant=accountant, ledger=self.prior_ledger)
        sigma = check_noise_multiplier(sigma)
        if target_epsilon is not None:
            spent = self._ledger_with(sigma).epsilon(delta=delta, accountant=accountant)
            if spent > target_epsilon:
                raise ValueError(f"a release with noise_multiplier={sigma:g} would spend epsilon={spent:.4g} "
                                 f"> target_epsilon={target_epsilon} (earlier phases included)")
        (noise,) = gaussian_noise_like([tf.zeros(self.release.shape, tf.float64)],
                                       stddev=sigma * self.l2_sensitivity, seed=self.noise_stream.next_seed())
        self.release.assign(self.embedding_sum(x, y) + keras.ops.convert_to_numpy(noise))
        self.release_noise_multiplier.assign(sigma)
        self.released.assign(1)
        self.noise_multiplier = sigma

    def _ledger_with(self, sigma):
        ledger = self.prior_ledger.copy()
        ledger.record_release(dp_accounting.GaussianDpEvent(sigma), description=self._release_description())
        return ledger

    def _release_description(self):
        blocks = f"{self.num_classes} label blocks" if self.conditional else "one block"
        if self.feature_map == "pixels":
            embedding = f"random-Fourier-feature embedding ({self.num_features} features"
        else:
            embedding = f"embedding ({self.features.describe()}"
        return (f"DP-MERF: sum over the examples of a unit-norm {embedding}, {blocks}, count channel weight "
                f"{self.count_weight:g}), "
                "L2 sensitivity 1 under add/remove-one, Gaussian noise of std noise_multiplier")

    @property
    def privacy_ledger(self):
        """A `PrivacyLedger` of every use of the private data: earlier phases, then this release (if taken)."""
        if not self.has_released:
            return self.prior_ledger.copy()
        return self._ledger_with(float(keras.ops.convert_to_numpy(self.release_noise_multiplier)))

    def privacy_spent(self, *, delta, accountant="pld"):
        """The epsilon spent so far at `delta`, earlier phases included."""
        return self.privacy_ledger.epsilon(delta=delta, accountant=accountant)

    # Post-processing: targets from the release, and generator training. -------------------------------

    @property
    def class_counts_(self):
        """The noisy number of examples in each class (one entry when unconditional), from the release."""
        if not self.has_released:
            raise AttributeError("class_counts_ exists after fit (the release)")
        return keras.ops.convert_to_numpy(self.release)[:, -1] / self.count_weight

    def _targets(self):
        release = tf.cast(self.release, "float32")
        counts = tf.maximum(release[:, -1] / self.count_weight, 1.0)
        return release[:, :-1] / (self.alpha * counts[:, None])

    def train_step(self, data):
        del data  # the steps read the release only
        blocks = self._blocks
        per_class = self.batch_size // blocks
        size = per_class * blocks
        latent = keras.random.normal((size, self.latent_dim), seed=self.seed_generator)
        labels = tf.tile(tf.range(blocks, dtype=tf.int32), [per_class])
        targets = self._targets()
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            inputs = latent if not self.conditional else [latent, labels]
            samples = self.generator(inputs, training=True)
            features = self.features(samples)
            means = tf.math.unsorted_segment_sum(features, labels, blocks) / per_class
            # The U-statistic of |mean phi|^2: (n^2 |mean|^2 - sum_j |phi_j|^2) / (n (n - 1)); every
            # feature map has |phi| = 1, so the last sum is n.
            generated_norm = (per_class * tf.reduce_sum(means**2, axis=1) - 1.0) / (per_class - 1.0)
            mmd2 = tf.reduce_sum(targets**2, axis=1) - 2.0 * tf.reduce_sum(targets * means, axis=1) + generated_norm
            loss = tf.reduce_mean(mmd2)
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"mmd2": self.loss_tracker.result()}

    def fit(self, x=None, y=None, *, epochs=1, steps_per_epoch=100, target_epsilon=None, delta=None,
            accountant="pld", callbacks=None, **kwargs):
        """Releases the private embedding (first call only), then trains the generator against it.

        The first call reads `x` (and `y`) once and records one Gaussian release in the ledger, with sigma
        calibrated so that the ledger's total epsilon is `target_epsilon` when `noise_multiplier` is None.
        Later calls take `x=None` and continue training on the same release, at no further cost.

        Args:
            x: the private samples, shaped like the generator's output (first call only).
            y: their integer labels in [0, num_classes) for a conditional generator.
            epochs: Keras epochs of generator training, >= 1.
            steps_per_epoch: generator steps per epoch, >= 1.
            target_epsilon: the budget of the whole ledger, > 0 (needs `delta`).
            delta: delta of the budget and of the logged epsilon, in (0, 1).
            accountant: "pld" or "rdp".
            callbacks: Keras callbacks.
            **kwargs: passed to `keras.Model.fit` (e.g. `verbose`).

        Returns:
            The `History` of `keras.Model.fit`.

        Raises:
            ValueError: for data that do not fit, a budget without delta, a second release, or a budget
                that the earlier phases already spend.
        """
        refused = sorted(set(kwargs) & {"batch_size", "validation_data", "validation_split", "shuffle"})
        if refused:
            raise ValueError(f"MeanEmbeddingGenerator.fit does not take {refused}: its steps read the release only")
        if not self.has_released:
            self.release_embedding(x, y, target_epsilon=target_epsilon, delta=delta, accountant=accountant)
        elif x is not None or y is not None:
            raise ValueError("the embedding was already released; call fit(x=None) to train further on it "
                             "(a second release would cost a second epsilon)")
        steps = tf.data.Dataset.from_tensors(tf.constant(0)).repeat()
        if not self.optimizer.built:
            self.optimizer.build(self.generator.trainable_variables)
        return super().fit(steps, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, shuffle=False,
                           **kwargs)

    def call(self, inputs, training=None):
        """Runs the generator on `latent` or `[latent, labels]`."""
        return self.generator(inputs, training=training)

    def privacy_statement(self, *, delta, accountant="pld"):
        """The privacy statement of the samples this model emits.

        Args:
            delta: the delta of the reported epsilon, in (0, 1).
            accountant: "pld" or "rdp".

        Returns:
            A `PrivacyStatement` whose details are mechanism, noise_multiplier, l2_sensitivity, num_features,
            length_scales, conditional, noise_reproducible, noise_seeding and the ledger.

        Raises:
            ValueError: before `fit` (nothing has been released yet).
        """
        if not self.has_released:
            raise ValueError("privacy_statement needs a fitted model (the release happens in fit)")
        delta = check_delta(delta)
        accountant = check_accountant(accountant)
        ledger = self.privacy_ledger
        reproducible = self.noise_seed is not None
        return PrivacyStatement(
            epsilon=ledger.epsilon(delta=delta, accountant=accountant),
            delta=delta,
            accountant=accountant,
            details={
                "mechanism": "DP-MERF (one Gaussian release of a random-feature mean embedding)",
                "noise_multiplier": float(keras.ops.convert_to_numpy(self.release_noise_multiplier)),
                "l2_sensitivity": self.l2_sensitivity,
                "num_features": self.num_features,
                "features": self.feature_map,
                "feature_options": self.feature_options,
                "length_scales": list(self.length_scales),
                "conditional": self.conditional,
                "noise_reproducible": reproducible,
                "noise_seeding": self.noise_stream.describe(),
                "ledger": ledger.to_dict(),
            },
            guarantee=mean_embedding_guarantee(conditional=self.conditional, reproducible_noise=reproducible),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "num_classes": self.num_classes,
            "num_features": self.num_features,
            "length_scales": list(self.length_scales),
            "features": self.feature_map,
            "feature_options": self.feature_options,
            "count_weight": self.count_weight,
            "noise_multiplier": self.noise_multiplier,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "noise_seed": self.noise_seed,
            "ledger": self.prior_ledger.to_dict(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["ledger"] = PrivacyLedger.from_dict(config["ledger"])
        return cls(**config)
