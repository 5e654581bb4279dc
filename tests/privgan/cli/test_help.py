"""`--help` of the four console commands (their own flags with help text, an example schema) and the example files.

Run through the console entry points (`privgan_commands`) with TensorFlow's log level unset, as a user
runs them: stderr must stay empty (TensorFlow's start-up lines are filtered).
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from privgan.data.breast_cancer import BREAST_CANCER_SCHEMA
from privgan.tabular import TableSchema, load_schema, read_csv

# One worker runs this module, so that its module-scoped fixture (console runs) runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("help_cli")

REPO = pathlib.Path(__file__).resolve().parents[3]
COMMANDS = {"audit": "--help", "budget": "--help", "demo": "-h", "synthesize": "--help"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The four `--help`s and `privgan-synthesize --write_example`, started together."""
    folder = tmp_path_factory.mktemp("example")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO)
    commands = {**{name: (name, argument) for name, argument in COMMANDS.items()},
                "example": ("synthesize", f"--write_example={folder}")}
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import privgan_commands; privgan_commands.{command}()", argument],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, (command, argument) in commands.items()
    }
    outputs = {name: process.communicate(timeout=300) for name, process in processes.items()}
    return folder, {name: (processes[name].returncode, *outputs[name]) for name in commands}


@pytest.fixture(scope="module")
def helps(runs):
    return runs[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_exits_cleanly_with_nothing_on_stderr(helps, name):
    returncode, stdout, stderr = helps[name]
    assert returncode == 0, stderr
    assert stderr == ""
    assert stdout.startswith(f"privgan-{name}: ")
    assert f"Flags of privgan-{name}:" in stdout and "Try --helpfull" not in stdout
    # None of absl's or TensorFlow's own flags; only the last line points to them.
    body, last = stdout.rstrip().rsplit("\n", 1)
    assert "--verbosity" not in body and "--log_dir" not in body and "--helpfull" not in body
    assert last == "--helpfull also lists the flags of absl and TensorFlow (not needed to use the command)."


def _flag_lines(stdout):
    return {match.group(1): match.group(0) for match in re.finditer(r"^  --(?:\[no\])?(\w+)\S*\s+(.*)$", stdout, re.M)}


def test_synthesize_help_lists_its_flags_with_help_text_defaults_and_required_marks(helps):
    _, stdout, _ = helps["synthesize"]
    lines = _flag_lines(stdout)
    for name in ("csv", "schema", "epsilon", "delta", "rows", "output", "method", "condition", "epochs", "batch_size",
                 "seed", "overwrite", "fidelity_report", "label"):
        assert name in lines, name
    assert lines["csv"].startswith("  --csv=TEXT") and "The private table (CSV with a header row). (required)" in stdout
    assert "--epochs=INT" in lines["epochs"] and "--method={aim,mst,gan}" in stdout and "(default: aim)" in stdout
    assert "--accountant={pld,rdp}" in stdout and "--[no]overwrite" in stdout


def test_synthesize_help_keeps_the_sampling_secret_and_names_what_a_sampling_seed_costs(helps):
    _, stdout, _ = helps["synthesize"]
    text = " ".join(stdout.split())
    lines = {name: " ".join(line.split()) for name, line in _flag_lines(stdout).items()}
    assert "never of the Poisson sampling or the DP noise" in text  # --seed
    assert "--sampling_seed=INT" in lines["sampling_seed"]
    assert "the guarantee does not hold against anyone who knows it" in text
    assert "--rows=" not in stdout.split("Flags of")[0]  # the usage example does not pass N


def test_demo_help_keeps_the_sampling_secret(helps):
    text = " ".join(helps["demo"][1].split())
    assert "--sampling_seed=INT" in text and "the guarantee does not hold against anyone who knows it" in text
    assert "Seed of the split, initialisation, random features, latents and generation" in text


def test_synthesize_help_shows_an_example_schema_that_is_valid(helps):
    _, stdout, _ = helps["synthesize"]
    schema, _ = json.JSONDecoder().raw_decode(stdout, stdout.index('{"columns"'))
    schema = TableSchema.from_dict(schema)
    kinds = {type(column).__name__ for column in schema.columns}
    assert kinds == {"NumericColumn", "CategoricalColumn"} and any(c.nullable for c in schema.columns)


def test_budget_and_demo_help_list_their_flags(helps):
    assert {"num_examples", "batch_size", "epochs", "noise_multiplier", "delta", "target_epsilon"} <= set(
        _flag_lines(helps["budget"][1])
    )
    assert {"output_dir", "epsilon", "delta", "seed"} <= set(_flag_lines(helps["demo"][1]))
    assert {"statement", "whitebox", "phase", "num_canaries", "canary_variables", "seed"} <= set(
        _flag_lines(helps["audit"][1])
    )


def test_write_example_writes_a_table_and_its_schema_and_says_what_to_run(runs):
    folder, results = runs
    returncode, stdout, stderr = results["example"]
    assert returncode == 0 and stderr == "", stderr
    schema = load_schema(folder / "breast_cancer.schema.json")
    assert schema == BREAST_CANCER_SCHEMA and schema.source == "public"
    assert len(read_csv(folder / "breast_cancer.csv", schema)) == 569  # fits its schema
    assert (f"privgan-synthesize --csv={folder / 'breast_cancer.csv'} "
            f"--schema={folder / 'breast_cancer.schema.json'} ") in stdout
