"""White-box Dirac-canary audit: it must stay below the accountant on privgan's mechanism and catch
broken ones (these tests fail when the mechanism is broken: that is their point)."""

import numpy as np
import pytest

from privgan.audit import dirac, run_whitebox_audit
from privgan.audit.dirac import dirac_canary_scores
from privgan.audit.faults import halved_noise, per_variable_clipping, repeated_noise
from privgan.dp import private_gradients

# 200 Poisson steps at q = 0.02 with sigma = 0.968: the accountant's epsilon is 2.0 at delta = 1e-5. Here the
# audit catches noise repeated across steps.
SMALL_RUN = dict(noise_multiplier=0.968, sampling_probability=0.02, steps=200, delta=1e-5, num_canaries=4000)
# One full-batch step (the Gaussian mechanism) at sigma = 1.5: epsilon 2.75. Here the audit catches half the
# noise, through the independent-trials bound over many canaries.
GAUSSIAN_STEP = dict(noise_multiplier=1.5, sampling_probability=1.0, steps=1, delta=1e-5, num_canaries=200_000,
                     one_run_canaries=10_000)
# One full-batch step at sigma = 3 (epsilon 1.27) with canaries spread over 16 variables: here the audit
# catches a mechanism that clips each variable separately (sensitivity 4C instead of C).
SPREAD_CANARIES = dict(noise_multiplier=3.0, sampling_probability=1.0, steps=1, delta=1e-5, num_canaries=10_000,
                       canary_variables=16)


@pytest.mark.parametrize(
    "setting", [SMALL_RUN, GAUSSIAN_STEP, SPREAD_CANARIES], ids=["poisson_steps", "gaussian_step", "spread_canaries"]
)
def test_privgan_mechanism_stays_below_the_accountant(setting):
    # Run on privgan.dp.private_gradients itself: if it repeated its noise, added half of it or clipped
    # each variable separately, the bounds would be those of the broken mechanisms below and this test
    # would fail.
    result = run_whitebox_audit(**setting, seed=0)
    # Each bound exceeds the accountant's epsilon with probability <= alpha if the mechanism is right;
    # measured 0.3-0.6 (of 2.0), 1.4-1.7 (of 2.75) and 0.4-0.6 (of 1.27), so these hold with a wide margin.
    assert result.epsilon_lower_bound <= result.epsilon
    assert result.independent_trials_lower_bound <= result.epsilon
    assert not result.exceeds_accountant and not result.trials_exceed_accountant
    # The Gaussian-DP estimate's lower end on mu: measured 0.21 (of 0.50), 0.65 (of 0.667: one Gaussian step is
    # exactly 0.667-GDP, and the estimate sees nearly all of it) and 0.22 (of 0.33).
    assert result.gaussian_dp_estimate.mu_lower <= result.claimed_mu
    assert not result.gaussian_dp_exceeds_accountant
    # The f-DP one-run bound against the accountant's own curve: never above it on the correct mechanism.
    assert result.fdp_epsilon_lower_bound <= result.epsilon and not result.fdp_exceeds_accountant
    assert "WARNING" not in result.summary()
    # ...and the audit does see the canaries (measured AUC 0.60, 0.64 and 0.59; chance is 0.5 +- 0.01).
    assert result.auc["likelihood_ratio"] > 0.55


def test_repeated_noise_is_caught():
    # The same noise vector at every step: consecutive differences cancel it (measured bounds 4.0 and 5.5).
    result = run_whitebox_audit(**SMALL_RUN, mechanism=repeated_noise(), seed=0)
    assert result.epsilon == pytest.approx(2.0, abs=0.01)
    assert result.exceeds_accountant and result.trials_exceed_accountant
    assert result.one_run_score == "differenced_likelihood_ratio"
    # Gaussian-DP estimate: mu >= 4.8 (epsilon 31) from the differenced score; the last iterate sees nothing.
    assert result.gaussian_dp_exceeds_accountant and result.gaussian_dp_estimate.score == "differenced_likelihood_ratio"
    assert "not DP as claimed" in result.summary()


def test_halved_noise_is_caught():
    # With half the noise, the independent-trials bound over 2e5 canaries measured 3.3-4.0 in simulation.
    result = run_whitebox_audit(**GAUSSIAN_STEP, mechanism=halved_noise(), seed=0)
    assert result.epsilon == pytest.approx(2.75, abs=0.01)
    assert result.trials_exceed_accountant
    assert result.gaussian_dp_exceeds_accountant  # measured epsilon 6.1 (mu >= 1.33 against 0.667)


