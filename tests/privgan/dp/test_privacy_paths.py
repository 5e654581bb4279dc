"""The ways the printed epsilon could be false, each with a test that failed on commit c7addc9.

Noise that repeats after a resume or in a second phase, noise and sampling from one random stream,
predictable noise, clipping broken by batch-shaped keyword arguments, non-finite examples, truncated
Gaussian tails, mixing layers reached through `private_gradients`, dropped regularisers and lost
gradients of shared or outside-read variables, a checkpoint charged at another sigma.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from privgan.dp import (
    NoiseStream,
    NonPrivateLayerError,
    check_sensitivity,
    make_private,
    poisson_batches,
    private_gradients,
)
from privgan.dp.clipping import clipped_gradient_sum
from privgan.dp.noise import (
    MAX_RADIUS,
    NOISE_DOMAIN,
    SAMPLING_DOMAIN,
    _log_radius_uniform,
    _radius_uniform,
    gaussian_noise_like,
    sampling_seed_pair,
    standard_normal_from_words,
    truncation_probability,
)

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


def _zero_loss(y_true, y_pred):
    # Every gradient is 0, so a DP step's update is the noise alone.
    return 0.0 * tf.reduce_sum(y_pred, axis=-1)


def _noise_model(num_examples=4, **kwargs):
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16)])
    model = make_private(inner, l2_norm_clip=1.0, noise_multiplier=kwargs.pop("noise_multiplier", 1.0),
                         num_examples=num_examples, expected_batch_size=num_examples, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=_zero_loss)
    return model


class _Updates(keras.callbacks.Callback):
    """Each epoch's weight change (one DP step per epoch when q = 1)."""

    def __init__(self):
        super().__init__()
        self.changes = []

    def on_epoch_begin(self, epoch, logs=None):
        self._before = self.model.model.get_weights()[0].copy()

    def on_epoch_end(self, epoch, logs=None):
        self.changes.append(self.model.model.get_weights()[0] - self._before)


def _noise_of_steps(model, epochs, **fit_kwargs):
    updates = _Updates()
    data = np.ones((model.dp_config.num_examples, 3), "float32"), np.zeros(model.dp_config.num_examples)
    model.fit(*data, epochs=epochs, callbacks=[updates], verbose=0, **fit_kwargs)
    return updates.changes


# Finding 1: noise and samples continue across save/load and phases.

def test_reproducible_noise_continues_after_save_and_load(tmp_path):
    model = _noise_model(noise_seed=5)
    before = _noise_of_steps(model, 3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, custom_objects={"_zero_loss": _zero_loss})
    after = _noise_of_steps(loaded, 2)
    assert int(loaded.dp_steps.numpy()) == 5
    for new in after:
        assert all(not np.allclose(new, old) for old in before)  # c7addc9: step 3's noise was step 0's
    # The same seed reproduces the same noise from the start (research mode does what it says).
    np.testing.assert_allclose(_noise_of_steps(_noise_model(noise_seed=5), 3), before, rtol=1e-6)


def test_reproducible_noise_continues_in_a_second_phase():
    first = _noise_model(noise_seed=5, noise_multiplier=1.0)
    first_noise = _noise_of_steps(first, 2)
    second = _noise_model(noise_seed=5, noise_multiplier=2.0, ledger=first.privacy_ledger)
    second_noise = _noise_of_steps(second, 2)
    for new in second_noise:
        # c7addc9: phase 2's first noise was exactly twice phase 1's, so 2 w1 - w2 was noiseless.
        assert all(not np.allclose(new / 2.0, old, rtol=1e-3) for old in first_noise)
    assert second.privacy_ledger.total_steps == 4


def test_a_second_phase_continues_the_poisson_sampling_sequence():
    num_examples, clip = 64, 100.0
    keras.utils.set_random_seed(0)

    def phase(ledger=None):
        # One weight per example and a linear loss: the noiseless update names the sampled examples.
        inner = keras.Sequential([keras.Input((num_examples,)), keras.layers.Dense(1, use_bias=False)])
        model = make_private(inner, l2_norm_clip=clip, noise_multiplier=0.0, num_examples=num_examples,
                             expected_batch_size=16, ledger=ledger)
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss=lambda y, p: tf.reduce_sum(p, axis=-1))
        before = inner.get_weights()[0].ravel().copy()
        model.fit(np.eye(num_examples, dtype="float32"), np.zeros(num_examples), epochs=1, sampling_seed=9,
                  verbose=0)
        return model, np.flatnonzero(inner.get_weights()[0].ravel() != before)

    first, first_sampled = phase()
    second, second_sampled = phase(first.privacy_ledger)
    steps = first.dp_config.steps_per_epoch
    expected = poisson_batches(np.arange(num_examples), sampling_probability=0.25, steps=2 * steps, seed=9)
    batches = [set(b.numpy()) for b in expected]
    assert set(first_sampled) == set().union(*batches[:steps])
    assert set(second_sampled) == set().union(*batches[steps:])  # c7addc9: batches[:steps] again


