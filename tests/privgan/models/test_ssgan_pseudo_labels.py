"""SemiSupervisedGAN.fit_pseudo_label_classifier: the sigma used is the sigma charged, to the unlabelled stream's
one ledger after its releases; one example moves the clipped sum by at most C; the GAN steps are free."""

import dp_accounting
import keras
import numpy as np
import pytest
import tensorflow as tf

import privgan.dp.mechanism
from privgan.dp.mechanism import private_gradients
from privgan.models.ssgan.pseudo_labels import pseudo_label_loss
from tests.privgan.models.test_ssgan_releases import DELTA, digits, make


def classifier(dimension):
    return keras.Sequential([keras.Input((dimension,)), keras.layers.Dense(10)])


def released(x_labelled, y_labelled, x_unlabelled):
    """A private model whose head the two streams' releases set (projection, centroid head, k-means)."""
    gan = make(len(x_unlabelled))
    gan.fit_projection(x_unlabelled, noise_multiplier=5.0)
    gan.fit_centroid_head(x_labelled, y_labelled, noise_multiplier=2.0)
    gan.refine_centroid_head(x_unlabelled, rounds=2, noise_multiplier=10.0)
    return gan


def test_sigma_used_is_sigma_charged_after_the_streams_releases_and_the_statement_covers_it(monkeypatch):
    x_labelled, y_labelled, x_unlabelled, x_test, y_test = digits()
    gan = released(x_labelled, y_labelled, x_unlabelled)
    before = gan.privacy_ledger.parts["unlabelled"].dp_event()
    stddevs = []
    original = privgan.dp.mechanism.gaussian_noise_like

    def spy(tensors, *, stddev, seed):
        stddevs.append(float(stddev))
        return original(tensors, stddev=stddev, seed=seed)

    monkeypatch.setattr(privgan.dp.mechanism, "gaussian_noise_like", spy)
    dimension = gan.discriminator.get_layer("projection").input.shape[-1]
    tf.config.run_functions_eagerly(True)  # so that the spy sees each step's std as a number
    try:
        model = gan.fit_pseudo_label_classifier(
            x_unlabelled, classifier=classifier(dimension), epochs=1, expected_batch_size=200, min_margin=0.01,
            noise_multiplier=1.3, optimizer=keras.optimizers.SGD(0.5), verbose=0)
    finally:
        tf.config.run_functions_eagerly(False)
    sigma = gan.pseudo_label_noise_multiplier  # as given: calibrating it to a target is DPModel.fit's, tested there
    assert sigma == pytest.approx(1.3)
    q = 200 / len(x_unlabelled)
    steps = round(len(x_unlabelled) / 200)
    # Each DP step drew its noise at std sigma * C / (q N), the sigma that the ledger charges.
    assert stddevs == pytest.approx([sigma * 1.0 / 200] * steps)
    # The stream's one ledger: its releases, then these steps at that sigma (dp-accounting's own epsilon).
    step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    expected = dp_accounting.pld.PLDAccountant().compose(before).compose(step, steps).get_epsilon(DELTA)
    epsilons = gan.privacy_ledger.part_epsilons(delta=DELTA)
    assert epsilons["unlabelled"] == pytest.approx(expected, rel=1e-3)
    report = gan.privacy_statement(delta=DELTA)
    assert report["epsilon"] == max(epsilons.values())
    assert report["streams"]["unlabelled"]["projection_phases"][-1]["noise_multiplier"] == pytest.approx(sigma)
    assert model.predict(x_test[:5], verbose=0).shape == (5, 10)
    # The labelled images are the other stream's: refused before any read.
    with pytest.raises(ValueError, match="labelled"):
        gan.fit_pseudo_label_classifier(x_labelled, classifier=classifier(dimension), epochs=1, expected_batch_size=10,
                                        noise_multiplier=1.0)


def test_removing_one_example_moves_the_clipped_sum_by_at_most_c():
    rng = np.random.default_rng(0)
    model = classifier(6)
    x = tf.constant(rng.normal(0, 30, (8, 6)), tf.float32)
    targets = tf.constant(np.eye(10, dtype=np.float32)[rng.integers(0, 10, 8)] * np.array([1, 0] * 4)[:, None])
    loss = pseudo_label_loss(unsupervised_weight=0.5)

    def summed(rows, labels):
        gradients = private_gradients(lambda b: loss(b[1], model(b[0])), model.trainable_variables, (rows, labels),
                                      l2_norm_clip=0.7, noise_multiplier=0.0, expected_batch_size=1.0)
        return np.concatenate([g.numpy().ravel() for g in gradients])

    full = summed(x, targets)
    for i in range(8):
        keep = np.arange(8) != i
        assert np.linalg.norm(full - summed(tf.boolean_mask(x, keep), tf.boolean_mask(targets, keep))) <= 0.7 + 1e-5


def test_gan_steps_train_the_generator_and_cost_nothing_more():
    x_labelled, y_labelled, x_unlabelled, x_test, y_test = digits()
    charged = []
    for gan_step in (False, True):
        gan = released(x_labelled, y_labelled, x_unlabelled)
        dimension = gan.discriminator.get_layer("projection").input.shape[-1]
        generator = keras.Sequential([keras.Input((4,)), keras.layers.Dense(dimension)]) if gan_step else None
        start = [w.copy() for w in generator.get_weights()] if gan_step else None
        gan.fit_pseudo_label_classifier(x_unlabelled, classifier=classifier(dimension), epochs=1,
                                        expected_batch_size=100, noise_multiplier=3.0, unsupervised_weight=0.5,
                                        generator=generator, fake_batch_size=20, verbose=0)
        if gan_step:
            assert any(not np.allclose(a, b) for a, b in zip(start, generator.get_weights()))
        charged.append(gan.privacy_ledger.part_epsilons(delta=DELTA)["unlabelled"])
    assert charged[0] == charged[1]
    with pytest.raises(ValueError, match="unsupervised_weight"):
        gan.fit_pseudo_label_classifier(x_unlabelled, classifier=classifier(dimension), epochs=1,
                                        expected_batch_size=100, noise_multiplier=3.0, generator=generator)


def test_without_dp_the_same_steps_run_uncharged():
    x_labelled, y_labelled, x_unlabelled, x_test, y_test = digits()
    gan = make(len(x_unlabelled), private=False)
    gan.fit_projection(x_unlabelled)
    gan.fit_centroid_head(x_labelled, y_labelled)
    gan.refine_centroid_head(x_unlabelled, rounds=2)
    dimension = gan.discriminator.get_layer("projection").input.shape[-1]
    model = gan.fit_pseudo_label_classifier(x_unlabelled, classifier=classifier(dimension), epochs=1,
                                            expected_batch_size=100, verbose=0)
    assert gan.pseudo_label_noise_multiplier == 0.0 and not gan.projection_ledger.phases
    assert model.predict(x_test[:5], verbose=0).shape == (5, 10)
