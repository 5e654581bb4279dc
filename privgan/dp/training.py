"""DP-SGD training of ordinary supervised Keras models through `fit`.

`make_private(model, ...)` wraps a built Keras model in a `DPModel`. Its `fit` takes the private arrays,
samples Poisson batches itself (so the sampling is the one the accountant assumes), runs one DP-SGD
step per batch with any Keras optimizer, counts DP steps in a variable that is saved with the model,
and can stop at a target epsilon: the step limit is enforced inside the compiled train step, so no
callback ordering or `steps_per_execution` setting can overspend the budget.

The DP noise is secret by default (`privgan.dp.noise`): 64 bits of operating-system entropy that no
global seed reaches, redrawn at every `fit`. `noise_seed=` makes it reproducible, for research only.
Weight regularisers are applied after the noise (they read no data); losses computed from the inputs
(activity regularisers, `add_loss`) are refused (`privgan.dp.regularization`).

Metrics that `fit` reports on training batches (loss, accuracy) are computed on private data without
noise: they are for monitoring only and are not covered by the privacy guarantee. Do not publish them
or use them for early stopping or model selection.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from privgan.accounting import PrivacyLedger
from privgan.accounting.events import check_budget, check_count
from privgan.dp.bookkeeping import DPStepBookkeeping, float32_at_least
from privgan.dp.config import DPSGDConfig
from privgan.dp.mechanism import private_gradients
from privgan.dp.regularization import refuse_data_dependent_losses, weight_penalty_gradients
from privgan.dp.validation import check_private_model


def per_example_loss_function(loss):
    """Turns a Keras loss (name, function or `keras.losses.Loss`) into a per-example loss.

    Args:
        loss: anything `keras.losses.get` accepts.

    Returns:
        A function `(y_true, y_pred) -> (batch_size,)`; losses with extra axes (per pixel, per time
        step) are averaged over them, so each example keeps one loss.

    Raises:
        ValueError: if `loss` is None.
    """
    if loss is None:
        raise ValueError("loss is required for DP training (a Keras loss name, function or Loss object)")
    loss = keras.losses.get(loss)
    # A Loss object's `call` returns the unreduced values; its `__call__` would average over the batch.
    function = loss.call if isinstance(loss, keras.losses.Loss) else loss

    def per_example(y_true, y_pred):
        values = function(y_true, y_pred)
        rank = values.shape.rank
        if rank is not None and rank > 1:
            values = tf.reduce_mean(values, axis=list(range(1, rank)))
        return values

    return per_example


@keras.saving.register_keras_serializable(package="privgan")
class DPModel(DPStepBookkeeping, keras.Model):
    """A supervised Keras model trained with DP-SGD on Poisson-sampled batches.

    Args:
        model: the built Keras model to train privately (all its trainable variables are private).
        l2_norm_clip: clipping bound C, > 0.
        noise_multiplier: sigma >= 0, or None to calibrate it in `fit` from the target epsilon and the
            planned number of steps.
        num_examples: N, the size of the private training set `fit` will receive.
        expected_batch_size: q * N, the mean Poisson batch size.
        noise_seed: None (secret noise, the default) or an integer that makes the noise reproducible,
            for research only: the guarantee then does not hold against anyone who knows it.
        ledger: a `PrivacyLedger` of earlier training of the same data (another phase), composed with
            this model's steps; this model's steps, samples and noise continue after it.
        **kwargs: passed to `keras.Model`.

    Raises:
        ValueError: if a parameter is out of range or `model` is not built.
        NonPrivateLayerError: if `model` has a layer that mixes examples (BatchNormalization).
    """

    def __init__(
        self,
        model,
        *,
        l2_norm_clip,
        noise_multiplier,
        num_examples,
        expected_batch_size,
        noise_seed=None,
        ledger=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Validated with sigma 0 when sigma is still to be calibrated; no DP step runs before `fit` sets it.
        self.dp_config = DPSGDConfig(
            l2_norm_clip=float(l2_norm_clip),
            noise_multiplier=0.0 if noise_multiplier is None else float32_at_least(float(noise_multiplier)),
            num_examples=int(num_examples),
            expected_batch_size=float(expected_batch_size),
        )
        self.noise_multiplier_calibrated = noise_multiplier is not None
        if not model.built:
            raise ValueError(
                f"model {model.name!r} is not built: give it an input shape (keras.Input(...) first in a "
                "Sequential, or call model.build(input_shape)) before make_private"
            )
        check_private_model(model)
        self.model = model
        self.prior_ledger = ledger if ledger is not None else PrivacyLedger()
        self._add_privacy_variables(noise_seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._per_example_loss = None
        self._compile_arguments = None
        self.built = True  # the wrapped model is built, and the privacy variables exist

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configures training like `keras.Model.compile`; `loss` is evaluated per example.

        Args:
            optimizer: any Keras optimizer (or its name).
            loss: a Keras loss (name, function or `keras.losses.Loss`), required.
            metrics: Keras metrics, computed on the training batches (not private, see module doc).
            **kwargs: passed to `keras.Model.compile`, except `loss_weights`.

        Raises:
            ValueError: if `loss` is missing or `loss_weights` is given.
        """
        if "loss_weights" in kwargs:
            raise ValueError("loss_weights is not supported by DPModel: weight inside the loss instead")
        self._per_example_loss = per_example_loss_function(loss)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self._compile_arguments = {"optimizer": self.optimizer, "loss": loss, "metrics": metrics, **kwargs}

    def get_compile_config(self):
        """The `compile` arguments, saved with the model so that `load_model` returns it ready to fit."""
        if self._compile_arguments is None:
            return None
        return keras.saving.serialize_keras_object(self._compile_arguments)

    def compile_from_config(self, config):
        """Compiles a loaded model as it was saved, and builds the optimizer so its state can be restored.

        A loss or metric that Keras cannot find (a function neither registered nor passed in
        `custom_objects`) leaves the model uncompiled, with a warning: compile it again before `fit`.
        """
        try:
            arguments = keras.saving.deserialize_keras_object(config)
        except (TypeError, ValueError) as error:
            warnings.warn(f"the model was loaded without its compile configuration ({error}); call compile() "
                          "before fit or evaluate", stacklevel=2)
            return
        self.compile(**arguments)
        self.optimizer.build(self.model.trainable_variables)

    def _forward_losses(self, batch, training):
        x, y = batch
        y_pred = self.model(x, training=training)
        refuse_data_dependent_losses(self.model)
        return self._per_example_loss(y, y_pred), y_pred

    def _update_metrics(self, x, y, y_pred, losses):
        self.loss_tracker.update_state(losses)
        self.compute_metrics(x, y, y_pred)

    def train_step(self, data):
        x, y = _unpack(data)
        config = self.dp_config
        variables = self.model.trainable_variables

        def losses_and_outputs(batch):
            losses, y_pred = self._forward_losses(batch, training=True)
            return losses, (losses, y_pred)

        def dp_step():
            gradients, (losses, y_pred) = private_gradients(
                losses_and_outputs,
                variables,
                (x, y),
                l2_norm_clip=config.l2_norm_clip,
                noise_multiplier=config.noise_multiplier,
                expected_batch_size=config.expected_batch_size,
                noise=self.noise_stream,
                has_aux=True,
            )
            penalty = weight_penalty_gradients(self.model, variables)
            if penalty is not None:  # reads no data: added after the noise, as post-processing
                gradients = [g + p for g, p in zip(gradients, penalty)]
            self.optimizer.apply(gradients, variables)
            self._update_metrics(x, y, y_pred, losses)

        self._take_dp_step(dp_step)
        return self._step_logs()

    def test_step(self, data):
        x, y = _unpack(data)
        losses, y_pred = self._forward_losses((x, y), training=False)
        self._update_metrics(x, y, y_pred, losses)
        return self._step_logs()

    def fit(
        self,
        x=None,
        y=None,
        *,
        epochs=1,
        target_epsilon=None,
        delta=None,
        accountant="pld",
        sampling_seed=None,
        callbacks=None,
        **kwargs,
    ):
        """Trains with DP-SGD on Poisson batches of `(x, y)`.

        An "epoch" is round(N / expected_batch_size) Poisson steps, so each example is seen once in
        expectation. The epsilon spent is logged as `epsilon` after every epoch (at `delta`, or at
        1 / N^1.1 without it); with `target_epsilon`, training stops before a step would exceed it, and a
        model made with `noise_multiplier=None` first gets the sigma that spends exactly the budget over
        the planned steps. Unless `verbose=0`, one line says beforehand what will run.

        Args:
            x: the private inputs (an array or a structure of arrays), with exactly `num_examples` rows.
            y: the labels, with the same number of rows.
            epochs: number of epochs, >= 1.
            target_epsilon: optional budget; needs `delta`.
            delta: the delta of the reported epsilon, in (0, 1); None logs epsilon at 1 / N^1.1.
            accountant: "pld" or "rdp".
            sampling_seed: None (secret Poisson sampling, the default) or an integer that makes the
                batches reproducible, for research only: the guarantee does not hold against anyone
                who knows it.
            callbacks: Keras callbacks.
            **kwargs: passed to `keras.Model.fit` (e.g. `verbose`, `validation_data`); arguments that
                would change the sampling (`batch_size`, `shuffle`, `steps_per_epoch`, ...) are refused.

        Returns:
            The `History` of `keras.Model.fit`.

        Raises:
            ValueError: for a refused or out-of-range argument (`check_budget`), a wrong number of rows, a
                tf.data input, a budget without delta, or a budget already spent.
        """
        self._refuse_sampling_arguments(kwargs)
        epochs = check_count(epochs, name="epochs", minimum=1)
        target_epsilon, delta, accountant = check_budget(target_epsilon=target_epsilon, delta=delta,
                                                         accountant=accountant)
        if isinstance(x, tf.data.Dataset) or y is None:
            raise ValueError("DPModel.fit needs the private data as arrays x and y (it samples batches itself)")
        rows = int(np.shape(tf.nest.flatten(x)[0])[0])
        if rows != self.dp_config.num_examples:
            raise ValueError(
                f"x has {rows} rows but the model was made private for num_examples="
                f"{self.dp_config.num_examples}; the sampling probability would be wrong"
            )
        if self._compile_arguments is None:
            raise ValueError("compile the model (an optimizer and a loss) before fit")
        return self._fit_on_poisson_batches(
            (x, y), epochs=epochs, target_epsilon=target_epsilon, delta=delta, accountant=accountant,
            sampling_seed=sampling_seed, callbacks=callbacks,
            optimizers=[(self.optimizer, self.model.trainable_variables)], group_batches=False, **kwargs,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.model),
            "l2_norm_clip": self.dp_config.l2_norm_clip,
            "noise_multiplier": self.dp_config.noise_multiplier if self.noise_multiplier_calibrated else None,
            "num_examples": self.dp_config.num_examples,
            "expected_batch_size": self.dp_config.expected_batch_size,
            "noise_seed": self.noise_seed,
            "ledger": self.prior_ledger.to_dict(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        config["ledger"] = PrivacyLedger.from_dict(config["ledger"])
        return cls(**config)


def _unpack(data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if sample_weight is not None:
        raise ValueError("sample weights are not supported in DP training (they would change the sensitivity)")
    return x, y


def make_private(
    model, *, l2_norm_clip, noise_multiplier, num_examples, expected_batch_size, noise_seed=None, ledger=None
):
    """Wraps a built Keras model for DP-SGD training (see `DPModel` for the arguments).

    Returns:
        A `DPModel`; compile it with any Keras optimizer and a loss, then `fit(x, y, ...)`.
    """
    return DPModel(
        model,
        l2_norm_clip=l2_norm_clip,
        noise_multiplier=noise_multiplier,
        num_examples=num_examples,
        expected_batch_size=expected_batch_size,
        noise_seed=noise_seed,
        ledger=ledger,
    )
