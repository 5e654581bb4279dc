"""Precision, recall, density and coverage on point sets small enough to check by hand; diversity."""

import numpy as np
import pytest

from privgan.evaluation import precision_recall_density_coverage, within_class_pixel_std


def column(*values):
    return np.asarray(values, dtype=float)[:, None]


def test_hand_checked_one_dimensional_example():
    # Real 0, 1, 3, 7 have 1-NN radii 1, 1, 2, 4; synthetic 0.5, 10, 20, 21 have 9.5, 9.5, 1, 1.
    result = precision_recall_density_coverage(column(0, 1, 3, 7), column(0.5, 10, 20, 21), nearest_k=1)
    assert result.precision == 0.5  # 0.5 is in the balls of 0 and 1, 10 in the ball of 7; 20 and 21 in none
    assert result.density == 0.75  # (2 + 1 + 0 + 0) balls / (k = 1 * 4 samples)
    assert result.coverage == 0.75  # the balls of 0, 1 and 7 hold a synthetic sample; that of 3 (radius 2) not
    assert result.recall == 1.0  # the ball of 0.5 (radius 9.5) holds every real point: recall trusts outliers
    assert (result.num_real, result.num_synthetic, result.nearest_k) == (4, 4, 1)


def test_collapse_keeps_precision_but_loses_recall_and_coverage():
    real = np.random.default_rng(0).normal(size=(400, 3))
    collapsed = np.repeat(real[:1], 400, axis=0)  # every sample is the same realistic point
    result = precision_recall_density_coverage(real, collapsed, nearest_k=5)
    assert result.precision == 1.0
    assert result.recall == pytest.approx(1 / 400)  # only the copied point lies in the (zero-radius) balls
    assert result.coverage <= 6 / 400  # the copied point's ball and the few balls reaching it
    matched = precision_recall_density_coverage(real, np.random.default_rng(1).normal(size=(400, 3)), nearest_k=5)
    assert min(matched.precision, matched.recall, matched.coverage) > 0.8
    assert 0.7 < matched.density < 1.3
    assert "recall" in result.summary()


def test_subsampling_and_bad_arguments():
    real, synthetic = np.zeros((50, 2)), np.ones((60, 2))
    assert precision_recall_density_coverage(real, synthetic, nearest_k=3, max_samples=20).num_real == 20
    with pytest.raises(ValueError, match="equal widths"):
        precision_recall_density_coverage(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="nearest_k"):
        precision_recall_density_coverage(np.zeros((5, 2)), np.zeros((5, 2)), nearest_k=5)


def test_within_class_pixel_std():
    images = np.stack([np.zeros((2, 2)), np.ones((2, 2)), np.full((2, 2), 0.5), np.full((2, 2), 0.5)])
    result = within_class_pixel_std(images, np.array([0, 0, 1, 1]), num_classes=3)
    assert result["per_class"] == [0.5, 0.0, None]  # class 2 has no images
    assert result["mean"] == 0.25
    with pytest.raises(ValueError, match="labels must be in"):
        within_class_pixel_std(images, np.array([0, 0, 1, 3]), num_classes=3)
