import math
import warnings

import dp_accounting
import pytest

from privgan.accounting import dp_sgd_event, epsilon, epsilon_of_event
from privgan.accounting.events import warn_if_delta_too_large

# Pinned with dp-accounting 0.6: MNIST-sized DP-SGD as in tf-privacy's tutorials.
MNIST_60_EPOCHS = dict(noise_multiplier=1.1, sampling_probability=256 / 60000, steps=14063)
MNIST_15_EPOCHS = dict(noise_multiplier=1.3, sampling_probability=150 / 60000, steps=6000)


@pytest.mark.parametrize(
    "config, accountant, expected",
    [
        (MNIST_60_EPOCHS, "rdp", 2.5967),
        (MNIST_60_EPOCHS, "pld", 2.3818),
        (MNIST_15_EPOCHS, "rdp", 0.72422),
    ],
)
def test_epsilon_matches_pinned_values(config, accountant, expected):
    assert epsilon(**config, delta=1e-5, accountant=accountant) == pytest.approx(expected, abs=1e-3)


def test_default_accountant_is_pld():
    assert epsilon(**MNIST_15_EPOCHS, delta=1e-5) == epsilon(**MNIST_15_EPOCHS, delta=1e-5, accountant="pld")


def test_dp_sgd_event_is_self_composed_poisson_sampled_gaussian():
    event = dp_sgd_event(noise_multiplier=1.1, sampling_probability=0.01, steps=7)
    assert event == dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.1)), 7
    )


def test_epsilon_of_event_agrees_with_epsilon():
    event = dp_sgd_event(**MNIST_15_EPOCHS)
    for accountant in ("rdp", "pld"):
        assert epsilon_of_event(event, delta=1e-5, accountant=accountant) == epsilon(
            **MNIST_15_EPOCHS, delta=1e-5, accountant=accountant
        )


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_zero_steps_cost_nothing_and_zero_noise_costs_everything(accountant):
    assert epsilon(noise_multiplier=1.0, sampling_probability=0.1, steps=0, delta=1e-5, accountant=accountant) == 0.0
    assert epsilon(noise_multiplier=0.0, sampling_probability=0.1, steps=1, delta=1e-5,
                   accountant=accountant) == math.inf


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_epsilon_grows_with_steps_and_shrinks_with_noise(accountant):
    def eps(noise_multiplier, steps):
        return epsilon(
            noise_multiplier=noise_multiplier, sampling_probability=0.01, steps=steps, delta=1e-5, accountant=accountant
        )

    assert eps(2.0, 100) < eps(2.0, 200)
    assert eps(3.0, 100) < eps(2.0, 100)


def test_pld_is_tighter_than_rdp():
    assert epsilon(**MNIST_60_EPOCHS, delta=1e-5, accountant="pld") < epsilon(
        **MNIST_60_EPOCHS, delta=1e-5, accountant="rdp"
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(delta=0.0), r"delta must be in \(0, 1\), got 0.0"),
        (dict(delta=1.5), r"delta must be in \(0, 1\), got 1.5"),
        (dict(delta=float("nan")), r"delta must be in \(0, 1\)"),
        (dict(sampling_probability=0.0), r"sampling_probability must be in \(0, 1\], got 0.0"),
        (dict(sampling_probability=1.01), r"sampling_probability must be in \(0, 1\]"),
        (dict(noise_multiplier=-0.1), r"noise_multiplier must be a finite number >= 0, got -0.1"),
        (dict(noise_multiplier=math.inf), r"noise_multiplier must be a finite number >= 0"),
        (dict(steps=-1), r"steps must be an integer >= 0, got -1"),
        (dict(steps=2.5), r"steps must be an integer >= 0, got 2.5"),
        (dict(steps=True), r"steps must be an integer >= 0"),
        (dict(accountant="gdp"), r"accountant must be one of \('pld', 'rdp'\), got 'gdp'"),
    ],
)
def test_invalid_arguments_are_refused_with_a_clear_message(changes, message):
    arguments = dict(noise_multiplier=1.0, sampling_probability=0.01, steps=10, delta=1e-5, accountant="rdp")
    arguments.update(changes)
    with pytest.raises(ValueError, match=message):
        epsilon(**arguments)


def test_delta_at_or_above_one_over_n_warns_with_a_smaller_suggestion():
    with pytest.warns(UserWarning, match=r"delta = 0.01 is not below 1/N = 0.00176 \(N = 569 examples\).*e\.g\. 1e-05"):
        assert warn_if_delta_too_large(0.01, num_examples=569)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_delta_too_large(1e-5, num_examples=569)
