"""Frechet distance: closed forms for Gaussians, and the classifier-feature wrapper."""

import numpy as np
import pytest

from privgan.evaluation import classifier_fid, evaluation_cnn, frechet_distance


def test_identical_features_have_distance_zero():
    features = np.random.default_rng(0).normal(size=(500, 4))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200_000, 3)) * [1.0, 2.0, 0.5]
    b = rng.normal(size=(200_000, 3)) * [2.0, 2.0, 1.0] + [1.0, 0.0, -2.0]
    # ||mu_a - mu_b||^2 + sum (s_a - s_b)^2 for diagonal covariances with standard deviations s.
    expected = (1 + 0 + 4) + (1 + 0 + 0.25)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)
    assert frechet_distance(a, b + [3.0, 0, 0]) > frechet_distance(a, b)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="features must be 2-D"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


def test_classifier_fid_uses_the_penultimate_features():
    classifier = evaluation_cnn(input_shape=(8, 8, 1), num_classes=3)
    rng = np.random.default_rng(2)
    real = rng.uniform(size=(40, 8, 8, 1)).astype("float32")
    result = classifier_fid(real, real, classifier=classifier)
    assert result.fid == pytest.approx(0.0, abs=1e-6)
    assert result.feature_dim == 128 and result.num_real == 40
    assert classifier_fid(real, np.zeros_like(real), classifier=classifier).fid > 0
    assert "not Inception FID" in result.summary()
