"""Fidelity and utility of synthetic tables: TSTR AUROC, marginal distances, pairwise associations, a plot.

Which data each metric reads:
  - `classifier_auroc`: trains scikit-learn classifiers on one table (synthetic for TSTR, or the real
    training set for the baseline) and scores them on the real TEST set.
  - `marginal_tvd`, `association_difference`, `plot_marginals`: compare a real table (the real test set
    is the natural reference) with a synthetic one.
All of them read real data outside any DP guarantee: they are for evaluation only. Features and bins come
from the public schema: classifiers see the `TableTransformer` encoding (one-hot categories, numeric
columns scaled between the schema's bounds), and numeric columns are cut into equal-width bins of the
encoded [0, 1] range (on the log scale for log1p columns), with missing values as a bin of their own.
"""

import dataclasses
import math

import numpy as np

from privgan.io import save_figure
from privgan.tabular.schema import CategoricalColumn, SchemaError
from privgan.tabular.transformer import TableTransformer, validate_frame

CLASSIFIERS = ("lr", "gb")


@dataclasses.dataclass(frozen=True)
class AUROCResult:
    """AUROC on a real test set of classifiers trained on one table.

    Attributes:
        auroc_lr: AUROC of scikit-learn's LogisticRegression.
        auroc_gb: AUROC of scikit-learn's HistGradientBoostingClassifier.
        num_train: training rows.
        num_test: test rows.
        single_class: the training labels had one class only, so both classifiers are constant (AUROC 0.5).
    """

    auroc_lr: float
    auroc_gb: float
    num_train: int
    num_test: int
    single_class: bool = False

    def summary(self):
        """One line of text."""
        note = " (training labels had one class: constant predictions)" if self.single_class else ""
        return (
            f"AUROC LogisticRegression {self.auroc_lr:.4f}, HistGradientBoosting {self.auroc_gb:.4f}: trained on "
            f"{self.num_train} rows, tested on {self.num_test} real rows{note}"
        )


