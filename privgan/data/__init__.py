"""Dataset loaders: real data from a folder or its canonical source, embedded data for defaults and tests."""

from privgan.data.digits import load_digits
from privgan.data.mnist import load_mnist, load_mnist_unit_range, load_mnist_with_validation

__all__ = ["load_digits", "load_mnist", "load_mnist_unit_range", "load_mnist_with_validation"]
