"""DPGAN: privacy bookkeeping per D step, conditioning, budgets, emission and persistence."""

import json
import warnings

import keras
import numpy as np
import pytest

from privgan.accounting import epsilon, max_steps
from privgan.dp import NonPrivateLayerError
from privgan.models.architectures import mlp_discriminator, mlp_generator
from privgan.models.dpgan import DPGAN
from tests.privgan.models.gans import BATCH, DELTA, FEATURES, NUM_EXAMPLES, data, make_gan


@pytest.fixture(scope="module")
def trained():
    """A conditional GAN with sigma calibrated for 2 epochs at epsilon = 5, trained for them."""
    keras.utils.set_random_seed(0)
    x, y = data()
    gan = make_gan(noise_multiplier=None, n_critic=2)
    history = gan.fit(x, y, epochs=2, target_epsilon=5.0, delta=DELTA, sampling_seed=0, verbose=0)
    return gan, history.history


def test_one_dp_event_per_discriminator_step_and_none_per_generator_step(trained):
    gan, _ = trained
    d_steps = 2 * round(NUM_EXAMPLES / BATCH)
    assert gan.planned_dp_steps(2) == d_steps
    assert int(gan.d_optimizer.iterations.numpy()) == d_steps
    assert int(gan.g_optimizer.iterations.numpy()) == d_steps // 2
    ledger = gan.privacy_ledger
    assert ledger.total_steps == d_steps
    (phase,) = ledger.phases
    assert phase.noise_multiplier == gan.dp_config.noise_multiplier
    assert phase.sampling_probability == BATCH / NUM_EXAMPLES
    assert gan.privacy_spent(delta=DELTA) == pytest.approx(epsilon(
        noise_multiplier=gan.dp_config.noise_multiplier, sampling_probability=BATCH / NUM_EXAMPLES,
        steps=d_steps, delta=DELTA,
    ))


def test_generator_steps_do_not_touch_the_discriminator_or_the_ledger():
    gan = make_gan(n_critic=1)
    gan.g_optimizer.build(gan.generator.trainable_variables)
    before = [v.numpy().copy() for v in gan.discriminator.trainable_variables]
    generator_before = [v.numpy().copy() for v in gan.generator.trainable_variables]
    gan._generator_step()
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, gan.discriminator.trainable_variables))
    assert not all(np.array_equal(b, v.numpy()) for b, v in zip(generator_before, gan.generator.trainable_variables))
    assert int(gan.dp_steps.numpy()) == 0 and gan.privacy_ledger.total_steps == 0


def test_noise_reaches_the_discriminator_update():
    # With a huge sigma, D's update is dominated by noise of std sigma * C / expected_batch_size.
    x, y = data()
    gan = make_gan(noise_multiplier=1e4, n_critic=1)
    kernel = gan.discriminator.trainable_variables[0]
    before = kernel.numpy().copy()
    gan._discriminator_step(keras.ops.convert_to_tensor(x[:BATCH]), keras.ops.convert_to_tensor(y[:BATCH], "int32"))
    change = (kernel.numpy() - before) / 0.01  # SGD learning rate
    assert np.std(change) == pytest.approx(1e4 / BATCH, rel=0.3)


