import numpy as np
import pytest
from sklearn.base import clone

from fairness import FairRepresentation
from fairness.data import make_biased_toy
from fairness.metrics import fairness_report, leakage

SMALL = dict(
    representation_dim=4,
    encoder_hidden_units=(16,),
    adversary_hidden_units=(16,),
    epochs=10,
    batch_size=64,
    learning_rate=1e-2,
    random_state=0,
)


@pytest.fixture(scope="module")
def toy():
    return make_biased_toy(1000, random_state=0), make_biased_toy(2000, random_state=1)


def _fit(toy, **params):
    train, test = toy
    model = FairRepresentation(**{**SMALL, **params})
    model.fit(train.features, train.labels, sensitive_features=train.sensitive["group"])
    groups = test.sensitive["group"]
    report = fairness_report(test.labels, model.predict(test.features), sensitive_features=groups)
    return model, report, leakage(model.transform(test.features), groups, max_samples=1000)


@pytest.fixture(scope="module")
def baseline(toy):
    return _fit(toy, adversary_weight=0.0)


def test_baseline_representation_leaks_and_is_unfair(baseline):
    _, report, leaked = baseline
    assert report.accuracy > 0.78
    assert report.demographic_parity_difference > 0.3
    assert leaked.max_balanced_accuracy > 0.85


def test_demographic_parity_adversary_removes_group_from_representation(toy, baseline):
    model, report, leaked = _fit(toy, constraint="demographic_parity", adversary_weight=1.0)
    _, base_report, base_leaked = baseline
    assert report.demographic_parity_difference < 0.5 * base_report.demographic_parity_difference
    # Leakage above chance: half of what the baseline leaks is gone at least.
    assert leaked.max_balanced_accuracy - 0.5 < 0.6 * (base_leaked.max_balanced_accuracy - 0.5)
    assert model.transform(toy[1].features).shape == (2000, 4)
    assert report.accuracy > 0.7


def test_equalized_odds_adversary_removes_most_of_the_gap(toy, baseline):
    _, report, _ = _fit(toy, constraint="equalized_odds", adversary_weight=1.0)
    assert report.equalized_odds_difference < 0.5 * baseline[1].equalized_odds_difference
    assert report.accuracy > 0.7


def test_equal_opportunity_trains_and_refuses_multiclass_labels(toy):
    train, _ = toy
    params = {**SMALL, "epochs": 1, "run_eagerly": True}
    model = FairRepresentation(constraint="equal_opportunity", **params)
    model.fit(train.features[:200], train.labels[:200], sensitive_features=train.sensitive["group"][:200])
    assert set(np.unique(model.predict(train.features[:50]))) <= {0, 1}
    with pytest.raises(ValueError, match="equal_opportunity needs binary labels"):
        clone(model).fit(train.features[:9], np.arange(9) % 3, sensitive_features=np.arange(9) % 2)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(sensitive_features=np.zeros(9)), "one entry per row"),
        (dict(sensitive_features=np.ones(10)), "at least 2 groups"),
        (dict(X=np.full((10, 3), np.nan)), "NaN"),
        (dict(X=np.array([["a", "b", "c"]] * 10)), "float|convert"),
    ],
)
def test_bad_input_gives_a_clear_error(change, message):
    rng = np.random.default_rng(0)
    arguments = dict(
        X=rng.normal(size=(10, 3)), y=np.array([0, 1] * 5), sensitive_features=np.array([0, 0, 1, 1, 0] * 2)
    )
    arguments.update(change)
    X, y = arguments.pop("X"), arguments.pop("y")
    with pytest.raises(ValueError, match=message):
        FairRepresentation(epochs=1).fit(X, y, **arguments)


def test_bad_adversary_loss_is_refused():
    with pytest.raises(ValueError, match="adversary_loss must be one of"):
        FairRepresentation(adversary_loss="hinge").fit(
            np.zeros((4, 2)), [0, 1, 0, 1], sensitive_features=[0, 0, 1, 1]
        )
