"""The privacy state that a Keras model taking DP-SGD steps carries: step counter, budget, ledger."""

import keras
import numpy as np
import tensorflow as tf

from privgan.accounting import PrivacyLedger, max_steps


def float32_at_least(value):
    """The smallest float32 >= `value`.

    A train step computes in float32; rounding sigma down there would add less noise than the
    accountant was told about.
    """
    rounded = np.float32(value)
    if rounded < value:
        rounded = np.nextafter(rounded, np.float32(np.inf))
    return float(rounded)


class DPStepBookkeeping:
    """Privacy state of a Keras model that takes Poisson-sampled DP-SGD steps (a mixin).

    Holds the step counter and the step limit as int64 variables (saved with the weights, so checkpoints
    carry the accountant's state) and builds the `PrivacyLedger` from them. The host class sets
    `dp_config` (a `DPSGDConfig`) and `prior_ledger`, and calls `_add_privacy_variables()` in its
    `__init__`. `privgan.dp.DPModel` and `privgan.models.dpgan.DPGAN` share it.
    """

    def _add_privacy_variables(self):
        # Under a distribution strategy every replica runs the train step; the count must rise once.
        self.dp_steps = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False, name="dp_steps",
            aggregation="only_first_replica",
        )
        # -1 means no budget; otherwise the train step takes no DP step once dp_steps reaches it.
        self.dp_step_limit = self.add_weight(
            shape=(), dtype="int64", initializer=keras.initializers.Constant(-1), trainable=False,
            name="dp_step_limit",
        )

    def _within_budget(self):
        return tf.logical_or(self.dp_step_limit < 0, self.dp_steps < self.dp_step_limit)

    @property
    def privacy_ledger(self):
        """A `PrivacyLedger` of every DP step taken on the private data (earlier phases included)."""
        ledger = PrivacyLedger(self.prior_ledger.phases)
        steps = int(keras.ops.convert_to_numpy(self.dp_steps))
        if steps:
            ledger.record(
                noise_multiplier=self.dp_config.noise_multiplier,
                sampling_probability=self.dp_config.sampling_probability,
                steps=steps,
            )
        return ledger

    @property
    def dp_steps_remaining(self):
        """DP steps left under the budget of the current `fit`, or None when it has no budget."""
        limit = int(keras.ops.convert_to_numpy(self.dp_step_limit))
        if limit < 0:
            return None
        return max(0, limit - int(keras.ops.convert_to_numpy(self.dp_steps)))

    def privacy_spent(self, *, delta, accountant="pld"):
        """The epsilon spent so far at `delta` (see `PrivacyLedger.epsilon`)."""
        return self.privacy_ledger.epsilon(delta=delta, accountant=accountant)

    def _set_budget(self, *, target_epsilon, delta, accountant):
        """Sets the step limit for `target_epsilon` (None: no limit).

        Returns:
            The number of DP steps the budget still allows, or None without a budget.

        Raises:
            ValueError: if the budget is already spent.
        """
        if target_epsilon is None:
            self.dp_step_limit.assign(-1)
            return None
        remaining = max_steps(
            target_epsilon=target_epsilon,
            delta=delta,
            noise_multiplier=self.dp_config.noise_multiplier,
            sampling_probability=self.dp_config.sampling_probability,
            accountant=accountant,
            ledger=self.privacy_ledger,
        )
        if remaining == 0:
            raise ValueError(
                f"the privacy budget epsilon={target_epsilon} at delta={delta} is already spent "
                f"({self.privacy_ledger.total_steps} DP steps taken)"
            )
        self.dp_step_limit.assign(int(keras.ops.convert_to_numpy(self.dp_steps)) + remaining)
        return remaining
