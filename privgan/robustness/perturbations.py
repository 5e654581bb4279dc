"""The graph-level perturbation searches that attacks and adversarial training share.

Everything here works on one batch, with TensorFlow ops only (loops are `tf.range` loops, so they become
`tf.while_loop`s inside a `tf.function` or a Keras train step), and treats each example on its own:
the perturbation of example i depends on example i (and its random start) only. That is what lets
`privgan.robustness.DPAdversarialTraining` clip per example and keep DP-SGD's sensitivity bound.

An objective is a function `x_adv -> (losses, success)`: per-example values to maximise and a boolean
per example saying whether the attack's goal is met (all False when there is no such goal, as for
TRADES's KL term). Randomness comes in as stateless seeds (shape-(2,) integer tensors) drawn by the
caller, e.g. from a `keras.random.SeedGenerator`.
"""

import math

import tensorflow as tf

from privgan.robustness import losses as losses_lib

NORMS = ("linf", "l2")
# Below this a gradient is treated as zero when normalising it (an L2 step has no direction then).
_TINY = 1e-12


def check_threat_model(*, norm, epsilon):
    """Validates a norm name and radius, raising ValueError naming the argument."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")


def _per_example(values, like):
    """Reshapes a (B,) vector so that it broadcasts against `like` of shape (B, ...)."""
    return tf.reshape(values, tf.concat([[-1], tf.ones([tf.rank(like) - 1], tf.int32)], 0))


def per_example_norms(delta, norm):
    """The L-inf or L2 norm of each example's perturbation, shape (B,)."""
    flat = tf.reshape(delta, [tf.shape(delta)[0], -1])
    if norm == "linf":
        return tf.reduce_max(tf.abs(flat), axis=1) if flat.shape[1] != 0 else tf.zeros(tf.shape(flat)[:1])
    return tf.norm(flat, axis=1)


def ascent_direction(gradient, norm):
    """The steepest-ascent direction of unit norm: sign(g) for L-inf, g / ||g||_2 for L2 (0 if g = 0)."""
    if norm == "linf":
        return tf.sign(gradient)
    return gradient / _per_example(tf.maximum(per_example_norms(gradient, "l2"), _TINY), gradient)


def project(x_adv, x, *, epsilon, norm, valid_range):
    """Projects `x_adv` onto the `norm` ball of radius `epsilon` around `x`, then clips to `valid_range`.

    Clipping to a box that contains `x` only shrinks each coordinate of the perturbation, so the result
    stays in the ball.
    """
    delta = x_adv - x
    epsilon = tf.cast(epsilon, delta.dtype)
    if norm == "linf":
        delta = tf.clip_by_value(delta, -epsilon, epsilon)
    else:
        norms = per_example_norms(delta, "l2")
        delta = delta * _per_example(tf.minimum(1.0, epsilon / tf.maximum(norms, _TINY)), delta)
    return tf.clip_by_value(x + delta, valid_range[0], valid_range[1])


def random_start(x, *, epsilon, norm, valid_range, seed):
    """A point drawn uniformly from the `norm` ball around each example, clipped to `valid_range`.

    Args:
        x: the batch.
        epsilon: the radius.
        norm: "linf" or "l2".
        valid_range: `(low, high)`.
        seed: a shape-(2,) integer tensor (stateless seed).
    """
    epsilon = tf.cast(epsilon, x.dtype)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    if norm == "linf":
        delta = tf.random.stateless_uniform(tf.shape(x), seeds[0], -1.0, 1.0, dtype=x.dtype) * epsilon
    else:
        # Uniform in the L2 ball: a uniform direction, radius epsilon * U^(1/d).
        direction = ascent_direction(tf.random.stateless_normal(tf.shape(x), seeds[0], dtype=x.dtype), "l2")
        dimension = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
        radius = epsilon * tf.random.stateless_uniform(tf.shape(x)[:1], seeds[1], dtype=x.dtype) ** (1.0 / dimension)
        delta = direction * _per_example(radius, x)
    return tf.clip_by_value(x + delta, valid_range[0], valid_range[1])


