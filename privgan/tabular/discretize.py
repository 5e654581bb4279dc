"""Integer codes for the cells of a table, from its public schema alone, and back to values.

Marginal-based synthesizers count rows per combination of column values, so every column becomes a
small set of codes: a categorical column its categories (plus one code for missing values when the
schema allows them); a numeric column `bins` equal-width bins of its schema-scaled [0, 1] range (on the
log scale for log1p columns; one bin per whole number for an integer column with at most `bins` values)
plus a missing code. Edges come from the schema's bounds, never from the data.

Decoding draws each numeric value uniformly within its bin (in the scaled space) with the caller's
generator, and returns a DataFrame of the schema's dtypes through `TableTransformer.decode`.
"""

import numpy as np
import pandas as pd

from privgan.tabular.schema import CategoricalColumn, SchemaError
from privgan.tabular.support import place_within
from privgan.tabular.transformer import TableTransformer


class TableDiscretizer:
    """Maps DataFrames that fit a schema to integer codes per column, and codes back to DataFrames.

    Args:
        schema: a `TableSchema`.
        bins: number of equal-width bins of a numeric column's scaled range, >= 2.

    Attributes:
        sizes: dict column name -> number of codes, in schema order.
    """

    def __init__(self, schema, *, bins=64):
        if int(bins) != bins or bins < 2:
            raise ValueError(f"bins must be an integer >= 2, got {bins}")
        self.schema = schema
        self.bins = int(bins)
        self.transformer = TableTransformer(schema)
        self._spans = {}
        self._value_codes = {}  # numeric column -> number of value codes (bins, or one per whole number)
        self._exact = {}  # numeric column -> one code per whole number
        spans = iter(self.transformer.spans)
        self.sizes = {}
        for column in schema.columns:
            span = next(spans)
            if isinstance(column, CategoricalColumn):
                self._spans[column.name] = (span, None)
                self.sizes[column.name] = span.width
                continue
            flag = next(spans) if column.nullable else None
            self._spans[column.name] = (span, flag)
            values = int(column.upper - column.lower) + 1
            self._exact[column.name] = column.integer and column.transform == "linear" and values <= self.bins
            self._value_codes[column.name] = values if self._exact[column.name] else self.bins
            self.sizes[column.name] = self._value_codes[column.name] + int(column.nullable)

    def encode(self, df):
        """The codes of every row.

        Args:
            df: a DataFrame that fits the schema (columns in any order).

        Returns:
            A dict column name -> int64 array of codes in [0, sizes[name]), in schema order.

        Raises:
            SchemaError: if `df` does not fit the schema.
        """
        encoded = self.transformer.encode(df, dtype="float64")
        return {name: self.codes_of_encoded(encoded, name) for name in self.schema.names}

    def codes_of_encoded(self, encoded, name):
        """The codes of column `name` from the rows' `TableTransformer` encoding (float64, checked)."""
        span, flag = self._spans[name]
        block = encoded[:, span.start : span.start + span.width]
        if flag is None and isinstance(self.schema[name], CategoricalColumn):
            return block.argmax(axis=1).astype(np.int64)
        count = self._value_codes[name]
        if self._exact[name]:
            codes = np.rint(block[:, 0] * (count - 1)).astype(np.int64)
        else:
            codes = np.minimum((block[:, 0] * count).astype(np.int64), count - 1)
        if flag is not None:
            missing = encoded[:, flag.start : flag.start + flag.width].argmax(axis=1) == 1
            codes = np.where(missing, count, codes)
        return codes

    def code(self, name, value):
        """The code of one value of column `name` (None: the missing code).

        Raises:
            SchemaError: if the column is unknown or the value does not fit it (the message names both).
        """
        if name not in self.schema.names:
            raise SchemaError(f"unknown column {name!r}; the schema has {list(self.schema.names)}")
        # Checked and encoded like a one-row table of that column alone, with the same messages.
        single = TableDiscretizer(self.schema.without(*(n for n in self.schema.names if n != name)), bins=self.bins)
        return int(single.encode(pd.DataFrame({name: pd.Series([value], dtype=object)}))[name][0])

    def numeric_value(self, name, code, uniform):
        """The scaled [0, 1] value of a numeric code, placed at `uniform` in [0, 1) within its bin."""
        count = self._value_codes[name]
        if self._exact[name]:
            return code / (count - 1)
        return (code + uniform) / count

    def decode(self, codes, rng, *, fixed=None, shapes=None):
        """A DataFrame of the schema from codes.

        Args:
            codes: dict column name -> integer codes (all columns, equal lengths).
            rng: a `numpy.random.Generator` for the positions of numeric values within their bins.
            fixed: optional dict column name -> value that the column takes in every row (a condition),
                instead of a value drawn from its bin.
            shapes: optional dict numeric column name -> `(left, right)` densities at the edges of each bin
                (`support.bin_shapes`): values are drawn from that linear density within their bin instead
                of uniformly.

        Returns:
            A DataFrame with the schema's columns, order and dtypes.
        """
        fixed = fixed or {}
        rows = len(next(iter(codes.values()))) if codes else 0
        encoded = np.zeros((rows, self.transformer.width))
        for column in self.schema.columns:
            span, flag = self._spans[column.name]
            code = np.asarray(codes[column.name], dtype=np.int64)
            if isinstance(column, CategoricalColumn):
                encoded[np.arange(rows), span.start + code] = 1.0
                continue
            count = self._value_codes[column.name]
            missing = code >= count
            within = rng.random(rows)
            if shapes and column.name in shapes and not self._exact[column.name]:
                left, right = shapes[column.name]
                bins = np.minimum(code, count - 1)
                within = place_within(left[bins], right[bins], within)
            values = self.numeric_value(column.name, np.minimum(code, count - 1), within)
            encoded[:, span.start] = np.where(missing, 0.0, values)
            if flag is not None:
                encoded[np.arange(rows), flag.start + missing.astype(np.int64)] = 1.0
        frame = self.transformer.decode(encoded)
        for name, value in fixed.items():
            if not isinstance(self.schema[name], CategoricalColumn) and value is not None:
                frame[name] = pd.Series([value] * rows, dtype=frame[name].dtype)
        return frame
