"""Time and peak memory of `MarginalDPSynthesizer` on generated tables given in chunks, by number of rows.

    python -m benchmarks.tabular_scale --rows 1000000 3000000 10000000 --output runs/tabular_scale.json

Each size runs in a fresh subprocess, so that its peak RSS (`ru_maxrss`) is its own. The table
(`SCALE_SCHEMA`: 10 columns, 5 numeric and 5 categorical, a label that depends on age) is
generated chunk by chunk (`generated_chunks`, --chunk_rows rows each) and never held whole. Stages:

  - generate: producing the chunks alone (one pass over the generator, nothing counted), so that it can
    be told apart from reading them;
  - count: `fit`'s one pass over the chunks (checking, encoding and counting), until the last chunk is
    counted, less the generate time;
  - model: the rest of `fit` (noisy counts, selections, the graphical model), which depends on the
    columns, the budget and the marginals chosen, not on the number of rows read;
  - sample: drawing --sample_rows synthetic rows.

The report gives wall and CPU seconds per stage, the count stage's CPU seconds per million rows and the
peak RSS per size; time is linear in rows when the seconds per million rows stay level as the rows grow.
Wall times on a shared machine depend on its load (run `uptime` beside it); CPU times much less.
"""

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from privgan.tabular.schema import CategoricalColumn, NumericColumn, TableSchema

SCALE_SCHEMA = TableSchema(
    (
        NumericColumn("age", 18, 90, integer=True),
        NumericColumn("income", 0, 1_000_000, transform="log1p"),
        NumericColumn("hours", 1, 99, integer=True),
        NumericColumn("score", -1.0, 1.0, nullable=True),
        NumericColumn("balance", 0.0, 100_000.0),
        CategoricalColumn("region", tuple(f"r{i}" for i in range(8))),
        CategoricalColumn("sector", ("public", "private", "self", "none", "other"), nullable=True),
        CategoricalColumn("education", ("none", "primary", "secondary", "college", "bachelor", "master")),
        CategoricalColumn("grade", (1, 2, 3, 4, 5)),
        CategoricalColumn("label", ("yes", "no")),
    )
)


def generated_chunks(rows, *, chunk_rows=100_000, seed=0):
    """Yields DataFrames fitting `SCALE_SCHEMA`, `rows` rows in all, `chunk_rows` at a time (the last shorter).

    Args:
        rows: total number of rows, >= 0.
        chunk_rows: rows per chunk, >= 1.
        seed: seed of the generated values (public test data).
    """
    rng = np.random.default_rng(seed)
    regions = np.array(SCALE_SCHEMA["region"].categories, dtype=object)
    sectors = np.array(SCALE_SCHEMA["sector"].categories + (None,), dtype=object)
    education = np.array(SCALE_SCHEMA["education"].categories, dtype=object)
    for start in range(0, rows, chunk_rows):
        n = min(chunk_rows, rows - start)
        age = rng.integers(18, 91, n)
        region = rng.integers(0, regions.size, n)
        score = rng.uniform(-1, 1, n)
        score[rng.random(n) < 0.1] = np.nan
        label = np.where(rng.random(n) < np.where(age > 45, 0.85, 0.15), "yes", "no").astype(object)
        yield pd.DataFrame(
            {
                "age": age,
                "income": np.round(rng.lognormal(10, 1, n).clip(0, 1_000_000), 2),
                "hours": rng.integers(1, 100, n),
                "score": score,
                "balance": rng.uniform(0, 100_000, n),
                "region": regions[region],
                "sector": sectors[rng.integers(0, sectors.size, n)],
                "education": education[rng.integers(0, education.size, n)],
                "grade": rng.integers(1, 6, n),
                "label": label,
            }
        )


def peak_rss_mb():
    """This process's peak resident set size in MB.

    Linux's VmHWM belongs to the process's own address space; `ru_maxrss` also keeps the peak of the process
    it was forked from before exec (a test runner holding TensorFlow), so it is the fallback only.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clocks():
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is the steadier one."""
    return np.array([time.perf_counter(), time.process_time()])


