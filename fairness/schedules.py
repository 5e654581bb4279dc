"""Training-progress schedules of Ganin et al. (JMLR 2016): the reversal strength and the learning rate.

Both are functions of the training progress p, which goes linearly from 0 (first step) to 1 (last step):

* reversal strength (the paper's lambda_p) = 2 / (1 + exp(-gamma * p)) - 1, with gamma = 10; it starts at 0
  so that the domain classifier's noisy early gradients do not disturb the features;
* learning rate mu_p = mu_0 / (1 + alpha * p) ** beta, with alpha = 10 and beta = 0.75.
"""

import math

import keras


def reversal_strength(progress, *, gamma=10.0):
    """The paper's lambda_p = 2 / (1 + exp(-gamma * p)) - 1.

    Args:
        progress: training progress p in [0, 1].
        gamma: steepness, > 0 (the paper uses 10).

    Returns:
        The strength, a float in [0, 1).

    Raises:
        ValueError: if `progress` is outside [0, 1] or `gamma` is not positive.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class GradientReversalSchedule(keras.callbacks.Callback):
    """Assigns `max_strength * lambda_p` to a `GradientReversal` layer before every training batch.

    Progress counts the batches of the current `fit` call: p = batch index / total_steps, capped at 1.

    Args:
        layer: the `fairness.GradientReversal` layer whose `strength` is set.
        total_steps: number of training steps that make up p = 0 -> 1; when None, the `epochs * steps`
            of the `fit` call.
        gamma: steepness of the schedule, > 0.
        max_strength: the strength reached at the end of training, >= 0 (the paper's implicit 1).

    Raises:
        ValueError: if an argument is out of range.
    """

    def __init__(self, layer, *, total_steps=None, gamma=10.0, max_strength=1.0):
        super().__init__()
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if max_strength < 0:
            raise ValueError(f"max_strength must be >= 0, got {max_strength}")
        self.layer = layer
        self.total_steps = total_steps
        self.gamma = float(gamma)
        self.max_strength = float(max_strength)
        self._steps_this_fit = 0
        self._total_this_fit = None

    def on_train_begin(self, logs=None):
        total = self.total_steps
        if total is None:
            epochs, steps = self.params.get("epochs"), self.params.get("steps")
            if not steps:
                raise ValueError(
                    "total_steps must be given when fit does not know its number of steps per epoch"
                )
            total = epochs * steps
        self._total_this_fit = total
        self._steps_this_fit = 0

    def on_train_batch_begin(self, batch, logs=None):
        progress = min(self._steps_this_fit / self._total_this_fit, 1.0)
        self.layer.strength.assign(self.max_strength * reversal_strength(progress, gamma=self.gamma))
        self._steps_this_fit += 1


@keras.saving.register_keras_serializable(package="fairness")
class AnnealedLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """mu_p = initial_learning_rate / (1 + alpha * p) ** beta with p = step / total_steps (capped at 1).

    Args:
        initial_learning_rate: mu_0, > 0 (the paper uses 0.01).
        total_steps: the optimizer step at which p reaches 1, >= 1.
        alpha: > 0 (the paper uses 10).
        beta: > 0 (the paper uses 0.75).

    Raises:
        ValueError: if an argument is out of range.
    """

    def __init__(self, initial_learning_rate, *, total_steps, alpha=10.0, beta=0.75):
        if initial_learning_rate <= 0:
            raise ValueError(f"initial_learning_rate must be > 0, got {initial_learning_rate}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def __call__(self, step):
        progress = keras.ops.minimum(keras.ops.cast(step, "float32") / self.total_steps, 1.0)
        return self.initial_learning_rate / (1.0 + self.alpha * progress) ** self.beta

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "total_steps": self.total_steps,
            "alpha": self.alpha,
            "beta": self.beta,
        }
