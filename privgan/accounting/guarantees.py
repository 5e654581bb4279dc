"""The guarantees of privgan's models and table engines in words, as their privacy statements state them.

One module for every text, so that the claims can be read and reviewed side by side, and a change to what a
mechanism guarantees is made in one place. Each model's `privacy_statement` puts the text under `guarantee`
(see `privgan.accounting.statement.PrivacyStatement`); the texts name the statement's other keys
(noise_seeding, sampling_seeding, d_steps, ...) where the numbers are.
"""

# The assumptions every DP-SGD generator's guarantee shares.
_DP_SGD_ASSUMPTIONS = (
    " It assumes nothing else derived from the private data (hyper-parameters tuned on it, data-derived "
    "normalisation) was used or released, that nobody knows the noise (see noise_seeding) or which examples each "
    "batch held (see sampling_seeding), and it ignores floating-point effects: the noise's tails are cut at 11.6 "
    "standard deviations (privgan.dp.noise)."
)

_EXAMPLE_LEVEL = "Example-level (epsilon, delta)-DP, add-or-remove-one adjacency"
_LABELLED_EXAMPLE = ", an example being an (image, label) pair"

# What a DPGAN's statement says of the size that set its sampling probability, by `num_examples_source`.
DPGAN_SIZE_TEXTS = {
    "public": "The number of examples num_examples was declared public by the user (it sets the sampling "
              "probability and is published here).",
    "released": "The number of examples is private: num_examples is a noisy count released earlier in the "
                "ledger, and only that count sized the training (sampling probability, steps per epoch).",
}


def dpgan_guarantee(*, conditional, num_examples_source):
    """The guarantee of a `DPGAN`'s samples.

    Args:
        conditional: whether an example is an (image, label) pair.
        num_examples_source: "public" or "released" (see `DPGAN`).
    """
    return (
        _EXAMPLE_LEVEL + (_LABELLED_EXAMPLE if conditional else "")
        + ". Only the discriminator read the private data, through Poisson-sampled DP-SGD steps "
        "(per-example clipping to l2_norm_clip, Gaussian noise of std noise_multiplier * l2_norm_clip); "
        "each D step is one PoissonSampledDpEvent(sampling_probability, GaussianDpEvent(noise_multiplier)) "
        "composed over d_steps with dp-accounting. The generator and its samples are post-processing "
        "of the private discriminators, so these samples carry the same guarantee. "
        + DPGAN_SIZE_TEXTS[num_examples_source]
        + _DP_SGD_ASSUMPTIONS
    )


def mean_embedding_guarantee(*, conditional, reproducible_noise):
    """The guarantee of a `MeanEmbeddingGenerator`'s samples (DP-MERF).

    Args:
        conditional: whether an example is an (image, label) pair.
        reproducible_noise: whether the release's noise came from a published seed.
    """
    guarantee = (
        _EXAMPLE_LEVEL + (_LABELLED_EXAMPLE if conditional else "")
        + ". The private data were read once: the sum over the examples of a unit-norm random-Fourier-feature "
        "embedding with a count channel (L2 sensitivity 1) was released with Gaussian noise of std "
        "noise_multiplier, one GaussianDpEvent(noise_multiplier) composed with any earlier phases in the ledger "
        "by dp-accounting. No count is treated as public: the class sizes come from the noisy release. The "
        "generator was trained on the release only, so its samples are post-processing. It assumes nothing "
        "else derived from the private data (hyper-parameters tuned on it) was used or released."
    )
    if reproducible_noise:
        guarantee += (" The noise is reproducible from a published seed (noise_seed): there is no guarantee "
                      "against anyone who knows it.")
    return guarantee


