import pandas as pd

from privgan.data.adult import ADULT_SCHEMA, load_adult
from privgan.tabular import TableTransformer


def test_adult_loads_raw_and_fits_the_hand_written_schema(shared_datasets):
    train, test = load_adult(shared_datasets / "adult")
    assert (len(train), len(test)) == (32_561, 16_281)
    assert list(train.columns) == list(ADULT_SCHEMA.names) == list(test.columns)
    assert set(test["income"]) == {">50K", "<=50K"}  # trailing "." removed, "|1x3 Cross validator" skipped
    assert train["workclass"].isna().sum() == 1836  # "?" is missing
    transformer = TableTransformer(ADULT_SCHEMA)
    for split in (train, test):  # every value lies within the public bounds and categories
        pd.testing.assert_frame_equal(transformer.decode(transformer.encode(split, dtype="float64")), split)
