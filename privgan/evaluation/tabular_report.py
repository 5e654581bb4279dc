"""A fidelity report for the data owner: how a synthetic table compares with the PRIVATE table it imitates.

`privgan-synthesize` writes it next to the synthetic CSV. It compares the synthetic table with the private
training table itself (there is no other real data at hand), so every number in it is computed from the
private data outside any differential-privacy guarantee: it is for the data owner to judge the release,
never for publication. The report says so at the top of the Markdown and on every figure.

Contents, all from `privgan.evaluation.tabular`:
  - marginals: the total variation distance of every column, and a figure of the real and synthetic
    marginals;
  - pairwise associations: Cramér's V of every pair of columns on both tables, the pairs that differ most,
    and a figure of both matrices;
  - a TSTR estimate: AUROC of classifiers trained on the synthetic table and of the same classifiers trained
    on the private table, both tested on the same held-out share of the private rows. The synthesizer was
    trained on those rows too, so TSTR is optimistic compared with new data (less so the smaller epsilon).
"""

import dataclasses
import math
import pathlib

import numpy as np

from privgan.evaluation.tabular import (
    AssociationDifference,
    AUROCResult,
    association_difference,
    classifier_auroc,
    marginal_tvd,
)
from privgan.io import save_figure, write_text
from privgan.tabular.schema import CategoricalColumn, SchemaError
from privgan.tabular.transformer import validate_frame

NOT_FOR_PUBLICATION = "computed on the PRIVATE data: not covered by the DP guarantee, do not publish"
_TOP_PAIRS = 10
_VALUE_BINS = 20
_FLAGGED_SHARE = 0.01  # columns with more synthetic rows than this where the private data have none are flagged


@dataclasses.dataclass(frozen=True)
class FidelityReport:
    """Fidelity of a synthetic table measured against the private table (NOT covered by any DP guarantee).

    Attributes:
        private_rows: rows of the private table.
        synthetic_rows: rows of the synthetic table.
        compared_rows: rows of each table used (a random sample of at most `max_rows` of each).
        marginal_tvd: column name -> total variation distance of its marginals, in [0, 1].
        associations: `AssociationDifference` of Cramér's V matrices, or None with fewer than two columns.
        label: the categorical column TSTR predicts, or None when TSTR was skipped.
        positive: the category of `label` scored as positive.
        tstr: AUROC of classifiers trained on the synthetic table, tested on held-out private rows.
        trtr: AUROC of the same classifiers trained on the other private rows, tested on the same rows.
        tstr_note: why TSTR was skipped, or how it was computed.
        empty_mass: column name -> share of the synthetic rows in values the private rows leave empty
            (categories none of them has; for numeric columns, those of 20 equal-width bins between the smallest
            and largest value of both tables that hold no private value; missing values where none are).
    """

    private_rows: int
    synthetic_rows: int
    compared_rows: int
    marginal_tvd: dict
    associations: AssociationDifference | None
    label: str | None
    positive: object
    tstr: AUROCResult | None
    trtr: AUROCResult | None
    tstr_note: str
    empty_mass: dict = dataclasses.field(default_factory=dict)

    @property
    def mean_tvd(self):
        """Mean of the columns' total variation distances."""
        return float(np.mean(list(self.marginal_tvd.values())))

    def summary(self):
        """A few lines of text, starting with the warning that the numbers come from the private data."""
        lines = [
            f"Fidelity ({NOT_FOR_PUBLICATION}):",
            f"  marginals: mean total variation distance {self.mean_tvd:.3f} over {len(self.marginal_tvd)} columns "
            f"(worst {max(self.marginal_tvd, key=self.marginal_tvd.get)!r}: {max(self.marginal_tvd.values()):.3f})",
        ]
        if self.associations is not None:
            a = self.associations
            difference = np.abs(a.real - a.synthetic)
            i, j = np.unravel_index(np.argmax(difference), difference.shape)
            lines.append(
                f"  pairwise associations: Cramér's V differs by {a.mean_absolute_difference:.3f} on average over "
                f"{len(a.columns) * (len(a.columns) - 1) // 2} column pairs, "
                f"most for ({a.columns[i]}, {a.columns[j]}): "
                f"private {a.real[i, j]:.3f}, synthetic {a.synthetic[i, j]:.3f}"
            )
        flagged = {name: share for name, share in self.empty_mass.items() if share > _FLAGGED_SHARE}
        if flagged:
            lines.append("  synthetic rows where the private data have none: " + ", ".join(
                f"{name} {share:.1%}" for name, share in sorted(flagged.items(), key=lambda item: -item[1])))
        if self.tstr is not None:
            lines.append(
                f"  TSTR AUROC for {self.label}={self.positive!r}: LogisticRegression {self.tstr.auroc_lr:.3f} "
                f"(trained on private rows: {self.trtr.auroc_lr:.3f}), HistGradientBoosting {self.tstr.auroc_gb:.3f} "
                f"({self.trtr.auroc_gb:.3f})"
            )
        else:
            lines.append(f"  TSTR: {self.tstr_note}")
        return "\n".join(lines)


