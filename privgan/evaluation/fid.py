"""Frechet distance between real and synthetic images in the feature space of a classifier.

NOT the Inception FID of the literature (Heusel et al. 2017): the features are the penultimate layer of
a classifier trained on the real TRAINING set of the same dataset (`train_classifier`), so the numbers
are only comparable between runs that use the same feature classifier. The real images compared are
usually the real TEST set.
"""

import dataclasses

import numpy as np
import scipy.linalg

from privgan.evaluation.classifier import classifier_features


@dataclasses.dataclass(frozen=True)
class FIDResult:
    """A Frechet distance on classifier features.

    Attributes:
        fid: the distance (>= 0; 0 for identical feature statistics).
        num_real: number of real images.
        num_synthetic: number of synthetic images.
        feature_dim: dimension of the features.
    """

    fid: float
    num_real: int
    num_synthetic: int
    feature_dim: int

    def summary(self):
        """One line of text."""
        return (
            f"classifier-feature FID {self.fid:.3f} ({self.feature_dim}-d penultimate features of a CNN trained "
            f"on real training data; {self.num_real} real vs {self.num_synthetic} synthetic images; "
            "not Inception FID)"
        )


def frechet_distance(features_a, features_b):
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two Gaussian fits.

    Args:
        features_a: (N_a, d) features, N_a >= 2.
        features_b: (N_b, d) features, N_b >= 2.

    Returns:
        The distance as a float (clipped at 0 against round-off).

    Raises:
        ValueError: if the arrays are not 2-D with the same width and at least 2 rows.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"features must be 2-D with equal widths and >= 2 rows each, got {a.shape} and {b.shape}")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    # sqrtm of a product of PSD matrices is real in exact arithmetic; drop round-off imaginary parts.
    root = np.real(root)
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)
    return float(max(distance, 0.0))


def fid_of_features(real_features, synthetic_features):
    """A `FIDResult` for features already computed (see `frechet_distance`)."""
    return FIDResult(
        fid=frechet_distance(real_features, synthetic_features),
        num_real=len(real_features),
        num_synthetic=len(synthetic_features),
        feature_dim=int(np.shape(real_features)[1]),
    )


def classifier_fid(x_real, x_synthetic, *, classifier, batch_size=512):
    """The Frechet distance between real and synthetic images on `classifier`'s penultimate features.

    Args:
        x_real: real images (usually the test set).
        x_synthetic: synthetic images of the same shape and value range.
        classifier: a model from `train_classifier` (trained on the real training set).
        batch_size: prediction batch size.

    Returns:
        A `FIDResult`.
    """
    features = classifier_features(classifier)
    real = features.predict(np.asarray(x_real, dtype=np.float32), batch_size=batch_size, verbose=0)
    synthetic = features.predict(np.asarray(x_synthetic, dtype=np.float32), batch_size=batch_size, verbose=0)
    return fid_of_features(real, synthetic)
