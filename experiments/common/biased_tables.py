"""Generated biased tables for the attribute-aware regime: many tables, none tuned on.

Each table has about 5,000 rows, a binary label, a binary sensitive attribute that is NOT among the
features, and is hard enough that a logistic regression reaches only about 0.65-0.70 accuracy while its
equalized-odds difference is large (0.15-0.35): the regime of a held-back table the fairness issue was
checked on. The `variant` draws the table's structure (group share, how strongly the label and the
features depend on the group, how many proxies of the group there are, a non-linear term, a categorical
column), so a method is measured on several different tables rather than fitted to one.

Structure of a table: a group `s ~ Bernoulli(q)` and a merit `m ~ N(0, 1)`; the label is
`1[a m + b s + c (m^2 - 1) + e > t]` with a large noise `e` (this caps every classifier's accuracy); the
features are noisy copies of the merit, proxies of the group (`s + noise`), a group-dependent categorical
column and pure noise. A classifier that leans on the proxies has different true- and false-positive rates
in the two groups: the equalized-odds gap that post-processing with the attribute must remove.
"""

import argparse
import pathlib
import tempfile

import numpy as np
import pandas as pd


def biased_table(*, variant, n_rows=5000, random_state=0):
    """One generated table as a DataFrame with columns `x0..`, `category`, `label` and `group`.

    Args:
        variant: integer >= 0 drawing the table's structure (different variants are different tables).
        n_rows: number of rows, >= 100.
        random_state: seed of the rows (the structure comes from `variant` alone).

    Returns:
        A DataFrame: numeric features, one categorical feature, `label` (0/1) and `group` (0/1).

    Raises:
        ValueError: for `variant < 0` or `n_rows < 100`.
    """
    if isinstance(variant, bool) or not isinstance(variant, (int, np.integer)) or variant < 0:
        raise ValueError(f"variant must be an integer >= 0, got {variant!r}")
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 100:
        raise ValueError(f"n_rows must be an integer >= 100, got {n_rows!r}")
    shape = np.random.default_rng([variant, 7919])
    share = shape.uniform(0.3, 0.6)  # group 1's share
    merit_weight = shape.uniform(0.8, 1.2)
    group_effect = shape.uniform(1.2, 1.8)  # how much the label favours group 1
    curvature = shape.uniform(0.0, 0.4)
    label_noise = shape.uniform(1.3, 1.7)
    n_merit, n_proxies = int(shape.integers(2, 5)), int(shape.integers(1, 4))
    proxy_strength = shape.uniform(1.0, 2.0, n_proxies)
    rng = np.random.default_rng(random_state)
    group = (rng.random(n_rows) < share).astype(np.int64)
    merit = rng.normal(size=n_rows)
    score = merit_weight * merit + group_effect * group + curvature * (merit**2 - 1)
    score = score + label_noise * rng.normal(size=n_rows)
    label = (score > np.median(score) + shape.uniform(-0.3, 0.3)).astype(np.int64)
    columns = {}
    for j in range(n_merit):  # noisy measurements of the merit
        columns[f"x{j}"] = merit + shape.uniform(0.5, 1.5) * rng.normal(size=n_rows)
    for j in range(n_proxies):  # proxies of the group, correlated with the merit a little
        columns[f"x{n_merit + j}"] = proxy_strength[j] * group + 0.2 * merit + rng.normal(size=n_rows)
    columns[f"x{n_merit + n_proxies}"] = rng.normal(size=n_rows)  # noise
    levels = np.array(["a", "b", "c", "d"])
    category = np.where(rng.random(n_rows) < 0.5, levels[rng.integers(0, 4, n_rows)],
                        levels[np.clip(group * 2 + (merit > 0), 0, 3)])
    frame = pd.DataFrame(columns)
    frame["category"] = category
    frame["label"] = label
    frame["group"] = group
    return frame


def write_tables(directory, *, variants, n_rows=5000, random_state=0):
    """Writes `biased_<variant>.csv` for each variant into `directory` (temp file, then rename).

    Returns:
        The written paths.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for variant in variants:
        path = directory / f"biased_{variant}.csv"
        with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as handle:
            biased_table(variant=variant, n_rows=n_rows, random_state=random_state).to_csv(handle, index=False)
        pathlib.Path(handle.name).replace(path)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--variants", default="0,1,2,3")
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args(argv)
    for path in write_tables(args.output_dir, variants=[int(v) for v in args.variants.split(",")], n_rows=args.rows):
        print(path)


if __name__ == "__main__":
    main()
