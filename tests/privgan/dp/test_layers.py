"""Every built-in Keras layer with trainable weights trains under DP-SGD with sensitivity <= C, or is refused.

Each case is a tiny model around one layer kind. Its path through the clipping (`clipping_plan`) must be
the one docs/layers.md lists (regenerate the table with `python -m tests.privgan.dp.test_layers`), its
clipped sum must equal the one-example-at-a-time reference eagerly, `check_sensitivity` (a tf.function)
must find removing one example moving it by at most C, and `make_private(...).fit` must run a step.
"""

import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import privgan
from privgan.dp import NonPrivateLayerError, check_sensitivity, layer_rules, make_private
from privgan.dp.clipping import clipped_gradient_sum, clipping_plan
from tests.privgan.dp.models import MaskedScale, assert_one_private_epoch_trains

TABLE = pathlib.Path(__file__).resolve().parents[3] / "docs" / "layers.md"
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
L = keras.layers

# Input kinds: shape of one example, and whether it holds token ids (then an Embedding comes first).
SHAPES = {"tokens": (5,), "seq": (5, 3), "image": (6, 6, 2), "volume": (4, 4, 4, 1), "vector": (4,),
          "frames1d": (3, 5, 2), "frames2d": (3, 4, 4, 1)}


def _attention(layer_class, **kwargs):
    return lambda x: layer_class(**kwargs)([x, x])


def _self_attention(layer_class, **kwargs):
    return lambda x: layer_class(**kwargs)(x, x)


def _recurrent(layer_class, *, mask, return_sequences, bidirectional=False):
    def build(x):
        layer = layer_class(3, return_sequences=return_sequences)
        layer = L.Bidirectional(layer) if bidirectional else layer
        out = layer(x)
        return L.GlobalAveragePooling1D()(out) if return_sequences else out

    return "tokens_masked" if mask else "tokens", build


