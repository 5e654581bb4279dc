"""The benchmark's transformer case is clipped by fast rules only (no per-example gradients)."""

import keras
import numpy as np

from benchmarks.dp_step import transformer_classifier
from privgan.dp.clipping import clipping_plan


def test_every_layer_of_the_transformer_case_takes_a_fast_rule():
    model = transformer_classifier(length=6, vocabulary=20, width=8, heads=2, feed_forward=8)
    tokens = np.random.default_rng(0).integers(0, 20, (3, 6)).astype("int32")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    plan = clipping_plan(lambda b: loss(b[1], model(b[0], training=True)), model.trainable_variables,
                         (tokens, np.array([0, 1, 1])))
    assert plan.whole_model is None
    kinds = {type(layer).__name__ for layer in model._flatten_layers() if layer.trainable_weights}
    assert {"Embedding", "EinsumDense", "LayerNormalization", "Dense"} <= kinds
    assert len(plan.layers) == 11 and {path for _, path in plan.layers} == {"fast rule"}, plan.layers
