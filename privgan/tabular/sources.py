"""The private table of `MarginalDPSynthesizer.fit`, read in chunks: a DataFrame, an iterable of DataFrame
chunks, a Parquet file or dataset, a CSV file (a path, or a `CsvTable` with its delimiter, missing-value
markers), or a Dask DataFrame. A CSV is read as `privgan.tabular.read_csv` reads it (`csv_options`): the
schema's ignored columns are dropped from each chunk.

A source counts the table by map-reduce: `map_reduce(count, merge, empty)` applies `count` to each chunk
(a pandas DataFrame) and sums the results with `merge`. Local sources read one chunk at a time, so memory
holds one chunk and the counts; a Dask DataFrame is counted on its workers, partition by partition, and
the partial counts are summed in a tree on the workers, so that the driver receives one set of counts.

`rereadable` says whether the table can be read a second time (AIM with `degree=3` needs two passes): a
generator or iterator of chunks cannot, a list of chunks, a path or a Dask DataFrame can.

pyarrow (for Parquet) and Dask are optional: installed with `pip install privgan[parquet]` or
`privgan[dask]`, and imported only when such a source is read.
"""

import dataclasses
import os
import pathlib

import pandas as pd

from privgan.tabular.transformer import checked_csv_options, csv_columns, csv_errors, csv_options

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
DEFAULT_CHUNK_ROWS = 100_000


@dataclasses.dataclass(frozen=True)
class CsvTable:
    """A CSV file to read in chunks with `read_csv`'s options: `fit(CsvTable("t.csv", delimiter=";"), ...)`.

    Attributes:
        path: the CSV file (with a header row), any name (a plain path must end in .csv).
        delimiter: the character between columns ("," default, ";", "\t", ...).
        na_values: the cells that are missing values (default: empty cells only; e.g. ("", "NA", ".")).
    """

    path: object
    delimiter: str = ","
    na_values: tuple = ("",)

    def __post_init__(self):
        if not isinstance(self.path, (str, os.PathLike)):
            raise ValueError(f"path must be a str or os.PathLike, got a {type(self.path).__name__}")
        object.__setattr__(self, "path", pathlib.Path(self.path))
        # `read_csv`'s checks and messages.
        object.__setattr__(self, "na_values", checked_csv_options(delimiter=self.delimiter, na_values=self.na_values))


class _LocalSource:
    """Chunks read in this process, one at a time."""

    def __init__(self, frames, *, rereadable):
        self._frames = frames  # a function returning a fresh iterator of DataFrames
        self.rereadable = rereadable
        self._read = False

    def map_reduce(self, count, merge, empty):
        if self._read and not self.rereadable:
            raise RuntimeError("data is an iterator of chunks, already read: it cannot be read twice")
        self._read = True
        result = empty()
        for position, frame in enumerate(self._frames()):
            if not isinstance(frame, pd.DataFrame):
                raise ValueError(f"data must yield pandas DataFrames, but chunk {position} is a {type(frame).__name__}")
            result = merge(result, count(frame))
        return result


class _DaskSource:
    """A Dask DataFrame: each partition counted on a worker, the counts summed pairwise on the workers."""

    rereadable = True

    def __init__(self, frame):
        self._frame = frame

    def map_reduce(self, count, merge, empty):
        try:
            import dask
        except ImportError as error:  # pragma: no cover - a Dask DataFrame implies dask
            raise ImportError("reading a Dask DataFrame needs dask: pip install 'privgan[dask]'") from error
        parts = [dask.delayed(count)(partition) for partition in self._frame.to_delayed()]
        if not parts:
            return empty()
        while len(parts) > 1:
            parts = [dask.delayed(merge)(*parts[i:i + 2]) if i + 1 < len(parts) else parts[i]
                     for i in range(0, len(parts), 2)]
        (result,) = dask.compute(parts[0])
        return result


def _is_dask_frame(data):
    return type(data).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(data, "to_delayed")


def _parquet_frames(path, chunk_rows):
    try:
        import pyarrow.dataset
    except ImportError as error:
        raise ImportError(f"reading the Parquet table {path} needs pyarrow: pip install 'privgan[parquet]'") from error
    dataset = pyarrow.dataset.dataset(path, format="parquet")
    # No read-ahead: one batch (and the row group it comes from) in memory at a time.
    for batch in dataset.to_batches(batch_size=chunk_rows, batch_readahead=0, fragment_readahead=0):
        yield batch.to_pandas()


def _csv_frames(table, schema, chunk_rows):
    options = csv_options(schema, delimiter=table.delimiter, na_values=table.na_values)
    with csv_errors(table.path), pd.read_csv(table.path, chunksize=chunk_rows, **options) as reader:
        for chunk in reader:
            yield csv_columns(chunk, schema, path=table.path, delimiter=table.delimiter)


def _path_source(path, schema, chunk_rows):
    table = path if isinstance(path, CsvTable) else None
    path = pathlib.Path(table.path if table else path)
    if not path.exists():
        raise FileNotFoundError(f"data: no file or folder {path}")
    if table and path.is_dir():
        raise ValueError(f"data: {path} is a folder, not a CSV file")
    name = path.name.lower()
    if not table and (path.is_dir() or name.endswith(PARQUET_SUFFIXES)):
        return _LocalSource(lambda: _parquet_frames(path, chunk_rows), rereadable=True)
    if table or name.endswith(CSV_SUFFIXES):
        table = table or CsvTable(path)
        return _LocalSource(lambda: _csv_frames(table, schema, chunk_rows), rereadable=True)
    raise ValueError(
        f"data: cannot tell the format of {path}: a path must end in {' or '.join(PARQUET_SUFFIXES + CSV_SUFFIXES)}, "
        "or be a folder of Parquet files"
    )


def table_source(data, schema, *, chunk_rows=DEFAULT_CHUNK_ROWS):
    """The source that reads `data` in chunks of about `chunk_rows` rows.

    Args:
        data: a pandas DataFrame (counted in slices of `chunk_rows` rows); a path (str or os.PathLike) to
            a Parquet file, a folder of Parquet files or a CSV file; a `CsvTable` (a CSV with its delimiter
            and missing-value markers); a Dask DataFrame; or an iterable of pandas DataFrames (a list, or a
            generator: read once).
        schema: the `TableSchema` (to read a CSV's categories as strings).
        chunk_rows: rows per chunk read from a DataFrame or a file, >= 1.

    Returns:
        A source with `rereadable` and `map_reduce(count, merge, empty)`.

    Raises:
        ValueError: if `data` is none of these, or `chunk_rows` is not a positive integer.
        FileNotFoundError: if a path does not exist.
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    if isinstance(data, pd.DataFrame):
        # Slices of the frame: the encoded rows (one-hot categories) of a whole large frame would not fit.
        starts = range(0, max(len(data), 1), chunk_rows)
        return _LocalSource(lambda: (data.iloc[start:start + chunk_rows] for start in starts), rereadable=True)
    if isinstance(data, (str, os.PathLike, CsvTable)):
        return _path_source(data, schema, chunk_rows)
    if _is_dask_frame(data):
        return _DaskSource(data)
    try:
        iterator = iter(data)
    except TypeError:
        raise ValueError(
            "data must be a pandas DataFrame, an iterable of DataFrames, a path to a Parquet or CSV file, a CsvTable, "
            f"or a Dask DataFrame; got a {type(data).__name__}"
        ) from None
    if iterator is data:  # a generator or iterator: it can be read once only
        return _LocalSource(lambda: iterator, rereadable=False)
    return _LocalSource(lambda: iter(data), rereadable=True)
