"""privgan-synthesize on a clinical-like table as a data team has it, and fit once, sample many."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

# Nine console runs of the tables command (each imports TensorFlow); the same behaviour is tested in
# process by tests/privgan/tabular/test_messy_tables.py, so these run with `-m slow`.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tables_cli_slow")]

REPO = pathlib.Path(__file__).resolve().parents[3]
MODULE = [sys.executable, "-m", "privgan.cli.synthesize"]
SCHEMA = {"columns": [
    {"type": "numeric", "name": "age", "lower": 0, "upper": 120, "integer": True, "unit": "years"},
    {"type": "numeric", "name": "bmi", "lower": 10, "upper": 60, "nullable": True, "decimals": 1},
    {"type": "numeric", "name": "crp", "lower": 0, "upper": 500},
    {"type": "categorical", "name": "site", "categories": ["A", "B", "C"]},
    {"type": "categorical", "name": "outcome", "categories": ["yes", "no"]},
    {"type": "ignored", "name": "patient_id"},
]}


def _clinic(rows, rng):
    age = rng.integers(30, 80, rows)
    table = pd.DataFrame({
        "patient_id": [f"P{i:04d}" for i in range(rows)],
        "admitted": pd.date_range("2020-01-01", periods=rows).strftime("%Y-%m-%d"),
        "age": age, "bmi": np.round(rng.normal(27, 4, rows), 1).astype(object),
        "crp": rng.gamma(2.0, 20.0, rows), "site": rng.choice(["A", "B", "C"], rows, p=[0.6, 0.39, 0.01]),
        "outcome": np.where(age > 55, "yes", "no"),
    })
    table.loc[rng.random(rows) < 0.1, "bmi"] = "NA"
    table.loc[3, "bmi"] = "."
    return table


def _run(*flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([*MODULE, *flags], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(process, *, timeout):
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    table = _clinic(300, np.random.default_rng(0))
    table.to_csv(folder / "clinic.csv", sep=";", index=False)
    bad = table.copy()
    bad.loc[[4, 9, 20], "age"] = [150, 200, -3]
    bad.loc[[5, 11], "site"] = ["D", "E"]
    bad.to_csv(folder / "bad.csv", sep=";", index=False)
    fit = [f"--schema={folder / 'schema.json'}", "--epsilon=1", "--delta=1e-6", "--delimiter=;",
           "--drop_columns=admitted", "--na_values=,NA,."]
    started = {
        "fit": _run(*fit, "--method=mst", f"--csv={folder / 'clinic.csv'}", f"--output={folder / 'r' / 's.csv'}",
                    f"--save_model={folder / 'model.npz'}", "--seed=0"),
        "bad": _run(*fit, f"--csv={folder / 'bad.csv'}", f"--output={folder / 'bad' / 's.csv'}"),
        "delimiter": _run(*fit[:3], f"--csv={folder / 'clinic.csv'}", f"--output={folder / 'd' / 's.csv'}"),
        "gan": _run(*fit, "--method=gan", "--epochs=1", f"--csv={folder / 'clinic.csv'}",
                    f"--output={folder / 'g' / 's.csv'}", "--rows=20"),
        "chunks": _run(*fit, "--method=aim", "--chunk_rows=64", f"--csv={folder / 'clinic.csv'}",
                       f"--output={folder / 'c' / 's.csv'}", "--rows=50"),
        "chunks_gan": _run(*fit, "--method=gan", "--chunk_rows=64", f"--csv={folder / 'clinic.csv'}",
                           f"--output={folder / 'cg' / 's.csv'}"),
    }
    results = {name: _finish(p, timeout=500) for name, p in started.items()}
    then = {
        "load": _run(f"--load_model={folder / 'model.npz'}", "--condition=site=C", "--rows=40", "--seed=1",
                     f"--output={folder / 'l' / 'c.csv'}"),
        "load_refit": _run(f"--load_model={folder / 'model.npz'}", "--epsilon=1", f"--output={folder / 'x' / 'c.csv'}"),
    }
    results.update({name: _finish(p, timeout=300) for name, p in then.items()})
    return folder, results


def test_ids_dates_blanks_and_another_delimiter_give_a_rounded_release_and_a_saved_model(runs):
    folder, results = runs
    code, stdout, stderr = results["fit"]
    assert code == 0, stderr
    synthetic = pd.read_csv(folder / "r" / "s.csv")
    assert list(synthetic.columns) == ["age", "bmi", "crp", "site", "outcome"]  # no patient_id, no admitted
    bmi, crp = synthetic["bmi"].dropna(), synthetic["crp"]
    assert np.allclose(bmi, bmi.round(1)) and np.allclose(crp, crp.round(1))  # schema's 1; default 1 for [0, 500]
    statement = json.loads((folder / "r" / "s.json").read_text())
    assert {"type": "ignored", "name": "admitted"} in statement["schema"]["columns"]
    assert f"sample again with --load_model={folder / 'model.npz'}" in stdout


def test_a_saved_model_samples_with_conditions_without_spending_epsilon_and_warns_on_a_rare_category(runs):
    folder, results = runs
    code, stdout, stderr = results["load"]
    assert code == 0, stderr
    assert "condition site='C': the model estimates about" in stderr
    first, again = (json.loads(p.read_text()) for p in (folder / "r" / "s.json", folder / "l" / "c.json"))
    assert again["epsilon"] == first["epsilon"] and again["ledger"] == first["ledger"]
    assert again["conditions"] == {"site": "C"} and again["num_rows"] == 40
    assert (pd.read_csv(folder / "l" / "c.csv")["site"] == "C").all()
    assert "no epsilon spent" in stdout
    code, _, stderr = results["load_refit"]
    assert code != 0 and "--epsilon do not apply" in stderr and not (folder / "x").exists()


def test_every_bad_value_is_listed_in_one_error_and_nothing_is_written(runs):
    folder, results = runs
    code, _, stderr = results["bad"]
    assert code != 0 and not (folder / "bad").exists()
    assert "5 bad values in 300 rows:" in stderr
    assert "column 'age': 3 values outside the schema bounds [0, 120]: 150 at data row 5 (line 6 of bad.csv)" in stderr
    assert "column 'site': 2 unknown categories (the schema allows ['A', 'B', 'C'])" in stderr


def test_a_header_with_another_delimiter_gets_a_hint(runs):
    folder, results = runs
    code, _, stderr = results["delimiter"]
    assert code != 0 and "looks like it uses ';' between columns: pass --delimiter=';'" in stderr


def test_the_gan_warns_that_epsilon_one_on_a_few_hundred_rows_is_too_little_and_points_to_aim(runs):
    _, results = runs
    code, _, stderr = results["gan"]
    assert code == 0, stderr
    assert "is below 50,000" in stderr and "Prefer --method=aim" in stderr


def test_chunks_read_with_the_same_delimiter_missing_markers_and_dropped_columns(runs):
    folder, results = runs
    code, _, stderr = results["chunks"]
    assert code == 0, stderr
    assert list(pd.read_csv(folder / "c" / "s.csv").columns) == ["age", "bmi", "crp", "site", "outcome"]
    code, _, stderr = results["chunks_gan"]
    assert code != 0 and "--chunk_rows needs --method=aim or --method=mst" in stderr and not (folder / "cg").exists()
