"""Checking a DataFrame against a `TableSchema`, and encoding it to / decoding it from the GAN's vectors.

Encoding uses the schema only (no statistic of the data): a numeric column becomes one value in [0, 1]
(its value scaled between the schema's bounds, linearly or on a log1p scale), plus a two-way
[present, missing] one-hot block when it is nullable; a categorical column becomes a one-hot block over
its categories (plus a last "missing" slot when nullable). Decoding inverts this: the arg-max of each
block, numeric values scaled back, clipped to the bounds and rounded for integer columns, with the
schema's column order and dtypes (int64 / Int64 when nullable for integer columns and integer
categories, float64, strings).
"""

import contextlib
import csv
import dataclasses
import difflib
import pathlib

import numpy as np
import pandas as pd

from privgan.tabular.schema import CategoricalColumn, NumericColumn, SchemaError, date_hint


@dataclasses.dataclass(frozen=True)
class Span:
    """A slice of the encoded vector and the activation the generator puts on it.

    Attributes:
        start: first index.
        width: number of entries.
        activation: "sigmoid" (each entry a bounded value in [0, 1]) or "softmax" (a one-hot block).
    """

    start: int
    width: int
    activation: str


def _shown(value):
    """A value as a user wrote it: `120`, `0.5`, `'purple'`, not `np.int64(120)`."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _index_rows(df):
    """Names rows by their index label: "row 7"."""
    return lambda position: f"row {_shown(df.index[position])}"


def _column_mismatch(schema, columns):
    """The message for missing or extra columns (None if the columns match), suggesting misspellings."""
    missing = [name for name in schema.names if name not in columns]
    extra = [str(name) for name in columns if name not in schema.names and name not in schema.ignored]
    if missing:
        guesses = {name: difflib.get_close_matches(name, extra, n=1, cutoff=0.6) for name in missing}
        hints = [f"{guess[0]!r} for {name!r}" for name, guess in guesses.items() if guess]
        if not extra:
            return (f"missing columns {missing}: in the schema but not in the table "
                    f"(which has {[str(c) for c in columns]})")
        message = f"missing columns {missing}: in the schema but not in the table, whose unmatched columns are {extra}"
        return message + (f"; did you mean {', '.join(hints)}?" if hints else "")
    if extra:
        return (
            f"extra columns {extra} not in the schema (which has {list(schema.names)}); to leave them out of the "
            f"synthetic table (identifiers, dates, free text), pass --drop_columns={','.join(extra)} or declare "
            'each in the schema as {"type": "ignored", "name": ...}'
        )
    return None


_SHOWN_PER_PROBLEM = 5  # values listed for each kind of problem of a column
_SHOWN_PROBLEMS = 20  # kinds of problems listed in one message


def validate_frame(df, schema, *, row_names=None):
    """Checks that `df` fits `schema`; returns its columns in the schema's order.

    Columns the schema ignores (`TableSchema.ignored`) are dropped without being looked at.

    Args:
        df: a pandas DataFrame.
        schema: a `TableSchema`.
        row_names: how messages name the row at a position (a function of the position); by default
            "row <index label>". `read_csv` names CSV rows by data row and line number.

    Returns:
        `df` with its columns reordered as in the schema.

    Raises:
        SchemaError: listing every problem at once, for each column and kind of problem the number of
            rows and the first few values and rows, with the allowed range or categories: missing or
            extra columns, a non-numeric or non-finite value in a numeric column, a value outside the
            bounds, a fractional value in an integer column, an unknown category, or a missing value in
            a column that is not nullable.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"expected a pandas DataFrame, got {type(df).__name__}")
    mismatch = _column_mismatch(schema, list(df.columns))
    if mismatch:
        raise SchemaError(mismatch)
    if df.columns.duplicated().any():
        raise SchemaError(f"duplicate columns {sorted(set(df.columns[df.columns.duplicated()]))}")
    row_names = row_names or _index_rows(df)
    problems = []  # (column, one bad value, several, positions, the column's values)
    for column in schema.columns:
        series = df[column.name]
        absent = series.isna().to_numpy()
        if absent.any() and not column.nullable:
            problems.append((column.name, "missing value (NaN) at {row}, but {why}", "missing values, but {why}",
                             np.flatnonzero(absent), None))
        if isinstance(column, NumericColumn):
            problems += _numeric_problems(series, absent, column)
        else:
            problems += _category_problems(series, absent, column)
    if problems:
        raise SchemaError(_problems_message(problems, row_names, rows=len(df)))
    return df[list(schema.names)]


_NULLABLE = "the schema does not allow missing values (nullable=false)"
_MISSING_MARKERS = {"NA", "N/A", "NaN", "nan", "null", "NULL", "None", ".", "-", "?", "#N/A"}