# name -> (layer kind in the table, configuration, input kind, builder of the layer on a tensor)
CASES = {
    "Dense": ("Dense", "", "vector", lambda x: L.Dense(3)(x)),
    "EinsumDense": ("EinsumDense", "`ab,bc->ac`", "vector",
                    lambda x: L.EinsumDense("ab,bc->ac", (3,), bias_axes="c")(x)),
    "Embedding": ("Embedding", "", "tokens", lambda x: x),
    "Embedding_masked": ("Embedding", "`mask_zero=True`, masked pooling", "tokens_masked", lambda x: x),
    "Conv1D": ("Conv1D", "", "seq", lambda x: L.Conv1D(3, 2)(x)),
    "Conv2D": ("Conv2D", "", "image", lambda x: L.Conv2D(3, 3)(x)),
    "Conv2D_groups": ("Conv2D", "`groups=2`", "image", lambda x: L.Conv2D(4, 3, groups=2)(x)),
    "Conv3D": ("Conv3D", "", "volume", lambda x: L.Conv3D(2, 2)(x)),
    "Conv1DTranspose": ("Conv1DTranspose", "", "seq", lambda x: L.Conv1DTranspose(2, 2)(x)),
    "Conv2DTranspose": ("Conv2DTranspose", "", "image", lambda x: L.Conv2DTranspose(2, 2, strides=2)(x)),
    "Conv3DTranspose": ("Conv3DTranspose", "", "volume", lambda x: L.Conv3DTranspose(2, 2)(x)),
    "DepthwiseConv1D": ("DepthwiseConv1D", "", "seq", lambda x: L.DepthwiseConv1D(2)(x)),
    "DepthwiseConv2D": ("DepthwiseConv2D", "", "image", lambda x: L.DepthwiseConv2D(3)(x)),
    "SeparableConv1D": ("SeparableConv1D", "", "seq", lambda x: L.SeparableConv1D(3, 2)(x)),
    "SeparableConv2D": ("SeparableConv2D", "", "image", lambda x: L.SeparableConv2D(3, 3)(x)),
    "LayerNormalization": ("LayerNormalization", "", "seq", lambda x: L.LayerNormalization()(x)),
    "GroupNormalization": ("GroupNormalization", "", "seq", lambda x: L.GroupNormalization(groups=3)(x)),
    "RMSNormalization": ("RMSNormalization", "", "seq", lambda x: L.RMSNormalization()(x)),
    "BatchNormalization_frozen": ("BatchNormalization", "`trainable=False`", "seq",
                                  lambda x: L.Dense(2)(L.BatchNormalization(trainable=False)(x))),
    "BatchNormalization": ("BatchNormalization", "trainable", "seq", lambda x: L.BatchNormalization()(x)),
    "SpectralNormalization": ("SpectralNormalization", "around Dense", "vector",
                              lambda x: L.SpectralNormalization(L.Dense(3))(x)),
    "PReLU": ("PReLU", "", "vector", lambda x: L.PReLU(alpha_initializer="ones")(x)),
    "MultiHeadAttention": ("MultiHeadAttention", "self-attention", "seq",
                           _self_attention(L.MultiHeadAttention, num_heads=2, key_dim=2)),
    "MultiHeadAttention_masked": ("MultiHeadAttention", "self-attention, `mask_zero=True` tokens", "tokens_masked",
                                  _self_attention(L.MultiHeadAttention, num_heads=2, key_dim=2)),
    "GroupQueryAttention": ("GroupQueryAttention", "self-attention", "seq",
                            _self_attention(L.GroupQueryAttention, head_dim=2, num_query_heads=2,
                                            num_key_value_heads=1)),
    "Attention": ("Attention", "`use_scale=True`", "seq", _attention(L.Attention, use_scale=True)),
    "AdditiveAttention": ("AdditiveAttention", "`use_scale=True`", "seq", _attention(L.AdditiveAttention)),
    "TimeDistributed": ("TimeDistributed", "around Dense", "seq", lambda x: L.TimeDistributed(L.Dense(2))(x)),
    "ConvLSTM1D": ("ConvLSTM1D", "", "frames1d", lambda x: L.ConvLSTM1D(2, 2)(x)),
    "ConvLSTM2D": ("ConvLSTM2D", "", "frames2d", lambda x: L.ConvLSTM2D(2, 2)(x)),
}
# Recurrent layers: each kind with and without a mask, and return_sequences both ways, over the cases.
for _class, _bidirectional, _variants in (
    (L.SimpleRNN, False, ((True, True), (False, False))),
    (L.LSTM, False, ((True, False), (False, True))),
    (L.GRU, False, ((True, True), (False, False))),
    (L.LSTM, True, ((True, False), (False, True))),
):
    for _mask, _sequences in _variants:
        _kind = "Bidirectional" if _bidirectional else _class.__name__
        _input, _build = _recurrent(_class, mask=_mask, return_sequences=_sequences, bidirectional=_bidirectional)
        _config = ", ".join(filter(None, [
            "around LSTM" if _bidirectional else "", "masked" if _mask else "",
            "`return_sequences=True`" if _sequences else ""]))
        CASES[f"{_kind}_{'masked' if _mask else 'plain'}_{'sequences' if _sequences else 'last'}"] = (
            _kind, _config, _input, _build)


def _branch(name, inputs_by_kind):
    """The case's layer between its input (shared by kind) and a vector; returns (vector, layer)."""
    kind, _, inputs, layer = CASES[name]
    tokens = inputs.startswith("tokens")
    if inputs not in inputs_by_kind:
        inputs_by_kind[inputs] = keras.Input(SHAPES["tokens" if tokens else inputs], name=inputs,
                                             dtype="int32" if tokens else "float32")
    h = inputs_by_kind[inputs]
    front = L.Embedding(6, 4, mask_zero=inputs == "tokens_masked") if tokens else None
    h = layer(front(h) if tokens else h)
    h = L.GlobalAveragePooling1D()(h) if len(h.shape) == 3 and tokens else L.Flatten()(h)
    return h, front


