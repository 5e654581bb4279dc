import os

import dp_accounting
import numpy as np
import pandas as pd
import pytest

from privgan.accounting import PrivacyLedger, epsilon_of_event
from privgan.tabular import (
    CategoricalColumn,
    MarginalDPSynthesizer,
    NumericColumn,
    SchemaError,
    TableSchema,
    validate_frame,
)
from privgan.tabular.marginal import _nonnegative
from tests.privgan.tabular.tables import SCHEMA, make_table

ROWS, EPSILON, DELTA = 400, 4.0, 1e-5
FAST = {"iterations": 60, "bins": 16, "max_bins": 6}


@pytest.fixture(scope="module")
def table():
    return make_table(ROWS)


@pytest.fixture(scope="module")
def mst(table):
    return MarginalDPSynthesizer(SCHEMA, method="mst", seed=0, **FAST).fit(table, epsilon=EPSILON, delta=DELTA)


@pytest.fixture(scope="module")
def aim(table):
    return MarginalDPSynthesizer(SCHEMA, method="aim", rounds=2, seed=0, **FAST).fit(
        table, epsilon=EPSILON, delta=DELTA
    )


def _events(synthesizer):
    return [phase.event for phase in synthesizer.ledger_.phases]


def test_mst_ledger_is_the_planned_dp_accounting_events(mst):
    columns = len(SCHEMA.columns)
    rho = mst.rho_
    one_way = dp_accounting.GaussianDpEvent(np.sqrt(columns / (2 * rho / 3)))
    edge = dp_accounting.ZCDpEvent(rho / 3 / (columns - 1))
    pair = dp_accounting.GaussianDpEvent(np.sqrt((columns - 1) / (2 * rho / 3)))
    expected = [one_way] * columns + [edge, pair] * (columns - 1)  # choose an edge, count its pair
    assert _events(mst) == pytest.approx(expected) or _events(mst) == expected
    statement = mst.privacy_statement()
    spent = epsilon_of_event(dp_accounting.ComposedDpEvent(expected), delta=DELTA, accountant="rdp")
    assert statement["epsilon"] == pytest.approx(spent, rel=1e-9)
    assert 0.99 * EPSILON <= statement["epsilon"] <= EPSILON  # calibrated to spend the budget, never more
    assert statement["accountant"] == "rdp" and statement["method"] == "mst"
    assert statement["measurements"] == 2 * columns - 1 and statement["selections"] == columns - 1
    assert PrivacyLedger.from_dict(statement["ledger"]) == mst.ledger_
    # Only the noisy counts' sigmas are charged: every marginal's sigma is a Gaussian event of the ledger.
    sigmas = sorted(m["sigma"] for m in statement["marginals"])
    assert sigmas == sorted(e.noise_multiplier for e in _events(mst) if isinstance(e, dp_accounting.GaussianDpEvent))


def test_aim_says_which_round_it_is_in(table, caplog):
    caplog.set_level("INFO", logger="absl")
    MarginalDPSynthesizer(SCHEMA, method="aim", rounds=2, seed=0, **FAST).fit(table, epsilon=EPSILON, delta=DELTA)
    rounds = [record.getMessage() for record in caplog.records if record.getMessage().startswith("AIM round")]
    assert [line.split(":")[0] for line in rounds] == ["AIM round 1 of 2", "AIM round 2 of 2"]


def test_aim_shows_a_progress_bar_on_request_and_then_logs_no_round_lines(table, caplog, capsys):
    caplog.set_level("INFO", logger="absl")
    MarginalDPSynthesizer(SCHEMA, method="aim", rounds=2, seed=0, **FAST).fit(
        table, epsilon=EPSILON, delta=DELTA, progress=True
    )
    assert "2/2" in capsys.readouterr().out
    assert not [record for record in caplog.records if record.getMessage().startswith("AIM round")]


