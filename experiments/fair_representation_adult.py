"""Fair representations of UCI Adult with sex as the sensitive attribute (Edwards & Storkey 2016, LAFTR).

An unconstrained baseline (adversary weight 0: same networks, no reversed gradient) against
`fairness.FairRepresentation` over a range of gradient-reversal strengths. For each model: the task head's
test accuracy and fairness gaps, the leakage of the test representation (balanced accuracy of fresh
logistic-regression and MLP probes predicting sex, `fairness.metrics.leakage`), and the downstream
accuracy of a fresh logistic regression trained on the training representation. Sex and race are not
among the features.

    python -m experiments.fair_representation_adult --data_dir=../shared/datasets/adult --output_dir=/tmp/fr

Writes results.json, report.md and trade_off.png to --output_dir.
"""

import json
import pathlib
import sys
import time

from absl import app, flags

flags.DEFINE_string("data_dir", None, "Folder with adult.data/adult.test; unset downloads them from UCI.")
flags.DEFINE_string("output_dir", None, "Where results.json, report.md and trade_off.png go.")
flags.DEFINE_enum(
    "constraint",
    "demographic_parity",
    ["demographic_parity", "equalized_odds", "equal_opportunity"],
    "LAFTR adversary objective.",
)
flags.DEFINE_float("adversary_weight", 1.0, "Gradient reversal strength of the reported model.")
flags.DEFINE_list("trade_off_weights", ["0.3", "1", "3"], "Strengths of the trade-off curve.")
flags.DEFINE_enum("adversary_loss", "cross_entropy", ["cross_entropy", "l1"], "Adversary's loss.")
flags.DEFINE_integer("representation_dim", 8, "Size of Z.")
flags.DEFINE_list("adversary_hidden_units", ["64", "64"], "Hidden layer sizes of the adversary.")
flags.DEFINE_integer("epochs", 15, "Training epochs of every model.")
flags.DEFINE_integer("batch_size", 256, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "random_state of every model and probe.")
flags.mark_flag_as_required("output_dir")

FLAGS = flags.FLAGS

SENSITIVE = "sex"


def main(argv):
    del argv
    from sklearn.linear_model import LogisticRegression

    from experiments.common.fairness_trade_off import plot_trade_off, trade_off_table
    from experiments.common.reporting import write_experiment
    from fairness import FairRepresentation, load_adult
    from fairness.metrics import fairness_report, leakage
    from privgan.io import save_figure

    start = time.time()
    train, test = load_adult(FLAGS.data_dir)
    model_params = dict(
        constraint=FLAGS.constraint,
        adversary_loss=FLAGS.adversary_loss,
        representation_dim=FLAGS.representation_dim,
        adversary_hidden_units=tuple(int(units) for units in FLAGS.adversary_hidden_units),
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        random_state=FLAGS.seed,
    )

    def fit_and_evaluate(weight):
        print(f"adversary weight {weight:g}", flush=True)
        model = FairRepresentation(adversary_weight=weight, **model_params)
        model.fit(train.features, train.labels, sensitive_features=train.sensitive[SENSITIVE])
        report = fairness_report(
            test.labels, model.predict(test.features), sensitive_features=test.sensitive[SENSITIVE]
        )
        train_z, test_z = model.transform(train.features), model.transform(test.features)
        leaked = leakage(test_z, test.sensitive[SENSITIVE], random_state=FLAGS.seed)
        downstream = LogisticRegression(max_iter=1000).fit(train_z, train.labels).score(test_z, test.labels)
        print(f"{report.summary()}\n{leaked.summary()}\ndownstream accuracy {downstream:.4f}", flush=True)
        return {
            "adversary_weight": weight,
            "accuracy": report.accuracy,
            "demographic_parity_difference": report.demographic_parity_difference,
            "equalized_odds_difference": report.equalized_odds_difference,
            "leakage_balanced_accuracy": leaked.max_balanced_accuracy,
            "leakage_by_probe": leaked.balanced_accuracy,
            "downstream_accuracy": float(downstream),
        }

    baseline = fit_and_evaluate(0.0)
    weights = sorted({float(weight) for weight in FLAGS.trade_off_weights} | {FLAGS.adversary_weight})
    rows = [fit_and_evaluate(weight) for weight in weights]
    chosen = next(row for row in rows if row["adversary_weight"] == FLAGS.adversary_weight)
    wall_time = time.time() - start

    metric_keys = (
        "accuracy",
        "demographic_parity_difference",
        "equalized_odds_difference",
        "leakage_balanced_accuracy",
        "downstream_accuracy",
    )
    results = {
        "baseline_accuracy": baseline["accuracy"],
        **{f"baseline_{key}": baseline[key] for key in metric_keys[1:]},
        **{key: chosen[key] for key in metric_keys},
        "sensitive_attribute": SENSITIVE,
        "baseline": baseline,
        "trade_off": rows,
        "config": {**model_params, "adversary_hidden_units": list(model_params["adversary_hidden_units"])},
    }
    table = trade_off_table(rows, baseline, extra_columns=metric_keys[3:])
    summary = (
        f"Test split (16,281 rows); sex and race are not features. Leakage: best balanced accuracy of fresh "
        f"probes predicting sex from the test representation (chance 0.5). Downstream: a fresh logistic "
        f"regression on the representation. Reported model: strength {FLAGS.adversary_weight:g}. "
        f"Wall time {wall_time:.0f} s.\n\n{table}\n\n"
        "Targets: leakage <= 0.55 with downstream accuracy >= 0.82."
    )
    figure = plot_trade_off(rows, baseline, title=f"Fair representations of Adult ({FLAGS.constraint})")
    save_figure(figure, pathlib.Path(FLAGS.output_dir) / "trade_off.png", dpi=120, bbox_inches="tight")
    write_experiment(
        FLAGS.output_dir,
        name=f"Fair representations of Adult ({FLAGS.constraint} adversary, sensitive attribute: {SENSITIVE})",
        results=results, summary=summary, figures=["trade_off.png"], command=" ".join(sys.argv),
    )
    headline = {key: value for key, value in results.items() if not isinstance(value, (dict, list))}
    print(json.dumps(headline, indent=2))


if __name__ == "__main__":
    app.run(main)
