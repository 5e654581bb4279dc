import warnings

import keras
import numpy as np
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from sklearn.utils import check_random_state

from fairness import AdversarialDebiasing, FairRepresentation
from fairness.data import make_biased_toy
from fairness.tolerance import AdversaryWeightController, carve_validation, group_rate_gap

FAIRLEARN = {
    "demographic_parity": demographic_parity_difference,
    "equalized_odds": equalized_odds_difference,
    "equal_opportunity": equal_opportunity_difference,
}


@pytest.mark.parametrize("constraint", sorted(FAIRLEARN))
@pytest.mark.parametrize("n_groups", [2, 3])
def test_group_rate_gap_is_fairlearns_metric(constraint, n_groups):
    rng = np.random.default_rng(n_groups)
    groups = rng.integers(0, n_groups, 500)
    labels = (rng.random(500) < 0.3 + 0.1 * groups).astype(int)
    predicted = (rng.random(500) < 0.2 + 0.2 * groups).astype(int)
    expected = FAIRLEARN[constraint](labels, predicted, sensitive_features=groups)
    assert group_rate_gap(labels, predicted, groups, constraint=constraint) == pytest.approx(expected, abs=1e-12)


def test_group_rate_gap_standard_error_is_binomial():
    # Group 0 selects 10 of 40 (0.25), group 1 selects 30 of 60 (0.5).
    groups = np.repeat([0, 1], [40, 60])
    predicted = np.concatenate([np.repeat([1, 0], [10, 30]), np.repeat([1, 0], [30, 30])])
    gap, error = group_rate_gap(np.zeros(100), predicted, groups, constraint="demographic_parity", with_error=True)
    assert gap == pytest.approx(0.25)
    assert error == pytest.approx(np.sqrt(0.25 * 0.75 / 40 + 0.5 * 0.5 / 60))


def test_gap_bound_holds_every_rate_gap_with_its_own_error():
    # False-positive rates 0.10 / 0.14 on 1,000 rows per group (the largest gap, 0.04, error ~0.014);
    # true-positive rates 20/40 and 21/40 (gap 0.025, error ~0.11): the bound is the latter's.
    labels = np.concatenate([np.zeros(2000, int), np.ones(80, int)])
    groups = np.concatenate([np.repeat([0, 1], 1000), np.repeat([0, 1], 40)])
    predicted = np.concatenate([
        np.repeat([1, 0], [100, 900]), np.repeat([1, 0], [140, 860]), np.repeat([1, 0], [20, 20]),
        np.repeat([1, 0], [21, 19]),
    ])
    gap, error, bound = group_rate_gap(labels, predicted, groups, constraint="equalized_odds", bound_multiplier=1.0)
    assert gap == pytest.approx(0.04) and error == pytest.approx(np.sqrt(0.1 * 0.9 / 1000 + 0.14 * 0.86 / 1000))
    assert bound == pytest.approx(0.025 + np.sqrt(0.5 * 0.5 / 40 + 0.525 * 0.475 / 40))
    assert group_rate_gap(labels, predicted, groups, constraint="equalized_odds", bound_multiplier=0.0)[2] == gap


def test_carve_validation_is_disjoint_and_stratified():
    rng = np.random.default_rng(0)
    groups, labels = rng.integers(0, 2, 1000), rng.integers(0, 2, 1000)
    fit, validation = carve_validation(groups, labels, fraction=0.2, seed=0)
    assert len(validation) == 200 and len(np.intersect1d(fit, validation)) == 0
    assert len(fit) + len(validation) == 1000
    for group in (0, 1):
        for label in (0, 1):
            share = np.mean((groups[validation] == group) & (labels[validation] == label))
            assert share == pytest.approx(np.mean((groups == group) & (labels == label)), abs=0.01)
    with pytest.raises(ValueError, match="validation_fraction"):
        carve_validation(np.array([0, 0, 0, 0, 1]), np.zeros(5, int), fraction=0.2, seed=0)


