"""An example input for `privgan-synthesize`: a private table and its public schema, written to a folder.

The table is scikit-learn's bundled Wisconsin breast-cancer data (569 rows, 30 numeric measurements and
the diagnosis; no download), and the schema is `BREAST_CANCER_SCHEMA`, written from the dataset's feature
definitions rather than from its values. `privgan-synthesize --write_example=DIR` calls `write_table_example`.
"""

import pathlib

import pandas as pd

from privgan.data.breast_cancer import BREAST_CANCER_SCHEMA, load_breast_cancer_table
from privgan.io import atomic_path
from privgan.tabular.schema import save_schema

TABLE_NAME = "breast_cancer.csv"
SCHEMA_NAME = "breast_cancer.schema.json"


def write_table_example(folder):
    """Writes `breast_cancer.csv` (all 569 rows) and `breast_cancer.schema.json` to `folder`.

    Args:
        folder: the destination folder (created if missing); existing example files are replaced.

    Returns:
        `(csv_path, schema_path)` as `pathlib.Path`s.
    """
    folder = pathlib.Path(folder)
    train, test = load_breast_cancer_table()
    table = pd.concat([train, test], ignore_index=True)
    csv_path, schema_path = folder / TABLE_NAME, folder / SCHEMA_NAME
    with atomic_path(csv_path) as temporary:
        table.to_csv(temporary, index=False)
    save_schema(BREAST_CANCER_SCHEMA, schema_path)
    return csv_path, schema_path
