import json

import dp_accounting
import pytest

from privgan.accounting import DpSgdPhase, PrivacyLedger, dp_sgd_event, epsilon, epsilon_of_event


def test_record_merges_equal_phases_and_keeps_different_ones():
    ledger = PrivacyLedger()
    ledger.record(noise_multiplier=1.1, sampling_probability=0.01)
    ledger.record(noise_multiplier=1.1, sampling_probability=0.01, steps=9)
    ledger.record(noise_multiplier=2.0, sampling_probability=0.01, steps=5)
    ledger.record(noise_multiplier=2.0, sampling_probability=0.02, steps=3)
    ledger.record(noise_multiplier=2.0, sampling_probability=0.02, steps=0)
    assert ledger.phases == (
        DpSgdPhase(1.1, 0.01, 10),
        DpSgdPhase(2.0, 0.01, 5),
        DpSgdPhase(2.0, 0.02, 3),
    )
    assert ledger.total_steps == 18


def test_merged_ledger_has_the_epsilon_of_one_phase():
    ledger = PrivacyLedger()
    for _ in range(3):
        ledger.record(noise_multiplier=2.0, sampling_probability=0.01, steps=100)
    expected = epsilon(noise_multiplier=2.0, sampling_probability=0.01, steps=300, delta=1e-5)
    assert ledger.epsilon(delta=1e-5) == expected


def test_phases_compose_as_the_directly_composed_event():
    ledger = PrivacyLedger([DpSgdPhase(2.0, 0.01, 200), DpSgdPhase(3.0, 0.05, 300)])
    direct = dp_accounting.ComposedDpEvent(
        [
            dp_sgd_event(noise_multiplier=2.0, sampling_probability=0.01, steps=200),
            dp_sgd_event(noise_multiplier=3.0, sampling_probability=0.05, steps=300),
        ]
    )
    assert ledger.dp_event() == direct
    for accountant in ("rdp", "pld"):
        assert ledger.epsilon(delta=1e-5, accountant=accountant) == epsilon_of_event(
            direct, delta=1e-5, accountant=accountant
        )
        separate = [
            epsilon(noise_multiplier=2.0, sampling_probability=0.01, steps=200, delta=1e-5, accountant=accountant),
            epsilon(noise_multiplier=3.0, sampling_probability=0.05, steps=300, delta=1e-5, accountant=accountant),
        ]
        assert ledger.epsilon(delta=1e-5, accountant=accountant) > max(separate)


def test_empty_ledger():
    ledger = PrivacyLedger()
    assert ledger.phases == ()
    assert ledger.total_steps == 0
    assert ledger.dp_event() == dp_accounting.NoOpDpEvent()
    assert ledger.epsilon(delta=1e-5, accountant="rdp") == 0.0
    assert ledger.epsilon(delta=1e-5, accountant="pld") == 0.0


def test_constructor_merges_adjacent_equal_phases_and_equality_is_by_value():
    merged = PrivacyLedger([DpSgdPhase(1.0, 0.01, 5), DpSgdPhase(1.0, 0.01, 7)])
    assert merged == PrivacyLedger([DpSgdPhase(1.0, 0.01, 12)])
    assert merged != PrivacyLedger([DpSgdPhase(1.0, 0.01, 11)])
    assert merged != PrivacyLedger([DpSgdPhase(1.0, 0.02, 12)])


def test_to_dict_from_dict_round_trip_through_json():
    ledger = PrivacyLedger([DpSgdPhase(1.1, 256 / 60000, 14063), DpSgdPhase(0.7, 0.5, 3)])
    restored = PrivacyLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored == ledger
    assert restored.epsilon(delta=1e-5, accountant="rdp") == ledger.epsilon(delta=1e-5, accountant="rdp")


