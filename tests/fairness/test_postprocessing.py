import numpy as np
import pytest

from fairness import AdversarialDebiasing, debiasing
from fairness.data import make_biased_toy
from fairness.postprocessing import fit_group_thresholds, positive_probability
from fairness.tolerance import group_rate_gap


def _scores(n, seed):
    """A score that is informative but biased: group 1 scores higher at equal label."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 2, n)
    labels = (rng.random(n) < 0.3 + 0.3 * groups).astype(int)
    return labels + 0.8 * groups + rng.normal(0.0, 1.0, n), labels, groups


def _expected_gap(post, scores, labels, groups, constraint):
    """The gap of the expected (over the randomisation) predictions between the two groups."""
    positive = positive_probability(post, scores, groups)
    conditions = {
        "demographic_parity": [np.ones_like(labels, dtype=bool)],
        "equal_opportunity": [labels == 1],
        "equalized_odds": [labels == 1, labels == 0],
    }[constraint]
    return max(abs(positive[rows & (groups == 0)].mean() - positive[rows & (groups == 1)].mean())
               for rows in conditions)


@pytest.mark.parametrize("constraint", ["equalized_odds", "demographic_parity", "equal_opportunity"])
def test_group_thresholds_meet_the_tolerance_on_fresh_rows(constraint):
    post = fit_group_thresholds(*_scores(3000, 0), constraint=constraint, tolerance=0.05, confidence=0.9)
    assert post.target < 0.05 and post.gap <= post.target + 1e-6
    fresh = _scores(20_000, 1)
    plain = group_rate_gap(fresh[1], (fresh[0] > 0.9).astype(int), fresh[2], constraint=constraint)
    assert plain > 0.25  # the score alone is far from fair
    assert _expected_gap(post, *fresh, constraint) <= 0.05


def test_group_thresholds_refuse_bad_arguments():
    scores, labels, groups = _scores(100, 0)
    with pytest.raises(ValueError, match=r"tolerance must be in \[0, 1\]"):
        fit_group_thresholds(scores, labels, groups, constraint="equalized_odds", tolerance=1.5)
    with pytest.raises(ValueError, match=r"confidence must be None or in \[0.5, 1\)"):
        fit_group_thresholds(scores, labels, groups, constraint="equalized_odds", tolerance=0.1, confidence=1.0)
    with pytest.raises(ValueError, match="labels must be 0/1"):
        fit_group_thresholds(scores, labels + 1, groups, constraint="equalized_odds", tolerance=0.1)
    post = fit_group_thresholds(scores, labels, groups, constraint="equalized_odds", tolerance=0.1)
    with pytest.raises(ValueError, match="group codes must be in"):
        positive_probability(post, scores, groups + 1)


@pytest.fixture(scope="module")
def fitted():
    train, held_out = make_biased_toy(3000, random_state=0), make_biased_toy(4000, random_state=1)
    model = AdversarialDebiasing(
        constraint="equalized_odds", tolerance=0.05, gap_confidence=0.9, hidden_units=(16,), epochs=3,
        batch_size=64, learning_rate=1e-2, random_state=0,
    )
    with pytest.warns(RuntimeWarning):  # three epochs are short for the adversary; the thresholds still hold
        model.fit(train.features, train.labels, sensitive_features=train.sensitive["group"])
    return model, held_out


def test_predict_with_the_attribute_meets_the_tolerance_on_held_out_rows(fitted):
    model, held_out = fitted
    groups = held_out.sensitive["group"].to_numpy()
    def gap(predicted):
        return group_rate_gap(held_out.labels, predicted, groups, constraint="equalized_odds")

    with_attribute = model.predict(held_out.features, sensitive_features=groups, random_state=0)
    assert gap(with_attribute) <= 0.05
    assert not np.array_equal(with_attribute, model.predict(held_out.features))  # the thresholds act
    probabilities = model.predict_proba(held_out.features, sensitive_features=groups)
    assert probabilities.shape == (len(groups), 2) and np.allclose(probabilities.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="groups not seen in fit"):
        model.predict(held_out.features[:2], sensitive_features=["a", "b"])


def test_the_default_prediction_never_reads_the_attribute(fitted, monkeypatch):
    model, held_out = fitted
    expected = model.classes_[np.argmax(model.predict_proba(held_out.features), axis=1)]

    def forbidden(*args, **kwargs):
        raise AssertionError("the group thresholds were used without sensitive_features")

    monkeypatch.setattr(debiasing, "positive_probability", forbidden)
    np.testing.assert_array_equal(model.predict(held_out.features), expected)
    np.testing.assert_array_equal(model.predict(held_out.features, random_state=3), expected)


def test_the_attribute_at_prediction_needs_a_tolerance_at_fit():
    train = make_biased_toy(200, random_state=0)
    model = AdversarialDebiasing(hidden_units=(4,), epochs=1, random_state=0, run_eagerly=True)
    model.fit(train.features, train.labels, sensitive_features=train.sensitive["group"])
    assert model.group_thresholds_ is None
    with pytest.raises(ValueError, match="needs group thresholds, fitted only with tolerance set"):
        model.predict(train.features, sensitive_features=train.sensitive["group"])