def classification_objective(logits_fn, labels, *, loss="ce", targets=None):
    """The objective of an evasion attack on a classifier.

    Args:
        logits_fn: maps a batch of inputs to logits.
        labels: the true classes.
        loss: "ce" (cross-entropy) or "dlr" (difference of logits ratio).
        targets: None for an untargeted attack (success: the prediction leaves `labels`); otherwise the
            classes to reach (success: the prediction equals `targets`), and the loss pulls toward them.

    Returns:
        A function `x_adv -> (losses, success)`.
    """
    if loss not in ("ce", "dlr"):
        raise ValueError(f"loss must be 'ce' or 'dlr', got {loss!r}")

    def objective(x_adv):
        logits = logits_fn(x_adv)
        predictions = tf.argmax(logits, axis=1, output_type=tf.int32)
        if targets is None:
            values = losses_lib.cross_entropy(logits, labels) if loss == "ce" else (
                losses_lib.difference_of_logits_ratio(logits, labels))
            return values, tf.not_equal(predictions, tf.cast(labels, tf.int32))
        values = -losses_lib.cross_entropy(logits, targets) if loss == "ce" else (
            losses_lib.targeted_difference_of_logits_ratio(logits, labels, targets))
        return values, tf.equal(predictions, tf.cast(targets, tf.int32))

    return objective


