"""A validation split carved from the training data, for choosing settings without touching the test split."""

import numpy as np


def carve_validation_split(x, y, *, validation_fraction=0.1, seed=0, stratify=False):
    """Splits training data into (train, validation) at random, optionally stratified by label.

    Model selection reads the validation part (its real images score candidate settings) and never the
    test split, so the test numbers stay an honest estimate. The validation examples are real training
    examples read outside any DP guarantee: a user tuning on private data must account for that.

    Args:
        x: training examples.
        y: their labels (same length), or None.
        validation_fraction: share held out, in (0, 1).
        seed: seed of the split.
        stratify: keep each label's share the same in both parts (needs `y`).

    Returns:
        `((x_train, y_train), (x_validation, y_validation))`.

    Raises:
        ValueError: if `validation_fraction` is not in (0, 1), the lengths differ, or `stratify` lacks `y`.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    held_out = max(1, round(validation_fraction * len(x)))
    if stratify:
        if y is None:
            raise ValueError("stratify=True needs the labels y")
        from sklearn.model_selection import train_test_split

        train, validation = train_test_split(np.arange(len(x)), test_size=held_out, stratify=y, random_state=seed)
    else:
        order = np.random.default_rng(seed).permutation(len(x))
        validation, train = order[:held_out], order[held_out:]

    def take(indices):
        return x[indices], None if y is None else y[indices]

    return take(train), take(validation)
