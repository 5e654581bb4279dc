"""The data owner's fidelity report: what it measures, and that it says it is computed on private data."""

import pytest

from privgan.evaluation.tabular_report import NOT_FOR_PUBLICATION, fidelity_report, write_fidelity_report
from privgan.tabular import SchemaError
from tests.privgan.tabular.tables import SCHEMA, make_table


def test_report_of_a_table_against_itself_and_against_noise():
    private = make_table(300, seed=0)
    same = fidelity_report(private, private, schema=SCHEMA, seed=0)
    other = fidelity_report(private, make_table(300, seed=1).sample(frac=1, random_state=0), schema=SCHEMA, seed=0)
    assert same.mean_tvd == 0 and same.associations.mean_absolute_difference == 0
    assert same.label == "label" and same.positive == "yes"  # the last categorical column, its first category
    assert same.tstr.num_test == same.trtr.num_test == 90 and same.trtr.num_train == 210
    assert 0 < other.mean_tvd < 0.2
    assert same.summary().startswith(f"Fidelity ({NOT_FOR_PUBLICATION}):")


def test_tstr_is_skipped_with_a_reason_and_bad_labels_are_refused():
    private = make_table(100)
    schema = SCHEMA.without("colour", "grade", "label")
    report = fidelity_report(private.drop(columns=["colour", "grade", "label"]),
                             private.drop(columns=["colour", "grade", "label"]), schema=schema)
    assert report.tstr is None and "no categorical column" in report.tstr_note
    with pytest.raises(SchemaError, match="must be a categorical column"):
        fidelity_report(private, private, schema=SCHEMA, label="age")
    with pytest.raises(SchemaError, match="'maybe' is not a category of 'label'"):
        fidelity_report(private, private, schema=SCHEMA, positive="maybe")


def test_large_tables_are_compared_on_samples(tmp_path):
    private, synthetic = make_table(400, seed=0), make_table(300, seed=1)
    report, paths = write_fidelity_report(private, synthetic, schema=SCHEMA, synthetic_path=tmp_path / "s.csv",
                                          epsilon=1.23456, delta=1e-5, max_rows=200)
    assert report.compared_rows == 200 and report.private_rows == 400 and report.synthetic_rows == 300
    text = paths["markdown"].read_text()
    assert "each compared on a random sample of 200 rows" in text and "epsilon = 1.235, delta = 1e-05" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "s.PRIVATE-fidelity-associations.png", "s.PRIVATE-fidelity-marginals.png", "s.PRIVATE-fidelity.md"
    ]
    elsewhere = tmp_path / "private-reports"
    _, paths = write_fidelity_report(private, synthetic, schema=SCHEMA, synthetic_path=tmp_path / "s.csv",
                                     epsilon=1.0, delta=1e-5, max_rows=200, folder=elsewhere)
    assert paths["markdown"] == elsewhere / "s.PRIVATE-fidelity.md" and paths["markdown"].is_file()


def test_synthetic_rows_where_the_private_data_have_none_are_flagged_with_axes_in_units(tmp_path, monkeypatch):
    import dataclasses

    from privgan.evaluation import tabular_report

    schema = dataclasses.replace(SCHEMA, columns=tuple(
        dataclasses.replace(c, unit="years") if c.name == "age" else c for c in SCHEMA.columns))
    private = make_table(200, seed=0)
    private["age"] = private["age"].clip(18, 60)
    synthetic = make_table(200, seed=1)
    synthetic.loc[:19, "age"] = 85  # 10% of the rows older than any private row
    labels = []
    monkeypatch.setattr("matplotlib.axes.Axes.set_xlabel", lambda self, text, **kw: labels.append(text))
    report, paths = write_fidelity_report(private, synthetic, schema=schema, synthetic_path=tmp_path / "s.csv",
                                          epsilon=1.0, delta=1e-5)
    assert report.empty_mass["age"] >= 0.1 and report.empty_mass["colour"] == 0
    assert "synthetic rows where the private data have none: age" in report.summary()
    assert "| age |" in paths["markdown"].read_text().split("## Synthetic rows where the private data have none")[1]
    assert any(label.startswith("age (years): bins of") for label in labels)
    assert tabular_report.fidelity_report(private, private, schema=schema).empty_mass["age"] == 0
