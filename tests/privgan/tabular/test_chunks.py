"""Tables read in chunks: the same exact counts reach the mechanisms whatever form the table comes in."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from privgan.tabular import (
    CsvTable,
    MarginalDPSynthesizer,
    SchemaError,
    TableDiscretizer,
    TableSchema,
    counting,
    read_csv,
)
from privgan.tabular.sources import table_source
from tests.privgan.tabular.tables import SCHEMA, make_table

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _chunks(df, size):
    return [df.iloc[start:start + size] for start in range(0, len(df), size)]


@pytest.mark.parametrize("bins", [64, 50])  # 64 halves exactly (nested grids); 50 -> 25 -> 12 -> 6 does not
def test_counts_on_refined_codes_equal_a_direct_count_on_every_grid(bins):
    df = make_table(500, seed=1)
    # Integer categories written as 2 or 2.0: one category either way, as `TableDiscretizer` reads them.
    df["grade"] = pd.Series([v if i % 3 else float(v) for i, v in enumerate(df["grade"])], dtype=object)
    counter = counting.TableCounter(SCHEMA, grids=counting.candidate_grids(bins))
    counts = counter.empty()
    for chunk in _chunks(df, 97):
        counts = counter.merge(counts, counter.count(chunk))
    rng = np.random.default_rng(0)
    for grid in counting.candidate_grids(bins):
        codes = TableDiscretizer(SCHEMA, bins=grid).encode(df)
        sizes = TableDiscretizer(SCHEMA, bins=grid).sizes
        groups = {name: rng.integers(0, 3, size) for name, size in sizes.items()}
        for name in SCHEMA.names:
            np.testing.assert_array_equal(counts.column(name, grid), np.bincount(codes[name], minlength=sizes[name]))
        for first, second in [("age", "colour"), ("score", "income"), ("label", "age"), ("grade", "label")]:
            shape = (int(groups[first].max()) + 1, int(groups[second].max()) + 1)
            index = np.ravel_multi_index([groups[first][codes[first]], groups[second][codes[second]]], shape)
            np.testing.assert_array_equal(
                counts.marginal((first, second), grid, groups), np.bincount(index, minlength=shape[0] * shape[1])
            )


def _forms(df, tmp_path):
    """The same table as a DataFrame, a list of chunks, a generator, a CSV, Parquet and Dask (if installed)."""
    yield "frame", df
    yield "list", _chunks(df, 64)
    yield "generator", (chunk for chunk in _chunks(df, 100))
    df.to_csv(tmp_path / "table.csv", index=False)
    yield "csv", tmp_path / "table.csv"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        (tmp_path / "parts").mkdir()
        for position, chunk in enumerate(_chunks(df, 150)):
            chunk.to_parquet(tmp_path / "parts" / f"part{position}.parquet", index=False)
        yield "parquet folder", tmp_path / "parts"
        df.to_parquet(tmp_path / "table.parquet", index=False)
        yield "parquet file", str(tmp_path / "table.parquet")
    try:
        import dask.dataframe
    except ImportError:
        pass
    else:
        yield "dask", dask.dataframe.from_pandas(df, npartitions=3)


@pytest.mark.parametrize("method, degree", [("mst", 2), ("aim", 3)])  # AIM's degree 3: a second pass
def test_every_form_of_the_table_gives_the_mechanisms_the_same_counts(method, degree, tmp_path, monkeypatch):
    df = make_table(300, seed=2)
    received = {}
    measure = MarginalDPSynthesizer._measure

    def recording(self, counts, clique, sigma):
        received[form].append((tuple(clique), counts.copy()))
        return measure(self, counts, clique, sigma)

    monkeypatch.setattr(MarginalDPSynthesizer, "_measure", recording)
    fits = {}
    for form, data in _forms(df, tmp_path):
        if degree == 3 and form == "generator":
            continue  # read once: refused (below)
        received[form] = []
        synthesizer = MarginalDPSynthesizer(
            SCHEMA, method=method, degree=degree, rounds=3, iterations=50, noise_seed=5, seed=0
        )
        fits[form] = synthesizer.fit(data, epsilon=1.0, delta=1e-6, chunk_rows=70, progress=False)
    assert set(fits) >= {"frame", "list", "csv"}
    for form, synthesizer in fits.items():
        assert [clique for clique, _ in received[form]] == [clique for clique, _ in received["frame"]], form
        for (_, mine), (_, theirs) in zip(received[form], received["frame"]):
            np.testing.assert_array_equal(mine, theirs, err_msg=form)
        # With the same (test-only) noise seed: the same noisy counts, rows estimate and model.
        assert synthesizer.measurements_log_ == fits["frame"].measurements_log_, form
        assert synthesizer.num_rows_estimate_ == fits["frame"].num_rows_estimate_, form
        for clique, potential in fits["frame"].model_.potentials.items():
            np.testing.assert_array_equal(synthesizer.model_.potentials[clique], potential, err_msg=form)


def test_a_generator_is_read_once_so_degree_3_is_refused_before_reading_it():
    df = make_table(100)
    chunks = (chunk for chunk in _chunks(df, 40))
    with pytest.raises(ValueError, match="degree=3 reads the table twice"):
        MarginalDPSynthesizer(SCHEMA, method="aim", degree=3).fit(chunks, epsilon=1.0, delta=1e-6)
    assert len(next(chunks)) == 40  # nothing was read


def test_bad_input_gets_one_clear_error(tmp_path):
    df = make_table(200)
    synthesizer = MarginalDPSynthesizer(SCHEMA, method="mst", iterations=50)
    with pytest.raises(ValueError, match="data must be a pandas DataFrame, an iterable"):
        synthesizer.fit(42, epsilon=1.0, delta=1e-6)
    with pytest.raises(ValueError, match="chunk_rows must be an integer >= 1"):
        synthesizer.fit(df, epsilon=1.0, delta=1e-6, chunk_rows=0)
    with pytest.raises(ValueError, match="chunk 1 is a dict"):
        synthesizer.fit([df, {"age": [1]}], epsilon=1.0, delta=1e-6)
    with pytest.raises(FileNotFoundError, match="no file or folder"):
        synthesizer.fit(tmp_path / "absent.csv", epsilon=1.0, delta=1e-6)
    (tmp_path / "table.txt").write_text("age\n1\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        synthesizer.fit(tmp_path / "table.txt", epsilon=1.0, delta=1e-6)
    # A bad value in a later chunk: the message the whole table gets, naming the same row.
    bad = df.copy()
    bad.loc[150, "colour"] = "purple"
    with pytest.raises(SchemaError) as whole:
        TableDiscretizer(SCHEMA).encode(bad)
    with pytest.raises(SchemaError) as chunked:
        synthesizer.fit(_chunks(bad, 64), epsilon=1.0, delta=1e-6)
    assert str(chunked.value) == str(whole.value)
    assert "row 150" in str(chunked.value)


@pytest.mark.slow  # about 30 s: run with `-m slow`; smaller chunked fits run in every suite
def test_a_million_rows_in_chunks_stay_below_1_5_gb():
    """One fit in a fresh process from 10 chunks of 100,000 generated rows; its own peak RSS, read back."""
    command = [sys.executable, "-m", "benchmarks.tabular_scale", "--one", "--rows", "1000000", "--method", "mst",
               "--sample_rows", "10000"]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    print(result)  # shown with -s: the stages' seconds and the peak
    assert result["peak_rss_mb"] * 2**20 < 1.5e9, result
    assert result["synthetic_rows"] == 10_000
    assert result["synthetic_rule_agreement"] > 0.7, result  # the label's dependence on age survived


def test_a_csv_read_in_chunks_takes_read_csvs_delimiter_missing_markers_and_ignored_columns(tmp_path):
    # A ';'-separated file with NA and '.' for missing values, an identifier the schema ignores and a column
    # dropped as --drop_columns drops it: the chunks count what read_csv reads whole. Before, the chunked
    # path read ',' and empty cells only, and refused the ignored columns as extra ones.
    schema = SCHEMA.ignoring("colour")
    table = make_table(150, seed=3)
    table.insert(0, "patient_id", [f"P{i:04d}" for i in range(len(table))])
    table["score"] = table["score"].astype(object)
    table.loc[[3, 40, 99], "score"] = ["NA", ".", "NA"]
    path = tmp_path / "table.txt"  # any name: a CsvTable says what the file is
    table.to_csv(path, sep=";", index=False)
    schema = TableSchema(schema.columns, ignored=(*schema.ignored, "patient_id"))
    whole = read_csv(path, schema, delimiter=";", na_values=("", "NA", "."))
    assert whole["score"].isna().sum() >= 3
    counter = counting.TableCounter(schema, grids=counting.candidate_grids(16))
    expected = counter.count(whole)
    source = table_source(CsvTable(path, delimiter=";", na_values=("", "NA", ".")), schema, chunk_rows=40)
    counted = source.map_reduce(counter.count, counter.merge, counter.empty)
    for name in schema.names:
        np.testing.assert_array_equal(counted.column(name, 16), expected.column(name, 16), err_msg=name)
    groups = {name: np.arange(size) for name, size in TableDiscretizer(schema, bins=16).sizes.items()}
    np.testing.assert_array_equal(counted.marginal(("age", "score"), 16, groups),
                                  expected.marginal(("age", "score"), 16, groups))
    # The same messages as read_csv: a header that looks like another delimiter, bad options.
    with pytest.raises(SchemaError, match=r"looks like it uses ';' between columns: pass --delimiter=';'"):
        table_source(CsvTable(path), schema, chunk_rows=40).map_reduce(counter.count, counter.merge, counter.empty)
    with pytest.raises(SchemaError, match="delimiter must be one character"):
        CsvTable(path, delimiter=";;")
    with pytest.raises(SchemaError, match="na_values must be strings"):
        CsvTable(path, na_values=("", 0))
