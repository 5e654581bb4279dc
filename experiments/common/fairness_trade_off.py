"""Accuracy-fairness trade-off curves: over one model's adversary weight, or one curve per method.

`plot_trade_off` and `trade_off_table` show one model's points (one per adversary weight);
`plot_method_curves` and `method_table` show the summaries of `fairness_comparison.summarize` (beside this
module): every method's curve (its swept tolerance, bound or alpha), mean over seeds with the standard deviation
as error bars.
"""

import math


def plot_trade_off(rows, baseline, *, title):
    """Accuracy against demographic-parity and equalized-odds differences, one point per adversary weight.

    Args:
        rows: dicts with "adversary_weight", "accuracy", "demographic_parity_difference",
            "equalized_odds_difference".
        baseline: dict with the same metric keys for the unconstrained model.
        title: figure title.

    Returns:
        A matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, metric, label in zip(
        axes,
        ("demographic_parity_difference", "equalized_odds_difference"),
        ("demographic-parity difference", "equalized-odds difference"),
    ):
        axis.plot([row[metric] for row in rows], [row["accuracy"] for row in rows], "o-", label="adversarial")
        for row in rows:
            axis.annotate(f"{row['adversary_weight']:g}", (row[metric], row["accuracy"]), fontsize=8)
        axis.plot(baseline[metric], baseline["accuracy"], "r*", markersize=12, label="baseline")
        axis.set_xlabel(f"{label} (sex, test)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend()
    figure.suptitle(title)
    return figure


def trade_off_table(rows, baseline, *, extra_columns=()):
    """A markdown table: the baseline, then one line per adversary weight.

    Args:
        rows: dicts as for `plot_trade_off`, plus `extra_columns`.
        baseline: the baseline's dict.
        extra_columns: further metric keys to show.

    Returns:
        Markdown text.
    """
    columns = ("accuracy", "demographic_parity_difference", "equalized_odds_difference")
    columns += tuple(extra_columns)
    lines = [
        "| adversary weight | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
        "| baseline | " + " | ".join(f"{baseline[column]:.4f}" for column in columns) + " |",
    ]
    lines += [
        f"| {row['adversary_weight']:g} | " + " | ".join(f"{row[column]:.4f}" for column in columns) + " |"
        for row in rows
    ]
    return "\n".join(lines)


PANELS = (
    ("equalized_odds_difference", "equalized-odds difference"),
    ("demographic_parity_difference", "demographic-parity difference"),
)


def plot_method_curves(
    summary, *, title, score="accuracy", score_label="test accuracy", panels=PANELS, min_score=None
):
    """Every method's trade-off curve: score against each unfairness measure, mean ± std over seeds.

    Args:
        summary: dicts of `fairness_comparison.summarize` (method, value, `<metric>` and `<metric>_std`).
        title: figure title.
        score: key of the vertical axis (higher is better).
        score_label: its axis label.
        panels: `(key, label)` of each panel's horizontal axis (lower is fairer).
        min_score: None, or the lowest score shown: the axes zoom on the points at or above it (a collapsed
            fit far below would squash every other curve), and the title says how many points lie below.

    Returns:
        A matplotlib figure with one panel per entry of `panels` and one line per method.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(entry["method"] for entry in summary))
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), sharey=True, squeeze=False)
    for axis, (metric, label) in zip(axes[0], panels):
        for index, method in enumerate(methods):
            entries = sorted(
                (entry for entry in summary if entry["method"] == method), key=lambda entry: entry[metric]
            )
            axis.errorbar(
                [entry[metric] for entry in entries],
                [entry[score] for entry in entries],
                xerr=[entry.get(f"{metric}_std", 0.0) for entry in entries],
                yerr=[entry.get(f"{score}_std", 0.0) for entry in entries],
                fmt="o-" if len(entries) > 1 else "s",
                color=plt.cm.tab10(index % 10),
                capsize=2,
                markersize=4,
                label=method,
            )
            for entry in entries:
                if entry["value"] is not None:
                    axis.annotate(f"{entry['value']:g}", (entry[metric], entry[score]), fontsize=7)
        axis.set_xlabel(f"{label} (test)")
        axis.grid(alpha=0.3)
        shown = [entry for entry in summary if min_score is None or entry[score] >= min_score]
        if min_score is not None and shown:
            axis.set_xlim(0.0, 1.05 * max(entry[metric] + entry.get(f"{metric}_std", 0.0) for entry in shown))
    axes[0][0].set_ylabel(score_label)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    hidden = len(summary) - len(shown)
    if min_score is not None:
        top = max(entry[score] + entry.get(f"{score}_std", 0.0) for entry in summary)
        axes[0][0].set_ylim(min_score, top + 0.1 * (top - min_score))
        if hidden:
            title += f" ({hidden} point{'s' if hidden > 1 else ''} below {score_label} {min_score:g} not shown)"
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def method_table(summary, *, columns):
    """A Markdown table of `fairness_comparison.summarize` entries: mean ± std over seeds.

    Args:
        summary: the entries.
        columns: the metric keys to show.

    Returns:
        Markdown text, one line per (method, swept value).
    """
    lines = [
        "| method | parameter | seeds | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for entry in summary:
        value = "" if entry["value"] is None else f"{entry['parameter']} = {entry['value']:g}"
        cells = []
        for column in columns:
            mean = entry.get(column)
            if mean is None or (isinstance(mean, float) and math.isnan(mean)):
                cells.append("")
            else:
                digits = 1 if column.endswith("seconds") else 4
                cells.append(f"{mean:.{digits}f} ± {entry.get(column + '_std', 0.0):.{digits}f}")
        lines.append(f"| {entry['method']} | {value} | {entry['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pareto_front(summary, *, gap="equalized_odds_difference", score="accuracy", methods=None):
    """The entries no other entry beats on both mean score (higher) and mean gap (lower).

    Args:
        summary: entries of `fairness_comparison.summarize`.
        gap: the unfairness key (lower is better).
        score: the score key (higher is better).
        methods: None (every entry), or the method names to consider (e.g. one regime's).

    Returns:
        The front's entries, by increasing gap.
    """
    entries = [entry for entry in summary if methods is None or entry["method"] in methods]
    front = [
        entry
        for entry in entries
        if not any(
            other[score] >= entry[score] and other[gap] <= entry[gap]
            and (other[score] > entry[score] or other[gap] < entry[gap])
            for other in entries
        )
    ]
    return sorted(front, key=lambda entry: (entry[gap], -entry[score]))


def front_table(front, *, gap="equalized_odds_difference", score="accuracy"):
    """A Markdown table of a Pareto front: method, swept value, mean gap and mean score."""
    lines = [f"| method | parameter | {gap} | {score} |", "|---|---|---|---|"]
    for entry in front:
        value = "" if entry["value"] is None else f"{entry['parameter']} = {entry['value']:g}"
        lines.append(f"| {entry['method']} | {value} | {entry[gap]:.4f} | {entry[score]:.4f} |")
    return "\n".join(lines)
