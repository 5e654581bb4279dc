"""End-to-end runs of the budget command (`privgan.cli.budget`), through its flags, in one process."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

# One worker runs this module, so that its module-scoped fixture (console runs) runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("budget_cli")

REPO = pathlib.Path(__file__).resolve().parents[3]
RUNS = {
    "statement": ["--num_examples=60000", "--batch_size=256", "--epochs=60", "--noise_multiplier=1.1"],
    "calibration": ["--num_examples=1000", "--batch_size=50", "--epochs=10", "--target_epsilon=1.5",
                    "--accountant=rdp"],
    "bad_delta": ["--num_examples=60000", "--batch_size=256", "--epochs=60", "--noise_multiplier=1.1", "--delta=2"],
}


@pytest.fixture(scope="module")
def runs():
    """The three runs in one process (`tests.console_batch`): each start would import TensorFlow again."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    completed = subprocess.run([sys.executable, "-m", "tests.console_batch", "privgan.cli.budget", json.dumps(RUNS)],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    return {name: tuple(result) for name, result in json.loads(completed.stdout.splitlines()[-1]).items()}


def test_prints_the_statement(runs):
    returncode, stdout, stderr = runs["statement"]
    assert returncode == 0, stderr
    flat = " ".join(stdout.split())
    assert "(a) Poisson sampling, q = 0.004267, 14040 steps 2.594 2.380" in flat
    assert "(b) each example used once per epoch, 60 epochs" in flat


def test_prints_the_calibrated_noise_multiplier(runs):
    from privgan.accounting import epsilon

    returncode, stdout, stderr = runs["calibration"]
    assert returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("noise_multiplier = ")
    noise_multiplier = float(lines[0].split("=")[1])
    reached = epsilon(
        noise_multiplier=noise_multiplier, sampling_probability=0.05, steps=200, delta=1e-5, accountant="rdp"
    )
    assert reached <= 1.5
    assert f"epsilon = {reached:.4f} (target 1.5)" in lines[1]
    assert "over 200 steps" in lines[1]


def test_bad_flag_gives_one_error_line_and_no_traceback(runs):
    returncode, stdout, stderr = runs["bad_delta"]
    assert returncode != 0
    assert stdout == ""
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "privgan-budget: error: delta must be in (0, 1), got 2.0"
