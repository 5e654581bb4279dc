import numpy as np
import pytest

from privgan.dp import poisson_batches


def _sizes(dataset):
    return [len(x) for x, _ in dataset]


def test_each_example_is_included_with_probability_q_and_rows_stay_aligned():
    n, q, steps = 200, 0.1, 300
    x = np.arange(n)
    counts = np.zeros(n)
    for xs, ys in poisson_batches((x, -x), sampling_probability=q, steps=steps, seed=3):
        np.testing.assert_array_equal(ys.numpy(), -xs.numpy())
        assert len(np.unique(xs.numpy())) == len(xs)  # without replacement within a batch
        counts[xs.numpy()] += 1
    rate = counts.sum() / (n * steps)
    assert rate == pytest.approx(q, abs=4 * np.sqrt(q * (1 - q) / (n * steps)))
    # Inclusion is independent per example: per-example counts are Binomial(steps, q).
    assert counts.var() == pytest.approx(steps * q * (1 - q), rel=0.25)


def test_seed_reproduces_batches_and_sizes_vary():
    data = (np.arange(100), np.arange(100))
    first = _sizes(poisson_batches(data, sampling_probability=0.1, steps=20, seed=1))
    assert first == _sizes(poisson_batches(data, sampling_probability=0.1, steps=20, seed=1))
    assert first != _sizes(poisson_batches(data, sampling_probability=0.1, steps=20, seed=2))
    assert len(set(first)) > 1


def test_resuming_at_first_step_continues_the_sequence_instead_of_repeating_it():
    data = (np.arange(100), np.arange(100))
    whole = _sizes(poisson_batches(data, sampling_probability=0.1, steps=20, seed=1))
    resumed = _sizes(poisson_batches(data, sampling_probability=0.1, steps=10, seed=1, first_step=10))
    assert resumed == whole[10:]


def test_groups_hold_the_same_batches_in_order_and_only_whole_groups():
    data = (np.arange(100), np.arange(100))
    whole = [x.numpy().tolist() for x, _ in poisson_batches(data, sampling_probability=0.1, steps=11, seed=1)]
    groups = list(poisson_batches(data, sampling_probability=0.1, steps=11, seed=1, group_size=3))
    assert len(groups) == 3  # 11 // 3: the last two batches would not fill a group
    assert [x.numpy().tolist() for group in groups for x, _ in group] == whole[:9]
    resumed = list(poisson_batches(data, sampling_probability=0.1, steps=6, seed=1, first_step=3, group_size=3))
    assert [x.numpy().tolist() for group in resumed for x, _ in group] == whole[3:9]


def test_small_q_produces_empty_batches():
    sizes = _sizes(poisson_batches((np.arange(10), np.arange(10)), sampling_probability=0.01, steps=30, seed=0))
    assert 0 in sizes


@pytest.mark.parametrize(
    "kwargs, message",
    [({"sampling_probability": 0.0}, "sampling_probability must be in"),
     ({"sampling_probability": 1.5}, "sampling_probability must be in"),
     ({"sampling_probability": 0.5, "steps": -1}, "steps must be"),
     ({"sampling_probability": 0.5, "first_step": -1}, "first_step must be"),
     ({"sampling_probability": 0.5, "group_size": 0}, r"group_size must be None or an integer >= 1, got 0")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        poisson_batches(np.arange(5), **kwargs)


def test_arrays_of_different_lengths_refused():
    with pytest.raises(ValueError, match="same number of rows"):
        poisson_batches((np.arange(5), np.arange(6)), sampling_probability=0.5)


def test_sampling_streams_are_independent_and_stream_zero_is_the_default():
    from privgan.dp.noise import sampling_seed_pair

    data = np.arange(64)
    default = [b.numpy() for b in poisson_batches(data, sampling_probability=0.5, steps=5, seed=3)]
    zero = [b.numpy() for b in poisson_batches(data, sampling_probability=0.5, steps=5, seed=3, stream=0)]
    other = [b.numpy() for b in poisson_batches(data, sampling_probability=0.5, steps=5, seed=3, stream=1)]
    assert all(np.array_equal(a, b) for a, b in zip(default, zero))
    assert not any(np.array_equal(a, b) for a, b in zip(zero, other))
    pairs = {tuple(sampling_seed_pair(3, step, stream).numpy()) for step in range(50) for stream in (0, 1, 2)}
    assert len(pairs) == 150
    with pytest.raises(ValueError, match=r"stream must be an integer in \[0, 8191\], got -1"):
        poisson_batches(data, sampling_probability=0.5, stream=-1)
