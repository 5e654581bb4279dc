"""DP-SGD hyper-parameters as one validated value."""

import dataclasses
import math

from privgan.accounting.statement import steps_per_epoch


@dataclasses.dataclass(frozen=True)
class DPSGDConfig:
    """The parameters that determine DP-SGD's privacy cost per step.

    Attributes:
        l2_norm_clip: clipping bound C on each example's whole gradient, > 0.
        noise_multiplier: sigma >= 0; the noise on the summed gradient has std sigma * C.
        num_examples: N, the number of private training examples, >= 1.
        expected_batch_size: q * N, the mean Poisson batch size and the divisor of the noisy sum, in (0, N].
    """

    l2_norm_clip: float
    noise_multiplier: float
    num_examples: int
    expected_batch_size: float

    def __post_init__(self):
        if not (math.isfinite(self.l2_norm_clip) and self.l2_norm_clip > 0):
            raise ValueError(f"l2_norm_clip must be a finite number > 0, got {self.l2_norm_clip}")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier >= 0):
            raise ValueError(f"noise_multiplier must be a finite number >= 0, got {self.noise_multiplier}")
        if int(self.num_examples) != self.num_examples or self.num_examples < 1:
            raise ValueError(f"num_examples must be an integer >= 1, got {self.num_examples}")
        if not 0 < self.expected_batch_size <= self.num_examples:
            raise ValueError(
                f"expected_batch_size must be in (0, num_examples={self.num_examples}], "
                f"got {self.expected_batch_size}"
            )

    @property
    def sampling_probability(self):
        """q = expected_batch_size / num_examples."""
        return self.expected_batch_size / self.num_examples

    @property
    def steps_per_epoch(self):
        """Poisson steps that touch each example once in expectation: round(N / expected_batch_size)."""
        return steps_per_epoch(self.num_examples, self.expected_batch_size)
