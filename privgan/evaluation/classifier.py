"""The standard (non-private) CNN behind TSTR and the classifier-feature FID."""

import keras
import numpy as np

FEATURES_LAYER = "features"


def evaluation_cnn(*, input_shape, num_classes, width=16):
    """A small standard CNN: two 3x3 conv blocks (ReLU, max-pooling), a 128-unit feature layer, logits.

    Args:
        input_shape: image shape (H, W, C).
        num_classes: number of classes, >= 2.
        width: filters of the first convolution (the second has twice as many), >= 1.

    Returns:
        A Keras model producing logits; its penultimate layer is named "features".

    Raises:
        ValueError: if `num_classes` < 2 or `width` < 1.
    """
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes}")
    if int(width) != width or width < 1:
        raise ValueError(f"width must be an integer >= 1, got {width}")
    inputs = keras.Input(tuple(input_shape))
    h = inputs
    for filters in (width, 2 * width):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        # Small images (8x8 digits) are pooled once only, so that two blocks still leave a 4x4 map.
        if h.shape[1] >= 8 and (filters == width or h.shape[1] >= 14):
            h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(128, activation="relu", name=FEATURES_LAYER)(h)
    h = keras.layers.Dropout(0.3)(h)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(h), name="evaluation_cnn")


def train_classifier(x, y, *, num_classes, epochs=5, batch_size=128, learning_rate=1e-3, seed=0):
    """Trains `evaluation_cnn` on `(x, y)` with Adam (no DP).

    Args:
        x: images (N, H, W, C).
        y: integer labels in [0, num_classes).
        num_classes: number of classes, >= 2.
        epochs: epochs, >= 1.
        batch_size: batch size, >= 1.
        learning_rate: Adam's learning rate.
        seed: seed of the initialisation and shuffling.

    Returns:
        The trained Keras model (logits).

    Raises:
        ValueError: if `x` is empty, `y` does not match it, or a label is out of range.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if len(x) == 0 or y.shape != (len(x),):
        raise ValueError(f"x must be non-empty and y must have shape ({len(x)},), got x {x.shape}, y {y.shape}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must be in [0, num_classes={num_classes}), got [{y.min()}, {y.max()}]")
    keras.utils.set_random_seed(seed)
    model = evaluation_cnn(input_shape=x.shape[1:], num_classes=num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def classifier_features(model):
    """The model from a classifier's input to its "features" (penultimate) layer."""
    return keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)
