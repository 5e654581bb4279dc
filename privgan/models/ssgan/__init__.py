"""SemiSupervisedGAN: a GAN whose discriminator is a K-class classifier trained from few labels, optionally with DP.

The discriminator D of Salimans et al. (2016, "Improved techniques for training GANs") outputs K class
logits l_1..l_K; "fake" is the implicit class K + 1 with logit 0, so with Z(x) = sum_k exp(l_k(x)) the
probability that x is real is D(x) = Z(x) / (Z(x) + 1). D is trained on three losses:

    labelled (x, y):   -log softmax(l(x))_y                       = lse(l) - l_y
    unlabelled real x: -log D(x)                                    = softplus(-lse(l))
    generated G(z):    -log(1 - D(G(z)))                            = softplus(lse(l))

    D loss = mean_labelled + unsupervised_weight / 2 * (mean_unlabelled + mean_generated)

and G by feature matching: || mean over real x of f(x) - mean over z of f(G(z)) ||^2 / F, with f the
F features of an intermediate layer of D (by default its layer named "features", as the builders in
`privgan.models.architectures` name the last hidden layer). The trained D is the classifier: `predict`
gives the K logits and `evaluate(x, y)` the cross-entropy and accuracy. One Keras train step takes a
Poisson sample of each stream (expected sizes `labelled_batch_size` and `unlabelled_batch_size`), one D
step, then one G step on `round(unlabelled_batch_size)` fresh latent vectors. An epoch is
round(num_unlabelled / unlabelled_batch_size) steps.

Private training (`private=True`, the default). The private dataset is the disjoint union of the
labelled examples L (an example is an (image, label) pair) and the unlabelled examples U (an image):
each person's record is in exactly one of them, and which one is a property of the record (whether
it carries a label), not something chosen by looking at the other records. Every method that reads
private images refuses, before reading, an image that the other stream read, in that call or any earlier
one, whatever the order of the calls (the paper's setting, where the labelled images are among the
unlabelled ones, is such an overlap: leave the labelled images out of `x_unlabelled`); see
`privgan.models.ssgan.streams`, which also says how the records survive save/load without being
published. The check compares exact bytes: it cannot see the same image normalised two ways, nor a
person whose two records are different images; that the sets hold different people's records is the
user's to ensure.
Each D step makes two Gaussian releases, each from its own Poisson sample and its own noise draw:

    labelled:   (sum_{i in B_L} clip_C(grad l_i) + N(0, (sigma_L C)^2)) / (q_L N_L)
    unlabelled: (sum_{j in B_U} [clip_Cg(grad u_j), clip_Cf(f(x_j))] + N(0, (sigma_U C)^2)) / (q_U N_U)

with Cg^2 + Cf^2 = C^2, so each unlabelled example moves its release, the pair (gradient, features),
by at most C. The features' noisy mean is G's feature-matching target: without it, G's loss would read
the real images directly and G would not be post-processing. The generated half of D's gradient reads
no private data: it is clipped per example to C (so that it keeps the scale of the real halves) and
not noised. D's update is a weighted sum of the releases (weights are post-processing), G's update reads
only D and the released target, so only D's steps are charged and G's steps are free.

The accounting, derived. Under add/remove-one adjacency the differing example is either labelled or
unlabelled, which the example itself decides. Say it is labelled. Then the unlabelled releases have
the same distribution on both datasets given everything released before (they read U, D's weights and
the released history only), also though the streams run interleaved and each reads the D the other
updated: in the likelihood ratio of the whole transcript, every unlabelled factor is 1. So the example's
privacy loss is the adaptive composition of the labelled releases alone: T steps of
`PoissonSampledDpEvent(q_L, GaussianDpEvent(sigma_L))`; symmetrically an unlabelled example's is T
steps of `PoissonSampledDpEvent(q_U, GaussianDpEvent(sigma_U))`. The run is (epsilon, delta)-DP with

    epsilon(delta) = max(epsilon_L(delta), epsilon_U(delta))      (parallel composition)

each computed by dp-accounting from its stream's events, recorded in a `ParallelLedger` with one
`PrivacyLedger` per stream. It is tight: the worse stream's epsilon is what one of its examples loses.
It holds only for disjoint streams: a record read by both (the same image labelled and unlabelled)
would lose the composition of both streams' events, more than either.
Composing the two streams instead (charging every step with both events) would also be correct but
would cost up to sqrt(2) in noise for the same epsilon; charging one combined noisy sum at the larger
q would force the few labelled examples to be sampled at the unlabelled rate (or every unlabelled
example to be charged at the labelled rate). Separate releases also let the two streams have their own
noise multiplier: with `noise_multiplier=None` and `labelled_noise_multiplier=None`, `fit` calibrates
each so that its stream spends exactly the target epsilon in the planned steps.

The sampling of the two streams uses one seed but different sampling streams (`privgan.dp.noise`), so
their Poisson samples never share a Philox input; both are positioned at the global DP step, so a
resumed run continues both sequences. The noise comes from the model's secret `NoiseStream`: two draws
per step, told apart by its draw counter. `fit_head`'s steps (a DP-SGD phase of the labelled stream,
with its own noise stream) take the global positions after the GAN steps before them, and later GAN
steps the positions after those: with fixed sampling and noise seeds too, no phase repeats another's
Poisson sample or noise draw.

One-shot releases. Besides DP-SGD steps, D's pieces can be set by single Gaussian releases of
sensitivity 1, each charged to the stream it reads (a `ReleasePhase` in `head_ledger` for the labelled
stream, in `projection_ledger` for the unlabelled one) and drawn at its own global noise position:
`fit_projection` (a PCA whitening layer from the unlabelled images' second moments),
`fit_centroid_head` (the last layer from the labelled examples' class sums) and `refine_centroid_head`
(k-means rounds of the last layer on the unlabelled images). With a fixed, public front end
(`privgan.models.architectures.scattering_discriminator`) they make a private classifier without any
GAN step; G then stays untrained.

Monitoring metrics `d_loss_labelled`, `d_loss_unlabelled` are noiseless means over private batches:
not covered by the guarantee. `evaluate` on private data is outside the guarantee too.

One device only (a single CPU or GPU): under a distribution strategy with several replicas `fit` refuses.

The package holds one class, `SemiSupervisedGAN`, split by concern: `model` (the GAN, its losses and
its DP step), `streams` (which images each stream read, and the two streams' accounting), `releases`
(the head's DP-SGD phase and the one-shot Gaussian releases), `pseudo_labels` (a DP-SGD classifier on the
unlabelled stream's pseudo-labels from the released head, optionally with free K+1 GAN steps, charged to
that stream) and `statement` (the privacy statement; its
guarantee text is `privgan.accounting.guarantees.SSGAN_GUARANTEE`). Everything is importable from
`privgan.models.ssgan` as before.
"""

from privgan.models.ssgan.model import (
    FEATURES_LAYER,
    LABELLED_GRADIENTS,
    LABELLED_STREAM,
    UNLABELLED_STREAM,
    SemiSupervisedGAN,
    _check_positive_number,
    _clipped_rows,
    _with_features,
    fake_losses,
    real_losses,
    supervised_losses,
)
from privgan.models.ssgan.releases import _fingerprint, _HeadPhase, _in_batches, _scaled_to_unit_ball
from privgan.models.ssgan.streams import StreamRecords, image_digests

__all__ = [
    "FEATURES_LAYER",
    "LABELLED_GRADIENTS",
    "LABELLED_STREAM",
    "UNLABELLED_STREAM",
    "SemiSupervisedGAN",
    "StreamRecords",
    "fake_losses",
    "image_digests",
    "real_losses",
    "supervised_losses",
    # Helpers the module defined before it became a package, still importable from here.
    "_HeadPhase",
    "_check_positive_number",
    "_clipped_rows",
    "_fingerprint",
    "_in_batches",
    "_scaled_to_unit_ball",
    "_with_features",
]
