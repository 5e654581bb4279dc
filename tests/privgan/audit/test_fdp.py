"""The f-DP one-run bound against DP-SGD's own privacy curves (privgan.audit.fdp)."""

import math

import numpy as np
import pytest
from scipy import special

from privgan.accounting import epsilon as accountant_epsilon
from privgan.audit.bounds import fdp_one_run_margin
from privgan.audit.fdp import (
    NOISE_GRID_RATIO,
    PLAN_BOTTOM_FRACTIONS,
    PLAN_TOP_FRACTIONS,
    dp_sgd_blow_up_inverse,
    dp_sgd_curve_bound,
    dp_sgd_lower_bound_one_run,
    plan_fdp_guesses,
)
from tests.privgan.audit.test_bounds import _paper_mu_bound


@pytest.mark.parametrize("noise_multiplier, steps", [(1.0, 1), (2.0, 4), (4.0, 9)])
def test_curve_of_full_batch_steps_is_gaussian_dp(noise_multiplier, steps):
    # T full-batch Gaussian steps with noise sigma are exactly sqrt(T) / sigma-GDP (Dong, Roth & Su 2022,
    # Corollary 3.3), so f(1 - x) = Phi(Phi^-1(x) - sqrt(T) / sigma): the curve from the PLD must never
    # exceed it (a stronger claim would make the test invalid) and should be close to it.
    mu = math.sqrt(steps) / noise_multiplier
    blow_up_inverse = dp_sgd_blow_up_inverse(noise_multiplier=noise_multiplier, sampling_probability=1.0,
                                             steps=steps)
    for x in (1e-5, 1e-4, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.8, 0.99):
        exact = float(special.ndtr(special.ndtri(x) - mu))
        assert blow_up_inverse(x) <= exact * (1 + 1e-9)
        assert blow_up_inverse(x) >= 0.99 * exact  # measured within 0.03% at sigma 2, T 4
    assert blow_up_inverse(0.0) == 0.0


@pytest.mark.parametrize(
    "m, guesses, correct, alpha",
    [(1000, 100, 100, 0.05), (1000, 100, 90, 0.05), (10_000, 300, 282, 0.0125), (500, 60, 41, 0.1)],
)
def test_bound_on_one_gaussian_step_matches_the_papers_gaussian_dp_test(m, guesses, correct, alpha):
    # One full-batch step is the Gaussian mechanism, 1/sigma-GDP: the smallest sigma' the guesses reject
    # is 1 / (the largest mu the paper's mu-GDP test rejects, written independently in test_bounds), rounded
    # up to the grid and slightly above it because the PLD's curve is a little weaker (never below).
    bound = dp_sgd_curve_bound([(guesses, correct)], num_canaries=m, sampling_probability=1.0, steps=1, alpha=alpha)
    exact = 1 / _paper_mu_bound(m, guesses, correct, alpha)
    assert exact <= bound.noise_multiplier <= exact * 1.01
    assert bound.candidate == 0 and not bound.at_grid_end
    # The reported epsilon is the accountant's for that sigma'.
    sigma, epsilon = dp_sgd_lower_bound_one_run(num_canaries=m, num_guesses=guesses, num_correct=correct,
                                                sampling_probability=1.0, steps=1, delta=1e-5, alpha=alpha)
    assert sigma == bound.noise_multiplier
    assert epsilon == pytest.approx(accountant_epsilon(noise_multiplier=sigma, sampling_probability=1.0, steps=1,
                                                       delta=1e-5))


def test_pure_dp_curve_with_one_correct_guess_has_a_closed_form():
    # With v = r = 1 the test has one step: it rejects iff f(1 - alpha / m) > (1 - alpha) / m. For pure
    # epsilon-DP f(1 - x) = e^-epsilon x near 0, so it rejects iff epsilon < ln(alpha / (1 - alpha)) < 0:
    # never. With v = r = 2 on m = 2 canaries at alpha = 0.5 (r_2 = 0.5, h_2 = 0): h_1 = e^-eps / 2,
    # r_1 = 0.5 + e^-eps / 2 (capped at 1), h_0 = max(h_1, e^-eps r_1), r_0 = r_1; rejection iff r_0 + h_0 > 1.
    for epsilon in (0.1, 1.0, 3.0):
        def pure(x, epsilon=epsilon):
            return max(math.exp(-epsilon) * x, 1 - math.exp(epsilon) * (1 - x), 0.0)

        assert fdp_one_run_margin(num_canaries=10, num_guesses=1, num_correct=1, blow_up_inverse=pure, alpha=0.05) < 0
        r1 = min(0.5 + math.exp(-epsilon) / 2, 1.0)
        expected = r1 + max(math.exp(-epsilon) / 2, pure(r1)) - 1
        assert fdp_one_run_margin(num_canaries=2, num_guesses=2, num_correct=2, blow_up_inverse=pure,
                                  alpha=0.5) == pytest.approx(expected)


