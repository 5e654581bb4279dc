"""The public description of a table: column types, numeric bounds and category sets.

A DP synthesizer needs bounds to scale numeric columns and category lists to one-hot encode categorical
ones. Reading them from the private table (min/max, the set of values seen) leaks: a bound equal to one
person's income, or a category that only one person has, is released verbatim. So a `TableSchema` is
written by hand from public knowledge (a codebook, a data dictionary) and saved as JSON. `infer_schema`
reads it from the data only when the caller states in the call that the result is not private; the
schema then carries `source="data"` and every privacy statement made with it says so.
"""

import dataclasses
import json
import math
import numbers
import pathlib
import warnings

import numpy as np
import pandas as pd

from privgan.io import write_json

NUMERIC_TRANSFORMS = ("linear", "log1p")
SCHEMA_SOURCES = ("public", "data")
_FORMAT_VERSION = 1


class SchemaError(ValueError):
    """A schema, or a table checked against one, is invalid; the message names the column and value."""


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise SchemaError(f"column name must be a non-empty string, got {name!r}")
    return name


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class NumericColumn:
    """A numeric column with public bounds.

    Attributes:
        name: the column's name.
        lower: smallest allowed value (finite).
        upper: largest allowed value (finite, > lower).
        integer: values are whole numbers (decoded as int64, or Int64 when nullable).
        nullable: missing values (NaN) are allowed and modelled.
        transform: "linear" (min-max scaling to [0, 1]) or "log1p" (min-max scaling of log1p(x - lower),
            for heavy-tailed columns such as incomes, where most mass sits near the lower bound).
        decimals: synthetic values are rounded to this many decimals (a BMI measured to one decimal: 1);
            None (default): not rounded. Not for integer columns, which are whole numbers already.
        unit: the unit of the values ("years", "kg/m2"), for the labels of reports; None: none given.
    """

    name: str
    lower: float
    upper: float
    integer: bool = False
    nullable: bool = False
    transform: str = "linear"
    decimals: int | None = None
    unit: str | None = None

    def __post_init__(self):
        _check_name(self.name)
        for bound in ("lower", "upper"):
            value = getattr(self, bound)
            if not _is_real(value) or not math.isfinite(value):
                raise SchemaError(f"column {self.name!r}: {bound} must be a finite number, got {value!r}")
            object.__setattr__(self, bound, float(value))
        if not self.lower < self.upper:
            raise SchemaError(
                f"column {self.name!r}: lower must be < upper, got lower={self.lower:g}, upper={self.upper:g}"
            )
        if self.integer and (self.lower != round(self.lower) or self.upper != round(self.upper)):
            raise SchemaError(
                f"column {self.name!r}: an integer column needs whole-number bounds, got "
                f"[{self.lower:g}, {self.upper:g}]"
            )
        for flag in ("integer", "nullable"):
            if not isinstance(getattr(self, flag), bool):
                raise SchemaError(f"column {self.name!r}: {flag} must be true or false, got {getattr(self, flag)!r}")
        if self.transform not in NUMERIC_TRANSFORMS:
            raise SchemaError(
                f"column {self.name!r}: transform must be one of {NUMERIC_TRANSFORMS}, got {self.transform!r}"
            )
        if self.decimals is not None:
            if isinstance(self.decimals, bool) or not isinstance(self.decimals, int) or not 0 <= self.decimals <= 15:
                raise SchemaError(
                    f"column {self.name!r}: decimals must be an integer in [0, 15], got {self.decimals!r}"
                )
            if self.integer:
                raise SchemaError(f"column {self.name!r}: decimals is for non-integer columns (integer=true rounds)")
        if self.unit is not None and not isinstance(self.unit, str):
            raise SchemaError(f"column {self.name!r}: unit must be a string, got {self.unit!r}")

    @property
    def label(self):
        """The column's name with its unit, for axes: "age (years)"."""
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def to_dict(self):
        """The JSON form (see `TableSchema.to_dict`); decimals and unit only when given."""
        d = {"type": "numeric", **dataclasses.asdict(self)}
        return {key: value for key, value in d.items() if value is not None or key not in ("decimals", "unit")}


def default_decimals(column):
    """Decimals keeping about a thousandth of a non-integer column's public range (None for integers).

    Read from the schema's bounds only, never from the data: [10, 60] gives 2 decimals, [0, 1] 3, [0, 5000] 0.
    """
    if column.integer:
        return None
    return max(0, math.ceil(3 - math.log10(column.upper - column.lower)))


