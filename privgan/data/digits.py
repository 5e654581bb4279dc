"""scikit-learn's bundled 8x8 handwritten digits: the embedded default that needs no download."""

import numpy as np
from sklearn import datasets


def load_digits(*, test_fraction=0.2, seed=0):
    """Loads the 1,797 8x8 digits as images in [0, 1] with a stratified train/test split.

    Args:
        test_fraction: share of examples held out for testing, in (0, 1).
        seed: seed of the split.

    Returns:
        `((x_train, y_train), (x_test, y_test))` with images of shape (N, 8, 8, 1), float32, and
        int64 labels.

    Raises:
        ValueError: if `test_fraction` is not in (0, 1).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.model_selection import train_test_split

    bunch = datasets.load_digits()
    # Pixel values are counts in 0..16 by construction of the dataset (public knowledge, not data-derived).
    images = (bunch.images / 16.0).astype(np.float32)[..., None]
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return (x_train, y_train), (x_test, y_test)
