"""The `fit` of a model taking Poisson-sampled DP-SGD steps, and its Keras/TensorFlow workarounds.

`PoissonFitting` is the half of `privgan.dp.bookkeeping.DPStepBookkeeping` that runs training: the
refused `fit` arguments, `_fit_on_poisson_batches` (calibration, resuming from a backup, the budget,
the workers' agreement on secrets, the Poisson sampler, then `keras.Model.fit`), the one-line plan it
prints, and the overrides of Keras' private methods that a Poisson-sampled, budgeted step needs under
a distribution strategy (`make_train_function`, `_maybe_symbolic_build`). The privacy state it reads
and updates (step counter, budget, ledger, noise stream) is `DPStepBookkeeping`'s.
"""

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from privgan.accounting import PrivacyCallback
from privgan.dp.backup import DPBackupAndRestore, arrange_beside_backups
from privgan.dp.distribution import agree_across_workers, check_strategy, fingerprint, is_multi_worker, replica_shares
from privgan.dp.noise import secret_int64
from privgan.dp.sampling import poisson_batches


def default_delta(num_examples):
    """The delta at which epsilon is reported when `fit` is given none: 1 / N^1.1, below 1 / N."""
    return float(num_examples) ** -1.1


# What a statement says of batches drawn from an explicit sampling seed. Knowing the seed is worse than
# losing the amplification: under add/remove-one, removing a record moves every later record onto other
# uniforms, so the batches of neighbouring datasets differ in many rows at every step.
FIXED_SAMPLING_SEED = (
    "reproducible from a fixed sampling seed: the guarantee does not hold against anyone who knows that seed "
    "(epsilon assumes that nobody knows which examples each batch held)"
)


class PoissonFitting:
    """`fit` on Poisson samples for a `DPStepBookkeeping` host (a mixin; see the module docstring)."""

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
        accounted = self.private
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
