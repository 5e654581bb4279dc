"""Within-class diversity of labelled images: a direct reading of mode collapse.

A conditional generator that emits one image per class has a within-class pixel standard deviation near 0
while real digits have about 0.16 (MNIST in [0, 1]). Reads only the images it is given.
"""

import numpy as np


def within_class_pixel_std(images, labels, *, num_classes):
    """The per-pixel standard deviation across the images of each class, averaged over pixels.

    Args:
        images: (N, ...) images (any shape per image).
        labels: (N,) integer labels in [0, num_classes).
        num_classes: number of classes, >= 1.

    Returns:
        A dict with "mean" (the average over the classes that have at least two images) and
        "per_class" (a list of num_classes floats, None for a class with fewer than two images).

    Raises:
        ValueError: if the shapes do not match or a label is out of range.
    """
    images = np.asarray(images, dtype=np.float64)
    labels = np.asarray(labels)
    if images.ndim < 2 or labels.shape != (len(images),):
        raise ValueError(f"images must be (N, ...) and labels (N,), got {images.shape} and {labels.shape}")
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, num_classes={num_classes}), got [{labels.min()}, {labels.max()}]")
    flat = images.reshape(len(images), -1)
    per_class = []
    for c in range(num_classes):
        members = flat[labels == c]
        per_class.append(float(members.std(axis=0).mean()) if len(members) >= 2 else None)
    present = [value for value in per_class if value is not None]
    return {"mean": float(np.mean(present)) if present else None, "per_class": per_class}