def _run_controller(violations, *, tolerance=0.05, errors=None, keep=1):
    """Drives the controller by hand: one evaluation per step, the model's weight set to the step index."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    weight = keras.Variable(1.0, trainable=False)
    step = {"index": 0}
    errors = errors or [0.0] * len(violations)

    def measure():
        index = step["index"]
        return violations[index], float(index), errors[index]  # later candidates score higher

    controller = AdversaryWeightController(
        weight=weight, measure=measure, tolerance=tolerance, models=[model], interval=1, keep=keep
    )
    controller.set_params({"epochs": 1, "steps": len(violations)})
    controller.on_train_begin()
    weights_seen = []
    for index in range(len(violations)):
        step["index"] = index
        model.set_weights([np.full((1, 1), float(index), np.float32)])
        controller.on_train_batch_end(index)
        weights_seen.append(float(keras.ops.convert_to_numpy(weight)))
    controller.on_train_end()
    return controller, float(model.get_weights()[0][0, 0]), weights_seen


def test_controller_raises_the_weight_while_violated_and_keeps_the_best_candidate_that_meets():
    controller, restored, weights = _run_controller([0.2, 0.2, 0.04, 0.01, 0.3, 0.0])
    assert weights[0] > 1.0 and weights[1] > weights[0]  # violated: up
    assert weights[3] < weights[2]  # slack: down
    # Candidates 2, 3 and 5 meet the tolerance; 5 scores best. Nothing is evaluated after the last step.
    assert restored == 5.0 and controller.selected["step"] == 6 and controller.selected["meets_tolerance"]
    assert [record["violation"] for record in controller.history] == [0.2, 0.2, 0.04, 0.01, 0.3, 0.0]
    assert [record["standard_error"] for record in controller.history] == [0.0] * 6


def test_controller_keeps_the_best_scoring_candidates_that_meet_for_an_ensemble():
    controller, restored, _ = _run_controller([0.04, 0.2, 0.01, 0.03, 0.3, 0.0], keep=3)
    assert restored == 5.0  # the best is restored; the next two meeting ones (3, then 2) are kept beside it
    assert [float(snapshot[0][0][0, 0]) for snapshot in controller.kept] == [5.0, 3.0, 2.0]
    with pytest.raises(ValueError, match="keep must be an integer >= 1"):
        AdversaryWeightController(weight=None, measure=None, tolerance=0.05, models=[], keep=0)


def test_controller_holds_the_upper_bound_to_the_tolerance():
    # 0.04 meets the tolerance as a point estimate but not with its error (0.04 + 2 * 0.01 > 0.05).
    violations, errors = [0.2, 0.04, 0.01, 0.3], [0.01, 0.01, 0.01, 0.01]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    weight = keras.Variable(1.0, trainable=False)
    step = {"index": 0}
    controller = AdversaryWeightController(
        weight=weight, measure=lambda: (violations[step["index"]], float(step["index"]), errors[step["index"]]),
        tolerance=0.05, models=[model], interval=1, error_multiplier=2.0,
    )
    controller.set_params({"epochs": 1, "steps": 4})
    controller.on_train_begin()
    for index in range(4):
        step["index"] = index
        model.set_weights([np.full((1, 1), float(index), np.float32)])
        controller.on_train_batch_end(index)
    controller.on_train_end()
    assert float(model.get_weights()[0][0, 0]) == 2.0 and controller.selected["bound"] == pytest.approx(0.03)


def test_controller_warns_when_nothing_meets_the_tolerance_and_keeps_the_least_violating():
    with pytest.warns(RuntimeWarning, match="no candidate met the tolerance"):
        controller, restored, weights = _run_controller([0.3, 0.1, 0.2], keep=2)
    assert restored == 1.0 and not controller.selected["meets_tolerance"] and controller.kept == []
    assert weights[-1] == pytest.approx(np.exp(3 * 0.05))  # clipped relative violation 1, three steps


# --- the estimators --------------------------------------------------------------------------------------

TOY_PARAMS = dict(
    constraint="equalized_odds", hidden_units=(16,), epochs=10, batch_size=64, learning_rate=1e-2, random_state=0
)


@pytest.fixture(scope="module")
def toy():
    return make_biased_toy(2000, random_state=0), make_biased_toy(4000, random_state=1)


def _test_gap(model, data):
    predicted = model.predict(data.features)
    return group_rate_gap(data.labels, predicted, data.sensitive["group"].to_numpy(), constraint="equalized_odds")


def test_tolerance_meets_what_the_default_alpha_misses(toy):
    train, held_out = toy
    groups = train.sensitive["group"]
    default = AdversarialDebiasing(**TOY_PARAMS).fit(train.features, train.labels, sensitive_features=groups)
    assert _test_gap(default, held_out) > 0.1  # the default alpha (0.1) leaves the gap
    assert default.adversary_weight_ == 0.1 and default.constraint_violation_ is None
    assert default.adaptation_history_ == [] and default.feature_mean_ is None

    # The point estimate held to the tolerance (gap_confidence=None): this test checks where it is measured.
    model = AdversarialDebiasing(tolerance=0.05, gap_confidence=None, cross_fit=None, ensemble=1, **TOY_PARAMS)
    model.fit(train.features, train.labels, sensitive_features=groups)
    assert model.constraint_violation_ <= 0.05
    assert _test_gap(model, held_out) <= 0.07  # fresh data: the tolerance plus the validation/test gap
    assert model.adversary_weight_ != 0.1 and len(model.adaptation_history_) > 10
    assert model.feature_mean_.shape == (3,)

    # By default the reported violation is the larger of the gaps on all the training rows (fitted and held
    # out) and on the rows held out with fit's seed; the candidates' accuracy is measured on the latter.
    predicted = model.predict(train.features)
    seed = int(check_random_state(0).randint(2**31 - 1 - 10_000))
    _, validation = carve_validation(groups.to_numpy(), train.labels, fraction=0.2, seed=seed)
    gap_all = group_rate_gap(train.labels, predicted, groups.to_numpy(), constraint="equalized_odds")
    gap_held_out = group_rate_gap(
        train.labels[validation], predicted[validation], groups.to_numpy()[validation], constraint="equalized_odds"
    )
    assert model.constraint_violation_ == pytest.approx(max(gap_all, gap_held_out))
    kept = [record for record in model.adaptation_history_ if record["violation"] == model.constraint_violation_]
    held_out_accuracy = np.mean(predicted[validation] == train.labels[validation])
    assert any(record["score"] == pytest.approx(held_out_accuracy) for record in kept)


@pytest.mark.filterwarnings("ignore:no candidate met the tolerance:RuntimeWarning")
@pytest.mark.parametrize("violation_rows", ["validation", "all"])
def test_violation_rows_names_the_rows_measured(toy, violation_rows):
    train, _ = toy
    groups = train.sensitive["group"].to_numpy()
    params = dict(TOY_PARAMS, epochs=3)
    model = AdversarialDebiasing(tolerance=0.05, violation_rows=violation_rows, cross_fit=None, **params)
    model.fit(train.features, train.labels, sensitive_features=groups)
    seed = int(check_random_state(0).randint(2**31 - 1 - 10_000))
    _, validation = carve_validation(groups, train.labels, fraction=0.2, seed=seed)
    rows = validation if violation_rows == "validation" else np.arange(len(groups))
    predicted = model.predict(train.features[rows])
    assert model.constraint_violation_ == pytest.approx(
        group_rate_gap(train.labels[rows], predicted, groups[rows], constraint="equalized_odds")
    )


@pytest.mark.filterwarnings("ignore:no candidate met the tolerance:RuntimeWarning")  # one epoch is short
def test_tolerance_fit_does_not_depend_on_the_scale_of_the_features(toy):
    train, held_out = toy
    # One split instead of the default cross-fitting: the standardisation comes before either (3x cheaper).
    params = dict(TOY_PARAMS, epochs=1, tolerance=0.05, cross_fit=None)
    scales = np.array([1000.0, 1.0, 0.001], np.float32)
    groups = train.sensitive["group"]
    plain = AdversarialDebiasing(**params).fit(train.features, train.labels, sensitive_features=groups)
    scaled = AdversarialDebiasing(**params).fit(train.features * scales, train.labels, sensitive_features=groups)
    np.testing.assert_allclose(
        plain.predict_proba(held_out.features), scaled.predict_proba(held_out.features * scales), atol=1e-3
    )


def test_fair_representation_reports_the_validation_leakage(toy):
    train, _ = toy
    model = FairRepresentation(
        tolerance=0.3, representation_dim=4, encoder_hidden_units=(8,), adversary_hidden_units=(8,), epochs=2,
        batch_size=128, learning_rate=1e-2, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # two epochs may not reach the tolerance
        model.fit(train.features, train.labels, sensitive_features=train.sensitive["group"])
    assert len(model.adaptation_history_) == 2  # one evaluation per epoch
    assert model.constraint_violation_ in [record["violation"] for record in model.adaptation_history_]
    assert 0.0 <= model.constraint_violation_ + 0.5 <= 1.0
    assert model.adversary_weight_ > 0


@pytest.mark.parametrize(
    "estimator, params, message",
    [
        (AdversarialDebiasing, dict(tolerance=0.0), r"tolerance must be None or a number in \(0, 1\]"),
        (AdversarialDebiasing, dict(tolerance=1.5), r"tolerance must be None or a number in \(0, 1\]"),
        (AdversarialDebiasing, dict(tolerance="0.05"), "tolerance must be None"),
        (AdversarialDebiasing, dict(tolerance=0.05, validation_fraction=0.9), r"validation_fraction must be in"),
        (AdversarialDebiasing, dict(tolerance=0.05, debias=False), "tolerance needs debias=True"),
        (AdversarialDebiasing, dict(standardize="yes"), "standardize must be None, True or False"),
        (AdversarialDebiasing, dict(adversary_learning_rate=0.0), "adversary_learning_rate must be None or > 0"),
        (AdversarialDebiasing, dict(tolerance=0.05, violation_rows="test"), "violation_rows must be one of"),
        (AdversarialDebiasing, dict(tolerance=0.05, gap_confidence=1.0),
         r"gap_confidence must be None or in \[0.5, 1\)"),
        (AdversarialDebiasing, dict(tolerance=0.05, postprocess_tolerance=0.0), "tolerance must be None or a number"),
        (AdversarialDebiasing, dict(tolerance=0.05, ensemble=0), r"ensemble must be an integer in \[1, 20\]"),
        (AdversarialDebiasing, dict(tolerance=0.05, rate_penalty="yes"), "rate_penalty must be True or False"),
        (FairRepresentation, dict(tolerance=0.6), r"tolerance must be None or a number in \(0, 0.5\]"),
    ],
)
def test_bad_tolerance_parameters_are_refused(estimator, params, message):
    with pytest.raises(ValueError, match=message):
        estimator(**params).fit(np.zeros((8, 2)), [0, 1] * 4, sensitive_features=[0, 0, 1, 1] * 2)