@dataclasses.dataclass(frozen=True)
class CategoricalColumn:
    """A categorical column with a public set of categories.

    Attributes:
        name: the column's name.
        categories: the allowed values, in a fixed order: non-empty, distinct, all strings or all integers.
        nullable: missing values (NaN) are allowed and modelled as one more category.
    """

    name: str
    categories: tuple
    nullable: bool = False

    def __post_init__(self):
        _check_name(self.name)
        if isinstance(self.categories, (str, bytes)) or not hasattr(self.categories, "__iter__"):
            raise SchemaError(f"column {self.name!r}: categories must be a list, got {self.categories!r}")
        categories = tuple(
            int(c) if isinstance(c, numbers.Integral) and not isinstance(c, bool) else c for c in self.categories
        )
        if not categories:
            raise SchemaError(f"column {self.name!r}: categories must not be empty")
        if not (all(isinstance(c, str) for c in categories) or all(isinstance(c, int) for c in categories)):
            raise SchemaError(
                f"column {self.name!r}: categories must be all strings or all integers, got {list(categories)!r}"
            )
        duplicates = sorted({c for c in categories if categories.count(c) > 1}, key=str)
        if duplicates:
            raise SchemaError(f"column {self.name!r}: duplicate categories {duplicates!r}")
        if not isinstance(self.nullable, bool):
            raise SchemaError(f"column {self.name!r}: nullable must be true or false, got {self.nullable!r}")
        object.__setattr__(self, "categories", categories)

    @property
    def integer_categories(self):
        """Whether the categories are integers (decoded as int64) rather than strings."""
        return isinstance(self.categories[0], int)

    def to_dict(self):
        """The JSON form (see `TableSchema.to_dict`)."""
        return {
            "type": "categorical", "name": self.name, "categories": list(self.categories), "nullable": self.nullable
        }


_COLUMN_TYPES = {"numeric": NumericColumn, "categorical": CategoricalColumn}
IGNORED = "ignored"  # a column of the file left out of the model and the synthetic table (identifiers, notes)


def date_hint(name):
    """What to do with a date column `name`: ignore it or store it as a number."""
    entry = json.dumps({"type": IGNORED, "name": name})
    return (
        f"date columns are not modelled: declare it {entry} in the schema (or pass --drop_columns={name}) to leave "
        "it out of the synthetic table, or store it as a number with public bounds (the year, or days since a "
        "public reference date)"
    )


@dataclasses.dataclass(frozen=True)
class TableSchema:
    """The columns of a table, in order.

    Attributes:
        columns: `NumericColumn`s and `CategoricalColumn`s with distinct names.
        source: "public" (written from public knowledge: the default) or "data" (read from the private
            table by `infer_schema`: the privacy guarantee of anything trained with it does not hold).
        ignored: names of columns of the file that are left out: never read beyond the header, not
            modelled, not in the synthetic table (identifiers, free text, dates); JSON entries
            `{"type": "ignored", "name": ...}`.
    """

    columns: tuple
    source: str = "public"
    ignored: tuple = ()

    def __post_init__(self):
        columns = tuple(self.columns)
        if not columns:
            raise SchemaError("a schema needs at least one column")
        for column in columns:
            if not isinstance(column, (NumericColumn, CategoricalColumn)):
                raise SchemaError(f"columns must be NumericColumn or CategoricalColumn objects, got {column!r}")
        names = [column.name for column in columns]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise SchemaError(f"duplicate column names {duplicates}")
        if self.source not in SCHEMA_SOURCES:
            raise SchemaError(f"source must be one of {SCHEMA_SOURCES}, got {self.source!r}")
        if isinstance(self.ignored, str):
            raise SchemaError(f"ignored must be a list of column names, got {self.ignored!r}")
        ignored = tuple(dict.fromkeys(_check_name(name) for name in self.ignored))
        both = sorted(set(ignored) & set(names))
        if both:
            raise SchemaError(f"columns {both} are both modelled and ignored")
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "ignored", ignored)

    @property
    def names(self):
        """The column names, in order."""
        return tuple(column.name for column in self.columns)

    def __getitem__(self, name):
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"the schema has no column {name!r}; its columns are {list(self.names)}")

    def without(self, *names):
        """The schema without the named columns (e.g. the label, to build classifier features).

        Raises:
            KeyError: if a name is not a column.
        """
        for name in names:
            self[name]
        return dataclasses.replace(self, columns=tuple(c for c in self.columns if c.name not in names))

    def ignoring(self, *names):
        """The schema with the named columns ignored (left out of the model): `--drop_columns`.

        A name may be a column of the schema (it is removed from the model) or a column of the file only.
        """
        modelled = [name for name in names if name in self.names]
        kept = self.without(*modelled) if len(modelled) < len(self.columns) else None
        if kept is None:
            raise SchemaError(f"cannot ignore every column of the schema: {list(self.names)}")
        return dataclasses.replace(kept, ignored=self.ignored + tuple(n for n in names if n not in self.ignored))

    def to_dict(self):
        """The JSON form: `{"format_version": 1, "source": ..., "columns": [{"type": "numeric", "name": ...,
        "lower": ..., "upper": ..., "integer": ..., "nullable": ..., "transform": ...}, {"type":
        "categorical", "name": ..., "categories": [...], "nullable": ...}, ...]}`."""
        return {
            "format_version": _FORMAT_VERSION,
            "source": self.source,
            "columns": [column.to_dict() for column in self.columns]
            + [{"type": IGNORED, "name": name} for name in self.ignored],
        }

    @classmethod
    def from_dict(cls, d):
        """Builds a schema from its JSON form (optional keys take their defaults).

        Raises:
            SchemaError: if `d` is not of that form or a column is invalid.
        """
        if not isinstance(d, dict) or not isinstance(d.get("columns"), list):
            raise SchemaError('a schema must be a JSON object with a "columns" list')
        unknown = sorted(set(d) - {"format_version", "source", "columns"})
        if unknown:
            raise SchemaError(f"unknown schema keys {unknown}")
        columns, ignored = [], []
        for index, entry in enumerate(d["columns"]):
            kind = entry.get("type") if isinstance(entry, dict) else None
            if kind == IGNORED:
                if sorted(entry) != ["name", "type"]:
                    raise SchemaError(f"columns[{index}]: an ignored column takes the keys ['name'], got {entry!r}")
                ignored.append(entry["name"])
                continue
            if kind in ("date", "datetime"):
                name = entry.get("name", "?")
                raise SchemaError(f"columns[{index}] ({name!r}): {date_hint(name)}")
            if kind not in _COLUMN_TYPES:
                raise SchemaError(
                    f"columns[{index}]: type must be one of {sorted(_COLUMN_TYPES) + [IGNORED]}, got {kind!r} in "
                    f"{entry!r}"
                )
            fields = {k: v for k, v in entry.items() if k != "type"}
            try:
                columns.append(_COLUMN_TYPES[kind](**fields))
            except TypeError as error:
                # Missing or unexpected keys: name the entry, not the dataclass signature.
                allowed = [f.name for f in dataclasses.fields(_COLUMN_TYPES[kind])]
                raise SchemaError(
                    f"columns[{index}] ({entry.get('name', '?')!r}): a {kind} column takes the keys "
                    f"{allowed} (name and {'lower, upper' if kind == 'numeric' else 'categories'} required), "
                    f"got {sorted(fields)}"
                ) from error
        return cls(tuple(columns), source=d.get("source", "public"), ignored=tuple(ignored))


