r"""Synthetic rows in ranges the real data leave empty: small tables with wide public bounds at epsilon = 1.

  python -m experiments.wide_bounds --family=clinical --rows=300 --seeds=8 --tolerance=0.01

Generates small tables (a few hundred rows) whose public bounds are 3-5 times wider than the data, fits
`MarginalDPSynthesizer` at --epsilon, samples 2,000 rows and prints, per seed, the share of each numeric
column's synthetic values outside the real values' [min, max] widened by --tolerance times the public range
(0: strictly outside), and the mean total variation distance of the numeric marginals (20 bins of the
schema's range). The noise is seeded (--seeds runs, noise seed 1000 + seed): for measurement only.
"""

import warnings

import numpy as np
import pandas as pd
from absl import app, flags

from privgan.evaluation.tabular import marginal_tvd
from privgan.tabular import CategoricalColumn, MarginalDPSynthesizer, NumericColumn, TableSchema

FLAGS = flags.FLAGS


def _define_flags():
    """Defined when the script runs, not at import: tests import the table families beside other scripts."""
    flags.DEFINE_enum("family", "clinical", ["clinical", "labs"], "Which generated table.")
    flags.DEFINE_enum("method", "aim", ["aim", "mst"], "Marginal engine.")
    flags.DEFINE_integer("rows", 300, "Rows of each generated table.")
    flags.DEFINE_integer("seeds", 8, "Number of tables (and noise draws).")
    flags.DEFINE_float("epsilon", 1.0, "Privacy budget.")
    flags.DEFINE_float("tolerance", 0.0, "Margin beyond the real [min, max], as a share of the public range.")


def clinical(rows, rng):
    """Age, BMI and a lab value of patients, bounds about four times the data's range, a rare site."""
    schema = TableSchema((
        NumericColumn("age", 0, 200, integer=True), NumericColumn("bmi", 0, 120),
        NumericColumn("crp", 0, 500, nullable=True), CategoricalColumn("sex", ("f", "m")),
        CategoricalColumn("site", ("A", "B", "C")), CategoricalColumn("outcome", ("yes", "no")),
    ))
    age = np.clip(np.round(rng.normal(55, 12, rows)), 28, 79).astype(int)
    crp = np.clip(rng.gamma(2.0, 20.0, rows), 0, 120)
    crp[rng.random(rows) < 0.1] = np.nan
    outcome = np.where(rng.random(rows) < 1 / (1 + np.exp(-(age - 55) / 8)), "yes", "no")
    return schema, pd.DataFrame({
        "age": age, "bmi": np.round(np.clip(rng.normal(27, 4, rows), 16, 45), 1), "crp": crp,
        "sex": rng.choice(["f", "m"], rows), "site": rng.choice(["A", "B", "C"], rows, p=[0.6, 0.38, 0.02]),
        "outcome": outcome,
    })


def labs(rows, rng):
    """Bounds 3-5 times the data's range, data off-centre, uniform, log-normal and exponential shapes."""
    schema = TableSchema((
        NumericColumn("heart_rate", 0, 300, integer=True), NumericColumn("glucose", 0, 40),
        NumericColumn("stay_days", 0, 365, integer=True, nullable=True),
        CategoricalColumn("ward", ("a", "b", "c", "d")), CategoricalColumn("died", (0, 1)),
    ))
    heart_rate = rng.uniform(50, 130, rows).round().astype(int)
    stay = np.round(rng.exponential(12, rows).clip(1, 75)).astype(float)
    stay[rng.random(rows) < 0.15] = np.nan
    return schema, pd.DataFrame({
        "heart_rate": heart_rate, "glucose": np.round(rng.lognormal(1.7, 0.25, rows).clip(3, 14), 1),
        "stay_days": stay, "ward": rng.choice(list("abcd"), rows, p=[0.4, 0.3, 0.25, 0.05]),
        "died": (rng.random(rows) < 0.1 + 0.3 * (heart_rate > 110)).astype(int),
    })


FAMILIES = {"clinical": clinical, "labs": labs}


def outside_share(real, synthetic, column, *, tolerance):
    """Share of the synthetic column's present values beyond the real [min, max] +- tolerance * public range."""
    margin = tolerance * (column.upper - column.lower)
    values = synthetic[column.name].astype(float).to_numpy()
    values = values[~np.isnan(values)]
    low, high = real[column.name].min() - margin, real[column.name].max() + margin
    return float(np.mean((values < low) | (values > high))) if values.size else 0.0


def main(argv):
    del argv
    warnings.filterwarnings("ignore", message=".*noise_seed.*")
    worst, tvds = [], []
    for seed in range(FLAGS.seeds):
        schema, real = FAMILIES[FLAGS.family](FLAGS.rows, np.random.default_rng(seed))
        synthesizer = MarginalDPSynthesizer(schema, method=FLAGS.method, seed=seed, noise_seed=1000 + seed)
        synthetic = synthesizer.fit(real, epsilon=FLAGS.epsilon, delta=1e-6).sample(2000)
        numeric = [column for column in schema.columns if isinstance(column, NumericColumn)]
        shares = {c.name: outside_share(real, synthetic, c, tolerance=FLAGS.tolerance) for c in numeric}
        tvd = marginal_tvd(real, synthetic, schema=schema)
        worst.append(max(shares.values()))
        tvds.append(float(np.mean([tvd[c.name] for c in numeric])))
        print(f"seed {seed}: " + ", ".join(f"{n} {v:.3f}" for n, v in shares.items())
              + f"; numeric TVD {tvds[-1]:.3f}", flush=True)
    print(f"{FLAGS.method} {FLAGS.family} rows={FLAGS.rows} epsilon={FLAGS.epsilon:g} tolerance={FLAGS.tolerance:g}: "
          f"worst column per seed {np.round(worst, 3).tolist()}, max {max(worst):.3f}, mean {np.mean(worst):.3f}; "
          f"numeric TVD mean {np.mean(tvds):.3f}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
