import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.linear_model import LogisticRegression

from experiments.common.biased_tables import biased_table
from fairness import AdversarialDebiasing, debiasing
from fairness.attribute_scores import CrossFittedLogistic, best_candidate, cross_fitted_logistic, expected_accuracy
from fairness.postprocessing import fit_group_thresholds
from fairness.tolerance import group_rate_gap


def _table(n_rows, random_state):
    """A held-back-like generated table: features, labels, groups (the group is not among the features)."""
    frame = biased_table(variant=1, n_rows=n_rows, random_state=random_state)
    labels, groups = frame.pop("label").to_numpy(), frame.pop("group").to_numpy()
    features = pd.get_dummies(frame, columns=["category"], dtype=float).to_numpy(dtype=np.float32)
    return features, labels, groups


def test_the_generated_table_is_hard_and_biased():
    features, labels, groups = _table(3000, 0)
    assert features.shape[1] >= 5 and set(np.unique(groups)) == {0, 1}
    predicted = LogisticRegression(max_iter=1000).fit(features, labels).predict(features)
    assert 0.6 <= np.mean(predicted == labels) <= 0.75
    assert group_rate_gap(labels, predicted, groups, constraint="equalized_odds") > 0.2
    with pytest.raises(ValueError, match="variant must be an integer >= 0"):
        biased_table(variant=-1)


def test_cross_fitted_logistic_scores_each_row_with_a_model_that_did_not_fit_it():
    features, labels, _ = _table(300, 0)
    folds = np.arange(300) % 3
    fitted = cross_fitted_logistic(features, labels, folds)
    assert len(fitted.models) == 3
    for fold in range(3):
        again = LogisticRegression(max_iter=1000).fit(features[folds != fold], labels[folds != fold])
        expected = again.predict_proba(features[folds == fold])[:, 1]
        np.testing.assert_allclose(fitted.out_of_fold[folds == fold], expected, rtol=1e-6)
    np.testing.assert_allclose(
        fitted.scores(features), np.mean([m.predict_proba(features)[:, 1] for m in fitted.models], axis=0))
    with pytest.raises(ValueError, match="at least two folds"):
        cross_fitted_logistic(features, labels, np.zeros(300, dtype=int))


def test_the_candidate_more_accurate_after_post_processing_is_chosen():
    features, labels, groups = _table(600, 0)
    informative = LogisticRegression(max_iter=1000).fit(features, labels).predict_proba(features)[:, 1]
    noise = np.random.default_rng(0).random(600)
    candidates = {
        name: (fit_group_thresholds(scores, labels, groups, constraint="equalized_odds", tolerance=0.05), scores,
               labels, groups)
        for name, scores in (("debiased", noise), ("logistic_regression", informative))
    }
    name, accuracies = best_candidate(candidates)
    assert name == "logistic_regression" and accuracies[name] > accuracies["debiased"] + 0.05
    assert accuracies[name] == pytest.approx(expected_accuracy(*candidates[name]))
    with pytest.raises(ValueError, match="candidates must be named from"):
        best_candidate({"forest": candidates["debiased"]})


@pytest.fixture(scope="module")
def fitted_on_a_biased_table():
    train, held_out = _table(2500, 0), _table(6000, 1)
    # A strong adversary from the start: the debiased score loses accuracy (0.59 features-only on fresh rows),
    # which post-processing it would carry over (0.60 on 2ce6631, below ThresholdOptimizer's 0.625).
    model = AdversarialDebiasing(
        constraint="equalized_odds", tolerance=0.05, adversary_weight=3.0, hidden_units=(16,), epochs=3,
        batch_size=64, learning_rate=1e-2, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # three epochs may not reach the tolerance
        model.fit(train[0], train[1], sensitive_features=train[2])
    return model, train, held_out


def test_predict_with_the_attribute_meets_the_tolerance_at_threshold_optimizers_accuracy(fitted_on_a_biased_table):
    model, train, (features, labels, groups) = fitted_on_a_biased_table
    predicted = model.predict(features, sensitive_features=groups, random_state=0)
    assert group_rate_gap(labels, predicted, groups, constraint="equalized_odds") <= 0.05
    # fairlearn's ThresholdOptimizer post-processes a plain logistic regression at a gap of 0 (float64 for it).
    peer = ThresholdOptimizer(estimator=LogisticRegression(max_iter=1000), constraints="equalized_odds",
                              predict_method="predict_proba")
    peer.fit(train[0].astype(np.float64), train[1], sensitive_features=train[2])
    peer_accuracy = np.mean(peer.predict(features.astype(np.float64), sensitive_features=groups, random_state=0)
                            == labels)
    positive = model.predict_proba(features, sensitive_features=groups)[:, 1]
    assert np.mean(np.where(labels == 1, positive, 1.0 - positive)) >= peer_accuracy - 0.01
    assert model.attribute_score_ in ("debiased", "logistic_regression")
    assert set(model.attribute_accuracies_) == {"debiased", "logistic_regression"}


def test_the_default_prediction_reads_neither_the_attribute_nor_the_plain_scores(fitted_on_a_biased_table, monkeypatch):
    model, _, (features, _, _) = fitted_on_a_biased_table
    expected = model.classes_[np.argmax(model.predict_proba(features), axis=1)]

    def forbidden(*args, **kwargs):
        raise AssertionError("an attribute-aware part was used without sensitive_features")

    monkeypatch.setattr(debiasing, "positive_probability", forbidden)
    monkeypatch.setattr(CrossFittedLogistic, "scores", forbidden)
    monkeypatch.setattr(debiasing.AdversarialDebiasing, "_group_codes", forbidden)
    np.testing.assert_array_equal(model.predict(features), expected)
    np.testing.assert_array_equal(model.predict(features, random_state=3), expected)
