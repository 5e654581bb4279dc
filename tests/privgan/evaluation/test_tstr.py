"""TSTR: informative synthetic labels give high real-test accuracy, shuffled labels give chance."""

import numpy as np
import pytest

from privgan.data import load_digits
from privgan.evaluation import train_synthetic_test_real


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_tstr_separates_useful_from_useless_synthetic_data(digits):
    (x_train, y_train), (x_test, y_test) = digits
    # The real training split stands in for "good" synthetic data; shuffled labels for useless data.
    good = train_synthetic_test_real(x_train, y_train, x_test, y_test, num_classes=10, epochs=5, batch_size=32)
    shuffled = np.random.default_rng(0).permutation(y_train)
    bad = train_synthetic_test_real(x_train, shuffled, x_test, y_test, num_classes=10, epochs=5, batch_size=32)
    assert good.accuracy > 0.85
    assert bad.accuracy < 0.3
    assert good.num_synthetic == len(x_train) and good.num_test == len(x_test)
    assert "TSTR accuracy" in good.summary()


def test_bad_labels_are_refused(digits):
    (x_train, y_train), (x_test, y_test) = digits
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes=10\)"):
        train_synthetic_test_real(x_train, y_train + 10, x_test, y_test, num_classes=10, epochs=1)
