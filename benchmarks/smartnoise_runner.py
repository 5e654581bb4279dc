"""Runs smartnoise-synth's MST or AIM on one table for `benchmarks.tabular_peers`, in smartnoise's own Python.

smartnoise-synth 1.x needs mbi < 2, opacus 0.14 and pandas < 3, which privgan's environment does not
have, so this script imports nothing from privgan: it reads the training CSV and privgan's schema JSON,
turns every column into categories (numeric columns into `--bins` equal-width bins of the schema's
public range, on the log scale for log1p columns; missing values into a category of their own), fits
`snsynth.Synthesizer.create(method, epsilon, delta)` with smartnoise's defaults (AIM's number of rounds
from `--rounds` when given), samples `--rows` rows,
draws each numeric value uniformly within its bin, and writes the CSV. The last line printed is a JSON
object with the seconds spent.

smartnoise's label transformer reads each column's set of values from the training data (its default
behaviour; not covered by its guarantee). `--seed` seeds numpy's global generator, which smartnoise's
noise uses: reproducible runs, for benchmarking only.

smartnoise's AIM (mbi 1.x) compiles JAX programs in every round; as in privgan's marginal engines, XLA
compiles them unoptimised (`--xla_backend_optimization_level=0`, set before JAX starts unless XLA_FLAGS
names a level already): the same programs, compiled faster. MST runs as it comes.

    python benchmarks/smartnoise_runner.py --method=mst --epsilon=1 --delta=1e-5 --seed=0 --bins=16 \
        --train=train.csv --schema=schema.json --rows=1000 --output=synthetic.csv
"""

import argparse
import json
import os
import time

import numpy as np
import pandas as pd

MISSING = "<missing>"


def _scale(values, column):
    lower, upper = column["lower"], column["upper"]
    if column.get("transform", "linear") == "log1p":
        return np.log1p(values - lower) / np.log1p(upper - lower)
    return (values - lower) / (upper - lower)


def _unscale(scaled, column):
    lower, upper = column["lower"], column["upper"]
    if column.get("transform", "linear") == "log1p":
        values = np.expm1(scaled * np.log1p(upper - lower)) + lower
    else:
        values = scaled * (upper - lower) + lower
    values = np.clip(values, lower, upper)
    return np.round(values) if column.get("integer") else values


def to_categories(train, schema, bins):
    """Every column as strings: categories as they are, numbers as their bin's index, missing as MISSING."""
    table = {}
    for column in schema["columns"]:
        series = train[column["name"]]
        if column["type"] == "categorical":
            table[column["name"]] = series.astype(object).where(series.notna(), MISSING).astype(str)
            continue
        scaled = _scale(pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan), column)
        codes = np.minimum((np.nan_to_num(scaled) * bins).astype(np.int64), bins - 1).astype(str)
        table[column["name"]] = pd.Series(np.where(np.isnan(scaled), MISSING, codes))
    return pd.DataFrame(table)


def from_categories(synthetic, schema, bins, rng):
    """The inverse of `to_categories`: each number drawn uniformly within its bin."""
    table = {}
    for column in schema["columns"]:
        values = synthetic[column["name"]].astype(str).to_numpy()
        missing = values == MISSING
        if column["type"] == "categorical":
            categories = column["categories"]
            if categories and isinstance(categories[0], int):
                decoded = [None if m else int(float(v)) for v, m in zip(values, missing)]
            else:
                decoded = [None if m else v for v, m in zip(values, missing)]
            table[column["name"]] = pd.Series(decoded, dtype=object)
            continue
        codes = np.where(missing, 0, values).astype(np.int64)
        numbers = _unscale((codes + rng.random(len(codes))) / bins, column)
        table[column["name"]] = pd.Series(np.where(missing, np.nan, numbers))
    return pd.DataFrame(table)


def read_train(path, schema):
    """The training CSV with the schema's string categories kept as strings and empty cells missing."""
    string_columns = {c["name"]: str for c in schema["columns"] if c["type"] == "categorical"
                      and not (c["categories"] and isinstance(c["categories"][0], int))}
    return pd.read_csv(path, dtype=string_columns, keep_default_na=False, na_values=[""])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("method", "train", "schema", "output"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--epsilon", type=float, required=True)
    parser.add_argument("--delta", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bins", type=int, default=16)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=None, help="AIM's rounds; default: smartnoise's (16 x columns).")
    args = parser.parse_args()
    if args.rounds is not None and (args.method != "aim" or args.rounds < 1):
        parser.error(f"--rounds applies to --method=aim only and must be >= 1, got {args.rounds}")

    flags = os.environ.get("XLA_FLAGS", "")
    if args.method == "aim" and "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()
    from snsynth import Synthesizer

    schema = json.loads(open(args.schema, encoding="utf-8").read())
    categorical = to_categories(read_train(args.train, schema), schema, args.bins)
    np.random.seed(args.seed)
    started = time.monotonic()
    options = {} if args.rounds is None else {"rounds": args.rounds}
    synthesizer = Synthesizer.create(args.method, epsilon=args.epsilon, delta=args.delta, **options)
    synthesizer.fit(categorical, categorical_columns=list(categorical.columns), preprocessor_eps=0.0)
    sampled = synthesizer.sample(args.rows)
    seconds = time.monotonic() - started
    if not isinstance(sampled, pd.DataFrame):
        sampled = pd.DataFrame(sampled, columns=categorical.columns)
    synthetic = from_categories(sampled, schema, args.bins, np.random.default_rng(args.seed))
    synthetic.to_csv(args.output, index=False)
    print(json.dumps({"smartnoise_seconds": seconds, "epsilon_spent": args.epsilon, "accountant": "smartnoise (zCDP)",
                      **({"smartnoise_rounds": args.rounds} if args.method == "aim" else {})}))


if __name__ == "__main__":
    main()
