"""DPGAN's privacy: the sigma charged is the sigma used, secret noise, what the statement says."""

import json

import dp_accounting
import keras
import numpy as np
import pytest

from tests.privgan.models.gans import BATCH, DELTA, data, make_gan


def test_loading_steps_taken_at_another_sigma_is_refused(tmp_path):
    x, y = data()
    trained = make_gan(noise_multiplier=0.5)
    trained.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "d.weights.h5"
    trained.save_weights(path)
    # c7addc9 loaded sigma = 0.5 into the train step of a GAN whose ledger charged sigma = 5.
    with pytest.raises(ValueError, match=r"6 DP steps taken with noise_multiplier=0.5"):
        make_gan(noise_multiplier=5.0).load_weights(path)
    with pytest.raises(ValueError, match="noise_multiplier=0,"):  # still to be calibrated
        make_gan(noise_multiplier=None).load_weights(path)
    same = make_gan(noise_multiplier=0.5)
    same.load_weights(path)
    assert same.privacy_ledger == trained.privacy_ledger
    assert not any("noise_multiplier" in w.path for w in same.weights)  # sigma is no longer a weight


def test_the_step_records_the_calibrated_sigma_it_used():
    x, y = data()
    gan = make_gan(noise_multiplier=None)
    gan.fit(x, y, epochs=1, target_epsilon=4.0, delta=DELTA, verbose=0)
    sigma, clip, q = keras.ops.convert_to_numpy(gan.dp_step_parameters)
    assert sigma == gan.dp_config.noise_multiplier == gan.privacy_ledger.phases[0].noise_multiplier
    assert (clip, q) == (1.0, BATCH / len(x))


def _discriminator_after_one_epoch(**kwargs):
    x, y = data()
    keras.utils.set_random_seed(0)
    gan = make_gan(n_critic=1, **kwargs)
    gan.fit(x, y, epochs=1, sampling_seed=4, verbose=0)
    return gan.discriminator.get_weights()[0]


def test_noise_is_secret_unless_a_noise_seed_is_given():
    # Same global seed, same latent seed, same sampling seed: only the noise can differ.
    assert not np.allclose(_discriminator_after_one_epoch(), _discriminator_after_one_epoch())
    np.testing.assert_array_equal(_discriminator_after_one_epoch(noise_seed=8),
                                  _discriminator_after_one_epoch(noise_seed=8))


def test_statement_says_how_noise_and_sampling_were_seeded_and_that_n_is_public(tmp_path):
    x, y = data()
    gan = make_gan()
    gan.fit(x, y, epochs=1, verbose=0)
    _, path = gan.save_synthetic(tmp_path / "s.npz", 6, delta=DELTA)
    statement = json.loads(path.read_text())
    assert statement["noise_seeding"].startswith("secret")
    assert statement["sampling_seeding"].startswith("secret")
    assert "declared public" in statement["guarantee"] and statement["num_examples_source"] == "public"
    seeded = make_gan(noise_seed=1)
    seeded.fit(x, y, epochs=1, sampling_seed=2, verbose=0)
    report = seeded.privacy_statement(delta=DELTA)
    assert "does not hold against anyone who knows" in report["noise_seeding"]
    assert report["sampling_seeding"].startswith("reproducible from a fixed sampling seed")


def test_fit_refuses_non_finite_samples():
    x, y = data()
    x[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity in 1 rows \(first: 5\)"):
        make_gan().fit(x, y, epochs=1, verbose=0)


def test_a_released_count_sizes_a_dpgan_without_its_exact_n():
    import keras

    from privgan.accounting import PrivacyLedger
    from privgan.models.architectures import mlp_discriminator, mlp_generator
    from privgan.models.dpgan import DPGAN

    generator, discriminator = mlp_generator(latent_dim=4, output_shape=(3,)), mlp_discriminator(input_shape=(3,))
    with pytest.raises(ValueError, match="needs the ledger"):
        DPGAN(generator, discriminator, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=50,
              expected_batch_size=5, num_examples_source="released")
    ledger = PrivacyLedger()
    ledger.record_release(dp_accounting.GaussianDpEvent(10.0), description="a noisy count of the rows")
    gan = DPGAN(generator, discriminator, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=50,
                expected_batch_size=5, ledger=ledger, num_examples_source="released")
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    gan.fit(np.random.default_rng(0).normal(size=(47, 3)).astype("float32"), epochs=1, verbose=0)
    statement = gan.privacy_statement(delta=1e-5)
    assert statement["num_examples"] == 50 and statement["num_examples_source"] == "released"
    assert "number of examples is private" in statement["guarantee"]


def _gan_after_a_release(release_epsilon):
    from privgan.accounting import PrivacyLedger, calibrate_noise_multiplier
    from privgan.models.architectures import mlp_discriminator, mlp_generator
    from privgan.models.dpgan import DPGAN

    ledger = PrivacyLedger()
    # RDP throughout: PLD takes half a minute to account for a release this close to the budget.
    sigma = calibrate_noise_multiplier(target_epsilon=release_epsilon, delta=1e-5, sampling_probability=1.0, steps=1,
                                       accountant="rdp")
    ledger.record_release(dp_accounting.GaussianDpEvent(sigma), description="an earlier release")
    gan = DPGAN(mlp_generator(latent_dim=4, output_shape=(3,)), mlp_discriminator(input_shape=(3,)), l2_norm_clip=1.0,
                noise_multiplier=None, num_examples=50, expected_batch_size=5, ledger=ledger,
                num_examples_source="released")
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    return gan


def test_a_phase_left_almost_no_budget_warns_that_its_sigma_is_huge(recwarn):
    x = np.random.default_rng(0).normal(size=(50, 3)).astype("float32")
    # The guide's old split: the release calibrated for (nearly) the whole epsilon = 3, the GAN for what is left.
    starved = _gan_after_a_release(2.9987)
    with pytest.warns(UserWarning, match=r"noise_multiplier = \d+(\.\d+)? \(> 10\) for target_epsilon = 3: their "
                      r"updates are mostly noise\. The earlier phases already spend epsilon = 2\.99"):
        starved.fit(x, epochs=1, target_epsilon=3.0, delta=1e-5, accountant="rdp", verbose=0)
    assert starved.dp_config.noise_multiplier > 10
    recwarn.clear()
    # Half of the budget for each phase: the same 10 D steps get a sigma well below 10, and no warning.
    from privgan.accounting.calibration import calibrate_noise_multiplier, warn_if_noise_multiplier_huge

    halved = _gan_after_a_release(1.5).prior_ledger
    sigma = calibrate_noise_multiplier(target_epsilon=3.0, delta=1e-5, sampling_probability=0.1, steps=10,
                                       accountant="rdp", ledger=halved)
    assert sigma < 10
    assert not warn_if_noise_multiplier_huge(sigma, target_epsilon=3.0, delta=1e-5, accountant="rdp", ledger=halved)
    assert not recwarn.list
