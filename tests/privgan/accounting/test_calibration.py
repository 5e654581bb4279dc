import pytest

from privgan.accounting import DpSgdPhase, PrivacyLedger, calibrate_noise_multiplier, epsilon, max_steps


@pytest.mark.parametrize(
    "target_epsilon, sampling_probability, steps, accountant",
    [
        (2.0, 256 / 60000, 14063, "rdp"),
        (0.5, 150 / 60000, 6000, "rdp"),
        (0.6, 0.01, 1000, "pld"),
        (1.4, 0.05, 400, "pld"),
    ],
)
def test_calibrated_noise_multiplier_is_the_smallest_within_target(
    target_epsilon, sampling_probability, steps, accountant
):
    def eps(noise_multiplier):
        return epsilon(
            noise_multiplier=noise_multiplier,
            sampling_probability=sampling_probability,
            steps=steps,
            delta=1e-5,
            accountant=accountant,
        )

    noise_multiplier = calibrate_noise_multiplier(
        target_epsilon=target_epsilon,
        delta=1e-5,
        sampling_probability=sampling_probability,
        steps=steps,
        accountant=accountant,
    )
    assert eps(noise_multiplier) <= target_epsilon < eps(0.999 * noise_multiplier)


def test_calibration_inverts_the_pinned_epsilon():
    noise_multiplier = calibrate_noise_multiplier(
        target_epsilon=2.5967, delta=1e-5, sampling_probability=256 / 60000, steps=14063, accountant="rdp"
    )
    assert noise_multiplier == pytest.approx(1.1, rel=2e-3)


def test_calibration_edge_cases():
    assert calibrate_noise_multiplier(target_epsilon=1.0, delta=1e-5, sampling_probability=0.1, steps=0) == 0.0
    with pytest.raises(ValueError, match="target_epsilon must be a finite number > 0, got -1"):
        calibrate_noise_multiplier(target_epsilon=-1, delta=1e-5, sampling_probability=0.1, steps=10)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        calibrate_noise_multiplier(target_epsilon=1.0, delta=1e-5, sampling_probability=0.1, steps=-1)


@pytest.mark.parametrize(
    "target_epsilon, noise_multiplier, sampling_probability, accountant",
    [
        (0.72422, 1.3, 150 / 60000, "rdp"),
        (1.0, 1.5, 0.02, "rdp"),
        (0.6, 2.0, 0.01, "pld"),
        (3.0, 4.0, 1.0, "pld"),
    ],
)
def test_max_steps_is_exact(target_epsilon, noise_multiplier, sampling_probability, accountant):
    def eps(steps):
        return epsilon(
            noise_multiplier=noise_multiplier,
            sampling_probability=sampling_probability,
            steps=steps,
            delta=1e-5,
            accountant=accountant,
        )

    steps = max_steps(
        target_epsilon=target_epsilon,
        delta=1e-5,
        noise_multiplier=noise_multiplier,
        sampling_probability=sampling_probability,
        accountant=accountant,
    )
    assert steps > 0
    assert eps(steps) <= target_epsilon < eps(steps + 1)


def test_max_steps_reproduces_the_pinned_step_count():
    # 6000 steps give epsilon 0.72422 (RDP), so a budget just above it allows exactly 6000.
    assert max_steps(
        target_epsilon=0.724225, delta=1e-5, noise_multiplier=1.3, sampling_probability=150 / 60000, accountant="rdp"
    ) == 6000


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_max_steps_continues_after_the_ledger(accountant):
    ledger = PrivacyLedger([DpSgdPhase(3.0, 0.01, 500)])
    steps = max_steps(
        target_epsilon=1.0,
        delta=1e-5,
        noise_multiplier=2.0,
        sampling_probability=0.01,
        accountant=accountant,
        ledger=ledger,
    )
    assert ledger == PrivacyLedger([DpSgdPhase(3.0, 0.01, 500)])  # not modified

    def eps_after(extra):
        extended = ledger.copy()
        extended.record(noise_multiplier=2.0, sampling_probability=0.01, steps=extra)
        return extended.epsilon(delta=1e-5, accountant=accountant)

    # Ignoring the ledger would allow more steps, and then eps_after(steps) would exceed the target.
    assert 0 < steps and eps_after(steps) <= 1.0 < eps_after(steps + 1)


def test_max_steps_is_zero_when_nothing_fits():
    spent = PrivacyLedger([DpSgdPhase(4.0, 1.0, 20)])  # epsilon 4.98
    assert max_steps(
        target_epsilon=4.0, delta=1e-5, noise_multiplier=2.0, sampling_probability=0.01, ledger=spent
    ) == 0
    assert max_steps(
        target_epsilon=0.01, delta=1e-5, noise_multiplier=0.5, sampling_probability=1.0, accountant="rdp"
    ) == 0
    assert max_steps(
        target_epsilon=1.0, delta=1e-5, noise_multiplier=0.0, sampling_probability=0.1, accountant="pld"
    ) == 0


def test_calibration_after_a_ledger_spends_what_is_left():
    import dp_accounting

    ledger = PrivacyLedger()
    ledger.record_release(dp_accounting.GaussianDpEvent(2.0), description="an earlier release")
    sigma = calibrate_noise_multiplier(target_epsilon=3.0, delta=1e-5, sampling_probability=0.05, steps=200,
                                       accountant="rdp", ledger=ledger)
    extended = ledger.copy()
    extended.record(noise_multiplier=sigma, sampling_probability=0.05, steps=200)
    assert 0.99 * 3.0 <= extended.epsilon(delta=1e-5, accountant="rdp") <= 3.0
    alone = calibrate_noise_multiplier(target_epsilon=3.0, delta=1e-5, sampling_probability=0.05, steps=200,
                                       accountant="rdp")
    assert sigma > alone  # less budget left, more noise
    with pytest.raises(ValueError, match="not reached"):
        calibrate_noise_multiplier(target_epsilon=0.5, delta=1e-5, sampling_probability=0.05, steps=200,
                                   accountant="rdp", ledger=ledger)  # the release alone spends more than 0.5
