"""The mean-embedding feature maps: unit norm whatever the input, so removing one example moves the release
by at most 1; they train, save and load inside `MeanEmbeddingGenerator`."""

import keras
import numpy as np
import pytest

from privgan.models.architectures import mlp_generator
from privgan.models.embedding_features import FEATURE_MAPS, ImageEmbeddingFeatures, build_feature_map
from privgan.models.mean_embedding import MeanEmbeddingGenerator

SHAPE, CLASSES, NUM_EXAMPLES, DELTA = (8, 8, 1), 3, 24, 1e-5


def images(seed=0, count=NUM_EXAMPLES):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(count, *SHAPE)).astype("float32")
    x[0] = 0.0  # extremes of the [0, 1] range: a blank and a saturated image
    x[1] = 1.0
    return x, rng.integers(0, CLASSES, count)


def make(features, **kwargs):
    generator = mlp_generator(output_shape=SHAPE, latent_dim=4, num_classes=CLASSES, hidden=(16,))
    model = MeanEmbeddingGenerator(generator, num_classes=CLASSES, num_features=64, batch_size=12, seed=0,
                                   features=features, **kwargs)
    model.compile(keras.optimizers.Adam(1e-2))
    return model


@pytest.mark.parametrize("name", FEATURE_MAPS)
def test_every_feature_map_has_unit_norm_even_far_outside_the_data_range(name):
    layer = build_feature_map(name, num_features=40, sample_shape=SHAPE, length_scales=(1.0, 3.0), seed=0)
    x = np.concatenate([images()[0], 50.0 * np.random.default_rng(1).normal(size=(4, *SHAPE)).astype("float32")])
    norms = np.linalg.norm(keras.ops.convert_to_numpy(layer(x)), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["scattering", "both"])
def test_removing_one_example_moves_the_released_sum_by_at_most_one(name):
    x, y = images(2)
    model = make(name)
    assert model.l2_sensitivity == 1.0
    full = model.embedding_sum(x, y)
    changes = [np.linalg.norm(full - model.embedding_sum(np.delete(x, i, axis=0), np.delete(y, i)))
               for i in range(NUM_EXAMPLES)]
    assert max(changes) <= 1.0 + 1e-5
    assert min(changes) >= 1.0 - 1e-5  # |psi| = 1: the bound is attained


def test_both_blocks_weigh_a_squared_plus_b_squared_one():
    layer = ImageEmbeddingFeatures(pixel_features=20, scattering_features=30, pixel_weight=0.6, seed=0)
    layer.build((None, *SHAPE))
    features = keras.ops.convert_to_numpy(layer(images()[0]))
    np.testing.assert_allclose(np.linalg.norm(features[:, :20], axis=1), 0.6, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(features[:, 20:], axis=1), 0.8, rtol=1e-5)


def test_trains_through_the_scattering_and_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(0)
    x, y = images()
    model = make("both", feature_options={"pixel_weight": 0.5, "orientations": 2})
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.generator.trainable_variables]
    model.fit(x, y, epochs=1, steps_per_epoch=2, target_epsilon=2.0, delta=DELTA, verbose=0)
    after = model.generator.trainable_variables
    assert any(not np.allclose(b, keras.ops.convert_to_numpy(a)) for b, a in zip(before, after))
    statement = model.privacy_statement(delta=DELTA)
    assert statement.details["features"] == "both"
    assert statement.details["feature_options"] == {"pixel_weight": 0.5, "orientations": 2}
    assert "scattering transform" in str(model.privacy_ledger.to_dict())
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.feature_map == "both" and loaded.feature_options == model.feature_options
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.features(x)),
                               keras.ops.convert_to_numpy(model.features(x)), rtol=1e-6)


def test_bad_feature_settings_are_refused():
    with pytest.raises(ValueError, match="features must be one of"):
        make("wavelets")
    with pytest.raises(ValueError, match="pixel_weight must be in"):
        make("both", feature_options={"pixel_weight": 1.0})
    with pytest.raises(ValueError, match="takes no options"):
        make("pixels", feature_options={"orientations": 2})
    with pytest.raises(ValueError, match="grey-scale square images"):
        build_feature_map("scattering", num_features=8, sample_shape=(6,), length_scales=(1.0,))
