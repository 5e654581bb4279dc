"""The random streams of DP-SGD: secret Gaussian noise by default, and a layout no two streams share.

Every random draw privgan makes is a stateless Philox draw from a seed pair `[key, counter]`. The
counter's top bits name the stream, so the Poisson sampling, the DP noise and Keras' own
`SeedGenerator`s (initialisation, latents) can never feed the same input to the generator, whatever
seeds a user passes (the same number for all of them included):

    counter = SAMPLING_DOMAIN | stream << STREAM_SHIFT | step             Poisson sampling of a step
    counter = NOISE_DOMAIN | position << DRAW_BITS | draw mod 2**DRAW_BITS DP noise (`NoiseStream`; draw
                                                                           counts the draws at a position)
    the same | EXTENSION_BIT                                               the noise's rare tail words
    counter < 2**61                                                        Keras SeedGenerators

`stream` tells apart the samplers of a model that samples several private sets in one step (such as
the labelled and the unlabelled examples of a semi-supervised GAN): with the same seed and step they
still draw from different Philox inputs, so their samples are independent.

A `NoiseStream`'s key is 64 bits from the operating system's entropy (`secrets`) unless a seed is
given explicitly: no global seed (`keras.utils.set_random_seed`, numpy, Python's `random`) reaches it,
so nobody can subtract the noise from a released update. An explicit seed makes the noise reproducible,
for research only: the privacy statement then says that the guarantee does not hold against anyone who
knows the seed (compare Opacus' `secure_mode`).

The noise itself is Box-Muller on 32-bit words, one for the radius and one for the angle of each pair.
The radius needs uniforms near 0 to reach the tails: one word gives u >= 2^-33 and caps the radius at
6.8 sigma, so a word of 0 is continued by further words, twice, which gives u >= 2^-97 (still a normal
float32) and caps the radius at `MAX_RADIUS` = 11.6 sigma. What a cap costs: a sampled step's output can leave
the support of the neighbouring dataset's output only if some pair's radius exceeds MAX_RADIUS - 1 / sigma, which has
probability about exp(-(MAX_RADIUS - 1 / sigma)^2 / 2) per sampled step: 1.5e-15 at sigma = 0.3, 1e-20 at
sigma = 0.5 and 4e-25 at sigma = 1 (`truncation_probability`). Over 10^6 sampled steps at sigma >= 0.3
that adds at most 1.5e-9 to delta, which privgan does not add to the reported delta.

No value is exactly 0, which would publish the exact clipped sum in that coordinate: near u = 1 the
radius is computed from 1 - u (>= 2^-33, exact), so it is at least 2^-16 sigma (in float32, u itself
rounds to 1.0 for the 128 largest words, a zero radius with probability 2^-25 per pair), and the angle
is 2 pi (w + 1/2) 2^-32, never 0. (A float16 noise value below 6e-8 still rounds to 0, as any float16
value does below half its smallest step: that is the float grid, not an atom of the sampler.) Like every
floating-point sampler, this is not a "secure" Gaussian in the sense of Mironov (2012): the low-order
bits of float32 values are not uniform.
"""

import math
import secrets

import tensorflow as tf

SAMPLING_DOMAIN = 1 << 61
# Sampling streams sit above the step in the sampling counter: steps below 2^48, streams below 2^13.
STREAM_SHIFT = 48
MAX_SAMPLING_STEP = (1 << STREAM_SHIFT) - 1
MAX_SAMPLING_STREAM = (1 << (61 - STREAM_SHIFT)) - 1
NOISE_DOMAIN = 1 << 62
# Set (with NOISE_DOMAIN) in the counter of the rare extra words of a noise draw's tails.
EXTENSION_BIT = 1 << 61
DRAW_BITS = 20
# Positions (DP steps and releases) a noise stream can address: 2^41, far beyond any training run.
MAX_POSITION = (1 << (61 - DRAW_BITS)) - 1
# The largest radius a Box-Muller pair can have, in units of the standard deviation: u >= 2^-97.
MAX_RADIUS = math.sqrt(2 * 97 * math.log(2))


