"""Private synthetic tables at every size: privgan's AIM, MST and DPGAN next to smartnoise-synth's MST and AIM.

    python -m benchmarks.tabular_peers --data_dir=../shared/datasets/adult --output_dir=runs/tabular_peers \
        --smartnoise_python=/path/to/venv/bin/python

Tables, each with one fixed split shared by every method:
  - adult: UCI Adult, trained on adult.data (32,561 rows), tested on adult.test (16,281 rows);
  - adult_1k: a random 1,000 rows of adult.data (seed 0), tested on adult.test;
  - breast_cancer: scikit-learn's 569-row table, a stratified 70/30 split (398 / 171 rows, seed 0).
Schemas are public: `ADULT_SCHEMA` (adult.names) and `BREAST_CANCER_SCHEMA` (the feature definitions,
generous bounds); nothing is read from the data.

For every table, epsilon in --epsilons (delta = --delta) and seed in --seeds, each method fits on the
training split, writes as many synthetic rows as it has, and is scored against the real test split:
TSTR AUROC of LogisticRegression and HistGradientBoosting (`privgan.evaluation.tabular.classifier_auroc`),
the mean total variation distance of the marginals and the mean difference of pairwise Cramer's V
(test split as reference), the share of positive labels among the synthetic rows, and the wall time of
fit + sample (on a shared machine: a measure of cost, not of speed alone). The seed sets each synthesizer's
initialisation and generation; the DP noise and the GAN's Poisson sampling are secret in every privgan run (and
the GAN sizes its training by a noisy row count), so the spread over seeds includes the noise's.

Methods: privgan_aim, privgan_mst, privgan_gan (`privgan-synthesize`'s engines with their default
settings: what the CLI runs without flags), and, when a Python with smartnoise-synth is given
(--smartnoise_python; smartnoise-synth 1.x needs mbi < 2, opacus 0.14 and pandas < 3, so it lives in its
own virtual environment), smartnoise_mst and smartnoise_aim with their default settings (but AIM's
number of rounds: see --smartnoise_aim_rounds), numeric columns
binned into --smartnoise_bins equal-width bins between the schema's public bounds (as the issue's
reference numbers were made), run by `benchmarks/smartnoise_runner.py` in a subprocess. Without it the
smartnoise rows are skipped. With smartnoise among --methods, the report also scores the real training
rows put through that binning and decoding without noise: the floor of smartnoise's TVD (numbers drawn
uniformly within a bin miss spikes such as capital-gain = 0), not a limit of its models.

Every finished run is appended to `runs.jsonl` in --output_dir; a rerun skips the runs already there,
so an interrupted benchmark resumes. At the end: results.json (all runs and the mean +- std per table,
method and epsilon), report.md with the Markdown table, and tabular_peers.png (TSTR AUROC LR, mean TVD
vs epsilon, one line per method, one column per table).
"""

import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_string("data_dir", None, "Folder with adult.data and adult.test; None downloads them.")
flags.DEFINE_string("output_dir", "runs/tabular_peers", "Where the results go.")
flags.DEFINE_list("tables", ["adult", "adult_1k", "breast_cancer"], "Tables to run.")
flags.DEFINE_list("epsilons", ["1", "3", "8"], "Target epsilons.")
flags.DEFINE_float("delta", 1e-5, "delta of every budget.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (one run per table, method, epsilon and seed).")
flags.DEFINE_list(
    "methods",
    ["privgan_aim", "privgan_mst", "privgan_gan", "smartnoise_mst", "smartnoise_aim"],
    "Methods to run (smartnoise_* need --smartnoise_python).",
)
flags.DEFINE_string("smartnoise_python", None, "A Python interpreter with smartnoise-synth installed.")
flags.DEFINE_integer("smartnoise_bins", 16, "Equal-width bins of numeric columns for smartnoise.")
flags.DEFINE_enum(
    "smartnoise_aim_rounds", "privgan", ["privgan", "smartnoise"],
    "smartnoise AIM's rounds: privgan's default (2 x columns, at most 32), or smartnoise's (16 x columns: "
    "a breast-cancer fit at epsilon 8 did not finish in 35 minutes on 2 cores).",
)
flags.DEFINE_bool("report_only", False, "Only rebuild results.json, report.md and the plot from runs.jsonl.")
FLAGS = flags.FLAGS

