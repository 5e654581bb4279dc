"""A PNG grid of samples, one row per class (reads synthetic samples only)."""

import numpy as np

from privgan.io import save_figure


def save_sample_grid(images, path, *, labels=None, num_classes=None, per_row=10, title=None):
    """Saves a grid of images: one row per class when labelled, else rows of `per_row` images.

    Args:
        images: (N, H, W, C) images in [0, 1] (C = 1 or 3).
        path: the PNG file (written atomically).
        labels: integer labels of `images`, or None.
        num_classes: number of rows of a labelled grid (default: max label + 1).
        per_row: images per row, >= 1.
        title: optional title.

    Returns:
        The path written.

    Raises:
        ValueError: if the shapes do not match or `per_row` < 1.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W, 1 or 3) array, got shape {images.shape}")
    if int(per_row) != per_row or per_row < 1:
        raise ValueError(f"per_row must be an integer >= 1, got {per_row}")
    if labels is None:
        rows = [images[i : i + per_row] for i in range(0, len(images), per_row)]
        names = [None] * len(rows)
    else:
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
        rows = [images[labels == c][:per_row] for c in range(num_classes)]
        names = [str(c) for c in range(num_classes)]
    figure, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 0.8, len(rows) * 0.8 + (0.4 if title else 0)),
                                squeeze=False)
    for r, (row, name) in enumerate(zip(rows, names)):
        for c in range(per_row):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
            if c < len(row):
                image = np.clip(row[c], 0, 1)
                axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
        if name is not None:
            axes[r, 0].set_ylabel(name, rotation=0, labelpad=10, va="center")
    if title:
        figure.suptitle(title)
    save_figure(figure, path, dpi=100, bbox_inches="tight")
    return path