def load_schema(path):
    """Reads a schema from a JSON file written by `save_schema` (or by hand).

    Raises:
        FileNotFoundError: if the file is missing.
        SchemaError: if it is not valid JSON or not a valid schema.
    """
    path = pathlib.Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SchemaError(f"schema file {path} is not valid JSON: {error}") from error
    return TableSchema.from_dict(d)


def save_schema(schema, path):
    """Writes `schema` as JSON to `path` atomically."""
    write_json(path, schema.to_dict())


def infer_schema(df, *, i_understand_this_is_not_private=False, integer_max_categories=0):
    """Reads a schema from the data itself: NOT differentially private.

    Numeric bounds are the observed min and max and category sets the observed values, so the schema
    (and every synthetic table whose values it bounds) can reveal individual rows. Use it only on public
    data or to draft a schema that you then replace with public bounds. The result has `source="data"`,
    which privacy statements report.

    Args:
        df: a DataFrame.
        i_understand_this_is_not_private: must be True; the default refuses.
        integer_max_categories: integer columns with at most this many distinct values become categorical
            (0: never).

    Returns:
        A `TableSchema` with `source="data"`.

    Raises:
        ValueError: unless `i_understand_this_is_not_private` is True, or if a column is empty.
    """
    if i_understand_this_is_not_private is not True:
        raise ValueError(
            "infer_schema reads bounds and category sets from the private data, which is not differentially "
            "private; write the schema from public knowledge, or pass i_understand_this_is_not_private=True"
        )
    warnings.warn(
        "infer_schema: the schema's bounds and categories are read from the data; anything trained with it "
        "has NO differential privacy guarantee for them (schema source='data').",
        UserWarning,
        stacklevel=2,
    )
    columns = []
    for name in df.columns:
        series = df[name]
        present = series.dropna()
        if present.empty:
            raise ValueError(f"column {name!r} has no values to infer a schema from")
        nullable = bool(series.isna().any())
        is_integer = pd.api.types.is_integer_dtype(present) or (
            pd.api.types.is_float_dtype(present) and bool(np.all(present == np.round(present)))
        )
        if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
            if is_integer and present.nunique() <= integer_max_categories:
                columns.append(CategoricalColumn(str(name), tuple(sorted(int(v) for v in present.unique())), nullable))
                continue
            lower, upper = float(present.min()), float(present.max())
            if lower == upper:
                upper = lower + 1.0
            columns.append(NumericColumn(str(name), lower, upper, integer=bool(is_integer), nullable=nullable))
        else:
            columns.append(CategoricalColumn(str(name), tuple(sorted(str(v) for v in present.unique())), nullable))
    return TableSchema(tuple(columns), source="data")
