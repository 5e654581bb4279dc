"""Sample grids: one row per class, atomic PNG, clear errors."""

import matplotlib.image
import numpy as np
import pytest

from privgan.evaluation import save_sample_grid


def test_grid_has_one_row_per_class(tmp_path):
    images = np.random.default_rng(0).uniform(size=(30, 8, 8, 1))
    labels = np.arange(30) % 3
    few = save_sample_grid(images, tmp_path / "three.png", labels=labels, num_classes=3, per_row=5)
    many = save_sample_grid(images, tmp_path / "six.png", labels=labels, num_classes=6, per_row=5)
    height_three = matplotlib.image.imread(few).shape[0]
    height_six = matplotlib.image.imread(many).shape[0]
    assert height_six > 1.6 * height_three
    assert sorted(p.name for p in tmp_path.iterdir()) == ["six.png", "three.png"]


def test_bad_inputs_are_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"images must be a non-empty \(N, H, W, 1 or 3\) array"):
        save_sample_grid(np.zeros((4, 8, 8)), tmp_path / "g.png")
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        save_sample_grid(np.zeros((4, 8, 8, 1)), tmp_path / "g.png", labels=[0, 1])
    assert list(tmp_path.iterdir()) == []
