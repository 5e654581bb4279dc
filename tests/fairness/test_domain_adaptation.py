import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from fairness.domain_adaptation import DANN
from fairness.schedules import AnnealedLearningRate, GradientReversalSchedule, reversal_strength


def _networks(n_inputs, n_features=8, domain_hidden=0):
    feature_extractor = keras.Sequential(
        [keras.Input((n_inputs,)), keras.layers.Dense(n_features, activation="relu")]
    )
    label_predictor = keras.Sequential([keras.Input((n_features,)), keras.layers.Dense(2)])
    hidden = [keras.layers.Dense(domain_hidden, activation="relu")] if domain_hidden else []
    domain_classifier = keras.Sequential([keras.Input((n_features,)), *hidden, keras.layers.Dense(2)])
    return feature_extractor, label_predictor, domain_classifier


def _shifted_domains(n, seed=0):
    """The label is the sign of x0; the target differs from the source only by x1 shifted by 2."""
    rng = np.random.default_rng(seed)
    source_x = rng.normal(size=(n, 2)).astype(np.float32)
    target_x = rng.normal(size=(n, 2)).astype(np.float32) + np.float32([0.0, 2.0])
    return source_x, (source_x[:, 0] > 0).astype(np.int64), target_x


def test_domain_gradient_reaches_the_features_reversed_and_scaled_by_lambda():
    strength, learning_rate = 0.3, 0.1
    dann = DANN(*_networks(3), seed=0)
    dann.compile(keras.optimizers.SGD(learning_rate=learning_rate))
    dann.gradient_reversal.strength.assign(strength)
    rng = np.random.default_rng(0)
    source_x = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    target_x = tf.constant(rng.normal(size=(4, 3)) + 1.0, tf.float32)
    source_y = tf.constant([0, 1, 1, 0])
    features_vars = dann.feature_extractor.trainable_variables
    domain_vars = dann.domain_classifier.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        features = dann.feature_extractor(tf.concat([source_x, target_x], 0))
        label_loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(source_y, dann.label_predictor(features[:4]), True)
        )
        domain_loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(
                tf.constant([0] * 4 + [1] * 4), dann.domain_classifier(features), True
            )
        )
    label_grads = tape.gradient(label_loss, features_vars)
    domain_grads_features = tape.gradient(domain_loss, features_vars)
    domain_grads_classifier = tape.gradient(domain_loss, domain_vars)
    before_features = [v.numpy() for v in features_vars]
    before_domain = [v.numpy() for v in domain_vars]

    dann.train_step(((source_x, target_x), source_y))

    for var, before, g_label, g_domain in zip(features_vars, before_features, label_grads, domain_grads_features):
        expected = before - learning_rate * (g_label.numpy() - strength * g_domain.numpy())
        np.testing.assert_allclose(var.numpy(), expected, rtol=1e-5, atol=1e-6)
    # The domain classifier itself descends its loss: no reversal before it.
    for var, before, g_domain in zip(domain_vars, before_domain, domain_grads_classifier):
        np.testing.assert_allclose(var.numpy(), before - learning_rate * g_domain.numpy(), rtol=1e-5, atol=1e-6)


def test_adversarial_features_fool_the_domain_classifier_but_keep_the_labels():
    source_x, source_y, target_x = _shifted_domains(128)
    epochs = 150

    def last_fifth_mean(max_reversal_strength):
        # Gradient reversal makes the adversary oscillate about chance, so average over the last epochs.
        dann = DANN(*_networks(2, domain_hidden=16), max_reversal_strength=max_reversal_strength, seed=0)
        dann.compile(learning_rate=0.01)
        history = dann.fit(source_x, source_y, target_x, batch_size=32, epochs=epochs, verbose=0).history
        return {name: np.mean(values[-epochs // 5 :]) for name, values in history.items()}

    keras.utils.set_random_seed(0)
    source_only = last_fifth_mean(0.0)
    keras.utils.set_random_seed(0)
    adversarial = last_fifth_mean(1.0)
    # Without reversal, x1's shift passes into the features and the domains are easy to tell apart.
    assert source_only["domain_accuracy"] > 0.8
    assert abs(adversarial["domain_accuracy"] - 0.5) < 0.1
    assert adversarial["label_accuracy"] > 0.95


def test_fit_anneals_reversal_strength_and_learning_rate_over_training():
    source_x, source_y, target_x = _shifted_domains(32)
    dann = DANN(*_networks(2), seed=0)
    dann.compile(learning_rate=0.02)
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(float(dann.gradient_reversal.strength.numpy()))
    )
    dann.fit(source_x, source_y, target_x, batch_size=16, epochs=2, callbacks=[record], verbose=0)
    total = 2 * 32 // 8
    np.testing.assert_allclose(seen, [reversal_strength(i / total) for i in range(total)], rtol=1e-6)
    # The default optimizer is momentum SGD annealed to mu_0 / 11 ** 0.75 by the end of the fit.
    assert isinstance(dann.optimizer, keras.optimizers.SGD) and dann.optimizer.momentum == 0.9
    np.testing.assert_allclose(float(dann.optimizer.learning_rate), 0.02 / 11**0.75, rtol=1e-5)


def test_reversal_strength_follows_the_paper():
    assert reversal_strength(0.0) == 0.0
    np.testing.assert_allclose(reversal_strength(0.5), 2 / (1 + math.exp(-5)) - 1)
    assert 0.9999 < reversal_strength(1.0) < 1.0
    with pytest.raises(ValueError, match=r"progress must be in \[0, 1\]"):
        reversal_strength(1.5)


def test_annealed_learning_rate_follows_the_paper_and_serialises():
    schedule = AnnealedLearningRate(0.01, total_steps=100)
    np.testing.assert_allclose(float(schedule(0)), 0.01)
    np.testing.assert_allclose(float(schedule(50)), 0.01 / 6**0.75, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(100)), 0.01 / 11**0.75, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(500)), float(schedule(100)))
    clone = AnnealedLearningRate.from_config(schedule.get_config())
    np.testing.assert_allclose(float(clone(50)), float(schedule(50)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: AnnealedLearningRate(0.0, total_steps=10), "initial_learning_rate must be > 0"),
        (lambda: AnnealedLearningRate(0.1, total_steps=0), "total_steps must be >= 1"),
        (lambda: GradientReversalSchedule(None, gamma=0.0), "gamma must be > 0"),
        (lambda: DANN(*_networks(2), max_reversal_strength=-1.0), "max_reversal_strength must be >= 0"),
    ],
)
def test_bad_settings_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_fit_refuses_odd_batch_size():
    source_x, source_y, target_x = _shifted_domains(8)
    dann = DANN(*_networks(2))
    dann.compile()
    with pytest.raises(ValueError, match="batch_size must be an even number"):
        dann.fit(source_x, source_y, target_x, batch_size=7)


def test_predict_and_transform_use_the_trained_networks():
    source_x, source_y, target_x = _shifted_domains(64)
    dann = DANN(*_networks(2), seed=0)
    dann.compile(learning_rate=0.05)
    dann.fit(source_x, source_y, target_x, batch_size=32, epochs=10, verbose=0)
    features = dann.transform(target_x)
    assert features.shape == (64, 8)
    np.testing.assert_allclose(dann.predict(target_x, verbose=0), dann.label_predictor(features), atol=1e-5)
    accuracy = dann.evaluate(source_x, source_y, verbose=0, return_dict=True)["label_accuracy"]
    assert accuracy == pytest.approx(np.mean(dann.predict(source_x, verbose=0).argmax(1) == source_y))
