"""A DPGAN warm-started from a fitted mean-embedding generator, both privacy costs in one ledger.

DP-MERF (`MeanEmbeddingGenerator`) gets a generator to varied, class-correct samples from one cheap
Gaussian release; a DPGAN phase can then sharpen them (its discriminator sees the real data through
DP-SGD). The DPGAN starts from the DP-MERF generator's weights (post-processing of the release: free) and
continues its ledger, so the statement of the final samples composes the release and every D step, and
sigma of the D steps is calibrated for what the release left of the budget.
"""

from privgan.accounting import calibrate_noise_multiplier
from privgan.models.dpgan import DPGAN


def warm_started_dpgan(source, discriminator, *, num_examples, expected_batch_size, epochs, target_epsilon, delta,
                       l2_norm_clip=1.0, n_critic=1, accountant="pld", **dpgan_kwargs):
    """Builds a DPGAN whose generator is `source.generator` and whose ledger continues `source`'s.

    Args:
        source: a fitted `MeanEmbeddingGenerator` (its release taken), conditional or not.
        discriminator: a built discriminator matching the generator's samples and conditioning.
        num_examples: N, the size of the private set the DPGAN's `fit` will receive (the same data).
        expected_batch_size: expected Poisson batch size of a D step.
        epochs: the epochs `fit` will be called with: sigma is calibrated so that the planned D steps,
            composed after the release, spend exactly `target_epsilon`.
        target_epsilon: the budget of the WHOLE ledger (release and D steps), > the release's epsilon.
        delta: delta of the budget.
        l2_norm_clip: C of the D steps.
        n_critic: D steps per G step.
        accountant: "pld" or "rdp".
        **dpgan_kwargs: passed to `DPGAN` (e.g. `ema_decay`, `seed`).

    Returns:
        The DPGAN (not compiled). Call `fit(x, y, epochs=epochs, target_epsilon=target_epsilon, delta=delta)`.

    Raises:
        ValueError: if `source` has not released yet, or the release leaves no budget.
    """
    if not source.has_released:
        raise ValueError("source must be fitted (its embedding released) before warm-starting a DPGAN from it")
    ledger = source.privacy_ledger
    common = dict(l2_norm_clip=l2_norm_clip, num_examples=num_examples, expected_batch_size=expected_batch_size,
                  num_classes=source.num_classes, n_critic=n_critic, ledger=ledger, **dpgan_kwargs)
    # The planned number of D steps depends on N, the batch size and n_critic only (not on sigma).
    planned = DPGAN(source.generator, discriminator, noise_multiplier=None, **common).planned_dp_steps(epochs)
    sigma = calibrate_noise_multiplier(target_epsilon=target_epsilon, delta=delta,
                                       sampling_probability=expected_batch_size / num_examples, steps=planned,
                                       accountant=accountant, ledger=ledger)
    return DPGAN(source.generator, discriminator, noise_multiplier=sigma, **common)
