import numpy as np
import pytest

from privgan.audit import (
    discriminator_ranking_attack,
    discriminator_scores,
    distance_to_closest_synthetic_attack,
)


@pytest.fixture(scope="module")
def records():
    rng = np.random.default_rng(0)
    images = rng.random((400, 6, 6, 1))
    is_member = rng.random(400) < 0.5
    return images, is_member


def memorising_discriminator(training_images):
    """Scores a record by closeness to its nearest training image: the extreme of an overfit D."""
    flat = training_images.reshape(len(training_images), -1)

    def discriminator(batch):
        batch = np.asarray(batch).reshape(len(batch), -1)
        distances = np.linalg.norm(batch[:, None, :] - flat[None, :, :], axis=-1)
        return -distances.min(axis=1)[:, None]  # Keras-like (batch, 1) output

    return discriminator


def test_overfit_discriminator_ranks_members_first(records):
    images, is_member = records
    result = discriminator_ranking_attack(
        discriminators=memorising_discriminator(images[is_member]), records=images, is_member=is_member
    )
    assert result.auc > 0.99
    assert result.top_k_precision() > 0.95
    assert result.attack == "discriminator ranking"


def test_random_discriminator_is_at_chance(records):
    images, is_member = records
    rng = np.random.default_rng(1)
    result = discriminator_ranking_attack(
        discriminators=lambda batch: rng.random(len(batch)), records=images, is_member=is_member
    )
    assert abs(result.auc - 0.5) < 0.08


def test_privgan_discriminators_are_combined(records):
    # privGAN: each discriminator sees one split of the training data, so alone it detects half the members.
    images, is_member = records
    members = np.flatnonzero(is_member)
    halves = [memorising_discriminator(images[members[0::2]]), memorising_discriminator(images[members[1::2]])]
    single = discriminator_ranking_attack(discriminators=halves[0], records=images, is_member=is_member)
    combined = discriminator_ranking_attack(discriminators=halves, records=images, is_member=is_member)
    mean = discriminator_ranking_attack(
        discriminators=halves, records=images, is_member=is_member, aggregate="mean"
    )
    assert combined.auc > 0.99 > single.auc
    assert combined.attack == "discriminator ranking (max of 2)"
    assert mean.attack == "discriminator ranking (mean of 2)"
    with pytest.raises(ValueError, match="aggregate must be one of"):
        discriminator_ranking_attack(discriminators=halves, records=images, is_member=is_member, aggregate="min")


def test_discriminator_scores_batches_and_checks_output(records):
    images, _ = records
    discriminator = memorising_discriminator(images[:50])
    np.testing.assert_allclose(
        discriminator_scores(discriminator, images, batch_size=7),
        discriminator_scores(discriminator, images, batch_size=1000),
    )
    with pytest.raises(ValueError, match="one number per record"):
        discriminator_scores(lambda batch: np.zeros((len(batch), 2)), images)


def test_distance_attack_detects_a_memorising_generator(records):
    images, is_member = records
    rng = np.random.default_rng(2)
    # Synthetic samples that are noisy copies of training images.
    copies = images[is_member] + 0.05 * rng.normal(size=images[is_member].shape)
    result = distance_to_closest_synthetic_attack(records=images, synthetic=copies, is_member=is_member)
    assert result.auc > 0.99


def test_distance_attack_on_an_independent_generator_is_at_chance(records):
    images, is_member = records
    fresh = np.random.default_rng(3).random((1000, 6, 6, 1))  # same distribution, no memory of the data
    result = distance_to_closest_synthetic_attack(records=images, synthetic=fresh, is_member=is_member)
    assert abs(result.auc - 0.5) < 0.08


def test_distance_attack_checks_shapes(records):
    images, is_member = records
    with pytest.raises(ValueError, match="same number of features"):
        distance_to_closest_synthetic_attack(records=images, synthetic=np.zeros((5, 3)), is_member=is_member)