def _sample(df, max_rows, rng):
    if len(df) <= max_rows:
        return df.reset_index(drop=True)
    return df.iloc[np.sort(rng.choice(len(df), max_rows, replace=False))].reset_index(drop=True)


def _default_label(schema):
    categorical = [column for column in schema.columns if isinstance(column, CategoricalColumn)]
    return categorical[-1].name if categorical else None


def _tstr(private, synthetic, *, schema, label, positive, test_fraction, seed):
    """(tstr, trtr, note): AUROCs on a held-out share of the private rows, or Nones and why not."""
    from sklearn.model_selection import train_test_split

    if label is None:
        return None, None, "skipped: the schema has no categorical column to predict (choose one with --label)"
    column = schema[label]
    if not isinstance(column, CategoricalColumn):
        raise SchemaError(f"the TSTR label {label!r} must be a categorical column of the schema")
    positive = column.categories[0] if positive is None else positive
    if positive not in column.categories:
        raise SchemaError(
            f"the TSTR positive class {positive!r} is not a category of {label!r}: {list(column.categories)}"
        )
    is_positive = (private[label] == positive).to_numpy()
    if is_positive.sum() < 2 or (~is_positive).sum() < 2:
        return None, None, f"skipped: the private rows have fewer than two of {label}={positive!r} or of the rest"
    train, test = train_test_split(private, test_size=test_fraction, random_state=seed, stratify=is_positive)
    tstr = classifier_auroc(synthetic, test, schema=schema, label=label, positive=positive, seed=seed)
    trtr = classifier_auroc(train, test, schema=schema, label=label, positive=positive, seed=seed)
    note = (
        f"classifiers trained on the synthetic table (TSTR) and on {len(train)} private rows (baseline), both tested "
        f"on the other {len(test)} private rows; the synthesizer was trained on those rows too, so TSTR is "
        "optimistic compared with new data"
    )
    return tstr, trtr, note


def _compared_samples(private, synthetic, *, schema, max_rows, seed):
    if max_rows < 10:
        raise ValueError(f"max_rows must be >= 10, got {max_rows}")
    private, synthetic = validate_frame(private, schema), validate_frame(synthetic, schema)
    rng = np.random.default_rng(seed)
    return _sample(private, max_rows, rng), _sample(synthetic, max_rows, rng), len(private), len(synthetic)


def _measure(private, synthetic, *, schema, private_rows, synthetic_rows, label, positive, test_fraction, seed):
    label = _default_label(schema) if label is None else label
    tstr, trtr, note = _tstr(private, synthetic, schema=schema, label=label, positive=positive,
                             test_fraction=test_fraction, seed=seed)
    return FidelityReport(
        private_rows=private_rows,
        synthetic_rows=synthetic_rows,
        compared_rows=max(len(private), len(synthetic)),
        marginal_tvd=marginal_tvd(private, synthetic, schema=schema),
        associations=association_difference(private, synthetic, schema=schema) if len(schema.columns) >= 2 else None,
        label=label if tstr is not None else None,
        positive=(schema[label].categories[0] if positive is None else positive) if tstr is not None else None,
        tstr=tstr,
        trtr=trtr,
        tstr_note=note,
        empty_mass={column.name: _value_counts(private, synthetic, column).empty_share for column in schema.columns},
    )


