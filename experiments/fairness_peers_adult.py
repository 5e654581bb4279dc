"""Our fairness estimators against fairlearn's on one split, several seeds: Adult by default, any table.

Classifiers: `AdversarialDebiasing` with a stated `tolerance` (swept) against fairlearn's
`ExponentiatedGradient` (EqualizedOdds and DemographicParity bounds swept), `ThresholdOptimizer` (which
reads the sensitive attribute at prediction time) and `AdversarialFairnessClassifier`, plus the
unconstrained network and logistic regression: test accuracy, equalized-odds and demographic-parity
differences, wall time; mean ± std over the seeds, and one plot with every method's trade-off curve.
Representations (`--representations`): `FairRepresentation` with a leakage `tolerance` against its
unconstrained networks, a plain autoencoder and the features without the sensitive column: leakage of the
sensitive attribute to fresh probes against the accuracy of a fresh logistic regression downstream.

    python -m experiments.fairness_peers_adult --data_dir=../shared/datasets/adult --output_dir=runs/peers
    python -m experiments.fairness_peers_adult --table=csv --csv_path=german.csv --label=risk \
        --positive_label=1 --sensitive=sex --library_defaults --output_dir=runs/german

Every method is fitted on the training split only (ours carve their validation split from it) and scored
on the test split. Wall times depend on the machine's load. Writes results.json, report.md,
trade_off.png (and representations.png) to --output_dir.
"""

import json
import pathlib
import sys
import time

from absl import app, flags

flags.DEFINE_string("output_dir", None, "Where results.json, report.md and the plots go.")
flags.DEFINE_enum("table", "adult", ["adult", "csv", "toy"], "adult: UCI Adult's own split; csv: --csv_path; "
                  "toy: fairness.make_biased_toy.")
flags.DEFINE_string("data_dir", None, "Adult: folder with adult.data/adult.test; unset downloads them from UCI.")
flags.DEFINE_string("csv_path", None, "csv: the table.")
flags.DEFINE_string("label", None, "csv: the label column.")
flags.DEFINE_string("positive_label", "1", "csv: the label value that counts as positive.")
flags.DEFINE_string("sensitive", "sex", "The sensitive attribute (Adult: sex or race; csv: a column).")
flags.DEFINE_list("drop_columns", [], "csv: further columns left out of the features.")
flags.DEFINE_float("test_fraction", 0.3, "csv/toy: share of the rows in the test split.")
flags.DEFINE_integer("toy_rows", 4000, "toy: number of rows.")
flags.DEFINE_integer("train_rows", 0, "Keep this many training rows, drawn at random (0: all).")
flags.DEFINE_float("feature_scale", 1.0, "Multiply feature j by feature_scale ** (j % 3 - 1): columns on scales "
                   "1/s, 1 and s, to check robustness to unscaled features.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every model (and of the randomized predictions).")
flags.DEFINE_list("methods", ["ours", "ours_attr", "ours_dp", "expgrad", "threshold", "fairlearn_adversarial"],
                  "Classifier methods to run (the unconstrained references always run); ours_attr: ours "
                  "(equalized_odds) with the sensitive attribute at prediction (group thresholds), same fits.")
flags.DEFINE_float("gap_confidence", None, "AdversarialDebiasing's gap_confidence (unset: its default; 0.5: the "
                   "point estimate).")
flags.DEFINE_integer("cross_fit", None, "AdversarialDebiasing's cross_fit (unset: its default, 3; 0: None, one "
                     "validation split).")
flags.DEFINE_list("attr_tolerances", [], "ours_attr: its swept tolerances (unset: --tolerances).")
flags.DEFINE_float("attr_training_tolerance", None, "ours_attr: train with this tolerance and sweep the group "
                   "thresholds' postprocess_tolerance over --attr_tolerances instead (separate fits).")
flags.DEFINE_list("tolerances", ["0.01", "0.02", "0.03", "0.05", "0.1"], "AdversarialDebiasing "
                  "(equalized_odds) tolerances.")
