"""Evaluation of synthetic data: TSTR accuracy, a classifier-feature FID, and sample grids.

Which data each metric reads:
  - `train_synthetic_test_real` (TSTR): trains on labelled synthetic data, tests on the real TEST set.
  - `classifier_fid`: features from a classifier trained on the real TRAINING set (`train_classifier`),
    compared between real (test) images and synthetic images. It is not the Inception FID of the
    literature: numbers are only comparable with the same feature classifier.
  - `precision_recall_density_coverage` (Kynkäänniemi et al. 2019; Naeem et al. 2020): the same features,
    quality (precision, density) and variety (recall, coverage) separately, so collapse shows.
  - `within_class_pixel_std`: synthetic (or real) images only; near 0 means one image per class.
  - `evaluate_synthetic_images`: all of the above against one real split, as experiments and the demo report.
  - `save_sample_grid`: synthetic samples only.
None of them is private: they read real data outside the DP guarantee and are for evaluation only.
"""

from privgan.evaluation.classifier import classifier_features, evaluation_cnn, train_classifier
from privgan.evaluation.diversity import within_class_pixel_std
from privgan.evaluation.fid import FIDResult, classifier_fid, frechet_distance
from privgan.evaluation.images import ImageEvaluation, evaluate_synthetic_images
from privgan.evaluation.manifold import PRDCResult, precision_recall_density_coverage
from privgan.evaluation.samples import save_sample_grid
from privgan.evaluation.tstr import TSTRResult, train_synthetic_test_real

__all__ = [
    "FIDResult",
    "ImageEvaluation",
    "PRDCResult",
    "TSTRResult",
    "classifier_features",
    "classifier_fid",
    "evaluate_synthetic_images",
    "evaluation_cnn",
    "frechet_distance",
    "precision_recall_density_coverage",
    "save_sample_grid",
    "train_classifier",
    "train_synthetic_test_real",
    "within_class_pixel_std",
]
