"""DP adversarial training: the DP step's guarantees hold, and one example's influence stays bounded by C."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from privgan.dp import NonPrivateLayerError, check_sensitivity, make_private
from privgan.robustness import DPAdversarialTraining
from privgan.robustness import losses as losses_lib
from privgan.robustness.perturbations import project

CLIP = 0.1


def _data(n=96):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] > x[:, 1]).astype(np.int64)


def _classifier():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])


def _dp_adversarial(num_examples, **kwargs):
    return DPAdversarialTraining(_classifier(), epsilon=0.2, steps=3, attack_seed=0, l2_norm_clip=CLIP,
                                 noise_multiplier=1.0, num_examples=num_examples, expected_batch_size=32, **kwargs)


def test_dp_adversarial_training_takes_charged_dp_steps_and_round_trips(tmp_path):
    x, y = _data()
    model = _dp_adversarial(len(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x, y, epochs=1, delta=1e-5, sampling_seed=0, verbose=0).history
    # Same sigma, q and steps as plain DP-SGD: the same epsilon.
    plain = make_private(_classifier(), l2_norm_clip=CLIP, noise_multiplier=1.0, num_examples=len(x),
                         expected_batch_size=32)
    assert model.privacy_ledger.total_steps == plain.planned_dp_steps(1) == 3
    assert history["epsilon"][-1] == pytest.approx(model.privacy_spent(delta=1e-5))
    path = tmp_path / "dp_adversarial.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, DPAdversarialTraining) and restored.privacy_ledger.total_steps == 3
    assert restored.epsilon == 0.2 and restored.steps == 3


def test_batch_normalization_is_still_refused():
    classifier = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), keras.layers.BatchNormalization(),
                                   keras.layers.Dense(2)])
    with pytest.raises(NonPrivateLayerError):
        DPAdversarialTraining(classifier, epsilon=0.1, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=10,
                              expected_batch_size=5)


def _eager_check_sensitivity(per_example_loss_fn, variables, batch):
    # Traced, the attack's tf.while_loop calls the model where the layer-by-layer clipping recorder cannot
    # reach the recorded inputs (check_sensitivity compiles its removals); run eagerly, the loop unrolls,
    # and a handful of removals costs less than tracing. (method="vectorized" works traced, ~10x slower.)
    tf.config.run_functions_eagerly(True)
    try:
        return check_sensitivity(per_example_loss_fn, variables, batch, l2_norm_clip=CLIP)
    finally:
        tf.config.run_functions_eagerly(False)


def test_removing_one_example_moves_the_clipped_sum_by_at_most_c():
    x, y = _data(12)
    model = _dp_adversarial(96)
    x, y = tf.constant(x), tf.constant(y)
    # Each example keeps its own random start when another is removed (the coupling of the DP argument).
    batch = (x, y, model.random_starts(x))

    def per_example_loss(batch):
        inputs, labels, starts = batch
        return losses_lib.cross_entropy(model.model(model.adversarial_examples(inputs, labels, starts)), labels)

    report = _eager_check_sensitivity(per_example_loss, model.model.trainable_variables, batch)
    assert report.passed, report.summary()
    assert report.examples_checked == 12 and report.ratio > 0.5  # the test sees real, clipped gradients


def test_the_remove_one_test_catches_an_attack_that_mixes_examples():
    # A "universal" perturbation (the sign of the batch's summed input gradient) makes every example's
    # adversarial input depend on all the others: removing one moves many clipped gradients.
    x, y = _data(12)
    model = _dp_adversarial(96)

    def shared_perturbation(inputs, labels):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(losses_lib.cross_entropy(model.model(inputs), labels))
        direction = tf.sign(tf.reduce_sum(tape.gradient(loss, inputs), axis=0, keepdims=True))
        return tf.stop_gradient(project(inputs + 0.5 * direction, inputs, epsilon=0.5, norm="linf",
                                        valid_range=(0.0, 1.0)))

    def per_example_loss(batch):
        inputs, labels = batch
        return losses_lib.cross_entropy(model.model(shared_perturbation(inputs, labels)), labels)

    report = _eager_check_sensitivity(per_example_loss, model.model.trainable_variables,
                                      (tf.constant(x), tf.constant(y)))
    assert not report.passed and report.ratio > 1.01, report.summary()
