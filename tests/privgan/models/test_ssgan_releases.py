"""SemiSupervisedGAN's one-shot releases (fit_projection, fit_centroid_head, refine_centroid_head): what each
reads, what it costs and to which stream, sensitivity, and that a tiny scattering classifier learns."""

import dp_accounting
import keras
import numpy as np
import pytest

import privgan.models.ssgan.model
import privgan.models.ssgan.releases
from privgan.accounting import PrivacyLedger, calibrate_noise_multiplier, epsilon_of_event
from privgan.data.digits import load_digits
from privgan.models import SemiSupervisedGAN
from privgan.models.architectures import mlp_generator, scattering_discriminator

DELTA = 1e-5
NUM_LABELLED = 30


def digits():
    """scikit-learn's 8x8 digits in [0, 1]: 30 labelled (3 per class), the rest of the training part unlabelled."""
    (x, y), (x_test, y_test) = load_digits()
    x, x_test = (np.asarray(a, "float32").reshape(-1, 8, 8, 1) for a in (x, x_test))
    labelled = np.concatenate([np.flatnonzero(y == k)[:3] for k in range(10)])
    unlabelled = np.setdiff1d(np.arange(len(x)), labelled)
    return x[labelled], y[labelled], x[unlabelled], x_test, y_test


def make(num_unlabelled, *, private=True, num_labelled=NUM_LABELLED):
    keras.utils.set_random_seed(0)
    discriminator = scattering_discriminator(input_shape=(8, 8, 1), num_logits=10, scales=1, orientations=4, groups=5,
                                             projection=20)
    return SemiSupervisedGAN(mlp_generator(output_shape=(8, 8, 1), latent_dim=4, hidden=(16,)), discriminator,
                             num_labelled=num_labelled, num_unlabelled=num_unlabelled, labelled_batch_size=10,
                             unlabelled_batch_size=50, labelled_gradient="none", private=private,
                             **({"l2_norm_clip": 1.0} if private else {}))


def test_each_release_is_charged_once_to_its_own_stream_and_draws_noise_at_a_fresh_position(monkeypatch):
    x_labelled, y_labelled, x_unlabelled, x_test, y_test = digits()
    # Every read of private data in these methods ends in a noise draw; count both.
    draws = []
    original = privgan.dp.noise.gaussian_noise_like

    def spy(tensors, *, stddev, seed):
        draws.append((float(stddev), int(seed.numpy()[1])))
        return original(tensors, stddev=stddev, seed=seed)

    # The releases draw in `releases`, the GAN steps in `model`: a draw anywhere is counted.
    for module in (privgan.models.ssgan.model, privgan.models.ssgan.releases):
        monkeypatch.setattr(module, "gaussian_noise_like", spy)
    gan = make(len(x_unlabelled))
    rounds = PrivacyLedger()
    rounds.record(noise_multiplier=5.0, sampling_probability=1.0, steps=3)
    sigma = calibrate_noise_multiplier(target_epsilon=4.0, delta=DELTA, sampling_probability=1.0, steps=1,
                                       ledger=rounds)
    gan.fit_projection(x_unlabelled, noise_multiplier=sigma, target_epsilon=4.0, delta=DELTA)
    ledger = gan.privacy_ledger
    assert len(ledger.parts["unlabelled"].phases) == 1 and not ledger.parts["labelled"].phases
    with pytest.raises(ValueError, match="shares images with the unlabelled set"):
        gan.fit_centroid_head(x_unlabelled[:NUM_LABELLED], y_labelled, target_epsilon=2.0, delta=DELTA)
    gan.fit_centroid_head(x_labelled, y_labelled, target_epsilon=2.0, delta=DELTA)
    gan.refine_centroid_head(x_unlabelled, rounds=3, noise_multiplier=5.0, target_epsilon=4.0, delta=DELTA)
    ledger = gan.privacy_ledger
    labelled_sigma = draws[1][0]
    assert ledger.parts["labelled"].dp_event() == dp_accounting.GaussianDpEvent(labelled_sigma)
    assert ledger.parts["unlabelled"].dp_event() == dp_accounting.ComposedDpEvent(
        [dp_accounting.GaussianDpEvent(sigma)] + [dp_accounting.GaussianDpEvent(5.0)] * 3)
    epsilons = ledger.part_epsilons(delta=DELTA)
    assert 0.99 * 2.0 <= epsilons["labelled"] <= 2.0 and 0.99 * 4.0 <= epsilons["unlabelled"] <= 4.0
    report = gan.privacy_statement(delta=DELTA)
    assert report["epsilon"] == max(epsilons.values())
    assert len(report["streams"]["unlabelled"]["projection_phases"]) == 4
    # Five reads, five draws, each at its own position (the draw counter's high bits).
    assert [d[0] for d in draws] == [sigma, labelled_sigma, 5.0, 5.0, 5.0]
    positions = [seed >> privgan.dp.noise.DRAW_BITS for _, seed in draws]
    assert len(set(positions)) == 5
    assert int(gan._global_dp_step()) == 5
    # Predicting reads no training data and costs nothing.
    gan.predict(x_test[:10], verbose=0)
    assert gan.privacy_ledger == ledger and len(draws) == 5
    with pytest.raises(ValueError, match="would spend epsilon"):
        gan.fit_centroid_head(x_labelled, y_labelled, noise_multiplier=1.0, target_epsilon=2.0, delta=DELTA)
    assert gan.privacy_ledger == ledger


