"""Few-label classification: the balanced label draw and the baselines a semi-supervised GAN is compared with.

- `balanced_label_draw`: k labelled examples per class, fixed by a seed (the "100 labels" of MNIST).
- `train_supervised_cnn`: `evaluation_cnn` on the labelled examples alone, optionally with augmentation
  (random shifts and rotations, applied in training only).
- `train_pseudo_label_cnn`: self-training (Lee 2013, "Pseudo-label"): train on the labelled examples,
  label the unlabelled ones the model is confident about, retrain on both, repeat.

None of them is private: they are the non-private reference points.
"""

import keras
import numpy as np

from privgan.evaluation.classifier import evaluation_cnn


def balanced_label_draw(labels, *, per_class, seed):
    """Indices of `per_class` examples of every class, drawn without replacement.

    Args:
        labels: integer labels of the pool to draw from.
        per_class: examples per class, >= 1.
        seed: seed of the draw.

    Returns:
        A sorted int64 array of `per_class * number of classes` indices into `labels`.

    Raises:
        ValueError: if `per_class` < 1 or a class has fewer than `per_class` examples.
    """
    labels = np.asarray(labels)
    if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"per_class must be an integer >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise ValueError(f"class {label} has {len(members)} examples, fewer than per_class={per_class}")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def _augmenter(seed):
    # Shifts of up to 2 pixels and rotations of up to 10 degrees, as usual for MNIST.
    return keras.Sequential([
        keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed),
        keras.layers.RandomRotation(10 / 360, fill_mode="constant", seed=seed + 1),
    ], name="augmentation")


def _classifier(input_shape, num_classes, augment, seed):
    model = evaluation_cnn(input_shape=input_shape, num_classes=num_classes)
    if not augment:
        return model
    inputs = keras.Input(tuple(input_shape))
    return keras.Model(inputs, model(_augmenter(seed)(inputs)), name="augmented_cnn")


def _fit(model, x, y, *, epochs, batch_size, learning_rate):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return model


def _check(x, y, num_classes):
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if len(x) == 0 or y.shape != (len(x),):
        raise ValueError(f"x must be non-empty and y must have shape ({len(x)},), got x {x.shape}, y {y.shape}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must be in [0, num_classes={num_classes}), got [{y.min()}, {y.max()}]")
    return x, y


def train_supervised_cnn(x, y, *, num_classes, augment=False, steps=1000, batch_size=32, learning_rate=1e-3, seed=0):
    """Trains `evaluation_cnn` (with augmentation, optionally) on a small labelled set.

    Args:
        x: images (N, H, W, C).
        y: integer labels in [0, num_classes).
        num_classes: number of classes, >= 2.
        augment: random shifts (up to 8% of the side) and rotations (up to 10 degrees) in training.
        steps: optimiser steps (epochs = steps * batch_size / N, at least 1).
        batch_size: batch size.
        learning_rate: Adam's learning rate.
        seed: seed of initialisation, shuffling and augmentation.

    Returns:
        The trained Keras model (logits; augmentation is inactive in `predict`).

    Raises:
        ValueError: if `x` is empty, `y` does not match it, or a label is out of range.
    """
    x, y = _check(x, y, num_classes)
    keras.utils.set_random_seed(seed)
    epochs = max(1, round(steps * batch_size / len(x)))
    return _fit(_classifier(x.shape[1:], num_classes, augment, seed), x, y, epochs=epochs,
                batch_size=batch_size, learning_rate=learning_rate)


def train_pseudo_label_cnn(
    x_labelled, y_labelled, x_unlabelled, *, num_classes, rounds=2, threshold=0.95, labelled_steps=1000,
    epochs_per_round=2, batch_size=128, learning_rate=1e-3, seed=0,
):
    """Self-training with pseudo-labels: a supervised CNN labels the unlabelled images it is sure about.

    Round 0 trains an augmented CNN on the labelled examples alone. Each further round predicts the
    unlabelled images, keeps those whose top softmax probability is >= `threshold` with their predicted
    class as label, and trains a fresh augmented CNN on the labelled examples (repeated to a tenth of
    the pseudo-labelled set, so they keep their weight) plus the pseudo-labelled ones.

    Args:
        x_labelled, y_labelled: the labelled images and their integer labels.
        x_unlabelled: the unlabelled images.
        num_classes: number of classes, >= 2.
        rounds: pseudo-labelling rounds after round 0, >= 1.
        threshold: the confidence a pseudo-label needs, in (0, 1).
        labelled_steps: optimiser steps of round 0.
        epochs_per_round: epochs of each later round over its training set.
        batch_size: batch size of the later rounds (round 0 uses 32).
        learning_rate: Adam's learning rate.
        seed: seed of initialisation, shuffling and augmentation.

    Returns:
        `(model, pseudo_labelled_counts)`: the last round's model and how many unlabelled images each
        round pseudo-labelled.

    Raises:
        ValueError: for mismatched inputs or an out-of-range argument.
    """
    x_labelled, y_labelled = _check(x_labelled, y_labelled, num_classes)
    if int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    x_unlabelled = np.asarray(x_unlabelled, dtype=np.float32)
    model = train_supervised_cnn(x_labelled, y_labelled, num_classes=num_classes, augment=True,
                                 steps=labelled_steps, learning_rate=learning_rate, seed=seed)
    counts = []
    for round_index in range(1, int(rounds) + 1):
        probabilities = keras.ops.convert_to_numpy(
            keras.ops.softmax(model.predict(x_unlabelled, batch_size=512, verbose=0)))
        confident = probabilities.max(axis=1) >= threshold
        counts.append(int(confident.sum()))
        repeats = max(1, int(confident.sum()) // (10 * len(x_labelled)))
        x = np.concatenate([np.repeat(x_labelled, repeats, axis=0), x_unlabelled[confident]])
        y = np.concatenate([np.repeat(y_labelled, repeats), probabilities[confident].argmax(axis=1)])
        keras.utils.set_random_seed(seed + round_index)
        model = _fit(_classifier(x.shape[1:], num_classes, True, seed + round_index), x, y,
                     epochs=epochs_per_round, batch_size=batch_size, learning_rate=learning_rate)
    return model, counts
