"""Datasets with sensitive attributes: UCI Adult (sex, race) and a generated toy set with a tunable bias."""

import dataclasses

import numpy as np
import pandas as pd

from privgan.data.adult import ADULT_SCHEMA, LABEL, POSITIVE_LABEL
from privgan.data.adult import load_adult as load_adult_frames
from privgan.tabular.schema import CategoricalColumn, NumericColumn

ADULT_SENSITIVE = ("sex", "race")
# The numeric columns of adult.names; category lists come from the public schema, never from the data.
ADULT_NUMERIC = tuple(column.name for column in ADULT_SCHEMA.columns if isinstance(column, NumericColumn))
ADULT_CATEGORICAL = tuple(
    column.name for column in ADULT_SCHEMA.columns if isinstance(column, CategoricalColumn) and column.name != LABEL
)


@dataclasses.dataclass(frozen=True)
class FairnessDataset:
    """Features, labels and sensitive attributes of one split.

    Attributes:
        features: float32 array `(n, d)`.
        labels: int array `(n,)` (Adult: 1 for income >50K).
        sensitive: DataFrame with one column per sensitive attribute, `n` rows, string or integer groups.
        feature_names: names of the `d` feature columns.
    """

    features: np.ndarray
    labels: np.ndarray
    sensitive: pd.DataFrame
    feature_names: tuple

    def __len__(self):
        return len(self.labels)


def load_adult(data_dir=None, *, drop_sensitive=True):
    """UCI Adult with income >50K as label and sex and race as sensitive attributes.

    Categorical columns are one-hot encoded with the category lists of adult.names (a missing value `?`
    becomes an all-zero block); numeric columns are standardised with the training split's mean and
    standard deviation.

    Args:
        data_dir: folder holding `adult.data` and `adult.test` (e.g. `../shared/datasets/adult`); None
            downloads them from the UCI repository into the Keras cache (`~/.keras/datasets/adult`).
        drop_sensitive: leave sex and race out of the features (they stay in `sensitive`).

    Returns:
        `(train, test)` FairnessDatasets with 32,561 and 16,281 rows.

    Raises:
        FileNotFoundError: if `data_dir` is given but lacks one of the files.
    """
    train, test = load_adult_frames(data_dir)
    categorical = [name for name in ADULT_CATEGORICAL if not (drop_sensitive and name in ADULT_SENSITIVE)]
    mean = train[list(ADULT_NUMERIC)].mean()
    std = train[list(ADULT_NUMERIC)].std()

    def encode(frame):
        numeric = (frame[list(ADULT_NUMERIC)] - mean) / std
        one_hot = pd.get_dummies(
            frame[categorical].apply(
                lambda column: pd.Categorical(column, categories=ADULT_SCHEMA[column.name].categories)
            ),
            prefix_sep="=",
        )
        features = pd.concat([numeric, one_hot], axis=1)
        return FairnessDataset(
            features=features.to_numpy(dtype=np.float32),
            labels=frame[LABEL].eq(POSITIVE_LABEL).to_numpy(dtype=np.int64),
            sensitive=frame[list(ADULT_SENSITIVE)].reset_index(drop=True),
            feature_names=tuple(features.columns),
        )

    return encode(train), encode(test)


