import pytest

from fairness.trade_off import plot_trade_off, trade_off_table

BASELINE = {"accuracy": 0.85, "demographic_parity_difference": 0.2, "equalized_odds_difference": 0.1}
ROWS = [
    {"adversary_weight": 0.5, "accuracy": 0.84, "demographic_parity_difference": 0.1,
     "equalized_odds_difference": 0.05, "leakage": 0.6},
    {"adversary_weight": 2.0, "accuracy": 0.82, "demographic_parity_difference": 0.05,
     "equalized_odds_difference": 0.02, "leakage": 0.52},
]


def test_table_has_the_baseline_then_one_line_per_weight():
    lines = trade_off_table(ROWS, {**BASELINE, "leakage": 0.7}, extra_columns=("leakage",)).splitlines()
    assert lines[0].startswith("| adversary weight | accuracy |") and lines[0].endswith("leakage |")
    assert lines[2] == "| baseline | 0.8500 | 0.2000 | 0.1000 | 0.7000 |"
    assert [line.split(" | ")[0] for line in lines[3:]] == ["| 0.5", "| 2"]


def test_plot_shows_both_gaps_against_accuracy():
    pytest.importorskip("matplotlib")
    figure = plot_trade_off(ROWS, BASELINE, title="t")
    left, right = figure.axes
    assert "demographic-parity" in left.get_xlabel() and "equalized-odds" in right.get_xlabel()
    assert list(left.lines[0].get_xdata()) == [0.1, 0.05]
