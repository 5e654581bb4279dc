"""Where a numeric column's rows are, from its noisy one-way counts alone: empty bins stay empty.

Public bounds are often generous (ages 0 to 120 for patients of 30 to 80), so most of a numeric column's
equal-width bins hold no row, and at a small epsilon each of their noisy counts is noise of standard
deviation sigma, about as large as the rows of the bins that hold data. The Euclidean projection of the
noisy counts onto the non-negative counts with the right total (`nonnegative`) removes one
common shift tau from every count: tau is small when the noise sums to about zero, so every empty bin
whose noise came out positive keeps a share of the rows (on generated 300-row tables with bounds 3-5
times wider than the data at epsilon = 1, 10-29% of a column's synthetic values lay outside the range of the
real ones with AIM, worst column per seed). Those shares become rows sampled in ranges the real data leave empty.

`sparse_counts` keeps only the bins that stand out of the noise. Blocks of 1, 2, 4, ... adjacent bins
are tested (z set so that a column's empty blocks all stay below it with probability 0.9); the core is
the largest bin of each passing block and the bins between the core bins of one passing block (rows
spread thinly over many bins, ages over 17-90 in 1,000 rows at epsilon = 1, pass in blocks only). A
passing block is not kept whole: one that straddled the edge of the rows gave its empty bins a share of
them (11% of heart rates of 50-130 placed at 28-47 or 131-141 on a generated table). The core grows to
neighbouring bins above 2 sigma and to tails whose bins stand out together; a run of bins apart from the
main one must pass a stricter test. Every other bin gets zero, and `bin_shapes` / `place_within` place
values within the edge bins towards the rows rather than uniformly (`experiments/wide_bounds.py`
measures the share of a column's synthetic values more than 1% of the public range outside the real
ones; `experiments/adult_sample_tvd.py` the fidelity where rows spread thinly). Only the released noisy
counts are read: it is post-processing, and it costs no privacy budget.
"""


import numpy as np
from scipy import stats

EXTEND_MULTIPLE = 2.0  # a neighbour of the rows' bins with a noisy count above 2 sigma holds rows too
_FALSE_BIN_RATE = 0.1  # chance that some empty bin of a column passes the threshold (Bonferroni)
_EXTENSION_LENGTHS = 8  # a tail's sum is tested at many lengths: the threshold counts 8 tests a bin
ISLAND_FALSE_RATE = 0.01  # the same for a run of bins apart from the column's main run of rows


def threshold_multiple(bins):
    """z such that any of `bins` bins of pure Gaussian noise exceeds z sigma with probability at most 0.1."""
    return float(stats.norm.isf(_FALSE_BIN_RATE / max(1, int(bins))))


