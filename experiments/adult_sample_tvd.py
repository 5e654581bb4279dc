r"""Marginal fidelity of the marginal engines where rows spread thinly: a 1,000-row sample of Adult at epsilon = 1.

  python -m experiments.adult_sample_tvd --data_dir=../shared/datasets/adult --seeds=4 [--projection]

The companion of `experiments/wide_bounds.py`: keeping noise out of the empty part of generous bounds
(`privgan.tabular.support.sparse_counts`) must not drop the rows of columns that spread thinly over many
bins (Adult's age, hours-per-week). Fits AIM and MST on `benchmarks/tabular_peers.py`'s adult_1k table
(1,000 rows of adult.data, seed 0) and prints the mean total variation distance of the marginals against
adult.test per seed (the benchmark's mean TVD) and each numeric column's. --projection replaces the step
by the plain non-negative projection (every bin keeps its share of the noise), for comparison. The noise
is seeded (noise seed 2000 + seed): for measurement only.
"""

import warnings

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS


def _define_flags():
    flags.DEFINE_string("data_dir", None, "Folder with adult.data and adult.test; None downloads them.")
    flags.DEFINE_integer("seeds", 4, "Fits per engine (seeds 0 ..).")
    flags.DEFINE_float("epsilon", 1.0, "Privacy budget.")
    flags.DEFINE_bool("projection", False, "Use the plain non-negative projection instead of the empty-bin step.")


def main(argv):
    del argv
    warnings.filterwarnings("ignore", message=".*noise_seed.*")
    from privgan.data import adult
    from privgan.evaluation.tabular import marginal_tvd
    from privgan.tabular import CategoricalColumn, MarginalDPSynthesizer, marginal

    if FLAGS.projection:  # measurement only: the module's function, replaced in this process
        marginal.sparse_counts = lambda noisy, total, sigma, *, value_codes, projected: projected
    train, test = adult.load_adult(FLAGS.data_dir)
    sample = train.sample(n=1000, random_state=0).reset_index(drop=True)
    schema = adult.ADULT_SCHEMA
    numeric = [c.name for c in schema.columns if not isinstance(c, CategoricalColumn)]
    for method in ("aim", "mst"):
        means, columns = [], []
        for seed in range(FLAGS.seeds):
            synthesizer = MarginalDPSynthesizer(schema, method=method, seed=seed, noise_seed=2000 + seed)
            synthetic = synthesizer.fit(sample, epsilon=FLAGS.epsilon, delta=1e-5).sample(len(sample))
            tvd = marginal_tvd(test, synthetic, schema=schema)
            means.append(float(np.mean(list(tvd.values()))))
            columns.append(tvd)
        step = "projection" if FLAGS.projection else "empty-bin step"
        print(f"{method} ({step}) epsilon={FLAGS.epsilon:g}: mean TVD per seed {np.round(means, 3).tolist()}, "
              f"mean {np.mean(means):.3f}", flush=True)
        for name in numeric:
            print(f"    {name}: {[round(c[name], 3) for c in columns]}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