METRICS = ("tstr_auroc_lr", "tstr_auroc_gb", "mean_tvd", "association_difference", "seconds", "cpu_seconds")


def _tables(data_dir):
    """name -> (schema, label, positive, train, test)."""
    from privgan.data import adult, breast_cancer

    tables = {}
    if {"adult", "adult_1k"} & set(FLAGS.tables):
        train, test = adult.load_adult(data_dir)
        tables["adult"] = (adult.ADULT_SCHEMA, adult.LABEL, adult.POSITIVE_LABEL, train, test)
        subsample = train.sample(n=1000, random_state=0).reset_index(drop=True)
        tables["adult_1k"] = (adult.ADULT_SCHEMA, adult.LABEL, adult.POSITIVE_LABEL, subsample, test)
    if "breast_cancer" in FLAGS.tables:
        train, test = breast_cancer.load_breast_cancer_table()
        tables["breast_cancer"] = (
            breast_cancer.BREAST_CANCER_SCHEMA, breast_cancer.LABEL, breast_cancer.POSITIVE_LABEL, train, test
        )
    return {name: tables[name] for name in FLAGS.tables}


def _privgan(method, schema, train, epsilon, seed):
    from privgan.tabular import MarginalDPSynthesizer, TabularDPSynthesizer

    engine = method.removeprefix("privgan_")
    if engine == "gan":
        synthesizer = TabularDPSynthesizer(schema, seed=seed)
        synthesizer.fit(train, epsilon=epsilon, delta=FLAGS.delta, verbose=0)
    else:
        synthesizer = MarginalDPSynthesizer(schema, method=engine, seed=seed)
        synthesizer.fit(train, epsilon=epsilon, delta=FLAGS.delta)
    synthetic = synthesizer.sample(len(train))
    statement = synthesizer.privacy_statement()
    return synthetic, {"epsilon_spent": statement.epsilon, "accountant": statement.accountant}


def _smartnoise(method, schema, train, epsilon, seed):
    from privgan.tabular import read_csv, save_schema
    from privgan.tabular.marginal import default_rounds

    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        train.to_csv(folder / "train.csv", index=False)
        save_schema(schema, folder / "schema.json")
        command = [
            FLAGS.smartnoise_python, str(pathlib.Path(__file__).with_name("smartnoise_runner.py")),
            f"--method={method.removeprefix('smartnoise_')}", f"--epsilon={epsilon}", f"--delta={FLAGS.delta}",
            f"--seed={seed}", f"--bins={FLAGS.smartnoise_bins}", f"--train={folder / 'train.csv'}",
            f"--schema={folder / 'schema.json'}", f"--rows={len(train)}", f"--output={folder / 'synthetic.csv'}",
        ]
        if method == "smartnoise_aim" and FLAGS.smartnoise_aim_rounds == "privgan":
            command.append(f"--rounds={default_rounds(len(schema.columns))}")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{method} failed:\n{done.stderr[-3000:]}")
        info = json.loads(done.stdout.strip().splitlines()[-1])
        return read_csv(folder / "synthetic.csv", schema), info