# Finding 2: noise and sampling never share a generator input.

def test_noise_sampling_and_keras_streams_never_share_a_philox_input():
    seed = 12345
    position = tf.Variable(0, dtype=tf.int64)
    stream = NoiseStream(seed=seed, position=lambda: position)
    noise_seeds = set()
    for step in range(200):
        position.assign(step)
        noise_seeds.add(tuple(stream.next_seed().numpy()))
    sampling_seeds = {tuple(sampling_seed_pair(seed, step).numpy()) for step in range(200)}
    generator = keras.random.SeedGenerator(seed)
    keras_seeds = {tuple(keras.ops.convert_to_numpy(generator.next())) for _ in range(200)}
    assert len(noise_seeds) == len(sampling_seeds) == len(keras_seeds) == 200
    assert not noise_seeds & sampling_seeds and not noise_seeds & keras_seeds and not sampling_seeds & keras_seeds
    assert all(counter & NOISE_DOMAIN for _, counter in noise_seeds)
    assert all(counter & SAMPLING_DOMAIN and not counter & NOISE_DOMAIN for _, counter in sampling_seeds)


def test_noise_tells_nothing_about_batch_membership_even_with_equal_seeds():
    # The attack of the issue: with noise_seed == sampling_seed the noise's uniforms were the sampling's.
    seed, examples = 77, 4096
    sampling = [tf.random.stateless_uniform([examples], seed=sampling_seed_pair(seed, t), dtype=tf.float64)
                for t in range(8)]
    stream = NoiseStream(seed=seed)
    noise = [gaussian_noise_like([tf.zeros(examples)], stddev=1.0, seed=stream.next_seed())[0] for _ in range(8)]
    members = np.concatenate([(u.numpy() < 0.25) for u in sampling])
    values = np.abs(np.concatenate([n.numpy() for n in noise]))
    assert abs(stats.pointbiserialr(members, values).statistic) < 0.03


# Finding 3: secret noise by default, whatever global seed was set.

def test_default_noise_is_secret_whatever_global_seed_was_set():
    first = _noise_of_steps(_noise_model(), 1, sampling_seed=0)
    second = _noise_of_steps(_noise_model(), 1, sampling_seed=0)  # _noise_model sets the global seed
    assert not np.allclose(first[0], second[0])
    assert _noise_model().noise_stream.describe().startswith("secret")
    assert "does not hold" in _noise_model(noise_seed=3).noise_stream.describe()


def test_each_fit_draws_a_new_secret_key_so_a_rolled_back_step_counter_repeats_no_noise():
    model = _noise_model()
    weights = model.get_weights()
    first = _noise_of_steps(model, 1, sampling_seed=0)
    model.set_weights(weights)  # back to step 0, same instance
    second = _noise_of_steps(model, 1, sampling_seed=0)
    assert int(model.dp_steps.numpy()) == 1
    assert not np.allclose(first[0], second[0])


# Finding 4 (DPModel side; DPGAN in tests/privgan/models): a checkpoint is charged at its own sigma.

def test_loading_steps_taken_at_another_sigma_is_refused(tmp_path):
    trained = _noise_model(noise_multiplier=0.5)
    _noise_of_steps(trained, 2)
    path = tmp_path / "steps.weights.h5"
    trained.save_weights(path)
    other = _noise_model(noise_multiplier=5.0)
    with pytest.raises(ValueError, match="2 DP steps taken with noise_multiplier=0.5"):
        other.load_weights(path)
    same = _noise_model(noise_multiplier=0.5)
    same.load_weights(path)
    assert same.privacy_ledger == trained.privacy_ledger


# Finding 5: batch-shaped keyword arguments (masks) are clipped per example.

