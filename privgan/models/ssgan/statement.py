"""The privacy statement of a `SemiSupervisedGAN` (its guarantee in words is `guarantees.SSGAN_GUARANTEE`)."""

from privgan.accounting.events import check_accountant, check_delta
from privgan.accounting.guarantees import SSGAN_GUARANTEE
from privgan.accounting.statement import PrivacyStatement

GUARANTEE = SSGAN_GUARANTEE  # its former name


def ssgan_privacy_statement(self, *, delta, accountant="pld"):
    """`SemiSupervisedGAN.privacy_statement` of the model `self` (see there)."""
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
    return PrivacyStatement(
        epsilon=max(epsilons.values()),
        delta=delta,
        accountant=accountant,
        details={
            "streams": streams,
            "l2_norm_clip": self.dp_config.l2_norm_clip,
            "feature_l2_norm_clip": self.feature_l2_norm_clip,
            "d_steps": self._steps_taken(),
            "ledger": ledger.to_dict(),
            **self.randomness_policy(),
        },
        guarantee=SSGAN_GUARANTEE,
    )
