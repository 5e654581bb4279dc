"""End-to-end runs of `python -m privgan.cli.synthesize` on a small generated CSV, started together."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from privgan.accounting import epsilon
from privgan.tabular import read_csv, save_schema, validate_frame
from tests.privgan.tabular.tables import SCHEMA, make_table

REPO = pathlib.Path(__file__).resolve().parents[3]
ROWS, BATCH = 200, 50


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    save_schema(SCHEMA, folder / "schema.json")
    make_table(ROWS).to_csv(folder / "private.csv", index=False)
    bad = make_table(ROWS)
    bad.loc[7, "colour"] = "purple"
    bad.to_csv(folder / "bad.csv", index=False)
    common = [f"--schema={folder / 'schema.json'}", "--delta=1e-4", "--rows=120", "--seed=0", "--epsilon=3"]
    gan = ["--method=gan", f"--batch_size={BATCH}", "--epochs=2"]
    commands = {
        "good": [*gan, f"--csv={folder / 'private.csv'}", f"--output={folder / 'good' / 'synthetic.csv'}"],
        "bad": [*gan, f"--csv={folder / 'bad.csv'}", f"--output={folder / 'bad' / 'synthetic.csv'}"],
        "mst": ["--method=mst", f"--csv={folder / 'private.csv'}", f"--output={folder / 'mst' / 'synthetic.csv'}",
                "--condition=label=yes", "--condition=colour="],
        "refused": [*gan, f"--csv={folder / 'private.csv'}", f"--output={folder / 'refused' / 'synthetic.csv'}",
                    "--condition=label=yes"],
    }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "privgan.cli.synthesize", *flags, *common],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, flags in commands.items()
    }
    outputs = {name: process.communicate(timeout=300) for name, process in processes.items()}
    return folder, {name: (processes[name].returncode, *outputs[name]) for name in commands}


def test_writes_synthetic_csv_and_a_statement_matching_the_accountant(runs):
    folder, results = runs
    returncode, stdout, stderr = results["good"]
    assert returncode == 0, stderr
    synthetic = read_csv(folder / "good" / "synthetic.csv", SCHEMA)
    assert len(validate_frame(synthetic, SCHEMA)) == 120
    statement = json.loads((folder / "good" / "synthetic.json").read_text())
    steps = 2 * round(ROWS / BATCH)
    assert statement["d_steps"] == steps and statement["delta"] == 1e-4
    expected = epsilon(
        noise_multiplier=statement["noise_multiplier"], sampling_probability=BATCH / ROWS, steps=steps, delta=1e-4
    )
    assert statement["epsilon"] == pytest.approx(expected, rel=1e-9) and statement["epsilon"] <= 3.0
    assert f"epsilon = {statement['epsilon']:.4f}" in stdout
    assert "Epoch 2/2" in stdout + stderr  # progress is shown
    assert statement["method"] == "gan" and statement["settings"]["adaptive"] == ["learning_rate"]


def test_marginal_method_with_conditions(runs):
    folder, results = runs
    returncode, stdout, stderr = results["mst"]
    assert returncode == 0, stderr
    synthetic = read_csv(folder / "mst" / "synthetic.csv", SCHEMA)
    assert len(validate_frame(synthetic, SCHEMA)) == 120
    assert (synthetic["label"] == "yes").all() and synthetic["colour"].isna().all()
    statement = json.loads((folder / "mst" / "synthetic.json").read_text())
    assert statement["method"] == "mst" and statement["accountant"] == "rdp" and statement["epsilon"] <= 3.0
    assert statement["conditions"] == {"label": "yes", "colour": None}
    assert f"epsilon = {statement['epsilon']:.4f}" in stdout and "(RDP)" in stdout


def test_condition_with_the_gan_is_refused_before_training(runs):
    folder, results = runs
    returncode, _, stderr = results["refused"]
    assert returncode == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "privgan-synthesize: error: --condition needs --method=aim or --method=mst: the DPGAN cannot condition on a value"
    )
    assert not (folder / "refused").exists()


def test_bad_value_gives_one_error_line_and_no_output(runs):
    folder, results = runs
    returncode, stdout, stderr = results["bad"]
    assert returncode == 1
    assert stderr.strip().splitlines()[-1] == (
        "privgan-synthesize: error: column 'colour': unknown category 'purple' at row 7; "
        "the schema allows ['red', 'green', 'blue']"
    )
    assert "Traceback" not in stderr
    assert not (folder / "bad").exists() or not any((folder / "bad").iterdir())