@dataclasses.dataclass(frozen=True)
class _ValueCounts:
    """Both tables' shares of one column's values: categories, or bins in the column's units, and missing."""

    labels: tuple
    private: np.ndarray
    synthetic: np.ndarray
    edges: np.ndarray | None

    @property
    def empty(self):
        """Where the synthetic rows have values and the private rows none."""
        return (self.private == 0) & (self.synthetic > 0)

    @property
    def empty_share(self):
        return float(self.synthetic[self.empty].sum())


def _value_counts(private, synthetic, column):
    """The column's value shares in both tables; numeric values in 20 bins between their common extremes."""
    if isinstance(column, CategoricalColumn):
        labels = tuple(column.categories)
        real, fake = (df[column.name].astype(object) for df in (private, synthetic))
        counts = [np.array([(values == c).sum() for c in labels] + [values.isna().sum()], dtype=np.float64)
                  for values in (real, fake)]
        edges = None
    else:
        real, fake = (df[column.name].astype(float).to_numpy() for df in (private, synthetic))
        present = np.concatenate([real[~np.isnan(real)], fake[~np.isnan(fake)]])
        low, high = (present.min(), present.max()) if present.size else (column.lower, column.upper)
        edges = np.linspace(low, high if high > low else low + 1, _VALUE_BINS + 1)
        counts = [np.append(np.histogram(v[~np.isnan(v)], bins=edges)[0], np.isnan(v).sum()).astype(np.float64)
                  for v in (real, fake)]
        labels = tuple(f"{a:.4g}" for a in edges[:-1])
    shares = [c / max(c.sum(), 1.0) for c in counts]
    return _ValueCounts(labels + ("missing",), shares[0], shares[1], edges)


