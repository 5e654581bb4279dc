"""Evaluation of synthetic data: TSTR accuracy, a classifier-feature FID, and sample grids.

Which data each metric reads:
  - `train_synthetic_test_real` (TSTR): trains on labelled synthetic data, tests on the real TEST set.
  - `classifier_fid`: features from a classifier trained on the real TRAINING set (`train_classifier`),
    compared between real (test) images and synthetic images. It is not the Inception FID of the
    literature: numbers are only comparable with the same feature classifier.
  - `save_sample_grid`: synthetic samples only.
None of them is private: they read real data outside the DP guarantee and are for evaluation only.
"""

from privgan.evaluation.classifier import classifier_features, evaluation_cnn, train_classifier
from privgan.evaluation.fid import FIDResult, classifier_fid, frechet_distance
from privgan.evaluation.samples import save_sample_grid
from privgan.evaluation.tstr import TSTRResult, train_synthetic_test_real

__all__ = [
    "FIDResult",
    "TSTRResult",
    "classifier_features",
    "classifier_fid",
    "evaluation_cnn",
    "frechet_distance",
    "save_sample_grid",
    "train_classifier",
    "train_synthetic_test_real",
]
