import numpy as np
import pytest

from fairness.metrics import fairness_report, leakage


def test_leakage_is_high_when_the_group_is_in_z_and_near_chance_when_not():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 2, size=600)
    noise = rng.normal(size=(600, 3))
    leaky = leakage(np.column_stack([noise, s + 0.3 * rng.normal(size=600)]), s)
    clean = leakage(noise, s)
    assert leaky.max_balanced_accuracy > 0.9
    assert clean.max_balanced_accuracy < 0.6
    assert set(leaky.balanced_accuracy) == {"logistic_regression", "mlp"}
    assert "leakage (best probe)" in leaky.summary()


@pytest.mark.parametrize(
    "Z, s, message",
    [
        (np.zeros((10, 2)), np.arange(9) % 2, "one entry per row"),
        (np.zeros((10, 2)), np.zeros(10), "at least 2 groups"),
        (np.full((10, 2), np.nan), np.arange(10) % 2, "NaN"),
        (np.array([["a", "b"]] * 10), np.arange(10) % 2, "numeric"),
    ],
)
def test_leakage_refuses_bad_input(Z, s, message):
    with pytest.raises(ValueError, match=message):
        leakage(Z, s)


def test_fairness_report_uses_fairlearns_definitions():
    y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    groups = np.array(["a"] * 4 + ["b"] * 4)
    report = fairness_report(y_true, y_pred, sensitive_features=groups)
    assert report.accuracy == pytest.approx(6 / 8)
    assert report.demographic_parity_difference == pytest.approx(0.75 - 0.25)
    # TPR 1 vs 0.5, FPR 0.5 vs 0: the largest gap is 0.5.
    assert report.equalized_odds_difference == pytest.approx(0.5)
    assert report.selection_rate_by_group == {"a": 0.75, "b": 0.25}
