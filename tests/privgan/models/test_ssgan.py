"""SemiSupervisedGAN: two Poisson streams accounted by parallel composition, only D charged, sensitivity, learning."""

import json

import dp_accounting
import keras
import numpy as np
import pytest
import tensorflow as tf

import privgan.dp.fitting
import privgan.models.ssgan.model
from privgan.accounting import ParallelLedger, epsilon_of_event, max_steps
from privgan.accounting.statement import PrivacyStatement
from privgan.dp import NonPrivateLayerError, check_sensitivity, poisson_batches
from privgan.models import SemiSupervisedGAN
from privgan.models.architectures import mlp_discriminator, mlp_generator
from privgan.models.ssgan import LABELLED_STREAM, UNLABELLED_STREAM

# One worker runs this module, so that its module-scoped fixture (a trained model) runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("ssgan")

NUM_CLASSES, FEATURES = 3, 6
NUM_LABELLED, NUM_UNLABELLED = 30, 240
LABELLED_BATCH, UNLABELLED_BATCH = 15, 40  # q_L = 0.5, q_U = 1/6: 6 steps per epoch
DELTA = 1e-5


def blobs(n, seed):
    """Three well-separated Gaussian clusters: labels are learnable from the cluster structure."""
    centers = np.random.default_rng(99).normal(size=(NUM_CLASSES, FEATURES)) * 3
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    return (centers[labels] + rng.normal(size=(n, FEATURES))).astype("float32"), labels


def data():
    x_labelled, y_labelled = blobs(NUM_LABELLED, 0)
    x_unlabelled, _ = blobs(NUM_UNLABELLED, 1)
    return x_labelled, y_labelled, x_unlabelled


def make_gan(*, private=True, hidden_noise=0.0, **kwargs):
    if private:
        kwargs = {"l2_norm_clip": 1.0, "noise_multiplier": 1.0, "labelled_noise_multiplier": 3.0, **kwargs}
    kwargs = {"num_labelled": NUM_LABELLED, "num_unlabelled": NUM_UNLABELLED, "labelled_batch_size": LABELLED_BATCH,
              "unlabelled_batch_size": UNLABELLED_BATCH, "seed": 0, **kwargs}
    gan = SemiSupervisedGAN(
        mlp_generator(output_shape=(FEATURES,), latent_dim=4, hidden=(16,)),
        mlp_discriminator(input_shape=(FEATURES,), hidden=(16, 8), num_logits=NUM_CLASSES, hidden_noise=hidden_noise),
        private=private, **kwargs,
    )
    gan.compile(d_optimizer=keras.optimizers.Adam(3e-3), g_optimizer=keras.optimizers.Adam(3e-3))
    return gan


@pytest.fixture(scope="module")
def trained():
    """A private SSGAN with both sigmas calibrated for 6 epochs (36 steps) at epsilon = 5, trained for them."""
    keras.utils.set_random_seed(0)
    # A fixed noise seed (research mode) keeps the learning test deterministic: with secret noise its
    # accuracy varied over 0.53-0.68 in four runs.
    gan = make_gan(noise_multiplier=None, labelled_noise_multiplier=None, noise_seed=1)
    history = gan.fit(*data(), epochs=6, target_epsilon=5.0, delta=DELTA, accountant="rdp", sampling_seed=0,
                      verbose=0)
    return gan, history.history


def test_each_stream_is_charged_one_poisson_sampled_gaussian_per_step_and_epsilon_is_the_worse_stream(trained):
    gan, history = trained
    steps = 6 * round(NUM_UNLABELLED / UNLABELLED_BATCH)
    assert int(gan.dp_steps.numpy()) == int(gan.d_optimizer.iterations.numpy()) == steps
    ledger = gan.privacy_ledger
    assert isinstance(ledger, ParallelLedger) and set(ledger.parts) == {"labelled", "unlabelled"}
    events = {}
    for name, q in (("labelled", LABELLED_BATCH / NUM_LABELLED), ("unlabelled", UNLABELLED_BATCH / NUM_UNLABELLED)):
        sigma = gan.privacy_statement(delta=DELTA, accountant="rdp")["streams"][name]["noise_multiplier"]
        events[name] = dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
        assert ledger.parts[name].dp_event() == events[name]
    epsilons = {name: epsilon_of_event(event, delta=DELTA, accountant="rdp") for name, event in events.items()}
    assert gan.privacy_spent(delta=DELTA, accountant="rdp") == max(epsilons.values())
    assert history["epsilon"][-1] == pytest.approx(max(epsilons.values()))
    # Calibrated separately, each stream spends the budget (parallel composition), not half of it.
    for value in epsilons.values():
        assert 0.99 * 5.0 <= value <= 5.0
    # Composing the streams (what a neighbour differing in both would cost) is strictly more.
    assert ledger.composed().epsilon(delta=DELTA, accountant="rdp") > 5.0


