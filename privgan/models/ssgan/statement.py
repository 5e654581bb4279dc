"""The privacy statement of a `SemiSupervisedGAN`, and its guarantee in words."""

import datetime

from privgan.accounting.events import check_accountant, check_delta

GUARANTEE = (
    "Example-level (epsilon, delta)-DP, add-or-remove-one adjacency, for the classifier (the "
    "discriminator) and everything derived from it, the generator included. The private data are "
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
    "(refine_centroid_head), each of L2 sensitivity 1 as described there. Each stream's "
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


def ssgan_privacy_report(self, *, delta, accountant="pld"):
    """`SemiSupervisedGAN.privacy_report` of the model `self` (see there)."""
    from privgan import __version__

    if not self.private:
        raise ValueError("this SemiSupervisedGAN was trained without DP (private=False): it has no privacy statement")
    delta = check_delta(delta)
    accountant = check_accountant(accountant)
    ledger = self.privacy_ledger
    epsilons = ledger.part_epsilons(delta=delta, accountant=accountant)
    streams = {
        name: {
            "epsilon": epsilons[name],
            "noise_multiplier": config.noise_multiplier,
            "sampling_probability": config.sampling_probability,
            "expected_batch_size": config.expected_batch_size,
            "num_examples": config.num_examples,
        }
        for name, config in self._streams().items()
    }
    for name, stream in streams.items():
        # No GAN step read the stream: its only costs are its phases and releases below.
        if not self._steps_taken() or (name == "labelled" and self.labelled_gradient == "none"):
            stream.update(noise_multiplier=None, sampling_probability=None, expected_batch_size=None)
    streams["labelled"]["head_phases"] = self.head_ledger.to_dict()["phases"]
    streams["unlabelled"]["projection_phases"] = self.projection_ledger.to_dict()["phases"]
    return {
        "epsilon": max(epsilons.values()),
        "delta": delta,
        "accountant": accountant,
        "streams": streams,
        "l2_norm_clip": self.dp_config.l2_norm_clip,
        "feature_l2_norm_clip": self.feature_l2_norm_clip,
        "d_steps": self._steps_taken(),
        "ledger": ledger.to_dict(),
        **self.randomness_policy(),
        "privgan_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "guarantee": GUARANTEE,
    }
