"""A DPGAN warm-started from a fitted mean-embedding generator, both privacy costs in one ledger.

DP-MERF (`MeanEmbeddingGenerator`) gets a generator to varied, class-correct samples from one cheap
Gaussian release; a DPGAN phase can then sharpen them (its discriminator sees the real data through
DP-SGD). The DPGAN starts from the DP-MERF generator's weights (post-processing of the release: free) and
continues its ledger: with `noise_multiplier=None`, `DPGAN.fit(target_epsilon=...)` calibrates sigma of
the D steps for what the release left of the budget, its noise stream continues after the release's
position, and the statement of the final samples composes the release and every D step.
"""

from privgan.models.dpgan import DPGAN


def warm_started_dpgan(source, discriminator, *, num_examples, expected_batch_size, l2_norm_clip=1.0,
                       noise_multiplier=None, n_critic=1, **dpgan_kwargs):
    """Builds a DPGAN whose generator is `source.generator` and whose ledger continues `source`'s.

    Args:
        source: a fitted `MeanEmbeddingGenerator` (its release taken), conditional or not.
        discriminator: a built discriminator matching the generator's samples and conditioning.
        num_examples: N, the size of the private set the DPGAN's `fit` will receive (the same data).
        expected_batch_size: expected Poisson batch size of a D step.
        l2_norm_clip: C of the D steps.
        noise_multiplier: sigma of the D steps, or None (default) to calibrate it in `fit` so that the
            release and the planned D steps together spend `fit`'s `target_epsilon`.
        n_critic: D steps per G step.
        **dpgan_kwargs: passed to `DPGAN` (e.g. `ema_decay`, `seed`, `noise_seed`).

    Returns:
        The DPGAN (not compiled). Call `fit(x, y, epochs=..., target_epsilon=..., delta=...)` with the same
        private data; `target_epsilon` is the budget of the whole ledger.

    Raises:
        ValueError: if `source` has not released yet.
    """
    if not source.has_released:
        raise ValueError("source must be fitted (its embedding released) before warm-starting a DPGAN from it")
    return DPGAN(source.generator, discriminator, l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier,
                 num_examples=num_examples, expected_batch_size=expected_batch_size, num_classes=source.num_classes,
                 n_critic=n_critic, ledger=source.privacy_ledger, **dpgan_kwargs)
