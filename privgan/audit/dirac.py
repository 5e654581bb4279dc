"""Gradient-space ("Dirac") canaries run through a DP-SGD mechanism, scored by a white-box auditor.

Canary j is an example whose gradient is a multiple of the unit vector e_j of a parameter vector w
that no other example touches (Nasr et al. 2021, 2023; Steinke, Nasr & Jagielski 2023): its loss is
linear, c * w_j, so the mechanism clips its gradient to exactly C in coordinate j. With L > 1 canary
variables w^1..w^L (separate layers), canary j's loss is c * (w^1_j + ... + w^L_j): its gradient has the
same norm in each variable, 2C there, so a correct mechanism clips the whole to C (C / sqrt(L) per
variable) while one that clips each variable's part on its own lets through C per variable, sqrt(L) C in
all (the bug of a per-layer clipping rule that forgets the global norm). The observation of canary j is
the sum of its L coordinates divided by sqrt(L): for a correct mechanism it has exactly the one-variable
canary's distribution (the L noises average to one of the same variance), so the scores below, and the
audit's power against every other fault, are unchanged; per-variable clipping multiplies its mean by
sqrt(L). Optional background
examples have linear losses <v, x_i> on a separate parameter vector v, so their gradients x_i never
reach a canary's coordinate. The loss being linear, the gradient does not depend on the parameters and
no update needs to be applied: the auditor sees every step's privatised gradient (the update, up to the
learning rate), which is the white-box threat model of DP-SGD's analysis.

After dividing by the clipping bound and multiplying by the expected batch size, coordinate j of step
t of a correct mechanism is y_t = b_t + sigma z_t, with b_t ~ Bernoulli(q) if canary j is included
(0 otherwise) and z_t standard normal, independent of everything else. Given inclusion the steps are
independent, so the sum over steps of the per-step log-likelihood ratio is the exact log-likelihood
ratio of the canary's whole sequence: by Neyman-Pearson the most powerful score against a correct
mechanism (in simulation at the MNIST DP-SGD schedule it gave a one-run bound of 3.3 where the plain
sum of observations, the classic white-box score, gave 1.5). It misses noise that repeats across steps,
which the differenced score catches. The scores are computed on the fly, inside one `tf.function`, so
no (steps x canaries) array is kept.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from privgan.dp import poisson_batches, private_gradients

# A canary's raw gradient norm in each of its variables, in units of C: above 1, so that the mechanism has to
# clip it (a mechanism that does not would show a larger step in the canary's coordinates), even one that
# clips each variable on its own.
CANARY_GRADIENT_NORM = 2.0


def _log_add_exp(constant, values):
    # log(e^constant + e^values) for a Python-number constant (possibly -inf), element by element.
    return tf.maximum(values, constant) + tf.math.log1p(tf.exp(-tf.abs(values - constant)))


def _log_likelihood_ratio(observations, *, noise_multiplier, sampling_probability):
    # log p(y | included) / p(y | excluded) for one step: (1 - q) N(0, s^2) + q N(1, s^2) against
    # N(0, s^2), i.e. log(1 - q + q exp((2y - 1) / (2 s^2))).
    log_not_q = math.log1p(-sampling_probability) if sampling_probability < 1 else -math.inf
    return _log_add_exp(
        log_not_q, math.log(sampling_probability) + (2.0 * observations - 1.0) / (2.0 * noise_multiplier**2)
    )


def _log_likelihood_ratio_of_difference(differences, *, noise_multiplier, sampling_probability):
    # The same for d = y_t - y_{t-1}: b_t - b_{t-1} is +1 or -1 with probability p = q (1 - q) each if
    # included (0 otherwise), plus N(0, 2 s^2) noise, so the ratio is
    # 1 - 2p + p exp((2d - 1) / (4 s^2)) + p exp((-2d - 1) / (4 s^2))
    #   = 1 - 2p + 2p exp(-1 / (4 s^2)) cosh(d / (2 s^2)).
    # Consecutive differences are correlated; the score ignores that, which costs power, not validity.
    p = sampling_probability * (1 - sampling_probability)
    if p == 0:  # q = 1: every step holds every included canary, and differences carry nothing
        return tf.zeros_like(differences)
    x = tf.abs(differences) / (2.0 * noise_multiplier**2)
    log_cosh = x + tf.math.log1p(tf.exp(-2.0 * x)) - math.log(2.0)
    return _log_add_exp(math.log1p(-2 * p), math.log(2 * p) - 1.0 / (4.0 * noise_multiplier**2) + log_cosh)


# The scores every run computes, higher = more likely included:
# - "likelihood_ratio": sum over steps of the log-likelihood ratio of "included" against "excluded" for
#   one step of the claimed Poisson-subsampled Gaussian mechanism (most powerful against a correct one);
# - "differenced_likelihood_ratio": the same for the differences between consecutive steps' observations,
#   blind to anything repeated from one step to the next (repeated noise cancels);
# - "sum": the canary's coordinate summed over all steps (the classic white-box score, for comparison).
SCORES = ("likelihood_ratio", "differenced_likelihood_ratio", "sum")


def _initial_state(num_canaries, dtype):
    # Running sums of the scores over the steps (float64; each step's terms are computed in the
    # observations' precision), the previous step's observations, and whether there was one.
    zeros = tf.zeros([num_canaries], tf.float64)
    return zeros, zeros, zeros, tf.zeros([num_canaries], dtype), tf.constant(False)


def _add_step(state, observations, *, noise_multiplier, sampling_probability):
    totals, likelihood, differenced, previous, has_previous = state
    claimed = {"noise_multiplier": noise_multiplier, "sampling_probability": sampling_probability}
    step = tf.cast(_log_likelihood_ratio(observations, **claimed), tf.float64)
    step_difference = tf.cast(_log_likelihood_ratio_of_difference(observations - previous, **claimed), tf.float64)
    return (
        totals + tf.cast(observations, tf.float64),
        likelihood + step,
        differenced + tf.where(has_previous, step_difference, tf.zeros_like(step_difference)),
        observations,
        tf.constant(True),
    )


def _named(state):
    totals, likelihood, differenced, _, _ = state
    return {"likelihood_ratio": likelihood, "differenced_likelihood_ratio": differenced, "sum": totals}


def check_scores(scores) -> tuple:
    """`scores` as a tuple of distinct known score names; ValueError naming the allowed ones otherwise."""
    scores = (scores,) if isinstance(scores, str) else tuple(scores)
    if not scores or len(set(scores)) != len(scores) or not set(scores) <= set(SCORES):
        raise ValueError(f"scores must be distinct names among {SCORES}, got {scores!r}")
    return scores


def _canary_data(is_included, background):
    # Rows: the included canaries, then the background examples. A canary row touches w_index with
    # weight `scale`; a background row has scale 0 (it never reaches w) and its features x_i.
    indices = np.flatnonzero(is_included).astype(np.int32)
    num_background = 0 if background is None else len(background)
    data = {
        "index": np.concatenate([indices, np.zeros(num_background, np.int32)]),
        "scale": np.concatenate([np.full(len(indices), 1.0, np.float32), np.zeros(num_background, np.float32)]),
    }
    if background is not None:
        canary_rows = np.zeros((len(indices), background.shape[1]), np.float32)
        data["features"] = np.concatenate([canary_rows, background.astype(np.float32)])
    return data


def dirac_canary_scores(
    *,
    is_included,
    noise_multiplier: float,
    sampling_probability: float,
    steps: int,
    l2_norm_clip: float = 1.0,
    canary_variables: int = 1,
    background=None,
    mechanism=private_gradients,
    sampling_seed=None,
):
    """Runs `steps` DP-SGD steps on Dirac canaries (and background examples) and scores every canary.

    The private dataset holds the canaries with `is_included` True and the background examples; each
    step Poisson-samples it (`privgan.dp.poisson_batches`) and calls `mechanism` on the batch, with no
    noise seed: a real mechanism draws its own secret noise. The mechanism's divisor is the public
    expected batch size q (n_background + m / 2), fixed in advance, so that nothing in the output
    depends on how many canaries were included beyond their own coordinates.

    Args:
        is_included: boolean array of shape (m,), whether each canary is in the private dataset.
        noise_multiplier: sigma of the claimed mechanism, > 0 (the scores use it).
        sampling_probability: Poisson sampling probability q, in (0, 1].
        steps: number of DP-SGD steps T, >= 1.
        l2_norm_clip: the clipping bound C, > 0.
        canary_variables: L >= 1, how many variables (separate layers) each canary's gradient spans,
            with equal norm in each; L > 1 exposes a mechanism that clips each variable separately.
        background: None, or an array (n, d) of background examples' gradients x_i (losses <v, x_i>).
        mechanism: a callable with the signature of `privgan.dp.private_gradients` (the default);
            called as `mechanism(loss_fn, variables, batch, l2_norm_clip=..., noise_multiplier=...,
            expected_batch_size=...)`.
        sampling_seed: seed of the Poisson sampling (None, the default: secret, from the operating system,
            as the claimed epsilon assumes).

    Returns:
        A dict from every name in `SCORES` to an array of shape (m,), higher = more likely included.
    """
    is_included = np.asarray(is_included, dtype=bool)
    num_canaries = is_included.size
    num_background = 0 if background is None else len(background)
    expected_batch_size = sampling_probability * (num_background + num_canaries / 2)

    if isinstance(canary_variables, bool) or not isinstance(canary_variables, (int, np.integer)) \
            or canary_variables < 1:
        raise ValueError(f"canary_variables must be an integer >= 1, got {canary_variables!r}")
    canary_layers = [
        keras.layers.Embedding(num_canaries, 1, embeddings_initializer="zeros") for _ in range(canary_variables)
    ]
    for layer in canary_layers:
        layer.build((None,))
    variables = [layer.embeddings for layer in canary_layers]
    if background is not None:
        background_layer = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
        background_layer.build((None, background.shape[1]))
        variables.append(background_layer.kernel)
    # Each canary's gradient: 2C in its coordinate of every canary variable (2 sqrt(L) C in all).
    canary_weight = CANARY_GRADIENT_NORM * l2_norm_clip

    def per_example_loss(batch):
        weights = tf.add_n([layer(batch["index"])[:, 0] for layer in canary_layers])
        losses = canary_weight * batch["scale"] * weights
        if background is not None:
            losses += background_layer(batch["features"])[:, 0]
        return losses

    dataset = poisson_batches(
        _canary_data(is_included, background),
        sampling_probability=sampling_probability,
        steps=steps,
        seed=sampling_seed,
    )
    # Observations in units where an included, sampled canary adds 1 (its L coordinates' sum / sqrt(L))
    # through a correct mechanism.
    to_observation = expected_batch_size / (l2_norm_clip * math.sqrt(canary_variables))

    claimed = {"noise_multiplier": noise_multiplier, "sampling_probability": sampling_probability}

    @tf.function
    def run():
        state = _initial_state(num_canaries, variables[0].dtype)
        for batch in dataset:
            gradients = mechanism(
                per_example_loss,
                variables,
                batch,
                l2_norm_clip=l2_norm_clip,
                noise_multiplier=noise_multiplier,
                expected_batch_size=expected_batch_size,
            )
            coordinates = tf.add_n([gradient[:, 0] for gradient in gradients[:canary_variables]])
            state = _add_step(state, coordinates * to_observation, **claimed)
        return _named(state)

    return {name: score.numpy() for name, score in run().items()}


def simulated_canary_scores(
    *, is_included, noise_multiplier: float, sampling_probability: float, steps: int, seed: int
):
    """The scores of `dirac_canary_scores` for observations drawn from the claimed mechanism itself.

    Each step, canary j's observation is 1[included and sampled] + sigma z, z standard normal: what a
    correct mechanism shows, without running any mechanism. Used to plan an audit (how many guesses to
    make) before it runs, from public parameters only.

    Args:
        is_included: boolean array of shape (m,).
        noise_multiplier: sigma, > 0.
        sampling_probability: q, in (0, 1].
        steps: T, >= 1.
        seed: int seed of the simulation.

    Returns:
        A dict from every name in `SCORES` to an array of shape (m,).
    """
    included = tf.constant(np.asarray(is_included, dtype=bool))
    num_canaries = int(included.shape[0])
    claimed = {"noise_multiplier": noise_multiplier, "sampling_probability": sampling_probability}

    @tf.function
    def run():
        state = _initial_state(num_canaries, tf.float32)
        for step in tf.range(steps, dtype=tf.int64):
            key = tf.stack([tf.constant(seed, tf.int64), step])
            sampled = tf.random.stateless_uniform([num_canaries], seed=key) < sampling_probability
            noise = tf.random.stateless_normal([num_canaries], seed=key + [0, steps])
            state = _add_step(state, tf.cast(included & sampled, tf.float32) + noise_multiplier * noise, **claimed)
        return _named(state)

    return {name: score.numpy() for name, score in run().items()}
