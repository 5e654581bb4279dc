import keras
import numpy as np
import pytest

from privgan.robustness import TRADES, FastFGSMTraining, PGDAdversarialTraining


def _data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(64, 6)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    return x, y


def _classifier():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])


@pytest.mark.parametrize("make", [
    lambda m: PGDAdversarialTraining(m, epsilon=0.1, steps=3, seed=0),
    lambda m: FastFGSMTraining(m, epsilon=0.1, seed=0, epsilon_warmup_steps=2),
    lambda m: TRADES(m, epsilon=0.1, beta=2.0, steps=3, seed=0),
])
def test_adversarial_training_models_train_and_round_trip(make, tmp_path):
    x, y = _data()
    trainer = make(_classifier())
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [w.copy() for w in trainer.model.get_weights()]
    history = trainer.fit(x, y, epochs=1, batch_size=64, verbose=0).history
    assert {"loss", "clean_accuracy", "adversarial_accuracy"} <= set(history)
    assert np.isfinite(history["loss"]).all()
    assert any(not np.allclose(a, b) for a, b in zip(before, trainer.model.get_weights()))
    path = tmp_path / "trainer.keras"
    trainer.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(trainer) and restored.epsilon == trainer.epsilon
    np.testing.assert_allclose(restored.predict(x, verbose=0), trainer.predict(x, verbose=0), atol=1e-6)


def test_training_examples_stay_in_the_ball_and_the_range():
    x, y = _data()
    trainer = PGDAdversarialTraining(_classifier(), epsilon=0.2, steps=5, seed=0)
    trainer.compile()
    x_adv = np.asarray(trainer.adversarial_examples(x, y))
    assert set(trainer.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "clean_accuracy"}
    assert np.abs(x_adv - x).max() <= 0.2 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - x).max() > 0.1  # it moved


def test_epsilon_warm_up_ramps_linearly():
    trainer = FastFGSMTraining(_classifier(), epsilon=0.3, epsilon_warmup_steps=10)
    trainer.compile(optimizer="sgd")
    trainer.optimizer.build(trainer.model.trainable_variables)
    assert float(trainer.current_epsilon()) == pytest.approx(0.03)
    trainer.optimizer.iterations.assign(20)
    assert float(trainer.current_epsilon()) == pytest.approx(0.3)


def test_trades_with_beta_zero_is_clean_training_loss():
    x, y = _data()
    trainer = TRADES(_classifier(), epsilon=0.1, beta=0.0, steps=2, seed=0)
    loss, _ = trainer._loss(x, x + 0.05, y)
    logits = trainer.model(x)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="epsilon"):
        PGDAdversarialTraining(_classifier(), epsilon=-1.0)
    with pytest.raises(ValueError, match="beta"):
        TRADES(_classifier(), epsilon=0.1, beta=-1.0)
    with pytest.raises(ValueError, match="L-inf"):
        FastFGSMTraining(_classifier(), epsilon=0.1, norm="l2")
    with pytest.raises(ValueError, match="loss"):
        PGDAdversarialTraining(_classifier(), epsilon=0.1).compile(loss="mse")
