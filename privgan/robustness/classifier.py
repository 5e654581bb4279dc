"""The classifier under attack: a Keras model, what it outputs, and the range its inputs must stay in."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

OUTPUTS = ("logits", "probabilities")


@dataclasses.dataclass(frozen=True, eq=False)
class Classifier:
    """A Keras classifier as attacks, certification and reports see it.

    Attacks work on logits; a model that outputs probabilities (a softmax at the end) is read through
    their logarithm, which equals its logits up to a per-example constant, so cross-entropy, margins and
    argmax are unchanged. Gradients through a saturated softmax vanish: that is gradient masking, and
    `privgan.robustness.robustness_report` is there to notice it.

    Attributes:
        model: a built Keras model mapping a batch of inputs to (batch, classes) scores. It is called
            with `training=False`.
        output: "logits" or "probabilities".
        valid_range: `(low, high)`, the box every input lies in (e.g. (0, 1) for images scaled by
            255); adversarial inputs are clipped to it.
    """

    model: keras.Model
    output: str = "logits"
    valid_range: tuple = (0.0, 1.0)

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        low, high = (float(v) for v in self.valid_range)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"valid_range must be (low, high) with finite low < high, got {self.valid_range}")
        object.__setattr__(self, "valid_range", (low, high))

    def logits(self, x):
        """Logits (or log-probabilities) of a batch, as a float32 tensor."""
        scores = tf.cast(self.model(x, training=False), tf.float32)
        if self.output == "probabilities":
            # The smallest positive float32 keeps log finite; where a probability underflows to 0
            # the gradient is 0 anyway (that is the masking the report checks for).
            scores = tf.math.log(tf.maximum(scores, np.finfo(np.float32).tiny))
        return scores

    def predict_labels(self, x, *, batch_size=512):
        """Predicted classes of `x` (numpy int64), batch by batch."""
        x = np.asarray(x, dtype=np.float32)
        labels = [
            np.argmax(keras.ops.convert_to_numpy(self.logits(x[i : i + batch_size])), axis=1)
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)

    def check_inputs(self, x, name="x"):
        """Raises ValueError unless every value of `x` lies in `valid_range`."""
        low, high = self.valid_range
        x = np.asarray(x)
        if x.size and (np.nanmin(x) < low or np.nanmax(x) > high or np.isnan(x).any()):
            raise ValueError(
                f"{name} has values in [{np.nanmin(x):g}, {np.nanmax(x):g}] (or NaN), outside the declared "
                f"valid_range [{low:g}, {high:g}]"
            )
