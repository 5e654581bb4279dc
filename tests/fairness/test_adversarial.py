import numpy as np
import pytest
import tensorflow as tf

from fairness.adversarial import (
    adversary_loss,
    adversary_sample_weights,
    build_mlp,
    conditional_adversary_inputs,
    encode_groups,
    projected_gradients,
)


def test_projected_gradients_removes_the_component_that_helps_the_adversary():
    task = [tf.constant([1.0, 1.0]), tf.constant([2.0])]
    adversary = [tf.constant([1.0, 0.0]), None]
    update, untouched = projected_gradients(task, adversary, adversary_weight=0.5)
    # [1, 1] minus its projection [1, 0] on the adversary's gradient, minus 0.5 * [1, 0].
    np.testing.assert_allclose(update.numpy(), [-0.5, 1.0])
    np.testing.assert_allclose(untouched.numpy(), [2.0])
    # The projected step (alpha = 0) is orthogonal to the adversary's gradient.
    adversary = tf.constant([1.0, 2.0, 2.0])
    (orthogonal,) = projected_gradients([tf.constant([3.0, -1.0, 2.0])], [adversary], adversary_weight=0.0)
    assert abs(float(tf.reduce_sum(orthogonal * adversary))) < 1e-5


def test_sample_weights_balance_cells_and_mask_negatives_for_equal_opportunity():
    groups = np.array([0, 0, 0, 1])
    labels = np.array([0, 1, 1, 1])
    parity = adversary_sample_weights(groups, labels, constraint="demographic_parity")
    np.testing.assert_allclose([parity[:3].sum(), parity[3:].sum()], [2.0, 2.0])
    odds = adversary_sample_weights(groups, labels, constraint="equalized_odds")
    np.testing.assert_allclose(odds, [4 / 3, 2 / 3, 2 / 3, 4 / 3], rtol=1e-6)
    opportunity = adversary_sample_weights(groups, labels, constraint="equal_opportunity")
    np.testing.assert_allclose(opportunity, [0.0, 0.75, 0.75, 1.5], rtol=1e-6)


def test_conditional_inputs_are_zhangs_terms_for_one_probability():
    inputs = conditional_adversary_inputs(tf.constant([[0.3], [0.8]]), tf.constant([[0.0, 1.0], [1.0, 0.0]]))
    np.testing.assert_allclose(inputs.numpy(), [[0.3, 0.0, 0.3], [0.8, 0.8, 0.0]], rtol=1e-6)


def test_l1_loss_is_laftrs_absolute_error_for_two_groups():
    logits = tf.constant([[0.0, np.log(3.0)], [0.0, 0.0]])  # P(group 1) = 0.75, 0.5
    loss = adversary_loss(tf.constant([0, 1]), logits, tf.constant([1.0, 1.0]), kind="l1")
    np.testing.assert_allclose(float(loss), (0.75 + 0.5) / 2, rtol=1e-5)
    with pytest.raises(ValueError, match="kind must be one of"):
        adversary_loss(tf.constant([0]), logits[:1], tf.constant([1.0]), kind="hinge")


def test_encode_groups_codes_strings_and_refuses_two_dimensional_input():
    codes, groups = encode_groups(["b", "a", "b"], n_samples=3)
    assert list(codes) == [1, 0, 1] and list(groups) == ["a", "b"]
    with pytest.raises(ValueError, match="must be 1-D"):
        encode_groups(np.zeros((3, 2)), n_samples=3)


def test_build_mlp_shapes_and_refuses_empty_layers():
    model = build_mlp(5, hidden_units=(4, 3), output_dim=2, seed=0)
    assert model(np.zeros((7, 5), np.float32)).shape == (7, 2)
    with pytest.raises(ValueError, match="must be >= 1"):
        build_mlp(5, hidden_units=(0,), output_dim=2, seed=0)
