import json

import pytest

from privgan.tabular import (
    CategoricalColumn,
    NumericColumn,
    SchemaError,
    TableSchema,
    infer_schema,
    load_schema,
    save_schema,
)
from tests.privgan.tabular.tables import SCHEMA, make_table


def test_json_round_trip(tmp_path):
    path = tmp_path / "schema.json"
    save_schema(SCHEMA, path)
    assert load_schema(path) == SCHEMA
    assert json.loads(path.read_text())["columns"][1] == {
        "type": "categorical", "name": "colour", "categories": ["red", "green", "blue"], "nullable": True
    }


def test_defaults_of_a_hand_written_schema(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"columns": [{"type": "numeric", "name": "x", "lower": 0, "upper": 1}]}))
    schema = load_schema(path)
    assert schema.source == "public"
    assert schema["x"] == NumericColumn("x", 0.0, 1.0, integer=False, nullable=False, transform="linear")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: NumericColumn("x", 5, 1), "column 'x': lower must be < upper"),
        (lambda: NumericColumn("x", 0, float("inf")), "column 'x': upper must be a finite number"),
        (lambda: NumericColumn("x", 0, 1.5, integer=True), "column 'x': an integer column needs whole-number bounds"),
        (lambda: NumericColumn("x", 0, 1, transform="sqrt"), "column 'x': transform must be one of"),
        (lambda: CategoricalColumn("c", ()), "column 'c': categories must not be empty"),
        (lambda: CategoricalColumn("c", ("a", "a")), "column 'c': duplicate categories ['a']"),
        (lambda: CategoricalColumn("c", ("a", 1)), "column 'c': categories must be all strings or all integers"),
        (lambda: TableSchema((NumericColumn("x", 0, 1), CategoricalColumn("x", ("a",)))),
         "duplicate column names ['x']"),
        (lambda: TableSchema(()), "at least one column"),
        (lambda: TableSchema.from_dict({"columns": [{"type": "text", "name": "d"}]}),
         "columns[0]: type must be one of"),
        (lambda: TableSchema.from_dict({"columns": [{"type": "numeric", "name": "x", "lower": 0}]}),
         "columns[0] ('x'): a numeric column takes the keys"),
    ],
)
def test_invalid_schemas_name_the_column(make, message):
    with pytest.raises(SchemaError) as error:
        make()
    assert message in str(error.value)


def test_invalid_json_file(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text("{not json")
    with pytest.raises(SchemaError, match="is not valid JSON"):
        load_schema(path)


def test_infer_schema_refuses_without_opt_in():
    with pytest.raises(ValueError, match="not differentially private"):
        infer_schema(make_table())


def test_infer_schema_reads_the_data_and_says_so():
    table = make_table()
    with pytest.warns(UserWarning, match="NO differential privacy guarantee"):
        schema = infer_schema(table, i_understand_this_is_not_private=True, integer_max_categories=3)
    assert schema.source == "data"
    assert schema["age"] == NumericColumn("age", table["age"].min(), table["age"].max(), integer=True)
    assert schema["colour"] == CategoricalColumn("colour", ("blue", "green", "red"), nullable=True)
    assert schema["grade"] == CategoricalColumn("grade", (1, 2, 3))
    assert schema["score"].nullable and not schema["score"].integer


def test_without_removes_a_column():
    assert SCHEMA.without("label").names == ("age", "colour", "income", "score", "grade")
    with pytest.raises(KeyError, match="no column 'nope'"):
        SCHEMA.without("nope")
