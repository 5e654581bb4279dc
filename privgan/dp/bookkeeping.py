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
from absl import logging

from privgan.accounting import PrivacyCallback, PrivacyLedger, calibrate_noise_multiplier, max_steps
from privgan.dp.backup import DPBackupAndRestore, arrange_beside_backups
from privgan.dp.distribution import agree_across_workers, check_strategy, fingerprint, is_multi_worker, replica_shares
from privgan.dp.mechanism import replicas_in_sync
from privgan.dp.noise import NoiseStream, secret_int64
from privgan.dp.sampling import poisson_batches


def default_delta(num_examples):
    """The delta at which epsilon is reported when `fit` is given none: 1 / N^1.1, below 1 / N."""
    return float(num_examples) ** -1.1


def float32_at_least(value):
    """The smallest float32 >= `value`.

    A train step computes in float32; rounding sigma down there would add less noise than the
    accountant was told about.
    """
    rounded = np.float32(value)
    if rounded < value:
        rounded = np.nextafter(rounded, np.float32(np.inf))
    return float(rounded)


# What a statement says of batches drawn from an explicit sampling seed. Knowing the seed is worse than
# losing the amplification: under add/remove-one, removing a record moves every later record onto other
# uniforms, so the batches of neighbouring datasets differ in many rows at every step.
FIXED_SAMPLING_SEED = (
    "reproducible from a fixed sampling seed: the guarantee does not hold against anyone who knows that seed "
    "(epsilon assumes that nobody knows which examples each batch held)"
)


