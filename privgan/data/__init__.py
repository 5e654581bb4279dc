"""Dataset loaders: real data from a folder or its canonical source, embedded data for defaults and tests."""

from privgan.data.digits import load_digits
from privgan.data.mnist import load_mnist, load_mnist_unit_range, load_mnist_with_validation
from privgan.data.splits import carve_validation_split

__all__ = [
    "carve_validation_split",
    "load_digits",
    "load_mnist",
    "load_mnist_unit_range",
    "load_mnist_with_validation",
]
