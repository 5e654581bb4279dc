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

import dp_accounting
import pytest

from privgan.accounting.events import dp_sgd_event, epsilon_of_event
from privgan.tabular import read_csv, save_schema, validate_frame
from tests.privgan.tabular.tables import SCHEMA, make_table

# One worker runs this module, so that its module-scoped fixture (console runs) runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("tables_cli")

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
    (folder / "input.csv").write_bytes((folder / "private.csv").read_bytes())
    common = [f"--schema={folder / 'schema.json'}", f"--delta={DELTA}", "--seed=0", "--epsilon=3"]
    gan = ["--method=gan", f"--batch_size={BATCH}", "--epochs=2"]
    commands = {  # "good" without --rows: as many rows as the noisy count
        "good": (ENTRY_POINT, [*gan, f"--csv={folder / 'private.csv'}", f"--output={folder / 'good' / 'synthetic.csv'}",
                               f"--fidelity_report={folder / 'report'}"]),
        "bad": (MODULE, [*gan, f"--csv={folder / 'bad.csv'}", f"--output={folder / 'bad' / 'synthetic.csv'}"]),
        "taken": (MODULE, [*gan, f"--csv={folder / 'private.csv'}", f"--output={folder / 'taken' / 'synthetic.csv'}"]),
        "mst": (MODULE, ["--method=mst", f"--csv={folder / 'private.csv'}", "--rows=120",
                         f"--output={folder / 'mst' / 'synthetic.csv'}", "--condition=label=yes",
                         "--condition=colour="]),
        "refused": (MODULE, [*gan, f"--csv={folder / 'private.csv'}",
                             f"--output={folder / 'refused' / 'synthetic.csv'}", "--condition=label=yes"]),
        "input": (MODULE, [*gan, f"--csv={folder / 'input.csv'}", f"--output={folder / 'input.csv'}", "--overwrite",
                           "--rows=50"]),
        "proc": (MODULE, [*gan, f"--csv={folder / 'private.csv'}", "--output=/proc/privgan/synthetic.csv",
                          "--rows=50"]),
        "report_inside": (MODULE, [*gan, f"--csv={folder / 'private.csv'}",
                                   f"--output={folder / 'ri' / 'synthetic.csv'}",
                                   f"--fidelity_report={folder / 'ri' / 'private'}"]),
    }
    quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    as_a_user = {key: value for key, value in quiet.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    # The runs that train start a process each; the refusals (stopped before any training) share one.
    alone = ("good", "mst")
    processes = {
        name: subprocess.Popen(
            [*program, *flags, *common], cwd=REPO, env=as_a_user if program is ENTRY_POINT else quiet,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, (program, flags) in commands.items() if name in alone
    }
    refusals = {name: [*flags, *common] for name, (_, flags) in commands.items() if name not in alone}
    batch = subprocess.Popen([sys.executable, "-m", "tests.console_batch", "privgan.cli.synthesize",
                              json.dumps(refusals)], cwd=REPO, env=quiet, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    outputs = {name: process.communicate(timeout=300) for name, process in processes.items()}
    results = {name: (processes[name].returncode, *outputs[name]) for name in alone}
    stdout, stderr = batch.communicate(timeout=300)
    assert batch.returncode == 0, stderr
    results.update({name: tuple(result) for name, result in json.loads(stdout.splitlines()[-1]).items()})
    return folder, results


def test_writes_synthetic_csv_and_a_statement_matching_the_accountant(runs):
    folder, results = runs
    returncode, stdout, stderr = results["good"]
    assert returncode == 0, stderr
    statement = json.loads((folder / "good" / "synthetic.json").read_text())
    noisy_rows = statement["num_rows_estimate"]  # N is private: the training is sized by a charged noisy count
    synthetic = read_csv(folder / "good" / "synthetic.csv", SCHEMA)
    assert len(validate_frame(synthetic, SCHEMA)) == noisy_rows == statement["num_rows"]  # --rows' default
    assert "num_examples" not in statement
    steps = 2 * round(noisy_rows / BATCH)
    assert statement["d_steps"] == steps and statement["delta"] == DELTA
    count = statement["ledger"]["phases"][0]["release"]
    event = dp_accounting.ComposedDpEvent([
        dp_accounting.GaussianDpEvent(count["noise_multiplier"]),
        dp_sgd_event(noise_multiplier=statement["noise_multiplier"], sampling_probability=BATCH / noisy_rows,
                     steps=steps),
    ])
    assert statement["epsilon"] == pytest.approx(epsilon_of_event(event, delta=DELTA), rel=1e-5)
    assert statement["epsilon"] <= 3.0 and f"epsilon = {statement['epsilon']:.4f}" in stdout
    assert statement["sampling_seeding"].startswith("secret")  # --seed=0 does not seed the sampling
    assert statement["method"] == "gan" and statement["settings"]["adaptive"] == ["learning_rate"]


def test_the_console_shows_epsilon_per_epoch_not_training_losses(runs):
    # A loss is a noiseless mean over private batches: printing it every epoch would slip past the accountant.
    _, results = runs
    returncode, stdout, stderr = results["good"]
    assert returncode == 0, stderr
    assert re.search(r"^epoch 2/2: epsilon = \d\.\d{4} at delta = 0\.01$", stdout, flags=re.MULTILINE), stdout
    assert "loss" not in stdout + stderr and "Epoch" not in stdout + stderr


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
        "privgan-synthesize: error: --condition needs --method=aim or --method=mst: "
        "--method=gan cannot condition on a value"
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
    assert re.search(r"privgan-synthesize: warning: delta = 0.01 is not below 1/N = \S+ \(N = \d+ examples\)", stderr)


def test_fidelity_report_is_written_outside_the_release_and_labelled_private(runs):
    folder, results = runs
    returncode, stdout, _ = results["good"]
    assert returncode == 0
    assert sorted(p.name for p in (folder / "good").iterdir()) == ["synthetic.csv", "synthetic.json"]
    report = (folder / "report" / "synthetic.PRIVATE-fidelity.md").read_text()
    assert report.startswith("# Fidelity of `synthetic.csv`: PRIVATE, do not publish")
    assert "**not** covered by the differential-privacy guarantee of `synthetic.json`" in report
    for section in ("## Marginals", "## Pairwise associations", "## Train on synthetic, test on real (TSTR)"):
        assert section in report
    assert "Predicting `label` = 'yes'" in report  # the schema's last categorical column, first category
    for figure in ("synthetic.PRIVATE-fidelity-marginals.png", "synthetic.PRIVATE-fidelity-associations.png"):
        assert (folder / "report" / figure).stat().st_size > 10_000 and f"]({figure})" in report
    assert "do not publish it. Publish synthetic.csv and synthetic.json only." in stdout
    assert "PRIVATE (computed on the private data, not covered by the guarantee): " in stdout
    assert "TSTR AUROC for label='yes'" in stdout


def test_a_fidelity_report_inside_the_release_folder_is_refused_before_training(runs):
    folder, results = runs
    returncode, stdout, stderr = results["report_inside"]
    assert returncode == 1 and "epoch" not in stdout
    assert "--fidelity_report" in stderr and "inside --output's folder" in stderr.strip().splitlines()[-1]
    assert not (folder / "ri").exists()


def test_the_private_table_is_never_written_over_even_with_overwrite(runs):
    folder, results = runs
    returncode, stdout, stderr = results["input"]
    assert returncode == 1 and "epoch" not in stdout.lower(), stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"privgan-synthesize: error: --output '{folder / 'input.csv'}' is the file of --csv"), last
    assert "earlier release" not in last and "never writes over its input" in last
    assert (folder / "input.csv").read_bytes() == (folder / "private.csv").read_bytes()


def test_an_unwritable_destination_is_found_before_training_even_as_root(runs):
    _, results = runs
    returncode, stdout, stderr = results["proc"]
    assert returncode == 1 and "epoch" not in stdout.lower(), stderr
    assert stderr.strip().splitlines()[-1].startswith(
        "privgan-synthesize: error: --output '/proc/privgan/synthetic.csv' cannot be written"
    )


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
