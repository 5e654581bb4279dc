"""Domain-shift data of Ganin et al. (JMLR 2016): rotated two moons, and MNIST-M built or loaded.

MNIST-M images here are 32 x 32 x 3 uint8, the format of the released MNIST-M, so a built set and a
user's real MNIST-M folder are interchangeable; MNIST digits are zero-padded from 28 x 28 to 32 x 32.
"""

import pathlib

import numpy as np
from sklearn.datasets import load_sample_images, make_moons

MNIST_M_SIZE = 32
_DIGIT_PAD = (MNIST_M_SIZE - 28) // 2
_MOONS_CENTRE = np.array([0.5, 0.25])  # middle of sklearn's two moons, the rotation's pivot


def load_rotated_moons(*, samples_per_moon=150, rotation_degrees=35.0, noise=0.1, seed=0):
    """Two moons (source, labelled) and a fresh sample of them rotated about their centre (target).

    The paper's section 5.1 toy problem: the target labels are returned for evaluation only.

    Args:
        samples_per_moon: points drawn from each moon in each domain, >= 1 (the paper uses 150).
        rotation_degrees: anticlockwise rotation of the target domain (the paper uses 35).
        noise: standard deviation of the Gaussian noise added to the points, >= 0.
        seed: seed of both draws.

    Returns:
        `((source_x, source_y), (target_x, target_y))`, float32 (2 * samples_per_moon, 2) points and
        int64 labels (0 = upper moon, 1 = lower moon).

    Raises:
        ValueError: if `samples_per_moon` < 1 or `noise` < 0.
    """
    if samples_per_moon < 1:
        raise ValueError(f"samples_per_moon must be >= 1, got {samples_per_moon}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    source_seed, target_seed = rng.integers(2**31, size=2)
    n = 2 * samples_per_moon
    source_x, source_y = make_moons(n_samples=n, noise=noise, random_state=int(source_seed))
    target_x, target_y = make_moons(n_samples=n, noise=noise, random_state=int(target_seed))
    angle = np.deg2rad(rotation_degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target_x = (target_x - _MOONS_CENTRE) @ rotation.T + _MOONS_CENTRE
    return (
        (source_x.astype(np.float32), source_y.astype(np.int64)),
        (target_x.astype(np.float32), target_y.astype(np.int64)),
    )


def mnist_as_rgb(digits):
    """MNIST digits in MNIST-M's format: zero-padded to 32 x 32 and repeated over three channels.

    Args:
        digits: uint8 array (N, 28, 28).

    Returns:
        uint8 array (N, 32, 32, 3).

    Raises:
        ValueError: if `digits` is not a uint8 (N, 28, 28) array.
    """
    digits = _check_digits(digits)
    padded = np.pad(digits, ((0, 0), (_DIGIT_PAD, _DIGIT_PAD), (_DIGIT_PAD, _DIGIT_PAD)))
    return np.repeat(padded[..., None], 3, axis=-1)


def make_mnist_m(digits, *, seed, textures=None):
    """MNIST-M by the paper's recipe: each digit blended with a random colour patch as |patch - digit|.

    BSDS500, the paper's source of patches, is not bundled anywhere offline; by default the patches are
    random 32 x 32 crops of the colour photos that ship with scikit-learn (`load_sample_images`).

    Args:
        digits: uint8 MNIST digits (N, 28, 28).
        seed: seed of the choice of photo and crop position; the same seed gives the same images.
        textures: optional list of uint8 colour photos (H, W, 3), each at least 32 x 32.

    Returns:
        uint8 array (N, 32, 32, 3).

    Raises:
        ValueError: if `digits` is not a uint8 (N, 28, 28) array or a texture is not an (H >= 32, W >= 32, 3) image.
    """
    rgb_digits = mnist_as_rgb(digits).astype(np.int16)
    textures = load_sample_images().images if textures is None else textures
    if not textures:
        raise ValueError("textures must hold at least one image")
    for texture in textures:
        if texture.ndim != 3 or texture.shape[2] != 3 or min(texture.shape[:2]) < MNIST_M_SIZE:
            raise ValueError(
                f"textures must be (H >= {MNIST_M_SIZE}, W >= {MNIST_M_SIZE}, 3) images, got {texture.shape}"
            )
    rng = np.random.default_rng(seed)
    which = rng.integers(len(textures), size=len(rgb_digits))
    blended = np.empty(rgb_digits.shape, dtype=np.uint8)
    for i, (digit, texture_index) in enumerate(zip(rgb_digits, which)):
        texture = textures[texture_index]
        top = rng.integers(texture.shape[0] - MNIST_M_SIZE + 1)
        left = rng.integers(texture.shape[1] - MNIST_M_SIZE + 1)
        patch = texture[top : top + MNIST_M_SIZE, left : left + MNIST_M_SIZE].astype(np.int16)
        blended[i] = np.abs(patch - digit)
    return blended


def load_mnist_m(data_dir):
    """Loads a real MNIST-M folder as released by the authors.

    Expected layout: `mnist_m_train/`, `mnist_m_test/` (PNG images) and `mnist_m_train_labels.txt`,
    `mnist_m_test_labels.txt` (lines `00000000.png 5`).

    Args:
        data_dir: the `mnist_m` folder.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 (N, 32, 32, 3) images, int64 labels.

    Raises:
        FileNotFoundError: if a label file or an image it names is missing.
        ValueError: if an image is not 32 x 32 RGB or a label line is malformed.
    """
    data_dir = pathlib.Path(data_dir)
    return tuple(_load_mnist_m_split(data_dir, split) for split in ("train", "test"))


def _load_mnist_m_split(data_dir, split):
    from PIL import Image  # Pillow comes with matplotlib; only this loader needs it

    labels_file = data_dir / f"mnist_m_{split}_labels.txt"
    if not labels_file.is_file():
        raise FileNotFoundError(f"{labels_file} not found")
    images, labels = [], []
    for line_number, line in enumerate(labels_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{labels_file}:{line_number}: expected 'NAME.png LABEL', got {line!r}")
        with Image.open(data_dir / f"mnist_m_{split}" / parts[0]) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        if pixels.shape != (MNIST_M_SIZE, MNIST_M_SIZE, 3):
            raise ValueError(f"{parts[0]} is {pixels.shape}, expected ({MNIST_M_SIZE}, {MNIST_M_SIZE}, 3)")
        images.append(pixels)
        labels.append(int(parts[1]))
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _check_digits(digits):
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.shape[1:] != (28, 28):
        raise ValueError(f"digits must be an (N, 28, 28) array, got shape {digits.shape}")
    if digits.dtype != np.uint8:
        raise ValueError(f"digits must be uint8 in [0, 255], got dtype {digits.dtype}")
    return digits