def test_two_noise_draws_per_step_and_none_for_the_generator(trained):
    gan, _ = trained
    steps = int(gan.dp_steps.numpy())
    # The stream indexes draws within a position (the global DP step): the last step drew twice (0, 1).
    assert int(gan.noise_stream._last_position.numpy()) == int(gan._global_dp_step()) - 1 == steps - 1
    assert int(gan.noise_stream._draws.numpy()) == 1
    assert int(gan.g_optimizer.iterations.numpy()) == steps


def test_generator_steps_do_not_touch_the_discriminator_or_the_ledger():
    gan = make_gan()
    gan.g_optimizer.build(gan.generator.trainable_variables)
    discriminator = [v.numpy().copy() for v in gan.discriminator.trainable_variables]
    generator = [v.numpy().copy() for v in gan.generator.trainable_variables]
    gan.feature_target.assign(np.ones(gan.num_features, "float32"))
    gan._generator_step()
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(discriminator, gan.discriminator.trainable_variables))
    assert not all(np.array_equal(b, v.numpy()) for b, v in zip(generator, gan.generator.trainable_variables))
    assert int(gan.dp_steps.numpy()) == 0 and int(gan.noise_stream._draws.numpy()) == 0
    assert gan.privacy_ledger.total_steps == 0


def test_streams_are_sampled_at_their_own_rates_from_distinct_philox_inputs_and_continue_at_the_global_step():
    gan = make_gan()
    x_labelled, y_labelled, x_unlabelled = data()
    arrays = ((np.arange(NUM_LABELLED), y_labelled), np.arange(NUM_UNLABELLED))
    elements = list(gan._sampled_dataset(arrays, steps=200, seed=5, first_step=0, group_size=None))
    labelled_sizes = [len(labelled[0]) for labelled, _ in elements]
    unlabelled_sizes = [len(unlabelled) for _, unlabelled in elements]
    assert np.mean(labelled_sizes) == pytest.approx(LABELLED_BATCH, rel=0.05)
    assert np.mean(unlabelled_sizes) == pytest.approx(UNLABELLED_BATCH, rel=0.05)
    assert np.std(labelled_sizes) > 0  # Poisson, not a fixed batch
    # The same seed and step, different streams: the first 30 examples of each set are not sampled alike
    # (with one Philox input their uniforms would be equal and so would the masks at equal q).
    same_rate = (np.arange(NUM_LABELLED), np.arange(NUM_LABELLED))
    left = list(poisson_batches(same_rate[0], sampling_probability=0.5, steps=20, seed=5, stream=LABELLED_STREAM))
    right = list(poisson_batches(same_rate[1], sampling_probability=0.5, steps=20, seed=5, stream=UNLABELLED_STREAM))
    assert sum(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(left, right)) == 0
    # Each stream is `poisson_batches` on its own stream, positioned at the global step.
    resumed = list(gan._sampled_dataset(arrays, steps=3, seed=5, first_step=7, group_size=None))
    for (labelled, unlabelled), (expected_labelled, expected_unlabelled) in zip(resumed, elements[7:10]):
        np.testing.assert_array_equal(labelled[0].numpy(), expected_labelled[0].numpy())
        np.testing.assert_array_equal(unlabelled.numpy(), expected_unlabelled.numpy())
    reference = list(poisson_batches(arrays[1], sampling_probability=UNLABELLED_BATCH / NUM_UNLABELLED, steps=3,
                                     seed=5, first_step=7, stream=UNLABELLED_STREAM))
    for (_, unlabelled), expected in zip(resumed, reference):
        np.testing.assert_array_equal(unlabelled.numpy(), expected.numpy())


