import numpy as np

from privgan.data import load_mnist, load_mnist_unit_range


def test_unit_range_images_are_the_bytes_over_255(shared_datasets):
    data_dir = shared_datasets / "mnist"
    (raw_x, raw_y), (raw_test_x, _) = load_mnist(data_dir)
    (x, y), (test_x, _) = load_mnist_unit_range(data_dir)
    assert x.shape == (60000, 28, 28, 1) and test_x.shape == (10000, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0] * 255.0, raw_x.astype(np.float32))
    np.testing.assert_array_equal(y, raw_y)
    (flat, _), _ = load_mnist_unit_range(data_dir, flatten=True)
    assert flat.shape == (60000, 784)
    np.testing.assert_array_equal(flat[3], x[3].ravel())
