"""The Gaussian mechanism of DP-SGD: clip per example, sum, add noise once, divide by the expected size."""

import tensorflow as tf

from privgan.dp.clipping import clipped_gradient_sum
from privgan.dp.noise import NoiseStream, default_stream, gaussian_noise_like


def _check_parameters(l2_norm_clip, noise_multiplier, expected_batch_size):
    # Python numbers are checked eagerly; tensors (e.g. variables inside a train step) are trusted.
    if isinstance(l2_norm_clip, (int, float)) and not l2_norm_clip > 0:
        raise ValueError(f"l2_norm_clip must be > 0, got {l2_norm_clip}")
    if isinstance(noise_multiplier, (int, float)) and not noise_multiplier >= 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    if isinstance(expected_batch_size, (int, float)) and not expected_batch_size > 0:
        raise ValueError(f"expected_batch_size must be > 0, got {expected_batch_size}")


def replicas_in_sync():
    """How many replicas share the current step: 1 outside a distribution strategy's replica context.

    A caller in cross-replica context computes the whole batch itself, so it counts as one.
    """
    if tf.distribute.in_cross_replica_context():
        return 1
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_rows(tensor):
    """This replica's rows of a tensor every replica computed in full: rows r, r + R, ... of replica r.

    Drawing a global batch on every replica (with a mirrored seed, so all draw the same) and keeping
    one's own rows gives the same batch as one device would draw, split across the replicas.
    """
    replicas = replicas_in_sync()
    if replicas == 1:
        return tensor
    return tensor[tf.distribute.get_replica_context().replica_id_in_sync_group :: replicas]


def private_gradients(
    per_example_loss_fn,
    variables,
    batch,
    *,
    l2_norm_clip,
    noise_multiplier,
    expected_batch_size,
    noise=None,
    has_aux=False,
    method="auto",
):
    """DP-SGD gradient: per-example clipping over all `variables`, sum, Gaussian noise, expected-size mean.

    Returns `(sum_i clip_C(g_i) + N(0, (sigma C)^2 I)) / expected_batch_size`. Dividing by the expected
    rather than the realised batch size is what keeps the realised size (itself private under Poisson
    sampling) out of the update. A batch of size 0 gives pure noise / expected_batch_size. An example
    whose gradient is not finite (NaN or inf anywhere) contributes nothing, so one such example cannot
    turn the update into NaN and reveal that it was sampled.

    Under a `tf.distribute` strategy with several replicas, called in replica context (as in a Keras
    `train_step`), each replica passes its part of the global batch and gets its share: its clipped sum
    divided by the global `expected_batch_size`, plus the noise on the first replica only. The shares
    must be summed across replicas, which Keras optimizers' `apply` does; the sum is exactly the
    single-device result, with the noise added once.

    Args:
        per_example_loss_fn: maps `batch` to a vector of per-example losses (or `(losses, aux)` with
            `has_aux`). The loss of example i must depend on example i only (see
            `privgan.dp.check_private_model`).
        variables: the private variables; the clipping bound applies to all of them together.
        batch: a tensor or nested structure of tensors with a leading batch axis.
        l2_norm_clip: the clipping bound C > 0.
        noise_multiplier: sigma >= 0; 0 gives the noiseless clipped mean (no privacy).
        expected_batch_size: the divisor, q * N for Poisson sampling, > 0.
        noise: where the noise comes from: None (privgan's process-wide secret `NoiseStream`) or a
            `privgan.dp.NoiseStream` (each call takes its next draw; `NoiseStream(seed=...)` for noise
            reproducible by anyone who knows the seed).
        has_aux: whether `per_example_loss_fn` also returns auxiliary outputs.
        method: "auto" (per-layer norms without per-example gradients, see `clipping`),
            "vectorized" (materialised per-example gradients; slower, for checking) or "loop" (the same,
            one example at a time).

    Returns:
        A list of tensors matching `variables`, or `(gradients, aux)` when `has_aux`.

    Raises:
        ValueError: if a Python-number argument is out of range.
        TypeError: if `noise` is not None or a `NoiseStream` (a fixed seed would repeat the noise).
        NonPrivateLayerError: if the loss calls a layer that mixes examples (BatchNormalization).
    """
    _check_parameters(l2_norm_clip, noise_multiplier, expected_batch_size)
    if noise is None:
        noise = default_stream()
    elif not isinstance(noise, NoiseStream):
        raise TypeError(
            f"noise must be None (secret noise) or a privgan.dp.NoiseStream, got {noise!r}; a fixed "
            "seed would give every call the same noise"
        )
    variables = list(variables)
    divisor = tf.cast(expected_batch_size, tf.float32)
    # The division by the expected batch size rides on the clip factors and the noise's scale, so the
    # update costs one pass over the gradients (clipped sum + noise), not three.
    summed, _, aux = clipped_gradient_sum(
        per_example_loss_fn, variables, batch, l2_norm_clip=l2_norm_clip, has_aux=has_aux, method=method,
        scale=1.0 / divisor,
    )
    stddev = tf.cast(noise_multiplier, tf.float32) * tf.cast(l2_norm_clip, tf.float32) / divisor
    if replicas_in_sync() > 1:
        # Every replica draws the same noise (the stream's position and key are mirrored), but only
        # the first adds its draw: the all-reduce sum of the shares then holds the noise once.
        stddev *= tf.cast(tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0), tf.float32)
    noise = gaussian_noise_like(summed, stddev=stddev, seed=noise.next_seed())
    result = [s + n for s, n in zip(summed, noise)]
    return (result, aux) if has_aux else result
