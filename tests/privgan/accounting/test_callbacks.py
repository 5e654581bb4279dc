import logging

import keras
import numpy as np
import pytest

from privgan.accounting import DpSgdPhase, PrivacyCallback, PrivacyLedger, max_steps

NOISE_MULTIPLIER = 2.0
SAMPLING_PROBABILITY = 0.05


class FakeDpModel(keras.Model):
    """Counts one DP step per batch and exposes the privacy protocol PrivacyCallback relies on."""

    def __init__(self, budget_steps=None):
        super().__init__()
        self.budget_steps = budget_steps
        self.dp_steps = 0

    def train_step(self, data):
        self.dp_steps += 1
        return {"dp_steps": self.dp_steps}

    @property
    def privacy_ledger(self):
        if self.dp_steps == 0:
            return PrivacyLedger()
        return PrivacyLedger([DpSgdPhase(NOISE_MULTIPLIER, SAMPLING_PROBABILITY, self.dp_steps)])

    @property
    def dp_steps_remaining(self):
        return None if self.budget_steps is None else max(self.budget_steps - self.dp_steps, 0)


def _fit(model, callback, *, epochs, batches_per_epoch=4):
    model.compile(run_eagerly=True)  # a Python step counter needs eager steps
    x = np.zeros((batches_per_epoch, 1), dtype="float32")
    return model.fit(x, batch_size=1, epochs=epochs, callbacks=[callback], verbose=0)


def test_epsilon_is_logged_at_every_epoch():
    history = _fit(FakeDpModel(), PrivacyCallback(delta=1e-5, accountant="rdp"), epochs=3)
    expected = [
        PrivacyLedger([DpSgdPhase(NOISE_MULTIPLIER, SAMPLING_PROBABILITY, 4 * epoch)]).epsilon(
            delta=1e-5, accountant="rdp"
        )
        for epoch in (1, 2, 3)
    ]
    assert history.history["epsilon"] == pytest.approx(expected)
    assert expected[0] < expected[1] < expected[2]


def test_training_stops_when_the_budget_is_spent(caplog):
    budget = max_steps(
        target_epsilon=0.5,
        delta=1e-5,
        noise_multiplier=NOISE_MULTIPLIER,
        sampling_probability=SAMPLING_PROBABILITY,
        accountant="rdp",
    )
    assert 0 < budget < 40
    model = FakeDpModel(budget_steps=budget)
    with caplog.at_level(logging.WARNING, logger="absl"):
        history = _fit(model, PrivacyCallback(delta=1e-5, accountant="rdp"), epochs=100, batches_per_epoch=4)
    assert model.dp_steps == budget
    assert len(history.history["epsilon"]) == -(-budget // 4)  # stopped in the epoch that spent it
    assert history.history["epsilon"][-1] <= 0.5
    messages = [record.getMessage() for record in caplog.records if "budget reached" in record.getMessage()]
    assert len(messages) == 1
    assert f"after {budget} DP steps at epsilon=" in messages[0]


def test_model_without_budget_trains_to_the_end():
    model = FakeDpModel(budget_steps=None)
    _fit(model, PrivacyCallback(delta=1e-5, accountant="rdp"), epochs=2)
    assert model.dp_steps == 8


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
        PrivacyCallback(delta=0)
    with pytest.raises(ValueError, match="accountant must be one of"):
        PrivacyCallback(delta=1e-5, accountant="moments")