def sparse_counts(noisy, total, sigma, *, value_codes, projected):
    """Non-negative counts of a numeric column's codes with empty bins at zero; they sum to `total`.

    The bins that hold rows are found from blocks of 1, 2, 4, ... adjacent bins whose noisy count stands
    out of the noise: above z sigma sqrt(block size), z from `threshold_multiple` for the number of blocks
    of all sizes, so that no block of empty bins passes with probability 0.9. A passing block holds rows
    somewhere, most likely at its largest bin: the core is the largest bin of each passing block, and the
    bins between the core bins of one passing block (rows spread thinly over many bins, ages over 17-90,
    pass in blocks only, and the bins between two of their blocks' peaks hold rows too). A passing block
    is not kept as a whole: a block that straddles the edge of the rows would give its empty part a share
    of them. Then the core grows to each neighbouring bin whose noisy count is above `EXTEND_MULTIPLE`
    sigma, since the rows of a column usually spread over adjacent bins, thinning out. The bins found
    keep their share of the projection of their noisy counts onto non-negative counts; every other bin
    gets zero.

    Args:
        noisy: the noisy one-way counts: `value_codes` bins in order, then the missing code if any.
        total: the estimated number of rows, > 0.
        sigma: the standard deviation of each count's Gaussian noise.
        value_codes: how many of the codes are bins (the rest, a missing code, is not thresholded).
        projected: the Euclidean projection of `noisy` onto non-negative counts summing to `total`
            (it gives the missing code's share, and is returned unchanged when nothing stands out).

    Returns:
        A float array like `noisy`.
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    projected = np.asarray(projected, dtype=np.float64)
    bins = noisy[:value_codes]
    kept = _core(bins, sigma)
    if kept is None:
        return projected  # nothing stands out of the noise: nothing is known about where the rows are
    kept = _without_weak_islands(_extended(_grown(kept, bins, sigma), bins, sigma), bins, sigma)
    result = projected.copy()
    result[:value_codes] = 0.0
    mass = projected[:value_codes].sum()
    if mass > 0:
        result[np.flatnonzero(kept)] = nonnegative(bins[kept], mass)
    return result


def _core(bins, sigma):
    """The largest bin of each block of 1, 2, 4, ... bins that stands out, and the bins between those of
    one passing block (None if no block passes). The threshold shares the false-pass rate among all blocks
    of all sizes."""
    sizes = [1]
    while sizes[-1] * 2 <= max(1, bins.size // 2):
        sizes.append(sizes[-1] * 2)
    multiple = threshold_multiple(sum(-(-bins.size // size) for size in sizes))
    peaks = np.zeros(bins.size, dtype=bool)
    passing = []
    for size in sizes:
        starts = np.arange(0, bins.size, size)
        widths = np.diff(np.append(starts, bins.size))
        passes = np.add.reduceat(bins, starts) > multiple * sigma * np.sqrt(widths)
        for start, width in zip(starts[passes], widths[passes]):
            peaks[start + int(np.argmax(bins[start : start + width]))] = True
            passing.append((start, width))
    if not peaks.any():
        return None
    core = peaks.copy()
    for start, width in passing:
        inside = np.flatnonzero(peaks[start : start + width])
        core[start + inside[0] : start + inside[-1] + 1] = True
    return core


def _extended(kept, bins, sigma):
    """`kept` extended over the runs of bins beside it that stand out together (rows thinning out into a tail).

    From each edge of a kept run outwards, over the bins up to the next kept one, to the farthest bin k such
    that the sum of the k bins passes z sigma sqrt(k) (z from `threshold_multiple` for `_EXTENSION_LENGTHS`
    tests per bin: with one, the summed noise of 8 empty BMI bins beside the rows passed on a generated
    table), then back to where that sum is largest: past the rows the sum is a random walk without drift.
    """
    result = kept.copy()
    multiple = threshold_multiple(bins.size * _EXTENSION_LENGTHS)
    for edge in np.flatnonzero(np.diff(kept.astype(np.int8))):  # kept[edge] != kept[edge + 1]
        outwards = np.arange(edge + 1, bins.size) if kept[edge] else np.arange(edge, -1, -1)
        stretch = outwards[: np.argmax(np.append(kept[outwards], True))]  # up to the next kept bin
        sums = np.cumsum(bins[stretch])
        passing = np.flatnonzero(sums > multiple * sigma * np.sqrt(np.arange(1, stretch.size + 1)))
        if passing.size:
            result[stretch[: int(np.argmax(sums[: passing[-1] + 1])) + 1]] = True
    return result


def _without_weak_islands(kept, bins, sigma):
    """`kept` without its runs apart from the one with the largest noisy sum, unless a run's sum passes
    z sigma sqrt(its length) with z from `ISLAND_FALSE_RATE` shared among the column's bins.

    Whichever block of empty bins passes the core's test (10% of columns) is most often far from the rows
    (on a generated table, two empty bins at BMI 60-75 for patients of 15-45 held 10% of the rows); a
    second mode of the rows that holds a real share of them passes the stricter test.
    """
    starts = np.flatnonzero(np.diff(np.concatenate([[0], kept.astype(np.int8)])) == 1)
    ends = np.flatnonzero(np.diff(np.concatenate([kept.astype(np.int8), [0]])) == -1) + 1
    if starts.size < 2:
        return kept
    sums = np.array([bins[start:end].sum() for start, end in zip(starts, ends)])
    multiple = float(stats.norm.isf(ISLAND_FALSE_RATE / bins.size))
    result = kept.copy()
    for index, (start, end) in enumerate(zip(starts, ends)):
        if index != int(np.argmax(sums)) and sums[index] <= multiple * sigma * np.sqrt(end - start):
            result[start:end] = False
    return result


def _grown(kept, bins, sigma):
    """`kept` grown to each neighbouring bin whose noisy count is above `EXTEND_MULTIPLE` sigma."""
    kept = kept.copy()
    weak = bins > EXTEND_MULTIPLE * sigma
    for order in (range(bins.size), range(bins.size - 1, -1, -1)):
        previous = None
        for code in order:  # grow the kept runs outwards, one pass in each direction
            if not kept[code] and previous is not None and kept[previous] and weak[code]:
                kept[code] = True
            previous = code
    return kept


def nonnegative(noisy, total):
    """The non-negative counts with sum `total` nearest to `noisy` in L2: max(noisy - tau, 0) for one tau.

    Noise on empty codes is mostly removed (tau is of the order of the noise), and the counts of the codes
    that hold the rows keep their differences. This is the Euclidean projection onto a scaled simplex
    (Duchi et al. 2008); post-processing of the noisy counts.
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    descending = np.sort(noisy)[::-1]
    excess = np.cumsum(descending) - total
    kept = np.flatnonzero(descending - excess / np.arange(1, noisy.size + 1) > 0)[-1]
    return np.maximum(noisy - excess[kept] / (kept + 1), 0.0)


