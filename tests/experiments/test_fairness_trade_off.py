import pytest

from experiments.common.fairness_trade_off import (
    front_table,
    method_table,
    pareto_front,
    plot_method_curves,
    plot_trade_off,
    trade_off_table,
)

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


SUMMARY = [
    {"method": "ours", "parameter": "tolerance", "value": 0.05, "seeds": 3, "accuracy": 0.85, "accuracy_std": 0.01,
     "equalized_odds_difference": 0.04, "equalized_odds_difference_std": 0.005,
     "demographic_parity_difference": 0.12, "demographic_parity_difference_std": 0.01,
     "wall_time_seconds": 12.34, "wall_time_seconds_std": 1.0},
    {"method": "ours", "parameter": "tolerance", "value": 0.02, "seeds": 3, "accuracy": 0.84, "accuracy_std": 0.0,
     "equalized_odds_difference": 0.02, "equalized_odds_difference_std": 0.0,
     "demographic_parity_difference": 0.1, "demographic_parity_difference_std": 0.0,
     "wall_time_seconds": 10.0, "wall_time_seconds_std": 0.0},
    {"method": "peer", "parameter": "none", "value": None, "seeds": 3, "accuracy": 0.83, "accuracy_std": 0.0,
     "equalized_odds_difference": 0.01, "equalized_odds_difference_std": 0.0,
     "demographic_parity_difference": 0.09, "demographic_parity_difference_std": 0.0,
     "wall_time_seconds": 1.0, "wall_time_seconds_std": 0.0},
]


def test_method_table_shows_mean_and_std_per_method_and_value():
    lines = method_table(SUMMARY, columns=("accuracy", "validation_violation", "wall_time_seconds")).splitlines()
    assert lines[0] == "| method | parameter | seeds | accuracy | validation_violation | wall_time_seconds |"
    assert lines[2] == "| ours | tolerance = 0.05 | 3 | 0.8500 ± 0.0100 |  | 12.3 ± 1.0 |"
    assert lines[4].startswith("| peer |  | 3 | 0.8300 ± 0.0000 |")


def test_method_curves_have_one_line_per_method_sorted_by_unfairness():
    pytest.importorskip("matplotlib")
    figure = plot_method_curves(SUMMARY, title="t")
    left, right = figure.axes[:2]
    assert "equalized-odds" in left.get_xlabel() and "demographic-parity" in right.get_xlabel()
    labels = [text.get_text() for text in figure.axes[1].get_legend().get_texts()]
    assert labels == ["ours", "peer"]
    assert list(left.lines[0].get_xdata()) == [0.02, 0.04]


def test_method_curves_zoom_on_the_points_above_min_score():
    pytest.importorskip("matplotlib")
    collapsed = {"method": "peer", "parameter": "alpha", "value": 1.0, "seeds": 3, "accuracy": 0.46,
                 "equalized_odds_difference": 0.87, "demographic_parity_difference": 0.67}
    figure = plot_method_curves(SUMMARY + [collapsed], title="t", min_score=0.8)
    left = figure.axes[0]
    assert left.get_ylim()[0] == 0.8 and left.get_xlim()[1] < 0.87
    assert "1 point below test accuracy 0.8 not shown" in figure._suptitle.get_text()


def test_pareto_front_keeps_the_undominated_points_by_increasing_gap():
    points = [("a", 0.1, 0.80), ("a", 0.05, 0.78), ("b", 0.06, 0.77), ("b", 0.02, 0.70), ("c", 0.2, 0.79)]
    summary = [
        {"method": m, "parameter": "t", "value": i, "equalized_odds_difference": gap, "accuracy": accuracy}
        for i, (m, gap, accuracy) in enumerate(points)
    ]
    front = pareto_front(summary)
    assert [(entry["method"], entry["value"]) for entry in front] == [("b", 3), ("a", 1), ("a", 0)]
    assert [entry["method"] for entry in pareto_front(summary, methods={"b", "c"})] == ["b", "b", "c"]
    assert front_table(front).count("\n") == 4