class MaskedProjection(keras.layers.Layer):
    """A custom layer that uses the mask Keras passes it: no closed-form rule, a batch-shaped kwarg."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 3), name="kernel")

    def call(self, inputs, mask=None):
        weights = tf.cast(mask, inputs.dtype)[..., None]
        return tf.reduce_sum(tf.tensordot(inputs, self.kernel, 1) * weights, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None


def _masked_model():
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(20, 4, mask_zero=True),
                             MaskedProjection()])


def test_layers_called_with_a_mask_are_clipped_per_example():
    model = _masked_model()
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 20, size=(12, 6)).astype("int32")
    tokens[:, 3:] *= rng.integers(0, 2, size=(12, 3)).astype("int32")  # different masks per example
    labels = rng.integers(0, 3, 12)

    def loss(batch):
        return SCE(batch[1], model(batch[0]))

    report = check_sensitivity(loss, model.trainable_variables, (tokens, labels), l2_norm_clip=0.01)
    assert report.passed, report.summary()  # c7addc9: 1.19-1.39 C
    fast, _, _ = clipped_gradient_sum(loss, model.trainable_variables, (tokens, labels), l2_norm_clip=0.01)
    reference, _, _ = clipped_gradient_sum(loss, model.trainable_variables, (tokens, labels), l2_norm_clip=0.01,
                                           method="vectorized")
    for got, want in zip(fast, reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# Finding 6: a non-finite example is dropped inside the step and refused by fit.

def test_a_non_finite_example_contributes_nothing_and_leaves_the_update_finite():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    y = np.arange(6) % 3
    poisoned = x.copy()
    poisoned[2, 1] = np.nan

    def loss(batch):
        return SCE(batch[1], model(batch[0]))

    kwargs = dict(l2_norm_clip=0.5, expected_batch_size=6.0)
    for method in ("auto", "vectorized"):
        got = private_gradients(loss, model.trainable_variables, (poisoned, y), noise_multiplier=0.0, method=method,
                                **kwargs)
        keep = np.arange(6) != 2
        want = private_gradients(loss, model.trainable_variables, (x[keep], y[keep]), noise_multiplier=0.0, **kwargs)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
    noisy = private_gradients(loss, model.trainable_variables, (poisoned, y), noise_multiplier=1.0, **kwargs)
    assert all(np.isfinite(g.numpy()).all() for g in noisy)


def test_fit_refuses_non_finite_data():
    model = _noise_model()
    x = np.ones((4, 3), "float32")
    x[1, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity in 1 rows \\(first: 1\\)"):
        model.fit(x, np.zeros(4), epochs=1, verbose=0)


def test_the_tabular_path_refuses_non_finite_values():
    import pandas as pd

    from privgan.tabular.schema import CategoricalColumn, NumericColumn, SchemaError, TableSchema
    from privgan.tabular.transformer import TableTransformer

    transformer = TableTransformer(TableSchema([NumericColumn("a", lower=0, upper=10),
                                                CategoricalColumn("b", categories=["x", "y"])]))
    for value, message in ((np.nan, "missing value"), (np.inf, "outside the schema bounds")):
        with pytest.raises(SchemaError, match=message):
            transformer.encode(pd.DataFrame({"a": [1.0, value], "b": ["x", "y"]}))


# Finding 7: the Gaussian's tails.

def test_the_noise_reaches_beyond_eleven_standard_deviations():
    # The smallest uniform the words can make: float32 uniforms stopped at 5.65 sigma in c7addc9.
    smallest = (0.5 * 2.0**-96) * tf.ones(1)
    value = standard_normal_from_words(tf.math.log(smallest), tf.zeros(1, tf.uint32))[0].numpy()
    assert value == pytest.approx(MAX_RADIUS, rel=1e-5)
    # A first word of 0 is continued by more words: find a seed where that happens (2^-32 per pair is
    # too rare to wait for, so the extension is checked directly).
    first = tf.constant([0, 5, 0], tf.uint32)
    extended = _radius_uniform(first, tf.constant([3, 4], tf.int64)).numpy()
    assert extended[1] == pytest.approx(5.5 * 2.0**-32) and 0 < extended[0] < 2.0**-32 and 0 < extended[2] < 2.0**-32
    assert MAX_RADIUS > 11.5
    assert truncation_probability(0.3) < 2e-15 and truncation_probability(1.0) < 1e-24


# The noise's atom at zero: in float32, (w + 1/2) 2^-32 rounds to 1.0 for the 128 largest words.

def test_a_draw_whose_radius_word_is_near_the_top_has_no_exact_zero():
    # Philox key 7 at the first noise position puts 2^32 - 16 among the first 2^14 radius words (found by
    # search): there the old float32 uniform rounded to 1.0 and the pair's values were both exactly 0.
    seed = tf.constant([7, NOISE_DOMAIN], tf.int64)
    words = tf.random.stateless_uniform([2, 1 << 14], seed=seed, minval=None, maxval=None, dtype=tf.uint32)
    assert int(tf.reduce_max(words[0])) >= (1 << 32) - 127
    for dtype in ("float32", "float64"):
        (noise,) = gaussian_noise_like([tf.zeros((1 << 15,), dtype)], stddev=1.0, seed=seed)
        assert np.count_nonzero(noise.numpy() == 0) == 0, dtype


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_the_extreme_words_give_a_radius_and_an_angle_off_zero(dtype):
    top = tf.constant([(1 << 32) - 1 - k for k in range(256)] + [1 << 31, (1 << 31) - 1, 1, 0], tf.uint32)
    log_u = _log_radius_uniform(top, tf.constant([3, 4], tf.int64), dtype=dtype).numpy()
    assert np.all(log_u < 0) and np.all(np.isfinite(log_u))
    # The largest word: 1 - u = 2^-33, so the radius is sqrt(2^-32) = 2^-16 standard deviations.
    assert np.sqrt(-2 * log_u[0]) == pytest.approx(2.0**-16, rel=1e-3)
    # Angle words 0 and 2^30 (angles 0 and pi / 2 without the half-word offset): no exact zero either.
    values = standard_normal_from_words(tf.constant([-1.0, -1.0], dtype),
                                        tf.constant([0, 1 << 30], tf.uint32), dtype=dtype).numpy()
    assert np.all(values != 0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_noise_is_gaussian_in_shape_and_tails_in_every_precision(dtype):
    stream = NoiseStream(seed=11)  # a fixed stream: the statistical bounds hold for it, every run
    shapes = [(201, 3), (7,), (5, 2, 2)]  # odd total: the Box-Muller pairs do not divide it
    noise = gaussian_noise_like([tf.zeros(shape, dtype) for shape in shapes], stddev=2.0, seed=stream.next_seed())
    assert [tuple(n.shape) for n in noise] == shapes and all(n.dtype == dtype for n in noise)
    many = gaussian_noise_like([tf.zeros((400_000,), dtype)], stddev=1.0, seed=stream.next_seed())[0]
    many = tf.cast(many, tf.float32).numpy()
    assert np.mean(np.abs(many) > 3) == pytest.approx(2 * stats.norm.sf(3), rel=0.15)
    # c7addc9 drew half-precision uniforms: no value beyond 3.1 (bfloat16) or 3.7 (float16) sigma.
    assert np.mean(np.abs(many) > 3.8) == pytest.approx(2 * stats.norm.sf(3.8), rel=0.3)
    if dtype == "float32":
        assert stats.kstest(many, "norm").pvalue > 1e-3


def test_same_stream_seed_reproduces_noise_and_streams_advance():
    def draws(stream, count=2):
        return [gaussian_noise_like([tf.zeros(50)], stddev=1.0, seed=stream.next_seed())[0].numpy()
                for _ in range(count)]

    first, second = draws(NoiseStream(seed=7)), draws(NoiseStream(seed=7))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], first[1])
    assert not np.allclose(draws(NoiseStream())[0], draws(NoiseStream())[0])


# Finding 8: mixing layers are refused wherever private gradients are computed, and measurable.

def test_private_gradients_refuses_batch_normalization_but_not_a_frozen_one():
    keras.utils.set_random_seed(0)
    norm = keras.layers.BatchNormalization()
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), norm, keras.layers.Dense(3)])
    x, y = np.random.default_rng(0).normal(size=(8, 5)).astype("float32"), np.arange(8) % 3

    def loss(batch):
        return SCE(batch[1], model(batch[0], training=True))

    variables = [v for layer in (model.layers[0], model.layers[2]) for v in layer.trainable_variables]
    with pytest.raises(NonPrivateLayerError, match="batch_normalization"):
        private_gradients(loss, variables, (x, y), l2_norm_clip=1.0, noise_multiplier=1.0, expected_batch_size=8.0)
    norm.trainable = False  # moving statistics: each example on its own
    report = check_sensitivity(loss, model.trainable_variables, (x, y), l2_norm_clip=0.01)
    assert report.passed, report.summary()


def test_check_sensitivity_flags_a_minibatch_standard_deviation_layer():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(4, activation="tanh")(inputs)
    # ProGAN's minibatch standard deviation, as a Lambda: nothing declares that it mixes examples.
    spread = keras.layers.Lambda(lambda h: tf.concat(
        [h, tf.broadcast_to(tf.reduce_mean(tf.math.reduce_std(h, axis=0)), tf.shape(h[:, :1]))], axis=1))(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3)(spread))
    x, y = np.random.default_rng(0).normal(size=(8, 5)).astype("float32") * 3, np.arange(8) % 3

    def loss(batch):
        return SCE(batch[1], model(batch[0]))

    report = check_sensitivity(loss, model.trainable_variables, (x, y), l2_norm_clip=0.01)
    assert not report.passed and report.ratio > 1.001
    assert "ABOVE the bound" in report.summary()


def test_check_sensitivity_passes_an_ordinary_model_and_validates_its_arguments():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(3)])
    x, y = np.random.default_rng(0).normal(size=(8, 5)).astype("float32") * 3, np.arange(8) % 3

    def loss(batch):
        return SCE(batch[1], model(batch[0]))

    report = check_sensitivity(loss, model.trainable_variables, (x, y), l2_norm_clip=0.01, max_examples=4)
    assert report.passed and report.examples_checked == 4
    assert report.ratio == pytest.approx(1.0, rel=1e-4)  # every gradient clipped: removal moves exactly C
    with pytest.raises(ValueError, match="at least 2 examples"):
        check_sensitivity(loss, model.trainable_variables, (x[:1], y[:1]), l2_norm_clip=1.0)
    with pytest.raises(ValueError, match="l2_norm_clip must be > 0"):
        check_sensitivity(loss, model.trainable_variables, (x, y), l2_norm_clip=0.0)


# Finding 9: regularisers, shared and outside-read variables.

def test_weight_regularisers_are_applied_like_keras_does():
    keras.utils.set_random_seed(3)
    x = np.random.default_rng(0).normal(size=(10, 5)).astype("float32")
    y = np.arange(10) % 3

    def build():
        keras.utils.set_random_seed(3)
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(
            3, kernel_regularizer=keras.regularizers.L2(0.5))])

    plain = build()
    plain.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(True))
    plain.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    private = make_private(build(), l2_norm_clip=1e6, noise_multiplier=0.0, num_examples=10, expected_batch_size=10)
    private.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(True))
    private.fit(x, y, epochs=1, verbose=0)  # c7addc9 dropped the penalty
    for got, want in zip(private.model.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_losses_computed_from_the_data_are_refused():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
        2, activity_regularizer=keras.regularizers.L2(0.1))])
    private = make_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=4, expected_batch_size=4)
    private.compile(optimizer="sgd", loss=SCE)
    with pytest.raises(ValueError, match="added a loss computed from its inputs"):
        private.fit(np.ones((4, 3), "float32"), np.zeros(4), epochs=1, verbose=0)


class _TiedHead(keras.layers.Layer):
    """Decodes with the transpose of another layer's kernel, which it tracks as its own weight too."""

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        object.__setattr__(self, "_encoder", encoder)  # a reference, not a sub-layer

    def build(self, input_shape):
        self.kernel = self._encoder.kernel

    def call(self, inputs):
        return tf.matmul(inputs, self.kernel, transpose_b=True)


