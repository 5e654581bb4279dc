"""Adversarial training as `keras.Model` subclasses: PGD-AT (Madry et al. 2018), fast FGSM with a random
start (Wong, Rice & Kolter 2020) and TRADES (Zhang et al. 2019).

Each wraps a built classifier that outputs logits; `compile(optimizer=...)` takes any Keras optimizer,
`fit(x, y)` trains on adversarial examples made in the train step from the current weights (inside the
compiled step, one batch at a time), and `metrics` tracks the training loss and the accuracies on the
clean and the adversarial batch. Random starts draw from the model's `keras.random.SeedGenerator`.
Evaluation (`evaluate`, `validation_data`) reports clean loss and accuracy only: robust accuracy needs a
strong attack from `privgan.robustness.attacks`, not the training attack.

The adversarial search runs the model in inference mode (`training=False`), as the papers' reference
code does for models without batch statistics.
"""

import keras
import tensorflow as tf

from privgan.robustness import losses as losses_lib
from privgan.robustness import perturbations


def warmed_up_epsilon(epsilon, *, warmup_steps, iterations):
    """epsilon * min(1, (iterations + 1) / warmup_steps): a linear ramp of the radius (constant if 0 steps)."""
    if not warmup_steps:
        return tf.constant(epsilon, tf.float32)
    return epsilon * tf.minimum(1.0, tf.cast(iterations + 1, tf.float32) / warmup_steps)


def warmup_cosine_schedule(peak_learning_rate, total_steps, *, warmup_fraction=0.2):
    """A learning rate rising linearly from 0 to `peak_learning_rate`, then cosine-decaying to 0.

    A one-cycle-like schedule, as Wong, Rice & Kolter's fast adversarial training uses.

    Args:
        peak_learning_rate: the rate at the end of the warm-up, > 0.
        total_steps: optimizer steps of the whole training, >= 2.
        warmup_fraction: share of the steps spent warming up, in (0, 1).

    Returns:
        A `keras.optimizers.schedules.CosineDecay`.
    """
    if not peak_learning_rate > 0:
        raise ValueError(f"peak_learning_rate must be > 0, got {peak_learning_rate!r}")
    if int(total_steps) != total_steps or total_steps < 2:
        raise ValueError(f"total_steps must be an integer >= 2, got {total_steps!r}")
    if not 0 < warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in (0, 1), got {warmup_fraction!r}")
    warmup = max(1, int(total_steps * warmup_fraction))
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total_steps - warmup, warmup_target=peak_learning_rate, warmup_steps=warmup
    )


def check_warmup_steps(epsilon_warmup_steps):
    if int(epsilon_warmup_steps) != epsilon_warmup_steps or epsilon_warmup_steps < 0:
        raise ValueError(f"epsilon_warmup_steps must be an integer >= 0, got {epsilon_warmup_steps!r}")