def test_copy_is_independent():
    ledger = PrivacyLedger([DpSgdPhase(1.0, 0.01, 5)])
    copy = ledger.copy()
    copy.record(noise_multiplier=1.0, sampling_probability=0.01)
    assert ledger.total_steps == 5 and copy.total_steps == 6


def test_phase_normalises_numpy_values():
    import numpy as np

    phase = DpSgdPhase(np.float32(1.5), np.float64(0.25), np.int64(3))
    assert phase == DpSgdPhase(1.5, 0.25, 3)
    assert type(phase.steps) is int and type(phase.noise_multiplier) is float
    json.dumps(PrivacyLedger([phase]).to_dict())


@pytest.mark.parametrize(
    "phase, message",
    [
        ((-1.0, 0.1, 1), "noise_multiplier must be a finite number >= 0"),
        ((1.0, 0.0, 1), r"sampling_probability must be in \(0, 1\]"),
        ((1.0, 0.1, 0), "steps must be an integer >= 1, got 0"),
        ((1.0, 0.1, 1.5), "steps must be an integer >= 1, got 1.5"),
    ],
)
def test_invalid_phases_are_refused(phase, message):
    with pytest.raises(ValueError, match=message):
        DpSgdPhase(*phase)


def test_invalid_record_and_dict_are_refused():
    ledger = PrivacyLedger()
    with pytest.raises(ValueError, match="steps must be an integer >= 0, got -2"):
        ledger.record(noise_multiplier=1.0, sampling_probability=0.1, steps=-2)
    with pytest.raises(ValueError, match=r"sampling_probability must be in \(0, 1\]"):
        ledger.record(noise_multiplier=1.0, sampling_probability=2.0, steps=0)
    with pytest.raises(ValueError, match="as written by PrivacyLedger.to_dict"):
        PrivacyLedger.from_dict({"phases": [{"noise_multiplier": 1.0}]})
    with pytest.raises(TypeError, match="DpSgdPhase"):
        PrivacyLedger([(1.0, 0.1, 1)])
    assert ledger.phases == ()


def test_releases_compose_with_dp_sgd_and_never_merge():
    ledger = PrivacyLedger()
    ledger.record(noise_multiplier=1.0, sampling_probability=0.01, steps=100)
    ledger.record_release(dp_accounting.GaussianDpEvent(2.0), description="mean embedding")
    ledger.record(noise_multiplier=1.0, sampling_probability=0.01, steps=50)
    assert len(ledger.phases) == 3
    assert ledger.total_steps == 150
    assert ledger.mechanism_runs == 151
    direct = dp_accounting.ComposedDpEvent(
        [
            dp_sgd_event(noise_multiplier=1.0, sampling_probability=0.01, steps=100),
            dp_accounting.GaussianDpEvent(2.0),
            dp_sgd_event(noise_multiplier=1.0, sampling_probability=0.01, steps=50),
        ]
    )
    assert ledger.dp_event() == direct
    assert ledger.epsilon(delta=1e-5) == epsilon_of_event(direct, delta=1e-5)


def test_releases_survive_a_json_round_trip():
    from privgan.accounting import ReleasePhase

    ledger = PrivacyLedger()
    ledger.record_release(
        dp_accounting.ComposedDpEvent([dp_accounting.GaussianDpEvent(3.0), dp_accounting.ZCDpEvent(0.1)]),
        description="marginals",
    )
    ledger.record(noise_multiplier=1.1, sampling_probability=0.01, steps=7)
    restored = PrivacyLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored == ledger
    assert isinstance(restored.phases[0], ReleasePhase)
    assert restored.epsilon(delta=1e-5, accountant="rdp") == ledger.epsilon(delta=1e-5, accountant="rdp")


def test_release_needs_an_event_and_a_description():
    ledger = PrivacyLedger()
    with pytest.raises(TypeError, match="event"):
        ledger.record_release(2.0, description="x")
    with pytest.raises(ValueError, match="description"):
        ledger.record_release(dp_accounting.GaussianDpEvent(1.0), description="")