def test_per_variable_clipping_is_caught_only_by_canaries_spanning_several_variables():
    # Canaries on one variable each cannot tell per-variable clipping from the real thing (measured
    # bounds 0.45-0.56 / 0.37-0.44, as for private_gradients); spread over 16 variables, where the fault lets
    # through 4C, the one-run bound measured 3.0 (and 1.7-2.1 with 8 variables) against epsilon 1.27.
    fault = per_variable_clipping()
    single = run_whitebox_audit(**{**SPREAD_CANARIES, "canary_variables": 1}, mechanism=fault, seed=0)
    assert not single.exceeds_accountant and not single.trials_exceed_accountant
    assert not single.gaussian_dp_exceeds_accountant
    spread = run_whitebox_audit(**SPREAD_CANARIES, mechanism=fault, seed=0)
    assert spread.epsilon == pytest.approx(1.27, abs=0.01)
    assert spread.exceeds_accountant
    assert spread.gaussian_dp_exceeds_accountant  # measured epsilon 5.6 (mu >= 1.23 against 0.33)
    assert "not DP as claimed" in spread.summary()


def test_audit_samples_secretly_unless_given_a_sampling_seed(monkeypatch):
    # The audit's seed (published with its results) fixes the canaries, never the Poisson batches:
    # those are secret, as in training, unless a sampling seed is asked for explicitly.
    seeds = []

    def spy(data, **kwargs):
        seeds.append(kwargs["seed"])
        return poisson_batches(data, **kwargs)

    poisson_batches = dirac.poisson_batches
    monkeypatch.setattr(dirac, "poisson_batches", spy)
    tiny = {**SMALL_RUN, "steps": 2, "num_canaries": 20}
    run_whitebox_audit(**tiny, seed=0)
    run_whitebox_audit(**tiny, seed=0, sampling_seed=7)
    assert seeds == [None, 7]


def test_audit_calls_the_mechanism_without_a_noise_seed():
    calls = []

    def spy(loss_fn, variables, batch, **kwargs):
        calls.append(sorted(kwargs))
        return private_gradients(loss_fn, variables, batch, **kwargs)

    run_whitebox_audit(**{**SMALL_RUN, "steps": 3, "num_canaries": 20}, mechanism=spy, seed=0)
    assert calls and all(keys == ["expected_batch_size", "l2_norm_clip", "noise_multiplier"] for keys in calls)


def _noiseless(mechanism):
    def noiseless(loss_fn, variables, batch, **kwargs):
        return mechanism(loss_fn, variables, batch, **{**kwargs, "noise_multiplier": 0.0})

    return noiseless


@pytest.mark.parametrize("canary_variables", [1, 3])
def test_canary_coordinates_see_only_their_own_clipped_gradient(canary_variables):
    # Without noise, a canary's summed observations count the steps that sampled it (its gradient, 2C
    # per variable before clipping, adds exactly C in all), and background examples with large gradients
    # never reach them; clipping each variable separately lets through sqrt(L) C.
    noiseless = _noiseless(private_gradients)

    is_included = np.arange(50) % 2 == 0
    background = np.random.default_rng(0).normal(scale=10.0, size=(200, 7))
    scores = dirac_canary_scores(
        is_included=is_included, noise_multiplier=1.0, sampling_probability=0.3, steps=20, l2_norm_clip=0.5,
        canary_variables=canary_variables, background=background, mechanism=noiseless, sampling_seed=1,
    )
    counts = scores["sum"]
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)
    assert np.all(counts[~is_included] == 0)
    assert 0.2 * 20 < counts[is_included].mean() < 0.4 * 20
    faulty = dirac_canary_scores(
        is_included=is_included, noise_multiplier=1.0, sampling_probability=0.3, steps=20, l2_norm_clip=0.5,
        canary_variables=canary_variables, background=background, mechanism=_noiseless(per_variable_clipping()),
        sampling_seed=1,
    )
    np.testing.assert_allclose(faulty["sum"], np.sqrt(canary_variables) * counts, rtol=1e-4)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_canaries": 1}, "num_canaries must be an integer in"),
        ({"canary_variables": 0}, "canary_variables must be an integer in"),
        ({"sampling_seed": -1}, "sampling_seed must be an integer in"),
        ({"one_run_canaries": 5000}, "one_run_canaries must be an integer in"),
        ({"steps": 0}, "steps must be an integer in"),
        ({"noise_multiplier": 0.0}, "noise_multiplier must be a finite number > 0"),
        ({"sampling_probability": 1.5}, r"sampling_probability must be in \(0, 1\]"),
        ({"l2_norm_clip": -1.0}, "l2_norm_clip must be a finite number > 0"),
        ({"delta": 0.0}, r"delta must be in \(0, 1\)"),
        ({"alpha": 1.0}, r"alpha must be in \(0, 1\)"),
        ({"scores": ("nope",)}, "scores must be distinct names among"),
        ({"background": np.ones(3)}, "background must be None or a finite 2-D array"),
        ({"mechanism": "private_gradients"}, "mechanism must be a callable"),
    ],
)
def test_bad_arguments_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        run_whitebox_audit(**{**SMALL_RUN, **change})
