"""Poisson sampling: every example joins each batch independently with probability q.

This is the sampling scheme the accountant's `PoissonSampledDpEvent` assumes. Batch sizes vary (and can
be 0); the DP mechanism divides by the expected size q * N, never by the realised one.
"""

import numpy as np
import tensorflow as tf

from privgan.dp.noise import check_sampling_stream, sampling_seed_pair, secret_int64


def _num_examples(data):
    sizes = {int(np.shape(leaf)[0]) for leaf in tf.nest.flatten(data)}
    if len(sizes) != 1:
        raise ValueError(f"data: all arrays must have the same number of rows, got sizes {sorted(sizes)}")
    return sizes.pop()


def poisson_batches(
    data, *, sampling_probability, steps=None, seed=None, first_step=0, group_size=None, stream=0
):
    """A `tf.data.Dataset` of Poisson-sampled batches of `data`.

    Batch t keeps example i iff u_{t,i} < q, with u drawn by a stateless generator from `(seed, stream, t)` in
    the sampling domain (`privgan.dp.noise`: it never shares a generator input with the DP noise or
    Keras' seed generators), so a seed reproduces the exact sequence of batches. The accountant's
    amplification by sampling assumes that an adversary does not know which examples were sampled:
    a published sampling seed gives that away. With `group_size` k, each element is a tuple of k
    consecutive batches (t = first_step + k e, ..., first_step + k e + k - 1 for element e): a train
    step that takes k DP steps, such as a GAN's `n_critic` discriminator steps, consumes one element.
    The sequence of batches is the same as without grouping.

    Args:
        data: an array, or a tuple/dict of arrays with the same number of rows (e.g. `(x, y)`).
        sampling_probability: q in (0, 1].
        steps: number of batches; None repeats forever (bound it with `steps_per_epoch` in `fit`). With
            `group_size`, only whole groups are yielded: steps // group_size elements.
        seed: int seed; None draws a secret one (64 bits) from the operating system.
        first_step: index t of the first batch, >= 0. A training run resumed with the same seed must
            continue from its step count: restarting at 0 would repeat earlier batches, and the
            accountant assumes every step's sample is fresh.
        group_size: None (elements are batches) or k >= 1 (elements are tuples of k batches).
        stream: which sampling stream, an integer in [0, 2^13): samplers of different private sets used
            in the same steps (e.g. labelled and unlabelled examples) need different streams, or with
            one seed they would draw the same uniforms and their samples would be correlated.

    Returns:
        A dataset whose elements have the structure of `data` (or are tuples of `group_size` of them) with
        a variable leading dimension.

    Raises:
        ValueError: if q is outside (0, 1], `steps` or `first_step` is negative, `group_size` is not an
            integer >= 1, `stream` is out of range, or the arrays' lengths differ.
    """
    if not 0 < sampling_probability <= 1:
        raise ValueError(f"sampling_probability must be in (0, 1], got {sampling_probability}")
    if steps is not None and steps < 0:
        raise ValueError(f"steps must be >= 0 or None, got {steps}")
    if first_step < 0:
        raise ValueError(f"first_step must be >= 0, got {first_step}")
    if group_size is not None and (int(group_size) != group_size or group_size < 1):
        raise ValueError(f"group_size must be None or an integer >= 1, got {group_size}")
    check_sampling_stream(stream)
    num_examples = _num_examples(data)
    if seed is None:
        seed = secret_int64()
    tensors = tf.nest.map_structure(tf.convert_to_tensor, data)
    q = tf.constant(sampling_probability, tf.float64)

    def sample(step):
        uniforms = tf.random.stateless_uniform([num_examples], seed=sampling_seed_pair(seed, step, stream),
                                               dtype=tf.float64)
        indices = tf.where(uniforms < q)[:, 0]
        return tf.nest.map_structure(lambda t: tf.gather(t, indices), tensors)

    size = 1 if group_size is None else int(group_size)

    def element(index):
        batches = tuple(sample(first_step + size * index + offset) for offset in range(size))
        return batches[0] if group_size is None else batches

    counter = tf.data.Dataset.counter() if steps is None else tf.data.Dataset.range(steps // size)
    return counter.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)