class AdversarialTrainer(keras.Model):
    """Shared parts of the adversarial training models: threat model, seeds, trackers, clean evaluation.

    Args:
        model: the built classifier (logits out) to train.
        epsilon: radius of the threat model, > 0.
        norm: "linf" or "l2".
        valid_range: `(low, high)` box of the inputs.
        seed: seed of the random starts (None: random).
        epsilon_warmup_steps: optimizer steps over which the training radius grows linearly from 0 to
            `epsilon` (0: none). At large radii (MNIST at 0.3) PGD training from scratch can stay at
            chance; a short warm-up lets the model learn the clean task first.
        **kwargs: passed to `keras.Model`.
    """

    def __init__(self, model, *, epsilon, norm="linf", valid_range=(0.0, 1.0), seed=None, epsilon_warmup_steps=0,
                 **kwargs):
        super().__init__(**kwargs)
        perturbations.check_threat_model(norm=norm, epsilon=epsilon)
        check_warmup_steps(epsilon_warmup_steps)
        low, high = (float(v) for v in valid_range)
        if not low < high:
            raise ValueError(f"valid_range must be (low, high) with low < high, got {valid_range}")
        self.model = model
        self.epsilon = float(epsilon)
        self.norm = norm
        self.valid_range = (low, high)
        self.seed = seed
        self.epsilon_warmup_steps = int(epsilon_warmup_steps)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.clean_accuracy = keras.metrics.SparseCategoricalAccuracy(name="clean_accuracy")
        self.adversarial_accuracy = keras.metrics.SparseCategoricalAccuracy(name="adversarial_accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.clean_accuracy, self.adversarial_accuracy]

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def compile(self, optimizer="adam", **kwargs):
        """Configures training; the loss is each method's own (cross-entropy on logits, plus KL for TRADES).

        Args:
            optimizer: any Keras optimizer (or its name).
            **kwargs: passed to `keras.Model.compile` (not `loss` or `metrics`: see `metrics`).
        """
        for name in ("loss", "metrics"):
            if name in kwargs:
                raise ValueError(f"{type(self).__name__}.compile does not take {name!r}; the loss is fixed by the "
                                 "method and the trackers are in `metrics`")
        super().compile(optimizer=optimizer, **kwargs)

    def _logits(self, x):
        return tf.cast(self.model(x, training=False), tf.float32)

    def current_epsilon(self):
        """The training radius at the optimizer's current step (see `epsilon_warmup_steps`)."""
        return warmed_up_epsilon(self.epsilon, warmup_steps=self.epsilon_warmup_steps,
                                 iterations=self.optimizer.iterations)

    def _random_start(self, x, epsilon):
        return perturbations.random_start(x, epsilon=epsilon, norm=self.norm, valid_range=self.valid_range,
                                          seed=self.seed_generator.next())

    def adversarial_examples(self, x, y):
        """The adversarial batch the train step trains on (subclasses define the search)."""
        raise NotImplementedError

    def _loss(self, x, x_adv, y):
        """Mean training loss and the logits of the adversarial batch (cross-entropy on it by default)."""
        logits = tf.cast(self.model(x_adv, training=True), tf.float32)
        return tf.reduce_mean(losses_lib.cross_entropy(logits, y)), logits

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} does not support sample weights")
        x = tf.cast(x, tf.float32)
        x_adv = tf.stop_gradient(self.adversarial_examples(x, y))
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss, adversarial_logits = self._loss(x, x_adv, y)
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.loss_tracker.update_state(loss)
        self.clean_accuracy.update_state(y, self._logits(x))
        self.adversarial_accuracy.update_state(y, adversarial_logits)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self._logits(tf.cast(x, tf.float32))
        self.loss_tracker.update_state(tf.reduce_mean(losses_lib.cross_entropy(logits, y)))
        self.clean_accuracy.update_state(y, logits)
        return {m.name: m.result() for m in (self.loss_tracker, self.clean_accuracy)}

    def get_config(self):
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.model),
            "epsilon": self.epsilon,
            "norm": self.norm,
            "valid_range": list(self.valid_range),
            "seed": self.seed,
            "epsilon_warmup_steps": self.epsilon_warmup_steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def check_steps(steps, step_size):
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}")


@keras.saving.register_keras_serializable(package="privgan")
class PGDAdversarialTraining(AdversarialTrainer):
    """Madry et al.'s adversarial training: minimise the cross-entropy of a PGD adversary's last iterate.

    Args:
        model, epsilon, norm, valid_range, seed: see `AdversarialTrainer`.
        steps: PGD steps per batch (40 in the paper's MNIST model, 7 for CIFAR-10).
        step_size: PGD step; None: 2.5 * epsilon / steps.
        random_start: start from a uniform point of the ball.
        **kwargs: passed to `keras.Model`.
    """

    def __init__(self, model, *, epsilon, steps=40, step_size=None, random_start=True, **kwargs):
        check_steps(steps, step_size)
        super().__init__(model, epsilon=epsilon, **kwargs)
        self.steps = int(steps)
        self.step_size = float(step_size) if step_size is not None else 2.5 * self.epsilon / self.steps
        self.random_start = bool(random_start)

    def adversarial_examples(self, x, y):
        objective = perturbations.classification_objective(self._logits, y)
        epsilon = self.current_epsilon()
        start = self._random_start(x, epsilon) if self.random_start else x
        x_last, _, _ = perturbations.projected_gradient_ascent(
            objective, x, start=start, epsilon=epsilon, norm=self.norm,
            step_size=self.step_size * epsilon / self.epsilon, steps=self.steps, valid_range=self.valid_range,
        )
        return x_last

    def get_config(self):
        return {**super().get_config(), "steps": self.steps, "step_size": self.step_size,
                "random_start": self.random_start}