def _plot_marginals(private, synthetic, *, schema, path, title, tvd):
    """Bar charts of every column's values in both tables, numeric axes in the column's units, with the
    synthetic mass where the private rows have no value in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = math.ceil(len(schema.columns) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 2.8 * rows), squeeze=False, layout="constrained")
    for axis, column in zip(axes.flat, schema.columns):
        counts = _value_counts(private, synthetic, column)
        keep = np.ones(len(counts.labels), dtype=bool)
        keep[-1] = counts.private[-1] > 0 or counts.synthetic[-1] > 0  # the missing bar only when there are some
        positions = np.arange(keep.sum())
        axis.bar(positions - 0.2, counts.private[keep], width=0.4, label="private")
        colours = np.where(counts.empty[keep], "tab:red", "tab:orange")
        axis.bar(positions + 0.2, counts.synthetic[keep], width=0.4, color=colours, label="synthetic")
        labels = [label for label, k in zip(counts.labels, keep) if k]
        axis.set_xticks(positions, labels, rotation=90, fontsize=6)
        axis.set_ylabel("share of rows", fontsize=7)
        if counts.edges is None:
            axis.set_xlabel(column.name, fontsize=8)
        else:
            width = counts.edges[1] - counts.edges[0]
            axis.set_xlabel(f"{column.label}: bins of {width:.3g}, by lower edge", fontsize=8)
        flag = f"; {counts.empty_share:.1%} synthetic where private has none" if counts.empty_share > 0 else ""
        axis.set_title(f"{column.name} (TVD {tvd[column.name]:.3f}){flag}", fontsize=9,
                       color="darkred" if flag else "black")
    for axis in list(axes.flat)[len(schema.columns):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(title)
    save_figure(figure, path, dpi=100)
    return path


def fidelity_report(private, synthetic, *, schema, label=None, positive=None, max_rows=20_000, test_fraction=0.3,
                    seed=0):
    """Measures how well `synthetic` imitates the private table `private` (NOT covered by any DP guarantee).

    Args:
        private: the private DataFrame the synthesizer was trained on.
        synthetic: the synthetic DataFrame.
        schema: the `TableSchema` of both.
        label: the categorical column for TSTR; None: the schema's last categorical column (TSTR is skipped
            when there is none).
        positive: the category of `label` scored as positive; None: its first category in the schema.
        max_rows: each table is compared on a random sample of at most this many rows, >= 10.
        test_fraction: share of the (sampled) private rows held out to test both TSTR and the baseline.
        seed: seed of the samples, the split and the classifiers.

    Returns:
        A `FidelityReport`.

    Raises:
        SchemaError: if a table does not fit the schema or `label` / `positive` are not a categorical column
            and one of its categories.
        ValueError: if `max_rows` < 10.
    """
    private, synthetic, private_rows, synthetic_rows = _compared_samples(
        private, synthetic, schema=schema, max_rows=max_rows, seed=seed
    )
    return _measure(private, synthetic, schema=schema, private_rows=private_rows, synthetic_rows=synthetic_rows,
                    label=label, positive=positive, test_fraction=test_fraction, seed=seed)


def _plot_associations(associations, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = len(associations.columns)
    panel = 2.0 + 0.22 * size
    figure, axes = plt.subplots(1, 3, figsize=(3 * panel + 1.5, panel + 1.2), squeeze=False, layout="constrained")
    panels = (("private", associations.real), ("synthetic", associations.synthetic),
              ("|private - synthetic|", np.abs(associations.real - associations.synthetic)))
    for index, (axis, (title, matrix)) in enumerate(zip(axes[0], panels)):
        image = axis.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        axis.set_title(f"Cramér's V, {title}", fontsize=9)
        axis.set_xticks(range(size), associations.columns, rotation=90, fontsize=6)
        axis.set_yticks(range(size), associations.columns if index == 0 else [], fontsize=6)
    figure.colorbar(image, ax=list(axes[0]), shrink=0.8)
    figure.suptitle(f"Pairwise associations, {NOT_FOR_PUBLICATION}", fontsize=10, color="darkred", weight="bold")
    save_figure(figure, path, dpi=100)
    return path


def _format(value):
    return f"{value:.3f}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _markdown(report, *, synthetic_name, statement_name, epsilon, delta, figures):
    lines = [
        f"# Fidelity of `{synthetic_name}`: PRIVATE, do not publish",
        "",
        "> **Computed on the private data.** Every number and figure below compares the synthetic table with the "
        "private table it was trained on. They are **not** covered by the differential-privacy guarantee of "
        f"`{statement_name}` (epsilon = {epsilon:.3f}, delta = {delta:g}) and can reveal information about "
        "individual rows: keep this report with the private data; do not publish or share it. Publish the "
        "synthetic table and its statement only.",
        "",
        f"Private table: {report.private_rows} rows; synthetic table: {report.synthetic_rows} rows"
        + (f"; each compared on a random sample of {report.compared_rows} rows." if report.compared_rows
           < max(report.private_rows, report.synthetic_rows) else "."),
        "",
        "## Marginals",
        "",
        f"Total variation distance between the private and the synthetic distribution of each column (0: equal, 1: "
        f"disjoint; numeric columns in 20 equal-width bins of the schema's range). Mean {report.mean_tvd:.3f}.",
        "",
        "| column | TVD |",
        "|---|---|",
    ]
    for name, value in sorted(report.marginal_tvd.items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {value:.3f} |")
    lines += ["", f"![marginals]({figures['marginals']})", ""]
    flagged = {name: share for name, share in report.empty_mass.items() if share > _FLAGGED_SHARE}
    lines += [
        "## Synthetic rows where the private data have none",
        "",
        "Share of the synthetic rows whose value no private row has: a category none has, a missing value where none "
        "is, or a numeric value in one of 20 equal-width bins (between the smallest and the largest value of both "
        "tables, in red in the figure) that holds no private value. "
        + ("Columns above 1%:" if flagged else "No column above 1%."),
        "",
    ]
    if flagged:
        lines += ["| column | synthetic rows there |", "|---|---|"]
        lines += [f"| {name} | {share:.1%} |" for name, share in sorted(flagged.items(), key=lambda item: -item[1])]
        lines.append("")
    if report.associations is not None:
        associations = report.associations
        difference = np.abs(associations.real - associations.synthetic)
        pairs = sorted(
            ((difference[i, j], i, j) for i in range(len(associations.columns))
             for j in range(i + 1, len(associations.columns))),
            reverse=True,
        )[:_TOP_PAIRS]
        lines += [
            "## Pairwise associations",
            "",
            "Cramér's V of every pair of columns (0: independent, 1: one determines the other; numeric columns in 10 "
            "equal-width bins of the schema's range, so a column whose values all fall in one bin, as under generous "
            f"bounds, counts as associated with nothing), on both tables. Mean absolute difference "
            f"{associations.mean_absolute_difference:.3f}; "
            f"the {len(pairs)} pairs that differ most:",
            "",
            "| columns | private | synthetic | difference |",
            "|---|---|---|---|",
        ]
        for value, i, j in pairs:
            lines.append(
                f"| {associations.columns[i]} / {associations.columns[j]} | {associations.real[i, j]:.3f} | "
                f"{associations.synthetic[i, j]:.3f} | {value:.3f} |"
            )
        lines += ["", f"![associations]({figures['associations']})", ""]
    lines += ["## Train on synthetic, test on real (TSTR)", ""]
    if report.tstr is None:
        lines.append(f"TSTR {report.tstr_note}.")
    else:
        lines += [
            f"Predicting `{report.label}` = {report.positive!r} (AUROC; 0.5 is chance). {report.tstr_note[0].upper()}"
            f"{report.tstr_note[1:]}.",
            "",
            "| classifier | trained on synthetic (TSTR) | trained on private rows |",
            "|---|---|---|",
            f"| LogisticRegression | {_format(report.tstr.auroc_lr)} | {_format(report.trtr.auroc_lr)} |",
            f"| HistGradientBoosting | {_format(report.tstr.auroc_gb)} | {_format(report.trtr.auroc_gb)} |",
        ]
        if report.tstr.single_class:
            lines += ["", f"The synthetic table has one class of `{report.label}` only: its classifiers are constant."]
    return "\n".join(lines) + "\n"


def write_fidelity_report(private, synthetic, *, schema, synthetic_path, epsilon, delta, label=None, positive=None,
                          max_rows=20_000, seed=0, folder=None):
    """Measures `fidelity_report` and writes it (Markdown and two PNG figures), named PRIVATE.

    The files are `fidelity_report_paths(synthetic_path, folder=folder)`, each written atomically; every one of
    them says that it is computed on the private data, not covered by the guarantee, and not for publication.

    Args:
        private: the private DataFrame the synthesizer was trained on.
        synthetic: the synthetic DataFrame.
        schema: their `TableSchema`.
        synthetic_path: the synthetic CSV; its privacy statement is the `.json` beside it.
        epsilon: the statement's epsilon (quoted in the warning).
        delta: the statement's delta.
        label, positive, max_rows, seed: as in `fidelity_report`.
        folder: where the files go; None: beside the synthetic CSV. Keep it out of what gets published.

    Returns:
        `(report, paths)`: the `FidelityReport` and a dict name -> path of the files written ("markdown",
        "marginals" and, with two or more columns, "associations").
    """
    synthetic_path = pathlib.Path(synthetic_path)
    private, synthetic, private_rows, synthetic_rows = _compared_samples(
        private, synthetic, schema=schema, max_rows=max_rows, seed=seed
    )
    report = _measure(private, synthetic, schema=schema, private_rows=private_rows, synthetic_rows=synthetic_rows,
                      label=label, positive=positive, test_fraction=0.3, seed=seed)
    paths = fidelity_report_paths(synthetic_path, folder=folder)
    if report.associations is None:
        del paths["associations"]
    _plot_marginals(private, synthetic, schema=schema, path=paths["marginals"], tvd=report.marginal_tvd,
                    title=f"Marginals of {synthetic_path.name}, {NOT_FOR_PUBLICATION}")
    if report.associations is not None:
        _plot_associations(report.associations, paths["associations"])
    text = _markdown(report, synthetic_name=synthetic_path.name,
                     statement_name=synthetic_path.with_suffix(".json").name, epsilon=epsilon, delta=delta,
                     figures={name: path.name for name, path in paths.items() if name != "markdown"})
    write_text(paths["markdown"], text)
    return report, paths


def fidelity_report_paths(synthetic_path, *, folder=None):
    """Where `write_fidelity_report` writes for a synthetic CSV: markdown, marginals and associations figures,
    named `<stem>.PRIVATE-fidelity*`, in `folder` (None: the CSV's folder)."""
    synthetic_path = pathlib.Path(synthetic_path)
    stem = synthetic_path.stem
    folder = synthetic_path.parent if folder is None else pathlib.Path(folder)
    return {
        "markdown": folder / f"{stem}.PRIVATE-fidelity.md",
        "marginals": folder / f"{stem}.PRIVATE-fidelity-marginals.png",
        "associations": folder / f"{stem}.PRIVATE-fidelity-associations.png",
    }
