"""End-to-end runs of privgan-synthesize on a small generated CSV, started together.

The "good" run goes through the console entry point (`privgan_commands.synthesize`) with TensorFlow's log
level left unset, as a user runs it, so that it also checks what reaches the user's terminal.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from privgan.accounting import epsilon
from privgan.tabular import read_csv, save_schema, validate_frame
from tests.privgan.tabular.tables import SCHEMA, make_table

REPO = pathlib.Path(__file__).resolve().parents[3]
ROWS, BATCH = 200, 50
DELTA = 0.01  # >= 1/ROWS on purpose: the command must warn
ENTRY_POINT = [sys.executable, "-c", "import privgan_commands; privgan_commands.synthesize()"]
MODULE = [sys.executable, "-m", "privgan.cli.synthesize"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    save_schema(SCHEMA, folder / "schema.json")
    make_table(ROWS).to_csv(folder / "private.csv", index=False)
    bad = make_table(ROWS)
    bad.loc[7, "colour"] = "purple"
    bad.to_csv(folder / "bad.csv", index=False)
    (folder / "taken").mkdir()
    (folder / "taken" / "synthetic.csv").write_text("an earlier release\n")
    common = [f"--schema={folder / 'schema.json'}", f"--delta={DELTA}", "--rows=120", "--seed=0", "--epsilon=3"]
    gan = ["--method=gan", f"--batch_size={BATCH}", "--epochs=2"]
    commands = {
        "good": (ENTRY_POINT, [*gan, f"--csv={folder / 'private.csv'}", f"--output={folder / 'good' / 'synthetic.csv'}"]),
        "bad": (MODULE, [*gan, f"--csv={folder / 'bad.csv'}", f"--output={folder / 'bad' / 'synthetic.csv'}"]),
        "taken": (MODULE, [*gan, f"--csv={folder / 'private.csv'}", f"--output={folder / 'taken' / 'synthetic.csv'}"]),
        "mst": (MODULE, ["--method=mst", f"--csv={folder / 'private.csv'}",
                         f"--output={folder / 'mst' / 'synthetic.csv'}", "--condition=label=yes", "--condition=colour="]),
        "refused": (MODULE, [*gan, f"--csv={folder / 'private.csv'}", f"--output={folder / 'refused' / 'synthetic.csv'}",
                             "--condition=label=yes"]),
    }
    quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    as_a_user = {key: value for key, value in quiet.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    processes = {
        name: subprocess.Popen(
            [*program, *flags, *common], cwd=REPO, env=as_a_user if program is ENTRY_POINT else quiet,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, (program, flags) in commands.items()
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
    assert statement["d_steps"] == steps and statement["delta"] == DELTA
    expected = epsilon(
        noise_multiplier=statement["noise_multiplier"], sampling_probability=BATCH / ROWS, steps=steps, delta=DELTA
    )
    assert statement["epsilon"] == pytest.approx(expected, rel=1e-5) and statement["epsilon"] <= 3.0
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


def test_marginal_method_prints_no_jax_or_mbi_notices(runs):
    _, results = runs
    returncode, stdout, stderr = results["mst"]
    assert returncode == 0, stderr
    for notice in ("Unable to initialize backend", "UserWarning", "float32 mode", "compilation cache"):
        assert notice not in stdout + stderr, stderr


def test_condition_with_the_gan_is_refused_before_training(runs):
    folder, results = runs
    returncode, _, stderr = results["refused"]
    assert returncode == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "privgan-synthesize: error: --condition needs --method=aim or --method=mst: the DPGAN cannot condition on a value"
    )
    assert not (folder / "refused").exists()


def test_the_terminal_shows_no_tensorflow_startup_lines_and_no_accountant_notices(runs):
    _, results = runs
    returncode, stdout, stderr = results["good"]
    assert returncode == 0, stderr
    output = stdout + stderr
    # No glog-style C++ lines (oneDNN, CUDA probing, the cuInit "error" of CPU machines) and no absl preamble.
    assert not re.search(r"^[IWE]\d{4} ", output, flags=re.MULTILINE), output
    assert "absl::InitializeLog" not in output and "cuInit" not in output
    assert "failed to converge" not in output
    # The warnings that concern the user are there, each on one line naming the command.
    assert (
        f"privgan-synthesize: warning: delta = 0.01 is not below 1/N = 0.005 (N = {ROWS} examples)" in stderr
    ), stderr


def test_fidelity_report_is_written_beside_the_release_and_labelled_private(runs):
    folder, results = runs
    returncode, stdout, _ = results["good"]
    assert returncode == 0
    report = (folder / "good" / "synthetic.fidelity.md").read_text()
    assert report.startswith("# Fidelity of `synthetic.csv`: PRIVATE, do not publish")
    assert "**not** covered by the differential-privacy guarantee of `synthetic.json`" in report
    for section in ("## Marginals", "## Pairwise associations", "## Train on synthetic, test on real (TSTR)"):
        assert section in report
    assert "Predicting `label` = 'yes'" in report  # the schema's last categorical column, first category
    for figure in ("synthetic.fidelity-marginals.png", "synthetic.fidelity-associations.png"):
        assert (folder / "good" / figure).stat().st_size > 10_000 and f"]({figure})" in report
    assert "do not publish it. Publish synthetic.csv and synthetic.json only." in stdout
    assert "TSTR AUROC for label='yes'" in stdout


def test_bad_value_gives_one_error_line_with_the_csv_line_and_no_output(runs):
    folder, results = runs
    returncode, stdout, stderr = results["bad"]
    assert returncode == 1
    assert stderr.strip().splitlines()[-1] == (
        "privgan-synthesize: error: column 'colour': unknown category 'purple' at data row 8 (line 9 of bad.csv); "
        "the schema allows ['red', 'green', 'blue']"
    )
    assert "Traceback" not in stderr
    assert not (folder / "bad").exists() or not any((folder / "bad").iterdir())


def test_an_earlier_release_is_not_overwritten_and_nothing_is_trained(runs):
    folder, results = runs
    returncode, stdout, stderr = results["taken"]
    assert returncode == 1 and "Epoch" not in stdout + stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"privgan-synthesize: error: --output '{folder / 'taken' / 'synthetic.csv'}': an earlier "
                           "release is there (synthetic.csv); pass --overwrite to replace it")
    assert "spends a second privacy budget" in last
    assert (folder / "taken" / "synthetic.csv").read_text() == "an earlier release\n"
    assert [p.name for p in (folder / "taken").iterdir()] == ["synthetic.csv"]
