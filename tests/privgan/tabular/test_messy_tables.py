"""Tables as data teams have them: identifiers, dates, blanks, other delimiters, rounding, many bad values."""

import warnings

import numpy as np
import pandas as pd
import pytest

from privgan.tabular import (
    MarginalDPSynthesizer,
    NumericColumn,
    SchemaError,
    TableSchema,
    TableTransformer,
    engine,
    engine_names,
    load_synthesizer,
    read_csv,
    register_engine,
    save_synthesizer,
)
from privgan.tabular.engines import gan_budget_warning
from privgan.tabular.schema import default_decimals

SCHEMA = TableSchema.from_dict({"columns": [
    {"type": "numeric", "name": "age", "lower": 0, "upper": 120, "integer": True, "unit": "years"},
    {"type": "numeric", "name": "bmi", "lower": 10, "upper": 60, "nullable": True, "decimals": 1},
    {"type": "categorical", "name": "site", "categories": ["A", "B", "C"]},
    {"type": "ignored", "name": "patient_id"},
]})
FAST = {"iterations": 60, "bins": 16, "max_bins": 6}


def _clinic(rows=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "patient_id": [f"P{i:04d}" for i in range(rows)],
        "age": rng.integers(30, 80, rows),
        "bmi": np.round(rng.normal(27, 4, rows), 1),
        "site": rng.choice(["A", "B", "C"], rows, p=[0.6, 0.39, 0.01]),
    })


def test_ignored_columns_are_read_and_dropped_and_round_trip_through_json():
    assert SCHEMA.ignored == ("patient_id",) and SCHEMA.names == ("age", "bmi", "site")
    assert TableSchema.from_dict(SCHEMA.to_dict()) == SCHEMA
    dropped = SCHEMA.ignoring("site", "admitted")
    assert dropped.names == ("age", "bmi") and dropped.ignored == ("patient_id", "site", "admitted")
    with pytest.raises(SchemaError, match="both modelled and ignored"):
        TableSchema(SCHEMA.columns, ignored=("age",))


def test_a_date_column_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(SchemaError, match=r'date columns are not modelled: declare it \{"type": "ignored"'):
        TableSchema.from_dict({"columns": [{"type": "date", "name": "d"}]})
    path = tmp_path / "t.csv"
    path.write_text("age,bmi,site\n2021-03-04,20.0,A\n2021-05-06,21.0,B\n")
    with pytest.raises(SchemaError, match=r"--drop_columns=age"):
        read_csv(path, SCHEMA)


def test_decimals_round_decoded_values_and_the_default_comes_from_the_bounds():
    transformer = TableTransformer(SCHEMA)
    decoded = transformer.decode(np.random.default_rng(0).random((50, transformer.width)))
    bmi = decoded["bmi"].dropna().to_numpy()
    assert np.allclose(bmi, np.round(bmi, 1)) and not np.allclose(bmi, np.round(bmi))
    assert [default_decimals(NumericColumn("x", 10, 60)), default_decimals(NumericColumn("x", 0, 1)),
            default_decimals(NumericColumn("x", 0, 5000)), default_decimals(NumericColumn("x", 0, 9, integer=True))] \
        == [2, 3, 0, None]
    with pytest.raises(SchemaError, match="decimals must be an integer in"):
        NumericColumn("x", 0, 1, decimals=-1)


def test_delimiter_missing_markers_and_a_hint_for_the_delimiter(tmp_path):
    table = _clinic(20).astype({"bmi": object})
    table.loc[[2, 5], "bmi"] = ["NA", "."]
    path = tmp_path / "t.csv"
    table.to_csv(path, sep=";", index=False)
    with pytest.raises(SchemaError, match=r"looks like it uses ';' between columns: pass --delimiter=';'"):
        read_csv(path, SCHEMA)
    with pytest.raises(SchemaError, match=r"2 values that are not numbers \(if '.', 'NA' mark missing values, pass "
                                          r"--na_values=,.,NA\)"):
        read_csv(path, SCHEMA, delimiter=";")
    read = read_csv(path, SCHEMA, delimiter=";", na_values=["", "NA", "."])
    assert list(read.columns) == ["age", "bmi", "site"] and read["bmi"].isna().sum() == 2