def secret_int64():
    """64 bits of operating-system entropy as a signed int64 (for Philox keys)."""
    return secrets.randbits(64) - (1 << 63)


def truncation_probability(noise_multiplier):
    """About how likely one sampled step's noise is to reveal the cap on the Gaussian's tails.

    The probability that a pair of noise coordinates lies beyond `MAX_RADIUS - 1 / noise_multiplier`
    standard deviations, the region where a neighbouring dataset's output may not reach (see the
    module docstring); it bounds the delta the truncation adds per step in which the example is sampled.

    Args:
        noise_multiplier: sigma > 0.

    Returns:
        exp(-(MAX_RADIUS - 1 / sigma)^2 / 2), or 1.0 when 1 / sigma >= MAX_RADIUS.
    """
    if not noise_multiplier > 0:
        raise ValueError(f"noise_multiplier must be > 0, got {noise_multiplier}")
    reach = MAX_RADIUS - 1.0 / noise_multiplier
    return 1.0 if reach <= 0 else math.exp(-reach * reach / 2)


def _check_seed(seed, name):
    if isinstance(seed, bool) or not isinstance(seed, int) or not -(1 << 63) <= seed < (1 << 64):
        raise ValueError(f"{name} must be None (secret) or an integer in [-2^63, 2^64), got {seed!r}")
    return seed - (1 << 64) if seed >= (1 << 63) else seed


def check_sampling_stream(stream):
    """Returns `stream` if it is an integer in [0, 2^13); raises a ValueError otherwise."""
    if isinstance(stream, bool) or not isinstance(stream, int) or not 0 <= stream <= MAX_SAMPLING_STREAM:
        raise ValueError(f"stream must be an integer in [0, {MAX_SAMPLING_STREAM}], got {stream!r}")
    return stream


def sampling_seed_pair(seed, step, stream=0):
    """The stateless seed of step `step`'s Poisson sample in sampling stream `stream` (int64, shape (2,)).

    `step` must be below 2^48 and `stream` (a Python int) in [0, 2^13): the three fields of the counter
    then never overlap.
    """
    stream = check_sampling_stream(stream)
    step = tf.cast(step, tf.int64)
    tf.debugging.assert_less_equal(step, tf.constant(MAX_SAMPLING_STEP, tf.int64), message="sampling step out of range")
    counter = tf.bitwise.bitwise_or(step, SAMPLING_DOMAIN | (stream << STREAM_SHIFT))
    return tf.stack([tf.constant(seed, tf.int64), counter])


