import keras
import numpy as np
import pytest
from scipy import stats

from privgan.robustness import Classifier, GaussianNoiseTraining, SmoothedClassifier
from privgan.robustness.smoothing import ABSTAIN, clopper_pearson_lower
from tests.privgan.robustness.linear import linear_model

SIGMA = 0.5


def _threshold_classifier():
    # f(x) = 1 if x_0 > 0 else 0. Smoothed: p_A = Phi(|x_0| / sigma), so the exact certified radius is
    # sigma * Phi^-1(p_A) = |x_0|, and no radius beyond it is correct.
    return Classifier(linear_model(np.array([[0.0, 1.0], [0.0, 0.0]]), [0.0, 0.0]), valid_range=(-10.0, 10.0))


def test_certified_radius_approaches_the_exact_radius_from_below():
    x = np.array([[0.3, 0.0], [-0.5, 1.0], [1.0, 0.0]], np.float32)
    y = np.array([1, 0, 1])
    smoothed = SmoothedClassifier(_threshold_classifier(), sigma=SIGMA, num_classes=2, batch_size=20000, seed=0)
    result = smoothed.certify(x, y, num_estimation=100_000, alpha=0.001)
    exact = np.abs(x[:, 0])
    np.testing.assert_array_equal(result.predictions, y)
    assert np.all(result.radii <= exact)
    np.testing.assert_allclose(result.radii, exact, atol=0.03)
    assert result.certified_accuracy(0.29) == 1.0 and result.certified_accuracy(0.31) == pytest.approx(2 / 3)
    assert result.abstain_rate == 0.0


def test_a_constant_classifier_gets_the_largest_radius_n_samples_allow():
    constant = Classifier(linear_model(np.zeros((2, 3)), [0.0, 5.0, 0.0]), valid_range=(-10.0, 10.0))
    smoothed = SmoothedClassifier(constant, sigma=SIGMA, num_classes=3, seed=0)
    result = smoothed.certify(np.zeros((2, 2), np.float32), num_estimation=1000, alpha=0.01)
    # All n samples agree: the Clopper-Pearson lower bound is alpha^(1/n).
    np.testing.assert_allclose(result.lower_bounds, 0.01 ** (1 / 1000), rtol=1e-9)
    np.testing.assert_allclose(result.radii, SIGMA * stats.norm.ppf(0.01 ** (1 / 1000)), rtol=1e-6)
    np.testing.assert_array_equal(result.predictions, [1, 1])


def test_clopper_pearson_lower_bound_matches_the_exact_binomial_interval():
    # scipy's exact two-sided interval at confidence 1 - 2 alpha has the one-sided bound as its lower end.
    for k, n in ((37, 50), (990, 1000), (1, 10)):
        expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.98, method="exact").low
        assert clopper_pearson_lower([k], n, alpha=0.01)[0] == pytest.approx(expected, rel=1e-9)
    assert clopper_pearson_lower([0], 10, alpha=0.01)[0] == 0.0


def test_smoothed_classifier_abstains_on_the_boundary_and_draws_fresh_noise():
    # Abstaining at the boundary holds with probability >= 1 - alpha per example and query: a fixed seed, so that
    # one draw in a few hundred does not fail the suite; the default (secret) noise is checked below.
    seeded = SmoothedClassifier(_threshold_classifier(), sigma=SIGMA, num_classes=2, seed=3)
    on_boundary = np.zeros((4, 2), np.float32)
    assert np.all(seeded.predict(on_boundary, num_samples=200) == ABSTAIN)
    assert np.all(seeded.certify(on_boundary, num_estimation=500).predictions == ABSTAIN)
    smoothed = SmoothedClassifier(_threshold_classifier(), sigma=SIGMA, num_classes=2)
    first, second = smoothed.sample_counts(on_boundary, 1000), smoothed.sample_counts(on_boundary, 1000)
    assert not np.array_equal(first, second)  # every query draws new noise
    assert np.all(first.sum(axis=1) == 1000)
    assert smoothed.predict(np.array([[2.0, 0.0]], np.float32))[0] == 1


def test_noise_training_trains_on_noisy_inputs():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    trainer = GaussianNoiseTraining(model, sigma=0.25, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = trainer.fit(x, y, epochs=2, batch_size=32, verbose=0, validation_data=(x, y)).history
    assert {"loss", "noisy_accuracy", "val_clean_accuracy", "val_noisy_accuracy"} <= set(history)
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoiseTraining(model, sigma=0.0)


def test_a_first_query_of_one_example_with_many_samples_runs():
    # Traced first on one example (num_samples >= batch_size: one example per call), the sampling loop's counts had
    # a static leading 1 that its body's reshape loosened to None, and tf.while_loop refused it.
    smoothed = SmoothedClassifier(_threshold_classifier(), sigma=SIGMA, num_classes=2, batch_size=100, seed=0)
    counts = smoothed.sample_counts(np.array([[2.0, 0.0], [-2.0, 0.0]], np.float32), 300)
    assert counts.shape == (2, 2) and np.all(counts.sum(axis=1) == 300)
    assert counts[0, 1] > counts[0, 0] and counts[1, 0] > counts[1, 1]
