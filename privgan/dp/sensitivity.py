"""An empirical check of DP-SGD's sensitivity: removing one example moves the clipped sum by at most C.

Per-example clipping bounds one example's influence only if each example's loss depends on that
example alone. Layers that mix examples (batch statistics, minibatch standard deviation, attention across
the batch) break this silently; privgan refuses the ones it knows, and `check_sensitivity` measures what
it cannot know: run it on a custom model before training it privately.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from privgan.dp.clipping import clipped_gradient_sum


@dataclasses.dataclass(frozen=True)
class SensitivityReport:
    """The result of a remove-one test of the clipped gradient sum.

    Attributes:
        l2_norm_clip: the clipping bound C.
        max_change: the largest L2 change of the clipped sum (all variables together) over the removals.
        worst_example: the index of the example whose removal moved the sum most.
        examples_checked: how many single-example removals were tried.
        tolerance: the relative slack for floating-point error.
    """

    l2_norm_clip: float
    max_change: float
    worst_example: int
    examples_checked: int
    tolerance: float

    @property
    def ratio(self) -> float:
        """max_change / C: at most 1 when the sensitivity is what DP-SGD assumes."""
        return self.max_change / self.l2_norm_clip

    @property
    def passed(self) -> bool:
        """Whether no removal moved the clipped sum by more than C (times 1 + tolerance)."""
        return self.ratio <= 1.0 + self.tolerance

    def summary(self) -> str:
        """A one-paragraph reading of the result."""
        verdict = ("within the bound" if self.passed else
                   "ABOVE the bound: the model mixes examples, and DP-SGD's guarantee does not hold for it")
        return (
            f"Removing one of {self.examples_checked} examples moved the clipped gradient sum by at most "
            f"{self.max_change:.6g} (example {self.worst_example}), {self.ratio:.4f} x the clipping bound "
            f"C = {self.l2_norm_clip:g}: {verdict}."
        )


def check_sensitivity(
    per_example_loss_fn, variables, batch, *, l2_norm_clip, max_examples=32, method="auto", tolerance=1e-4
):
    """Removes examples one at a time and measures how far the clipped gradient sum moves.

    Uses the same clipping as training (`privgan.dp.clipping.clipped_gradient_sum`, no noise), so the
    layers are called on the batch as they are in a DP step: a layer that mixes examples shows up as a
    change above C. Layers that privgan knows to mix examples are refused with `NonPrivateLayerError`
    before anything is measured.

    Args:
        per_example_loss_fn: maps a batch to one loss per example, as for `private_gradients`.
        variables: the private variables.
        batch: a tensor or nested structure of tensors with a leading batch axis, >= 2 examples. Use
            examples whose gradients are clipped (large inputs or a small C), or the test can only see
            changes up to the unclipped norms.
        l2_norm_clip: the clipping bound C > 0.
        max_examples: how many removals to try (the first ones of the batch), >= 1.
        method: "auto", "vectorized" or "loop", as for `private_gradients`.
        tolerance: relative slack for floating-point error, >= 0.

    Returns:
        A `SensitivityReport`; `passed` tells whether every removal stayed within C.

    Raises:
        ValueError: if an argument is out of range.
        NonPrivateLayerError: if the loss calls a layer that is known to mix examples.
    """
    if not l2_norm_clip > 0:
        raise ValueError(f"l2_norm_clip must be > 0, got {l2_norm_clip}")
    if int(max_examples) != max_examples or max_examples < 1:
        raise ValueError(f"max_examples must be an integer >= 1, got {max_examples}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    size = int(tf.shape(tf.nest.flatten(batch)[0])[0])
    if size < 2:
        raise ValueError(f"batch must hold at least 2 examples, got {size}")
    variables = list(variables)
    batch = tf.nest.map_structure(tf.convert_to_tensor, batch)

    def clipped_sum(part):
        summed, _, _ = clipped_gradient_sum(
            per_example_loss_fn, variables, part, l2_norm_clip=l2_norm_clip, method=method
        )
        return summed

    @tf.function
    def change_without(index):
        part = tf.nest.map_structure(lambda t: tf.concat([t[:index], t[index + 1 :]], axis=0), batch)
        difference = [a - b for a, b in zip(clipped_sum(batch), clipped_sum(part))]
        return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(d, tf.float64))) for d in difference]))

    checked = min(int(max_examples), size)
    changes = np.array([float(change_without(tf.constant(i))) for i in range(checked)])
    worst = int(np.argmax(changes))
    return SensitivityReport(
        l2_norm_clip=float(l2_norm_clip),
        max_change=float(changes[worst]),
        worst_example=worst,
        examples_checked=checked,
        tolerance=float(tolerance),
    )
