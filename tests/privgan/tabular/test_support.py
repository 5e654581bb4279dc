"""Empty bins of generous public bounds stay empty: `privgan.tabular.support` and the marginal engines."""

import warnings

import numpy as np
import pytest

from experiments.wide_bounds import FAMILIES, outside_share
from privgan.tabular import MarginalDPSynthesizer, NumericColumn
from privgan.tabular.marginal import _nonnegative
from privgan.tabular.support import bin_shapes, place_within, sparse_counts


def test_sparse_counts_zero_the_empty_bins_that_the_projection_keeps():
    rng = np.random.default_rng(0)
    rows = np.zeros(32)
    rows[10:14] = [40, 90, 110, 60]
    noisy = rows + rng.normal(0, 20, rows.size)
    projected = _nonnegative(noisy, noisy.sum())
    sparse = sparse_counts(noisy, noisy.sum(), 20.0, value_codes=32, projected=projected)
    assert projected[rows == 0].sum() > 30  # the plain projection leaves noise in the empty bins
    assert sparse[rows == 0].sum() == 0
    assert sparse.sum() == pytest.approx(projected.sum())


def test_sparse_counts_keep_a_missing_code_and_fall_back_when_nothing_stands_out():
    noisy = np.array([0.0, 100.0, 0.0, 0.0, 30.0])  # four bins and a missing code
    projected = _nonnegative(noisy, 130.0)
    sparse = sparse_counts(noisy, 130.0, 10.0, value_codes=4, projected=projected)
    assert sparse[-1] == projected[-1] and sparse[1] == pytest.approx(projected[:4].sum())
    flat = np.array([1.0, -2.0, 3.0, 0.5])
    assert np.array_equal(sparse_counts(flat, 2.5, 10.0, value_codes=4, projected=flat.clip(0)), flat.clip(0))


def test_values_in_an_edge_bin_lean_towards_the_rows():
    left, right = bin_shapes(np.array([0.0, 10.0, 10.0, 0.0]))
    assert left[1] == 0 and right[2] == 0 and right[1] == left[2] == 10
    uniform = np.random.default_rng(0).random(10_000)
    placed = place_within(np.full(uniform.size, 10.0), np.zeros(uniform.size), uniform)
    # Density 3 (1 - x)^2 towards the empty side: mean 1/4, 14% of the rows past the bin's middle.
    assert 0 <= placed.min() and placed.max() < 1 and placed.mean() == pytest.approx(1 / 4, abs=0.01)
    assert np.mean(placed > 0.5) == pytest.approx(1 / 8, abs=0.01)
    mirrored = place_within(np.zeros(uniform.size), np.full(uniform.size, 10.0), uniform)
    assert mirrored.mean() == pytest.approx(3 / 4, abs=0.01)


# Noisy one-way counts of a generated heart rate (32 bins of 0-300, rows at 50-130: bins 5-13), sigma 18.5:
# no single bin stands out, and a block of 16 bins that does straddles the rows' lower edge.
STRADDLED = np.array([
    3.7, 0.8, -16.2, 28.3, 18.4, -1.1, 44.3, -3.4, 33.0, 13.6, 19.3, 34.0, 35.2, 36.2, 24.3, -5.6,
    7.8, -28.4, 3.6, 12.9, 2.3, -10.9, 19.4, 26.9, 2.8, 29.6, 24.4, 5.2, 6.5, 18.4, 11.4, -19.3,
])


def test_a_passing_block_that_straddles_the_edge_of_the_rows_gives_its_empty_bins_nothing():
    total = 321.1
    sparse = sparse_counts(STRADDLED, total, 18.5, value_codes=32, projected=_nonnegative(STRADDLED, total))
    assert sparse[:5].sum() == 0 and sparse[14:].sum() == 0  # before: bins 0-4 and 14 held 24% of the rows
    assert np.count_nonzero(sparse[5:14]) >= 6 and sparse.sum() == pytest.approx(total)


def test_a_lone_block_of_noise_apart_from_the_rows_is_dropped():
    # BMI in 16 bins of 0-120, rows at 15-45 (bins 2-4); two empty bins at 60-75 pass the blocks' test.
    noisy = np.array([-5.0, 3.0, 39.9, 198.7, 74.1, -13.4, 2.0, -8.0, 41.4, 39.5, -6.0, 1.0, -20.0, 5.0, -3.0, 0.0])
    sparse = sparse_counts(noisy, 315.8, 19.2, value_codes=16, projected=_nonnegative(noisy, 315.8))
    assert sparse[8:10].sum() == 0 and sparse[2:5].sum() == pytest.approx(315.8)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("method", ["mst", "aim"])
def test_few_synthetic_rows_fall_where_a_small_table_with_wide_bounds_has_none(family, method):
    # Generated 300-row tables, bounds 3-5 times the data's range, epsilon = 1: before, 8-26% of a
    # column's synthetic values lay beyond the real ones (worst column per seed). Seeded noise, for the
    # test only.
    worst = []
    for seed in range(3):
        schema, real = FAMILIES[family](300, np.random.default_rng(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synthesizer = MarginalDPSynthesizer(schema, method=method, seed=seed, noise_seed=1000 + seed,
                                                iterations=100, rounds=4)
            synthetic = synthesizer.fit(real, epsilon=1.0, delta=1e-6).sample(2000)
        worst.append(max(outside_share(real, synthetic, column, tolerance=0.01)
                         for column in schema.columns if isinstance(column, NumericColumn)))
    assert max(worst) <= 0.03, worst  # before: up to 0.11 (the straddling block above)


def test_rows_spread_thinly_over_many_bins_keep_their_spread():
    # 40 bins of 20 rows each (ages over 17-90) between 12 empty bins on each side, noise sigma 20: a
    # single bin rarely stands out, and keeping only those that do would put all rows in one or two bins.
    rng = np.random.default_rng(0)
    true = np.concatenate([np.zeros(12), np.full(40, 20.0), np.zeros(12)])
    held = []
    for _ in range(20):
        noisy = true + rng.normal(0, 20.0, true.size)
        projected = _nonnegative(noisy, true.sum())
        counts = sparse_counts(noisy, true.sum(), 20.0, value_codes=true.size, projected=projected)
        held.append(np.count_nonzero(counts[12:52]))
    assert np.median(held) >= 20, held