def make_biased_toy(n_samples=2000, *, bias=1.0, merit_noise=0.8, proxy_noise=0.3, random_state=0):
    """Generated binary task whose labels favour one group by a known amount.

    A group `s` in {0, 1} (half each) and a merit `m ~ N(0, 1)` independent of it; the label is
    `y = 1[m + bias * (2s - 1) / 2 > 0]`, so `bias` shifts group 1's threshold down and group 0's up.
    The features are a noisy merit `m + merit_noise * noise`, a proxy of the group `s + proxy_noise * noise`
    and a pure-noise column. Since the merit is measured with noise, a classifier that uses the proxy leans
    on the group's base rate: it shows a demographic-parity gap and, among people with the same label,
    different true- and false-positive rates (an equalized-odds gap). One that ignores the proxy can still
    use the merit.

    Args:
        n_samples: number of rows, >= 2.
        bias: label shift between the groups (0 = no bias), >= 0.
        merit_noise: noise of the measured merit, >= 0.
        proxy_noise: noise of the group proxy (small = the proxy reveals the group), > 0.
        random_state: seed of the generator.

    Returns:
        A FairnessDataset whose `sensitive` has one column "group".

    Raises:
        ValueError: for a parameter out of range.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    if bias < 0:
        raise ValueError(f"bias must be >= 0, got {bias}")
    if merit_noise < 0:
        raise ValueError(f"merit_noise must be >= 0, got {merit_noise}")
    if proxy_noise <= 0:
        raise ValueError(f"proxy_noise must be > 0, got {proxy_noise}")
    rng = np.random.default_rng(random_state)
    group = rng.integers(0, 2, size=n_samples)
    merit = rng.normal(size=n_samples)
    labels = (merit + bias * (group - 0.5) > 0).astype(np.int64)
    features = np.stack(
        [
            merit + merit_noise * rng.normal(size=n_samples),
            group + proxy_noise * rng.normal(size=n_samples),
            rng.normal(size=n_samples),
        ],
        axis=1,
    ).astype(np.float32)
    return FairnessDataset(
        features=features,
        labels=labels,
        sensitive=pd.DataFrame({"group": group}),
        feature_names=("merit", "group_proxy", "noise"),
    )


def load_csv_table(path, *, label, positive_label, sensitive, test_fraction=0.3, random_state=0, drop=()):
    """Any CSV table as train and test `FairnessDataset`s, the sensitive column kept out of the features.

    Non-numeric columns are one-hot encoded (categories from the whole file: they are public column
    values, not statistics); numeric columns are standardised with the training split's mean and standard
    deviation. The split is stratified by label and sensitive group.

    Args:
        path: the CSV file (first line: column names).
        label: name of the label column.
        positive_label: the label value that counts as positive (compared as a string).
        sensitive: name of the sensitive column.
        test_fraction: share of the rows in the test split, in (0, 1).
        random_state: seed of the split.
        drop: further columns to leave out of the features (an index column, ...).

    Returns:
        `(train, test)` FairnessDatasets whose `sensitive` has the one column `sensitive` (as strings).

    Raises:
        ValueError: if a named column is missing, the label has no row equal to `positive_label`, or
            `test_fraction` is out of range.
    """
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(path)
    for name, column in (("label", label), ("sensitive", sensitive), *(("drop", column) for column in drop)):
        if column not in frame.columns:
            raise ValueError(f"{name} column {column!r} is not in {path}; columns: {list(frame.columns)}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = frame[label].astype(str).eq(str(positive_label)).to_numpy(dtype=np.int64)
    if not labels.any():
        raise ValueError(f"no row of {label!r} equals positive_label {positive_label!r}")
    groups = frame[sensitive].astype(str)
    features = frame.drop(columns=[label, sensitive, *drop])
    numeric = [column for column in features.columns if pd.api.types.is_numeric_dtype(features[column])]
    categorical = [column for column in features.columns if column not in numeric]
    encoded = pd.concat(
        [features[numeric].astype(np.float64), pd.get_dummies(features[categorical].astype(str), prefix_sep="=")],
        axis=1,
    )
    train_rows, test_rows = train_test_split(
        np.arange(len(frame)),
        test_size=test_fraction,
        stratify=groups.to_numpy() + "|" + labels.astype(str),
        random_state=random_state,
    )
    mean = encoded.iloc[train_rows][numeric].mean()
    std = encoded.iloc[train_rows][numeric].std().replace(0.0, 1.0)
    encoded[numeric] = (encoded[numeric] - mean) / std

    def subset(rows):
        return FairnessDataset(
            features=encoded.iloc[rows].to_numpy(dtype=np.float32),
            labels=labels[rows],
            sensitive=pd.DataFrame({sensitive: groups.iloc[rows].to_numpy()}),
            feature_names=tuple(encoded.columns),
        )

    return subset(train_rows), subset(test_rows)
