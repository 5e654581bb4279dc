import numpy as np
import pandas as pd
import pytest

from privgan.tabular import SchemaError, TableTransformer, read_csv, validate_frame
from tests.privgan.tabular.tables import SCHEMA, make_table


def test_encoding_layout_and_values():
    transformer = TableTransformer(SCHEMA)
    # age 1, colour 3 + missing, income 1, score 1 + [present, missing], grade 3, label 2
    assert transformer.width == 1 + 4 + 1 + 3 + 3 + 2
    assert [s.activation for s in transformer.spans] == [
        "sigmoid", "softmax", "sigmoid", "sigmoid", "softmax", "softmax", "softmax"]
    row = pd.DataFrame({"age": [54], "colour": [None], "income": [0.0], "score": [np.nan], "grade": [2],
                        "label": ["no"]})
    encoded = transformer.encode(row, dtype="float64")[0]
    np.testing.assert_allclose(encoded, [0.5, 0, 0, 0, 1, 0.0, 0.0, 0, 1, 0, 1, 0, 0, 1])


def test_round_trip_keeps_values_dtypes_and_column_order():
    table = make_table()
    transformer = TableTransformer(SCHEMA)
    shuffled = table[list(reversed(table.columns))]  # columns in another order are accepted
    decoded = transformer.decode(transformer.encode(shuffled, dtype="float64"))
    assert list(decoded.columns) == list(SCHEMA.names)
    pd.testing.assert_frame_equal(decoded, table, check_exact=False, rtol=1e-9)


def test_decode_clips_and_rounds_generator_outputs():
    transformer = TableTransformer(SCHEMA)
    encoded = np.zeros((1, transformer.width))
    encoded[0, 0] = 1.7  # above the [0, 1] range: clipped to the upper bound
    encoded[0, 1:5] = [0.1, 0.7, 0.1, 0.1]
    encoded[0, 6] = 0.25
    encoded[0, 7:9] = [0.2, 0.8]  # score missing
    encoded[0, 9:12] = [0.3, 0.3, 0.4]
    encoded[0, 12:14] = [0.6, 0.4]
    decoded = transformer.decode(encoded)
    assert decoded.loc[0, "age"] == 90
    assert decoded.loc[0, "colour"] == "green"
    assert np.isnan(decoded.loc[0, "score"])
    assert decoded.loc[0, "grade"] == 3
    assert decoded.loc[0, "label"] == "yes"
    assert decoded["age"].dtype == np.int64 and decoded["grade"].dtype == np.int64


def _broken(column, value, row=3):
    table = make_table(rows=10)
    table[column] = table[column].astype(object)
    table.loc[row, column] = value
    return table


@pytest.mark.parametrize(
    "table, message",
    [
        (make_table(10).drop(columns=["income"]), "missing columns ['income']"),
        (make_table(10).assign(extra=1), "extra columns ['extra'] not in the schema"),
        (_broken("age", 150), "column 'age': value 150 at row 3 is outside the schema bounds [18, 90]"),
        (_broken("age", 30.5), "column 'age': value 30.5 at row 3 is not a whole number"),
        (_broken("age", "old"), "column 'age': value 'old' at row 3 is not a number"),
        (_broken("age", np.nan), "column 'age': missing value (NaN) at row 3, but the schema does not allow"),
        (_broken("income", np.inf), "column 'income': value inf at row 3 is outside the schema bounds"),
        (_broken("colour", "purple"),
         "column 'colour': unknown category 'purple' at row 3; the schema allows ['red', 'green', 'blue']"),
        (_broken("grade", 7), "column 'grade': unknown category 7 at row 3"),
        (_broken("label", None), "column 'label': missing value (NaN) at row 3"),
    ],
)
def test_validation_gives_one_error_naming_column_and_value(table, message):
    with pytest.raises(SchemaError) as error:
        validate_frame(table, SCHEMA)
    assert message in str(error.value)


def test_read_csv_keeps_strings_and_only_empty_cells_are_missing(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("age,colour,income,score,grade,label\n30,,10,,1,yes\n40,NA,10,0.5,2,no\n")
    with pytest.raises(SchemaError, match=r"unknown category 'NA' at data row 2 \(line 3 of t.csv\)"):
        read_csv(path, SCHEMA)  # "NA" is a value, not a missing one
    path.write_text("age,colour,income,score,grade,label\n30,,10,,1,yes\n40,red,10,0.5,2,no\n")
    table = read_csv(path, SCHEMA)
    assert pd.isna(table.loc[0, "colour"]) and table.loc[1, "colour"] == "red"


HEADER = "age,colour,income,score,grade,label\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "t.csv is empty: expected a CSV file with a header row"),
        (HEADER, "t.csv has a header but no data rows: the table is empty"),
        # Values as written (no numpy reprs), rows counted as a user counts them, with the file's line.
        (HEADER + "30,red,10,0.5,1,yes\n120,red,10,0.5,1,yes\n",
         "column 'age': value 120 at data row 2 (line 3 of t.csv) is outside the schema bounds [18, 90]"),
        # A blank line and a quoted line break move the line number, not the data row.
        (HEADER + "\n30,red,10,0.5,1,yes\n30,\"re\nd\",10,0.5,1,yes\n",
         "column 'colour': unknown category 're\\nd' at data row 2 (line 4 of t.csv)"),
        (HEADER + "30,red,10,0.5,7,yes\n", "column 'grade': unknown category 7 at data row 1 (line 2 of t.csv)"),
        (HEADER.replace("income", "incme") + "30,red,10,0.5,1,yes\n",
         "t.csv: missing columns ['income']: in the schema but not in the table, whose unmatched columns are "
         "['incme']; did you mean 'incme' for 'income'?"),
        (HEADER + "30,red,10,0.5,1,yes\n30,red,10,0.5,1,yes,7\n",
         "t.csv is not a well-formed CSV file: Error tokenizing data. C error: Expected 6 fields in line 3, saw 7"),
    ],
)
def test_read_csv_messages_name_the_file_the_row_and_the_line(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(SchemaError) as error:
        read_csv(path, SCHEMA)
    assert message in str(error.value)
    assert "np." not in str(error.value)
