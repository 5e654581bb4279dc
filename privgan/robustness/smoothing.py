"""Randomised smoothing (Cohen, Rosenfeld & Kolter 2019): a classifier certified in L2 by Gaussian noise.

The smoothed classifier g(x) = argmax_c P(f(x + e) = c), e ~ N(0, sigma^2 I), of a base classifier f is
robust around x: if the top class has probability p_A >= 1/2, g's prediction cannot change within the
L2 radius sigma * Phi^-1(p_A). Probabilities are estimated by Monte Carlo, so every query of
`SmoothedClassifier` draws fresh noise: its answer may change from one query to the next, and it
abstains (class -1) when the sample cannot decide.

- `SmoothedClassifier.predict` is the paper's PREDICT: the two most frequent classes among n noisy
  samples; abstain unless a binomial test says the top one beats the second at level alpha.
- `SmoothedClassifier.certify` is CERTIFY: n0 samples choose the class, n fresh samples give a one-sided
  Clopper-Pearson lower bound p_A_lower on its probability at level alpha; abstain if p_A_lower < 1/2,
  else certify the radius sigma * Phi^-1(p_A_lower). With probability >= 1 - alpha over the noise, a
  certified prediction is g's and g is constant within the radius.
- `GaussianNoiseTraining` trains the base classifier on noisy inputs, which the certificate needs to be
  non-trivial.
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from scipy import stats

from privgan.robustness import losses as losses_lib
from privgan.robustness.classifier import Classifier

ABSTAIN = -1


def _check_sigma(sigma):
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")


def _check_alpha(alpha):
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _check_count(name, value):
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def clopper_pearson_lower(successes, trials, *, alpha):
    """One-sided (1 - alpha) Clopper-Pearson lower confidence bound of a binomial proportion.

    Args:
        successes: counts k (array-like), 0 <= k <= trials.
        trials: n >= 1.
        alpha: the error level, in (0, 1).

    Returns:
        An array of lower bounds (0 where k = 0).
    """
    successes = np.asarray(successes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = stats.beta.ppf(alpha, successes, trials - successes + 1)
    return np.where(successes > 0, bound, 0.0)


@dataclasses.dataclass(frozen=True, eq=False)
class CertificationResult:
    """Outcome of CERTIFY on a set of examples.

    Attributes:
        sigma: the noise level.
        num_selection: n0, samples that chose each example's class.
        num_estimation: n, samples that bounded its probability.
        alpha: the error level of the bounds.
        predictions: the certified class per example, `ABSTAIN` (-1) where it abstained.
        radii: the certified L2 radius per example (0 where it abstained).
        lower_bounds: p_A_lower per example.
        labels: the true classes, or None.
    """

    sigma: float
    num_selection: int
    num_estimation: int
    alpha: float
    predictions: np.ndarray
    radii: np.ndarray
    lower_bounds: np.ndarray
    labels: np.ndarray | None = None

    @property
    def abstained(self) -> np.ndarray:
        return self.predictions == ABSTAIN

    @property
    def abstain_rate(self) -> float:
        return float(self.abstained.mean()) if self.predictions.size else float("nan")

    def certified_accuracy(self, radius):
        """Fraction of examples predicted correctly with a certified radius >= `radius` (needs labels)."""
        if self.labels is None:
            raise ValueError("certified accuracy needs the labels: pass y to certify()")
        return float(np.mean((self.predictions == self.labels) & (self.radii >= radius)))

    def curve(self, radii):
        """Certified accuracy at each of `radii`, as a list (Cohen et al.'s plot)."""
        return [self.certified_accuracy(r) for r in radii]

    def summary(self, radii=(0.0, 0.25, 0.5, 0.75, 1.0)) -> str:
        lines = [
            f"randomised smoothing, sigma={self.sigma:g}, n0={self.num_selection}, n={self.num_estimation}, "
            f"alpha={self.alpha:g}: {self.predictions.size} examples, abstain rate {self.abstain_rate:.4f}, "
            f"mean certified radius {self.radii.mean():.4f}"
        ]
        if self.labels is not None:
            lines.append("  certified accuracy: " + ", ".join(
                f"r={r:g}: {a:.4f}" for r, a in zip(radii, self.curve(radii))))
        return "\n".join(lines)

    def to_dict(self, radii=(0.0, 0.25, 0.5, 0.75, 1.0)) -> dict:
        result = {
            "sigma": self.sigma, "num_selection": self.num_selection, "num_estimation": self.num_estimation,
            "alpha": self.alpha, "num_examples": int(self.predictions.size), "abstain_rate": self.abstain_rate,
            "mean_radius": float(self.radii.mean()),
        }
        if self.labels is not None:
            result["certified_accuracy"] = {f"{r:g}": a for r, a in zip(radii, self.curve(radii))}
        return result


class SmoothedClassifier:
    """Cohen et al.'s smoothed classifier g around a base classifier f and Gaussian noise of std sigma.

    Args:
        base: a `privgan.robustness.Classifier` (the noise is not clipped to its valid range, as in
            the paper: f must accept noisy inputs, and is best trained on them, see
            `GaussianNoiseTraining`).
        sigma: the noise's standard deviation, > 0.
        num_classes: number of classes of f.
        batch_size: noisy samples per forward pass, >= 1.
        seed: seed of the noise (None: fresh entropy from the OS, the default: a certificate is only
            as good as the unpredictability of its noise to whoever chose the inputs).
    """

    def __init__(self, base, *, sigma, num_classes, batch_size=1000, seed=None):
        if not isinstance(base, Classifier):
            raise TypeError(f"base must be a privgan.robustness.Classifier, got {type(base).__name__}")
        _check_sigma(sigma)
        _check_count("num_classes", num_classes)
        _check_count("batch_size", batch_size)
        self.base, self.sigma, self.num_classes, self.batch_size = base, float(sigma), int(num_classes), int(batch_size)
        self._generator = (tf.random.Generator.from_non_deterministic_state() if seed is None
                           else tf.random.Generator.from_seed(seed))
        self._counts_fn = tf.function(self._counts_graph, reduce_retracing=True)

    def _counts_graph(self, x, samples_per_example, num_samples):
        # x: (B, ...) examples; draws `num_samples` noisy copies of each in chunks of
        # `samples_per_example`, and returns the (B, classes) counts of the base classifier's predictions.
        batch = tf.shape(x)[0]
        tiled_shape = tf.concat([[batch * samples_per_example], tf.shape(x)[1:]], 0)

        def body(drawn, counts):
            copies = tf.minimum(samples_per_example, num_samples - drawn)
            noisy = tf.repeat(x, samples_per_example, axis=0)
            noisy = noisy + self.sigma * self._generator.normal(tiled_shape, dtype=x.dtype)
            predictions = tf.argmax(self.base.logits(noisy), axis=1, output_type=tf.int32)
            votes = tf.one_hot(tf.reshape(predictions, [batch, samples_per_example]), self.num_classes, dtype=tf.int64)
            # Only the first `copies` of the chunk count (the last chunk may be partial).
            keep = tf.cast(tf.range(samples_per_example) < copies, tf.int64)[None, :, None]
            return drawn + copies, counts + tf.reduce_sum(votes * keep, axis=1)

        # The counts' leading dimension is left open: traced first on a single example, its static 1 would not
        # survive the body's reshape to `[batch, samples_per_example]`.
        _, counts = tf.while_loop(
            lambda drawn, _: drawn < num_samples, body,
            (tf.constant(0), tf.zeros([batch, self.num_classes], tf.int64)),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, self.num_classes])),
        )
        return counts

    def sample_counts(self, x, num_samples):
        """How often the base classifier predicts each class on `num_samples` fresh noisy copies of each example.

        Args:
            x: inputs (N, ...).
            num_samples: noisy copies per example, >= 1.

        Returns:
            An int64 array (N, num_classes).
        """
        _check_count("num_samples", num_samples)
        x = np.asarray(x, dtype=np.float32)
        samples_per_example = max(1, min(num_samples, self.batch_size))
        examples_per_call = max(1, self.batch_size // samples_per_example)
        counts = [
            np.asarray(self._counts_fn(tf.constant(x[i : i + examples_per_call]), tf.constant(samples_per_example),
                                       tf.constant(int(num_samples))))
            for i in range(0, len(x), examples_per_call)
        ]
        return np.concatenate(counts) if counts else np.zeros((0, self.num_classes), np.int64)

    def __call__(self, x, *, num_samples=100, alpha=0.001):
        """Same as `predict`: each call draws fresh noise."""
        return self.predict(x, num_samples=num_samples, alpha=alpha)

    def predict(self, x, *, num_samples=100, alpha=0.001):
        """PREDICT: the smoothed class per example, or `ABSTAIN` (-1) when the top two are too close.

        Returns g(x) with probability >= 1 - alpha when it does not abstain (Cohen et al., Theorem 2).

        Args:
            x: inputs.
            num_samples: noisy samples per example.
            alpha: level of the two-sided binomial test of the top class against the runner-up.

        Returns:
            An int64 array of classes, -1 where it abstains.
        """
        _check_alpha(alpha)
        counts = self.sample_counts(x, num_samples)
        order = np.argsort(-counts, axis=1, kind="stable")
        top, second = order[:, 0], order[:, 1] if self.num_classes > 1 else order[:, 0]
        rows = np.arange(len(counts))
        count_top, count_second = counts[rows, top], counts[rows, second]
        p_values = np.array([
            stats.binomtest(int(a), int(a + b), 0.5).pvalue if a + b > 0 else 1.0
            for a, b in zip(count_top, count_second)
        ])
        return np.where(p_values <= alpha, top, ABSTAIN).astype(np.int64)

    def certify(self, x, y=None, *, num_selection=100, num_estimation=100_000, alpha=0.001):
        """CERTIFY: per example, a class and an L2 radius within which the smoothed prediction is constant.

        Args:
            x: inputs.
            y: optional true labels (for certified accuracy).
            num_selection: n0, samples that choose the class.
            num_estimation: n, fresh samples that bound its probability.
            alpha: the bound's error level; each certificate holds with probability >= 1 - alpha.

        Returns:
            A `CertificationResult`.
        """
        _check_alpha(alpha)
        _check_count("num_selection", num_selection)
        _check_count("num_estimation", num_estimation)
        chosen = np.argmax(self.sample_counts(x, num_selection), axis=1)
        counts = self.sample_counts(x, num_estimation)
        successes = counts[np.arange(len(counts)), chosen]
        lower = clopper_pearson_lower(successes, num_estimation, alpha=alpha)
        certified = lower > 0.5
        radii = np.where(certified, self.sigma * stats.norm.ppf(np.clip(lower, 0.5, 1.0)), 0.0)
        return CertificationResult(
            sigma=self.sigma, num_selection=int(num_selection), num_estimation=int(num_estimation), alpha=float(alpha),
            predictions=np.where(certified, chosen, ABSTAIN).astype(np.int64), radii=radii, lower_bounds=lower,
            labels=None if y is None else np.asarray(y).astype(np.int64).reshape(-1),
        )


@keras.saving.register_keras_serializable(package="privgan")
class GaussianNoiseTraining(keras.Model):
    """Trains a base classifier (logits out) on inputs plus N(0, sigma^2) noise, Cohen et al.'s recipe.

    Each train step draws fresh noise from the model's `keras.random.SeedGenerator`; the loss is the
    cross-entropy on the noisy batch. `evaluate` reports the clean and the noisy accuracy.

    Args:
        model: the built base classifier.
        sigma: the noise std, the same as the smoothed classifier's, > 0.
        seed: seed of the noise (None: random).
        **kwargs: passed to `keras.Model`.
    """

    def __init__(self, model, *, sigma, seed=None, **kwargs):
        super().__init__(**kwargs)
        _check_sigma(sigma)
        self.model, self.sigma, self.seed = model, float(sigma), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.noisy_accuracy = keras.metrics.SparseCategoricalAccuracy(name="noisy_accuracy")
        self.clean_accuracy = keras.metrics.SparseCategoricalAccuracy(name="clean_accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.noisy_accuracy, self.clean_accuracy]

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def compile(self, optimizer="adam", **kwargs):
        """Configures training; the loss is the cross-entropy on noisy inputs (no `loss` or `metrics`)."""
        for name in ("loss", "metrics"):
            if name in kwargs:
                raise ValueError(f"GaussianNoiseTraining.compile does not take {name!r}")
        super().compile(optimizer=optimizer, **kwargs)

    def _noisy(self, x):
        return x + self.sigma * keras.random.normal(tf.shape(x), seed=self.seed_generator)

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, tf.float32)
        noisy = self._noisy(x)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(noisy, training=True), tf.float32)
            loss = tf.reduce_mean(losses_lib.cross_entropy(logits, y))
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.loss_tracker.update_state(loss)
        self.noisy_accuracy.update_state(y, logits)
        return {m.name: m.result() for m in (self.loss_tracker, self.noisy_accuracy)}

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, tf.float32)
        noisy_logits = tf.cast(self.model(self._noisy(x), training=False), tf.float32)
        self.loss_tracker.update_state(tf.reduce_mean(losses_lib.cross_entropy(noisy_logits, y)))
        self.noisy_accuracy.update_state(y, noisy_logits)
        self.clean_accuracy.update_state(y, self.model(x, training=False))
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {**super().get_config(), "model": keras.saving.serialize_keras_object(self.model),
                "sigma": self.sigma, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)
