"""Monitoring adversarial training on held-out data: robust validation accuracy and best-epoch weights."""

import keras
import numpy as np

from privgan.robustness.classifier import Classifier


class RobustValidation(keras.callbacks.Callback):
    """After each epoch, attacks a validation split and logs `val_robust_accuracy` (and `val_clean_accuracy`).

    With `restore_best`, the weights of the epoch with the highest robust validation accuracy are
    restored when training ends: Wong, Rice & Kolter's guard against catastrophic overfitting of fast
    FGSM training, and Rice et al.'s (2020) early stopping against robust overfitting. The split must be
    carved from the training data, never the test split.

    Args:
        attack: an attack from `privgan.robustness.attacks` (e.g. `PGD(epsilon=0.3, steps=20)`).
        x, y: the validation examples and labels.
        classifier_model: the Keras model to attack and whose weights are kept; None: the trained
            model's `model` attribute (the adversarial training models and `DPModel` have one).
        output: "logits" or "probabilities".
        valid_range: the inputs' box.
        restore_best: restore the best epoch's weights at the end of training.
        seed: seed of the attack's random starts, the same every epoch.
        batch_size: examples per attack call.
    """

    def __init__(self, attack, x, y, *, classifier_model=None, output="logits", valid_range=(0.0, 1.0),
                 restore_best=True, seed=0, batch_size=500):
        super().__init__()
        self.attack = attack
        self.x, self.y = np.asarray(x, np.float32), np.asarray(y)
        self.classifier_model = classifier_model
        self.output, self.valid_range = output, valid_range
        self.restore_best, self.seed, self.batch_size = restore_best, seed, batch_size
        self.best_robust_accuracy, self.best_epoch, self._best_weights = -1.0, None, None

    def _target(self):
        return self.classifier_model if self.classifier_model is not None else self.model.model

    def on_epoch_end(self, epoch, logs=None):
        target = self._target()
        classifier = Classifier(target, output=self.output, valid_range=self.valid_range)
        _, result = self.attack.run(classifier, self.x, self.y, batch_size=self.batch_size, seed=self.seed)
        if logs is not None:
            logs["val_robust_accuracy"] = result.robust_accuracy
            logs["val_clean_accuracy"] = result.clean_accuracy
        if result.robust_accuracy > self.best_robust_accuracy:
            self.best_robust_accuracy, self.best_epoch = result.robust_accuracy, epoch
            self._best_weights = [np.copy(w) for w in target.get_weights()]

    def on_train_end(self, logs=None):
        if self.restore_best and self._best_weights is not None:
            self._target().set_weights(self._best_weights)
