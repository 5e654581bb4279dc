import itertools

import numpy as np
import pytest

from privgan.tabular import estimation

SIZES = {"a": 3, "b": 4, "c": 2, "d": 5, "e": 3}


def _measurements(seed, cliques, rows=500, sigma=5.0):
    """Noisy counts of `cliques` on a random table in which b follows a."""
    rng = np.random.default_rng(seed)
    data = {name: rng.integers(0, size, rows) for name, size in SIZES.items()}
    data["b"] = (data["a"] + rng.integers(0, 2, rows)) % SIZES["b"]
    measurements = []
    for clique in cliques:
        shape = [SIZES[name] for name in clique]
        counts = np.bincount(np.ravel_multi_index([data[n] for n in clique], shape), minlength=np.prod(shape))
        measurements.append(estimation.Measurement(clique, counts + rng.normal(0.0, sigma, counts.size), sigma))
    return measurements


def _all_counts(model_counts):
    return {clique: model_counts(clique) for k in (1, 2) for clique in itertools.combinations(SIZES, k)}


def test_estimate_agrees_with_private_pgm_mirror_descent():
    # Same problem, same algorithm (Private-PGM's MirrorDescent, Armijo steps), run to convergence: the
    # fitted marginals agree, from a cold start on a model with a cycle and a triple (triangulated),
    # and from a warm start after one more measurement (one AIM round).
    mbi = pytest.importorskip("mbi")
    import jax

    cliques = [("a",), ("b",), ("d",), ("e",), ("a", "b", "c"), ("c", "d"), ("b", "d"), ("d", "a")]
    more = _measurements(1, [("e", "a")])
    measurements = _measurements(0, cliques)
    domain = mbi.Domain(list(SIZES), list(SIZES.values()))

    def theirs(ms, warm=None):
        linear = [mbi.LinearMeasurement(m.values, m.clique, stddev=m.stddev) for m in ms]
        return mbi.estimation.MirrorDescent().estimate(domain, linear, 500.0, iters=1500, warm_start=warm)

    with jax.enable_x64(True):
        cold = theirs(measurements)
        warm = theirs(measurements + more, warm=cold)
        expected = [_all_counts(lambda c, m=m: np.asarray(m.project(c).datavector(flatten=False)))
                    for m in (cold, warm)]
    ours_cold = estimation.estimate(SIZES, measurements, 500.0, iterations=1500)
    ours_warm = estimation.estimate(SIZES, measurements + more, 500.0, iterations=1500, warm_start=ours_cold)
    for model, reference in zip((ours_cold, ours_warm), expected):
        for clique, counts in _all_counts(model.counts).items():
            np.testing.assert_allclose(counts, reference[clique], atol=1e-3, err_msg=str(clique))
    assert sorted(ours_warm.cliques) == [("a", "b", "c"), ("a", "d"), ("a", "e"), ("b", "d"), ("c", "d")]


def test_counts_of_many_cliques_match_variable_elimination():
    # One calibration, pairs carried along the tree (or independent across its parts), triples by
    # variable elimination: the same counts as exact inference clique by clique.
    rng = np.random.default_rng(0)
    sizes = dict(SIZES, f=2)
    cliques = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "c", "d"), ("e",), ("f",), ("e", "f")]
    potentials = {c: rng.normal(0.0, 2.0, [sizes[n] for n in c]) for c in estimation.maximal_cliques(cliques)}
    model = estimation.GraphicalModel(sizes, potentials, 100.0)
    wanted = [c for k in (1, 2, 3) for c in itertools.combinations(sizes, k)] + [("d", "a"), ("f", "b")]
    found = model.counts_of(wanted)
    assert list(found) == wanted
    for clique in wanted:
        np.testing.assert_allclose(found[clique], model.counts(clique).ravel(), rtol=1e-9, atol=1e-9)
        assert found[clique].sum() == pytest.approx(100.0)


def test_junction_tree_is_private_pgms():
    # The same triangulation (elimination order and maximal cliques) as mbi's make_junction_tree, whose
    # size AIM uses to cap its model.
    mbi = pytest.importorskip("mbi")
    domain = mbi.Domain(list(SIZES), list(SIZES.values()))
    for cliques in (
        [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("e",)],  # a cycle: fill-in
        [("a", "b"), ("b", "c"), ("b", "d"), ("d", "e")],  # a tree: leaves first, no fill-in
        [("a", "b", "c"), ("c", "d"), ("b", "d"), ("a", "e"), ("d", "e")],
    ):
        tree, order = estimation.junction_tree(SIZES, cliques)
        reference, reference_order = mbi.junction_tree.make_junction_tree(domain, cliques)
        assert sorted(tree.nodes) == sorted(reference.nodes) and order == reference_order
        assert estimation.model_size(SIZES, cliques) == mbi.junction_tree.hypothetical_model_size(domain, cliques)


def test_grouped_measurement_sums_codes_and_their_noise():
    one_way = estimation.Measurement(("a",), [10.0, -2.0, 7.0, 5.0], 2.0)
    grouped = estimation.grouped_measurement(one_way, np.array([0, 1, 0, 0]))
    np.testing.assert_allclose(grouped.values, [22.0, -2.0])
    np.testing.assert_allclose(grouped.stddev, [2.0 * np.sqrt(3), 2.0])


def test_bad_measurements_are_refused():
    with pytest.raises(ValueError, match="stddev of"):
        estimation.Measurement(("a",), [1.0, 2.0], 0.0)
    with pytest.raises(ValueError, match="must be finite"):
        estimation.Measurement(("a",), [1.0, np.nan], 1.0)
    with pytest.raises(ValueError, match="does not fit"):
        estimation.estimate(SIZES, [estimation.Measurement(("a",), [1.0, 2.0], 1.0)], 10.0, iterations=50)
    with pytest.raises(ValueError, match="total must be > 0"):
        estimation.estimate(SIZES, _measurements(0, [("a",)]), 0.0, iterations=50)


@pytest.mark.parametrize("scale", [2.0, 400.0])
def test_calibration_in_probabilities_matches_log_space(scale):
    # The fast path passes messages on exp(potentials - max); the log-space one is its fallback. Both
    # give the same counts, also with potentials spread over hundreds of nats (cells far below 1e-308).
    rng = np.random.default_rng(1)
    cliques = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("e",)]
    calibration = estimation._Calibration(SIZES, cliques)
    flat = rng.normal(0.0, scale, calibration.length)
    fast, exact = calibration.node_counts(flat, 50.0), calibration._log_node_counts(flat, 50.0)
    for node, counts in exact.items():
        assert np.all(np.isfinite(fast[node])) and fast[node].sum() == pytest.approx(50.0)
        np.testing.assert_allclose(fast[node], counts, rtol=1e-6, atol=1e-9)
