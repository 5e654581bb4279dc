"""Precision, recall, density and coverage of synthetic samples in a feature space: metrics that see collapse.

A Fréchet distance mixes quality and diversity into one number; these four separate them (real features
X_1..X_N, synthetic features Y_1..Y_M, B(z, r) the closed ball, NND_k(z) the distance from z to its k-th
nearest neighbour among the other points of its own set):

- precision (Kynkäänniemi et al. 2019): share of synthetic samples inside the real manifold,
  (1/M) sum_j 1[exists i: Y_j in B(X_i, NND_k(X_i))] — are the samples realistic?
- recall (Kynkäänniemi et al. 2019): share of real samples inside the synthetic manifold,
  (1/N) sum_i 1[exists j: X_i in B(Y_j, NND_k(Y_j))] — is the real variety covered? A generator that
  collapses to one image per class has recall near 0 whatever its precision.
- density (Naeem et al. 2020): (1/(k M)) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))], how many real
  neighbourhoods hold a synthetic sample on average (1 for matching distributions; unbounded above).
- coverage (Naeem et al. 2020): (1/N) sum_i 1[exists j: Y_j in B(X_i, NND_k(X_i))], the share of real
  neighbourhoods that hold at least one synthetic sample; less sensitive to outliers than recall.

They read real features outside any DP guarantee: evaluation only.
"""

import dataclasses

import numpy as np

_CHUNK = 1024


@dataclasses.dataclass(frozen=True)
class PRDCResult:
    """Precision, recall, density and coverage of synthetic samples against real ones.

    Attributes:
        precision: share of synthetic samples within the real k-NN manifold, in [0, 1].
        recall: share of real samples within the synthetic k-NN manifold, in [0, 1].
        density: mean number of real k-NN balls holding a synthetic sample, divided by k (>= 0).
        coverage: share of real k-NN balls holding at least one synthetic sample, in [0, 1].
        num_real: real samples compared.
        num_synthetic: synthetic samples compared.
        nearest_k: the k of the k-nearest-neighbour radii.
    """

    precision: float
    recall: float
    density: float
    coverage: float
    num_real: int
    num_synthetic: int
    nearest_k: int

    def summary(self):
        """One line of text."""
        return (
            f"precision {self.precision:.3f}, recall {self.recall:.3f}, density {self.density:.3f}, "
            f"coverage {self.coverage:.3f} (k = {self.nearest_k}; {self.num_real} real vs "
            f"{self.num_synthetic} synthetic samples)"
        )

    def to_dict(self):
        """The fields as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


def _squared_distances(a, b):
    # ||a||^2 + ||b||^2 - 2 a.b, clipped at 0 against round-off; float64 so that ties stay ties.
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def _kth_neighbour_radii(points, k):
    """Squared distance from each point to its k-th nearest other point of the same set."""
    radii = np.empty(len(points))
    for start in range(0, len(points), _CHUNK):
        distances = _squared_distances(points[start : start + _CHUNK], points)
        # Column k of the sorted row: column 0 is the point itself (distance 0).
        radii[start : start + _CHUNK] = np.partition(distances, k, axis=1)[:, k]
    return radii


def precision_recall_density_coverage(real_features, synthetic_features, *, nearest_k=5, max_samples=5000, seed=0):
    """Computes precision, recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

    Args:
        real_features: (N, d) features of real samples (e.g. `classifier_features` of the real test set).
        synthetic_features: (M, d) features of synthetic samples.
        nearest_k: k of the k-nearest-neighbour balls, >= 1 and < min(N, M) after subsampling.
        max_samples: each set is subsampled (without replacement, seeded) to at most this many rows,
            >= 2: the pairwise distances cost O(N M d).
        seed: seed of the subsampling.

    Returns:
        A `PRDCResult`.

    Raises:
        ValueError: if the arrays are not 2-D of equal width or are too small for `nearest_k`.
    """
    real = np.asarray(real_features, dtype=np.float64)
    synthetic = np.asarray(synthetic_features, dtype=np.float64)
    if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
        raise ValueError(f"features must be 2-D with equal widths, got {real.shape} and {synthetic.shape}")
    if int(max_samples) != max_samples or max_samples < 2:
        raise ValueError(f"max_samples must be an integer >= 2, got {max_samples}")
    rng = np.random.default_rng(seed)
    if len(real) > max_samples:
        real = real[rng.choice(len(real), max_samples, replace=False)]
    if len(synthetic) > max_samples:
        synthetic = synthetic[rng.choice(len(synthetic), max_samples, replace=False)]
    if int(nearest_k) != nearest_k or not 1 <= nearest_k < min(len(real), len(synthetic)):
        raise ValueError(
            f"nearest_k must be an integer in [1, {min(len(real), len(synthetic)) - 1}] for {len(real)} real "
            f"and {len(synthetic)} synthetic samples, got {nearest_k}"
        )
    real_radii = _kth_neighbour_radii(real, nearest_k)
    synthetic_radii = _kth_neighbour_radii(synthetic, nearest_k)
    # balls[j] counts the real balls holding synthetic sample j; covered[i] whether real ball i holds any.
    balls = np.zeros(len(synthetic))
    covered = np.zeros(len(real), dtype=bool)
    recalled = np.zeros(len(real), dtype=bool)
    for start in range(0, len(synthetic), _CHUNK):
        distances = _squared_distances(synthetic[start : start + _CHUNK], real)  # (chunk, N)
        inside_real = distances <= real_radii[None, :]
        balls[start : start + _CHUNK] = inside_real.sum(1)
        covered |= inside_real.any(0)
        recalled |= (distances <= synthetic_radii[start : start + _CHUNK, None]).any(0)
    return PRDCResult(
        precision=float(np.mean(balls > 0)),
        recall=float(np.mean(recalled)),
        density=float(balls.sum() / (nearest_k * len(synthetic))),
        coverage=float(np.mean(covered)),
        num_real=len(real),
        num_synthetic=len(synthetic),
        nearest_k=int(nearest_k),
    )
