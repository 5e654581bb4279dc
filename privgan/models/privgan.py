"""privGAN (Mukherjee et al. 2021): N generator/discriminator pairs on disjoint splits and a privacy discriminator.

"privGAN: Protecting GANs from membership inference attacks at low cost" (PoPETs 2021). The training
data is split into N disjoint parts; pair i (generator G_i, discriminator D_i) is a GAN on part i only.
A privacy discriminator D_p, an N-way classifier, learns which generator produced a sample, and each
generator is penalised for being identifiable, so that no G_i can reproduce what is peculiar to its
own part. The paper's objective, minimised by the generators and maximised by the discriminators, is

    sum_i [E_x~part_i log D_i(x) + E_z log(1 - D_i(G_i(z)))] + lambda * sum_i E_z log D_p(i | G_i(z)),

so G_i's loss is its non-saturating GAN loss minus lambda times the cross-entropy of D_p toward its own
index i (it maximises D_p's error). With N = 1 and no privacy discriminator this is a plain GAN,
trained the same way (the baseline of the paper's comparisons).

privGAN is NOT differentially private: it is an empirical defence against membership inference, with
no (epsilon, delta) guarantee and no accountant. Use `privgan.models.dpgan.DPGAN` for a proven bound.

Against privGAN, the paper's white-box attack ranks records by the maximum of the N discriminators'
scores: `privgan.audit.discriminator_ranking_attack(discriminators=gan.discriminators, records=...,
is_member=..., aggregate="max")`.

Simplifications with respect to the reference code (github.com/microsoft/privGAN): D_p starts from its
initial weights and is trained on generated samples from the first step (the reference pre-trains it
on the real parts and delays its training on samples); the generators' privacy term is the paper's
-lambda * cross-entropy toward their own index (the reference instead minimises the cross-entropy
toward a random other index).
"""

import keras
import numpy as np
import tensorflow as tf

from privgan.accounting.events import check_count

_GENERATION_CHUNK = 1024


def disjoint_splits(num_records, *, num_splits, seed=None):
    """A random partition of the record indices into `num_splits` parts of (almost) equal size.

    Args:
        num_records: number of records, >= num_splits.
        num_splits: N, >= 1.
        seed: seed of the permutation.

    Returns:
        A list of N sorted int64 index arrays, pairwise disjoint, together covering range(num_records);
        their sizes differ by at most one.

    Raises:
        ValueError: if num_splits < 1 or num_records < num_splits.
    """
    num_splits = check_count(num_splits, name="num_splits", minimum=1)
    num_records = check_count(num_records, name="num_records", minimum=num_splits)
    permutation = np.random.default_rng(seed).permutation(num_records)
    return [np.sort(part).astype(np.int64) for part in np.array_split(permutation, num_splits)]


