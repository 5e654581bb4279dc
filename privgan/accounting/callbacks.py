"""A Keras callback that reports the privacy spent and stops training when the budget is used up.

It works with any model that exposes
  - `privacy_ledger`: a `PrivacyLedger` of all DP-SGD steps taken so far, and
  - `dp_steps_remaining`: the number of DP steps the privacy budget still allows, or None when the
    model has no budget.
"""

import keras
from absl import logging

from privgan.accounting.events import check_accountant, check_delta


class PrivacyCallback(keras.callbacks.Callback):
    """Adds `epsilon` to the epoch logs and stops training once the privacy budget is exhausted.

    Put it before `keras.callbacks.CSVLogger` or `TensorBoard` in the callback list so that they
    see the epsilon; `History` always does.

    Args:
        delta: the delta at which epsilon is reported, in (0, 1).
        accountant: "pld" or "rdp".

    Raises:
        ValueError: if delta or accountant is invalid.
    """

    def __init__(self, *, delta, accountant: str = "pld"):
        super().__init__()
        self.delta = check_delta(delta)
        self.accountant = check_accountant(accountant)
        self._budget_reported = False

    def on_train_begin(self, logs=None):
        self._budget_reported = False
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        remaining = self.model.dp_steps_remaining
        if remaining is None or remaining > 0:
            return
        self.model.stop_training = True
        last_batch = (self._epoch == self.params.get("epochs", 0) - 1 and batch == self.params.get("steps", 0) - 1)
        if not self._budget_reported and not last_batch:  # at the last batch nothing is cut short
            self._budget_reported = True
            ledger = self.model.privacy_ledger
            # A warning, not info: absl hides info outside absl apps, and the user asked for more
            # steps than are being run.
            logging.warning(
                "Privacy budget reached after %d DP steps at epsilon=%.4g (delta=%g, %s accountant); "
                "stopping training.",
                ledger.total_steps,
                ledger.epsilon(delta=self.delta, accountant=self.accountant),
                self.delta,
                self.accountant.upper(),
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epsilon"] = self.model.privacy_ledger.epsilon(
                delta=self.delta, accountant=self.accountant
            )
