"""A PRIVATE fidelity report of synthetic images against the private ones, for the data owner only.

It reads the private images without noise (exact class counts, class means, pixel spread), so it is NOT
covered by the privacy guarantee of the release: every file it writes is named `*.PRIVATE-*` and says so
at the top. `privgan-synthesize --input=... --fidelity_report=FOLDER` writes it outside the release.
"""

import numpy as np

from privgan.evaluation.diversity import within_class_pixel_std
from privgan.evaluation.samples import save_sample_grid
from privgan.io import write_text

PRIVATE_BANNER = (
    "**PRIVATE: computed on the private images without noise (exact counts, class means, pixel spread), so "
    "NOT covered by the privacy guarantee of the release. Keep it, do not publish it.**"
)


def image_fidelity(x_real, y_real, x_synthetic, y_synthetic, *, num_classes):
    """Per-class comparison of synthetic with real images (both in [0, 1]).

    Returns:
        A dict with, per class, the real and synthetic counts, the RMSE between the real and the
        synthetic class-mean images and both within-class pixel standard deviations; and the averages.
    """
    real_std = within_class_pixel_std(x_real, y_real, num_classes=num_classes)
    synthetic_std = within_class_pixel_std(x_synthetic, y_synthetic, num_classes=num_classes)
    per_class = []
    for c in range(num_classes):
        real, synthetic = x_real[y_real == c], x_synthetic[y_synthetic == c]
        rmse = (float(np.sqrt(np.mean((real.mean(axis=0) - synthetic.mean(axis=0)) ** 2)))
                if len(real) and len(synthetic) else None)
        per_class.append({"real_images": int(len(real)), "synthetic_images": int(len(synthetic)),
                          "class_mean_rmse": rmse, "real_pixel_std": real_std["per_class"][c],
                          "synthetic_pixel_std": synthetic_std["per_class"][c]})
    rmses = [entry["class_mean_rmse"] for entry in per_class if entry["class_mean_rmse"] is not None]
    return {"per_class": per_class, "class_mean_rmse": float(np.mean(rmses)) if rmses else None,
            "real_pixel_std": real_std["mean"], "synthetic_pixel_std": synthetic_std["mean"]}


def _class_means(x, y, num_classes):
    return np.stack([x[y == c].mean(axis=0) if np.any(y == c) else np.zeros(x.shape[1:], x.dtype)
                     for c in range(num_classes)])


def _number(value):
    return "n/a" if value is None else f"{value:.4f}"


def write_image_fidelity_report(data, x_synthetic, y_synthetic, *, paths, statement):
    """Writes the PRIVATE report: markdown (`paths["markdown"]`), class means (`paths["means"]`: real top row,
    synthetic bottom row) and a grid of synthetic samples (`paths["samples"]`).

    Args:
        data: the private `privgan.data.image_folder.ImageData`.
        x_synthetic: synthetic images in [0, 1].
        y_synthetic: their labels.
        paths: dict with the "markdown", "means" and "samples" files to write.
        statement: the release's privacy statement (for its epsilon and delta).

    Returns:
        `paths`.
    """
    num_classes = len(data.classes)
    numbers = image_fidelity(data.x, data.y, x_synthetic, y_synthetic, num_classes=num_classes)
    means = np.concatenate([_class_means(data.x, data.y, num_classes),
                            _class_means(x_synthetic, y_synthetic, num_classes)])
    save_sample_grid(means, paths["means"], per_row=num_classes,
                     title="PRIVATE: class means, real (top) vs synthetic (bottom)")
    save_sample_grid(x_synthetic, paths["samples"], labels=y_synthetic, num_classes=num_classes,
                     title="synthetic samples, one row per class")
    rows = "\n".join(
        f"| {name} | {entry['real_images']} | {entry['synthetic_images']} | {_number(entry['class_mean_rmse'])} | "
        f"{_number(entry['real_pixel_std'])} | {_number(entry['synthetic_pixel_std'])} |"
        for name, entry in zip(data.classes, numbers["per_class"])
    )
    write_text(paths["markdown"], f"""# PRIVATE fidelity report: {statement['data_file']}

{PRIVATE_BANNER}

Release: {statement['data_file']} (epsilon = {statement['epsilon']:.4f}, delta = {statement['delta']:g}); pixel values
below are on a 0..1 scale of the pixel range {data.pixel_range[0]:g}..{data.pixel_range[1]:g}.

| class | real images | synthetic images | RMSE of class-mean images | real pixel std | synthetic pixel std |
|---|---|---|---|---|---|
{rows}

Mean over classes: class-mean RMSE {_number(numbers['class_mean_rmse'])}, within-class pixel std
{_number(numbers['real_pixel_std'])} real vs {_number(numbers['synthetic_pixel_std'])} synthetic (a much smaller
synthetic spread means the generator emits few distinct images per class).

Figures: ![class means]({paths['means'].name}) ![synthetic samples]({paths['samples'].name})
""")
    return paths