def test_every_bad_value_is_reported_at_once_with_rows_and_allowed_values(tmp_path):
    table = _clinic(40)
    table.loc[[3, 8, 20, 21, 22, 23, 24], "age"] = [150, 200, -3, 130, 140, 160, 170]
    table.loc[[4, 9], "site"] = ["D", "E"]
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    with pytest.raises(SchemaError) as error:
        read_csv(path, SCHEMA)
    message = str(error.value)
    assert message.startswith("9 bad values in 40 rows:")
    assert ("column 'age': 7 values outside the schema bounds [0, 120]: 150 at data row 4 (line 5 of t.csv); 200 at "
            "data row 9 (line 10 of t.csv)") in message
    assert "; and 2 more" in message  # five shown per problem
    assert ("column 'site': 2 unknown categories (the schema allows ['A', 'B', 'C']): 'D' at data row 5 (line 6 of "
            "t.csv); 'E' at data row 10 (line 11 of t.csv)") in message


@pytest.fixture(scope="module")
def fitted():
    synthesizer = MarginalDPSynthesizer(SCHEMA, method="mst", seed=0, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synthesizer.fit(_clinic(300).drop(columns="patient_id"), epsilon=1.0, delta=1e-5)


def test_a_saved_synthesizer_samples_like_the_fitted_one_carries_its_statement_and_refuses_to_fit(fitted, tmp_path):
    path = save_synthesizer(fitted, tmp_path / "model.npz")
    loaded = load_synthesizer(path, seed=3)
    assert loaded.privacy_statement() == fitted.privacy_statement()
    assert loaded.num_rows_estimate_ == fitted.num_rows_estimate_
    assert np.allclose(loaded.model_.counts(("age", "site")), fitted.model_.counts(("age", "site")))
    rows = loaded.sample(200, conditions={"site": "A"})
    assert (rows["site"] == "A").all() and rows["age"].between(0, 120).all()
    with pytest.raises(RuntimeError, match="loaded fitted"):
        loaded.fit(_clinic(10), epsilon=1.0, delta=1e-5)
    (tmp_path / "junk.npz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a synthesizer saved by privgan"):
        load_synthesizer(tmp_path / "junk.npz")


def test_conditioning_on_a_category_with_few_noisy_rows_warns(fitted):
    with pytest.warns(UserWarning, match=r"condition site='C': the model estimates about \d+ rows"):
        fitted.sample(5, conditions={"site": "C"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.sample(5, conditions={"site": "A"})


def test_engines_come_from_a_registry_that_users_can_extend():
    assert engine_names()[:3] == ["aim", "mst", "gan"]
    assert engine("mst").conditional and not engine("gan").conditional
    with pytest.raises(ValueError, match="--epochs only apply to --method=gan, not --method=aim"):
        engine("aim").build(SCHEMA, options={"epochs": 3})
    with pytest.raises(ValueError, match="registered already"):
        register_engine("aim", lambda *a, **k: None, description="x")
    custom = register_engine("mst_coarse", lambda schema, *, seed, accountant, options: MarginalDPSynthesizer(
        schema, method="mst", bins=8, seed=seed), description="MST on 8 bins", accountants=("rdp",), replace=True)
    assert isinstance(custom.build(SCHEMA), MarginalDPSynthesizer) and "mst_coarse" in engine_names()
    with pytest.raises(ValueError, match="unknown engine 'nope'"):
        engine("nope")


def test_the_gan_warns_when_epsilon_times_rows_is_small():
    assert "Prefer --method=aim" in gan_budget_warning(1.0, 3000)
    assert gan_budget_warning(3.0, 32_000) is None