def _numeric_problems(series, absent, column):
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(values) & ~absent
    if pd.api.types.is_bool_dtype(series):
        bad = ~absent
    problems = []
    if bad.any():
        texts = series[bad].astype(str)
        dates = texts.str.fullmatch(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T].*)?").mean() > 0.5
        markers = sorted(set(texts) & _MISSING_MARKERS)
        hint = f" ({date_hint(column.name)})" if dates else ""
        if markers and not dates:
            hint = f" (if {', '.join(map(repr, markers))} mark missing values, pass --na_values=,{','.join(markers)})"
        problems.append((column.name, "value {value} at {row} is not a number" + hint,
                         "values that are not numbers" + hint, np.flatnonzero(bad), series))
    present = ~absent & ~bad
    outside = present & ~((values >= column.lower) & (values <= column.upper))
    bounds = f"the schema bounds [{column.lower:g}, {column.upper:g}]"
    if outside.any():
        problems.append((column.name, f"value {{value}} at {{row}} is outside {bounds}", f"values outside {bounds}",
                         np.flatnonzero(outside), series))
    if column.integer:
        fractional = present & ~outside & (values != np.round(values))
        if fractional.any():
            problems.append((column.name, "value {value} at {row} is not a whole number, but the schema says "
                             "integer=true", "values that are not whole numbers, but the schema says integer=true",
                             np.flatnonzero(fractional), series))
    return problems


def _category_problems(series, absent, column):
    unknown = np.flatnonzero((_category_keys(series, absent, column) < 0) & ~absent)
    if not unknown.size:
        return []
    allowed = f"the schema allows {list(column.categories)}"
    return [(column.name, f"unknown category {{value}} at {{row}}; {allowed}", f"unknown categories ({allowed})",
             unknown, series)]


def _problems_message(problems, row_names, *, rows):
    """One message for all problems: a line per column and kind of problem, with its first values and rows."""

    def one(template, position, series):
        value = _shown(series.iloc[position]) if series is not None else ""
        # str.replace, not str.format: hints and categories may hold braces.
        return template.replace("{why}", _NULLABLE).replace("{value}", value).replace("{row}", row_names(int(position)))

    total = sum(len(positions) for _, _, _, positions, _ in problems)
    lines = []
    for name, single, several, positions, series in problems[:_SHOWN_PROBLEMS]:
        if len(positions) == 1:
            lines.append(f"column {name!r}: {one(single, positions[0], series)}")
            continue
        shown = [
            (f"{_shown(series.iloc[p])} at " if series is not None else "") + row_names(int(p))
            for p in positions[:_SHOWN_PER_PROBLEM]
        ]
        more = f"; and {len(positions) - len(shown)} more" if len(positions) > len(shown) else ""
        what = several.replace("{why}", _NULLABLE)
        lines.append(f"column {name!r}: {len(positions)} {what}: {'; '.join(shown)}{more}")
    if len(problems) > _SHOWN_PROBLEMS:
        lines.append(f"and {len(problems) - _SHOWN_PROBLEMS} more kinds of problem in other columns")
    if total == 1:
        return lines[0]
    return f"{total} bad values in {rows} rows:\n  " + "\n  ".join(lines)


def _category_keys(series, absent, column):
    """Index of each value in `column.categories`, -1 where missing or unknown."""
    index = {category: code for code, category in enumerate(column.categories)}
    codes = np.full(len(series), -1, dtype=np.int64)
    for position, value in enumerate(series.to_numpy(dtype=object)):
        if absent[position]:
            continue
        key = value
        if column.integer_categories and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            key = int(value) if float(value) == int(value) else value
        codes[position] = index.get(key, -1)
    return codes


def _category_codes(series, absent, column, row_names):
    """Index of each value in `column.categories`, -1 where missing; raises on an unknown category."""
    problems = _category_problems(series, absent, column)
    if problems:
        raise SchemaError(_problems_message(problems, row_names, rows=len(series)))
    return _category_keys(series, absent, column)


class _CsvRows:
    """Names the rows of a CSV file for messages: "data row 5 (line 7 of table.csv)".

    The lines are found only when a message needs them, in one pass over the file with Python's csv
    module (so that quoted line breaks and blank lines are counted as pandas counts them).
    """

    def __init__(self, path, *, delimiter=","):
        self.path = pathlib.Path(path)
        self.delimiter = delimiter
        self._lines = None

    def line(self, position):
        """The line on which data row `position` (0-based) starts, or None if it is not found."""
        if self._lines is None:
            self._lines = []
            with open(self.path, newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle, delimiter=self.delimiter)
                end_of_previous, header = 0, True
                for record in reader:
                    start, end_of_previous = end_of_previous + 1, reader.line_num
                    if not record:
                        continue  # a blank line, skipped by pandas too
                    if not header:
                        self._lines.append(start)
                    header = False
        return self._lines[position] if position < len(self._lines) else None

    def __call__(self, position):
        line = self.line(position)
        where = f"line {line} of {self.path.name}" if line is not None else self.path.name
        return f"data row {position + 1} ({where})"


