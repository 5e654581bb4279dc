"""ParallelLedger: the worst part's epsilon, each from dp-accounting; prior composed before every part."""

import json

import dp_accounting
import pytest

from privgan.accounting import ParallelLedger, PrivacyLedger, epsilon_of_event

DELTA = 1e-5


def ledger(sigma, q, steps):
    result = PrivacyLedger()
    result.record(noise_multiplier=sigma, sampling_probability=q, steps=steps)
    return result


def test_epsilon_is_the_largest_parts_and_the_prior_counts_for_every_part():
    prior = ledger(5.0, 1.0, 3)
    parallel = ParallelLedger({"labelled": ledger(20.0, 1.0, 100), "unlabelled": ledger(1.0, 0.01, 100)}, prior=prior)
    expected = {
        name: epsilon_of_event(dp_accounting.ComposedDpEvent([prior.dp_event(), part.dp_event()]), delta=DELTA,
                               accountant="rdp")
        for name, part in parallel.parts.items()
    }
    assert parallel.part_epsilons(delta=DELTA, accountant="rdp") == pytest.approx(expected)
    assert parallel.epsilon(delta=DELTA, accountant="rdp") == pytest.approx(max(expected.values()))
    assert parallel.total_steps == 103 and parallel.mechanism_runs == 103
    # Composing the parts is a valid but looser bound.
    assert parallel.composed().epsilon(delta=DELTA, accountant="rdp") > parallel.epsilon(delta=DELTA, accountant="rdp")


def test_round_trips_through_json_and_compares_by_value():
    parallel = ParallelLedger({"a": ledger(2.0, 0.1, 5)}, prior=ledger(3.0, 0.5, 2))
    restored = ParallelLedger.from_dict(json.loads(json.dumps(parallel.to_dict())))
    assert restored == parallel
    assert restored != ParallelLedger({"a": ledger(2.0, 0.1, 6)}, prior=ledger(3.0, 0.5, 2))


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="at least one part"):
        ParallelLedger({})
    with pytest.raises(TypeError, match="part 'a' must be a PrivacyLedger"):
        ParallelLedger({"a": 1.0})
    with pytest.raises(ValueError, match="as written by ParallelLedger.to_dict"):
        ParallelLedger.from_dict({"parts": []})
