"""Slow, obviously-correct references for the DP mechanism: one example at a time, in NumPy."""

import numpy as np
import tensorflow as tf


def one_at_a_time_gradients(loss_of_example, variables, xs, ys):
    """Gradient of each example's loss, computed by a Python loop (the reference, not the product)."""
    gradients = []
    for x, y in zip(xs, ys):
        with tf.GradientTape() as tape:
            loss = loss_of_example(x[None], y[None])
        gradients.append([g.numpy() for g in tape.gradient(loss, variables)])
    return gradients


def clipped_sum_reference(per_example, *, l2_norm_clip):
    """Clips each example's concatenated gradient to the bound and sums, in NumPy."""
    total = [np.zeros_like(g) for g in per_example[0]]
    for grads in per_example:
        norm = np.sqrt(sum(float(np.sum(np.square(g))) for g in grads))
        factor = min(1.0, l2_norm_clip / norm) if norm > 0 else 1.0
        total = [t + factor * g for t, g in zip(total, grads)]
    return total