def _delimiter_hint(columns, delimiter):
    """A hint when the header, read as one column, looks like it uses another delimiter; else ""."""
    if len(columns) != 1:
        return ""
    for other in (";", "\t", "|", ","):
        if other != delimiter and other in str(columns[0]):
            shown = "\\t" if other == "\t" else other
            return f"; the header looks like it uses {other!r} between columns: pass --delimiter='{shown}'"
    return ""


def string_category_dtypes(schema):
    """`read_csv` dtypes that keep the schema's string categories as written ("01" stays "01")."""
    return {
        column.name: str
        for column in schema.columns
        if isinstance(column, CategoricalColumn) and not column.integer_categories
    }


@contextlib.contextmanager
def csv_errors(path):
    """Turns pandas' errors reading the CSV at `path` into one `SchemaError` naming the file."""
    try:
        yield
    except pd.errors.EmptyDataError as error:
        raise SchemaError(f"{path} is empty: expected a CSV file with a header row of the schema's columns") from error
    except pd.errors.ParserError as error:
        raise SchemaError(f"{path} is not a well-formed CSV file: {' '.join(str(error).split())}") from error
    except UnicodeDecodeError as error:
        raise SchemaError(f"{path} is not UTF-8 text: {error}") from error


def read_csv(path, schema, *, delimiter=",", na_values=("",)):
    """Reads and checks a CSV for `schema`: string-category columns stay strings, only `na_values` are missing.

    pandas would otherwise read "NA" or "null" as missing and "01" as the number 1; reading by the schema
    keeps values as written, so that messages report them faithfully. Columns the schema ignores are read
    as text and dropped. The table is checked with `validate_frame`, whose message lists every bad
    value, naming rows as "data row 5 (line 6 of table.csv)".

    Args:
        path: the CSV file (with a header row).
        schema: a `TableSchema`.
        delimiter: the character between columns ("," default, ";", "\t", ...).
        na_values: the cells that are missing values (default: empty cells only; e.g. ("", "NA", ".")).

    Returns:
        A DataFrame with the schema's columns in the schema's order.

    Raises:
        FileNotFoundError: if the file does not exist.
        SchemaError: if the file is empty, has a header but no rows, cannot be parsed as CSV or does not fit
            the schema (the message names the file, the column, the value and the line).
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise SchemaError(f"{path} is a folder, not a CSV file")
    options = csv_options(schema, delimiter=delimiter, na_values=na_values)
    with csv_errors(path):
        df = pd.read_csv(path, **options)
    df = csv_columns(df, schema, path=path, delimiter=delimiter)
    if df.empty:
        raise SchemaError(f"{path} has a header but no data rows: the table is empty")
    return validate_frame(df, schema, row_names=_CsvRows(path, delimiter=delimiter))


def csv_options(schema, *, delimiter=",", na_values=("",)):
    """The `pandas.read_csv` keyword arguments that read a CSV for `schema` as `read_csv` does, whole or in chunks.

    String categories stay strings, columns the schema ignores are read as text (never parsed: pandas'
    usecols would also stop it from reporting rows with too many fields), and only `na_values` are missing.

    Args:
        schema: a `TableSchema`.
        delimiter: the character between columns ("," default, ";", "\t", ...).
        na_values: the cells that are missing values (a string or strings; default: empty cells only).

    Raises:
        SchemaError: if `delimiter` is not one character other than a quote or a line break, or `na_values`
            are not strings.
    """
    return {
        "dtype": {**string_category_dtypes(schema), **{name: str for name in schema.ignored}},
        "keep_default_na": False, "na_values": list(checked_csv_options(delimiter=delimiter, na_values=na_values)),
        "sep": delimiter,
    }


def checked_csv_options(*, delimiter, na_values):
    """`na_values` as a tuple of strings, after checking it and `delimiter` (`csv_options`' errors)."""
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
        raise SchemaError(f"delimiter must be one character other than a quote or a line break, got {delimiter!r}")
    na_values = (na_values,) if isinstance(na_values, str) else tuple(na_values)
    if not all(isinstance(value, str) for value in na_values):
        raise SchemaError(f"na_values must be strings, got {list(na_values)!r}")
    return na_values


def csv_columns(df, schema, *, path, delimiter):
    """`df` (the whole CSV at `path` or a chunk of it) without the schema's ignored columns.

    Raises:
        SchemaError: naming the missing or extra columns, with a hint when the header looks like it uses
            another delimiter.
    """
    df = df.drop(columns=[name for name in schema.ignored if name in df.columns])
    mismatch = _column_mismatch(schema, list(df.columns))
    if mismatch:
        raise SchemaError(f"{path}: {mismatch}{_delimiter_hint(list(df.columns), delimiter)}")
    return df


class TableTransformer:
    """Encodes DataFrames that fit a schema into float vectors for the GAN, and decodes its outputs.

    Args:
        schema: a `TableSchema`.
    """

    def __init__(self, schema):
        self.schema = schema
        spans = []
        start = 0
        for column in schema.columns:
            for width, activation in self._column_blocks(column):
                spans.append(Span(start, width, activation))
                start += width
        self.spans = tuple(spans)
        self.width = start

    @staticmethod
    def _column_blocks(column):
        if isinstance(column, NumericColumn):
            return [(1, "sigmoid")] + ([(2, "softmax")] if column.nullable else [])
        return [(len(column.categories) + int(column.nullable), "softmax")]

    def encode(self, df, *, dtype="float32"):
        """Checks `df` against the schema and encodes it.

        Args:
            df: a DataFrame with the schema's columns (in any order).
            dtype: dtype of the result.

        Returns:
            An array of shape (rows, `width`).

        Raises:
            SchemaError: if `df` does not fit the schema (see `validate_frame`).
        """
        df = validate_frame(df, self.schema)
        blocks = []
        for column in self.schema.columns:
            series = df[column.name]
            absent = series.isna().to_numpy()
            if isinstance(column, NumericColumn):
                values = pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
                scaled = np.where(absent, 0.0, _scale(np.where(absent, column.lower, values), column))
                blocks.append(scaled[:, None])
                if column.nullable:
                    blocks.append(np.eye(2)[absent.astype(np.int64)])
            else:
                codes = _category_codes(series, absent, column, _index_rows(df))
                codes = np.where(codes < 0, len(column.categories), codes)
                blocks.append(np.eye(len(column.categories) + int(column.nullable))[codes])
        encoded = np.concatenate(blocks, axis=1) if len(df) else np.zeros((0, self.width))
        return encoded.astype(dtype)

    def decode(self, encoded):
        """Turns encoded rows (e.g. generator outputs) back into a DataFrame of the schema.

        Args:
            encoded: array of shape (rows, `width`); numeric entries are clipped to [0, 1], each one-hot
                block is read by its arg-max.

        Returns:
            A DataFrame with the schema's columns, in order, and a RangeIndex.

        Raises:
            ValueError: if `encoded` does not have `width` columns.
        """
        encoded = np.asarray(encoded, dtype=np.float64)
        if encoded.ndim != 2 or encoded.shape[1] != self.width:
            raise ValueError(f"encoded must have shape (rows, {self.width}), got {encoded.shape}")
        spans = iter(self.spans)
        columns = {}
        for column in self.schema.columns:
            span = next(spans)
            block = encoded[:, span.start : span.start + span.width]
            if isinstance(column, NumericColumn):
                values = _unscale(np.clip(block[:, 0], 0.0, 1.0), column)
                missing = np.zeros(len(encoded), dtype=bool)
                if column.nullable:
                    flag = next(spans)
                    missing = encoded[:, flag.start : flag.start + flag.width].argmax(axis=1) == 1
                columns[column.name] = _numeric_series(values, missing, column)
            else:
                codes = block.argmax(axis=1)
                columns[column.name] = _categorical_series(codes, column)
        return pd.DataFrame(columns, columns=list(self.schema.names))


def _scale(values, column):
    if column.transform == "log1p":
        return np.log1p(values - column.lower) / np.log1p(column.upper - column.lower)
    return (values - column.lower) / (column.upper - column.lower)


def _unscale(scaled, column):
    if column.transform == "log1p":
        values = np.expm1(scaled * np.log1p(column.upper - column.lower)) + column.lower
    else:
        values = scaled * (column.upper - column.lower) + column.lower
    return np.clip(values, column.lower, column.upper)


def _numeric_series(values, missing, column):
    if column.integer:
        values = np.round(values)
        if column.nullable:
            return pd.Series(pd.array(np.where(missing, None, values.astype(np.int64)), dtype="Int64"))
        return pd.Series(values.astype(np.int64))
    if column.decimals is not None:  # clipped again: rounding may cross a bound that has more decimals
        values = np.clip(np.round(values, column.decimals), column.lower, column.upper)
    return pd.Series(np.where(missing, np.nan, values))


def _categorical_series(codes, column):
    missing = codes >= len(column.categories)
    if column.integer_categories:
        values = np.asarray(column.categories, dtype=np.int64)[np.minimum(codes, len(column.categories) - 1)]
        if column.nullable:
            return pd.Series(pd.array(np.where(missing, None, values), dtype="Int64"))
        return pd.Series(values)
    # An object array of strings (None where missing): pandas makes it its string dtype.
    values = np.asarray(column.categories + (None,), dtype=object)[codes]
    return pd.Series(values)