class NoiseStream:
    """The source of one model's (or one user's) DP noise: secret by default, never drawn twice.

    Each draw gets its own Philox input `[key, NOISE_DOMAIN | position << DRAW_BITS | draw]`. Without
    `position`, `draw` counts this object's draws. With it (a model's global DP step: the steps and
    releases of earlier phases in its ledger plus its own saved step counter), `draw` counts the draws
    at the current position (0 for a step's first), so that a model resumed from a checkpoint or
    continuing another's ledger moves on to positions never used before, and a reproducible stream
    gives a resumed job, in a new process, the same noise as the uninterrupted one.

    Args:
        seed: None (a secret key of 64 bits from the operating system, redrawn by `rekey`) or an
            integer: reproducible noise, for research only; no privacy against anyone who knows it.
        position: None, or a function returning the current position as an int64 scalar tensor (it is
            called while tracing a train step).

    Raises:
        ValueError: if `seed` is not None or a 64-bit integer.
    """

    def __init__(self, seed=None, *, position=None):
        self.reproducible = seed is not None
        key = secret_int64() if seed is None else _check_seed(seed, "noise seed")
        self._position = position
        # Plain tf.Variables: Keras does not save them with a model's weights, so a secret key never
        # reaches a checkpoint. init_scope lifts their creation out of any tf.function being traced.
        with tf.init_scope():
            self._key = tf.Variable(key, dtype=tf.int64, trainable=False, name="noise_key")
            # Under a distribution strategy every replica draws the same (only the first adds it).
            first = tf.VariableAggregation.ONLY_FIRST_REPLICA
            self._draws = tf.Variable(0, dtype=tf.int64, trainable=False, name="noise_draws", aggregation=first)
            self._last_position = tf.Variable(-1, dtype=tf.int64, trainable=False, name="noise_last_position",
                                              aggregation=first)

    def rekey(self, key=None):
        """Draws a fresh secret key, or takes `key` (a no-op for a reproducible stream).

        Models call it at the start of every `fit`, so that even a rolled-back step counter (weights
        of an earlier checkpoint loaded into the same model) never meets an old key again.

        Args:
            key: None (64 bits of operating-system entropy), or a secret key another process drew that
                way: the workers of a multi-worker fit all take the chief's, sent over the strategy's
                collectives (`privgan.dp.distribution`), never through a file or a log.
        """
        if not self.reproducible:
            self._key.assign(secret_int64() if key is None else _check_seed(key, "noise key"))

    def next_seed(self):
        """The stateless seed of the next draw (an int64 tensor of shape (2,)); advances the stream."""
        if self._position is None:
            counter = self._draws.assign_add(1) - 1
        else:
            position = tf.cast(self._position(), tf.int64)
            tf.debugging.assert_less_equal(position, tf.constant(MAX_POSITION, tf.int64),
                                           message="noise stream position out of range")
            # The draw's index at this position: 0 at a position the stream has not drawn at just before.
            draw = tf.where(tf.equal(position, self._last_position), self._draws + 1, tf.zeros_like(position))
            self._last_position.assign(position)
            self._draws.assign(draw)
            counter = tf.bitwise.bitwise_or(
                tf.bitwise.left_shift(position, DRAW_BITS),
                tf.bitwise.bitwise_and(draw, (1 << DRAW_BITS) - 1),
            )
        return tf.stack([tf.identity(self._key), tf.bitwise.bitwise_or(counter, NOISE_DOMAIN)])

    def describe(self):
        """How the noise was seeded, for privacy statements."""
        if self.reproducible:
            return ("reproducible from an explicit noise seed: the guarantee does not hold against anyone "
                    "who knows that seed")
        return "secret: keyed with 64 bits of operating-system entropy, never saved"


_DEFAULT_STREAM = None


def default_stream():
    """The process-wide secret stream `private_gradients` draws from when given no stream."""
    global _DEFAULT_STREAM
    if _DEFAULT_STREAM is None:
        _DEFAULT_STREAM = NoiseStream()
    return _DEFAULT_STREAM


def _radius_uniform(first, extension_seed, *, dtype=tf.float32):
    """u in (0, 1) from uint32 words: (w + 1/2) 2^-32, and for the rare w = 0, two more words.

    A first word of 0 (probability 2^-32 per pair) is continued by more words, from `extension_seed`:
    u = (w' + 1/2) 2^-64, or (w'' + 1/2) 2^-96 if w' = 0 too. So u >= 2^-97 (a normal float32). The
    extension words (two per pair, in a branch taken only when some first word is 0) keep every shape
    static, so the DP step compiles with XLA (`jit_compile=True`, Keras' default on a GPU).

    In float32, u rounds to 1.0 for the 128 largest words: callers that take log(u) must use
    `_log_radius_uniform`, which never does.
    """
    u = (tf.cast(first, dtype) + 0.5) * 2.0**-32
    rare = tf.equal(first, 0)

    def extended():
        more = tf.random.stateless_uniform(
            tf.stack([2, tf.size(first)]), seed=extension_seed, minval=None, maxval=None, dtype=tf.uint32
        )
        second, third = (tf.cast(w, dtype) + 0.5 for w in tf.unstack(more))
        return tf.where(rare, tf.where(more[0] > 0, second * 2.0**-64, third * 2.0**-96), u)

    return tf.cond(tf.reduce_any(rare), extended, lambda: u)


