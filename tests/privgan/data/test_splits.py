import numpy as np
import pytest

from privgan.data import carve_validation_split


@pytest.mark.parametrize("stratify", [False, True])
def test_validation_is_carved_from_the_training_rows_without_overlap(stratify):
    x = np.arange(1000).reshape(-1, 1)
    y = np.repeat([0, 1, 2, 3], [100, 200, 300, 400])
    (x_train, y_train), (x_val, y_val) = carve_validation_split(x, y, validation_fraction=0.2, seed=3,
                                                                stratify=stratify)
    assert len(x_val) == 200 and len(x_train) == 800
    assert sorted(np.concatenate([x_train, x_val]).ravel()) == list(range(1000))
    np.testing.assert_array_equal(y[x_val.ravel()], y_val)
    if stratify:
        np.testing.assert_array_equal(np.bincount(y_val), [20, 40, 60, 80])
    again = carve_validation_split(x, y, validation_fraction=0.2, seed=3, stratify=stratify)
    np.testing.assert_array_equal(again[1][0], x_val)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\)"):
        carve_validation_split(np.zeros(5), None, validation_fraction=1.0)
    with pytest.raises(ValueError, match="stratify=True needs the labels"):
        carve_validation_split(np.zeros(5), None, stratify=True)