def test_removing_one_labelled_example_moves_the_class_sums_by_at_most_one():
    x_labelled, y_labelled, x_unlabelled, _, _ = digits()
    x_big = x_labelled * 50  # features far beyond the unit ball before scaling
    full = make(len(x_unlabelled), private=False)
    full.fit_centroid_head(x_big, y_labelled)
    sums = full.discriminator.layers[-1].kernel.numpy() * NUM_LABELLED / 10
    for removed in range(0, NUM_LABELLED, 7):
        keep = np.arange(NUM_LABELLED) != removed
        smaller = make(len(x_unlabelled), private=False, num_labelled=NUM_LABELLED - 1)
        smaller.fit_centroid_head(x_big[keep], y_labelled[keep])
        other = smaller.discriminator.layers[-1].kernel.numpy() * (NUM_LABELLED - 1) / 10
        assert np.linalg.norm(sums - other) <= 1.0 + 1e-5


def test_a_tiny_private_scattering_classifier_learns_from_30_labels():
    x_labelled, y_labelled, x_unlabelled, x_test, y_test = digits()
    gan = make(len(x_unlabelled))
    gan.fit_projection(x_unlabelled, noise_multiplier=1.0)
    gan.fit_centroid_head(x_labelled, y_labelled, noise_multiplier=1.0)
    gan.refine_centroid_head(x_unlabelled, rounds=3, noise_multiplier=5.0)
    accuracy = np.mean(np.argmax(gan.predict(x_test, verbose=0), axis=1) == y_test)
    assert accuracy > 0.3, accuracy  # chance is 0.1; 0.475 in one run (the noise is secret, so it varies)
    assert epsilon_of_event(gan.privacy_ledger.parts["labelled"].dp_event(), delta=DELTA) < 10


def test_bad_release_arguments_give_clear_errors():
    x_labelled, y_labelled, x_unlabelled, _, _ = digits()
    gan = make(len(x_unlabelled))
    with pytest.raises(ValueError, match="not a layer of the discriminator"):
        gan.fit_projection(x_unlabelled, layer="nope", noise_multiplier=1.0)
    with pytest.raises(ValueError, match="x_unlabelled must have shape"):
        gan.fit_projection(x_unlabelled[:-1], noise_multiplier=1.0)
    with pytest.raises(ValueError, match="rounds"):
        gan.refine_centroid_head(x_unlabelled, rounds=0, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="needs delta|go together"):
        gan.fit_centroid_head(x_labelled, y_labelled, target_epsilon=1.0)
    assert not gan.privacy_ledger.parts["labelled"].phases


def test_the_rows_kept_by_fit_projection_give_the_same_head_inputs_and_other_images_miss_them():
    _, _, x_unlabelled, _, _ = digits()
    gan = make(len(x_unlabelled), private=False)
    gan.fit_projection(x_unlabelled)
    direct = gan._head_input(x_unlabelled, training=False).numpy()
    np.testing.assert_allclose(gan._unlabelled_head_inputs(x_unlabelled), direct, rtol=1e-5, atol=1e-6)
    # Other images (the same ones in another order) are computed afresh, not read from the kept rows.
    reordered = x_unlabelled[::-1].copy()
    np.testing.assert_allclose(gan._unlabelled_head_inputs(reordered), direct[::-1], rtol=1e-5, atol=1e-6)