flags.DEFINE_list("dp_tolerances", ["0.02", "0.05", "0.1"], "AdversarialDebiasing (demographic_parity) "
                  "tolerances.")
flags.DEFINE_list("eo_bounds", ["0.005", "0.02", "0.05"], "ExponentiatedGradient EqualizedOdds bounds.")
flags.DEFINE_list("dp_bounds", ["0.01", "0.05", "0.1"], "ExponentiatedGradient DemographicParity bounds.")
flags.DEFINE_list("threshold_dp_tols", ["0.02", "0.05", "0.1"], "ThresholdOptimizer demographic_parity tol "
                  "(equalized_odds cannot be relaxed: one point).")
flags.DEFINE_list("fairlearn_alphas", ["0.1", "1", "10"], "AdversarialFairnessClassifier alphas.")
flags.DEFINE_enum("fairlearn_backend", "tensorflow", ["tensorflow", "torch"], "AdversarialFairnessClassifier "
                  "backend (torch is an optional extra; skipped when absent).")
flags.DEFINE_bool("library_defaults", False, "Train ours with the estimators' default epochs and batch size (as a "
                  "new user would) instead of --epochs/--batch_size and --representation_epochs.")
flags.DEFINE_integer("epochs", 20, "Epochs of our classifiers and of fairlearn's adversarial one.")
flags.DEFINE_integer("batch_size", 256, "Batch size of the same.")
flags.DEFINE_float("plot_min_accuracy", None, "Zoom trade_off.png on the points at or above this test accuracy "
                   "(a collapsed fit far below squashes every other curve); unset shows every point.")
flags.DEFINE_bool("representations", True, "Also compare the representations.")
flags.DEFINE_list("representation_tolerances", ["0.01", "0.03"], "FairRepresentation leakage tolerances "
                  "(above chance).")
flags.DEFINE_integer("representation_epochs", 15, "Epochs of the representation models (not with "
                     "--library_defaults).")
flags.mark_flag_as_required("output_dir")

FLAGS = flags.FLAGS


def _floats(values):
    return tuple(float(value) for value in values)


def _load():
    import dataclasses

    import numpy as np

    from fairness import data

    if FLAGS.table == "adult":
        train, test = data.load_adult(FLAGS.data_dir)
        name = "UCI Adult (its own train/test split)"
    elif FLAGS.table == "csv":
        if not FLAGS.csv_path or not FLAGS.label:
            raise app.UsageError("--table=csv needs --csv_path and --label")
        train, test = data.load_csv_table(
            FLAGS.csv_path, label=FLAGS.label, positive_label=FLAGS.positive_label, sensitive=FLAGS.sensitive,
            test_fraction=FLAGS.test_fraction, drop=tuple(FLAGS.drop_columns),
        )
        name = f"{pathlib.Path(FLAGS.csv_path).name} ({1 - FLAGS.test_fraction:.0%}/{FLAGS.test_fraction:.0%} split)"
    else:
        toy = data.make_biased_toy(FLAGS.toy_rows, random_state=0)
        toy = dataclasses.replace(toy, sensitive=toy.sensitive.rename(columns={"group": FLAGS.sensitive}))
        cut = int(round(len(toy) * (1 - FLAGS.test_fraction)))
        train, test = (
            dataclasses.replace(toy, features=toy.features[rows], labels=toy.labels[rows],
                                sensitive=toy.sensitive.iloc[rows].reset_index(drop=True))
            for rows in (slice(0, cut), slice(cut, None))
        )
        name = f"generated biased table ({FLAGS.toy_rows} rows)"
    if FLAGS.train_rows:
        keep = np.sort(np.random.default_rng(0).choice(len(train), size=FLAGS.train_rows, replace=False))
        train = dataclasses.replace(train, features=train.features[keep], labels=train.labels[keep],
                                    sensitive=train.sensitive.iloc[keep].reset_index(drop=True))
        name += f", {FLAGS.train_rows} training rows drawn at random"
    if FLAGS.feature_scale != 1.0:
        scales = FLAGS.feature_scale ** (np.arange(train.features.shape[1]) % 3 - 1.0)
        train, test = (dataclasses.replace(split, features=(split.features * scales).astype(np.float32))
                       for split in (train, test))
        name += f", features scaled by {FLAGS.feature_scale:g}^(-1, 0, 1)"
    return train, test, name


