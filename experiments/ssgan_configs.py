"""Frozen, self-validating settings of `experiments.ssgan_mnist`, one per path.

The experiment's flags come in DP / non-DP pairs (`--epochs` / `--dp_epochs`, ...); each path reads
only its own config, made from the flags by `from_flags` (the field is the flag's name without its
`dp_` prefix where the flag has one). A bad value raises one `ValueError` naming the config, the field
and the allowed range, before any training starts.

- `SSGANConfig`: the non-private semi-supervised GAN (`--runs=ssgan`).
- `ScatteringConfig`: the default private path (`--dp_discriminator=scattering`, and `--runs=scattering`
  without noise): a fixed scattering front end and Gaussian releases, no GAN step.
- `DPGANConfig`: the private DP-SGD GAN path (`--dp_discriminator=mlp`): the GAN phase, then `fit_head`.
- `BaselineConfig`: the supervised and pseudo-label CNNs.
"""

import dataclasses
import math

LABELLED_GRADIENTS = ("all", "head", "split")
DP_LABELLED_GRADIENTS = (*LABELLED_GRADIENTS, "none")
ARCHITECTURES = ("weight_norm", "plain")
ACCOUNTANTS = ("pld", "rdp")


def _fail(config, name, allowed, value):
    raise ValueError(f"{type(config).__name__}.{name} must be {allowed}, got {value!r}")


def _integers(config, minimum, *names):
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            _fail(config, name, f"an integer >= {minimum}", value)


def _numbers(config, low, high, *names, low_open=False, high_open=True):
    """Each named field a finite number in the interval from low to high (open or closed at each end)."""
    allowed = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(config, name, allowed, value)
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            _fail(config, name, allowed, value)


def _widths(config, *names):
    for name in names:
        value = getattr(config, name)
        if (not isinstance(value, tuple) or not value
                or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in value)):
            _fail(config, name, "a non-empty tuple of integers >= 1", value)


def _choice(config, name, choices):
    if getattr(config, name) not in choices:
        _fail(config, name, f"one of {choices}", getattr(config, name))


def _privacy(config):
    _numbers(config, 0, 1, "delta", low_open=True)
    _numbers(config, 0, math.inf, "l2_norm_clip", low_open=True)
    _choice(config, "accountant", ACCOUNTANTS)


class _FromFlags:
    """`from_flags`: each field from the flag `dp_<field>` if the config is private and it exists, else `<field>`."""

    _flag_prefix = ""

    @classmethod
    def from_flags(cls, flag_values):
        """The config from parsed flags (any object with the flags as attributes, e.g. `absl.flags.FLAGS`).

        Raises:
            ValueError: naming the field, if a flag's value is out of range.
        """
        values = {}
        for field in dataclasses.fields(cls):
            name = cls._flag_prefix + field.name
            value = getattr(flag_values, name if hasattr(flag_values, name) else field.name)
            if isinstance(field.default, tuple):  # list flags of widths
                value = tuple(int(v) for v in value)
            values[field.name] = value
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class SSGANConfig(_FromFlags):
    """The non-private semi-supervised GAN (Salimans et al. 2016's MNIST recipe).

    Attributes:
        architecture: "weight_norm" (the paper's weight-normalised D with data-dependent init and
            softplus G) or "plain" (a LeakyReLU Dense D and a ReLU G, the earlier pair).
        epochs: epochs, each round(N_U / batch_size) steps, >= 1.
        batch_size: expected unlabelled (and generated) batch size, >= 1.
        labelled_batch_size: expected labelled batch size, >= 1 (100 of 100: every step sees all).
        d_hidden: D's hidden widths.
        g_hidden: G's hidden widths.
        latent_dim: G's latent dimension, >= 1.
        input_noise: std of the Gaussian noise on D's input, >= 0.
        hidden_noise: std of the Gaussian noise on D's hidden layers, >= 0.
        learning_rate: Adam learning rate of D and G, > 0.
        decay_start: fraction of the steps after which the rate decays linearly to 0, in [0, 1).
        ema_momentum: momentum of the moving average of D's weights that is evaluated, in [0, 1)
            (0: the last weights).
        adam_epsilon: Adam's epsilon, > 0 (the paper's 1e-8 under the square root is about 1e-4 outside).
        unsupervised_weight: weight of D's GAN losses relative to the labelled loss, >= 0.
        labelled_gradient: D's variables the labelled loss trains: "all", "head" or "split".
        monitor_every: print the validation accuracy every this many epochs, >= 0 (0: never).
    """

    architecture: str = "weight_norm"
    epochs: int = 30
    batch_size: int = 100
    labelled_batch_size: int = 100
    d_hidden: tuple = (1000, 500, 250, 250, 250)
    g_hidden: tuple = (500, 500)
    latent_dim: int = 100
    input_noise: float = 0.3
    hidden_noise: float = 0.5
    learning_rate: float = 3e-3
    decay_start: float = 0.6
    ema_momentum: float = 0.999
    adam_epsilon: float = 1e-4
    unsupervised_weight: float = 1.0
    labelled_gradient: str = "all"
    monitor_every: int = 0

    def __post_init__(self):
        _choice(self, "architecture", ARCHITECTURES)
        _integers(self, 1, "epochs", "batch_size", "labelled_batch_size", "latent_dim")
        _integers(self, 0, "monitor_every")
        _widths(self, "d_hidden", "g_hidden")
        _numbers(self, 0, math.inf, "input_noise", "hidden_noise", "unsupervised_weight")
        _numbers(self, 0, math.inf, "learning_rate", "adam_epsilon", low_open=True)
        _numbers(self, 0, 1, "decay_start", "ema_momentum")
        _choice(self, "labelled_gradient", LABELLED_GRADIENTS)


