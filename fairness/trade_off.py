"""Accuracy-fairness trade-off curves over an adversary's weight: a plot and a Markdown table."""


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
