"""The soft group-rate gap (fairness.rate_penalty) that AdversarialDebiasing descends with a tolerance."""

import numpy as np
import pytest
import tensorflow as tf

from fairness.rate_penalty import soft_rate_gap
from fairness.tolerance import group_rate_gap


@pytest.mark.parametrize("constraint", ["demographic_parity", "equalized_odds", "equal_opportunity"])
def test_with_sharp_probabilities_it_is_the_hard_gap(constraint):
    rng = np.random.default_rng(0)
    labels, groups, predicted = rng.integers(0, 2, 200), rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    logits = tf.constant(np.eye(2)[predicted] * 60.0, dtype=tf.float32)  # softmax is one-hot to float precision
    soft = float(soft_rate_gap(logits, tf.constant(labels), tf.constant(groups), constraint=constraint, n_groups=2))
    assert soft == pytest.approx(group_rate_gap(labels, predicted, groups, constraint=constraint), abs=1e-5)


def test_a_cell_with_one_group_in_the_batch_is_left_out_and_the_gap_has_a_gradient():
    logits = tf.Variable([[0.0, 1.0], [1.0, 0.0], [0.5, 0.0]])
    labels, groups = tf.constant([1, 1, 0]), tf.constant([0, 1, 0])  # label 0: group 0 only
    with tf.GradientTape() as tape:
        gap = soft_rate_gap(logits, labels, groups, constraint="equalized_odds", n_groups=2)
    probabilities = tf.nn.softmax(logits).numpy()
    assert float(gap) == pytest.approx(abs(probabilities[0, 1] - probabilities[1, 1]), abs=1e-6)
    assert np.abs(tape.gradient(gap, logits).numpy()[:2]).sum() > 0