def _build(*names):
    """A model with one branch per case, their vectors concatenated into a Dense head; its input kinds."""
    inputs_by_kind = {}
    branches = [_branch(name, inputs_by_kind)[0] for name in names]
    h = branches[0] if len(branches) == 1 else L.Concatenate()(branches)
    kinds = sorted(inputs_by_kind)
    model = keras.Model([inputs_by_kind[k] for k in kinds], L.Dense(2, name="head")(h))
    return model, kinds


def _target(model, name):
    kind = CASES[name][0]
    if kind == "Embedding":
        return next(layer for layer in model.layers if isinstance(layer, L.Embedding))
    return next(layer for layer in model.layers if type(layer).__name__.replace("Grouped", "Group") == kind)


def _data(kinds, n=3, seed=0):
    rng = np.random.default_rng(seed)
    x = []
    for inputs in kinds:
        if inputs.startswith("tokens"):
            tokens = rng.integers(1, 6, (n, 5)).astype("int32")
            tokens[:, 3:] *= np.arange(n)[:, None] % 2  # every other example ends with padding (0)
            x.append(tokens)
        else:
            x.append((3 * rng.normal(size=(n, *SHAPES[inputs]))).astype("float32"))
    return tuple(x), rng.integers(0, 2, n)  # a tuple: tf.data would take a list for one tensor


def _loss(model):
    return lambda batch: LOSS(batch[1], model(batch[0], training=True))


def layer_path(name, model=None, kinds=None):
    """The clipping path of the case's layer, as the table states it."""
    if model is None:
        model, kinds = _build(name)
    try:
        privgan.dp.check_private_model(model)
    except NonPrivateLayerError:
        return "refused"
    plan = clipping_plan(_loss(model), model.trainable_variables, _data(kinds))
    if plan.whole_model is not None:
        return f"whole model, {plan.whole_model_path}"
    own = {layer.name for layer in _target(model, name)._flatten_layers(include_self=True)}
    paths = sorted({path for layer, path in plan.layers if layer in own})
    return " + ".join(paths) if paths else "no trainable weights"


def render_table():
    lines = [
        "# How DP-SGD clips each Keras layer",
        "",
        "Generated by `python -m tests.privgan.dp.test_layers > docs/layers.md`; `tests/privgan/dp/test_layers.py`",
        "checks every row: `check_sensitivity` (removing one example moves the clipped sum by <= C), equality",
        "with per-example gradients, and `make_private(...).fit` steps.",
        "",
        "- **fast rule**: per-example norms in closed form from the layer's inputs and output gradients",
        "  (ghost norms / per-example outer products), no per-example gradients.",
        "- **vectorised**: the layer's own per-example gradients, vectorised with `tf.vectorized_map`.",
        "- **per-example loop**: the layer's own per-example gradients, one example at a time (`tf.map_fn`),",
        "  where TensorFlow cannot vectorise it (recurrent layers, layers called with a mask).",
        "- **whole model**: per-example gradients of the whole model, when the layer rules cannot follow it.",
        "- **refused**: `make_private` raises `NonPrivateLayerError` naming the layer, before training.",
        "",
        "Your own layers take the vectorised or loop path, or a rule you register with",
        "`privgan.register_layer_rule(layer_class, rule)`. Layers without trainable weights are not listed.",
        "",
        "| Layer | Configuration | Path |",
        "|---|---|---|",
    ]
    lines += [f"| {CASES[name][0]} | {CASES[name][1]} | {layer_path(name)} |" for name in CASES]
    return "\n".join(lines) + "\n"


def _sensitivity(model, batch, *, eager, removals=2):
    tf.config.run_functions_eagerly(eager)
    try:
        report = check_sensitivity(
            _loss(model), model.trainable_variables, batch, l2_norm_clip=1e-4, max_examples=removals
        )
    finally:
        tf.config.run_functions_eagerly(False)
    assert report.passed and report.ratio > 0.99, report.summary()


