"""privGAN: disjoint splits, the privacy discriminator's training, the generators' privacy term, sampling."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from privgan.audit import discriminator_ranking_attack
from privgan.models.architectures import mlp_discriminator, mlp_generator
from privgan.models.privgan import PrivGAN, disjoint_splits

FEATURES, LATENT, PAIRS = 4, 3, 3


def privacy_discriminator(num_pairs=PAIRS):
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(num_pairs)])


def make_gan(num_pairs=PAIRS, privacy_weight=1.0, seed=0):
    gan = PrivGAN(
        [mlp_generator(output_shape=(FEATURES,), latent_dim=LATENT, hidden=(8,)) for _ in range(num_pairs)],
        [mlp_discriminator(input_shape=(FEATURES,), hidden=(8,)) for _ in range(num_pairs)],
        privacy_discriminator(num_pairs) if num_pairs > 1 else None,
        seed=seed,
    )
    gan.compile(keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05),
                privacy_weight=privacy_weight)
    return gan


def data(n=60, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, FEATURES)).astype("float32")


def test_splits_are_disjoint_cover_the_data_and_are_balanced():
    parts = disjoint_splits(101, num_splits=4, seed=0)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(101))  # cover, and no index twice
    assert {len(p) for p in parts} <= {25, 26}
    assert [p.tolist() for p in parts] == [p.tolist() for p in disjoint_splits(101, num_splits=4, seed=0)]
    with pytest.raises(ValueError, match="num_records"):
        disjoint_splits(3, num_splits=4)


def test_fit_tracks_the_privacy_discriminator_and_splits_once():
    gan = make_gan()
    x = data()
    history = gan.fit(x, batch_size=5, epochs=2, verbose=0).history
    assert set(history) == {"d_loss", "g_loss", "p_loss"}
    assert all(np.isfinite(history["p_loss"]))
    # D_p starts near chance (cross-entropy log N) and is trained: its optimizer took every step.
    assert int(gan.p_optimizer.iterations.numpy()) == 2 * (len(x) // PAIRS // 5)
    parts = gan.split_indices
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(x)))
    gan.fit(x, batch_size=5, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, gan.split_indices))
    with pytest.raises(ValueError, match="rows"):
        gan.fit(x[:30], batch_size=5, verbose=0)


def test_each_discriminator_reads_only_its_own_split():
    """Changing the records of split 1 leaves D_0's trained weights unchanged (same seeds)."""
    x = data()
    parts = disjoint_splits(len(x), num_splits=2, seed=0)
    x_changed = x.copy()
    x_changed[parts[1]] = 1.0 - x_changed[parts[1]]
    weights = []
    for records in (x, x_changed):
        keras.utils.set_random_seed(0)
        gan = make_gan(num_pairs=2, privacy_weight=0.0)
        gan.fit(records, batch_size=5, epochs=1, verbose=0)
        weights.append([[w.numpy() for w in d.weights] for d in gan.discriminators])
    assert all(np.allclose(a, b) for a, b in zip(weights[0][0], weights[1][0]))
    assert not all(np.allclose(a, b) for a, b in zip(weights[0][1], weights[1][1]))


def test_generator_loss_subtracts_lambda_times_the_privacy_cross_entropy():
    gan = make_gan(privacy_weight=0.0)
    latents = [tf.random.normal((6, LATENT), seed=i) for i in range(PAIRS)]
    variables = [v for g in gan.generators for v in g.trainable_variables]

    def gradients():
        with tf.GradientTape() as tape:
            loss = gan.generator_loss(latents)
        return loss, tape.gradient(loss, variables)

    loss_0, gradients_0 = gradients()
    gan.privacy_weight = 2.0
    loss_2, gradients_2 = gradients()
    # The privacy term, computed independently: the mean cross-entropy of D_p toward each G_i's own index.
    with tf.GradientTape() as tape:
        entropy = tf.add_n([
            tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                tf.fill([6], i), gan.privacy_discriminator(g(z)), from_logits=True))
            for i, (g, z) in enumerate(zip(gan.generators, latents))
        ])
    privacy_gradients = tape.gradient(entropy, variables)
    assert float(loss_2) == pytest.approx(float(loss_0) - 2.0 * float(entropy), rel=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(gradients_0, gradients_2))
    for a, b, p in zip(gradients_0, gradients_2, privacy_gradients):
        np.testing.assert_allclose(b.numpy(), a.numpy() - 2.0 * p.numpy(), rtol=1e-4, atol=1e-6)


def test_generate_samples_every_generator():
    gan = make_gan()
    assert gan.generate(0).shape == (0, FEATURES)
    samples = gan.generate(300)
    assert samples.shape == (300, FEATURES) and samples.dtype == np.float32
    # A generator with a constant output marks the samples it produced: about a third of them.
    constant = keras.Sequential([keras.Input((LATENT,)), keras.layers.Dense(FEATURES, kernel_initializer="zeros",
                                                                           bias_initializer="ones")])
    gan.generators[1] = constant
    samples = gan.generate(300)
    from_constant = np.all(samples == 1.0, axis=1).mean()
    assert 0.2 < from_constant < 0.47  # about 1/3


def test_plain_gan_and_white_box_attack_with_max_over_discriminators():
    gan = make_gan(num_pairs=1)
    assert gan.privacy_discriminator is None
    assert set(gan.fit(data(), batch_size=10, epochs=1, verbose=0).history) == {"d_loss", "g_loss"}
    privgan = make_gan()
    records, is_member = data(40), np.arange(40) < 20
    result = discriminator_ranking_attack(discriminators=privgan.discriminators, records=records,
                                          is_member=is_member, aggregate="max")
    assert result.attack == f"discriminator ranking (max of {PAIRS})"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"privacy_discriminator": None}, "privacy_discriminator is needed"),
        ({"privacy_discriminator": privacy_discriminator(2)}, "3 logits"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    generators = [mlp_generator(output_shape=(FEATURES,), latent_dim=LATENT, hidden=(8,)) for _ in range(PAIRS)]
    discriminators = [mlp_discriminator(input_shape=(FEATURES,), hidden=(8,)) for _ in range(PAIRS)]
    with pytest.raises(ValueError, match=match):
        PrivGAN(generators, discriminators, **kwargs)
    with pytest.raises(ValueError, match="equal length"):
        PrivGAN(generators, discriminators[:2], privacy_discriminator(PAIRS))
    gan = make_gan()
    with pytest.raises(ValueError, match="privacy_weight"):
        gan.compile(privacy_weight=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        gan.fit(data(), batch_size=21, verbose=0)
