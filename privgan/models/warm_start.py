"""A DPGAN warm-started from a fitted mean-embedding generator, both privacy costs in one ledger.

DP-MERF (`MeanEmbeddingGenerator`) gets a generator to varied, class-correct samples from one cheap
Gaussian release; a DPGAN phase can then sharpen them (its discriminator sees the real data through
DP-SGD). The DPGAN starts from the DP-MERF generator's weights (post-processing of the release: free) and
continues its ledger: with `noise_multiplier=None`, `DPGAN.fit(target_epsilon=...)` calibrates sigma of
the D steps for what the release left of the budget, its noise stream continues after the release's
position, and the statement of the final samples composes the release and every D step.
"""

import math

from privgan.models.dpgan import DPGAN


def warm_started_dpgan(source, discriminator, *, expected_batch_size, num_examples=None, l2_norm_clip=1.0,
                       noise_multiplier=None, n_critic=1, **dpgan_kwargs):
    """Builds a DPGAN whose generator is `source.generator` and whose ledger continues `source`'s.

    Args:
        source: a fitted `MeanEmbeddingGenerator` (its release taken), conditional or not.
        discriminator: a built discriminator matching the generator's samples and conditioning.
        expected_batch_size: expected Poisson batch size of a D step.
        num_examples: None (default: N stays private; the release's noisy count of the examples, already
            charged, sizes the D steps) or N, the exact size of the private set, declared public.
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
    size = {"num_examples": num_examples, "num_examples_source": "public"}
    if num_examples is None:
        # Post-processing of the release; at least the expected batch, so that q stays <= 1.
        noisy = int(round(float(source.class_counts_.sum())))
        size = {"num_examples": max(noisy, math.ceil(expected_batch_size), 1), "num_examples_source": "released"}
    return DPGAN(source.generator, discriminator, l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier,
                 **size, expected_batch_size=expected_batch_size, num_classes=source.num_classes,
                 n_critic=n_critic, ledger=source.privacy_ledger, **dpgan_kwargs)