def test_aim_ledger_is_one_way_counts_then_rounds(aim):
    columns, rounds = len(SCHEMA.columns), 2
    events = _events(aim)
    sigma = events[0].noise_multiplier
    assert events[:columns] == [dp_accounting.GaussianDpEvent(sigma)] * columns
    pair = [dp_accounting.ZCDpEvent(0.1 * aim.rho_ / rounds), dp_accounting.GaussianDpEvent(sigma)]
    assert events[columns:] == pair * rounds
    assert aim.privacy_statement()["epsilon"] == pytest.approx(
        epsilon_of_event(dp_accounting.ComposedDpEvent(events), delta=DELTA, accountant="rdp"), rel=1e-9
    )
    assert aim.privacy_statement()["epsilon"] <= EPSILON


def test_samples_fit_the_schema_and_keep_the_association(mst, table):
    synthetic = mst.sample(3000)
    validate_frame(synthetic, SCHEMA)
    assert list(synthetic.columns) == list(SCHEMA.names) and synthetic["age"].dtype == np.int64
    assert synthetic["colour"].isna().any() and synthetic["score"].isna().any()  # nullable columns keep missing


def test_noise_is_secret_by_default_and_reproducible_only_on_request(table):
    import keras

    small = SCHEMA.without("age", "income", "score", "grade")  # two columns: a cheap model
    rows = table[list(small.names)]

    def fit(**kwargs):
        keras.utils.set_random_seed(0)  # a global seed must not fix the DP noise
        synthesizer = MarginalDPSynthesizer(small, method="mst", seed=0, **FAST, **kwargs)
        return synthesizer.fit(rows, epsilon=EPSILON, delta=DELTA)

    fits = [fit(), fit()]
    one_way = [f.model_.counts(("colour",)) for f in fits]
    assert not np.allclose(one_way[0], one_way[1])
    assert fits[0].privacy_statement()["reproducible_noise"] is False
    assert "secret" in fits[0].privacy_statement()["noise"] and "warning" not in fits[0].privacy_statement()
    seeded = [fit(noise_seed=7), fit(noise_seed=7)]
    np.testing.assert_allclose(*[f.model_.counts(("colour",)) for f in seeded], rtol=1e-9)
    statement = seeded[0].privacy_statement()
    assert statement["reproducible_noise"] is True and "NO privacy guarantee" in statement["warning"]


def test_conditional_sampling_draws_from_the_models_conditional(aim):
    synthetic = aim.sample(4000, conditions={"label": "yes"})
    assert (synthetic["label"] == "yes").all()
    # The other columns follow the model's conditional distribution given the condition (exact
    # conditioning in the graphical model), not its marginal.
    joint = aim.model_.counts(("colour", "label"))
    yes = SCHEMA["label"].categories.index("yes")
    conditional = joint[:, yes] / joint[:, yes].sum()
    groups = aim.groups_["colour"]
    observed = np.bincount(groups[aim.discretizer.encode(synthetic)["colour"]], minlength=len(conditional)) / 4000
    np.testing.assert_allclose(observed, conditional, atol=0.04)
    numeric = aim.sample(50, conditions={"age": 90, "colour": None})
    assert (numeric["age"] == 90).all() and numeric["colour"].isna().all()


def test_conditions_are_checked_against_the_schema(mst):
    with pytest.raises(SchemaError, match="condition colour='purple': not a category of 'colour'"):
        mst.sample(5, conditions={"colour": "purple"})
    with pytest.raises(SchemaError, match=r"condition age=120: outside the schema bounds \[18, 90\]"):
        mst.sample(5, conditions={"age": 120})
    with pytest.raises(SchemaError, match="condition on unknown column 'height'"):
        mst.sample(5, conditions={"height": 3})
    with pytest.raises(SchemaError, match="does not allow missing values in 'grade'"):
        mst.sample(5, conditions={"grade": None})


