"""DP-MERF: the release's sensitivity (remove one example), its one ledger event, secret noise, emission."""

import json
import math

import dp_accounting
import keras
import numpy as np
import pytest

from privgan.accounting import PrivacyLedger, ReleasePhase, calibrate_noise_multiplier
from privgan.models.architectures import mlp_generator
from privgan.models.mean_embedding import (
    MeanEmbeddingGenerator,
    RandomFourierFeatures,
    mean_embedding_sensitivity,
)

NUM_EXAMPLES, SHAPE, CLASSES, DELTA = 40, (3, 3, 1), 3, 1e-5


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(NUM_EXAMPLES, *SHAPE)).astype("float32"), rng.integers(0, CLASSES, NUM_EXAMPLES)


def make(num_classes=CLASSES, **kwargs):
    generator = mlp_generator(output_shape=SHAPE, latent_dim=4, num_classes=num_classes, hidden=(16,))
    kwargs = {"num_features": 200, "batch_size": 12, "seed": 0, **kwargs}
    model = MeanEmbeddingGenerator(generator, num_classes=num_classes, **kwargs)
    model.compile(keras.optimizers.Adam(1e-2))
    return model


@pytest.fixture(scope="module")
def fitted():
    keras.utils.set_random_seed(0)
    x, y = data()
    model = make()
    history = model.fit(x, y, epochs=2, steps_per_epoch=5, target_epsilon=2.0, delta=DELTA, verbose=0)
    return model, history.history


def test_random_fourier_features_have_unit_norm():
    layer = RandomFourierFeatures(64, length_scales=(0.5, 2.0), seed=0)
    features = keras.ops.convert_to_numpy(layer(np.random.default_rng(0).normal(size=(7, 3, 3, 1))))
    assert features.shape == (7, 64)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("num_classes", [None, CLASSES])
def test_removing_one_example_moves_the_released_sum_by_at_most_the_sensitivity(num_classes):
    x, y = data(1)
    y = None if num_classes is None else y
    model = make(num_classes=num_classes)
    assert model.l2_sensitivity == 1.0
    full = model.embedding_sum(x, y)
    changes = []
    for i in range(NUM_EXAMPLES):
        keep = np.arange(NUM_EXAMPLES) != i
        changes.append(np.linalg.norm(full - model.embedding_sum(x[keep], None if y is None else y[keep])))
    # |psi(x, y)| = 1 for every example: the bound is attained, never exceeded (float32 features).
    assert max(changes) <= 1.0 + 1e-5
    assert min(changes) >= 1.0 - 1e-5


def test_replace_one_sensitivity_depends_on_the_label():
    x, y = data(2)
    model = make()
    alpha = model.alpha
    full = model.embedding_sum(x, y)
    relabelled = y.copy()
    relabelled[0] = (y[0] + 1) % CLASSES
    # Changing only the label moves two blocks by unit vectors: sqrt(2) > 1, the add/remove sensitivity.
    assert np.linalg.norm(full - model.embedding_sum(x, relabelled)) == pytest.approx(math.sqrt(2), rel=1e-5)
    assert mean_embedding_sensitivity(num_classes=CLASSES, count_weight=model.count_weight,
                                      adjacency="replace_one") == pytest.approx(max(math.sqrt(2), 2 * alpha))
    # Replacing within a class moves one block by alpha |phi(x) - phi(x')| <= 2 alpha.
    replaced = x.copy()
    replaced[0] = 1.0 - x[0]
    assert np.linalg.norm(full - model.embedding_sum(replaced, y)) <= 2 * alpha
    assert mean_embedding_sensitivity(count_weight=0.1, adjacency="replace_one") == pytest.approx(2 * alpha)
    with pytest.raises(ValueError, match="adjacency"):
        mean_embedding_sensitivity(count_weight=0.1, adjacency="swap")


def test_one_gaussian_release_in_the_ledger_at_the_calibrated_sigma(fitted):
    model, history = fitted
    sigma = calibrate_noise_multiplier(target_epsilon=2.0, delta=DELTA, sampling_probability=1.0, steps=1)
    (phase,) = model.privacy_ledger.phases
    assert isinstance(phase, ReleasePhase)
    assert phase.event == dp_accounting.GaussianDpEvent(sigma)
    assert model.privacy_spent(delta=DELTA) == pytest.approx(2.0, rel=1e-3)
    assert model.privacy_spent(delta=DELTA) <= 2.0
    assert len(history["mmd2"]) == 2
    # Further training reads the release only: no new event.
    model.fit(epochs=1, steps_per_epoch=2, verbose=0)
    assert model.privacy_ledger.phases == (phase,)
    with pytest.raises(ValueError, match="already released"):
        model.fit(*data(), epochs=1, steps_per_epoch=1, verbose=0)