def test_conditioning_passes_the_requested_labels_to_the_generator():
    latent = keras.Input((2,))
    labels = keras.Input((), dtype="int32")
    # A generator that writes its label into the sample: output = embedding(label) (latent ignored).
    rows = keras.layers.Embedding(3, 1, embeddings_initializer=keras.initializers.Constant([[0.0], [1.0], [2.0]]))
    output = keras.layers.Add()([rows(labels), keras.layers.Dense(1, kernel_initializer="zeros")(latent)])
    generator = keras.Model([latent, labels], output)
    gan = DPGAN(generator, mlp_discriminator(input_shape=(1,), num_classes=3, hidden=(4,)), l2_norm_clip=1.0,
                noise_multiplier=1.0, num_examples=10, expected_batch_size=2, num_classes=3)
    samples, labels_out = gan.generate(5, labels=[2, 0, 1, 1, 2])
    np.testing.assert_array_equal(labels_out, [2, 0, 1, 1, 2])
    np.testing.assert_allclose(samples[:, 0], [2, 0, 1, 1, 2])
    samples, labels_out = gan.generate(7)  # balanced by default
    np.testing.assert_array_equal(labels_out, [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_allclose(samples[:, 0], labels_out)
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes=3\)"):
        gan.generate(2, labels=[0, 3])


def test_calibrated_sigma_spends_exactly_the_target(trained):
    gan, history = trained
    spent = gan.privacy_spent(delta=DELTA)
    assert 0.99 * 5.0 <= spent <= 5.0
    assert history["epsilon"][-1] == pytest.approx(spent)
    assert set(history) >= {"d_loss_real", "d_loss_fake", "g_loss", "epsilon"}


def test_training_stops_at_the_budget_without_restarting_the_sampler():
    x, y = data()
    gan = make_gan(noise_multiplier=2.0)
    allowed = max_steps(target_epsilon=2.9, delta=DELTA, noise_multiplier=2.0,
                        sampling_probability=BATCH / NUM_EXAMPLES)
    assert allowed < 20 * round(NUM_EXAMPLES / BATCH) and allowed % 2 == 1  # ends inside a train step of 2
    # Keras re-creates the iterator of a dataset that runs dry before the last epoch (warning "Your input
    # ran out of data"), which would replay the first Poisson batches: fit must stop first.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        gan.fit(x, y, epochs=20, target_epsilon=2.9, delta=DELTA, verbose=0)
    assert gan.privacy_ledger.total_steps == allowed - allowed % 2  # whole train steps of n_critic = 2 D steps
    assert gan.privacy_spent(delta=DELTA) <= 2.9
    with pytest.raises(ValueError, match="already spent"):
        gan.fit(x, y, epochs=1, target_epsilon=2.9, delta=DELTA, verbose=0)


def test_save_synthetic_writes_data_and_a_statement_with_the_accountants_epsilon(trained, tmp_path):
    gan, _ = trained
    npz, statement_path = gan.save_synthetic(tmp_path / "out" / "synthetic.npz", 30, delta=DELTA)
    with np.load(npz) as arrays:
        assert arrays["x"].shape == (30, FEATURES) and arrays["y"].shape == (30,)
        np.testing.assert_array_equal(arrays["y"], np.arange(30) % 3)
    statement = json.loads(statement_path.read_text())
    assert statement_path == tmp_path / "out" / "synthetic.json"
    assert statement["epsilon"] == gan.privacy_spent(delta=DELTA)
    assert statement["epsilon"] == epsilon(noise_multiplier=statement["noise_multiplier"],
                                           sampling_probability=BATCH / NUM_EXAMPLES,
                                           steps=statement["d_steps"], delta=DELTA)
    for key in ("delta", "accountant", "l2_norm_clip", "sampling_probability", "num_examples", "privgan_version",
                "date"):
        assert key in statement
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["synthetic.json", "synthetic.npz"]
    # privgan-audit reads the statement as written and finds its epsilon in its ledger.
    from privgan.cli.audit import check_statement

    text, consistent, _, ledger = check_statement(statement_path)
    assert consistent, text
    assert ledger.total_steps == statement["d_steps"]


def test_save_load_round_trip_keeps_the_privacy_state(trained, tmp_path):
    gan, _ = trained
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    assert loaded.privacy_ledger == gan.privacy_ledger
    assert loaded.privacy_spent(delta=DELTA) == gan.privacy_spent(delta=DELTA)
    assert loaded.dp_config == gan.dp_config


def test_batch_norm_in_the_discriminator_is_refused_but_allowed_in_the_generator():
    discriminator = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(4),
                                      keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    generator = mlp_generator(output_shape=(FEATURES,), latent_dim=3, hidden=(4,), batch_norm=True)
    kwargs = dict(l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=NUM_EXAMPLES, expected_batch_size=BATCH)
    with pytest.raises(NonPrivateLayerError, match="discriminator"):
        DPGAN(generator, discriminator, **kwargs)
    DPGAN(generator, mlp_discriminator(input_shape=(FEATURES,), hidden=(4,)), **kwargs)


@pytest.mark.parametrize(
    "fit_kwargs, message",
    [
        ({"target_epsilon": 0.0, "delta": DELTA}, r"target_epsilon must be a finite number > 0, got 0.0"),
        ({"target_epsilon": -1.0, "delta": DELTA}, r"target_epsilon must be a finite number > 0"),
        ({"target_epsilon": 1.0, "delta": 1.0}, r"delta must be in \(0, 1\), got 1.0"),
        ({"target_epsilon": 1.0}, r"target_epsilon needs delta"),
        ({"batch_size": 4}, r"does not take \['batch_size'\]"),
    ],
)
def test_bad_fit_arguments_give_clear_errors(fit_kwargs, message):
    x, y = data()
    with pytest.raises(ValueError, match=message):
        make_gan().fit(x, y, **fit_kwargs)


def test_bad_emission_arguments_give_clear_errors_and_write_nothing(tmp_path):
    gan = make_gan()
    with pytest.raises(ValueError, match=r"n must be an integer >= 0, got -1"):
        gan.generate(-1)
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\), got 1.5"):
        gan.save_synthetic(tmp_path / "s.npz", 5, delta=1.5)
    with pytest.raises(ValueError, match=r"n must be an integer >= 0"):
        gan.save_synthetic(tmp_path / "s.npz", -3, delta=DELTA)
    with pytest.raises(ValueError, match=r"path must end in .npz"):
        gan.save_synthetic(tmp_path / "s.csv", 5, delta=DELTA)
    assert list(tmp_path.iterdir()) == []


