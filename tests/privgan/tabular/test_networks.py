import keras
import numpy as np
import pytest

from privgan.dp import check_private_model
from privgan.tabular import TableTransformer, TabularActivation, tabular_discriminator, tabular_generator
from tests.privgan.tabular.tables import SCHEMA


def test_generator_emits_bounded_values_and_near_one_hot_blocks():
    transformer = TableTransformer(SCHEMA)
    generator = tabular_generator(transformer, latent_dim=4, hidden=(8,), temperature=0.05, seed=0)
    rows = keras.ops.convert_to_numpy(generator(np.random.default_rng(0).normal(size=(64, 4)), training=False))
    assert rows.shape == (64, transformer.width)
    for span in transformer.spans:
        block = rows[:, span.start : span.start + span.width]
        assert np.all((block >= 0) & (block <= 1))
        if span.activation == "softmax":
            np.testing.assert_allclose(block.sum(axis=1), 1.0, rtol=1e-5)
            assert np.median(block.max(axis=1)) > 0.9


def test_gumbel_softmax_samples_the_categorical_distribution():
    layer = TabularActivation([(0, 3, "softmax")], temperature=0.1, seed=1)
    logits = np.log(np.tile([[0.7, 0.2, 0.1]], (4000, 1))).astype("float32")
    choices = keras.ops.convert_to_numpy(layer(logits)).argmax(axis=1)
    np.testing.assert_allclose(np.bincount(choices, minlength=3) / 4000, [0.7, 0.2, 0.1], atol=0.03)


def test_activation_round_trips_through_config():
    layer = TabularActivation([(0, 1, "sigmoid"), (1, 2, "softmax")], temperature=0.3)
    assert TabularActivation.from_config(layer.get_config()).spans == layer.spans
    with pytest.raises(ValueError, match="contiguous"):
        TabularActivation([(1, 2, "softmax")])


def test_discriminator_is_private_and_outputs_one_logit():
    transformer = TableTransformer(SCHEMA)
    discriminator = tabular_discriminator(transformer, hidden=(8,))
    check_private_model(discriminator, role="discriminator")
    assert discriminator.outputs[0].shape[-1] == 1


def test_hard_blocks_are_exactly_one_hot_and_pass_gradients():
    import tensorflow as tf

    layer = TabularActivation([(0, 1, "sigmoid"), (1, 3, "softmax")], seed=2)
    logits = tf.Variable(np.zeros((5, 4), dtype="float32"))
    with tf.GradientTape() as tape:
        rows = layer(logits)
        loss = tf.reduce_sum(rows[:, 1:] * tf.constant([1.0, 2.0, 3.0]))
    blocks = rows.numpy()[:, 1:]
    assert set(np.unique(blocks)) <= {0.0, 1.0} and np.all(blocks.sum(axis=1) == 1)
    assert np.abs(tape.gradient(loss, logits).numpy()[:, 1:]).sum() > 0  # straight-through
