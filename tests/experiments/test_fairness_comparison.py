import numpy as np
import pandas as pd
import pytest

from experiments.common import fairness_comparison as comparison
from fairness.data import load_csv_table, make_biased_toy


def _split():
    train, test = make_biased_toy(300, random_state=0), make_biased_toy(300, random_state=1)
    return train, test


def test_compare_runs_every_value_and_seed_and_summarize_aggregates_over_seeds():
    calls = []

    def fit_predict(value, seed, train, test, sensitive):
        calls.append((value, seed))
        rng = np.random.default_rng(seed)
        return rng.integers(0, 2, len(test)), {"extra_number": float(seed)}

    method = comparison.Method("random", "p", (0.1, 0.2), fit_predict)
    train, test = _split()
    rows = comparison.compare([method], train, test, sensitive="group", seeds=[0, 1], log=None)
    assert calls == [(0.1, 0), (0.1, 1), (0.2, 0), (0.2, 1)]
    assert {key for key in comparison.METRICS} <= set(rows[0])
    summary = comparison.summarize(rows)
    assert [(entry["method"], entry["value"], entry["seeds"]) for entry in summary] == [
        ("random", 0.1, 2), ("random", 0.2, 2)
    ]
    accuracies = [row["accuracy"] for row in rows[:2]]
    assert summary[0]["accuracy"] == pytest.approx(np.mean(accuracies))
    assert summary[0]["accuracy_std"] == pytest.approx(np.std(accuracies))
    assert summary[0]["extra_number"] == 0.5


def test_a_seed_independent_fit_is_fitted_once_per_value():
    fits = []

    def fit_predict(value, seed, train, test, sensitive):
        assert seed is None
        fits.append(value)
        return (lambda seed: np.full(len(test), seed % 2)), {}

    method = comparison.Method("constant", "none", (None,), fit_predict, seeded_fit=False)
    train, test = _split()
    rows = comparison.compare([method], train, test, sensitive="group", seeds=[0, 1, 2], log=None)
    assert fits == [None] and len(rows) == 3
    assert [row["demographic_parity_difference"] for row in rows] == [0.0, 0.0, 0.0]


def test_fairlearn_peers_run_on_float32_features_and_pandas_groups():
    train, test = _split()
    methods = [
        comparison.logistic_regression(),
        comparison.threshold_optimizer(constraint="equalized_odds"),
        comparison.exponentiated_gradient(constraint="demographic_parity", bounds=(0.05,)),
    ]
    rows = comparison.compare(methods, train, test, sensitive="group", seeds=[0], log=None)
    assert [row["method"] for row in rows] == [method.name for method in methods]
    assert all(0.5 < row["accuracy"] <= 1.0 for row in rows)


def test_representation_baselines_give_leakage_and_downstream_accuracy():
    train, test = _split()
    methods = [
        comparison.drop_sensitive_column(),
        comparison.plain_autoencoder(representation_dim=2, hidden_units=(4,), epochs=1, batch_size=100),
    ]
    rows = comparison.compare_representations(methods, train, test, sensitive="group", seeds=[0], log=None)
    assert rows[0]["leakage_balanced_accuracy"] > 0.8  # the group proxy is among the features
    assert all(0.0 <= row["downstream_accuracy"] <= 1.0 for row in rows)


def test_load_csv_table_one_hot_encodes_standardises_and_keeps_the_sensitive_column_out(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, 200),
        "job": rng.choice(["a", "b", "c"], 200),
        "sex": rng.choice(["female", "male"], 200),
        "label": rng.choice(["yes", "no"], 200),
    })
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    train, test = load_csv_table(path, label="label", positive_label="yes", sensitive="sex", test_fraction=0.25)
    assert len(train) == 150 and len(test) == 50
    assert train.feature_names == ("age", "job=a", "job=b", "job=c")
    assert abs(train.features[:, 0].mean()) < 1e-5 and train.features[:, 0].std() == pytest.approx(1, abs=0.01)
    assert set(train.sensitive["sex"]) == {"female", "male"} and set(np.unique(train.labels)) == {0, 1}
    with pytest.raises(ValueError, match="sensitive column 'race'"):
        load_csv_table(path, label="label", positive_label="yes", sensitive="race")


@pytest.mark.filterwarnings("ignore:no candidate met the tolerance:RuntimeWarning")  # two epochs are short
def test_both_regimes_of_adversarial_debiasing_share_one_fit():
    fits = {}
    params = dict(constraint="equalized_odds", tolerances=(0.1,), fits=fits, hidden_units=(4,), epochs=2,
                  run_eagerly=True)
    methods = [comparison.adversarial_debiasing(**params),
               comparison.adversarial_debiasing(with_attribute=True, **params)]
    assert [method.attribute_at_prediction for method in methods] == [False, True]
    train, test = make_biased_toy(600, random_state=0), make_biased_toy(300, random_state=1)
    rows = comparison.compare(methods, train, test, sensitive="group", seeds=[0], log=None)
    assert len(fits) == 1 and rows[0]["fit_seconds"] == rows[1]["fit_seconds"]
    assert methods[1].name.endswith("+ group thresholds")
