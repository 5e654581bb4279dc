"""`privgan-audit`: a statement's epsilon re-derived from its ledger, and the white-box audit at its sigma, q, T."""

import json
import os
import pathlib
import subprocess
import sys

import dp_accounting
import numpy as np
import pytest

from privgan.accounting.ledger import PrivacyLedger
from privgan.cli import command
from privgan.cli.audit import check_statement, whitebox_report

REPO = pathlib.Path(__file__).resolve().parents[3]
DELTA = 1e-5


def _statement(tmp_path, ledger, *, epsilon=None, name="synthetic.json", **extra):
    # The fields every privgan statement has (save_synthetic / privacy_statement), plus `extra`.
    path = tmp_path / name
    statement = {
        "epsilon": ledger.epsilon(delta=DELTA) if epsilon is None else epsilon,
        "delta": DELTA,
        "accountant": "pld",
        "ledger": ledger.to_dict(),
        **extra,
    }
    path.write_text(json.dumps(statement), encoding="utf-8")
    return path


def _dp_sgd_ledger(*, steps=20):
    ledger = PrivacyLedger()
    ledger.record(noise_multiplier=1.0, sampling_probability=0.05, steps=steps)
    return ledger


def test_a_statement_consistent_with_its_ledger(tmp_path):
    ledger = _dp_sgd_ledger()
    ledger.record_release(dp_accounting.GaussianDpEvent(5.0), description="one Gaussian mean embedding")
    text, consistent, _, _ = check_statement(_statement(tmp_path, ledger, sampling_seeding="secret"))
    assert consistent
    assert "recomputed epsilon" in text and "consistent" in text and "INCONSISTENT" not in text
    assert "20 DP-SGD steps, sigma = 1, q = 0.05; release: one Gaussian mean embedding" in text
    assert "sampling seeding: secret" in text


def test_a_statement_whose_epsilon_is_not_its_ledgers_is_flagged(tmp_path):
    ledger = _dp_sgd_ledger()
    text, consistent, _, _ = check_statement(_statement(tmp_path, ledger, epsilon=ledger.epsilon(delta=DELTA) / 2))
    assert not consistent and "INCONSISTENT" in text


@pytest.mark.parametrize(
    "content, message",
    [("not json", "cannot read a JSON privacy statement"), ('{"epsilon": 1}', "no delta, ledger"),
     ('{"epsilon": 1, "delta": 1e-5, "ledger": {"phases": [{"steps": 3}]}}', "its ledger is not valid")],
)
def test_what_is_not_a_statement_gets_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(command.CommandError, match=message):
        check_statement(path)


def test_whitebox_report_puts_the_lower_bounds_beside_the_accountant(tmp_path):
    _, _, statement, ledger = check_statement(_statement(tmp_path, _dp_sgd_ledger()))
    report = whitebox_report(statement, ledger, num_canaries=200, seed=0)
    assert "upper bound: epsilon" in report and "lower bound: epsilon" in report
    assert "f-DP one-run lower bound: epsilon" in report
    assert "20 DP-SGD steps, sigma = 1, q = 0.05" in report
    assert "WARNING" not in report


def test_whitebox_needs_dp_sgd_steps(tmp_path):
    ledger = PrivacyLedger()
    ledger.record_release(dp_accounting.GaussianDpEvent(5.0), description="one release")
    _, _, statement, ledger = check_statement(_statement(tmp_path, ledger))
    with pytest.raises(command.CommandError, match="no DP-SGD steps"):
        whitebox_report(statement, ledger, num_canaries=200)
    two = _dp_sgd_ledger()
    two.record(noise_multiplier=2.0, sampling_probability=0.05, steps=5)
    with pytest.raises(command.CommandError, match="2 DP-SGD phases; choose one with --phase"):
        whitebox_report(statement, two, num_canaries=200)


def test_the_command_end_to_end(tmp_path):
    # Two processes, started together: a consistent statement with the white-box audit of its phase
    # (status 0), and a statement whose epsilon its ledger does not give (status 1, one error line).
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    good = _statement(tmp_path, _dp_sgd_ledger())
    bad = _statement(tmp_path, _dp_sgd_ledger(), epsilon=0.1, name="bad.json")
    runs = {
        name: subprocess.Popen([sys.executable, "-m", "privgan.cli.audit", *arguments], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, arguments in {"good": [f"--statement={good}", "--whitebox", "--num_canaries=200", "--seed=0"],
                                "bad": [f"--statement={bad}"]}.items()
    }
    (good_out, good_err), (bad_out, bad_err) = (runs[name].communicate(timeout=300) for name in ("good", "bad"))
    assert runs["good"].returncode == 0, good_err
    assert "consistent" in good_out and "lower bound: epsilon" in good_out
    assert runs["bad"].returncode == 1
    assert "INCONSISTENT" in bad_out
    assert "privgan-audit: error: the statement's epsilon differs from the one its ledger gives" in bad_err
    assert "Traceback" not in bad_err


def test_a_model_saved_by_the_dp_sgd_example_is_audited_from_its_own_ledger(tmp_path):
    import keras

    from privgan.cli.audit import model_report
    from privgan.dp import make_private

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)).astype("float32"), rng.integers(0, 3, 40)
    model = make_private(keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)]), l2_norm_clip=1.0,
                         noise_multiplier=1.1, num_examples=len(x), expected_batch_size=8)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, delta=DELTA, verbose=0)
    model.save(tmp_path / "model.keras")
    text, statement, ledger = model_report(tmp_path / "model.keras", delta=DELTA)
    assert ledger.total_steps == 10 and f"epsilon {model.privacy_spent(delta=DELTA):.6g}" in text
    assert "sigma = 1.1" in text and "q = 0.2" in text
    assert "lower bound: epsilon" in whitebox_report(statement, ledger, num_canaries=200, seed=0)
    with pytest.raises(command.CommandError, match="--delta must be in"):
        model_report(tmp_path / "model.keras", delta=None)
    (tmp_path / "plain.keras").write_text("not a model")
    with pytest.raises(command.CommandError, match="--model: cannot load"):
        model_report(tmp_path / "plain.keras", delta=DELTA)