def value_and_gradient(objective, x_adv):
    """Per-example objective values, success flags and the gradient of the values' sum w.r.t. `x_adv`.

    A gradient that does not exist (an input that does not reach the loss) is zero.
    """
    with tf.GradientTape() as tape:
        tape.watch(x_adv)
        values, success = objective(x_adv)
        total = tf.reduce_sum(values)
    gradient = tape.gradient(total, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return values, success, gradient


def _keep_best(best, candidate, take):
    return tf.where(_per_example(take, candidate), candidate, best)


class _Best:
    """Per-example bookkeeping of the strongest point found: the first successful one, else the highest loss."""

    @staticmethod
    def update(x_best, best_values, found, x_adv, values, success):
        take = tf.logical_or(
            tf.logical_and(tf.logical_not(found), success),
            tf.logical_and(tf.logical_not(found), values > best_values),
        )
        return (
            _keep_best(x_best, x_adv, take),
            tf.where(take, values, best_values),
            tf.logical_or(found, success),
        )


def projected_gradient_ascent(objective, x, *, start, epsilon, norm, step_size, steps, valid_range):
    """PGD (Madry et al. 2018): `steps` steepest-ascent steps of `step_size`, each projected on the ball.

    FGSM is one step of size epsilon from `start = x`; Wong et al.'s fast FGSM is one step of 1.25
    epsilon from a random start.

    Args:
        objective: `x_adv -> (losses, success)` (see the module doc).
        x: the clean batch, the centre of the ball.
        start: where the ascent begins (`x`, or a `random_start`).
        epsilon, norm, valid_range: the threat model.
        step_size: the step length in `norm`.
        steps: number of steps, a Python int >= 1.

    Returns:
        `(x_last, x_best, found)`: the last iterate (what adversarial training uses), the strongest
        iterate per example (the first successful one, else the one of highest loss; the start counts
        when `steps` iterates do not beat it), and whether a successful point was found.
    """
    x_adv = project(start, x, epsilon=epsilon, norm=norm, valid_range=valid_range)
    values, success, gradient = value_and_gradient(objective, x_adv)
    step_size = tf.cast(step_size, x.dtype)

    def body(i, x_adv, gradient, x_best, best_values, found):
        x_adv = project(x_adv + step_size * ascent_direction(gradient, norm), x, epsilon=epsilon, norm=norm,
                        valid_range=valid_range)
        values, success, gradient = value_and_gradient(objective, x_adv)
        return (i + 1, x_adv, gradient, *_Best.update(x_best, best_values, found, x_adv, values, success))

    # Explicit while loops: Keras compiles train steps without AutoGraph.
    _, x_adv, _, x_best, _, found = tf.while_loop(
        lambda i, *_: i < steps, body, (tf.constant(0), x_adv, gradient, x_adv, values, success)
    )
    return x_adv, x_best, found


def apgd_checkpoints(steps):
    """The iterations after which APGD may halve its step (Croce & Hein 2020, Section 3.2).

    w_j = ceil(p_j * steps) with p_0 = 0, p_1 = 0.22 and p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06):
    the intervals start at 22% of the budget and shrink to 6%.
    """
    previous, current = 0.0, 0.22
    checkpoints = []
    while current <= 1.0:
        checkpoint = math.ceil(current * steps - 1e-9)  # p_j * steps is a sum of decimals: drop its round-off
        if checkpoint >= 1 and (not checkpoints or checkpoint > checkpoints[-1]):
            checkpoints.append(checkpoint)
        previous, current = current, current + max(current - previous - 0.03, 0.06)
    return checkpoints


def auto_projected_gradient_ascent(objective, x, *, start, epsilon, norm, steps, valid_range, rho=0.75,
                                   momentum=0.75):
    """APGD (Croce & Hein 2020): PGD with momentum and a step size that halves when progress stalls.

    The step starts at 2 epsilon. At each checkpoint w_j (`apgd_checkpoints`) an example's step is
    halved, and its search restarts from its best point, when (1) its loss rose in fewer than
    `rho` of the steps since w_{j-1}, or (2) its step was not halved at w_{j-1} and its best loss has not
    improved since then. Every decision is per example.

    Args:
        objective, x, start, epsilon, norm, valid_range: as `projected_gradient_ascent`.
        steps: iterations, a Python int >= 1.
        rho: the fraction of loss increases below which the step is halved.
        momentum: weight of the new step against the previous move (0.75 in the paper; the first step
            has none).

    Returns:
        `(x_best_loss, x_best, found)`: the point of highest loss, the strongest point (first
        successful, else highest loss), and whether a successful point was found.
    """
    checkpoints = tf.constant(apgd_checkpoints(steps), tf.int32)
    x_adv = project(start, x, epsilon=epsilon, norm=norm, valid_range=valid_range)
    values, success, gradient = value_and_gradient(objective, x_adv)
    state = {
        "x_adv": x_adv, "x_previous": x_adv, "gradient": gradient, "last_values": values,
        "x_best": x_adv, "best_values": values, "found": success,  # strongest point (first success)
        "x_max": x_adv, "max_values": values, "gradient_at_max": gradient,  # highest loss, for restarts
        "step": tf.fill(tf.shape(values), 2.0 * tf.cast(epsilon, x.dtype)),
        "increases": tf.zeros_like(values),
        "max_at_last_check": values,
        "halved_at_last_check": tf.ones(tf.shape(values), tf.bool),  # condition 2 is not tested at w_1
        "last_checkpoint": tf.constant(0, tf.int32),
    }

    def body(i, state):
        s = dict(state)
        x_adv = s["x_adv"]
        weight = tf.where(i == 0, 1.0, momentum)
        z = project(x_adv + _per_example(s["step"], x) * ascent_direction(s["gradient"], norm), x,
                    epsilon=epsilon, norm=norm, valid_range=valid_range)
        x_next = project(x_adv + weight * (z - x_adv) + (1.0 - weight) * (x_adv - s["x_previous"]), x,
                         epsilon=epsilon, norm=norm, valid_range=valid_range)
        s["x_previous"], x_adv = x_adv, x_next
        values, success, gradient = value_and_gradient(objective, x_adv)
        s["x_best"], s["best_values"], s["found"] = _Best.update(
            s["x_best"], s["best_values"], s["found"], x_adv, values, success)
        improved = values > s["max_values"]
        s["x_max"] = _keep_best(s["x_max"], x_adv, improved)
        s["gradient_at_max"] = _keep_best(s["gradient_at_max"], gradient, improved)
        s["max_values"] = tf.where(improved, values, s["max_values"])
        increases = s["increases"] + tf.cast(values > s["last_values"], values.dtype)
        s["last_values"] = values
        iteration = i + 1
        # At a checkpoint (a scalar condition, applied through masks rather than a cond):
        at_checkpoint = tf.reduce_any(tf.equal(iteration, checkpoints))
        interval = tf.cast(iteration - s["last_checkpoint"], values.dtype)
        stalled = increases < rho * interval
        stuck = tf.logical_and(tf.logical_not(s["halved_at_last_check"]), s["max_values"] <= s["max_at_last_check"])
        halve = tf.logical_and(at_checkpoint, tf.logical_or(stalled, stuck))
        s["step"] = tf.where(halve, s["step"] / 2.0, s["step"])
        s["x_adv"] = _keep_best(x_adv, s["x_max"], halve)
        s["gradient"] = _keep_best(gradient, s["gradient_at_max"], halve)
        s["halved_at_last_check"] = tf.where(at_checkpoint, halve, s["halved_at_last_check"])
        s["max_at_last_check"] = tf.where(at_checkpoint, s["max_values"], s["max_at_last_check"])
        s["increases"] = tf.where(at_checkpoint, tf.zeros_like(increases), increases)
        s["last_checkpoint"] = tf.where(at_checkpoint, iteration, s["last_checkpoint"])
        return iteration, s

    _, state = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), state))
    return state["x_max"], state["x_best"], state["found"]