def _log_radius_uniform(first, extension_seed, *, dtype=tf.float32):
    """log u < 0 for the u of `_radius_uniform`, computed so that it is never 0.

    For the upper half of the words, (w + 1/2) 2^-32 would round to 1.0 in float32 for the 128 largest
    (a radius of exactly 0: both values of the pair exactly 0, an atom that publishes the clipped sum
    there). There log u = log1p(-(1 - u)) with 1 - u = (~w + 1/2) 2^-32 >= 2^-33, exact in float32, so
    log u <= log1p(-2^-33) < 0 and the radius is at least 2^-16 standard deviations.
    """
    upper = first >= (1 << 31)
    complement = (tf.cast(tf.bitwise.invert(first), dtype) + 0.5) * 2.0**-32
    lower = tf.math.log(_radius_uniform(first, extension_seed, dtype=dtype))
    return tf.where(upper, tf.math.log1p(-complement), lower)


def standard_normal_from_words(log_radius_uniform, angle_words, *, dtype=tf.float32, scale=1.0):
    """Box-Muller: pairs of N(0, 1) values from the radius's log-uniforms and the angle's uint32 words.

    The angle is 2 pi (w + 1/2) 2^-32: the half-word offset keeps it off 0 (whose sine is exactly 0),
    so, with the radius bounded away from 0 (`_log_radius_uniform`), no value is exactly 0. Computed in
    float32 (float64 for float64 `dtype`) and cast, so that half-precision variables get the full tails.

    Args:
        log_radius_uniform: log u for uniforms u in (0, 1), one per pair, all < 0.
        angle_words: uint32 words, one per pair.
        dtype: the dtype of the result.
        scale: a standard deviation to give the values (N(0, scale^2)), applied in the computing
            precision (one multiplication per pair rather than per value).

    Returns:
        A vector of 2 * len(log_radius_uniform) values.
    """
    compute = tf.float64 if dtype == tf.float64 else tf.float32
    scale = tf.cast(scale, compute)
    radius = tf.sqrt(tf.cast(log_radius_uniform, compute) * (-2.0 * scale * scale))
    angle = (2.0 * math.pi * 2.0**-32) * (tf.cast(angle_words, compute) + 0.5)
    return tf.cast(tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0), dtype)


def gaussian_noise_like(tensors, *, stddev, seed):
    """Independent N(0, stddev^2) noise for every entry of `tensors`, in one draw.

    One draw over the concatenated size (then split) keeps the noise of different variables independent.

    Args:
        tensors: list of tensors whose shapes and dtypes the noise takes.
        stddev: the standard deviation (a number or scalar tensor).
        seed: a stateless seed, an int64 tensor of shape (2,) from `NoiseStream.next_seed`. The same
            seed gives the same noise: never use one twice.

    Returns:
        A list of noise tensors with the shapes of `tensors`.
    """
    if not tensors:
        return []
    if all(t.shape.is_fully_defined() for t in tensors):  # the usual case: no size computed at run time
        sizes = [t.shape.num_elements() for t in tensors]
        total = sum(sizes)
    else:
        sizes = tf.stack([tf.size(t, out_type=tf.int32) for t in tensors])
        total = tf.reduce_sum(sizes)
    dtype = tf.as_dtype(tensors[0].dtype)
    words = tf.random.stateless_uniform(
        tf.stack([2, (total + 1) // 2]), seed=seed, minval=None, maxval=None, dtype=tf.uint32
    )
    # The tail's extra words come from the same draw's counter with the extension bit set.
    extension_seed = tf.stack([seed[0], tf.bitwise.bitwise_or(seed[1], EXTENSION_BIT)])
    compute = tf.float64 if dtype == tf.float64 else tf.float32
    flat = standard_normal_from_words(
        _log_radius_uniform(words[0], extension_seed, dtype=compute), words[1], dtype=dtype, scale=stddev
    )
    if not isinstance(total, int) or total % 2:
        flat = flat[:total]
    if len(tensors) == 1:
        return [tf.reshape(flat, tf.shape(tensors[0]))]
    pieces = tf.split(flat, sizes)
    return [tf.reshape(p, tf.shape(t)) for p, t in zip(pieces, tensors)]
