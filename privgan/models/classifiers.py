"""Image classifiers: the DP-SGD MNIST CNN, the standard CNN used for evaluation (TSTR, FID features) and
the small CNN of adversarial training on MNIST."""

import keras


def dpsgd_cnn(*, input_shape=(28, 28, 1), num_classes=10, activation="tanh"):
    """The small CNN of the DP-SGD MNIST tutorials (Abadi et al. 2016; tensorflow-privacy's tutorial).

    Conv(16, 8x8, stride 2) - MaxPool(2, stride 1) - Conv(32, 4x4, stride 2) - MaxPool(2, stride 1) -
    Dense(32) - Dense(num_classes) logits (same padding in the second conv for images under 10x10). No
    normalisation layers, so it can be trained privately.
    Bounded activations (tanh) keep gradient norms from exploding under clipping (Papernot et al. 2021).

    Args:
        input_shape: image shape (H, W, C).
        num_classes: number of output logits, >= 2.
        activation: hidden activation.

    Returns:
        An unbuilt-input Keras `Sequential` model producing logits.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    # After the first conv (stride 2, same) and pooling the side is ceil(H / 2) - 1; the tutorial's valid
    # 4x4 conv needs at least 4 of it, so small images (8x8 digits) use same padding there.
    second_padding = "valid" if -(-min(input_shape[:2]) // 2) - 1 >= 4 else "same"
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(16, 8, strides=2, padding="same", activation=activation),
            keras.layers.MaxPooling2D(2, strides=1),
            keras.layers.Conv2D(32, 4, strides=2, padding=second_padding, activation=activation),
            keras.layers.MaxPooling2D(2, strides=1),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation=activation),
            keras.layers.Dense(num_classes),
        ],
        name="dpsgd_cnn",
    )


def robust_mnist_cnn(*, input_shape=(28, 28, 1), num_classes=10, width=1):
    """The small CNN of Wong, Rice & Kolter's MNIST experiments ("fast is better than free", 2020).

    Conv(16w, 4x4, stride 2) - Conv(32w, 4x4, stride 2) - Dense(100w) - Dense(num_classes) logits, ReLU,
    same padding, no normalisation (so it can also be trained privately). Small enough for adversarial
    training on a CPU; `width` scales every hidden layer for more capacity, which robust training at
    large radii needs (Madry et al. 2018).

    Args:
        input_shape: image shape (H, W, C).
        num_classes: number of output logits, >= 2.
        width: multiplier of the hidden widths, >= 1.

    Returns:
        A Keras `Sequential` model producing logits.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if int(width) != width or width < 1:
        raise ValueError(f"width must be an integer >= 1, got {width}")
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(16 * width, 4, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(32 * width, 4, strides=2, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(100 * width, activation="relu"),
            keras.layers.Dense(num_classes),
        ],
        name="robust_mnist_cnn",
    )