@keras.saving.register_keras_serializable(package="privgan")
class FastFGSMTraining(AdversarialTrainer):
    """Wong, Rice & Kolter's "fast is better than free": one FGSM step of 1.25 epsilon from a random start.

    Cheap (two forward-backward passes per batch), but at large radii it can collapse into "catastrophic
    overfitting" (robust accuracy against PGD drops to ~0 within an epoch while FGSM accuracy soars);
    the paper's remedies are a smaller step, a cyclic learning rate and early stopping on a PGD
    evaluation of held-out data. Watch robust accuracy on a validation split.

    Args:
        model, epsilon, valid_range, seed: see `AdversarialTrainer` (L-inf only).
        step_size: the FGSM step; None: 1.25 * epsilon.
        **kwargs: passed to `keras.Model`.
    """

    def __init__(self, model, *, epsilon, step_size=None, **kwargs):
        check_steps(1, step_size)
        if kwargs.get("norm", "linf") != "linf":
            raise ValueError("FastFGSMTraining is an L-inf method; use PGDAdversarialTraining for L2")
        super().__init__(model, epsilon=epsilon, **kwargs)
        self.step_size = float(step_size) if step_size is not None else 1.25 * self.epsilon

    def adversarial_examples(self, x, y):
        objective = perturbations.classification_objective(self._logits, y)
        epsilon = self.current_epsilon()
        x_last, _, _ = perturbations.projected_gradient_ascent(
            objective, x, start=self._random_start(x, epsilon), epsilon=epsilon, norm="linf",
            step_size=self.step_size * epsilon / self.epsilon, steps=1, valid_range=self.valid_range,
        )
        return x_last

    def get_config(self):
        return {**super().get_config(), "step_size": self.step_size}


@keras.saving.register_keras_serializable(package="privgan")
class TRADES(AdversarialTrainer):
    """TRADES (Zhang et al. 2019): CE(f(x), y) + beta * KL(f(x) || f(x')), x' maximising the KL term.

    beta trades clean accuracy for robustness (the paper uses 1 to 6; 6 on MNIST and CIFAR-10). The
    inner maximisation starts at x plus 0.001 * N(0, 1), as in the paper's code, and takes `steps`
    sign-gradient steps on the KL term.

    Args:
        model, epsilon, norm, valid_range, seed: see `AdversarialTrainer`.
        beta: the weight of the robust (KL) term, >= 0.
        steps: inner maximisation steps (40 on MNIST in the paper, 10 on CIFAR-10).
        step_size: inner step; None: 2.5 * epsilon / steps.
        **kwargs: passed to `keras.Model`.
    """

    def __init__(self, model, *, epsilon, beta=6.0, steps=40, step_size=None, **kwargs):
        check_steps(steps, step_size)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        super().__init__(model, epsilon=epsilon, **kwargs)
        self.beta = float(beta)
        self.steps = int(steps)
        self.step_size = float(step_size) if step_size is not None else 2.5 * self.epsilon / self.steps

    def adversarial_examples(self, x, y):
        clean_logits = tf.stop_gradient(self._logits(x))

        def objective(x_adv):
            values = losses_lib.kl_divergence_from_logits(clean_logits, self._logits(x_adv))
            return values, tf.zeros(tf.shape(values), tf.bool)

        noise = tf.random.stateless_normal(tf.shape(x), tf.cast(self.seed_generator.next(), tf.int64))
        start = tf.clip_by_value(x + 0.001 * noise, *self.valid_range)
        epsilon = self.current_epsilon()
        x_last, _, _ = perturbations.projected_gradient_ascent(
            objective, x, start=start, epsilon=epsilon, norm=self.norm,
            step_size=self.step_size * epsilon / self.epsilon, steps=self.steps, valid_range=self.valid_range,
        )
        return x_last

    def _loss(self, x, x_adv, y):
        clean_logits = tf.cast(self.model(x, training=True), tf.float32)
        adversarial_logits = tf.cast(self.model(x_adv, training=True), tf.float32)
        natural = losses_lib.cross_entropy(clean_logits, y)
        robust = losses_lib.kl_divergence_from_logits(clean_logits, adversarial_logits)
        return tf.reduce_mean(natural + self.beta * robust), adversarial_logits

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "steps": self.steps, "step_size": self.step_size}