def _cpu_seconds():
    """CPU time of this process and its finished subprocesses (all threads): the cost without the load."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _score(synthetic, table, seed):
    """The quality metrics of a synthetic table against the real test split."""
    import numpy as np

    from privgan.evaluation.tabular import association_difference, classifier_auroc, marginal_tvd

    schema, label, positive, _, test = table
    tstr = classifier_auroc(synthetic, test, schema=schema, label=label, positive=positive, seed=seed)
    return {
        "tstr_auroc_lr": tstr.auroc_lr,
        "tstr_auroc_gb": tstr.auroc_gb,
        "tstr_single_class": tstr.single_class,
        # A TSTR AUROC far from 0.5 either way can come from a handful of positive synthetic rows.
        "synthetic_positive_share": float((synthetic[label] == positive).mean()),
        "mean_tvd": float(np.mean(list(marginal_tvd(test, synthetic, schema=schema).values()))),
        "association_difference": association_difference(test, synthetic, schema=schema).mean_absolute_difference,
    }


def _run(table, method, epsilon, seed):
    schema, _, _, train, _ = table
    started, cpu = time.monotonic(), _cpu_seconds()
    runner = _smartnoise if method.startswith("smartnoise_") else _privgan
    synthetic, info = runner(method, schema, train, epsilon, seed)
    seconds, cpu = time.monotonic() - started, _cpu_seconds() - cpu
    return {**_score(synthetic, table, seed), "seconds": seconds, "cpu_seconds": cpu, **info}


def _binned_reference(table):
    """The real training rows through smartnoise's binning and decoding, without noise: its floor.

    Numbers decoded uniformly within their bin cannot match the test split's marginals closer than
    this (spikes such as capital-gain = 0 are spread over the bin), whatever the synthesizer does.
    """
    import numpy as np

    from benchmarks import smartnoise_runner
    from privgan.tabular import read_csv

    schema, _, _, train, _ = table
    plain = schema.to_dict()  # what the runner reads from the schema's JSON file
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        train.to_csv(folder / "train.csv", index=False)  # through a CSV, as the runner reads its rows
        categories = smartnoise_runner.to_categories(
            smartnoise_runner.read_train(folder / "train.csv", plain), plain, FLAGS.smartnoise_bins
        )
        decoded = smartnoise_runner.from_categories(categories, plain, FLAGS.smartnoise_bins, np.random.default_rng(0))
        decoded.to_csv(folder / "decoded.csv", index=False)
        return _score(read_csv(folder / "decoded.csv", schema), table, seed=0)


def _summary(runs):
    """(table, method, epsilon) -> metric -> (mean, std, count)."""
    import numpy as np

    groups = {}
    for run in runs:
        groups.setdefault((run["table"], run["method"], run["epsilon"]), []).append(run)
    return {
        key: {m: (float(np.mean([r[m] for r in rs])), float(np.std([r[m] for r in rs])), len(rs)) for m in METRICS}
        for key, rs in groups.items()
    }


def _markdown(summary, real, tables, methods, epsilons):
    lines = [
        "| table (real LR / GB AUROC) | method | epsilon | TSTR AUROC LR | TSTR AUROC GB | mean TVD | assoc. diff. "
        "| wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for table in tables:
        for method in methods:
            for epsilon in epsilons:
                cell = summary.get((table, method, epsilon))
                if cell is None:
                    continue
                values = " | ".join(
                    f"{cell[m][0]:.0f} ± {cell[m][1]:.0f}" if m.endswith("seconds")
                    else f"{cell[m][0]:.3f} ± {cell[m][1]:.3f}"
                    for m in METRICS
                )
                count = "" if cell[METRICS[0]][2] == 3 else f" (n={cell[METRICS[0]][2]})"
                lines.append(
                    f"| {table} ({real[table]['lr']:.3f} / {real[table]['gb']:.3f}) | {method}{count} | {epsilon:g} "
                    f"| {values} |"
                )
    return "\n".join(lines)


def _plot(summary, tables, methods, epsilons, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from privgan.io import save_figure

    metrics = (("tstr_auroc_lr", "TSTR AUROC (LR)"), ("mean_tvd", "mean marginal TVD"))
    figure, axes = plt.subplots(len(metrics), len(tables), figsize=(5 * len(tables), 3.6 * len(metrics)), squeeze=False)
    for column, table in enumerate(tables):
        for row, (metric, title) in enumerate(metrics):
            axis = axes[row, column]
            for index, method in enumerate(methods):
                points = [(e, summary[(table, method, e)][metric]) for e in epsilons if (table, method, e) in summary]
                if points:  # one colour per method in every panel, whichever methods a table has
                    axis.errorbar([p[0] for p in points], [p[1][0] for p in points], yerr=[p[1][1] for p in points],
                                  marker="o", capsize=3, label=method, color=f"C{index}")
            axis.set_xscale("log")
            axis.minorticks_off()
            axis.set_xticks(epsilons, [f"{e:g}" for e in epsilons])
            axis.set_xlabel("epsilon")
            axis.set_title(f"{table}: {title}", fontsize=10)
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path, dpi=64)  # small enough for the README


def main(argv):
    del argv
    from experiments.common.reporting import write_experiment
    from privgan.evaluation.tabular import classifier_auroc

    output_dir = pathlib.Path(FLAGS.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    log = output_dir / "runs.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    done = {(r["table"], r["method"], r["epsilon"], r["seed"]) for r in runs}
    epsilons = [float(e) for e in FLAGS.epsilons]
    seeds = [int(s) for s in FLAGS.seeds]
    methods = [m for m in FLAGS.methods if not m.startswith("smartnoise_") or FLAGS.smartnoise_python]
    skipped = sorted(set(FLAGS.methods) - set(methods))
    if skipped:
        print(f"skipping {skipped}: no --smartnoise_python", flush=True)
    tables = _tables(FLAGS.data_dir)
    real = {}
    for name, table in tables.items():
        schema, label, positive, train, test = table
        baseline = classifier_auroc(train, test, schema=schema, label=label, positive=positive, seed=0)
        real[name] = {"lr": baseline.auroc_lr, "gb": baseline.auroc_gb, "train_rows": len(train),
                      "test_rows": len(test)}
        if any(m.startswith("smartnoise_") for m in FLAGS.methods):
            real[name]["smartnoise_binned"] = _binned_reference(table)
    # Seed-major: a partial run (the benchmark takes hours on 2 cores) covers every setting once first.
    for seed in seeds:
        for name, table in tables.items():
            for epsilon in epsilons:
                for method in methods:
                    if FLAGS.report_only or (name, method, epsilon, seed) in done:
                        continue
                    result = {"table": name, "method": method, "epsilon": epsilon, "seed": seed,
                              **_run(table, method, epsilon, seed)}
                    runs.append(result)
                    with open(log, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(result) + "\n")
                    print(
                        f"{name} {method} eps={epsilon:g} seed={seed}: LR {result['tstr_auroc_lr']:.4f} GB "
                        f"{result['tstr_auroc_gb']:.4f} TVD {result['mean_tvd']:.4f} ({result['seconds']:.0f} s, "
                        f"{result['cpu_seconds']:.0f} CPU s)",
                        flush=True,
                    )
    summary = _summary(runs)
    present = [m for m in FLAGS.methods if any(key[1] == m for key in summary)]
    table_names = list(tables)
    _plot(summary, table_names, present, epsilons, output_dir / "tabular_peers.png")
    markdown = _markdown(summary, real, table_names, present, epsilons)
    binned = [
        f"{name}: LR {b['tstr_auroc_lr']:.3f}, GB {b['tstr_auroc_gb']:.3f}, mean TVD {b['mean_tvd']:.3f}, "
        f"assoc. diff. {b['association_difference']:.3f}"
        for name in table_names if (b := real[name].get("smartnoise_binned"))
    ]
    if binned:
        markdown += (f"\n\nThe real training rows through smartnoise's {FLAGS.smartnoise_bins} bins and back, no noise "
                     "(the floor of its rows' TVD): " + "; ".join(binned) + ".")
    print(markdown)
    results = {
        "real": real,
        "runs": runs,
        "summary": [
            {"table": t, "method": m, "epsilon": e,
             **{k: {"mean": v[0], "std": v[1], "runs": v[2]} for k, v in cells.items()}}
            for (t, m, e), cells in sorted(summary.items())
        ],
    }
    write_experiment(
        output_dir, name="Private synthetic tables: privgan vs smartnoise-synth", results=results,
        summary=(
            "Mean ± std over seeds (TSTR AUROC on the real test split; TVD and association difference against "
            "it; wall and CPU seconds of fit + sample, measured on a shared 2-core machine under heavy load: the "
            "wall times are inflated by the load, CPU seconds are the cost of the run itself, all threads "
            "together).\n\n" + markdown
        ),
        figures=["tabular_peers.png"], command="python -m benchmarks.tabular_peers " + " ".join(sys.argv[1:]),
    )
    print(f"wrote {output_dir}/results.json, report.md and tabular_peers.png", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