def carlini_wagner_l2(logits_fn, x, labels, *, targets, valid_range, binary_search_steps, steps, learning_rate,
                      initial_const, confidence):
    """Carlini & Wagner's L2 attack (2017): min ||delta||_2^2 + c * f(x + delta), binary search on c.

    The input is written as `low + (high - low) * (tanh(w) + 1) / 2`, so it always lies in the valid
    range; w is optimised with Adam. f is the margin max(z_y - max_{j!=y} z_j, -confidence) (untargeted)
    or max(max_{j!=t} z_j - z_t, -confidence) (targeted). Per example, c rises tenfold until an
    adversarial point is found, then is bisected toward the smallest that still succeeds.

    Returns:
        `(x_adv, found)`: the smallest successful perturbation per example (the clean input where none
        was found), and whether one was found.
    """
    low, high = valid_range
    width = high - low
    # Keep tanh's argument finite at the range's edges.
    unit = tf.clip_by_value((x - low) / width * 2.0 - 1.0, -1.0 + 1e-6, 1.0 - 1e-6)
    w_clean = tf.atanh(unit)
    batch = tf.shape(x)[0]
    lower = tf.zeros([batch], x.dtype)
    upper = tf.fill([batch], tf.constant(1e10, x.dtype))
    const = tf.fill([batch], tf.cast(initial_const, x.dtype))
    best_norm = tf.fill([batch], tf.constant(float("inf"), x.dtype))
    x_best = x
    goal = labels if targets is None else targets

    def to_input(w):
        return low + width * (tf.tanh(w) + 1.0) / 2.0

    def margin_and_success(x_adv):
        logits = logits_fn(x_adv)
        if targets is None:
            margin = losses_lib.margin(logits, labels)
        else:
            margin = -losses_lib.margin(logits, targets)
        predictions = tf.argmax(logits, axis=1, output_type=tf.int32)
        hit = tf.equal(predictions, tf.cast(goal, tf.int32))
        success = tf.logical_not(hit) if targets is None else hit
        return tf.maximum(margin, -confidence), margin, success

    def attack_step(t, w, first_moment, second_moment, succeeded, best_norm, x_best, const):
        with tf.GradientTape() as tape:
            tape.watch(w)
            x_adv = to_input(w)
            squared = tf.square(per_example_norms(x_adv - x, "l2"))
            hinge, margin, success = margin_and_success(x_adv)
            objective = tf.reduce_sum(squared + const * hinge)
        gradient = tape.gradient(objective, w)
        # The point just evaluated counts if it succeeds with the required confidence.
        success = tf.logical_and(success, margin <= -confidence)
        norms = tf.sqrt(squared)
        better = tf.logical_and(success, norms < best_norm)
        best_norm = tf.where(better, norms, best_norm)
        x_best = _keep_best(x_best, x_adv, better)
        succeeded = tf.logical_or(succeeded, success)
        # Adam (Kingma & Ba 2015) with the default betas.
        first_moment = 0.9 * first_moment + 0.1 * gradient
        second_moment = 0.999 * second_moment + 0.001 * tf.square(gradient)
        t_float = tf.cast(t, x.dtype)
        corrected = learning_rate * tf.sqrt(1.0 - 0.999**t_float) / (1.0 - 0.9**t_float)
        w = w - corrected * first_moment / (tf.sqrt(second_moment) + 1e-8)
        return t + 1, w, first_moment, second_moment, succeeded, best_norm, x_best, const

    def search_step(j, lower, upper, const, best_norm, x_best):
        initial = (tf.constant(1), w_clean, tf.zeros_like(w_clean), tf.zeros_like(w_clean),
                   tf.zeros([batch], tf.bool), best_norm, x_best, const)
        _, _, _, _, succeeded, best_norm, x_best, _ = tf.while_loop(
            lambda t, *_: t <= steps, attack_step, initial)
        upper = tf.where(succeeded, tf.minimum(upper, const), upper)
        lower = tf.where(succeeded, lower, tf.maximum(lower, const))
        const = tf.where(upper < 1e9, (lower + upper) / 2.0, const * 10.0)
        return j + 1, lower, upper, const, best_norm, x_best

    _, _, _, _, best_norm, x_best = tf.while_loop(
        lambda j, *_: j < binary_search_steps, search_step, (tf.constant(0), lower, upper, const, best_norm, x_best))
    return x_best, tf.math.is_finite(best_norm)