SSGAN_GUARANTEE = (
    "Example-level (epsilon, delta)-DP, add-or-remove-one adjacency, for the classifier (the "
    "discriminator, or the pseudo-label classifier) and everything derived from it, the generator "
    "included. The private data are "
    "the labelled examples, each an (image, label) pair, and the unlabelled images: both labels "
    "and images are covered. Each discriminator step made a Gaussian release per stream read "
    "(the labelled one only if the labelled stream's noise_multiplier is not null), each from its "
    "own Poisson sample: the labelled examples' gradients clipped to l2_norm_clip, and the "
    "unlabelled examples' (gradient, features) pairs clipped to l2_norm_clip together (features to "
    "feature_l2_norm_clip; the noisy mean features are the generator's feature-matching target), "
    "each noised with std noise_multiplier * l2_norm_clip of its stream. The labelled stream's "
    "head_phases are DP-SGD phases of the last layer on frozen features (fit_head) or Gaussian releases "
    "of its class centroids (fit_centroid_head); the unlabelled stream's projection_phases are "
    "Gaussian releases of its feature second moments (fit_projection) and of k-means class sums "
    "(refine_centroid_head), each of L2 sensitivity 1 as described there, and DP-SGD phases of a "
    "classifier on its pseudo-labels from the released head (fit_pseudo_label_classifier: each image's "
    "whole gradient clipped to l2_norm_clip; its generated-sample and generator steps read no private "
    "data). Each stream's "
    "epsilon composes, with dp-accounting, its d_steps PoissonSampledDpEvent(sampling_probability, "
    "GaussianDpEvent(noise_multiplier)), its head or projection phases and any prior ledger; epsilon is the "
    "larger of the two streams' (parallel composition). That assumes each person's record is in "
    "one stream only (labelled or unlabelled, decided by the record itself): every method that read "
    "private images refused an image that the other stream had read, but the check compares exact "
    "bytes, so the same image normalised two ways, or a person with two different records in the two "
    "sets, would pass it and lose more than epsilon: record-level disjointness is the user's to ensure. "
    "The generator read only the discriminator and the released target, so its steps cost nothing. "
    "The numbers of examples are treated as public. It assumes "
    "nothing else derived from the private data (hyper-parameters tuned on it, evaluations on it, "
    "data-derived normalisation) was used or released, that nobody knows the noise (see "
    "noise_seeding) or the batches (see sampling_seeding), and it ignores floating-point "
    "effects: the noise's tails are cut at 11.6 standard deviations (privgan.dp.noise)."
)
"""The guarantee of a `SemiSupervisedGAN`'s classifier and of everything derived from it."""


def tabular_gan_guarantee(dpgan_text, *, count_fraction):
    """The guarantee of a `TabularDPSynthesizer`'s table: its DPGAN's, then how the rows were counted.

    Args:
        dpgan_text: the guarantee of the synthesizer's DPGAN (`dpgan_guarantee`).
        count_fraction: the share of epsilon spent on the noisy row count; 0 when the count was declared public.
    """
    if count_fraction == 0:
        size = ("The number of rows num_examples was declared public (count_fraction=0): it sized the training "
                "and is published exactly.")
    else:
        size = ("The number of rows is private: the ledger's first release is a noisy count of them "
                f"({count_fraction:g} of epsilon), num_rows_estimate, and only that count sized the training "
                "(settings, sampling_probability = expected_batch_size / num_rows_estimate, steps per epoch).")
    return (
        f"{dpgan_text} {size} The schema (column types, numeric bounds, category sets) and the model's "
        "hyper-parameters are taken to be public; rows are encoded with the schema alone, no statistic of the data."
    )


_MARGINAL_METHODS = {"aim": "AIM (McKenna et al. 2022)", "mst": "MST (McKenna et al. 2021)"}


def marginal_guarantee(method):
    """The guarantee of a `MarginalDPSynthesizer`'s table.

    Args:
        method: "aim" or "mst".
    """
    return (
        "Example-level (epsilon, delta)-DP, add-or-remove-one adjacency (a row). "
        f"{_MARGINAL_METHODS[method]} with a Private-PGM model: the private table was read only through the "
        "Gaussian noisy marginal counts (L2 sensitivity 1) and exponential-mechanism selections "
        "listed in the ledger, each a dp-accounting event (GaussianDpEvent, ZCDpEvent), composed by "
        "dp-accounting's RDP accountant. Their noise scales were fixed before any private data was "
        "read. Merging rare codes, the graphical model and its samples are post-processing. The "
        "schema (column types, numeric bounds, category sets) and the settings are taken to be public."
    )


REPRODUCIBLE_TABLE_NOISE_WARNING = (
    "The DP noise was drawn from a fixed noise_seed: anyone who knows the seed can remove it, so "
    "this table has NO privacy guarantee. Use noise_seed=None for any release."
)
"""A marginal table's warning when its noise came from a fixed seed."""

INFERRED_SCHEMA_WARNING = (
    "The schema was read from the private data (infer_schema): its bounds and categories are NOT covered by "
    "the guarantee above and may reveal individual rows."
)
"""A table's warning when its schema was read from the private data (`privgan.tabular.infer_schema`)."""
