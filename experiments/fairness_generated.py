"""Features-only fair classifiers on generated tables like the issue's held-back one, against fairlearn.

The held-back table of the fairness issue (about 5,000 rows, a binary label and a binary sensitive attribute
that is not among the features, logistic regression 0.682 accurate with an equalized-odds difference of
0.274) is not ours to tune on. These tables imitate its regime without copying it: a latent merit decides
the label together with a group shift, the features measure the merit with much noise and reveal the group
through proxies, so a plain classifier leans on the group's base rate (a large equalized-odds gap at
accuracy 0.65-0.70). The variants (`experiments.common.generated_tables`) differ in group share, noise,
number of proxies and features mixing merit and group; in "measurement" the merit is measured far more
noisily for one group than for the other, so equal error rates cost much accuracy (as on the held-back table,
where fairlearn's `ExponentiatedGradient` at bound 0.01 lost 0.13). Their parameters were set to land in that
accuracy/gap range with logistic regression (and, for "measurement", a steep price of fairness), nothing else
was tuned on them.

Compared (features only at prediction): logistic regression, our network without adversary, fairlearn's
`ExponentiatedGradient` (EqualizedOdds bounds swept) and
`AdversarialDebiasing(constraint="equalized_odds", tolerance=t)` with the library's defaults (or `--ours`
overrides, JSON). Test accuracy and equalized-odds difference per seed;
nothing is chosen on the test split.

    python -m experiments.fairness_generated --output_dir=runs/generated
    python -m experiments.fairness_generated --tables=proxy --tolerances=0.05 --ours='{"cross_fit": null}'

Writes results.json and report.md to --output_dir.
"""

import json
import sys

from absl import app, flags

flags.DEFINE_string("output_dir", None, "Where results.json and report.md go (unset: print only).")
flags.DEFINE_list("tables", ["proxy", "minority", "mixed", "measurement"], "Generated tables "
                  "(experiments.common.generated_tables.TABLES).")
flags.DEFINE_integer("rows", 5000, "Rows of each table (70% training, 30% test).")
flags.DEFINE_list("seeds", ["0"], "Seeds of our fits (the tables are drawn with seed 0).")
flags.DEFINE_list("tolerances", ["0.05", "0.1"], "AdversarialDebiasing tolerances.")
flags.DEFINE_list("eo_bounds", ["0.005", "0.01", "0.02", "0.05"], "ExponentiatedGradient EqualizedOdds bounds.")
flags.DEFINE_string("ours", "{}", "JSON dict of AdversarialDebiasing parameters over the library defaults.")

FLAGS = flags.FLAGS

def main(argv):
    del argv
    from experiments.common import fairness_comparison as comparison
    from experiments.common.generated_tables import TABLES, make_table
    from experiments.common.reporting import write_experiment

    # JSON lists (hidden_units) as tuples: the comparison keys its fits by the parameters.
    ours = {key: tuple(value) if isinstance(value, list) else value for key, value in json.loads(FLAGS.ours).items()}
    seeds = [int(seed) for seed in FLAGS.seeds]
    methods = [
        comparison.logistic_regression(),
        comparison.adversarial_debiasing(constraint="equalized_odds", tolerances=(None,),
                                         name="network without adversary", **ours),
        comparison.exponentiated_gradient(constraint="equalized_odds",
                                          bounds=tuple(float(bound) for bound in FLAGS.eo_bounds)),
        comparison.adversarial_debiasing(constraint="equalized_odds",
                                         tolerances=tuple(float(value) for value in FLAGS.tolerances), **ours),
    ]
    results, lines = {}, []
    for name in FLAGS.tables:
        train, test = make_table(name, rows=FLAGS.rows)
        rows = comparison.compare(methods, train, test, sensitive="group", seeds=seeds,
                                  log=lambda line: print(line, flush=True))
        summary = comparison.summarize(rows)
        results[name] = {"spec": TABLES[name], "runs": rows, "summary": summary}
        for entry in summary:
            lines.append(f"{name}: {entry['method']} {entry['parameter']}={entry['value']}: accuracy "
                         f"{entry['accuracy']:.4f} ± {entry['accuracy_std']:.4f}, EO "
                         f"{entry['equalized_odds_difference']:.4f} ± "
                         f"{entry['equalized_odds_difference_std']:.4f}")
    print("\n".join(lines), flush=True)
    if FLAGS.output_dir:
        write_experiment(FLAGS.output_dir, name="Generated held-back-like tables", results={
            "tables": results, "ours": ours, "seeds": seeds}, summary="\n".join(lines), command=" ".join(sys.argv))


if __name__ == "__main__":
    app.run(main)