def _simulated_scores(rng, *, num_canaries, noise_multiplier, sampling_probability, steps):
    # A correct DP-SGD run on Dirac canaries, scored by the per-step likelihood ratio of the claimed mechanism.
    included = rng.random(num_canaries) < 0.5
    sampled = rng.random((steps, num_canaries)) < sampling_probability
    observed = (included & sampled) + noise_multiplier * rng.normal(size=(steps, num_canaries))
    shift = np.exp((2 * observed - 1) / (2 * noise_multiplier**2))
    return np.log(1 - sampling_probability + sampling_probability * shift).sum(axis=0), included


def test_bound_never_refutes_a_correct_mechanism_and_sees_much_of_it():
    # 200 simulated one-run audits of correct DP-SGD (sigma 1, q 0.5, T 10: epsilon 10.5 at delta 1e-5) on
    # 1000 canaries, guessing "included" for the top 100 and "excluded" for the bottom 50. The bound exceeds
    # the accountant's epsilon only if the guesses reject the curve at sigma itself (rejection is monotone
    # in sigma'), which must happen in at most about alpha of the runs. Here it does when all 150 guesses
    # are right: the test works at the edge of what the correct mechanism does, not far from it.
    rng = np.random.default_rng(0)
    schedule = dict(noise_multiplier=1.0, sampling_probability=0.5, steps=10)
    alpha, m, top, bottom = 0.1, 1000, 100, 50
    curve = dp_sgd_blow_up_inverse(**schedule)
    counts = []
    for _ in range(200):
        scores, included = _simulated_scores(rng, num_canaries=m, **schedule)
        ranked = included[np.argsort(-scores)]
        counts.append(int(ranked[:top].sum() + (~ranked[m - bottom:]).sum()))
    refuted = [fdp_one_run_margin(num_canaries=m, num_guesses=top + bottom, num_correct=correct,
                                  blow_up_inverse=curve, alpha=alpha) > 0 for correct in counts]
    assert np.mean(refuted) <= alpha  # measured 3 of 200 (median 146 right guesses of 150)
    median = dp_sgd_lower_bound_one_run(num_canaries=m, num_guesses=top + bottom, num_correct=int(np.median(counts)),
                                        sampling_probability=0.5, steps=10, delta=1e-5, alpha=alpha)[1]
    assert median > 0.25 * accountant_epsilon(delta=1e-5, **schedule)  # measured 0.51


def test_planned_guesses_are_among_the_candidates():
    rng = np.random.default_rng(1)
    scores, included = _simulated_scores(rng, num_canaries=1000, noise_multiplier=0.8, sampling_probability=0.2,
                                         steps=20)
    top, bottom = plan_fdp_guesses(scores, included, alpha=0.1, sampling_probability=0.2, steps=20,
                                   start_noise_multiplier=0.8)
    assert (top / 1000, bottom / 1000) in {(t, b) for t in PLAN_TOP_FRACTIONS for b in PLAN_BOTTOM_FRACTIONS}


def test_alpha_per_candidate_and_no_bound():
    # The first candidate that rejects is reported; a candidate with no correct guess rejects nothing.
    bound = dp_sgd_curve_bound([(10, 0), (100, 100)], num_canaries=1000, sampling_probability=1.0, steps=1,
                               alpha=[0.01, 0.04])
    assert bound.candidate == 1
    assert bound.noise_multiplier == dp_sgd_curve_bound([(100, 100)], num_canaries=1000, sampling_probability=1.0,
                                                        steps=1, alpha=0.04).noise_multiplier
    nothing = dp_sgd_curve_bound([(10, 5)], num_canaries=1000, sampling_probability=1.0, steps=1, alpha=0.05)
    assert math.isinf(nothing.noise_multiplier) and nothing.candidate == -1
    assert nothing.epsilon(sampling_probability=1.0, steps=1, delta=1e-5) == 0.0
    assert math.log(bound.noise_multiplier) / math.log(NOISE_GRID_RATIO) == pytest.approx(
        round(math.log(bound.noise_multiplier) / math.log(NOISE_GRID_RATIO)), abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(candidates=[(10, 11)]), "num_correct <= num_guesses"), (dict(candidates=[]), "at least one"),
     (dict(alpha=1.5), "alpha must be in"), (dict(alpha=[0.01, 0.01]), "one per candidate"),
     (dict(steps=0), "steps must be"), (dict(sampling_probability=0.0), "sampling_probability must be"),
     (dict(num_canaries=5), "num_canaries=5")],
)
def test_bad_arguments_are_refused(kwargs, match):
    arguments = dict(candidates=[(10, 9)], num_canaries=100, sampling_probability=1.0, steps=1, alpha=0.05)
    with pytest.raises(ValueError, match=match):
        dp_sgd_curve_bound(**{**arguments, **kwargs})