def classifier_auroc(train, test, *, schema, label, positive, seed=0):
    """Trains LogisticRegression and HistGradientBoostingClassifier on `train`, scores AUROC on `test`.

    With synthetic `train` this is Train on Synthetic, Test on Real (TSTR); with the real training set it is
    the baseline to compare with. Both tables must fit `schema`.

    Args:
        train: training DataFrame (synthetic, or real for the baseline).
        test: the real test DataFrame.
        schema: the `TableSchema` of both.
        label: the name of a categorical label column.
        positive: the label value counted as positive.
        seed: seed of the classifiers.

    Returns:
        An `AUROCResult`.

    Raises:
        SchemaError: if a table does not fit the schema, the label is not categorical or `positive` is not
            one of its categories.
        ValueError: if the test labels have one class only (AUROC is undefined).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    label_column = schema[label]
    if not isinstance(label_column, CategoricalColumn) or positive not in label_column.categories:
        raise SchemaError(f"label {label!r} must be a categorical column with the category {positive!r}")
    features = TableTransformer(schema.without(label))
    train, test = validate_frame(train, schema), validate_frame(test, schema)
    y_train = (train[label] == positive).to_numpy(dtype=np.int64)
    y_test = (test[label] == positive).to_numpy(dtype=np.int64)
    if len(np.unique(y_test)) < 2:
        raise ValueError(f"the test labels of {label!r} have one class only; AUROC is undefined")
    x_train = features.encode(train.drop(columns=[label]), dtype="float64")
    x_test = features.encode(test.drop(columns=[label]), dtype="float64")
    if len(np.unique(y_train)) < 2:
        return AUROCResult(0.5, 0.5, len(train), len(test), single_class=True)
    scores = {}
    # One thread: on a shared, busy machine OpenMP's spinning worker threads in HistGradientBoosting make a
    # seconds-long fit take many minutes; one thread is predictable and the results are the same.
    with threadpool_limits(limits=1):
        for name, model in (
            ("lr", LogisticRegression(max_iter=1000, random_state=seed)),
            ("gb", HistGradientBoostingClassifier(random_state=seed)),
        ):
            model.fit(x_train, y_train)
            scores[name] = float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))
    return AUROCResult(scores["lr"], scores["gb"], len(train), len(test))


def _binned(df, schema, *, bins):
    """Each column as integer bin codes in [0, k) and the number of bins k (missing: the last bin)."""
    transformer = TableTransformer(schema)
    encoded = transformer.encode(df, dtype="float64")
    spans = iter(transformer.spans)
    result = {}
    for column in schema.columns:
        span = next(spans)
        block = encoded[:, span.start : span.start + span.width]
        if isinstance(column, CategoricalColumn):
            result[column.name] = (block.argmax(axis=1), span.width)
            continue
        codes = np.minimum((block[:, 0] * bins).astype(np.int64), bins - 1)
        if column.nullable:
            flag = next(spans)
            codes = np.where(encoded[:, flag.start : flag.start + flag.width].argmax(axis=1) == 1, bins, codes)
        result[column.name] = (codes, bins + int(column.nullable))
    return result


def _frequencies(codes, size):
    counts = np.bincount(codes, minlength=size).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def marginal_tvd(real, synthetic, *, schema, bins=20):
    """Total variation distance between the real and synthetic marginal of each column.

    TVD = 1/2 sum |p - q| over categories (with a missing category for nullable columns), or over `bins`
    equal-width bins of the encoded numeric value (plus a missing bin).

    Args:
        real: real DataFrame.
        synthetic: synthetic DataFrame.
        schema: the `TableSchema` of both.
        bins: number of bins of numeric columns, >= 1.

    Returns:
        A dict column name -> TVD in [0, 1], in schema order.

    Raises:
        SchemaError: if a table does not fit the schema.
    """
    real_bins, synthetic_bins = _binned(real, schema, bins=bins), _binned(synthetic, schema, bins=bins)
    return {
        name: 0.5 * float(np.abs(_frequencies(*real_bins[name]) - _frequencies(synthetic_bins[name][0], size)).sum())
        for name, (_, size) in real_bins.items()
    }


def _cramers_v(a, size_a, b, size_b):
    table = np.zeros((size_a, size_b))
    np.add.at(table, (a, b), 1.0)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return 0.0  # a constant column is associated with nothing
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))


@dataclasses.dataclass(frozen=True)
class AssociationDifference:
    """Pairwise association (Cramér's V) of the real and the synthetic table, and their difference.

    Attributes:
        columns: the column names, in schema order.
        real: Cramér's V matrix of the real table (symmetric, ones on the diagonal).
        synthetic: the same for the synthetic table.
        mean_absolute_difference: mean of |real - synthetic| over the pairs of distinct columns.
    """

    columns: tuple
    real: np.ndarray
    synthetic: np.ndarray
    mean_absolute_difference: float

    def summary(self):
        """One line of text with the largest difference."""
        difference = np.abs(self.real - self.synthetic)
        i, j = np.unravel_index(np.argmax(difference), difference.shape)
        return (
            f"pairwise association (Cramér's V) differs by {self.mean_absolute_difference:.4f} on average over "
            f"{len(self.columns) * (len(self.columns) - 1) // 2} column pairs; most for "
            f"({self.columns[i]}, {self.columns[j]}): real {self.real[i, j]:.3f}, synthetic {self.synthetic[i, j]:.3f}"
        )


def association_difference(real, synthetic, *, schema, bins=10):
    """Compares the pairwise associations of a real and a synthetic table.

    Every pair of columns is scored with Cramér's V on categories and binned numeric values (see
    `marginal_tvd`), one measure in [0, 1] for every type of pair: it captures non-linear and
    categorical-numeric dependence, which Pearson's correlation would miss.

    Args:
        real: real DataFrame.
        synthetic: synthetic DataFrame.
        schema: the `TableSchema` of both (at least two columns).
        bins: number of bins of numeric columns, >= 2.

    Returns:
        An `AssociationDifference`.

    Raises:
        SchemaError: if a table does not fit the schema.
        ValueError: if the schema has fewer than two columns.
    """
    if len(schema.columns) < 2:
        raise ValueError("association_difference needs a schema with at least two columns")
    matrices = []
    for table in (real, synthetic):
        coded = _binned(table, schema, bins=bins)
        names = list(coded)
        matrix = np.eye(len(names))
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                matrix[i, j] = matrix[j, i] = _cramers_v(*coded[names[i]], *coded[names[j]])
        matrices.append(matrix)
    pairs = np.triu_indices(len(schema.columns), k=1)
    mean = float(np.abs(matrices[0] - matrices[1])[pairs].mean())
    return AssociationDifference(tuple(schema.names), matrices[0], matrices[1], mean)


def plot_marginals(real, synthetic, *, schema, path, bins=20, title=None, names=("real", "synthetic")):
    """Saves a grid of bar charts comparing the real and synthetic marginal of every column.

    Args:
        real: real DataFrame.
        synthetic: synthetic DataFrame.
        schema: the `TableSchema` of both.
        path: the PNG file to write (atomically).
        bins: number of bins of numeric columns.
        title: optional figure title.
        names: the legend's names of the two tables.

    Returns:
        `path`.

    Raises:
        SchemaError: if a table does not fit the schema.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real_bins, synthetic_bins = _binned(real, schema, bins=bins), _binned(synthetic, schema, bins=bins)
    tvd = marginal_tvd(real, synthetic, schema=schema, bins=bins)
    columns = 3
    rows = math.ceil(len(schema.columns) / columns)
    # Constrained layout leaves room for the title above the panels, whatever the number of rows.
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 2.6 * rows), squeeze=False, layout="constrained")
    for axis, column in zip(axes.flat, schema.columns):
        codes, size = real_bins[column.name]
        positions = np.arange(size)
        axis.bar(positions - 0.2, _frequencies(codes, size), width=0.4, label=names[0])
        axis.bar(positions + 0.2, _frequencies(synthetic_bins[column.name][0], size), width=0.4, label=names[1])
        axis.set_title(f"{column.name} (TVD {tvd[column.name]:.3f})", fontsize=9)
        if isinstance(column, CategoricalColumn):
            ticks = [str(c) for c in column.categories] + (["missing"] if column.nullable else [])
            axis.set_xticks(positions, ticks, rotation=90, fontsize=6)
        else:
            scale = "log1p bins" if column.transform == "log1p" else "bins"
            missing = " + missing" if column.nullable else ""
            axis.set_xlabel(f"{scale} of [{column.lower:g}, {column.upper:g}]{missing}", fontsize=7)
    for axis in list(axes.flat)[len(schema.columns):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    if title:
        figure.suptitle(title)
    save_figure(figure, path, dpi=100)
    return path
