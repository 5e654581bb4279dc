"""Deliberately broken DP-SGD mechanisms, to check that an audit catches a mechanism that is not DP.

Each wraps a mechanism with the signature of `privgan.dp.private_gradients` (called without `has_aux`)
and keeps its signature, so it can be injected wherever the real one is (`run_whitebox_audit(mechanism=
...)`) while the accountant still charges the sigma it was asked for. Never train with them.
"""

import tensorflow as tf

from privgan.dp import private_gradients


def halved_noise(mechanism=private_gradients):
    """A mechanism that adds half the noise it is asked for: sigma / 2 while the ledger charges sigma."""

    def broken(per_example_loss_fn, variables, batch, *, noise_multiplier, **kwargs):
        return mechanism(per_example_loss_fn, variables, batch, noise_multiplier=noise_multiplier / 2, **kwargs)

    return broken


def repeated_noise(mechanism=private_gradients, *, seed: int = 0):
    """A mechanism whose noise is the same vector at every step (a stateless draw from a fixed seed).

    Every step's noise has the right distribution on its own, but an observer of two steps can cancel
    it: the bug of a noise seed that does not advance (or restarts after a resume).
    """

    def broken(per_example_loss_fn, variables, batch, *, l2_norm_clip, noise_multiplier, expected_batch_size,
               **kwargs):
        clean = mechanism(
            per_example_loss_fn, variables, batch, l2_norm_clip=l2_norm_clip, noise_multiplier=0.0,
            expected_batch_size=expected_batch_size, **kwargs,
        )
        stddev = noise_multiplier * l2_norm_clip / expected_batch_size
        return [
            gradient + tf.cast(stddev, gradient.dtype)
            * tf.random.stateless_normal(tf.shape(gradient), seed=[seed, index], dtype=gradient.dtype)
            for index, gradient in enumerate(clean)
        ]

    return broken


def per_variable_clipping(mechanism=private_gradients):
    """A mechanism that clips each variable's part of an example's gradient to C on its own.

    Each variable gets the noise it should (sigma C per coordinate), but an example whose gradient spans
    L variables moves the update by up to sqrt(L) C instead of C: the bug of a per-layer clipping rule
    that bounds its own layer's norm instead of contributing to the example's global norm. Canaries
    that touch one variable cannot see it (for them it is the correct mechanism); canaries spread over
    several (`run_whitebox_audit(canary_variables=...)`) can.
    """

    def broken(per_example_loss_fn, variables, batch, **kwargs):
        return [mechanism(per_example_loss_fn, [variable], batch, **kwargs)[0] for variable in variables]

    return broken