def test_removing_one_example_moves_each_streams_clipped_sum_by_at_most_c():
    gan = make_gan(l2_norm_clip=0.05, feature_l2_norm_clip=0.02)  # small C: every example is clipped
    x_labelled, y_labelled, x_unlabelled = data()
    labelled = check_sensitivity(gan.labelled_losses, gan.discriminator.trainable_variables,
                                 (x_labelled[:12], y_labelled[:12].astype("int32")), l2_norm_clip=0.05, max_examples=12)
    assert labelled.passed, labelled.summary()
    assert labelled.ratio > 0.9  # the check could see a violation
    # The unlabelled release is the pair (gradients, features): check it the same way, remove-one.
    batch = tf.constant(x_unlabelled[:12])

    @tf.function
    def change_without(index):
        part = tf.concat([batch[:index], batch[index + 1 :]], axis=0)
        full, _ = gan.unlabelled_clipped_sum(batch)
        reduced, _ = gan.unlabelled_clipped_sum(part)
        return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(a - b)) for a, b in zip(full, reduced)]))

    changes = np.array([float(change_without(tf.constant(i))) for i in range(12)])
    assert changes.max() <= 0.05 * (1 + 1e-4)
    assert changes.min() > 0.9 * 0.05


def test_batch_norm_in_the_discriminator_is_refused_when_private():
    discriminator = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(8),
                                      keras.layers.BatchNormalization(), keras.layers.Dense(NUM_CLASSES)])
    generator = mlp_generator(output_shape=(FEATURES,), latent_dim=4, hidden=(8,))
    kwargs = dict(num_labelled=NUM_LABELLED, num_unlabelled=NUM_UNLABELLED, labelled_batch_size=LABELLED_BATCH,
                  unlabelled_batch_size=UNLABELLED_BATCH)
    with pytest.raises(NonPrivateLayerError, match="discriminator"):
        SemiSupervisedGAN(generator, discriminator, l2_norm_clip=1.0, noise_multiplier=1.0,
                          labelled_noise_multiplier=1.0, **kwargs)
    SemiSupervisedGAN(generator, discriminator, private=False, **kwargs)


def test_tiny_runs_learn_above_chance(trained):
    x_test, y_test = blobs(600, 2)
    gan, _ = trained
    private_accuracy = gan.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    keras.utils.set_random_seed(0)
    public = make_gan(private=False, hidden_noise=0.3)
    public.fit(*data(), epochs=8, sampling_seed=0, verbose=0)
    public_accuracy = public.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    assert np.mean(public.predict_labels(x_test) == y_test) == pytest.approx(public_accuracy)
    assert public_accuracy > 0.9, public_accuracy
    assert private_accuracy > 0.5, private_accuracy  # chance is 1/3
    with pytest.raises(ValueError, match="trained without DP"):
        public.privacy_statement(delta=DELTA)


def test_budget_stops_at_the_first_stream_to_exhaust_it():
    gan = make_gan(noise_multiplier=2.0, labelled_noise_multiplier=4.0)
    allowed = {name: max_steps(target_epsilon=3.0, delta=DELTA, noise_multiplier=sigma, sampling_probability=q,
                               accountant="rdp")
               for name, sigma, q in (("labelled", 4.0, LABELLED_BATCH / NUM_LABELLED),
                                      ("unlabelled", 2.0, UNLABELLED_BATCH / NUM_UNLABELLED))}
    assert allowed["labelled"] < allowed["unlabelled"] < 60
    gan.fit(*data(), epochs=10, target_epsilon=3.0, delta=DELTA, accountant="rdp", verbose=0)
    assert int(gan.dp_steps.numpy()) == allowed["labelled"]
    assert gan.privacy_spent(delta=DELTA, accountant="rdp") <= 3.0