def test_release_composes_with_an_earlier_phase_within_the_budget():
    earlier = PrivacyLedger()
    earlier.record(noise_multiplier=2.0, sampling_probability=0.05, steps=50)  # epsilon 0.78
    model = make(ledger=earlier)
    model.release_embedding(*data(), target_epsilon=4.0, delta=DELTA, accountant="rdp")  # RDP: fast calibration
    ledger = model.privacy_ledger
    assert len(ledger.phases) == 2 and ledger.total_steps == 50 and ledger.mechanism_runs == 51
    assert 0.99 * 4.0 <= ledger.epsilon(delta=DELTA, accountant="rdp") <= 4.0
    assert ledger.epsilon(delta=DELTA) <= 4.0
    too_little = make(ledger=earlier, noise_multiplier=0.5)
    with pytest.raises(ValueError, match="would spend"):
        too_little.release_embedding(*data(), target_epsilon=4.0, delta=DELTA)
    assert not too_little.has_released


def test_noise_is_secret_by_default_and_reproducible_only_on_request():
    x, y = data()

    def noise(**kwargs):
        model = make(noise_multiplier=2.0, **kwargs)
        model.release_embedding(x, y)
        return keras.ops.convert_to_numpy(model.release) - model.embedding_sum(x, y), model

    first, model = noise()
    second, _ = noise()
    assert not np.allclose(first, second)  # same seed, fresh secret noise
    assert first.std() == pytest.approx(2.0, rel=0.1)  # sigma x sensitivity 1 on each of 3 x 201 entries
    assert not model.privacy_statement(delta=DELTA)["noise_reproducible"]
    seeded, seeded_model = noise(noise_seed=7)
    again, _ = noise(noise_seed=7)
    np.testing.assert_allclose(seeded, again, atol=1e-6)
    report = seeded_model.privacy_statement(delta=DELTA)
    assert report["noise_reproducible"] and "no guarantee against anyone who knows it" in report["guarantee"]


def test_generate_and_save_synthetic_with_statement(fitted, tmp_path):
    model, _ = fitted
    samples, labels = model.generate(7)
    assert samples.shape == (7, *SHAPE) and labels.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert 0.0 <= samples.min() and samples.max() <= 1.0
    assert model.class_counts_.shape == (CLASSES,)
    npz, statement = model.save_synthetic(tmp_path / "synthetic.npz", 9, delta=DELTA)
    with np.load(npz) as saved:
        assert saved["x"].shape == (9, *SHAPE) and saved["y"].shape == (9,)
    report = json.loads(statement.read_text())
    assert report["epsilon"] == pytest.approx(model.privacy_spent(delta=DELTA))
    assert report["l2_sensitivity"] == 1.0 and report["ledger"]["phases"][0]["release"]["event"] == "GaussianDpEvent"


def test_bad_input_is_refused():
    x, y = data()
    with pytest.raises(ValueError, match="needs labels y"):
        make().fit(x, epochs=1, steps_per_epoch=1, target_epsilon=1.0, delta=DELTA, verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        bad = x.copy()
        bad[0, 0, 0, 0] = np.nan
        make().fit(bad, y, epochs=1, steps_per_epoch=1, target_epsilon=1.0, delta=DELTA, verbose=0)
    with pytest.raises(ValueError, match="target_epsilon and delta"):
        make().release_embedding(x, y)
    with pytest.raises(ValueError, match="batch_size must be"):
        make(batch_size=4)
    with pytest.raises(ValueError, match="fitted model"):
        make().privacy_statement(delta=DELTA)


def test_save_and_load_keep_the_release_features_and_ledger(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.has_released
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.release), keras.ops.convert_to_numpy(model.release))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.features.frequencies),
                                  keras.ops.convert_to_numpy(model.features.frequencies))
    assert loaded.privacy_ledger == model.privacy_ledger
    with pytest.raises(ValueError, match="already released"):
        loaded.release_embedding(*data())
