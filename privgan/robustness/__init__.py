"""Adversarial robustness: attacks, adversarial training, randomised smoothing and robustness reports.

- `attacks`: FGSM, PGD (L-inf, L2; random starts, restarts), APGD-CE/DLR, Carlini-Wagner L2 on a
  `Classifier` (a Keras model, its output kind and valid input range), with `AdversarialAttackResult`s.
- `training`: PGD-AT, fast FGSM and TRADES as `keras.Model` subclasses; `callbacks.RobustValidation`.
- `private`: adversarial training under DP-SGD (`DPAdversarialTraining`, a `privgan.dp.DPModel`).
- `smoothing`: Cohen et al.'s smoothed classifier, certification with Clopper-Pearson bounds, noise training.
- `report`: the attack suite's worst case and the gradient-masking checks.
"""

from privgan.robustness.attacks import APGD, FGSM, PGD, AdversarialAttackResult, CarliniWagnerL2, worst_case
from privgan.robustness.callbacks import RobustValidation
from privgan.robustness.classifier import Classifier
from privgan.robustness.private import DPAdversarialTraining
from privgan.robustness.report import GradientMaskingWarning, MaskingCheck, RobustnessReport, robustness_report
from privgan.robustness.smoothing import CertificationResult, GaussianNoiseTraining, SmoothedClassifier
from privgan.robustness.training import TRADES, AdversarialTrainer, FastFGSMTraining, PGDAdversarialTraining

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "TRADES",
    "AdversarialAttackResult",
    "AdversarialTrainer",
    "CarliniWagnerL2",
    "CertificationResult",
    "Classifier",
    "DPAdversarialTraining",
    "FastFGSMTraining",
    "GaussianNoiseTraining",
    "GradientMaskingWarning",
    "MaskingCheck",
    "PGDAdversarialTraining",
    "RobustValidation",
    "RobustnessReport",
    "SmoothedClassifier",
    "robustness_report",
    "worst_case",
]
