"""Exact marginal counts of a table read chunk by chunk, for `MarginalDPSynthesizer`: tables of any size.

`MarginalDPSynthesizer.fit` reads the private table only through counts of marginals, to which it adds
noise, so the rows need never be in memory together: each chunk is encoded to codes, counted and dropped.

One pass (`TableCounter`) counts every column and every pair of columns. `fit` chooses the numeric
columns' grid (`candidate_grids`) and merges rare codes into groups only later, from noisy one-way
counts, so a numeric column is counted on a "refined" code that determines its code on every grid `fit`
may choose: the code on the finest grid when the grids nest (each an exact halving of the one before,
which holds for even grids: scaling by a power of two is exact in floating point), otherwise the sum of
its codes on all the grids (the codes rise together with the value, so the sum tells the tuples apart).
Which refined code goes with which grid code is read off the rows themselves (`lookup`), and checked on
every row. A marginal on the groups `fit` chose is then a sum of refined counts (`TableCounts.marginal`),
equal to counting the grouped codes of the rows directly.

AIM with `degree=3` chooses among three-column marginals too; counting them on refined codes would take
too much memory on wide tables, so a second pass counts them on the groups (`GroupedCounter`).

The counts are exact, PRIVATE integers: they stay inside `fit`, which adds the noise (once: for a Dask
DataFrame the workers return exact counts, which are summed, and `fit` adds noise to the sum). Nothing
here keeps or logs the number of rows or chunks.
"""

import math

import numpy as np
import pandas as pd

from privgan.tabular.discretize import TableDiscretizer
from privgan.tabular.schema import CategoricalColumn, SchemaError


