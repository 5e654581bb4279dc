import keras
import numpy as np
import pytest

from privgan.robustness import APGD, FGSM, PGD, CarliniWagnerL2, Classifier, worst_case
from privgan.robustness.perturbations import apgd_checkpoints
from tests.privgan.robustness.linear import binary_linear_model, linear_model

W = np.array([1.5, -0.5, 0.8, -1.2, 0.3], np.float32)
B = 0.2


@pytest.fixture(scope="module")
def linear_case():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(48, W.size)).astype(np.float32)
    margin = x @ W + B
    y = (margin > 0).astype(np.int64)
    # A wide valid range, so that clipping never binds and the closed forms hold.
    classifier = Classifier(binary_linear_model(W, B), valid_range=(-10.0, 10.0))
    return classifier, x, y, np.abs(margin) / np.linalg.norm(W), np.abs(margin) / np.abs(W).sum()


def _decided(distances, epsilon):
    # Leave out examples within 2% of the radius: a random start off the optimal direction converges
    # to the boundary only in the limit of many steps.
    return np.abs(distances - epsilon) > 0.02 * epsilon


def test_fgsm_takes_the_optimal_linf_step_of_a_linear_model(linear_case):
    classifier, x, y, _, linf = linear_case
    x_adv, result = FGSM(epsilon=0.25).run(classifier, x, y)
    direction = np.where(y[:, None] == 1, -1.0, 1.0) * np.sign(W)  # down the margin of the true class
    np.testing.assert_allclose(x_adv, x + 0.25 * direction, atol=1e-6)
    np.testing.assert_array_equal(result.robust_correct, linf > 0.25)


@pytest.mark.parametrize("attack_class", [PGD, APGD])
@pytest.mark.parametrize("norm,epsilon", [("linf", 0.25), ("l2", 0.5)])
def test_iterative_attacks_fool_exactly_the_examples_within_the_minimal_distance(linear_case, attack_class, norm,
                                                                                 epsilon):
    classifier, x, y, l2, linf = linear_case
    distances = linf if norm == "linf" else l2
    attack = attack_class(epsilon=epsilon, norm=norm, steps=20)
    x_adv, result = attack.run(classifier, x, y, seed=0)
    decided = _decided(distances, epsilon)
    np.testing.assert_array_equal(result.robust_correct[decided], (distances > epsilon)[decided])
    assert 0 < result.robust_accuracy < 1
    assert np.all(result.perturbation_norms <= epsilon + 1e-5)
    assert result.clean_accuracy == 1.0
    assert result.success_rate == pytest.approx(1 - result.robust_accuracy)


def test_carlini_wagner_finds_the_minimal_l2_perturbation(linear_case):
    classifier, x, y, l2, _ = linear_case
    # The valid range is wide (20) and Adam works in tanh space: a small step resolves the boundary.
    attack = CarliniWagnerL2(binary_search_steps=6, steps=200, learning_rate=0.001)
    _, result = attack.run(classifier, x, y)
    assert result.success.all()
    np.testing.assert_allclose(result.perturbation_norms, l2, atol=0.01, rtol=0.02)
    # With a radius, the examples farther than it count as robust.
    _, bounded = CarliniWagnerL2(epsilon=0.4, binary_search_steps=5, steps=60, learning_rate=0.003).run(
        classifier, x, y)
    decided = np.abs(l2 - 0.4) > 0.03
    np.testing.assert_array_equal(bounded.robust_correct[decided], (l2 > 0.4)[decided])


def test_adversarial_inputs_stay_in_the_valid_range_and_the_ball():
    classifier = Classifier(binary_linear_model(W, B), valid_range=(0.0, 1.0))
    rng = np.random.default_rng(1)
    x = rng.choice([0.0, 0.05, 0.95, 1.0], size=(32, W.size)).astype(np.float32)
    y = classifier.predict_labels(x)
    for attack in (FGSM(epsilon=0.3), APGD(epsilon=0.3, steps=5), PGD(epsilon=0.8, norm="l2", steps=5),
                   CarliniWagnerL2(binary_search_steps=2, steps=20)):
        x_adv, _ = attack.run(classifier, x, y, seed=0)
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0, attack
        if attack.epsilon is not None:
            order = np.inf if attack.norm == "linf" else 2
            assert np.all(np.linalg.norm(x_adv - x, ord=order, axis=1) <= attack.epsilon + 1e-5), attack
    with pytest.raises(ValueError, match="valid_range"):
        PGD(epsilon=0.1).run(classifier, x + 2.0, y)