class _TiedWeights(keras.Model):
    """A kernel owned by two layers, or read outside any layer's call."""

    def __init__(self, read_outside):
        super().__init__()
        self.encoder = keras.layers.Dense(3, activation="tanh", use_bias=False)
        self.head = keras.layers.Dense(3) if read_outside else _TiedHead(self.encoder)
        self.read_outside = read_outside

    def call(self, inputs):
        hidden = self.encoder(inputs)
        if self.read_outside:
            diagonal = tf.linalg.diag_part(self.encoder.kernel)
            # Added to the first logit only: a constant added to every logit would not move the loss.
            return self.head(hidden) + tf.pad(tf.reduce_sum(inputs * diagonal, axis=1, keepdims=True), [[0, 0], [0, 2]])
        return self.head(hidden)


@pytest.mark.parametrize("read_outside", [False, True])
def test_shared_and_outside_read_variables_get_their_whole_gradient(read_outside):
    keras.utils.set_random_seed(0)
    model = _TiedWeights(read_outside)
    model(np.zeros((1, 3), "float32"))
    x = np.random.default_rng(1).normal(size=(7, 3)).astype("float32")
    y = np.arange(7) % 3

    def loss(batch):
        return SCE(batch[1], model(batch[0]))

    fast, _, _ = clipped_gradient_sum(loss, model.trainable_variables, (x, y), l2_norm_clip=0.05)
    reference, _, _ = clipped_gradient_sum(loss, model.trainable_variables, (x, y), l2_norm_clip=0.05,
                                           method="vectorized")
    for got, want in zip(fast, reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)  # c7addc9 lost part of the gradient