def candidate_grids(bins):
    """The numeric grids `MarginalDPSynthesizer` may choose, finest first: `bins`, halved while >= 4."""
    grids = [int(bins)]
    while grids[-1] // 2 >= 4:
        grids.append(grids[-1] // 2)
    return tuple(grids)


class ChunkEncoder:
    """The codes of a chunk's rows on several numeric grids at once, checked against the schema.

    The same codes as `TableDiscretizer.encode` on each grid, faster: a categorical column is checked and
    coded once per distinct value rather than once per row (the value -> code map is the schema's dict
    lookup, so values equal in Python, like 1 and 1.0, share a code either way). Should anything not fit
    the schema, the chunk goes through `TableDiscretizer.encode` instead, which raises its usual message.

    Args:
        schema: a `TableSchema`.
        grids: numeric grids (`TableDiscretizer`'s `bins`), finest first.
    """

    def __init__(self, schema, grids):
        self.schema, self.grids = schema, tuple(grids)
        self.names = tuple(schema.names)
        self.categorical = tuple(n for n in self.names if isinstance(schema[n], CategoricalColumn))
        self.numeric = {}
        if len(self.categorical) < len(self.names):
            numeric_schema = schema.without(*self.categorical)
            self.numeric = {grid: TableDiscretizer(numeric_schema, bins=grid) for grid in self.grids}
        # One single-column discretizer per categorical column, to check and code its distinct values.
        self.single = {
            name: TableDiscretizer(schema.without(*(other for other in self.names if other != name)))
            for name in self.categorical
        }

    def codes(self, frame):
        """(dict categorical column -> codes, dict grid -> dict numeric column -> codes) of the chunk's rows.

        Raises:
            SchemaError: if the chunk does not fit the schema (`TableDiscretizer.encode`'s message).
        """
        try:
            return self._fast(frame)
        except (SchemaError, KeyError, TypeError, ValueError):
            pass
        # The message of the whole-chunk check; if that check passes, its codes.
        by_grid = {grid: TableDiscretizer(self.schema, bins=grid).encode(frame) for grid in self.grids}
        numeric = {grid: {n: codes[n] for n in codes if n not in self.categorical} for grid, codes in by_grid.items()}
        return {n: by_grid[self.grids[0]][n] for n in self.categorical}, numeric

    def _fast(self, frame):
        if not isinstance(frame, pd.DataFrame) or frame.columns.duplicated().any() or set(frame.columns) != set(
            self.names
        ):
            raise KeyError("columns")  # the whole-chunk check names them
        categorical = {}
        for name in self.categorical:
            series = frame[name]
            absent = series.isna().to_numpy()
            if absent.any() and not self.schema[name].nullable:
                raise KeyError(name)
            inverse, uniques = pd.factorize(series.to_numpy(dtype=object)[~absent])
            if len(uniques):
                single = pd.DataFrame({name: pd.Series(uniques, dtype=object)})
                unique_codes = self.single[name].encode(single)[name]
            else:
                unique_codes = np.zeros(0, dtype=np.int64)
            codes = np.full(len(series), len(self.schema[name].categories), dtype=np.int64)
            codes[~absent] = unique_codes[inverse]
            categorical[name] = codes
        numeric = {}
        if self.numeric:
            names = [n for n in self.names if n not in self.categorical]
            first = self.numeric[self.grids[0]]
            encoded = first.transformer.encode(frame[names], dtype="float64")
            numeric = {grid: {n: d.codes_of_encoded(encoded, n) for n in names} for grid, d in self.numeric.items()}
        return categorical, numeric


class TableCounter:
    """Counts chunks of a table on refined codes: one-way and (if `pairs`) two-way, as `TableCounts`.

    Args:
        schema: the `TableSchema` the chunks must fit.
        grids: the candidate numeric grids, finest first (`candidate_grids`).
        pairs: whether to count every pair of columns too.
    """

    def __init__(self, schema, *, grids, pairs=True):
        self.schema = schema
        self.names = tuple(schema.names)
        self.grids = tuple(grids)
        self.pairs = bool(pairs)
        self.discretizers = {grid: TableDiscretizer(schema, bins=grid) for grid in self.grids}
        self.encoder = ChunkEncoder(schema, self.grids)
        self.numeric = tuple(n for n in self.names if not isinstance(schema[n], CategoricalColumn))
        # Halving an even grid splits each of its bins in two, exactly: the finest codes determine the rest.
        self.nested = all(grid % 2 == 0 for grid in self.grids[:-1])
        finest = self.discretizers[self.grids[0]]
        self.sizes = {}
        for name in self.names:
            if name in self.numeric and not self.nested:
                self.sizes[name] = sum(d.sizes[name] - 1 for d in self.discretizers.values()) + 1
            else:
                self.sizes[name] = finest.sizes[name]
        self.pair_names = [(a, b) for i, a in enumerate(self.names) for b in self.names[i + 1:]] if pairs else []

    def empty(self):
        """Counts of no rows."""
        return TableCounts(
            self,
            {name: np.zeros(self.sizes[name], dtype=np.int64) for name in self.names},
            {pair: np.zeros(self.sizes[pair[0]] * self.sizes[pair[1]], dtype=np.int64) for pair in self.pair_names},
            {name: {grid: np.full(self.sizes[name], -1, dtype=np.int64) for grid in self.grids}
             for name in self.numeric},
        )

    def count(self, frame):
        """The counts of one chunk.

        Raises:
            SchemaError: if the chunk does not fit the schema.
        """
        categorical, numeric = self.encoder.codes(frame)
        refined, lookup = dict(categorical), {}
        for name in self.numeric:
            per_grid = [numeric[grid][name] for grid in self.grids]
            refined[name] = per_grid[0] if self.nested else np.sum(per_grid, axis=0)
            lookup[name] = {}
            for grid, codes in zip(self.grids, per_grid):
                table = np.full(self.sizes[name], -1, dtype=np.int64)
                table[refined[name]] = codes
                if not np.array_equal(table[refined[name]], codes):
                    raise RuntimeError(f"refined codes of {name!r} do not determine its codes on grid {grid}: a bug")
                lookup[name][grid] = table
        one_way = {name: np.bincount(refined[name], minlength=self.sizes[name]) for name in self.names}
        pairs = {}
        for a, b in self.pair_names:
            cells = self.sizes[a] * self.sizes[b]
            pairs[(a, b)] = np.bincount(refined[a] * self.sizes[b] + refined[b], minlength=cells)
        return TableCounts(self, one_way, pairs, lookup)

    @staticmethod
    def merge(first, second):
        """The counts of both parts (new arrays: Dask may hand the same part to two merges)."""
        return first.merged(second)


class TableCounts:
    """Exact counts of a table on refined codes (see the module): one-way, pairs, and refined -> grid codes.

    PRIVATE: only `MarginalDPSynthesizer`'s mechanisms may read them.
    """

    def __init__(self, counter, one_way, pairs, lookup):
        self.counter, self.one_way, self.pairs, self.lookup = counter, one_way, pairs, lookup

    def merged(self, other):
        lookup = {}
        for name, tables in self.lookup.items():
            lookup[name] = {}
            for grid, table in tables.items():
                theirs = other.lookup[name][grid]
                both = (table >= 0) & (theirs >= 0)
                if not np.array_equal(table[both], theirs[both]):
                    raise RuntimeError(f"chunks disagree on the codes of {name!r} on grid {grid}: a bug")
                lookup[name][grid] = np.maximum(table, theirs)
        return TableCounts(
            self.counter,
            {name: counts + other.one_way[name] for name, counts in self.one_way.items()},
            {pair: counts + other.pairs[pair] for pair, counts in self.pairs.items()},
            lookup,
        )

    def _to_grid(self, name, grid):
        """Refined code -> code on `grid` (None: the same codes); codes no row has map to 0 (count 0)."""
        if name not in self.lookup:
            return None
        return np.maximum(self.lookup[name][grid], 0)

    def column(self, name, grid):
        """The counts of column `name`'s codes on `grid` (a float64 array over all its codes)."""
        mapping = self._to_grid(name, grid)
        counts = self.one_way[name]
        if mapping is None:
            return counts.astype(np.float64)
        size = self.counter.discretizers[grid].sizes[name]
        return np.bincount(mapping, weights=counts, minlength=size)

    def marginal(self, clique, grid, groups):
        """The counts of a marginal of one or two columns on the grouped codes, flattened in the clique's
        order (the first column slowest), as float64.

        Args:
            clique: one or two column names.
            grid: the numeric grid chosen (one of the counter's grids).
            groups: dict column -> int array, code on `grid` -> group.
        """
        clique = tuple(clique)
        maps = []
        for name in clique:
            mapping = self._to_grid(name, grid)
            maps.append(groups[name] if mapping is None else groups[name][mapping])
        shape = [int(groups[name].max()) + 1 for name in clique]
        if len(clique) == 1:
            index, counts = maps[0], self.one_way[clique[0]]
        elif len(clique) == 2:
            if clique in self.pairs:
                counts = self.pairs[clique]
            else:  # stored in the schema's order: transpose
                sizes = [self.counter.sizes[name] for name in clique]
                counts = self.pairs[clique[::-1]].reshape(sizes[::-1]).T.ravel()
            index = (maps[0][:, None] * shape[1] + maps[1][None, :]).ravel()
        else:
            raise ValueError(f"TableCounts holds marginals of one or two columns, got {clique}")
        return np.bincount(index, weights=counts, minlength=math.prod(shape))


class GroupedCounter:
    """Counts chunks on grouped codes for any cliques (a second pass: AIM's three-column marginals).

    Args:
        discretizer: the `TableDiscretizer` on the chosen grid.
        groups: dict column -> int array, code -> group.
        cliques: tuples of column names.
    """

    def __init__(self, discretizer, groups, cliques):
        self.encoder, self.groups = ChunkEncoder(discretizer.schema, [discretizer.bins]), groups
        self.cliques = [tuple(clique) for clique in cliques]
        self.shapes = {c: [int(groups[name].max()) + 1 for name in c] for c in self.cliques}

    def empty(self):
        return {c: np.zeros(math.prod(shape), dtype=np.int64) for c, shape in self.shapes.items()}

    def count(self, frame):
        categorical, numeric = self.encoder.codes(frame)
        codes = {**categorical, **numeric[self.encoder.grids[0]]}
        grouped = {name: self.groups[name][codes[name]] for name in codes}
        return {
            c: np.bincount(np.ravel_multi_index([grouped[name] for name in c], shape), minlength=math.prod(shape))
            for c, shape in self.shapes.items()
        }

    @staticmethod
    def merge(first, second):
        return {c: counts + second[c] for c, counts in first.items()}
