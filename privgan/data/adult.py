"""UCI Adult as raw DataFrames, and its public schema written by hand from adult.names.

`load_adult` returns the columns of adult.names unchanged (strings stay strings, `?` becomes missing,
the test labels lose their trailing "."), so that a synthesizer sees the table as published.

`ADULT_SCHEMA` takes nothing from the data. Category sets are copied from adult.names. Numeric bounds
come from the extraction conditions in adult.names and from the Current Population Survey (CPS) the data
were drawn from; each bound's source is given beside it. adult.names says unknown values were converted
to "?"; the UCI dataset page lists workclass, occupation and native-country as the columns with missing
values, so those three are nullable.
"""

import pathlib

import keras
import pandas as pd

from privgan.tabular.schema import CategoricalColumn, NumericColumn, TableSchema

ADULT_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
LABEL = "income"
POSITIVE_LABEL = ">50K"

ADULT_SCHEMA = TableSchema(
    (
        # adult.names: records were extracted with AAGE > 16; the CPS top-codes age at 90.
        NumericColumn("age", 17, 90, integer=True),
        CategoricalColumn(
            "workclass",
            ("Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov", "State-gov",
             "Without-pay", "Never-worked"),
            nullable=True,
        ),
        # adult.names: AFNLWGT > 1. A CPS weight is the number of people a record stands for; 10 million is
        # a hand-set ceiling far above any weight of a survey of ~50,000 households (log scale, so the loose
        # ceiling costs little resolution).
        NumericColumn("fnlwgt", 1, 10_000_000, integer=True, transform="log1p"),
        CategoricalColumn(
            "education",
            ("Bachelors", "Some-college", "11th", "HS-grad", "Prof-school", "Assoc-acdm", "Assoc-voc", "9th",
             "7th-8th", "12th", "Masters", "1st-4th", "10th", "Doctorate", "5th-6th", "Preschool"),
        ),
        # The rank of the 16 education levels of adult.names (1 = Preschool ... 16 = Doctorate).
        NumericColumn("education-num", 1, 16, integer=True),
        CategoricalColumn(
            "marital-status",
            ("Married-civ-spouse", "Divorced", "Never-married", "Separated", "Widowed", "Married-spouse-absent",
             "Married-AF-spouse"),
        ),
        CategoricalColumn(
            "occupation",
            ("Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial", "Prof-specialty",
             "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical", "Farming-fishing", "Transport-moving",
             "Priv-house-serv", "Protective-serv", "Armed-Forces"),
            nullable=True,
        ),
        CategoricalColumn(
            "relationship", ("Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried")
        ),
        CategoricalColumn("race", ("White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black")),
        CategoricalColumn("sex", ("Female", "Male")),
        # CPS income amounts are 5-digit fields top-coded at 99999 (the top code of capital gains in the
        # 1994 CPS files); losses are bounded by the same field width. Mostly zero: log scale.
        NumericColumn("capital-gain", 0, 99_999, integer=True, transform="log1p"),
        NumericColumn("capital-loss", 0, 99_999, integer=True, transform="log1p"),
        # adult.names: HRSWK > 0; the CPS hours field is two digits (top code 99).
        NumericColumn("hours-per-week", 1, 99, integer=True),
        CategoricalColumn(
            "native-country",
            ("United-States", "Cambodia", "England", "Puerto-Rico", "Canada", "Germany",
             "Outlying-US(Guam-USVI-etc)", "India", "Japan", "Greece", "South", "China", "Cuba", "Iran",
             "Honduras", "Philippines", "Italy", "Poland", "Jamaica", "Vietnam", "Mexico", "Portugal",
             "Ireland", "France", "Dominican-Republic", "Laos", "Ecuador", "Taiwan", "Haiti", "Columbia",
             "Hungary", "Guatemala", "Nicaragua", "Scotland", "Thailand", "Yugoslavia", "El-Salvador",
             "Trinadad&Tobago", "Peru", "Hong", "Holand-Netherlands"),
            nullable=True,
        ),
        # adult.names: ">50K, <=50K."
        CategoricalColumn(LABEL, (">50K", "<=50K")),
    )
)  # fmt: skip


def load_adult(data_dir=None):
    """UCI Adult as raw DataFrames with the columns of adult.names (`ADULT_SCHEMA.names`).

    Missing values (`?`) are NaN; the first line of adult.test ("|1x3 Cross validator") is skipped and the
    trailing "." of its labels removed, so both splits use the labels ">50K" and "<=50K".

    Args:
        data_dir: folder holding `adult.data` and `adult.test` (e.g. `../shared/datasets/adult`); None
            downloads them from the UCI repository into the Keras cache (`~/.keras/datasets/adult`).

    Returns:
        `(train, test)` DataFrames with 32,561 and 16,281 rows; integer columns as int64, the others as
        strings.

    Raises:
        FileNotFoundError: if `data_dir` is given but lacks one of the files.
    """
    paths = {}
    for name in ("adult.data", "adult.test"):
        if data_dir is None:
            paths[name] = pathlib.Path(keras.utils.get_file(name, ADULT_URL + name, cache_subdir="datasets/adult"))
        else:
            paths[name] = pathlib.Path(data_dir) / name
            if not paths[name].is_file():
                raise FileNotFoundError(f"data_dir {data_dir} has no {name}; pass data_dir=None to download it")
    train = _read(paths["adult.data"], skiprows=0)
    test = _read(paths["adult.test"], skiprows=1)
    test[LABEL] = test[LABEL].str.rstrip(".")
    return train, test


def _read(path, *, skiprows):
    return pd.read_csv(
        path,
        header=None,
        names=list(ADULT_SCHEMA.names),
        skiprows=skiprows,
        skipinitialspace=True,
        na_values="?",
        keep_default_na=False,
        skip_blank_lines=True,
    )
