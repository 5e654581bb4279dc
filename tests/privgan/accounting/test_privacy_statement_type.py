"""PrivacyStatement: frozen, self-validating, the former dict's keys in to_dict, a few lines in summary."""

import dataclasses
import json
import math

import pytest

from privgan.accounting.statement import PrivacyStatement

GUARANTEE = "Example-level (epsilon, delta)-DP, add-or-remove-one adjacency. More words."


def _statement(**overrides):
    fields = dict(epsilon=1.2345, delta=1e-5, accountant="pld", guarantee=GUARANTEE, date="2026-01-01T00:00:00+00:00",
                  details={"noise_multiplier": 1.1, "ledger": {"phases": [{"steps": 3}]}})
    return PrivacyStatement(**{**fields, **overrides})


def test_a_statement_is_frozen_and_its_details_cannot_be_changed_through_it():
    details = {"ledger": {"phases": []}}
    statement = _statement(details=details)
    with pytest.raises(dataclasses.FrozenInstanceError):
        statement.epsilon = 0.0
    details["ledger"]["phases"].append("added later")  # the caller's dict is not the statement's
    statement["ledger"]["phases"].append("added to a copy")
    statement.to_dict()["ledger"]["phases"].append("added to another copy")
    assert statement.to_dict()["ledger"] == {"phases": []}


@pytest.mark.parametrize("field, value, message", [
    ("epsilon", -0.1, "epsilon must be a number >= 0"),
    ("epsilon", math.nan, "epsilon must be a number >= 0"),
    ("delta", 0.0, r"delta must be in \(0, 1\)"),
    ("delta", 1.0, r"delta must be in \(0, 1\)"),
    ("accountant", "moments", "accountant must be one of"),
    ("guarantee", "", "guarantee must be a non-empty string"),
    ("warning", "", "warning must be None or a non-empty string"),
    ("details", {"epsilon": 2.0}, r"details must not repeat the statement's fields, got the keys \['epsilon'\]"),
])
def test_an_out_of_range_field_is_refused_with_its_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        _statement(**{field: value})


def test_an_infinite_epsilon_is_a_statement_of_no_bound():
    assert _statement(epsilon=math.inf).epsilon == math.inf


def test_to_dict_has_the_former_keys_is_json_and_round_trips():
    statement = _statement(warning="noise seed published")
    flat = statement.to_dict()
    assert list(flat) == ["epsilon", "delta", "accountant", "noise_multiplier", "ledger", "privgan_version", "date",
                          "guarantee", "warning"]
    assert PrivacyStatement.from_dict(json.loads(json.dumps(flat, allow_nan=False))) == statement
    assert "warning" not in _statement().to_dict()
    with pytest.raises(ValueError, match="lacks \\['guarantee'\\]"):
        PrivacyStatement.from_dict({"epsilon": 1.0, "delta": 1e-5, "accountant": "pld"})


def test_reading_it_as_a_mapping_gives_the_dict_values():
    statement = _statement()
    assert dict(statement) == statement.to_dict()
    assert statement["epsilon"] == 1.2345 and statement["noise_multiplier"] == 1.1
    assert {**statement, "num_rows": 5}["num_rows"] == 5 and "warning" not in statement
    with pytest.raises(KeyError):
        statement["warning"]


def test_summary_rounds_epsilon_up_and_names_the_guarantee_and_warning():
    lines = _statement(warning="the schema was read from the data").summary().splitlines()
    assert lines[0].startswith("epsilon = 1.235 at delta = 1e-05 (PLD accountant; privgan ")
    assert lines[1] == "Example-level (epsilon, delta)-DP, add-or-remove-one adjacency."
    assert lines[2] == "WARNING: the schema was read from the data"
    assert _statement(epsilon=1.0).summary().startswith("epsilon = 1.000 ")