def main(argv):
    del argv
    from experiments.common import fairness_comparison as comparison
    from experiments.common.fairness_trade_off import front_table, method_table, pareto_front, plot_method_curves
    from experiments.common.reporting import write_experiment
    from privgan.io import save_figure

    start = time.time()
    train, test, table_name = _load()
    seeds = [int(seed) for seed in FLAGS.seeds]
    ours = {} if FLAGS.library_defaults else dict(epochs=FLAGS.epochs, batch_size=FLAGS.batch_size)
    if FLAGS.gap_confidence is not None:
        ours["gap_confidence"] = None if FLAGS.gap_confidence == 0.5 else FLAGS.gap_confidence
    if FLAGS.cross_fit is not None:
        ours["cross_fit"] = FLAGS.cross_fit or None
    fits = {}  # ours and ours_attr share their fits
    available = {
        "ours": lambda: comparison.adversarial_debiasing(
            constraint="equalized_odds", tolerances=_floats(FLAGS.tolerances), fits=fits, **ours),
        "ours_attr": lambda: comparison.adversarial_debiasing(
            constraint="equalized_odds", tolerances=_floats(FLAGS.attr_tolerances or FLAGS.tolerances),
            with_attribute=True, fits=fits, **(ours if FLAGS.attr_training_tolerance is None else dict(
                ours, tolerance=FLAGS.attr_training_tolerance, swept="postprocess_tolerance"))),
        "ours_dp": lambda: comparison.adversarial_debiasing(
            constraint="demographic_parity", tolerances=_floats(FLAGS.dp_tolerances), **ours),
        "expgrad": lambda: [
            comparison.exponentiated_gradient(constraint="equalized_odds", bounds=_floats(FLAGS.eo_bounds)),
            comparison.exponentiated_gradient(constraint="demographic_parity", bounds=_floats(FLAGS.dp_bounds)),
        ],
        "threshold": lambda: [
            comparison.threshold_optimizer(constraint="equalized_odds"),
            comparison.threshold_optimizer(constraint="demographic_parity",
                                           tolerances=_floats(FLAGS.threshold_dp_tols)),
        ],
        "fairlearn_adversarial": lambda: comparison.fairlearn_adversarial(
            constraint="equalized_odds", alphas=_floats(FLAGS.fairlearn_alphas), backend=FLAGS.fairlearn_backend,
            epochs=FLAGS.epochs, batch_size=FLAGS.batch_size),
    }
    unknown = set(FLAGS.methods) - set(available)
    if unknown:
        raise app.UsageError(f"--methods: unknown {sorted(unknown)}; known: {sorted(available)}")
    methods = [
        comparison.logistic_regression(),
        comparison.adversarial_debiasing(constraint="equalized_odds", tolerances=(None,),
                                         name="network without adversary", **ours),
    ]
    skipped = []
    for key in FLAGS.methods:
        made = available[key]()
        made = made if isinstance(made, list) else [made]
        if None in made:
            skipped.append(f"{key} ({FLAGS.fairlearn_backend} not installed)")
        methods += [method for method in made if method is not None]

    print(f"{table_name}: {len(train)} training rows, {len(test)} test rows", flush=True)
    rows = comparison.compare(methods, train, test, sensitive=FLAGS.sensitive, seeds=seeds,
                              log=lambda line: print(line, flush=True))
    summary = comparison.summarize(rows)
    output_dir = pathlib.Path(FLAGS.output_dir)
    title = f"{table_name}, sensitive attribute {FLAGS.sensitive}, mean ± std over {len(seeds)} seeds"
    save_figure(plot_method_curves(summary, title=title, min_score=FLAGS.plot_min_accuracy),
                output_dir / "trade_off.png", dpi=120, bbox_inches="tight")
    columns = ("accuracy", "equalized_odds_difference", "demographic_parity_difference", "constraint_violation",
               "adversary_weight", "wall_time_seconds")
    held = ("hold out 20% of it" if ours.get("cross_fit", 3) is None
            else f"cross-fit it in {ours.get('cross_fit', 3)} folds")
    sections = [f"{title}. Test split: {len(test)} rows; training split: {len(train)} rows (ours {held} for the "
                "tolerance).", method_table(summary, columns=columns)]
    with_attribute = {method.name for method in methods if method.attribute_at_prediction}
    fronts = {}
    for regime, names in (
        ("without the sensitive attribute at prediction", {m.name for m in methods} - with_attribute),
        ("with the sensitive attribute at prediction (every method)", None),
    ):
        for gap in ("equalized_odds_difference", "demographic_parity_difference"):
            front = pareto_front(summary, gap=gap, methods=names)
            fronts[f"{regime}, {gap}"] = front
            sections.append(f"Pareto front ({gap}), {regime}:\n\n" + front_table(front, gap=gap))
    figures = ["trade_off.png"]
    results = {"table": table_name, "sensitive_attribute": FLAGS.sensitive, "seeds": seeds, "runs": rows,
               "summary": summary, "skipped": skipped, "pareto_fronts": fronts,
               "attribute_at_prediction": sorted(with_attribute),
               "config": {"ours": ours, "library_defaults": FLAGS.library_defaults}}

    if FLAGS.representations:
        representation_params = {} if FLAGS.library_defaults else dict(epochs=FLAGS.representation_epochs)
        representation_methods = [
            comparison.unconstrained_representation(**representation_params),
            comparison.fair_representation(tolerances=(None,), name="FairRepresentation (fixed lambda = 1)",
                                           **representation_params),
            comparison.fair_representation(tolerances=_floats(FLAGS.representation_tolerances),
                                           **representation_params),
            comparison.plain_autoencoder(**representation_params),
            comparison.drop_sensitive_column(),
        ]
        representation_rows = comparison.compare_representations(
            representation_methods, train, test, sensitive=FLAGS.sensitive, seeds=seeds,
            log=lambda line: print(line, flush=True))
        representation_summary = comparison.summarize(representation_rows, metrics=comparison.REPRESENTATION_METRICS)
        figure = plot_method_curves(
            representation_summary, title=f"Representations: {title}", score="downstream_accuracy",
            score_label="downstream test accuracy (fresh logistic regression)",
            panels=(("leakage_balanced_accuracy", "leakage: best fresh probe's balanced accuracy"),))
        save_figure(figure, output_dir / "representations.png", dpi=120, bbox_inches="tight")
        figures.append("representations.png")
        sections += ["Representations: leakage of the test representation to fresh probes (chance "
                     f"{1 / test.sensitive[FLAGS.sensitive].nunique():.2f}) and downstream accuracy; tolerances are "
                     "above chance, on the validation split.",
                     method_table(representation_summary, columns=comparison.REPRESENTATION_METRICS[:2]
                                  + ("constraint_violation", "adversary_weight", "wall_time_seconds"))]
        results.update(representation_runs=representation_rows, representation_summary=representation_summary)

    wall_time = time.time() - start
    if skipped:
        sections.append(f"Skipped: {', '.join(skipped)}.")
    sections.append(f"Total wall time {wall_time:.0f} s on a shared machine (other jobs running).")
    write_experiment(output_dir, name=f"Fairness methods side by side: {table_name}", results=results,
                     summary="\n\n".join(sections), figures=figures, command=" ".join(sys.argv))
    print("\n\n".join(sections))
    print(json.dumps({"wall_time_seconds": wall_time}))


if __name__ == "__main__":
    app.run(main)