def test_save_load_keeps_the_classifier_and_the_privacy_state(trained, tmp_path):
    gan, _ = trained
    x_test, _ = blobs(50, 3)
    gan.save(tmp_path / "ssgan.keras")
    loaded = keras.models.load_model(tmp_path / "ssgan.keras")
    assert loaded.privacy_ledger == gan.privacy_ledger
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), gan.predict(x_test, verbose=0), rtol=1e-5)
    report = loaded.privacy_statement(delta=DELTA, accountant="rdp")
    original = gan.privacy_statement(delta=DELTA, accountant="rdp")
    assert report["sampling_seeding"].startswith("not recorded")  # the loaded model has not sampled
    assert original["sampling_seeding"].startswith("reproducible from a fixed sampling seed")
    assert {**report, "date": None, "sampling_seeding": None} == {**original, "date": None, "sampling_seeding": None}
    assert report["epsilon"] == max(stream["epsilon"] for stream in report["streams"].values())
    assert isinstance(report, PrivacyStatement) and "labels and images are covered" in report.guarantee
    json.dumps(report.to_dict(), allow_nan=False)
    # Steps taken at other sigmas are refused, not charged at this model's.
    gan.save_weights(tmp_path / "w.weights.h5")
    other = make_gan(noise_multiplier=1.0, labelled_noise_multiplier=3.0)
    with pytest.raises(ValueError, match=r"36 DP steps taken with noise_multiplier="):
        other.load_weights(tmp_path / "w.weights.h5")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"private": False, "l2_norm_clip": 1.0},
         r"private=False trains without clipping or noise: leave \['l2_norm_clip'\]"),
        ({"l2_norm_clip": None}, r"l2_norm_clip is required"),
        ({"feature_l2_norm_clip": 1.0}, r"feature_l2_norm_clip must be in \(0, l2_norm_clip=1.0\)"),
        ({"labelled_noise_multiplier": None}, r"both given or both None"),
        ({"labelled_batch_size": 31}, r"labelled_batch_size must be in \(0, num_labelled=30\]"),
        ({"feature_layer": "nope"}, r"feature_layer 'nope' is not a layer"),
    ],
)
def test_bad_constructor_arguments_give_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_gan(**kwargs)


def test_bad_fit_arguments_give_clear_errors():
    x_labelled, y_labelled, x_unlabelled = data()
    gan = make_gan()
    with pytest.raises(ValueError, match=r"x_unlabelled must have shape \(240, 6\)"):
        gan.fit(x_labelled, y_labelled, x_unlabelled[:-1])
    with pytest.raises(ValueError, match=r"y_labelled must be in \[0, K=3\)"):
        gan.fit(x_labelled, y_labelled + 1, x_unlabelled)
    with pytest.raises(ValueError, match=r"does not take \['batch_size'\]"):
        gan.fit(x_labelled, y_labelled, x_unlabelled, batch_size=4)
    with pytest.raises(ValueError, match="has no privacy budget"):
        make_gan(private=False).fit(x_labelled, y_labelled, x_unlabelled, target_epsilon=1.0, delta=DELTA)


@pytest.mark.parametrize("labelled_gradient", ["all", "none"])
def test_labelled_images_among_the_unlabelled_ones_are_refused(labelled_gradient):
    # Parallel composition charges each example one stream; an image in both sets would lose both streams'
    # composition (more than the stated epsilon), also when the GAN phase reads no labels ("none").
    x_labelled, y_labelled, x_unlabelled = data()
    overlapping = np.concatenate([x_unlabelled[:-3], x_labelled[[4, 7, 9]]])
    gan = make_gan(labelled_gradient=labelled_gradient,
                   **({"labelled_noise_multiplier": None} if labelled_gradient == "none" else {}))
    message = r"3 of the 30 images of x_labelled \(first at index 4\) are also in x_unlabelled"
    with pytest.raises(ValueError, match=message):
        gan.fit(x_labelled, y_labelled, overlapping, epochs=1, verbose=0)
    assert int(gan.dp_steps.numpy()) == 0


def test_a_head_only_labelled_release_changes_only_the_last_layer():
    gan = make_gan(labelled_gradient="head", unsupervised_weight=0.0, noise_multiplier=0.0,
                   labelled_noise_multiplier=5.0)
    gan.d_optimizer.build(gan.discriminator.trainable_variables)
    x_labelled, y_labelled, x_unlabelled = data()
    before = [v.numpy().copy() for v in gan.discriminator.trainable_variables]
    gan._private_discriminator_step(tf.constant(x_labelled), tf.constant(y_labelled, tf.int32),
                                    tf.constant(x_unlabelled))
    head = {id(v) for v in gan.discriminator.layers[-1].trainable_variables}
    for old, variable in zip(before, gan.discriminator.trainable_variables):
        assert np.array_equal(old, variable.numpy()) != (id(variable) in head), variable.path
    # Two draws (indexed 0 and 1) at the first position.
    assert int(gan.noise_stream._last_position.numpy()) == 0 and int(gan.noise_stream._draws.numpy()) == 1


