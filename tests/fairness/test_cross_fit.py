"""Cross-fitted gap estimates (fairness.cross_fit) and AdversarialDebiasing(cross_fit=K)."""

import warnings

import keras
import numpy as np
import pytest

from fairness import AdversarialDebiasing
from fairness.cross_fit import assign_folds, averaged_predictor, check_cross_fit, out_of_fold_logits
from fairness.data import make_biased_toy


def test_folds_are_stratified_by_group_and_label():
    rng = np.random.default_rng(0)
    groups, labels = rng.integers(0, 2, 600), rng.integers(0, 2, 600)
    folds = assign_folds(groups, labels, folds=3, seed=0)
    assert sorted(np.unique(folds)) == [0, 1, 2]
    for group in (0, 1):
        for label in (0, 1):
            counts = np.bincount(folds[(groups == group) & (labels == label)], minlength=3)
            assert counts.max() - counts.min() <= 1
    with pytest.raises(ValueError, match="cross_fit=3 needs at least 3 rows in every group"):
        assign_folds(np.array([0, 0, 0, 1, 1]), np.array([0, 1, 0, 1, 0]), folds=3, seed=0)


@pytest.mark.parametrize("bad", [1, 11, 2.5, True, "3"])
def test_bad_cross_fit_is_refused(bad):
    with pytest.raises(ValueError, match=r"cross_fit must be None or an integer in \[2, 10\]"):
        check_cross_fit(bad)
    with pytest.raises(ValueError, match=r"cross_fit must be None or an integer in \[2, 10\]"):
        AdversarialDebiasing(cross_fit=bad).fit(np.zeros((8, 2)), [0, 1] * 4, sensitive_features=[0, 0, 1, 1] * 2)


class _Constant:
    # A stand-in predictor: the same logits for every row.
    def __init__(self, logits):
        self.logits = np.asarray(logits, dtype=np.float32)

    def __call__(self, X, training=False):
        return np.tile(self.logits, (len(X), 1))


def test_each_row_is_predicted_by_the_pair_that_did_not_train_on_it():
    predictors = [_Constant([0.0, 1.0]), _Constant([2.0, 0.0]), _Constant([0.0, 3.0])]
    folds = np.array([2, 0, 1, 0])
    outside = out_of_fold_logits(predictors, np.zeros((4, 1)), folds)
    np.testing.assert_array_equal(outside, [[0, 3], [0, 1], [2, 0], [0, 1]])
    averaged, again = out_of_fold_logits(predictors, np.zeros((4, 1)), folds, with_average=True)
    np.testing.assert_array_equal(again, outside)
    expected = np.mean([keras.ops.convert_to_numpy(keras.ops.softmax(p.logits)) for p in predictors], axis=0)
    np.testing.assert_allclose(np.exp(averaged), np.tile(expected, (4, 1)), rtol=1e-5)


def test_averaged_predictor_averages_class_probabilities():
    members = [
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, kernel_initializer=keras.initializers.RandomNormal(
            seed=seed))])
        for seed in (0, 1)
    ]
    X = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    model = averaged_predictor(members, n_features=2)
    expected = np.mean([keras.ops.convert_to_numpy(keras.ops.softmax(member(X))) for member in members], axis=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(model(X))), expected, rtol=1e-5)


def test_cross_fitted_estimator_reports_the_out_of_fold_candidate():
    train = make_biased_toy(300, random_state=0)
    model = AdversarialDebiasing(
        constraint="equalized_odds", tolerance=0.1, cross_fit=3, hidden_units=(8,), epochs=2, batch_size=64,
        learning_rate=1e-2, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # two epochs may not reach the tolerance
        model.fit(train.features, train.labels, sensitive_features=train.sensitive["group"])
    assert len(model.adaptation_history_) >= 2
    kept = [record for record in model.adaptation_history_ if record["weight"] == model.adversary_weight_]
    assert kept and 1 <= model.ensemble_size_ <= 5
    probabilities = model.predict_proba(train.features)
    assert probabilities.shape == (300, 2) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert model.group_thresholds_ is not None
