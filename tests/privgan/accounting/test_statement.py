import math

import pytest

from privgan.accounting import epsilon, privacy_statement
from privgan.accounting.statement import poisson_sampling_schedule

MNIST = dict(num_examples=60000, batch_size=256, epochs=60, noise_multiplier=1.1, delta=1e-5)


@pytest.fixture(scope="module")
def statement():
    return privacy_statement(**MNIST)


def test_statement_reports_both_accountants_for_both_sampling_assumptions(statement):
    poisson_row = next(line for line in statement.splitlines() if "(a) Poisson sampling" in line)
    once_row = next(line for line in statement.splitlines() if "(b) each example used once per epoch" in line)
    assert "RDP" in statement and "PLD" in statement
    assert "14040 steps" in poisson_row  # 60 epochs of round(60000 / 256) = 234 steps, as fit takes
    assert poisson_row.split()[-2:] == ["2.594", "2.380"]  # the pinned RDP and PLD values
    assert "60 epochs" in once_row
    rdp_once, pld_once = (float(value) for value in once_row.split()[-2:])
    # No amplification: far above the Poisson values, and PLD tighter than RDP.
    assert pld_once < rdp_once and pld_once > 10 * 2.380


def test_statement_states_hyper_parameters_assumptions_and_caveats(statement):
    flat = " ".join(statement.split())
    for text in (
        "60000 examples",
        "batch size 256",
        "noise multiplier 1.1",
        "delta = 1e-05",
        "add-or-remove-one adjacency",
        "no microbatching",
        "no amplification by sampling or shuffling is credited",
        "every intermediate model and checkpoint",
        "per example",
        "number of examples is treated as public",
        "nobody knows the noise",
    ):
        assert text in flat


def test_statement_is_stable():
    arguments = dict(num_examples=1000, batch_size=50, epochs=2.5, noise_multiplier=3.0, delta=1e-5)
    assert privacy_statement(**arguments) == privacy_statement(**arguments)


def test_statement_reports_infinite_epsilon_without_noise():
    statement = privacy_statement(num_examples=100, batch_size=10, epochs=1, noise_multiplier=0.0, delta=1e-5)
    assert "inf" in statement


def test_poisson_sampling_schedule_counts_the_steps_fit_takes():
    from privgan.dp.config import DPSGDConfig

    assert poisson_sampling_schedule(num_examples=60000, batch_size=256, epochs=60) == (256 / 60000, 14040)
    config = DPSGDConfig(l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=60000, expected_batch_size=256)
    assert 60 * config.steps_per_epoch == 14040
    # Before, the statement counted ceil(epochs * N / B) = 14063 steps: 23 more than fit takes.
    assert poisson_sampling_schedule(num_examples=60000, batch_size=150, epochs=15) == (150 / 60000, 6000)
    # 0.3 * 60000 / 150 is 120.00000000000001 in floating point.
    assert poisson_sampling_schedule(num_examples=60000, batch_size=150, epochs=0.3)[1] == 120


def test_schedule_agrees_with_the_poisson_row():
    q, steps = poisson_sampling_schedule(num_examples=1000, batch_size=50, epochs=2.5)
    statement = privacy_statement(num_examples=1000, batch_size=50, epochs=2.5, noise_multiplier=3.0, delta=1e-5)
    row = next(line for line in statement.splitlines() if "(a) Poisson sampling" in line)
    expected = epsilon(noise_multiplier=3.0, sampling_probability=q, steps=steps, delta=1e-5, accountant="rdp")
    assert math.isclose(float(row.split()[-2]), expected, abs_tol=5e-4)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(num_examples=0), "num_examples must be an integer >= 1, got 0"),
        (dict(batch_size=70000), r"batch_size must be in \[1, num_examples=60000\], got 70000"),
        (dict(epochs=0), "epochs must be a finite number > 0, got 0"),
        (dict(noise_multiplier=-1.0), "noise_multiplier must be a finite number >= 0"),
        (dict(delta=1.0), r"delta must be in \(0, 1\), got 1.0"),
    ],
)
def test_invalid_arguments_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        privacy_statement(**{**MNIST, **changes})


def test_rounded_statement_rounds_floats_never_in_the_guarantees_favour():
    from privgan.accounting.statement import rounded_statement

    statement = {
        "epsilon": 0.9993153965631083,
        "noise_multiplier": 1.600147008895874,
        "sampling_probability": 0.11247803163444639,
        "delta": 1e-05,
        "expected_batch_size": 64.0,
        "d_steps": 27,
        "ledger": {"phases": [{"noise_multiplier": 1.600147008895874, "steps": 27}]},
        "guarantee": "text",
    }
    result = rounded_statement(statement)
    assert result == {
        "epsilon": 0.999316,
        "noise_multiplier": 1.60014,
        "sampling_probability": 0.112479,
        "delta": 1e-05,
        "expected_batch_size": 64.0,
        "d_steps": 27,
        "ledger": {"phases": [{"noise_multiplier": 1.60014, "steps": 27}]},
        "guarantee": "text",
    }
    assert rounded_statement({"epsilon": 2.5})["epsilon"] == 2.5  # exact values stay