@dataclasses.dataclass(frozen=True)
class ScatteringConfig(_FromFlags):
    """The default private path: a scattering D set by Gaussian releases (no GAN step).

    Attributes:
        projection: dimensions of the DP PCA whitening of the scattering features, >= 1.
        refine_rounds: DP k-means rounds of the head on the unlabelled stream, >= 0.
        refine_noise_multiplier: sigma of each k-means round's release, > 0.
        batch_size: expected unlabelled batch size of the model's (unused) sampling configuration, >= 1.
        labelled_batch_size: the same of the labelled stream, >= 1.
        g_hidden: widths of G, built but not trained.
        latent_dim: G's latent dimension, >= 1.
        student_epochs: epochs of the DP-SGD pseudo-label classifier on the unlabelled stream's scattering
            features, after the releases, >= 0 (0: no such stage, D's centroid head is the classifier).
        student_min_epsilon: private runs below this epsilon skip the student (its share of the
            budget then goes to the releases, as without it), >= 0.
        student_batch_size: its expected Poisson batch size, >= 1.
        student_learning_rate: its SGD learning rate (momentum 0.9), > 0.
        student_min_margin: unlabelled images whose top two head scores differ by less get no
            pseudo-label, >= 0.
        release_share: with a student, the part of the unlabelled stream's epsilon that the projection
            and the k-means rounds spend (the student the rest), in (0, 1).
        gan_weight: with a student, the weight of Salimans et al.'s K+1 real / fake terms, >= 0 (0: no GAN
            step; > 0: a generator of feature vectors trained by free steps against the student).
        l2_norm_clip: C of both streams, > 0.
        delta: delta of the guarantee, in (0, 1).
        accountant: "pld" or "rdp".
    """

    _flag_prefix = "dp_"

    projection: int = 45
    refine_rounds: int = 5
    refine_noise_multiplier: float = 20.0
    batch_size: int = 250
    labelled_batch_size: int = 100
    g_hidden: tuple = (500, 500)
    latent_dim: int = 100
    student_epochs: int = 10
    student_min_epsilon: float = 2.0
    student_batch_size: int = 2000
    student_learning_rate: float = 4.0
    student_min_margin: float = 0.1
    release_share: float = 0.8
    gan_weight: float = 0.0
    l2_norm_clip: float = 1.0
    delta: float = 1e-5
    accountant: str = "pld"

    def __post_init__(self):
        _integers(self, 1, "projection", "batch_size", "labelled_batch_size", "latent_dim", "student_batch_size")
        _integers(self, 0, "refine_rounds", "student_epochs")
        _numbers(self, 0, math.inf, "refine_noise_multiplier", "student_learning_rate", low_open=True)
        _numbers(self, 0, math.inf, "student_min_margin", "gan_weight", "student_min_epsilon")
        _numbers(self, 0, 1, "release_share", low_open=True)
        _widths(self, "g_hidden")
        _privacy(self)


