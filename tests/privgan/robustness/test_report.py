import keras
import numpy as np
import pytest

from privgan.robustness import PGD, Classifier, GradientMaskingWarning, robustness_report
from tests.privgan.robustness.linear import linear_model

WEIGHTS = np.array([[2.0, -1.0, -1.0], [-1.0, 2.0, -1.0], [-1.0, -1.0, 2.0], [0.5, 0.5, -1.0]])


def _data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(60, 4)).astype(np.float32)
    return x


def _report(classifier, x, y, **kwargs):
    return robustness_report(classifier, x, y, epsilon=0.15, suite=(PGD(epsilon=0.15, steps=20),), few_steps=3,
                             many_steps=15, sweep=(0.5, 2.0), sweep_steps=10, seed=0, **kwargs)


def test_a_linear_model_passes_every_check():
    x = _data()
    classifier = Classifier(linear_model(WEIGHTS, [0.0, 0.0, 0.0]))
    y = classifier.predict_labels(x)
    report = _report(classifier, x, y)
    assert report.passed, report.summary()
    assert 0 < report.robust_accuracy < 1
    rates = [a for _, a in report.epsilon_sweep]
    assert rates == sorted(rates, reverse=True)
    assert report.to_dict()["checks_passed"] is True


def test_a_masked_model_is_flagged():
    # The same linear model behind a softmax saturated by a factor 1e4: in float32 the probabilities are
    # exactly 0 and 1, so the gradients the attacks follow vanish although the decision is unchanged.
    x = _data()
    masked = keras.Sequential([linear_model(WEIGHTS, [0.0, 0.0, 0.0]), keras.layers.Rescaling(1e4),
                               keras.layers.Softmax()])
    classifier = Classifier(masked, output="probabilities")
    y = classifier.predict_labels(x)
    with pytest.warns(GradientMaskingWarning, match="unbounded"):
        report = _report(classifier, x, y)
    assert not report.passed
    failed = {c.name for c in report.checks if not c.passed}
    assert "an unbounded attack reaches 0% robust accuracy" in failed
    assert "WARNING" in report.summary()
