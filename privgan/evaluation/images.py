"""One evaluation of labelled synthetic images: TSTR, classifier-feature FID, precision/recall/density/coverage
and within-class diversity, so that experiments and the demo report the same numbers the same way.

Reads the synthetic images, the real images of an evaluation split (the test split for final numbers, a
validation split carved from the training data for model selection) and a feature classifier trained on
real training data. None of it is private: evaluation only.
"""

import dataclasses

import numpy as np

from privgan.evaluation.classifier import classifier_features
from privgan.evaluation.diversity import within_class_pixel_std
from privgan.evaluation.fid import FIDResult, fid_of_features
from privgan.evaluation.manifold import PRDCResult, precision_recall_density_coverage
from privgan.evaluation.tstr import TSTRResult, train_synthetic_test_real


@dataclasses.dataclass(frozen=True)
class ImageEvaluation:
    """The quality, diversity and usefulness of labelled synthetic images against a real split.

    Attributes:
        tstr: Train on Synthetic, Test on Real (the CNN's accuracy on the real split).
        fid: Fréchet distance on the feature classifier's penultimate features (not Inception FID).
        prdc: precision, recall, density and coverage on the same features.
        synthetic_diversity: within-class per-pixel std of the synthetic images, averaged over classes.
        real_diversity: the same for the real split (what a generator without collapse approaches).
    """

    tstr: TSTRResult
    fid: FIDResult
    prdc: PRDCResult
    synthetic_diversity: float
    real_diversity: float

    def summary(self):
        """A few lines of text."""
        return "\n".join([
            self.tstr.summary(),
            self.fid.summary(),
            self.prdc.summary(),
            f"within-class pixel std {self.synthetic_diversity:.3f} (real {self.real_diversity:.3f}; near 0 means "
            "one image per class)",
        ])

    def to_dict(self):
        """The flat numbers, for results.json."""
        return {
            "tstr_accuracy": self.tstr.accuracy,
            "fid": self.fid.fid,
            "precision": self.prdc.precision,
            "recall": self.prdc.recall,
            "density": self.prdc.density,
            "coverage": self.prdc.coverage,
            "within_class_pixel_std": self.synthetic_diversity,
            "real_within_class_pixel_std": self.real_diversity,
        }


def evaluate_synthetic_images(x_synthetic, y_synthetic, x_real, y_real, *, feature_classifier, num_classes,
                              tstr_epochs=5, tstr_batch_size=128, nearest_k=5, max_samples=5000, seed=0):
    """Evaluates labelled synthetic images against a real split.

    Args:
        x_synthetic: synthetic images (N, H, W, C), in the value range of `x_real`.
        y_synthetic: their integer labels.
        x_real: real images of the evaluation split (test for final numbers, validation for selection).
        y_real: their labels.
        feature_classifier: a classifier from `train_classifier`, trained on real TRAINING data; its
            penultimate features serve FID and precision/recall/density/coverage.
        num_classes: number of classes, >= 2.
        tstr_epochs: epochs of the TSTR CNN.
        tstr_batch_size: its batch size.
        nearest_k: k of precision/recall/density/coverage.
        max_samples: subsample size of precision/recall/density/coverage.
        seed: seed of the TSTR CNN and of the subsampling.

    Returns:
        An `ImageEvaluation`.
    """
    features = classifier_features(feature_classifier)
    real_features = features.predict(np.asarray(x_real, dtype=np.float32), batch_size=512, verbose=0)
    synthetic_features = features.predict(np.asarray(x_synthetic, dtype=np.float32), batch_size=512, verbose=0)
    fid = fid_of_features(real_features, synthetic_features)
    prdc = precision_recall_density_coverage(real_features, synthetic_features, nearest_k=nearest_k,
                                             max_samples=max_samples, seed=seed)
    tstr = train_synthetic_test_real(x_synthetic, y_synthetic, x_real, y_real, num_classes=num_classes,
                                     epochs=tstr_epochs, batch_size=tstr_batch_size, seed=seed)
    return ImageEvaluation(
        tstr=tstr,
        fid=fid,
        prdc=prdc,
        synthetic_diversity=within_class_pixel_std(x_synthetic, y_synthetic, num_classes=num_classes)["mean"],
        real_diversity=within_class_pixel_std(x_real, y_real, num_classes=num_classes)["mean"],
    )