def bin_shapes(counts):
    """The density at the left and right edge of each bin, for placing values within bins.

    A value drawn uniformly within its bin spreads the bin's rows up to its far edge; at the last bin that
    holds rows, next to empty ones, that puts rows where the data have none (ages 80 to 87 for patients of
    at most 79 in a bin of 75 to 87.5). Instead the density is linear within each bin, from the mean of
    the bin's and its neighbour's density at each edge, and zero at an edge next to an empty bin (the rows
    end within the bin), flat at the schema's bounds. Post-processing of the released counts.

    Args:
        counts: non-negative estimated counts of a column's equal-width bins, in order.

    Returns:
        `(left, right)`: float arrays of the density at each bin's left and right edge.
    """
    counts = np.asarray(counts, dtype=np.float64)
    before = np.concatenate([counts[:1], counts[:-1]])
    after = np.concatenate([counts[1:], counts[-1:]])
    left = np.where(before > 0, (before + counts) / 2, 0.0)
    right = np.where(after > 0, (after + counts) / 2, 0.0)
    return left, right


def place_within(left, right, uniform):
    """Positions in [0, 1) with the density from `left` to `right` (inverse CDF of `uniform`).

    The density is linear between two positive edge densities. At an edge next to an empty bin it falls
    to zero as (distance to that edge) squared: the rows end somewhere within the bin, thinning out
    before they do, and averaging a linear fall to zero over an end uniform within the bin gives that
    shape (a straight fall to the bin's edge put 27% of the last bin's rows past the real maximum on a
    generated table whose noise had inflated that bin). Where both edge densities are zero (a lone bin
    between empty ones), the density is a tent peaking at the bin's middle.
    """
    left, right, uniform = (np.asarray(a, dtype=np.float64) for a in (left, right, uniform))
    lone = (left <= 0) & (right <= 0)
    slope = right - left
    with np.errstate(divide="ignore", invalid="ignore"):
        # F(x) = (left x + slope x^2 / 2) / ((left + right) / 2) = u, solved for x.
        root = np.sqrt(np.maximum(left**2 + slope * uniform * (left + right), 0.0))
        linear = np.where(np.abs(slope) > 1e-12 * np.maximum(left + right, 1e-300), (root - left) / slope, uniform)
    falling = 1 - np.cbrt(1 - uniform)  # density 3 (1 - x)^2: F(x) = 1 - (1 - x)^3
    placed = np.where(right <= 0, falling, np.where(left <= 0, 1 - falling, linear))
    tent = np.where(uniform < 0.5, np.sqrt(uniform / 2), 1 - np.sqrt((1 - uniform) / 2))
    return np.clip(np.where(lone, tent, placed), 0.0, np.nextafter(1.0, 0.0))
