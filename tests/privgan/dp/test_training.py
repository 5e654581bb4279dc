"""DPModel: exact equivalence with plain SGD in the degenerate case, accounting, budget, checkpoints."""

import keras
import numpy as np
import pytest

from privgan.accounting import PrivacyLedger, epsilon, max_steps
from privgan.dp import make_private

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 5)).astype("float32")
Y = RNG.integers(0, 3, 40)
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
# RDP is ~10x faster than PLD here; which accountant is used is not what these tests check.
ACCOUNTANT = "rdp"


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(3)])


def _private(model=None, **overrides):
    kwargs = dict(l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=len(X), expected_batch_size=8)
    kwargs.update(overrides)
    dp_model = make_private(model or _mlp(), **kwargs)
    dp_model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS, metrics=["accuracy"])
    return dp_model


def test_without_noise_clipping_or_sampling_one_dp_step_is_one_plain_sgd_step():
    plain = _mlp(seed=3)
    plain.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS)
    plain.fit(X, Y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    dp_model = _private(_mlp(seed=3), l2_norm_clip=1e6, noise_multiplier=0.0, expected_batch_size=len(X))
    dp_model.fit(X, Y, epochs=1, verbose=0)  # q = 1: every example in the one step of the epoch
    for got, want in zip(dp_model.model.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_every_step_is_charged_and_epsilon_is_logged():
    dp_model = _private()
    history = dp_model.fit(X, Y, epochs=2, delta=1e-5, accountant=ACCOUNTANT, verbose=0)
    steps = 2 * dp_model.dp_config.steps_per_epoch
    assert dp_model.privacy_ledger.total_steps == steps == 10
    expected = epsilon(noise_multiplier=1.0, sampling_probability=8 / 40, steps=steps, delta=1e-5,
                       accountant=ACCOUNTANT)
    assert dp_model.privacy_spent(delta=1e-5, accountant=ACCOUNTANT) == pytest.approx(expected)
    assert history.history["epsilon"][-1] == pytest.approx(expected)
    assert history.history["epsilon"][0] < history.history["epsilon"][1]


def test_target_epsilon_stops_at_the_last_step_within_budget():
    dp_model = _private(noise_multiplier=2.0, expected_batch_size=4)
    budget = max_steps(target_epsilon=1.0, delta=1e-5, noise_multiplier=2.0, sampling_probability=0.1,
                       accountant=ACCOUNTANT)
    epochs = 3
    assert 0 < budget < epochs * dp_model.dp_config.steps_per_epoch  # the budget ends inside an epoch
    assert budget % dp_model.dp_config.steps_per_epoch != 0
    dp_model.fit(X, Y, epochs=epochs, target_epsilon=1.0, delta=1e-5, accountant=ACCOUNTANT, verbose=0)
    assert dp_model.privacy_ledger.total_steps == budget
    assert dp_model.privacy_spent(delta=1e-5, accountant=ACCOUNTANT) <= 1.0
    with pytest.raises(ValueError, match="already spent"):
        dp_model.fit(X, Y, epochs=1, target_epsilon=1.0, delta=1e-5, accountant=ACCOUNTANT, verbose=0)


def test_the_step_limit_holds_inside_the_train_step_even_without_the_callback():
    dp_model = _private()
    dp_model.fit(X, Y, epochs=1, verbose=0)
    dp_model.dp_step_limit.assign(7)
    weights = dp_model.model.get_weights()
    # Plain keras fit machinery, no PrivacyCallback: the guard alone must stop the updates.
    super(type(dp_model), dp_model).fit(X, Y, batch_size=8, epochs=3, verbose=0)
    assert int(dp_model.dp_steps.numpy()) == 7
    dp_model.dp_step_limit.assign(int(dp_model.dp_steps.numpy()))
    before = dp_model.model.get_weights()
    super(type(dp_model), dp_model).fit(X, Y, batch_size=8, epochs=1, verbose=0)
    for got, want in zip(dp_model.model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights))


def test_earlier_phases_compose():
    first = _private(noise_multiplier=2.0)
    first.fit(X, Y, epochs=1, verbose=0)
    second = _private(first.model, noise_multiplier=1.0, expected_batch_size=4, ledger=first.privacy_ledger)
    second.fit(X, Y, epochs=1, verbose=0)
    phases = second.privacy_ledger.phases
    assert [(p.noise_multiplier, p.sampling_probability, p.steps) for p in phases] == [(2.0, 0.2, 5), (1.0, 0.1, 10)]
    assert second.privacy_spent(delta=1e-5, accountant=ACCOUNTANT) > first.privacy_spent(
        delta=1e-5, accountant=ACCOUNTANT
    )


def test_save_and_load_keep_the_accountant_state(tmp_path):
    earlier = PrivacyLedger()
    earlier.record(noise_multiplier=3.0, sampling_probability=0.5, steps=2)
    dp_model = _private(ledger=earlier)
    dp_model.fit(X, Y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    dp_model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.privacy_ledger == dp_model.privacy_ledger
    assert loaded.privacy_ledger.total_steps == 2 + dp_model.dp_config.steps_per_epoch
    assert loaded.privacy_spent(delta=1e-5, accountant=ACCOUNTANT) == dp_model.privacy_spent(
        delta=1e-5, accountant=ACCOUNTANT
    )
    np.testing.assert_allclose(loaded.predict(X, verbose=0), dp_model.predict(X, verbose=0), rtol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [(lambda m: m.fit(X, Y, batch_size=8), "does not take \\['batch_size'\\]"),
     (lambda m: m.fit(X[:-1], Y[:-1]), "x has 39 rows but the model was made private for num_examples=40"),
     (lambda m: m.fit(X, Y, target_epsilon=1.0), "target_epsilon needs delta"),
     (lambda m: m.fit(X, Y, epochs=0), "epochs must be an integer >= 1"),
     # The budget arguments are checked as DPGAN's are (check_budget), before any step reads the data.
     (lambda m: m.fit(X, Y, epochs=1.5), "epochs must be an integer >= 1, got 1.5"),
     (lambda m: m.fit(X, Y, delta=1.5), "delta must be in \\(0, 1\\), got 1.5"),
     (lambda m: m.fit(X, Y, delta=1e-5, accountant="moments"), "accountant must be one of"),
     (lambda m: m.fit(X, Y, target_epsilon=-1.0, delta=1e-5), "target_epsilon must be a finite number > 0")],
)
def test_fit_refuses_what_would_break_the_accounting(call, message):
    model = _private()
    with pytest.raises(ValueError, match=message):
        call(model)
    assert model.privacy_ledger.total_steps == 0


@pytest.mark.parametrize(
    "overrides, message",
    [({"l2_norm_clip": 0.0}, "l2_norm_clip must be"), ({"noise_multiplier": -1.0}, "noise_multiplier must be"),
     ({"expected_batch_size": 41}, "expected_batch_size must be in \\(0, num_examples=40\\]"),
     ({"num_examples": 0}, "num_examples must be")],
)
def test_bad_privacy_parameters(overrides, message):
    with pytest.raises(ValueError, match=message):
        _private(**overrides)


# A killed job's steps after its last backup must release nothing: no writers between backups.

@pytest.mark.parametrize("writer", [
    lambda tmp: keras.callbacks.ModelCheckpoint(str(tmp / "ckpt.weights.h5"), save_weights_only=True, save_freq=2),
    lambda tmp: keras.callbacks.TensorBoard(str(tmp / "tb"), update_freq="batch"),
], ids=["checkpoint_in_batches", "tensorboard_in_batches"])
def test_a_backup_refuses_callbacks_that_write_between_backups(tmp_path, writer):
    from privgan.dp import DPBackupAndRestore

    dp_model = _private()
    with pytest.raises(ValueError, match="between backups"):
        dp_model.fit(X, Y, epochs=2, verbose=0, accountant=ACCOUNTANT,
                     callbacks=[writer(tmp_path), DPBackupAndRestore(tmp_path / "backup")])
    assert dp_model._steps_taken() == 0 and not (tmp_path / "backup").exists()


def test_epoch_end_writers_run_after_the_backup_of_that_epoch(tmp_path):
    from privgan.dp import DPBackupAndRestore

    backup = DPBackupAndRestore(tmp_path / "backup", delete_on_success=False)
    seen = []
    # Listed before the backup, it still runs after it: what it writes describes a backed-up state.
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        [next_epoch for next_epoch, _ in backup.backups()]))
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.weights.h5"), save_weights_only=True)
    _private().fit(X, Y, epochs=2, verbose=0, accountant=ACCOUNTANT, callbacks=[probe, checkpoint, backup])
    assert seen == [[1], [2]]
