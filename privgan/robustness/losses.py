"""Per-example objectives that attacks maximise, on logits: cross-entropy, DLR, Carlini-Wagner margin, KL."""

import tensorflow as tf


def cross_entropy(logits, labels):
    """Per-example softmax cross-entropy of integer `labels`."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits)


def _label_logit(logits, labels):
    return tf.gather(logits, tf.cast(labels, tf.int32), axis=1, batch_dims=1)


def best_other_logit(logits, labels):
    """Per example, the largest logit of a class other than `labels`."""
    mask = tf.cast(tf.one_hot(tf.cast(labels, tf.int32), tf.shape(logits)[1]), tf.bool)
    return tf.reduce_max(tf.where(mask, tf.fill(tf.shape(logits), logits.dtype.min), logits), axis=1)


def margin(logits, labels):
    """z_y - max_{j != y} z_j: positive when `labels` is the predicted class (Carlini & Wagner's f6)."""
    return _label_logit(logits, labels) - best_other_logit(logits, labels)


def difference_of_logits_ratio(logits, labels):
    """Untargeted DLR loss (Croce & Hein 2020): -(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3).

    Invariant to shifting and rescaling the logits, so it is not fooled by a model that merely scales
    its logits up to flatten the softmax's gradient. Needs at least 3 classes.
    """
    top = tf.math.top_k(logits, k=3).values
    return -margin(logits, labels) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_difference_of_logits_ratio(logits, labels, targets):
    """Targeted DLR loss: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2). Needs at least 4 classes."""
    top = tf.math.top_k(logits, k=4).values
    return -(_label_logit(logits, labels) - _label_logit(logits, targets)) / (
        top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12
    )


def kl_divergence_from_logits(reference_logits, logits):
    """Per-example KL(softmax(reference_logits) || softmax(logits)), TRADES's robust regulariser."""
    reference_log_p = tf.nn.log_softmax(reference_logits)
    return tf.reduce_sum(tf.exp(reference_log_p) * (reference_log_p - tf.nn.log_softmax(logits)), axis=1)
