"""MNIST from the original IDX files (gzip-compressed or not), or Keras's canonical download."""

import gzip
import pathlib

import numpy as np

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MAGIC = {1: 2049, 3: 2051}  # IDX magic numbers of unsigned-byte vectors (labels) and 3-D arrays (images).


def read_idx(path):
    """Reads one IDX file of unsigned bytes (`.gz` or raw).

    Args:
        path: the file.

    Returns:
        A uint8 array with the shape stored in the file.

    Raises:
        ValueError: if the header is not that of an unsigned-byte IDX file.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    ndim = raw[3]
    if raw[2] != 0x08 or _MAGIC.get(ndim) != magic:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic number {magic:#010x})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def _find(data_dir, stem):
    for name in (stem + ".gz", stem):
        candidate = data_dir / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"neither {stem}.gz nor {stem} found in {data_dir}")


def load_mnist(data_dir=None):
    """Loads MNIST as uint8 images (N, 28, 28) and int64 labels.

    Args:
        data_dir: a folder with the four IDX files (`train-images-idx3-ubyte[.gz]`, ...), e.g.
            `../shared/datasets/mnist`. When None, Keras downloads MNIST from its canonical source
            (cached in ~/.keras/datasets).

    Returns:
        `((x_train, y_train), (x_test, y_test))`.

    Raises:
        FileNotFoundError: if `data_dir` lacks one of the files.
    """
    if data_dir is None:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64))
    data_dir = pathlib.Path(data_dir)
    arrays = {key: read_idx(_find(data_dir, stem)) for key, stem in _FILES.items()}
    return (
        (arrays["train_images"], arrays["train_labels"].astype(np.int64)),
        (arrays["test_images"], arrays["test_labels"].astype(np.int64)),
    )


def load_mnist_unit_range(data_dir=None, *, flatten=False):
    """MNIST as float32 images in [0, 1], the range the generators and classifiers here expect.

    Dividing by 255 uses the range of the byte format, not a statistic of the (private) images.

    Args:
        data_dir: see `load_mnist`.
        flatten: give each image as a vector of 784 values instead of a (28, 28, 1) array.

    Returns:
        `((x_train, y_train), (x_test, y_test))` with images of shape (N, 28, 28, 1) or (N, 784).

    Raises:
        FileNotFoundError: if `data_dir` lacks one of the files.
    """
    (x_train, y_train), (x_test, y_test) = load_mnist(data_dir)
    shape = (-1, 28 * 28) if flatten else (-1, 28, 28, 1)

    def scale(images):
        return (images.astype(np.float32) / 255.0).reshape(shape)

    return (scale(x_train), y_train), (scale(x_test), y_test)


def load_mnist_with_validation(data_dir=None, *, validation_size=5000, seed=0):
    """MNIST in [0, 1] with a stratified validation split carved from the training split.

    Settings chosen on the validation split leave the test split untouched for the final numbers.

    Args:
        data_dir: see `load_mnist`.
        validation_size: examples moved from the training split to the validation split, in [1, 59999].
        seed: seed of the split.

    Returns:
        `((x_train, y_train), (x_validation, y_validation), (x_test, y_test))`, images (N, 28, 28, 1).

    Raises:
        ValueError: if `validation_size` is out of range.
        FileNotFoundError: if `data_dir` lacks one of the files.
    """
    from privgan.data.splits import carve_validation_split

    if int(validation_size) != validation_size or not 1 <= validation_size < 60000:
        raise ValueError(f"validation_size must be an integer in [1, 59999], got {validation_size!r}")
    (x_all, y_all), test = load_mnist_unit_range(data_dir)
    train, validation = carve_validation_split(
        x_all, y_all, validation_fraction=validation_size / len(x_all), seed=seed, stratify=True
    )
    return train, validation, test