class DPStepBookkeeping:
    """Privacy state of a Keras model that takes Poisson-sampled DP-SGD steps (a mixin).

    Holds the step counter and the step limit as int64 variables, and the noise multiplier, clipping
    bound and sampling probability the counted steps were taken with (all saved with the weights, so
    checkpoints carry the accountant's state, and a checkpoint loaded into a model with other privacy
    parameters is refused rather than charged at the wrong ones), builds the `PrivacyLedger` from them,
    and owns the model's `NoiseStream`. The host class sets `dp_config` (a `DPSGDConfig`, with noise
    multiplier 0 while `noise_multiplier_calibrated` is False) and `prior_ledger`, and calls
    `_add_privacy_variables(noise_seed)` in its `__init__`.
    `privgan.dp.DPModel` and `privgan.models.dpgan.DPGAN` share it.
    """

    # DP steps in one Keras train step; a budget only ever allows whole train steps.
    dp_steps_per_train_step = 1
    # `fit` arguments that would change the sampling behind the accountant's back.
    refused_fit_arguments = ("batch_size", "shuffle", "steps_per_epoch", "sample_weight", "class_weight",
                             "validation_split")

    def _refuse_sampling_arguments(self, kwargs):
        refused = sorted(set(kwargs) & set(self.refused_fit_arguments))
        if refused:
            raise ValueError(
                f"{type(self).__name__}.fit does not take {refused}: batches are Poisson-sampled with "
                f"expected size {self.dp_config.expected_batch_size:g}, as the accountant assumes"
            )

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

    def _train_steps_per_call(self):
        """Train steps one call of the train function always takes: steps_per_execution under several
        replicas, 1 on one device (where Keras stops a call early when the sampler runs out)."""
        if self.distribute_strategy.num_replicas_in_sync == 1:
            return 1
        return int(getattr(self, "steps_per_execution", 1) or 1)

    def make_train_function(self, force=False):
        """Keras' train function, except for `steps_per_execution` > 1 under several replicas.

        Keras runs several steps per call in a tf.while_loop whose body holds each step in a tf.cond,
        which fails under a distribution strategy (the cross-replica sums of the optimizer cannot sit
        in a conditional branch: "You must feed a value for placeholder tensor", Keras 3.15 / TF 2.21).
        There the steps are unrolled instead: one call takes exactly `steps_per_execution` train steps,
        and the budget (`_set_budget`) is a whole number of calls, so the sampler never runs out inside
        one. An epoch then has `steps_per_execution` * ceil(steps per epoch / steps_per_execution)
        train steps, as under Keras' own loop.
        """
        steps = self._train_steps_per_call()
        if steps == 1:
            return super().make_train_function(force=force)
        if self.train_function is not None and not force:
            return self.train_function
        strategy = self.distribute_strategy

        @tf.function
        def train_function(iterator):
            for _ in range(steps):
                logs = strategy.run(self.train_step, args=(iterator.get_next(),))
            return tf.nest.map_structure(lambda v: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None), logs)

        self.train_function = train_function
        return train_function

    def _step_logs(self):
        """What a train or test step returns: each metric's result, shaped for Keras under any strategy."""
        logs = {m.name: m.result() for m in self.metrics}
        if is_multi_worker(self.distribute_strategy):
            # Keras 3 averages a multi-worker step's logs with strategy.reduce(MEAN, axis=0), which fails
            # on scalars (tensorflow/tensorflow#72388): give them a length-1 axis to average over.
            logs = tf.nest.map_structure(lambda v: tf.reshape(v, [1]) if v.shape.rank == 0 else v, logs)
        return logs

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds a model made in a strategy's scope from the first batch averaged across replicas
        # (`strategy.reduce`), which fails when the replicas' shares differ in size, as shares of a
        # Poisson batch do. The build reads shapes only, so the first replica's share serves.
        strategy = self.distribute_strategy
        if iterator is not None and data_batch is None and strategy.num_replicas_in_sync > 1:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0], next(batches)
                )
                break
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

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
        self.dp_config = dataclasses.replace(self.dp_config, noise_multiplier=float32_at_least(sigma))
        self.noise_multiplier_calibrated = True
        self.train_function = None  # a step traced before holds the old sigma

    def _fit_on_poisson_batches(
        self, data, *, epochs, target_epsilon, delta, accountant, sampling_seed, callbacks, optimizers,
        group_batches, **kwargs,
    ):
        """What `fit` does once the arguments are checked: sigma, resume, budget, agreement, sampler, Keras fit.

        Without `delta`, epsilon is logged at `default_delta(N)`, and a warning says so.

        Args:
            data: the private arrays, checked.
            epochs, target_epsilon, delta, accountant, sampling_seed, callbacks: as the host's `fit`.
            optimizers: `(optimizer, variables)` pairs; each is built, in the strategy's scope, before
                the first step (its variables cannot be created in the budget guard's tf.cond) and before
                a backup is restored (a backup holds their state).
            group_batches: whether a train step takes a tuple of `dp_steps_per_train_step` batches.
            **kwargs: passed to `keras.Model.fit`.

        Returns:
            The `History` of `keras.Model.fit`.

        Raises:
            NotImplementedError: under a distribution strategy with several replicas other than
                `tf.distribute.MirroredStrategy` and `tf.distribute.MultiWorkerMirroredStrategy`.
            ValueError: if Keras' `BackupAndRestore` is among the callbacks, or the workers of a
                multi-worker strategy disagree on the data, the state or explicit seeds.
        """
        strategy = self.distribute_strategy
        check_strategy(strategy)
        callbacks = list(callbacks or [])
        if any(isinstance(c, keras.callbacks.BackupAndRestore) for c in callbacks):
            raise ValueError(
                "keras.callbacks.BackupAndRestore restores the weights after the Poisson sampler has "
                "started, which would repeat its batches: use privgan.dp.DPBackupAndRestore"
            )
        callbacks = arrange_beside_backups(callbacks)
        _refuse_non_finite(data)
        if target_epsilon is not None and delta is None:
            raise ValueError("target_epsilon needs delta")
        if not self.noise_multiplier_calibrated:
            # Before a backup is restored (its step counter would forbid it): a resumed job calibrates
            # the same sigma as the first, which the backup's saved step parameters then confirm.
            self._calibrate(epochs=epochs, target_epsilon=target_epsilon, delta=delta, accountant=accountant)
        # A host training without DP on request (`private=False`) has nothing to log or budget.
        accounted = getattr(self, "private", True)
        if delta is None and accounted:
            delta = default_delta(self.dp_config.num_examples)
            logging.warning("fit was given no delta: every DP step is charged, and epsilon is logged at "
                            "delta = 1 / N^1.1 = %.3g; pass delta= to choose it.", delta)
        with strategy.scope():
            for optimizer, variables in optimizers:
                if not optimizer.built:
                    optimizer.build(variables)
        initial_epoch = kwargs.pop("initial_epoch", 0)
        for backup in (c for c in callbacks if isinstance(c, DPBackupAndRestore)):
            initial_epoch = max(initial_epoch, backup.restore(self))
        remaining = self._set_budget(target_epsilon=target_epsilon, delta=delta, accountant=accountant)
        if accounted and not any(isinstance(c, PrivacyCallback) for c in callbacks):
            callbacks.insert(0, PrivacyCallback(delta=delta, accountant=accountant))
        if accounted and kwargs.get("verbose", "auto") != 0:
            print(self._training_plan(epochs, remaining, target_epsilon, delta, initial_epoch=initial_epoch))
        parameters = list(self._step_parameters().values())
        self.dp_step_parameters.assign(parameters)
        first_step = self._first_position() + self._steps_taken()
        secrets = {"sampling seed": secret_int64() if sampling_seed is None else sampling_seed}
        if not self.noise_stream.reproducible:
            secrets["noise key"] = secret_int64()
        checks = {}
        if is_multi_worker(strategy):
            checks = {
                "private data": fingerprint(data),
                "DP step position": first_step,
                "privacy parameters and budget": fingerprint(
                    np.array([*parameters, -1 if remaining is None else remaining], np.float64)
                ),
                "explicit seeds": fingerprint(np.frombuffer(repr((sampling_seed, self.noise_seed)).encode(), np.uint8)),
            }
        # The chief's secrets on every worker (over the strategy's collectives, never written anywhere).
        agreed = agree_across_workers(strategy, secrets=secrets, checks=checks)
        if not self.noise_stream.reproducible:
            self.noise_stream.rekey(agreed["noise key"])
        self.sampling_seed_fixed = sampling_seed is not None
        if self.sampling_seed_fixed:
            logging.warning("fit was given sampling_seed=: its Poisson batches are %s.", FIXED_SAMPLING_SEED)
        epochs_to_run = epochs - initial_epoch
        if remaining is not None:
            # Keras restarts a dataset that runs out before the last epoch, which would repeat its
            # batches: ask for no more epochs than the sampler fills (PrivacyCallback stops the last).
            train_steps = remaining // self.dp_steps_per_train_step
            epochs_to_run = min(epochs_to_run, -(-train_steps // self.train_steps_per_epoch))  # rounded up
        # The sampler yields no batch beyond the budget: with several replicas this is the limit (the
        # in-step guard cannot wrap the optimizer's cross-replica sum), on one device a second one.
        dataset = self._sampled_dataset(
            data, steps=remaining, seed=agreed["sampling seed"], first_step=first_step,
            group_size=self.dp_steps_per_train_step if group_batches else None,
        )
        if strategy.num_replicas_in_sync > 1:
            dataset = replica_shares(strategy, dataset)
        return super().fit(  # keras.Model.fit, next in the host class's MRO
            dataset,
            epochs=initial_epoch + max(epochs_to_run, 0),
            initial_epoch=initial_epoch,
            steps_per_epoch=self.train_steps_per_epoch,
            callbacks=callbacks,
            shuffle=False,  # batches are Poisson samples already
            **kwargs,
        )

    def _sampled_dataset(self, data, *, steps, seed, first_step, group_size):
        """The Poisson batches a `fit` trains on (see `privgan.dp.poisson_batches`).

        Hosts that sample several private sets per step override it, giving each its own stream.
        """
        return poisson_batches(
            data, sampling_probability=self.dp_config.sampling_probability, steps=steps, seed=seed,
            first_step=first_step, group_size=group_size,
        )

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

    def _training_plan(self, epochs, remaining, target_epsilon, delta, *, initial_epoch=0):
        """One line saying what `fit` will do: the steps planned, and what the budget allows.

        A fit resumed from a backup at `initial_epoch` plans the epochs from there on.
        """
        planned = self.planned_dp_steps(epochs - initial_epoch)
        per_epoch = self.train_steps_per_epoch * self.dp_steps_per_train_step
        resumed = f", resumed after epoch {initial_epoch}" if initial_epoch else ""
        start = (f"DP training: {planned} DP steps planned ({epochs - initial_epoch} epochs of {per_epoch}"
                 f"{resumed}), noise_multiplier {self.dp_config.noise_multiplier:.4g}")
        if remaining is None:
            return f"{start}; no budget set, epsilon is logged at delta={delta:g} after every epoch."
        budget = f"the budget epsilon={target_epsilon:g} at delta={delta:g} allows {remaining} more"
        if remaining >= planned:
            return f"{start}; {budget}: all planned steps will run."
        return (f"{start}; {budget}: training will stop after {remaining} DP steps, in epoch "
                f"{initial_epoch - (-remaining // per_epoch)} of {epochs}.")

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


def _refuse_non_finite(data):
    """Raises a ValueError naming the first rows of `data` that hold NaN or infinity.

    Inside a step such an example is dropped (clip factor 0), but refusing it here tells the user, and
    a data set with missing values needs a decision (drop, impute by a public rule) that is theirs.
    """
    for index, leaf in enumerate(tf.nest.flatten(data)):
        values = np.asarray(leaf)
        if not np.issubdtype(values.dtype, np.floating):
            continue
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            where = "x" if index == 0 else f"array {index} of the data"
            raise ValueError(
                f"{where} holds NaN or infinity in {len(rows)} rows (first: {', '.join(map(str, rows[:5]))}); "
                "drop or impute them before DP training (imputing with a statistic of the private data "
                "is itself a release that the accountant does not see)"
            )