def test_split_trains_the_head_from_the_labelled_release_alone():
    gan = make_gan(labelled_gradient="split", labelled_noise_multiplier=0.0, noise_multiplier=0.0)
    x_labelled, y_labelled, x_unlabelled = data()
    kernel = gan.discriminator.layers[-1].kernel
    gan.d_optimizer = keras.optimizers.SGD(1.0)
    gan.d_optimizer.build(gan.discriminator.trainable_variables)
    before = kernel.numpy().copy()
    gan._private_discriminator_step(tf.constant(x_labelled[:0]), tf.constant(y_labelled[:0], tf.int32),
                                    tf.constant(x_unlabelled))
    np.testing.assert_array_equal(kernel.numpy(), before)  # no labelled example: the head stays


def test_labels_read_only_by_fit_head_are_charged_to_the_labelled_stream_only(tmp_path, monkeypatch):
    x_labelled, y_labelled, x_unlabelled = data()
    # Where each phase's Poisson sampling starts (its global position): fit_head's must follow the GAN
    # steps before it, not restart at the labelled ledger's end (0 here, as the GAN steps read no labels).
    first_steps = []
    for module in (privgan.models.ssgan.model, privgan.dp.fitting):
        original = module.poisson_batches

        def spy(data, *, original=original, **kwargs):
            first_steps.append(kwargs["first_step"])
            return original(data, **kwargs)

        monkeypatch.setattr(module, "poisson_batches", spy)
    keras.utils.set_random_seed(0)
    gan = make_gan(labelled_gradient="none", labelled_noise_multiplier=None, noise_multiplier=2.0)
    gan.fit(x_labelled, y_labelled, x_unlabelled, epochs=1, delta=DELTA, accountant="rdp", verbose=0)
    ledger = gan.privacy_ledger
    assert ledger.parts["labelled"].total_steps == 0 and ledger.parts["unlabelled"].total_steps == 6
    # One draw per step (no labelled release): the last, at position 5, was that position's first.
    assert int(gan.noise_stream._last_position.numpy()) == 5 and int(gan.noise_stream._draws.numpy()) == 0
    head_before = [v.numpy().copy() for v in gan.discriminator.layers[-1].trainable_variables]
    body_before = [v.numpy().copy() for v in gan.discriminator.layers[1].trainable_variables]
    with pytest.raises(ValueError, match="shares images with the unlabelled set"):
        gan.fit_head(x_unlabelled[:NUM_LABELLED], y_labelled, epochs=1, expected_batch_size=15, noise_multiplier=3.0)
    gan.fit_head(x_labelled, y_labelled, epochs=5, expected_batch_size=15, noise_multiplier=3.0,
                 optimizer=keras.optimizers.SGD(0.1), sampling_seed=0, verbose=0)
    assert not np.array_equal(head_before[0], gan.discriminator.layers[-1].kernel.numpy())
    body_after = gan.discriminator.layers[1].trainable_variables
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(body_before, body_after))
    ledger = gan.privacy_ledger
    assert ledger.parts["labelled"].dp_event() == dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.5, dp_accounting.GaussianDpEvent(3.0)), 10)
    assert ledger.parts["unlabelled"].total_steps == 6
    streams = gan.privacy_statement(delta=DELTA, accountant="rdp")["streams"]
    assert streams["labelled"]["noise_multiplier"] is None  # the GAN steps made no labelled release
    assert streams["labelled"]["head_phases"] == [{"noise_multiplier": 3.0, "sampling_probability": 0.5, "steps": 10}]
    # Positions: GAN steps 0-5, head steps 6-15, then the GAN continues at 16 (sampling and noise alike).
    assert int(gan._global_dp_step()) == 16
    gan.fit(x_labelled, y_labelled, x_unlabelled, epochs=1, delta=DELTA, accountant="rdp", verbose=0)
    assert first_steps == [0, 0, 6, 16, 16]
    assert gan.privacy_ledger.parts["unlabelled"].total_steps == 12
    ledger = gan.privacy_ledger
    gan.save(tmp_path / "ssgan.keras")
    assert keras.models.load_model(tmp_path / "ssgan.keras").privacy_ledger == ledger


def test_a_verbose_private_fit_prints_both_streams_plan(capsys):
    # The plan line took an initial_epoch that the two-stream override did not accept: verbose private fits failed.
    make_gan().fit(*data(), epochs=1, delta=DELTA, verbose=2)
    assert "Labelled stream: noise_multiplier 3" in capsys.readouterr().out