def test_rare_codes_are_merged_from_the_noisy_counts_only():
    synthesizer = MarginalDPSynthesizer(SCHEMA, method="mst", max_bins=4)
    noisy = np.array([100.0, 2.0, 50.0, -3.0])
    categories = synthesizer._groups("colour", noisy, _nonnegative(noisy, 150.0), 5.0, 150.0)
    np.testing.assert_array_equal(categories, [0, 2, 1, 2])  # codes below 3 sigma share one group
    noisy = np.array([40.0, 1.0, 1.0, 50.0, 0.0, 10.0, 20.0, 3.0] + [0.0] * 8)
    bins = synthesizer._groups("age", noisy, _nonnegative(noisy, 125.0), 1.0, 125.0)
    # contiguous groups of at least total / max_bins = 31.25 noisy rows; the thin tail joins the last group
    np.testing.assert_array_equal(bins[:8], [0, 1, 1, 1, 2, 2, 2, 2])
    assert bins.max() == 2


def test_nonnegative_counts_are_the_nearest_with_the_total():
    estimate = _nonnegative(np.array([50.0, -10.0, 30.0, 5.0]), 60.0)
    np.testing.assert_allclose(estimate, [40.0, 0.0, 20.0, 0.0])  # max(noisy - 10, 0), summing to 60
    np.testing.assert_allclose(_nonnegative(np.array([3.0, 1.0]), 4.0), [3.0, 1.0])  # already feasible


def test_small_table_with_generous_bounds_keeps_its_numeric_column():
    # 1,000 rows in [100, 300] of the public range [0, 1000], at a budget where each bin's noise (sigma 83)
    # exceeds the rows of a 64-bin grid: the grid is coarsened and noise on the empty range gets no rows, so
    # the synthetic values stay near the data and the label keeps its relationship with them. With the
    # fixed 64-bin grid, 18.5% of the values (these four noise draws) fell far from the data; on the
    # 398-row breast-cancer table at epsilon=1 that noise reversed the label's relationship in some runs.
    schema = TableSchema((NumericColumn("size", 0.0, 1000.0), CategoricalColumn("label", ("small", "large"))))
    size = np.random.default_rng(0).uniform(100.0, 300.0, 1000)
    table = pd.DataFrame({"size": size, "label": pd.Series(np.where(size > 200, "large", "small").astype(object))})
    far, gaps = [], []
    for noise_seed in range(4):
        synthesizer = MarginalDPSynthesizer(schema, method="mst", seed=0, noise_seed=noise_seed, iterations=60)
        synthetic = synthesizer.fit(table, epsilon=0.1, delta=DELTA).sample(1000)
        assert synthesizer.measurements_log_[0]["sigma"] > 80 and synthesizer.bins_ == 16
        far.append(np.mean((synthetic["size"] < 50) | (synthetic["size"] > 375)))
        large = synthetic["label"] == "large"
        gaps.append(synthetic.loc[large, "size"].mean() - synthetic.loc[~large, "size"].mean())
    assert np.mean(far) < 0.1, far
    assert min(gaps) > 0, gaps


def test_fit_imports_no_jax_and_leaves_its_settings_alone(table):
    # The model is fitted in numpy (`privgan.tabular.estimation`): nothing is compiled, and JAX's
    # process-wide settings (float64, compilation cache) stay as the user set them.
    import subprocess
    import sys

    code = (
        "import sys; from privgan.tabular import MarginalDPSynthesizer; "
        "from tests.privgan.tabular.tables import SCHEMA, make_table; "
        "jax_before = 'jax' in sys.modules; "
        "MarginalDPSynthesizer(SCHEMA, method='aim', rounds=1, iterations=50, bins=16, max_bins=6, seed=0)"
        ".fit(make_table(100), epsilon=4.0, delta=1e-5).sample(10); "
        "print('mbi' in sys.modules, 'jax' in sys.modules and sys.modules['jax'].config.jax_enable_x64, "
        "'jax' in sys.modules and not jax_before)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["False", "False", "False"]
