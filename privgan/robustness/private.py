"""Adversarial training under DP-SGD: PGD-AT (or fast FGSM) through `privgan.dp.DPModel`.

Why per-example clipping still bounds one example's influence: the adversarial input of example i is
found by ascending example i's own loss from example i (and its own random start); the model's weights
are the same for every example (the result of earlier, already private steps) and the model has no
layer that mixes examples (DPModel refuses them). So x_adv_i is a function of example i alone, the
per-example loss L(f(x_adv_i), y_i) is one example's loss, and removing example i removes exactly one
clipped gradient from the sum: the sensitivity stays C (tested by a remove-one test). The random
starts are fresh noise independent of the data; coupling each example with its own draw, the same
argument holds for every draw. An attack that mixed examples (a perturbation shared by the batch, batch
statistics in the search) would break this, and the remove-one test catches it.

The adversarial search runs before the DP step, outside the clipping machinery, so the DP step itself
is DPModel's unchanged: Poisson sampling, one clip over all variables, noise once, the divisor, the
budget and the ledger.
"""

import keras
import tensorflow as tf

from privgan.dp.training import DPModel
from privgan.robustness import perturbations
from privgan.robustness.training import check_steps, check_warmup_steps, warmed_up_epsilon


@keras.saving.register_keras_serializable(package="privgan")
class DPAdversarialTraining(DPModel):
    """A `DPModel` whose every DP-SGD step trains on PGD adversarial examples of its Poisson batch.

    Compile and fit as a `DPModel` (e.g. `compile(optimizer, loss=SparseCategoricalCrossentropy(
    from_logits=True), metrics=["accuracy"])`, `fit(x, y, epochs=..., target_epsilon=..., delta=...)`);
    the training metrics are then on the adversarial batch. The model must output logits.

    Args:
        model: the built classifier (logits out) to train privately.
        epsilon: radius of the threat model, > 0.
        norm: "linf" or "l2".
        steps: PGD steps per batch (1 with `step_size=1.25 * epsilon` and a random start is fast FGSM).
        step_size: PGD step; None: 2.5 * epsilon / steps.
        random_start: start the search at a uniform point of the ball.
        valid_range: `(low, high)` box of the inputs.
        attack_seed: seed of the random starts (None: random). The starts are not part of the DP
            mechanism (see the module doc), so fixing them is allowed.
        epsilon_warmup_steps: DP steps over which the radius grows linearly from 0 to `epsilon`.
        **kwargs: `DPModel`'s arguments (`l2_norm_clip`, `noise_multiplier`, `num_examples`,
            `expected_batch_size`, `ledger`, ...).
    """

    def __init__(self, model, *, epsilon, norm="linf", steps=10, step_size=None, random_start=True,
                 valid_range=(0.0, 1.0), attack_seed=None, epsilon_warmup_steps=0, **kwargs):
        perturbations.check_threat_model(norm=norm, epsilon=epsilon)
        check_steps(steps, step_size)
        check_warmup_steps(epsilon_warmup_steps)
        low, high = (float(v) for v in valid_range)
        if not low < high:
            raise ValueError(f"valid_range must be (low, high) with low < high, got {valid_range}")
        super().__init__(model, **kwargs)
        self.epsilon, self.norm, self.steps = float(epsilon), norm, int(steps)
        self.step_size = float(step_size) if step_size is not None else 2.5 * self.epsilon / self.steps
        self.random_start, self.valid_range = bool(random_start), (low, high)
        self.attack_seed, self.epsilon_warmup_steps = attack_seed, int(epsilon_warmup_steps)
        self.attack_seed_generator = keras.random.SeedGenerator(attack_seed)

    def current_epsilon(self):
        """The training radius at the current DP step (see `epsilon_warmup_steps`)."""
        return warmed_up_epsilon(self.epsilon, warmup_steps=self.epsilon_warmup_steps, iterations=self.dp_steps)

    def random_starts(self, x):
        """Where each example's search starts: a uniform point of its ball, or the example itself."""
        if not self.random_start:
            return x
        return perturbations.random_start(x, epsilon=self.current_epsilon(), norm=self.norm,
                                          valid_range=self.valid_range, seed=self.attack_seed_generator.next())

    def adversarial_examples(self, x, y, starts):
        """PGD's last iterate from `starts`: row i depends on (x_i, y_i, starts_i) and the weights only."""
        epsilon = self.current_epsilon()
        objective = perturbations.classification_objective(
            lambda inputs: tf.cast(self.model(inputs, training=False), tf.float32), y)
        x_last, _, _ = perturbations.projected_gradient_ascent(
            objective, x, start=starts, epsilon=epsilon, norm=self.norm,
            step_size=self.step_size * epsilon / self.epsilon, steps=self.steps, valid_range=self.valid_range,
        )
        return tf.stop_gradient(x_last)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("sample weights are not supported in DP training (they would change the sensitivity)")
        x = tf.cast(x, tf.float32)
        # DPModel's step on the adversarial batch: clipping, noise, budget and ledger are unchanged.
        return super().train_step((self.adversarial_examples(x, y, self.random_starts(x)), y))

    def get_config(self):
        return {
            **super().get_config(), "epsilon": self.epsilon, "norm": self.norm, "steps": self.steps,
            "step_size": self.step_size, "random_start": self.random_start, "valid_range": list(self.valid_range),
            "attack_seed": self.attack_seed, "epsilon_warmup_steps": self.epsilon_warmup_steps,
        }
