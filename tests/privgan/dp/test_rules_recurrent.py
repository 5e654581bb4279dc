"""The fast SimpleRNN/LSTM/GRU rule: same outputs as Keras, same per-example norms as per-example gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from privgan.dp import check_sensitivity, clipping, make_private
from privgan.dp.clipping import clipped_gradient_sum, clipping_plan, per_example_global_norms, per_example_gradients
from tests.privgan.dp.models import assert_one_private_epoch_trains

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


def _model(layer, *, mask, steps=5):
    """Tokens (padding 0 when masked) -> Embedding -> `layer` -> pooling if it returns sequences -> Dense."""
    inputs = keras.Input((steps,), dtype="int32")
    h = layer(L.Embedding(7, 3, mask_zero=mask)(inputs))
    h = h[0] if isinstance(h, (list, tuple)) else h
    h = L.GlobalAveragePooling1D()(h) if len(h.shape) == 3 else h
    return keras.Model(inputs, L.Dense(2)(h))


def _batch(n=4, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 7, (n, steps)).astype("int32")
    tokens[1, 2:] = 0  # trailing padding
    tokens[2, :2] = 0  # leading padding
    tokens[3, 1] = 0  # a gap
    return tokens, rng.integers(0, 2, n)


def _loss(model):
    return lambda batch: LOSS(batch[1], model(batch[0], training=True))


CASES = {
    "simple_sequences": lambda: L.SimpleRNN(4, return_sequences=True),
    "simple_backwards_last": lambda: L.SimpleRNN(4, go_backwards=True, activation=None),
    "lstm_last": lambda: L.LSTM(4),
    "lstm_sequences_state": lambda: L.LSTM(4, return_sequences=True, return_state=True),
    "lstm_no_bias_zero_output": lambda: L.LSTM(4, use_bias=False, zero_output_for_mask=True),
    "gru_last": lambda: L.GRU(4),
    "gru_reset_before_sequences": lambda: L.GRU(4, reset_after=False, return_sequences=True),
    "gru_no_bias": lambda: L.GRU(4, use_bias=False),
    "bidirectional_lstm_sequences": lambda: L.Bidirectional(L.LSTM(3, return_sequences=True)),
    "bidirectional_gru_last": lambda: L.Bidirectional(L.GRU(3)),
}


@pytest.mark.parametrize("mask", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("name", list(CASES))
def test_norms_and_outputs_equal_the_per_example_gradients(name, mask, monkeypatch):
    keras.utils.set_random_seed(1)
    model = _model(CASES[name](), mask=mask)
    batch = _batch()
    variables = model.trainable_variables
    plan = clipping_plan(_loss(model), variables, batch)
    assert plan.whole_model is None and {path for _, path in plan.layers} == {"fast rule"}, plan
    seen = []
    original = clipping.clip_factors
    monkeypatch.setattr(clipping, "clip_factors", lambda norms, **kw: seen.append(norms) or original(norms, **kw))
    fast, losses, _ = clipped_gradient_sum(_loss(model), variables, batch, l2_norm_clip=0.05)
    # The rule re-runs the recurrence: the losses it returns are the model's own.
    np.testing.assert_allclose(losses.numpy(), LOSS(batch[1], model(batch[0])).numpy(), rtol=1e-5, atol=1e-6)
    reference = per_example_global_norms(per_example_gradients(_loss(model), variables, batch, loop=True))
    np.testing.assert_allclose(seen[0].numpy(), reference.numpy(), rtol=1e-4, atol=1e-6)
    slow, _, _ = clipped_gradient_sum(_loss(model), variables, batch, l2_norm_clip=0.05, method="loop")
    for got, want in zip(fast, slow):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)


def test_unsupported_configurations_keep_the_generic_path():
    model = _model(L.LSTM(3, dropout=0.5), mask=False)
    plan = clipping_plan(_loss(model), model.trainable_variables, _batch())
    assert [path for _, path in plan.layers] == ["fast rule", "per-example loop", "fast rule"]


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "tf.function"])
def test_sensitivity_is_at_most_the_clip(eager):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((5,), dtype="int32")
    h = L.Embedding(7, 3, mask_zero=True)(inputs)
    h = L.Bidirectional(L.GRU(3, return_sequences=True))(h)
    model = keras.Model(inputs, L.Dense(2)(L.LSTM(3)(h)))
    tf.config.run_functions_eagerly(eager)
    try:
        report = check_sensitivity(_loss(model), model.trainable_variables, _batch(), l2_norm_clip=1e-4,
                                   max_examples=2)
    finally:
        tf.config.run_functions_eagerly(False)
    assert report.passed and report.ratio > 0.99, report.summary()


def test_an_lstm_classifier_fits_under_make_private():
    keras.utils.set_random_seed(3)
    model = _model(L.LSTM(4), mask=True)
    x, y = _batch(n=8)
    private = make_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=8, expected_batch_size=4)
    assert_one_private_epoch_trains(private, model, x, y, steps=2)


def test_states_in_and_out_and_empty_batches():
    """Final states used downstream, initial states from other layers, go_backwards; then zero examples."""
    inputs = keras.Input((5,), dtype="int32")
    embedded = L.Embedding(7, 3, mask_zero=True)(inputs)
    output, h, c = L.LSTM(4, return_state=True, go_backwards=True)(embedded)
    g = L.GRU(3)(embedded, initial_state=L.Dense(3)(h))
    model = keras.Model(inputs, L.Dense(2)(L.Concatenate()([output, c, g])))
    batch = _batch()
    assert {path for _, path in clipping_plan(_loss(model), model.trainable_variables, batch).layers} == {"fast rule"}
    fast, _, _ = clipped_gradient_sum(_loss(model), model.trainable_variables, batch, l2_norm_clip=0.05)
    slow, _, _ = clipped_gradient_sum(_loss(model), model.trainable_variables, batch, l2_norm_clip=0.05, method="loop")
    for got, want in zip(fast, slow):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)
    empty = clipped_gradient_sum(_loss(model), model.trainable_variables, (batch[0][:0], batch[1][:0]),
                                 l2_norm_clip=0.05)[0]
    assert all(not np.any(t.numpy()) for t in empty)