def test_targeted_attacks_reach_the_target_class():
    # Three classes on a line of prototypes: a large enough perturbation can reach any of them.
    classifier = Classifier(linear_model(np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), [0.0, 0.0, 0.0]),
                            valid_range=(-5.0, 5.0))
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.2]], np.float32)
    y = classifier.predict_labels(x)
    targets = (y + 1) % 3
    for attack in (PGD(epsilon=3.0, steps=30, targeted=True), APGD(epsilon=3.0, steps=30, targeted=True),
                   CarliniWagnerL2(targeted=True, binary_search_steps=5, steps=50)):
        _, result = attack.run(classifier, x, y, target_labels=targets, seed=0)
        np.testing.assert_array_equal(result.adversarial_predictions, targets)
        assert result.success_rate == 1.0 and result.targeted
    # Too small a radius cannot reach a target: targeted success is not untargeted success.
    _, small = PGD(epsilon=0.05, steps=10, targeted=True).run(classifier, x, y, target_labels=targets, seed=0)
    assert small.success_rate == 0.0
    with pytest.raises(ValueError, match="target_labels"):
        PGD(epsilon=0.1, targeted=True).run(classifier, x, y)
    with pytest.raises(ValueError, match="targeted=True"):
        PGD(epsilon=0.1).run(classifier, x, y, target_labels=targets)


def test_probability_outputs_are_attacked_through_their_logarithm(linear_case):
    _, x, y, _, linf = linear_case
    probabilities = keras.Sequential([binary_linear_model(W, B), keras.layers.Softmax()])
    classifier = Classifier(probabilities, output="probabilities", valid_range=(-10.0, 10.0))
    _, result = PGD(epsilon=0.25, steps=20).run(classifier, x, y, seed=0)
    decided = _decided(linf, 0.25)
    np.testing.assert_array_equal(result.robust_correct[decided], (linf > 0.25)[decided])


def test_misclassified_examples_are_not_attacked_and_count_as_not_robust(linear_case):
    classifier, x, y, _, _ = linear_case
    wrong = 1 - y
    x_adv, result = PGD(epsilon=0.1, steps=5).run(classifier, x, wrong, seed=0)
    np.testing.assert_array_equal(x_adv, x)
    assert result.clean_accuracy == 0.0 and result.robust_accuracy == 0.0
    assert np.isnan(result.success_rate)


def test_restarts_and_worst_case_combine_per_example(linear_case):
    classifier, x, y, _, linf = linear_case
    _, fgsm = FGSM(epsilon=0.2).run(classifier, x, y)
    _, pgd = PGD(epsilon=0.2, steps=10, restarts=3).run(classifier, x, y, seed=0)
    combined = worst_case([fgsm, pgd])
    np.testing.assert_array_equal(combined.robust_correct, fgsm.robust_correct & pgd.robust_correct)
    summary = combined.summary()
    assert "robust accuracy" in summary and "success rate" in summary
    assert set(combined.to_dict()) >= {"clean_accuracy", "robust_accuracy", "success_rate", "mean_perturbation_norm"}


def test_apgd_checkpoints_follow_the_paper():
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


@pytest.mark.parametrize("make", [
    lambda: PGD(epsilon=0.0), lambda: PGD(epsilon=0.1, norm="l1"), lambda: PGD(epsilon=0.1, steps=0),
    lambda: APGD(epsilon=0.1, rho=1.5), lambda: CarliniWagnerL2(confidence=-1.0), lambda: FGSM(epsilon=float("nan")),
])
def test_bad_settings_are_refused(make):
    with pytest.raises(ValueError):
        make()