@pytest.fixture(scope="module")
def table_rows():
    return TABLE.read_text().splitlines()


@pytest.mark.parametrize("name", list(CASES))
def test_each_layer_is_clipped_within_the_bound_or_refused(name, table_rows):
    """Eagerly (no tracing, to stay fast): the table's path, equality with the loop, sensitivity <= C."""
    kind, config, _, _ = CASES[name]
    model, kinds = _build(name)
    path = layer_path(name, model, kinds)
    assert f"| {kind} | {config} | {path} |" in table_rows, "docs/layers.md is out of date: regenerate it"
    if path == "refused":
        with pytest.raises(NonPrivateLayerError, match=_target(model, name).name):
            make_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=4, expected_batch_size=2)
        return
    batch = _data(kinds)
    # SpectralNormalization's power iteration moves at every call, so two computations of its gradient
    # differ (both within the bound).
    if kind != "SpectralNormalization":
        fast, _, _ = clipped_gradient_sum(_loss(model), model.trainable_variables, batch, l2_norm_clip=0.01)
        slow, _, _ = clipped_gradient_sum(
            _loss(model), model.trainable_variables, batch, l2_norm_clip=0.01, method="loop"
        )
        for got, want in zip(fast, slow):
            np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-6)
    # One removal: eagerly, each clipped sum re-traces the vectorised layers' pfor.
    _sensitivity(model, batch, eager=True, removals=1)


# Compiled steps cost a trace each (minutes for every layer at once on a busy machine): groups that cover
# each path, each recurrent kind with and without a mask, return_sequences both ways, and the wrappers.
GROUPS = {
    "recurrent": ["SimpleRNN_masked_sequences", "LSTM_masked_last", "GRU_plain_last", "Bidirectional_plain_sequences"],
    "attention_and_wrappers": ["MultiHeadAttention_masked", "Attention", "TimeDistributed", "LayerNormalization"],
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_layer_trains_under_make_private_in_a_compiled_step(group):
    """All the layers of a group side by side in one model (one trace): sensitivity <= C, then fit."""
    model, kinds = _build(*GROUPS[group])
    x, y = batch = _data(kinds)
    _sensitivity(model, batch, eager=False)
    private = make_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=len(y), expected_batch_size=1.5)
    assert_one_private_epoch_trains(private, model, x, y, steps=2)


CRASHING_MODEL = textwrap.dedent("""
    import keras, numpy as np
    from privgan.dp import make_private, private_gradients
    from tests.privgan.dp.models import MaskedScale

    x_in = keras.Input((6,), dtype="int32")
    out = keras.layers.Dense(1)(MaskedScale()(keras.layers.Embedding(8, 4, mask_zero=True)(x_in)))
    model = keras.Model(x_in, out)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 8, (32, 6)).astype("int32"), rng.integers(0, 2, 32).astype("float32")
    loss = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)
    for _ in range(3):  # eager
        private_gradients(lambda b: loss(b[1][:, None], model(b[0])), model.trainable_variables, (x[:8], y[:8]),
                          l2_norm_clip=1.0, noise_multiplier=1.0, expected_batch_size=8)
    private = make_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=32, expected_batch_size=8)
    private.compile("sgd", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    private.fit(x, y, epochs=1, verbose=0, delta=1e-3)
    assert int(private.dp_steps.numpy()) == 4
    print("clean exit")
""")


def test_a_masked_custom_layer_trains_and_the_process_survives():
    root = pathlib.Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", CRASHING_MODEL], cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "clean exit" in result.stdout


