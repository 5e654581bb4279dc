"""Writing a synthetic table and its privacy statement together, whichever synthesizer made them."""

import json
import pathlib
import warnings

from privgan.accounting.events import check_count
from privgan.accounting.guarantees import INFERRED_SCHEMA_WARNING
from privgan.accounting.statement import rounded_statement
from privgan.io import atomic_path

__all__ = ["INFERRED_SCHEMA_WARNING", "SyntheticTableMixin", "warn_if_inferred", "write_synthetic"]


class SyntheticTableMixin:
    """The DP-generator names of a table synthesizer's `sample` and `save` (see `privgan.registry.DPGenerator`).

    A host defines `sample(n, conditions=...)` and `save(csv_path, rows=..., conditions=...)`; code written for
    any privgan generator calls `generate` and `save_synthetic`, which are these for a table.
    """

    def generate(self, n, *, conditions=None):
        """`n` synthetic rows: `sample(n, conditions=conditions)`."""
        return self.sample(n, conditions=conditions)

    def save_synthetic(self, path, n, *, conditions=None):
        """Writes `n` synthetic rows to the CSV `path` and the statement beside it: `save(path, rows=n, ...)`."""
        return self.save(path, rows=n, conditions=conditions)


def warn_if_inferred(schema):
    """Warns when `schema` was read from the data (`infer_schema`): its bounds and categories leak."""
    if schema.source != "public":
        warnings.warn(
            "the schema was read from the data (source='data'): the synthetic data's privacy guarantee "
            "does not cover its bounds and categories",
            UserWarning,
            stacklevel=3,
        )


def write_synthetic(synthesizer, csv_path, *, rows, conditions=None):
    """Writes `rows` synthetic rows to a CSV and the synthesizer's privacy statement to JSON beside it.

    The statement goes to `csv_path` with suffix `.json`, with the number of rows, the data file's name and
    the conditions (if any), its floats rounded never in the guarantee's favour (`rounded_statement`). Both
    files are written to temporary files and renamed only when both are complete, so an error leaves neither.

    Args:
        synthesizer: a fitted synthesizer with `sample(n, conditions=...)` and `privacy_statement()`.
        csv_path: destination, ending in `.csv` (its folder is created if missing).
        rows: number of synthetic rows, an integer >= 1.
        conditions: optional dict column -> value that every row takes (see the synthesizer's `sample`).

    Returns:
        `(csv_path, statement_path)` as `pathlib.Path`s.

    Raises:
        ValueError: if `csv_path` does not end in .csv or `rows` < 1.
    """
    csv_path = pathlib.Path(csv_path)
    if csv_path.suffix.lower() != ".csv":
        raise ValueError(f"csv_path must end in .csv, got {str(csv_path)!r}")
    rows = check_count(rows, name="rows", minimum=1)
    synthetic = synthesizer.sample(rows, conditions=conditions)
    statement = {**synthesizer.privacy_statement().to_dict(), "num_rows": rows, "data_file": csv_path.name}
    if conditions:
        statement["conditions"] = {name: value for name, value in conditions.items()}
    text = json.dumps(rounded_statement(statement), indent=2, sort_keys=True, allow_nan=False,
                      default=_json_value) + "\n"
    statement_path = csv_path.with_suffix(".json")
    with atomic_path(csv_path) as csv_temporary, atomic_path(statement_path) as json_temporary:
        synthetic.to_csv(csv_temporary, index=False)
        json_temporary.write_text(text, encoding="utf-8")
    return csv_path, statement_path


def _json_value(value):
    # numpy scalars from settings or conditions
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {value!r}")
