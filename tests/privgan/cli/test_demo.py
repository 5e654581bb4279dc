"""privgan-demo end to end on a tiny configuration: both phases in one ledger, outputs, secret noise."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

# One worker runs this module, so that its module-scoped fixture (console runs) runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("demo_cli")

REPO = pathlib.Path(__file__).resolve().parents[3]
TINY = ["--release_steps=5", "--num_features=100", "--gan_epochs=1", "--n_critic=2", "--num_synthetic=60",
        "--tstr_epochs=1", "--feature_epochs=1", "--epsilon=5"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    completed = subprocess.run([sys.executable, "-m", "privgan.cli.demo", f"--output_dir={output_dir}", *TINY],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return output_dir, completed.stdout


def test_demo_writes_data_statement_grid_and_results(demo):
    output_dir, stdout = demo
    for name in ("synthetic.npz", "synthetic.json", "samples.png", "results.json"):
        assert (output_dir / name).is_file(), name
    results = json.loads((output_dir / "results.json").read_text())
    for key in ("tstr_accuracy", "within_class_pixel_std"):
        assert key in results and key in results["phase1_dp_merf"]
    assert f"TSTR accuracy {results['tstr_accuracy']:.4f}" in stdout
    assert results["model"] == "DP GAN warm-started from DP-MERF" and not results["noise_seeded"]


def test_demo_numbers_read_through_the_private_classifier_are_labelled_private(demo):
    # FID and PRDC go through a CNN trained without noise on the private training digits: not beside the
    # released numbers unlabelled, but under "private_evaluation" with a note, and PRIVATE on the console.
    output_dir, stdout = demo
    results = json.loads((output_dir / "results.json").read_text())
    private = results["private_evaluation"]
    assert private["note"].startswith("PRIVATE") and "NOT covered by the guarantee" in private["note"]
    for key in ("fid", "precision", "recall", "density", "coverage"):
        assert key not in results and key not in results["phase1_dp_merf"]
        assert key in private and key in private["phase1_dp_merf"]
    assert all(line.startswith("PRIVATE") for line in stdout.splitlines() if "fid " in line or "FID" in line)


def test_a_fresh_demo_keeps_its_poisson_sampling_secret(demo):
    # --seed (0 by default, published in results.json) seeds split, initialisation and latents only.
    output_dir, _ = demo
    statement = json.loads((output_dir / "synthetic.json").read_text())
    assert statement["sampling_seeding"].startswith("secret"), statement["sampling_seeding"]
    assert statement["noise_seeding"].startswith("secret")
    assert not json.loads((output_dir / "results.json").read_text())["sampling_seeded"]


def test_demo_statement_composes_the_release_and_the_discriminator_steps(demo):
    output_dir, _ = demo
    statement = json.loads((output_dir / "synthetic.json").read_text())
    release, steps = statement["ledger"]["phases"]
    assert release["release"]["event"] == "GaussianDpEvent"
    # sigma of the D steps is calibrated for what the release left, so every planned D step runs: about
    # N~ / 64 per epoch (N~ the release's noisy count of the 1,437 digits), a multiple of n_critic = 2.
    assert steps["steps"] == statement["d_steps"] and statement["d_steps"] in (20, 22, 24)
    assert 0.99 * 5.0 <= statement["epsilon"] <= 5.0
    results = json.loads((output_dir / "results.json").read_text())
    assert results["release_epsilon"] < results["epsilon"] == pytest.approx(statement["epsilon"])


def test_the_demo_keeps_the_number_of_training_digits_private(demo):
    # The GAN phase is sized by the DP-MERF release's noisy count, not by the exact N.
    output_dir, _ = demo
    statement = json.loads((output_dir / "synthetic.json").read_text())
    assert statement["num_examples_source"] == "released"
    assert "number of examples is private" in statement["guarantee"]