@pytest.mark.parametrize("name", ["Embedding_masked", "LSTM_masked_last", "Bidirectional_plain_sequences"])
def test_masked_and_recurrent_models_are_never_vectorised(name, monkeypatch):
    """TensorFlow's vectorisation aborts the process on some masked models: the choice comes first."""

    def refuse(*args, **kwargs):
        raise AssertionError("tf.vectorized_map was called on a masked or recurrent model")

    inputs = keras.Input((5,), dtype="int32")
    masked = L.Embedding(6, 4, mask_zero=True)(inputs)
    custom = keras.Model(inputs, L.Dense(2)(MaskedScale()(masked)))
    built, built_kinds = _build(name)
    monkeypatch.setattr(tf, "vectorized_map", refuse)
    for model, kinds in ((custom, ["tokens_masked"]), (built, built_kinds)):
        x, y = _data(kinds)
        batch = (x[0] if len(x) == 1 else x, y)
        for method in ("auto", "vectorized"):
            clipped_gradient_sum(_loss(model), model.trainable_variables, batch, l2_norm_clip=1.0, method=method)


class Scale(keras.layers.Layer):
    """y = x * w with w of the input's width: example i's gradient of w is sum over positions of x * g."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.w


class ScaleRule:
    path = "scale rule"

    @staticmethod
    def call(layer, original_call, inputs, **kwargs):
        outputs = original_call(inputs)
        return outputs, privgan.dp.LayerUse(inputs, outputs, kwargs)

    @staticmethod
    def prepare(layer, original_call, uses, gradients):
        per_example = tf.add_n([u.inputs * g for u, g in zip(uses, gradients)])  # (B, width)

        def clipped(factors):
            return {id(layer.w): tf.tensordot(factors, per_example, axes=1)}

        return tf.reduce_sum(tf.square(per_example), axis=1), clipped


def test_a_registered_rule_serves_its_layer_and_can_be_removed():
    model = keras.Sequential([keras.Input((4,)), Scale(), L.Dense(2)])
    (x,), y = _data(["vector"])
    batch = x, y
    assert privgan.register_layer_rule(Scale, ScaleRule) is None
    try:
        plan = clipping_plan(_loss(model), model.trainable_variables, batch)
        assert plan.layers[0][1] == "scale rule"
        fast, _, _ = clipped_gradient_sum(_loss(model), model.trainable_variables, batch, l2_norm_clip=0.1)
    finally:
        assert privgan.register_layer_rule(Scale, None) is ScaleRule
    assert clipping_plan(_loss(model), model.trainable_variables, batch).layers[0][1] == "vectorised"
    slow, _, _ = clipped_gradient_sum(_loss(model), model.trainable_variables, batch, l2_norm_clip=0.1, method="loop")
    for got, want in zip(fast, slow):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("layer_class, rule, message", [
    (int, ScaleRule, "layer_class"), (Scale, object(), "call and prepare"),
])
def test_bad_registrations_are_refused(layer_class, rule, message):
    with pytest.raises(TypeError, match=message):
        layer_rules.register_layer_rule(layer_class, rule)


def test_the_whole_model_fallback_says_why_without_an_exception_text(monkeypatch):
    messages = []

    class Log:
        WARNING = "warning"

        @staticmethod
        def log_first_n(level, message, count, *args):
            messages.append(message % args)

    monkeypatch.setattr(privgan.dp.clipping, "logging", Log)
    model = keras.Sequential([keras.Input(SHAPES["seq"]), L.LSTM(2)])
    offset = tf.Variable(tf.zeros(2))  # read outside any layer's call: the rules cannot follow it
    variables = [*model.trainable_variables, offset]
    sequences, labels = _data(["seq"])
    clipped_gradient_sum(lambda b: LOSS(b[1], model(b[0]) + offset), variables, (sequences[0], labels),
                         l2_norm_clip=1.0)
    assert len(messages) == 1 and "one example at a time" in messages[0] and "recurrent layer" in messages[0]
    assert "Exception" not in messages[0] and "Error" not in messages[0]


if __name__ == "__main__":
    sys.stdout.write(render_table())
