"""The privacy state that a Keras model taking DP-SGD steps carries: step counter, budget, ledger, noise.

The model's DP steps are numbered globally: a model that continues an earlier phase (`ledger=`) starts
after that ledger's steps and releases (`PrivacyLedger.mechanism_runs`), and a model restored from a
checkpoint continues from its saved step counter. That global step is the position of each step's
Poisson sample and of its noise draw, so neither ever repeats an earlier one.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from privgan.accounting import PrivacyLedger, calibrate_noise_multiplier, max_steps
from privgan.accounting.calibration import warn_if_noise_multiplier_huge
from privgan.dp.fitting import FIXED_SAMPLING_SEED, PoissonFitting, _refuse_non_finite, default_delta
from privgan.dp.mechanism import replicas_in_sync
from privgan.dp.noise import NoiseStream

# Defined with the fit flow, importable from here as before.
__all__ = ["DPStepBookkeeping", "FIXED_SAMPLING_SEED", "PoissonFitting", "default_delta", "float32_at_least",
           "_refuse_non_finite"]


def float32_at_least(value):
    """The smallest float32 >= `value`.

    A train step computes in float32; rounding sigma down there would add less noise than the
    accountant was told about.
    """
    rounded = np.float32(value)
    if rounded < value:
        rounded = np.nextafter(rounded, np.float32(np.inf))
    return float(rounded)


class DPStepBookkeeping(PoissonFitting):
    """Privacy state of a Keras model that takes Poisson-sampled DP-SGD steps (a mixin).

    Holds the step counter and the step limit as int64 variables, and the noise multiplier, clipping
    bound and sampling probability the counted steps were taken with (all saved with the weights, so
    checkpoints carry the accountant's state, and a checkpoint loaded into a model with other privacy
    parameters is refused rather than charged at the wrong ones), builds the `PrivacyLedger` from them,
    and owns the model's `NoiseStream`. The host class sets `dp_config` (a `DPSGDConfig`, with noise
    multiplier 0 while `noise_multiplier_calibrated` is False) and `prior_ledger`, and calls
    `_add_privacy_variables(noise_seed)` in its `__init__`.
    `privgan.dp.DPModel`, `privgan.models.dpgan.DPGAN` and `privgan.models.ssgan.SemiSupervisedGAN`
    share it. Its `fit` flow (`_fit_on_poisson_batches`) is the `PoissonFitting` half, in `privgan.dp.fitting`.
    """

    # DP steps in one Keras train step; a budget only ever allows whole train steps.
    dp_steps_per_train_step = 1
    # Whether the steps are DP steps to account for; a host that can train without DP on request
    # (`private=False`) sets it False: `fit` then has nothing to log or budget.
    private = True

    def _add_privacy_variables(self, noise_seed):
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
        # The parameters the counted steps were taken with (`_step_parameters`: noise_multiplier,
        # l2_norm_clip, sampling_probability, and more for hosts with several private streams).
        self.dp_step_parameters = self.add_weight(
            shape=(len(self._step_parameters()),), dtype="float64", initializer="zeros", trainable=False,
            name="dp_step_parameters",
        )
        self.noise_seed = noise_seed
        self.noise_stream = NoiseStream(seed=noise_seed, position=self._global_dp_step)
        self.sampling_seed_fixed = None  # set by `fit`: whether its Poisson batches are reproducible

    def _first_position(self):
        """The global position of this model's first DP step: after the prior ledger's steps and releases.

        Hosts whose positions are also used by other mechanisms of theirs (another phase they run
        themselves) override it to start after those too.
        """
        return self.prior_ledger.mechanism_runs

    def _global_dp_step(self):
        """The position of the next DP step: earlier phases' steps and releases, then this model's."""
        return tf.convert_to_tensor(self.dp_steps) + self._first_position()

    def _steps_taken(self):
        """DP steps this model has taken (its counter, not earlier phases in `prior_ledger`)."""
        return int(keras.ops.convert_to_numpy(self.dp_steps))

    def randomness_policy(self):
        """How the noise and the Poisson sampling were seeded, for privacy statements.

        Returns:
            A dict with `noise_seeding` and `sampling_seeding` texts.
        """
        fixed = self.sampling_seed_fixed
        if fixed is None:
            sampling = "not recorded (no fit since this model was built or loaded)"
        elif fixed:
            sampling = FIXED_SAMPLING_SEED
        else:
            sampling = "secret: 64 bits of operating-system entropy"
        return {"noise_seeding": self.noise_stream.describe(), "sampling_seeding": sampling}

    def _step_parameters(self):
        """The privacy parameters of this model's steps, by name (in a fixed order), as saved with it."""
        config = self.dp_config
        return {
            "noise_multiplier": config.noise_multiplier,
            "l2_norm_clip": config.l2_norm_clip,
            "sampling_probability": config.sampling_probability,
        }

    def load_own_variables(self, store):
        """Loads the saved privacy state, refusing one whose steps were taken with other parameters.

        Raises:
            ValueError: if the loaded steps were taken with another noise multiplier, clipping bound or
                sampling probability than this model's: the ledger would charge them at this model's.
        """
        super().load_own_variables(store)
        steps = self._steps_taken()
        saved = keras.ops.convert_to_numpy(self.dp_step_parameters)
        current = self._step_parameters()
        if steps and not np.allclose(saved, list(current.values()), rtol=1e-12, atol=0.0):

            def listed(values):
                return ", ".join(f"{name}={float(value):.9g}" for name, value in zip(current, values))

            raise ValueError(
                f"the loaded weights record {steps} DP steps taken with {listed(saved)}, but this model has "
                f"{listed(current.values())}: its ledger would charge those steps at the wrong values. "
                "Build the model with the checkpoint's parameters, or train a new phase with "
                "ledger=<the checkpoint's ledger>."
            )

    def _within_budget(self):
        return tf.logical_or(self.dp_step_limit < 0, self.dp_steps < self.dp_step_limit)

    def _take_dp_step(self, step):
        """Runs `step` (a function taking one DP step) and counts it, unless the budget is spent.

        On one device the budget check is part of the compiled step (a tf.cond). Under several replicas
        a cond cannot hold the optimizer's cross-replica sum, so there the limit is the host's `fit`,
        whose Poisson sampler yields no batch beyond the budget.
        """

        def counted():
            step()
            self.dp_steps.assign_add(1)
            return tf.constant(True)

        if replicas_in_sync() > 1:
            counted()
        else:
            tf.cond(self._within_budget(), counted, lambda: tf.constant(False))

    @property
    def privacy_ledger(self):
        """A `PrivacyLedger` of every DP step taken on the private data (earlier phases included)."""
        ledger = PrivacyLedger(self.prior_ledger.phases)
        steps = self._steps_taken()
        if steps:
            ledger.record(
                noise_multiplier=self.dp_config.noise_multiplier,
                sampling_probability=self.dp_config.sampling_probability,
                steps=steps,
            )
        return ledger

    @property
    def train_steps_per_epoch(self):
        """Keras train steps per epoch: round(N / expected_batch_size) DP steps, in whole train steps.

        Under several replicas, in whole calls of the train function too (`steps_per_execution` train
        steps each, see `make_train_function`), so that the planned steps are the steps taken.
        """
        per_call = self._train_steps_per_call()
        train_steps = -(-self.dp_config.steps_per_epoch // self.dp_steps_per_train_step)
        return -(-train_steps // per_call) * per_call

    def planned_dp_steps(self, epochs):
        """The DP steps `fit(epochs=epochs)` takes when no budget stops it earlier."""
        return epochs * self.train_steps_per_epoch * self.dp_steps_per_train_step

    def _calibrate(self, *, epochs, target_epsilon, delta, accountant):
        """Sets sigma so that the DP steps `fit(epochs=epochs)` plans spend exactly `target_epsilon`.

        After a prior ledger (earlier phases, e.g. a DP-MERF release that warm-started a generator), sigma
        spends what those phases left of `target_epsilon`.

        Raises:
            ValueError: without a budget, after this model's own first DP step, or when the prior ledger
                leaves no budget.
        """
        if target_epsilon is None:
            raise ValueError("noise_multiplier=None is calibrated in fit, which then needs target_epsilon and delta")
        if self._steps_taken():
            raise ValueError("noise_multiplier can only be calibrated before this model's first DP step")
        sigma = calibrate_noise_multiplier(
            target_epsilon=target_epsilon,
            delta=delta,
            sampling_probability=self.dp_config.sampling_probability,
            steps=self.planned_dp_steps(epochs),
            accountant=accountant,
            ledger=self.prior_ledger,
        )
        warn_if_noise_multiplier_huge(sigma, target_epsilon=target_epsilon, delta=delta, accountant=accountant,
                                      ledger=self.prior_ledger, what=f"the {self.planned_dp_steps(epochs)} DP steps")
        self.dp_config = dataclasses.replace(self.dp_config, noise_multiplier=float32_at_least(sigma))
        self.noise_multiplier_calibrated = True
        self.train_function = None  # a step traced before holds the old sigma

    def _max_further_steps(self, *, target_epsilon, delta, accountant):
        """How many more DP steps keep the whole ledger within `target_epsilon` (see `max_steps`)."""
        return max_steps(
            target_epsilon=target_epsilon,
            delta=delta,
            noise_multiplier=self.dp_config.noise_multiplier,
            sampling_probability=self.dp_config.sampling_probability,
            accountant=accountant,
            ledger=self.privacy_ledger,
        )

    @property
    def dp_steps_remaining(self):
        """DP steps left under the budget of the current `fit`, or None when it has no budget."""
        limit = int(keras.ops.convert_to_numpy(self.dp_step_limit))
        if limit < 0:
            return None
        return max(0, limit - self._steps_taken())

    def privacy_spent(self, *, delta, accountant="pld"):
        """The epsilon spent so far at `delta` (see `PrivacyLedger.epsilon`)."""
        return self.privacy_ledger.epsilon(delta=delta, accountant=accountant)

    def _set_budget(self, *, target_epsilon, delta, accountant):
        """Sets the step limit for `target_epsilon` (None: no limit), a whole number of train steps away.

        Returns:
            The number of DP steps the budget still allows, or None without a budget.

        Raises:
            ValueError: if the budget is already spent.
        """
        if target_epsilon is None:
            self.dp_step_limit.assign(-1)
            return None
        remaining = self._max_further_steps(target_epsilon=target_epsilon, delta=delta, accountant=accountant)
        # The sampler yields whole train steps only; a limit between two would never be reached, and
        # `PrivacyCallback`, which stops `fit` at the limit, would let Keras restart the exhausted
        # sampler, i.e. repeat its batches.
        # Under several replicas a call of the train function takes steps_per_execution train steps
        # whatever the sampler holds (see `make_train_function`), so the limit is a whole number of calls.
        per_call = self.dp_steps_per_train_step * self._train_steps_per_call()
        remaining -= remaining % per_call
        if remaining == 0:
            raise ValueError(
                f"the privacy budget epsilon={target_epsilon} at delta={delta} is already spent "
                f"({self.privacy_ledger.total_steps} DP steps taken; a call of the train function takes "
                f"{per_call})"
            )
        self.dp_step_limit.assign(self._steps_taken() + remaining)
        return remaining
