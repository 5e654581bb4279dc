import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from privgan.audit import (
    confidence_threshold_attack,
    cross_entropy,
    lira_attack,
    logit_confidence,
    loss_threshold_attack,
    train_shadow_models,
)

NUM_RECORDS, NUM_FEATURES, NUM_CLASSES = 300, 200, 3


@pytest.fixture(scope="module")
def pool():
    # Random labels on random features: a model can only fit its training records by memorising them.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_RECORDS, NUM_FEATURES))
    y = rng.integers(0, NUM_CLASSES, size=NUM_RECORDS)
    is_member = rng.random(NUM_RECORDS) < 0.5
    return x, y, is_member


def train(x, y):
    return LogisticRegression(C=0.1, max_iter=300).fit(x, y)


def predict(model, x):
    return model.predict_proba(x)


@pytest.fixture(scope="module")
def overfit_probabilities(pool):
    x, y, is_member = pool
    return predict(train(x[is_member], y[is_member]), x)


def test_scores_by_hand():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.25, 0.25, 0.5]])
    labels = np.array([0, 2])
    np.testing.assert_allclose(cross_entropy(probabilities, labels), [-math.log(0.9), math.log(2)])
    np.testing.assert_allclose(logit_confidence(probabilities, labels), [math.log(9), 0.0], atol=1e-12)


def test_threshold_attacks_detect_an_overfit_model(pool, overfit_probabilities):
    x, y, is_member = pool
    loss = loss_threshold_attack(probabilities=overfit_probabilities, labels=y, is_member=is_member)
    confidence = confidence_threshold_attack(probabilities=overfit_probabilities, is_member=is_member)
    assert loss.auc > 0.9
    assert confidence.auc > 0.65
    assert loss.max_advantage > 0.6


def test_threshold_attacks_on_random_scores_are_at_chance():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(NUM_CLASSES), size=5000)
    labels = rng.integers(0, NUM_CLASSES, size=5000)
    is_member = rng.random(5000) < 0.5
    loss = loss_threshold_attack(probabilities=probabilities, labels=labels, is_member=is_member)
    confidence = confidence_threshold_attack(probabilities=probabilities, is_member=is_member)
    assert abs(loss.auc - 0.5) < 0.03
    assert abs(confidence.auc - 0.5) < 0.03


@pytest.fixture(scope="module")
def shadow_scores(pool):
    x, y, _ = pool
    return train_shadow_models(
        x=x, y=y, train_fn=train, predict_fn=predict, num_shadow_models=8, seed=0
    )


def test_shadow_models_split_every_record_evenly(shadow_scores):
    assert shadow_scores.confidences.shape == (8, NUM_RECORDS)
    np.testing.assert_array_equal(shadow_scores.in_training.sum(axis=0), 4)
    # IN confidences are higher than OUT ones for a memorising model.
    confidences, inside = shadow_scores.confidences, shadow_scores.in_training
    assert confidences[inside].mean() > confidences[~inside].mean() + 2


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("global_variance", [True, False])
def test_lira_detects_an_overfit_model(pool, overfit_probabilities, shadow_scores, online, global_variance):
    _, y, is_member = pool
    result = lira_attack(
        probabilities=overfit_probabilities, labels=y, is_member=is_member, shadow_scores=shadow_scores,
        online=online, global_variance=global_variance,
    )
    assert result.auc > 0.9
    if online:
        # Per-record calibration is LiRA's point: it beats the global loss threshold.
        loss = loss_threshold_attack(probabilities=overfit_probabilities, labels=y, is_member=is_member)
        assert result.auc > loss.auc
    assert result.attack.startswith("LiRA " + ("online" if online else "offline"))


def test_lira_on_a_model_that_never_saw_the_records_is_at_chance(pool, shadow_scores):
    x, y, is_member = pool
    rng = np.random.default_rng(2)
    # The target was trained on other records: "membership" is a coin flip the model cannot reflect.
    outsider = train(rng.normal(size=(150, NUM_FEATURES)), rng.integers(0, NUM_CLASSES, size=150))
    result = lira_attack(
        probabilities=predict(outsider, x), labels=y, is_member=is_member, shadow_scores=shadow_scores
    )
    assert abs(result.auc - 0.5) < 0.1


def test_lira_needs_enough_shadow_models(pool, overfit_probabilities):
    x, y, is_member = pool
    few = train_shadow_models(x=x, y=y, train_fn=train, predict_fn=predict, num_shadow_models=2, seed=0)
    with pytest.raises(ValueError, match="IN and OUT shadow models"):
        lira_attack(
            probabilities=overfit_probabilities, labels=y, is_member=is_member, shadow_scores=few,
            global_variance=False,
        )


def test_bad_input():
    with pytest.raises(ValueError, match="not logits"):
        cross_entropy(np.array([[2.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="labels must be integer"):
        cross_entropy(np.array([[0.5, 0.5]]), np.array([0.0]))
    with pytest.raises(ValueError, match="num_shadow_models must be >= 2"):
        train_shadow_models(x=np.zeros((4, 2)), y=np.zeros(4, int), train_fn=train, num_shadow_models=1)
