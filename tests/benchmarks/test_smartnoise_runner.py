"""smartnoise's runner for the tabular peers benchmark: its binning and its arguments (smartnoise not needed)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmarks import smartnoise_runner

SCHEMA = {
    "columns": [
        {"name": "age", "type": "numeric", "lower": 17, "upper": 90, "integer": True},
        {"name": "gain", "type": "numeric", "lower": 0, "upper": 99999, "transform": "log1p"},
        {"name": "sex", "type": "categorical", "categories": ["Female", "Male"]},
    ]
}


def test_binning_round_trip_keeps_each_value_in_its_bin_and_missing_values_missing():
    train = pd.DataFrame({"age": [17, 40, 90, np.nan], "gain": [0.0, 5000.0, 99999.0, 12.0],
                          "sex": ["Male", None, "Female", "Male"]})
    categories = smartnoise_runner.to_categories(train, SCHEMA, bins=16)
    assert categories["age"].tolist()[-1] == smartnoise_runner.MISSING
    assert categories["sex"].tolist()[1] == smartnoise_runner.MISSING

    decoded = smartnoise_runner.from_categories(categories, SCHEMA, 16, np.random.default_rng(0))
    assert np.isnan(decoded["age"].iloc[-1]) and decoded["sex"].iloc[1] is None
    assert decoded["sex"].tolist()[::2] == ["Male", "Female"]
    for column in SCHEMA["columns"][:2]:
        values = decoded[column["name"]].dropna()
        assert values.between(column["lower"], column["upper"]).all()
        # Decoded values fall back into the bin they came from.
        again = smartnoise_runner.to_categories(decoded, SCHEMA, bins=16)[column["name"]]
        assert again.tolist() == categories[column["name"]].tolist()
    assert (decoded["age"].dropna() % 1 == 0).all()


@pytest.mark.parametrize("arguments", [["--method=mst", "--rounds=8"], ["--method=aim", "--rounds=0"]])
def test_rounds_is_refused_outside_aim_or_below_one(arguments, tmp_path):
    done = subprocess.run(
        [sys.executable, smartnoise_runner.__file__, "--epsilon=1", "--delta=1e-5", "--rows=10",
         f"--train={tmp_path}/t.csv", f"--schema={tmp_path}/s.json", f"--output={tmp_path}/o.csv", *arguments],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "--rounds applies to --method=aim only and must be >= 1" in done.stderr
    assert not (tmp_path / "o.csv").exists()
