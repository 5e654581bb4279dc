"""The fast rules of `privgan.dp.rules_modern` give the per-example norms of the layer's own VJPs.

For each case, one forward/backward pass is recorded twice: with the registered fast rule and with
the generic rule (per-example gradients of the layer, vectorised), and each layer's per-example squared
norms and clipped sums (for random clip factors) must agree. `check_sensitivity` must find removing an
example moving the clipped sum by at most C, eagerly per case, and in one tf.function over all cases.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from privgan.dp import check_sensitivity, layer_rules, rules_modern
from privgan.dp.clipping import _recording_layers, clipped_gradient_sum

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

# name -> (input shape of one example, builder of the layer(s) on a tensor, class whose rule is checked)
CASES = {
    "einsum_positions": ((4, 3), lambda x: L.EinsumDense("abc,cd->abd", (4, 5), bias_axes="d")(x), L.EinsumDense),
    "einsum_position_bias": ((4, 3), lambda x: L.EinsumDense("abc,cd->abd", (4, 2), bias_axes="bd")(x),
                             L.EinsumDense),
    "einsum_ellipsis": ((3, 4), lambda x: L.EinsumDense("...b,bc->...c", 5, bias_axes="c")(x), L.EinsumDense),
    "multi_head_attention": ((5, 6), lambda x: L.MultiHeadAttention(num_heads=2, key_dim=3)(x, x), L.EinsumDense),
    "group_query_attention": ((5, 4), lambda x: L.GroupQueryAttention(head_dim=2, num_query_heads=2,
                                                                       num_key_value_heads=1)(x, x), L.EinsumDense),
    "depthwise_conv2d": ((7, 7, 3), lambda x: L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same")(x),
                         L.DepthwiseConv2D),
    "depthwise_conv1d": ((8, 3), lambda x: L.DepthwiseConv1D(2, dilation_rate=2, depth_multiplier=2,
                                                             activation="tanh")(x), L.DepthwiseConv1D),
    "separable_conv2d": ((6, 6, 3), lambda x: L.SeparableConv2D(4, 3, depth_multiplier=2, padding="same",
                                                                activation="relu")(x), L.SeparableConv2D),
    "separable_conv1d": ((9, 3), lambda x: L.SeparableConv1D(4, 2, strides=2, use_bias=False)(x), L.SeparableConv1D),
    "conv2d_groups": ((6, 6, 4), lambda x: L.Conv2D(6, 3, groups=2, strides=2)(x), L.Conv2D),
    "conv1d_groups": ((7, 3), lambda x: L.Conv1D(6, 2, groups=3, padding="same")(x), L.Conv1D),
    "group_normalization": ((5, 4), lambda x: L.GroupNormalization(groups=2)(x), L.GroupNormalization),
    "group_normalization_image": ((3, 3, 4), lambda x: L.GroupNormalization(groups=4)(x), L.GroupNormalization),
    "rms_normalization": ((5, 4), lambda x: L.RMSNormalization()(x), L.RMSNormalization),
    "prelu_shared": ((5, 4), lambda x: L.PReLU(alpha_initializer="ones", shared_axes=[1])(x), L.PReLU),
    "prelu": ((4,), lambda x: L.PReLU(alpha_initializer="ones")(x), L.PReLU),
}


def _model(*names):
    """One branch per case (the case's layer, then Dense to a vector), concatenated into a Dense head."""
    inputs, branches = [], []
    for name in names:
        shape, build, _ = CASES[name]
        inputs.append(keras.Input(shape))
        branches.append(L.Dense(3, activation="tanh")(L.Flatten()(build(inputs[-1]))))
    h = branches[0] if len(branches) == 1 else L.Concatenate()(branches)
    return keras.Model(inputs, L.Dense(2)(h))


def _batch(names, n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = tuple((3 * rng.normal(size=(n, *CASES[name][0]))).astype("float32") for name in names)
    return x, rng.integers(0, 2, n)


def _loss(model):
    return lambda batch: LOSS(batch[1], model(batch[0], training=True))


def _per_layer(model, batch, factors):
    """{layer name: (rule, per-example squared norms, clipped sums by variable name)} for one recorded pass."""
    with tf.GradientTape() as tape:
        with _recording_layers({id(v) for v in model.trainable_variables}) as recording:
            total = tf.reduce_sum(_loss(model)(batch))
    entries = list(recording.entries.values())
    watched = [[use.watched for use in entry.uses] for entry in entries]
    gradients = tape.gradient(total, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    result = {}
    for entry, grads in zip(entries, gradients):
        squared, clipped = entry.rule.prepare(entry.layer, entry.original_call, entry.uses, grads)
        names = {id(v): v.path for v in entry.variables}
        result[entry.layer.name] = (entry.rule, squared.numpy(),
                                    {names[key]: value.numpy() for key, value in clipped(factors).items()})
    return result


@pytest.mark.parametrize("name", list(CASES))
def test_fast_rule_norms_and_sums_equal_the_layer_own_per_example_gradients(name):
    _, _, layer_class = CASES[name]
    model = _model(name)
    batch = _batch([name])
    factors = tf.constant([0.5, 1.0, 0.0, 2.0])  # 0: a dropped example contributes nothing
    fast = _per_layer(model, batch, factors)
    targets = [layer for layer in model._flatten_layers() if type(layer) is layer_class]
    assert targets
    previous = layer_rules.register_layer_rule(layer_class, layer_rules.GenericRule)
    try:
        generic = _per_layer(model, batch, factors)
    finally:
        layer_rules.register_layer_rule(layer_class, previous)
    for layer in targets:
        rule, squared, sums = fast[layer.name]
        assert rule is not layer_rules.GenericRule and getattr(rule, "path", None) == "fast rule"
        assert generic[layer.name][0] is layer_rules.GenericRule
        np.testing.assert_allclose(squared, generic[layer.name][1], rtol=1e-4, atol=1e-6)
        assert squared.min() > 0
        assert sums.keys() == generic[layer.name][2].keys()
        for key, value in sums.items():
            np.testing.assert_allclose(value, generic[layer.name][2][key], rtol=1e-4, atol=1e-5, err_msg=key)


def _sensitivity(model, batch, *, removals):
    report = check_sensitivity(_loss(model), model.trainable_variables, batch, l2_norm_clip=1e-4,
                               max_examples=removals)
    assert report.passed and report.ratio > 0.99, report.summary()


@pytest.mark.parametrize("name", list(CASES))
def test_sensitivity_is_at_most_the_bound_eagerly(name):
    tf.config.run_functions_eagerly(True)
    try:
        _sensitivity(_model(name), _batch([name]), removals=1)
    finally:
        tf.config.run_functions_eagerly(False)


def test_sensitivity_is_at_most_the_bound_in_a_tf_function():
    """A case of each rule side by side in one model: one trace (tens of seconds on 2 busy cores) for all."""
    names = ["multi_head_attention", "depthwise_conv2d", "separable_conv1d", "conv1d_groups", "group_normalization",
             "rms_normalization", "prelu_shared"]
    _sensitivity(_model(*names), _batch(names), removals=1)


def test_declined_configurations_take_the_generic_rule():
    x = keras.Input((4, 3))
    summed_away = L.EinsumDense("abc,cd->ad", 5)  # the position axis b is summed, not kept
    elementwise = L.EinsumDense("abc,bc->abc", (4, 3))  # kernel axes both in the input and the output
    causal = L.Conv1D(6, 2, groups=3, padding="causal")
    keras.Model(x, [summed_away(x), elementwise(x), causal(x)])
    for layer in (summed_away, elementwise, causal):
        assert layer_rules.rule_for(layer) is layer_rules.GenericRule, layer.name
    assert layer_rules.rule_for(L.Conv2D(2, 2)) is rules_modern.ConvolutionRule


def test_an_empty_batch_gives_a_zero_sum():
    """Poisson sampling draws empty batches; TensorFlow's depthwise convolutions mis-shape them."""
    names = list(CASES)
    model = _model(*names)
    x, y = _batch(names, n=0)
    summed, losses, _ = clipped_gradient_sum(_loss(model), model.trainable_variables, (x, y), l2_norm_clip=1.0)
    assert losses.shape == (0,) and all(not np.any(s.numpy()) for s in summed)
