"""Linear classifiers whose optimal adversarial perturbations are known in closed form."""

import keras
import numpy as np


def binary_linear_model(w, b):
    """Logits (0, w.x + b): class 1 iff w.x + b > 0.

    For an example x the smallest perturbation that flips the class has L2 norm |w.x + b| / ||w||_2
    (along -sign(w.x + b) w) and L-inf norm |w.x + b| / ||w||_1 (along -sign(w.x + b) sign(w)).
    """
    w = np.asarray(w, np.float32)
    model = keras.Sequential([keras.Input((w.size,)), keras.layers.Dense(2)])
    model.layers[0].set_weights([np.stack([np.zeros_like(w), w], axis=1), np.array([0.0, b], np.float32)])
    return model


def linear_model(weights, bias):
    """Logits W^T x + b for a (features, classes) weight matrix."""
    weights = np.asarray(weights, np.float32)
    model = keras.Sequential([keras.Input((weights.shape[0],)), keras.layers.Dense(weights.shape[1])])
    model.layers[0].set_weights([weights, np.asarray(bias, np.float32)])
    return model
