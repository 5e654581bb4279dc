"""The figures of robustness experiments: the robustness-accuracy trade-off, robust accuracy against the
radius, and certified accuracy curves."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from privgan.io import save_figure  # noqa: E402


def plot_trade_off(points, path, *, title=None, connect=()):
    """Scatter of clean accuracy (x) against robust accuracy (y), one labelled point per model.

    Args:
        points: `(label, clean_accuracy, robust_accuracy)` triples.
        path: the PNG to write (atomically).
        title: optional title.
        connect: labels, in order, to join with a line (e.g. a TRADES beta sweep).
    """
    figure, axis = plt.subplots(figsize=(5.5, 4))
    for index, (label, clean, robust) in enumerate(points):
        axis.scatter(clean, robust, zorder=3)
        # Alternate the labels above and below their points, so that neighbours do not overlap.
        axis.annotate(label, (clean, robust), textcoords="offset points", xytext=(4, 5 if index % 2 else -11),
                      fontsize=8)
    by_label = {label: (clean, robust) for label, clean, robust in points}
    line = [by_label[label] for label in connect if label in by_label]
    if len(line) > 1:
        axis.plot(*zip(*line), color="grey", alpha=0.6, zorder=2)
    axis.set_xlabel("clean test accuracy")
    axis.set_ylabel("robust test accuracy")
    axis.grid(alpha=0.3)
    if title:
        axis.set_title(title, fontsize=9)
    save_figure(figure, path, dpi=120, bbox_inches="tight")


def plot_certified_accuracy(curves, path, *, title=None):
    """Certified accuracy against L2 radius, one step curve per noise level (Cohen et al.'s Figure).

    Args:
        curves: `{label: (radii, certified_accuracies)}`.
        path: the PNG to write (atomically).
        title: optional title.
    """
    figure, axis = plt.subplots(figsize=(5.5, 4))
    for label, (radii, accuracies) in curves.items():
        axis.plot(radii, accuracies, label=label)
    _finish(figure, axis, path, xlabel="L2 radius", ylabel="certified accuracy", title=title)


def plot_robust_accuracy_curves(sweeps, path, *, title=None):
    """Robust accuracy against the attack's radius, one line per model.

    Args:
        sweeps: `{label: [{"epsilon": e, "robust_accuracy": a}, ...]}` (as in `RobustnessReport.to_dict()`).
        path: the PNG to write (atomically).
        title: optional title.
    """
    figure, axis = plt.subplots(figsize=(5.5, 4))
    for label, points in sweeps.items():
        axis.plot([p["epsilon"] for p in points], [p["robust_accuracy"] for p in points], marker=".", label=label)
    _finish(figure, axis, path, xlabel="attack radius epsilon", ylabel="robust test accuracy", title=title)


def _finish(figure, axis, path, *, xlabel, ylabel, title):
    # Accuracy curves share their frame: labels, [0, 1] range, grid, legend, title; then the atomic save.
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend()
    if title:
        axis.set_title(title, fontsize=9)
    save_figure(figure, path, dpi=120, bbox_inches="tight")
