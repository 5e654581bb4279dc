"""Train on Synthetic, Test on Real (TSTR): the accuracy on the real test set of a CNN trained on synthetic data.

Reads the labelled synthetic data (training) and the real TEST set (accuracy); never the real training set.
"""

import dataclasses

import numpy as np

from privgan.evaluation.classifier import train_classifier


@dataclasses.dataclass(frozen=True)
class TSTRResult:
    """TSTR accuracy.

    Attributes:
        accuracy: accuracy on the real test set of the CNN trained on synthetic data.
        num_synthetic: number of synthetic training examples.
        num_test: number of real test examples.
        epochs: training epochs of the CNN.
    """

    accuracy: float
    num_synthetic: int
    num_test: int
    epochs: int

    def summary(self):
        """One line of text."""
        return (
            f"TSTR accuracy {self.accuracy:.4f}: CNN trained {self.epochs} epochs on {self.num_synthetic} "
            f"synthetic examples, tested on {self.num_test} real test examples"
        )


def train_synthetic_test_real(
    x_synthetic, y_synthetic, x_test, y_test, *, num_classes, epochs=5, batch_size=128, seed=0
):
    """Trains `evaluation_cnn` on labelled synthetic images and measures its accuracy on real test images.

    Args:
        x_synthetic: synthetic images (N, H, W, C), in the value range of `x_test`.
        y_synthetic: their integer labels.
        x_test: real test images.
        y_test: real test labels.
        num_classes: number of classes, >= 2.
        epochs: training epochs, >= 1.
        batch_size: training batch size.
        seed: seed of the CNN's initialisation and shuffling.

    Returns:
        A `TSTRResult`.

    Raises:
        ValueError: if the synthetic data are empty or the labels do not match.
    """
    model = train_classifier(
        x_synthetic, y_synthetic, num_classes=num_classes, epochs=epochs, batch_size=batch_size, seed=seed
    )
    logits = model.predict(np.asarray(x_test, dtype=np.float32), batch_size=512, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == np.asarray(y_test)))
    return TSTRResult(accuracy=accuracy, num_synthetic=len(x_synthetic), num_test=len(x_test), epochs=epochs)