def _marking_the_end(chunks, marks):
    """The chunks, then the clocks when the last one has been counted (`fit` asks for the next one)."""
    yield from chunks
    marks["read"] = _clocks()


def run_one(rows, *, chunk_rows, method, epsilon, delta, sample_rows, iterations):
    """Fits and samples once in this process; returns the stages' wall and CPU seconds and the peak RSS."""
    from privgan.tabular import MarginalDPSynthesizer

    started = _clocks()
    for _ in generated_chunks(rows, chunk_rows=chunk_rows):
        pass
    generate = _clocks() - started
    synthesizer = MarginalDPSynthesizer(SCALE_SCHEMA, method=method, iterations=iterations)
    marks = {}
    started = _clocks()
    chunks = _marking_the_end(generated_chunks(rows, chunk_rows=chunk_rows), marks)
    synthesizer.fit(chunks, epsilon=epsilon, delta=delta, progress=False)
    fitted = _clocks()
    synthetic = synthesizer.sample(sample_rows)
    sample = _clocks() - fitted
    count, model = marks["read"] - started - generate, fitted - marks["read"]
    result = {"rows": rows, "chunk_rows": chunk_rows, "method": method, "epsilon": epsilon}
    for stage, (wall, cpu) in (("generate", generate), ("count", count), ("model", model), ("sample", sample)):
        result[f"{stage}_s"], result[f"{stage}_cpu_s"] = round(float(wall), 2), round(float(cpu), 2)
    result.update({
        "count_s_per_million_rows": round(float(count[0]) / (rows / 1e6), 2),
        "count_cpu_s_per_million_rows": round(float(count[1]) / (rows / 1e6), 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "synthetic_rows": len(synthetic),
        # Whether the model kept the generator's rule, label = yes for 85% of age > 45, 15% of the others
        # (the real rows agree with "yes iff age > 45" 85% of the time).
        "synthetic_rule_agreement": round(float(np.mean((synthetic["age"] > 45) == (synthetic["label"] == "yes"))), 3),
    })
    return result


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--chunk_rows", type=int, default=100_000)
    parser.add_argument("--method", choices=("aim", "mst"), default="aim")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=1e-9)
    parser.add_argument("--iterations", type=int, default=1000, help="mirror-descent iterations of the final fit")
    parser.add_argument("--sample_rows", type=int, default=100_000)
    parser.add_argument("--output", default=None, help="JSON file for the results (none: printed only)")
    parser.add_argument("--one", action="store_true", help="run the first size in this process, print JSON")
    return parser.parse_args(argv)


def main(argv=None):
    args = _arguments(argv)
    settings = dict(chunk_rows=args.chunk_rows, method=args.method, epsilon=args.epsilon, delta=args.delta,
                    sample_rows=args.sample_rows, iterations=args.iterations)
    if args.one:
        print(json.dumps(run_one(args.rows[0], **settings)))
        return
    results = []
    for rows in args.rows:
        command = [sys.executable, "-m", "benchmarks.tabular_scale", "--one", "--rows", str(rows)]
        for name, value in settings.items():
            command += [f"--{name}", str(value)]
        finished = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(finished.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    base = results[0]["count_cpu_s_per_million_rows"]
    print("\nSeconds wall (CPU) per stage; count CPU s per million rows, and its ratio to the smallest size's.")
    print("\n| rows | generate | count | count CPU s / M rows | model | sample | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        stages = [f"{r[stage + '_s']} ({r[stage + '_cpu_s']})" for stage in ("generate", "count", "model", "sample")]
        per_million = f"{r['count_cpu_s_per_million_rows']} ({r['count_cpu_s_per_million_rows'] / base:.2f})"
        print(f"| {r['rows']:,} | {' | '.join(stages[:2])} | {per_million} | {' | '.join(stages[2:])} | "
              f"{r['peak_rss_mb']} |")
    if args.output:
        path = pathlib.Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(json.dumps(results, indent=2))
        temporary.replace(path)


if __name__ == "__main__":
    main()
