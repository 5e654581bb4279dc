"""Where a numeric column's rows are, from its noisy one-way counts alone: empty bins stay empty.

Public bounds are often generous (ages 0 to 120 for patients of 30 to 80), so most of a numeric column's
equal-width bins hold no row, and at a small epsilon each of their noisy counts is noise of standard
deviation sigma, about as large as the rows of the bins that hold data. The Euclidean projection of the
noisy counts onto the non-negative counts with the right total (`nonnegative`) removes one
common shift tau from every count: tau is small when the noise sums to about zero, so every empty bin
whose noise came out positive keeps a share of the rows (on generated 300-row tables with bounds 3-5
times wider than the data at epsilon = 1, 10-29% of a column's synthetic values lay outside the range of the
real ones with AIM, worst column per seed). Those shares become rows sampled in ranges the real data leave empty.

`sparse_counts` keeps only the bins that stand out of the noise: a core of bins above z sigma (z set
so that a column's empty bins all stay below it with probability 0.9; blocks of adjacent bins are tested
when no single bin passes), grown to neighbouring bins above 2 sigma, as rows thin out into the tails.
When the bins left out hold clearly more than noise together (rows spread thinly over many bins: ages
over 17-90 in 1,000 rows at epsilon = 1), blocks of every scale that stand out are kept instead. Every
other bin gets zero, and `bin_shapes` / `place_within` place values within the edge bins towards the
rows rather than uniformly (`experiments/wide_bounds.py` measures the share of a column's synthetic
values more than 1% of the public range outside the real ones). Only the
released noisy counts are read: it is post-processing, and it costs no privacy budget.
"""


import numpy as np
from scipy import stats

EXTEND_MULTIPLE = 2.0  # a neighbour of the rows' bins with a noisy count above 2 sigma holds rows too
_FALSE_BIN_RATE = 0.1  # chance that some empty bin of a column passes the threshold (Bonferroni)


def threshold_multiple(bins):
    """z such that any of `bins` bins of pure Gaussian noise exceeds z sigma with probability at most 0.1."""
    return float(stats.norm.isf(_FALSE_BIN_RATE / max(1, int(bins))))


def sparse_counts(noisy, total, sigma, *, value_codes, projected):
    """Non-negative counts of a numeric column's codes with empty bins at zero; they sum to `total`.

    The bins that hold rows are found in two steps. First the core: bins whose noisy count passes z sigma,
    z from `threshold_multiple` for the number of bins, so that no empty bin of the column passes with
    probability 0.9. When none does (rows spread thinly), blocks of 2, 4, ... adjacent bins are tested the
    same way (a block's count has noise sigma sqrt(size)), and the core is the bins of the passing blocks
    whose noisy count is above `EXTEND_MULTIPLE` sigma (the largest one if none is). Then the core grows
    to each neighbouring bin whose noisy count is above `EXTEND_MULTIPLE` sigma, since the rows of a
    column usually spread over adjacent bins, thinning out. The bins found keep their share of the
    projection of their noisy counts onto non-negative counts; every other bin gets zero.

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
    kept = _finest_core(bins, sigma)
    if kept is None:
        return projected  # nothing stands out of the noise: nothing is known about where the rows are
    kept = _grown(kept, bins, sigma)
    if _holds_rows(bins, ~kept, sigma):
        # The bins left out hold many rows together: they spread thinly (ages over 17-90), and a few
        # strong bins must not stand for all of them. Blocks at every scale find where they are.
        blocks = _all_scales_core(bins, sigma)
        if blocks is None:  # the finest core passed at a threshold the all-scales one is stricter than
            return projected
        kept = _grown(blocks, bins, sigma)
    result = projected.copy()
    result[:value_codes] = 0.0
    mass = projected[:value_codes].sum()
    if mass > 0:
        result[np.flatnonzero(kept)] = nonnegative(bins[kept], mass)
    return result


def _finest_core(bins, sigma):
    """Bins that stand out of the noise, at the finest scale where some do (None if none at any scale)."""
    size = 1
    while size <= max(1, bins.size // 2):
        starts = np.arange(0, bins.size, size)
        widths = np.diff(np.append(starts, bins.size))
        passing = np.add.reduceat(bins, starts) > threshold_multiple(starts.size) * sigma * np.sqrt(widths)
        if passing.any():
            if size == 1:
                return passing
            core = np.zeros(bins.size, dtype=bool)
            for start, width in zip(starts[passing], widths[passing]):
                block = bins[start : start + width]
                strong = block > EXTEND_MULTIPLE * sigma
                core[start : start + width] = strong if strong.any() else block == block.max()
            return core
        size *= 2
    return None


def _all_scales_core(bins, sigma):
    """Bins that stand out of the noise alone or in blocks of 2, 4, ... adjacent bins, at any scale.

    The threshold shares the false-pass rate among all blocks of all scales.
    """
    sizes = [1]
    while sizes[-1] * 2 <= max(1, bins.size // 2):
        sizes.append(sizes[-1] * 2)
    blocks = sum(-(-bins.size // size) for size in sizes)
    core = np.zeros(bins.size, dtype=bool)
    for size in sizes:
        starts = np.arange(0, bins.size, size)
        widths = np.diff(np.append(starts, bins.size))
        passing = np.add.reduceat(bins, starts) > threshold_multiple(blocks) * sigma * np.sqrt(widths)
        for start, width in zip(starts[passing], widths[passing]):
            core[start : start + width] = True  # the block holds rows as a whole
    return core if core.any() else None


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


def _holds_rows(bins, dropped, sigma):
    """Whether the `dropped` bins together hold clearly more than noise (z sigma sqrt(their number)).

    z is `threshold_multiple` of the column's bins, as for the single bins.
    """
    count = int(dropped.sum())
    return count > 0 and bins[dropped].sum() > threshold_multiple(bins.size) * sigma * np.sqrt(count)


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
    """Positions in [0, 1) with the linear density from `left` to `right` (inverse CDF of `uniform`).

    Where both edge densities are zero (a lone bin between empty ones), the density is a tent peaking at
    the bin's middle.
    """
    left, right, uniform = (np.asarray(a, dtype=np.float64) for a in (left, right, uniform))
    lone = (left <= 0) & (right <= 0)
    slope = right - left
    with np.errstate(divide="ignore", invalid="ignore"):
        # F(x) = (left x + slope x^2 / 2) / ((left + right) / 2) = u, solved for x.
        root = np.sqrt(np.maximum(left**2 + slope * uniform * (left + right), 0.0))
        linear = np.where(np.abs(slope) > 1e-12 * np.maximum(left + right, 1e-300), (root - left) / slope, uniform)
    tent = np.where(uniform < 0.5, np.sqrt(uniform / 2), 1 - np.sqrt((1 - uniform) / 2))
    return np.clip(np.where(lone, tent, linear), 0.0, np.nextafter(1.0, 0.0))
