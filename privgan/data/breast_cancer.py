"""scikit-learn's bundled Wisconsin diagnostic breast cancer table (569 rows), and its public schema.

`BREAST_CANCER_SCHEMA` is written from the feature definitions of the dataset's description (Street,
Wolberg & Mangasarian 1993), not from the values: ten measurements of a cell nucleus in a digitised
image, each as a mean over the nuclei of the image ("mean ..."), its standard error ("... error") and
the mean of the three largest values ("worst ..."). The bounds are deliberately generous, as a data team
writing them from the definitions would set them:
  - radius: the mean distance from the centre to the boundary, in pixels of an image a few hundred pixels
    wide: [0, 60];
  - texture: the standard deviation of grey-scale values in [0, 255], so at most 127.5: [0, 128];
  - perimeter: at most that of a circle of the largest radius, 2 pi 60 < 400: [0, 400];
  - area: at most pi 60^2 < 12,000 square pixels: [0, 12,000] on a log scale (areas grow with the square
    of the radius, so most mass sits near the lower end);
  - smoothness (local variation of radius lengths, relative), compactness (perimeter^2 / area, relative
    to a circle's, minus one), concavity (severity of concave portions), concave points (share of
    concave portions of the contour), symmetry and fractal dimension ("coastline approximation" - 1) are
    ratios: [0, 2] for compactness and concavity, which can exceed 1 for very irregular shapes, and
    [0, 1] for the others.
Standard errors get the same bounds as the means (an error cannot exceed the measurement's range).
The label `diagnosis` is "malignant" or "benign".
"""

import numpy as np
import pandas as pd

from privgan.tabular.schema import CategoricalColumn, NumericColumn, TableSchema

LABEL = "diagnosis"
POSITIVE_LABEL = "malignant"

_BOUNDS = {
    "radius": (0.0, 60.0, "linear"),
    "texture": (0.0, 128.0, "linear"),
    "perimeter": (0.0, 400.0, "linear"),
    "area": (0.0, 12_000.0, "log1p"),
    "smoothness": (0.0, 1.0, "linear"),
    "compactness": (0.0, 2.0, "linear"),
    "concavity": (0.0, 2.0, "linear"),
    "concave points": (0.0, 1.0, "linear"),
    "symmetry": (0.0, 1.0, "linear"),
    "fractal dimension": (0.0, 1.0, "linear"),
}


def _feature_names():
    # scikit-learn's names: "mean radius", ..., "radius error", ..., "worst radius", ...
    return [f"mean {m}" for m in _BOUNDS] + [f"{m} error" for m in _BOUNDS] + [f"worst {m}" for m in _BOUNDS]


def _measurement(name):
    return name.removeprefix("mean ").removeprefix("worst ").removesuffix(" error")


BREAST_CANCER_SCHEMA = TableSchema(
    tuple(
        NumericColumn(name, _BOUNDS[_measurement(name)][0], _BOUNDS[_measurement(name)][1],
                      transform=_BOUNDS[_measurement(name)][2])
        for name in _feature_names()
    )
    + (CategoricalColumn(LABEL, ("malignant", "benign")),)
)


def load_breast_cancer_table(*, test_fraction=0.3, seed=0):
    """The 569 rows as DataFrames of `BREAST_CANCER_SCHEMA`, split into train and test (stratified).

    Args:
        test_fraction: share of rows held out for testing, in (0, 1).
        seed: seed of the split.

    Returns:
        `(train, test)` DataFrames (398 and 171 rows with the defaults).

    Raises:
        ValueError: if `test_fraction` is not in (0, 1).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    table = pd.DataFrame(bunch.data, columns=[str(name) for name in bunch.feature_names])
    # scikit-learn codes malignant as 0 and benign as 1 (bunch.target_names).
    table[LABEL] = pd.Series(np.asarray(bunch.target_names, dtype=object)[bunch.target])
    table = table[list(BREAST_CANCER_SCHEMA.names)]
    train, test = train_test_split(table, test_size=test_fraction, random_state=seed, stratify=table[LABEL])
    return train.reset_index(drop=True), test.reset_index(drop=True)