def test_bad_constructor_arguments_give_clear_errors():
    x, y = data()
    with pytest.raises(ValueError, match=r"n_critic must be an integer >= 1, got 0"):
        make_gan(n_critic=0)
    with pytest.raises(ValueError, match=r"generator has 2 inputs; with num_classes=None"):
        DPGAN(mlp_generator(output_shape=(FEATURES,), latent_dim=3, num_classes=3),
              mlp_discriminator(input_shape=(FEATURES,)), l2_norm_clip=1.0, noise_multiplier=1.0,
              num_examples=NUM_EXAMPLES, expected_batch_size=BATCH)
    with pytest.raises(ValueError, match=r"noise_multiplier=None is calibrated in fit"):
        make_gan(noise_multiplier=None).fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes=3\)"):
        make_gan().fit(x, y + 3, epochs=1, verbose=0)


def test_ema_generator_trails_the_generator_and_is_what_generate_samples(tmp_path):
    gan = make_gan(n_critic=1, ema_decay=0.9)
    gan.g_optimizer.build(gan.generator.trainable_variables)
    start = [v.numpy().copy() for v in gan.generator.weights]
    np.testing.assert_array_equal(gan.ema_generator.weights[0].numpy(), start[0])
    gan._generator_step()
    for average, before, after in zip(gan.ema_generator.weights, start, gan.generator.weights):
        np.testing.assert_allclose(average.numpy(), 0.9 * before + 0.1 * after.numpy(), rtol=1e-5, atol=1e-7)
    assert not np.array_equal(gan.ema_generator.weights[0].numpy(), gan.generator.weights[0].numpy())
    gan.seed_generator = keras.random.SeedGenerator(1)  # so that generate draws these latent vectors
    latent = keras.random.normal((4, gan.latent_dim), seed=keras.random.SeedGenerator(1))
    labels = keras.ops.convert_to_tensor([0, 1, 2, 0], "int32")
    expected = keras.ops.convert_to_numpy(gan.ema_generator([latent, labels], training=False))
    samples, _ = gan.generate(4, labels=[0, 1, 2, 0])
    np.testing.assert_allclose(samples, expected, rtol=1e-5)
    assert gan.ema_generator.trainable_variables == []
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    assert loaded.ema_decay == 0.9
    for a, b in zip(loaded.ema_generator.weights, gan.ema_generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match=r"ema_decay must be None or in \[0, 1\), got 1.0"):
        make_gan(ema_decay=1.0)


def _fit_gan(strategy, *, epochs, target_epsilon=None):
    x, y = data()
    with strategy.scope():
        keras.utils.set_random_seed(7)
        gan = make_gan(n_critic=2, ema_decay=0.5, noise_seed=11)  # the same noise on both
    gan.fit(x, y, epochs=epochs, target_epsilon=target_epsilon, delta=DELTA, sampling_seed=3, verbose=0)
    return gan


def test_fit_under_mirrored_strategy_equals_one_device(mirrored_strategy):
    import tensorflow as tf

    mirrored = _fit_gan(mirrored_strategy, epochs=2)
    single = _fit_gan(tf.distribute.get_strategy(), epochs=2)
    d_steps = 2 * round(NUM_EXAMPLES / BATCH)
    assert int(mirrored.dp_steps.numpy()) == int(single.dp_steps.numpy()) == d_steps
    assert int(mirrored.g_optimizer.iterations.numpy()) == d_steps // 2
    assert mirrored.privacy_ledger == single.privacy_ledger
    for model in ("discriminator", "generator", "ema_generator"):
        for got, want in zip(getattr(mirrored, model).get_weights(), getattr(single, model).get_weights()):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=model)


def test_budget_holds_under_mirrored_strategy(mirrored_strategy):
    allowed = max_steps(target_epsilon=3.0, delta=DELTA, noise_multiplier=1.0,
                        sampling_probability=BATCH / NUM_EXAMPLES)
    gan = _fit_gan(mirrored_strategy, epochs=allowed // 6 + 3, target_epsilon=3.0)
    assert int(gan.dp_steps.numpy()) == allowed - allowed % 2  # whole train steps of n_critic = 2 D steps
    assert gan.privacy_spent(delta=DELTA) <= 3.0