class PrivGAN(keras.Model):
    """privGAN: N (generator, discriminator) pairs, each on its own split, and a privacy discriminator.

    Not differentially private (see the module docstring): an empirical defence only.

    Args:
        generators: N built Keras models `latent -> samples`, all with the same output shape.
        discriminators: N built Keras models `samples -> logits (batch, 1)`; D_i sees split i only.
        privacy_discriminator: a built Keras model `samples -> logits (batch, N)`, or None when N = 1
            (a plain GAN).
        seed: seed of the splits, the latent vectors and the generator choice in `generate` (None: random).
        **kwargs: passed to `keras.Model`.

    Raises:
        ValueError: if the lists are empty or differ in length, the privacy discriminator is missing
            (N >= 2), given for N = 1 or has not N outputs, or the generators' output shapes differ.
    """

    def __init__(self, generators, discriminators, privacy_discriminator=None, *, seed=None, **kwargs):
        super().__init__(**kwargs)
        generators, discriminators = list(generators), list(discriminators)
        if not generators or len(generators) != len(discriminators):
            raise ValueError(
                f"generators and discriminators must be non-empty lists of equal length, got "
                f"{len(generators)} and {len(discriminators)}"
            )
        num_pairs = len(generators)
        if num_pairs == 1 and privacy_discriminator is not None:
            raise ValueError("privacy_discriminator must be None with a single pair (a plain GAN)")
        if num_pairs >= 2:
            if privacy_discriminator is None:
                raise ValueError(f"privacy_discriminator is needed with {num_pairs} pairs")
            outputs = privacy_discriminator.outputs[0].shape[-1]
            if outputs != num_pairs:
                raise ValueError(
                    f"privacy_discriminator must output {num_pairs} logits (one per pair), got {outputs}"
                )
        shapes = {tuple(g.outputs[0].shape[1:]) for g in generators}
        if len(shapes) != 1:
            raise ValueError(f"generators must all have the same output shape, got {sorted(shapes)}")
        self.generators = generators
        self.discriminators = discriminators
        self.privacy_discriminator = privacy_discriminator
        self.num_pairs = num_pairs
        self.sample_shape = shapes.pop()
        self.latent_dims = [int(g.inputs[0].shape[-1]) for g in generators]
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.split_indices = None
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.p_loss_tracker = keras.metrics.Mean(name="p_loss")
        self.built = True

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker]
        return trackers + ([self.p_loss_tracker] if self.privacy_discriminator is not None else [])

    def compile(self, d_optimizer="adam", g_optimizer="adam", p_optimizer="adam", *, privacy_weight=1.0, **kwargs):
        """Sets the optimizers and lambda, the weight of the generators' privacy term.

        Args:
            d_optimizer: a Keras optimizer (or its name) for all N discriminators together.
            g_optimizer: a Keras optimizer (or its name) for all N generators together.
            p_optimizer: a Keras optimizer (or its name) for the privacy discriminator (unused when N = 1).
            privacy_weight: lambda >= 0 (the paper uses 1); 0 trains N independent GANs.
            **kwargs: passed to `keras.Model.compile` (e.g. `run_eagerly`).

        Raises:
            ValueError: if privacy_weight is negative or not finite.
        """
        if not np.isfinite(privacy_weight) or privacy_weight < 0:
            raise ValueError(f"privacy_weight must be a finite number >= 0, got {privacy_weight}")
        super().compile(**kwargs)
        self.d_optimizer = keras.optimizers.get(d_optimizer)
        self.g_optimizer = keras.optimizers.get(g_optimizer)
        self.p_optimizer = keras.optimizers.get(p_optimizer)
        self.privacy_weight = float(privacy_weight)

    def _latents(self, batch_sizes):
        return [
            keras.random.normal((size, dim), seed=self.seed_generator)
            for size, dim in zip(batch_sizes, self.latent_dims)
        ]

    def _privacy_cross_entropies(self, fakes, training):
        """Mean cross-entropy of D_p toward index i on G_i's samples, one scalar per generator."""
        entropies = []
        for index, samples in enumerate(fakes):
            logits = self.privacy_discriminator(samples, training=training)
            labels = tf.fill([tf.shape(logits)[0]], index)
            entropies.append(tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            ))
        return entropies

    def generator_loss(self, latents):
        """The generators' total loss on the given latent vectors: what the G step minimises.

        sum_i [mean softplus(-D_i(G_i(z_i)))] - privacy_weight * sum_i [mean CE(D_p(G_i(z_i)), i)].

        Args:
            latents: N latent batches, one per generator.

        Returns:
            A scalar tensor.
        """
        fakes = [g(z, training=True) for g, z in zip(self.generators, latents)]
        # Non-saturating GAN loss: -log sigmoid(D_i(G_i(z))).
        loss = tf.add_n([
            tf.reduce_mean(tf.nn.softplus(-d(x, training=True))) for d, x in zip(self.discriminators, fakes)
        ])
        if self.privacy_discriminator is not None:
            loss -= self.privacy_weight * tf.add_n(self._privacy_cross_entropies(fakes, training=True))
        return loss

    def train_step(self, data):
        """One D step per pair (on its own split), one D_p step, one G step for all generators.

        Args:
            data: a tuple of N real batches, batch i drawn from split i (what `fit` feeds).

        Returns:
            The trackers' results: d_loss and g_loss (sums over the pairs), p_loss (D_p's cross-entropy).
        """
        reals = tuple(data) if isinstance(data, (tuple, list)) else (data,)
        if len(reals) != self.num_pairs:
            raise ValueError(f"train_step needs {self.num_pairs} real batches (one per split), got {len(reals)}")
        batch_sizes = [tf.shape(x)[0] for x in reals]

        fakes = [tf.stop_gradient(g(z, training=True)) for g, z in zip(self.generators, self._latents(batch_sizes))]
        d_variables = [v for d in self.discriminators for v in d.trainable_variables]
        with tf.GradientTape() as tape:
            d_loss = tf.add_n([
                tf.reduce_mean(tf.nn.softplus(-d(real, training=True)))
                + tf.reduce_mean(tf.nn.softplus(d(fake, training=True)))
                for d, real, fake in zip(self.discriminators, reals, fakes)
            ])
        self.d_optimizer.apply(tape.gradient(d_loss, d_variables), d_variables)
        self.d_loss_tracker.update_state(d_loss)

        if self.privacy_discriminator is not None:
            p_variables = self.privacy_discriminator.trainable_variables
            with tf.GradientTape() as tape:
                # Mean over all generated samples: each generator weighs by its batch size.
                entropies = self._privacy_cross_entropies(fakes, training=True)
                sizes = [tf.cast(size, entropies[0].dtype) for size in batch_sizes]
                p_loss = tf.add_n([e * s for e, s in zip(entropies, sizes)]) / tf.add_n(sizes)
            self.p_optimizer.apply(tape.gradient(p_loss, p_variables), p_variables)
            self.p_loss_tracker.update_state(p_loss)

        g_variables = [v for g in self.generators for v in g.trainable_variables]
        with tf.GradientTape() as tape:
            g_loss = self.generator_loss(self._latents(batch_sizes))
        self.g_optimizer.apply(tape.gradient(g_loss, g_variables), g_variables)
        self.g_loss_tracker.update_state(g_loss)
        return {m.name: m.result() for m in self.metrics}

    def call(self, inputs, training=None):
        """Runs every generator on the same `latent` batch; returns the list of N sample batches."""
        return [g(inputs, training=training) for g in self.generators]

    def fit(self, x=None, *, batch_size=128, epochs=1, **kwargs):
        """Splits `x` into N disjoint parts (once, at the first call) and trains pair i on part i.

        An epoch is (size of the smallest part) // batch_size train steps; each step reads one shuffled
        batch from every part. The parts are kept in `split_indices` (indices into `x`).

        Args:
            x: the training records, an array of shape (num_records, *sample_shape).
            batch_size: records per part in each step, in [1, size of the smallest part].
            epochs: number of epochs, >= 1.
            **kwargs: passed to `keras.Model.fit` (e.g. `verbose`, `callbacks`).

        Returns:
            The `History` of `keras.Model.fit`.

        Raises:
            ValueError: if x is not an array of records of the generators' shape, has a different number of
                rows than at the first call, or batch_size / epochs is out of range.
        """
        if x is None or isinstance(x, tf.data.Dataset):
            raise ValueError("PrivGAN.fit needs the training records as an array (it splits them itself)")
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.sample_shape:
            raise ValueError(f"x must have shape (num_records, *{self.sample_shape}), got {x.shape}")
        if self.split_indices is None:
            self.split_indices = disjoint_splits(len(x), num_splits=self.num_pairs, seed=self.seed)
        elif len(x) != sum(len(part) for part in self.split_indices):
            raise ValueError(
                f"x has {len(x)} rows but the model was split on {sum(map(len, self.split_indices))} at its "
                "first fit"
            )
        smallest = min(len(part) for part in self.split_indices)
        batch_size = check_count(batch_size, name="batch_size", minimum=1)
        if batch_size > smallest:
            raise ValueError(f"batch_size must be in [1, {smallest}] (the smallest split), got {batch_size}")
        epochs = check_count(epochs, name="epochs", minimum=1)
        shuffle_seed = None if self.seed is None else int(self.seed)
        parts = tuple(
            tf.data.Dataset.from_tensor_slices(x[part])
            .repeat()
            .shuffle(len(part), seed=shuffle_seed)
            .batch(batch_size, drop_remainder=True)
            for part in self.split_indices
        )
        dataset = tf.data.Dataset.zip(parts).prefetch(tf.data.AUTOTUNE)
        return super().fit(
            dataset, epochs=epochs, steps_per_epoch=smallest // batch_size, shuffle=False, **kwargs
        )

    def generate(self, n):
        """Draws `n` samples, each from a generator chosen uniformly at random (inference mode).

        Args:
            n: number of samples, an integer >= 0.

        Returns:
            A float32 array of shape (n, *sample_shape).

        Raises:
            ValueError: if n is negative.
        """
        n = check_count(n, name="n", minimum=0)
        samples = np.zeros((n, *self.sample_shape), np.float32)
        if n == 0:
            return samples
        choice = keras.ops.convert_to_numpy(
            keras.random.randint((n,), 0, self.num_pairs, seed=self.seed_generator, dtype="int32")
        )
        for index, generator in enumerate(self.generators):
            rows = np.flatnonzero(choice == index)
            for start in range(0, len(rows), _GENERATION_CHUNK):
                chunk = rows[start : start + _GENERATION_CHUNK]
                latent = keras.random.normal((len(chunk), self.latent_dims[index]), seed=self.seed_generator)
                samples[chunk] = keras.ops.convert_to_numpy(generator(latent, training=False))
        return samples