@dataclasses.dataclass(frozen=True)
class DPGANConfig(_FromFlags):
    """The private DP-SGD GAN path: the GAN phase with DP-SGD on D (two Poisson streams), then `fit_head`.

    Attributes:
        epochs: epochs of the GAN phase (the noise is calibrated for them), >= 1.
        batch_size: expected unlabelled batch size, >= 1.
        labelled_batch_size: expected labelled batch size, >= 1.
        d_hidden: D's hidden widths.
        g_hidden: G's hidden widths.
        latent_dim: G's latent dimension, >= 1.
        input_noise: std of the noise on D's input, >= 0.
        hidden_noise: std of the noise on D's hidden layers, >= 0.
        labelled_gradient: D's variables the labelled loss trains ("none": the GAN phase reads no labels
            and `fit_head` trains the head on frozen features).
        head_epochs: epochs of the head phase, >= 1.
        head_batch_size: its expected Poisson batch size, >= 1.
        head_learning_rate: its Adam learning rate, > 0.
        unsupervised_weight: weight of D's GAN losses relative to the labelled loss, >= 0.
        l2_norm_clip: C of both streams, > 0.
        feature_l2_norm_clip: the part of an unlabelled example's C spent on its features, in (0, l2_norm_clip).
        learning_rate: Adam learning rate of the GAN phase, > 0.
        beta_1: its Adam beta_1, in [0, 1).
        delta: delta of the guarantee, in (0, 1).
        accountant: "pld" or "rdp".
    """

    _flag_prefix = "dp_"

    epochs: int = 5
    batch_size: int = 250
    labelled_batch_size: int = 100
    d_hidden: tuple = (500, 250, 250)
    g_hidden: tuple = (500, 500)
    latent_dim: int = 100
    input_noise: float = 0.3
    hidden_noise: float = 0.5
    labelled_gradient: str = "none"
    head_epochs: int = 100
    head_batch_size: int = 50
    head_learning_rate: float = 0.01
    unsupervised_weight: float = 0.02
    l2_norm_clip: float = 1.0
    feature_l2_norm_clip: float = 0.3
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    delta: float = 1e-5
    accountant: str = "pld"

    def __post_init__(self):
        _integers(self, 1, "epochs", "batch_size", "labelled_batch_size", "latent_dim", "head_epochs",
                  "head_batch_size")
        _widths(self, "d_hidden", "g_hidden")
        _numbers(self, 0, math.inf, "input_noise", "hidden_noise", "unsupervised_weight")
        _numbers(self, 0, math.inf, "head_learning_rate", "learning_rate", low_open=True)
        _numbers(self, 0, 1, "beta_1")
        _choice(self, "labelled_gradient", DP_LABELLED_GRADIENTS)
        _privacy(self)
        _numbers(self, 0, self.l2_norm_clip, "feature_l2_norm_clip", low_open=True)


@dataclasses.dataclass(frozen=True)
class BaselineConfig(_FromFlags):
    """The supervised and pseudo-label CNN baselines.

    Attributes:
        baseline_steps: optimiser steps of the supervised CNNs on the labelled images, >= 1.
        pseudo_label_rounds: pseudo-labelling rounds, >= 1.
        pseudo_label_epochs: epochs of each round, >= 1.
    """

    baseline_steps: int = 1500
    pseudo_label_rounds: int = 2
    pseudo_label_epochs: int = 2

    def __post_init__(self):
        _integers(self, 1, "baseline_steps", "pseudo_label_rounds", "pseudo_label_epochs")
