"""A small schema and a generated table that fits it, shared by the tabular tests."""

import numpy as np
import pandas as pd

from privgan.tabular import CategoricalColumn, NumericColumn, TableSchema

SCHEMA = TableSchema(
    (
        NumericColumn("age", 18, 90, integer=True),
        CategoricalColumn("colour", ("red", "green", "blue"), nullable=True),
        NumericColumn("income", 0, 100_000, transform="log1p"),
        NumericColumn("score", -1.0, 1.0, nullable=True),
        CategoricalColumn("grade", (1, 2, 3)),
        CategoricalColumn("label", ("yes", "no")),
    )
)


def make_table(rows=300, seed=0):
    """A table fitting SCHEMA in which `label` depends on `age` and `colour` (so classifiers can learn it)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 91, rows)
    colour = rng.choice(np.array(["red", "green", "blue", None], dtype=object), rows, p=[0.5, 0.3, 0.1, 0.1])
    score = np.where(rng.random(rows) < 0.2, np.nan, rng.uniform(-1, 1, rows))
    label = np.where((age > 50) ^ (colour == "red"), "yes", "no")
    return pd.DataFrame(
        {
            "age": age,
            "colour": pd.Series(colour),
            "income": np.round(rng.exponential(20_000, rows).clip(0, 100_000), 2),
            "score": score,
            "grade": rng.integers(1, 4, rows),
            "label": pd.Series(label.astype(object)),
        }
    )
