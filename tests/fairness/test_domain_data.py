import numpy as np
import pytest

from fairness.domain_data import load_mnist_m, load_rotated_moons, make_mnist_m, mnist_as_rgb


def _digits(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def test_mnist_m_is_deterministic_given_the_seed_and_32x32_rgb_uint8():
    digits = _digits(20)
    first = make_mnist_m(digits, seed=3)
    assert first.shape == (20, 32, 32, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, make_mnist_m(digits, seed=3))
    assert not np.array_equal(first, make_mnist_m(digits, seed=4))
    # The sklearn photos give varied colour patches, not a constant background.
    assert first.std() > 20 and first.max() > 200


def test_mnist_m_blends_as_absolute_difference_of_patch_and_digit():
    digits = _digits(5)
    colour = np.array([200, 30, 120], dtype=np.uint8)
    flat_texture = np.broadcast_to(colour, (40, 50, 3)).copy()
    blended = make_mnist_m(digits, seed=0, textures=[flat_texture])
    expected = np.abs(colour.astype(int) - mnist_as_rgb(digits).astype(int))
    np.testing.assert_array_equal(blended, expected)
    # The 2-pixel zero padding around each digit shows the bare patch.
    np.testing.assert_array_equal(blended[:, 0, 0], np.broadcast_to(colour, (5, 3)))


def test_mnist_as_rgb_pads_and_repeats_channels():
    digits = _digits(2)
    rgb = mnist_as_rgb(digits)
    assert rgb.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(rgb[:, 2:30, 2:30, 1], digits)
    assert rgb[:, :2].max() == 0 and rgb[:, :, 30:].max() == 0


@pytest.mark.parametrize(
    "digits, match",
    [(np.zeros((3, 32, 32), np.uint8), r"\(N, 28, 28\)"), (np.zeros((3, 28, 28), np.float32), "uint8")],
)
def test_mnist_m_refuses_bad_digits(digits, match):
    with pytest.raises(ValueError, match=match):
        make_mnist_m(digits, seed=0)


def test_mnist_m_refuses_too_small_texture():
    with pytest.raises(ValueError, match="textures"):
        make_mnist_m(_digits(1), seed=0, textures=[np.zeros((20, 40, 3), np.uint8)])


def test_load_mnist_m_reads_the_released_layout(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    expected = {}
    for split, n in (("train", 3), ("test", 2)):
        (tmp_path / f"mnist_m_{split}").mkdir()
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        lines = []
        for i, image in enumerate(images):
            Image.fromarray(image).save(tmp_path / f"mnist_m_{split}" / f"{i:08d}.png")
            lines.append(f"{i:08d}.png {i + 5}")
        (tmp_path / f"mnist_m_{split}_labels.txt").write_text("\n".join(lines) + "\n")
        expected[split] = images
    (x_train, y_train), (x_test, y_test) = load_mnist_m(tmp_path)
    np.testing.assert_array_equal(x_train, expected["train"])
    np.testing.assert_array_equal(x_test, expected["test"])
    np.testing.assert_array_equal(y_train, [5, 6, 7])
    np.testing.assert_array_equal(y_test, [5, 6])


def test_load_mnist_m_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist_m_train_labels.txt"):
        load_mnist_m(tmp_path)


def test_rotated_moons_target_is_the_source_shape_rotated_by_the_angle():
    (source_x, source_y), (target_x, target_y) = load_rotated_moons(
        samples_per_moon=50, rotation_degrees=35.0, noise=0.0, seed=0
    )
    assert source_x.shape == target_x.shape == (100, 2)
    assert np.bincount(source_y).tolist() == np.bincount(target_y).tolist() == [50, 50]
    angle = np.deg2rad(-35.0)
    back = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([0.5, 0.25])
    unrotated = (target_x - centre) @ back.T + centre
    # Noise-free moons: the upper one is the unit circle about (0, 0), the lower one about (1, 0.5).
    upper, lower = unrotated[target_y == 0], unrotated[target_y == 1] - [1.0, 0.5]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.hypot(*lower.T), 1.0, atol=1e-5)
    # Before rotating back the target does not lie on the moons.
    assert np.abs(np.hypot(*target_x[target_y == 0].T) - 1.0).max() > 0.2


def test_rotated_moons_refuses_negative_noise():
    with pytest.raises(ValueError, match="noise must be >= 0"):
        load_rotated_moons(noise=-0.1)
