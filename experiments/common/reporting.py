"""Experiment outputs: `results.json` and a Markdown `report.md`, both written atomically."""

import datetime
import os
import pathlib
import platform
import subprocess

from privgan import __version__
from privgan.io import write_json, write_text


def _cell(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def source_commit():
    """The checkout's commit (with `+changes` when the tree differs from it), or None outside a git checkout."""
    root = pathlib.Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+changes" if dirty else commit


def write_experiment(output_dir, *, name, results, summary, figures=(), command=None):
    """Writes `results.json` and `report.md` for one experiment run.

    Args:
        output_dir: the folder (created if missing).
        name: the experiment's title.
        results: a JSON-serialisable dict (the machine-readable results).
        summary: Markdown paragraphs explaining the setting and what the numbers mean (tables welcome).
            The report's key/value table lists the scalar results; nested ones are in results.json.
        figures: file names of PNGs already written to `output_dir`, embedded in the report.
        command: the command line that produced the run.

    Returns:
        The path of `report.md`.
    """
    output_dir = pathlib.Path(output_dir)
    results = {**results, "privgan_version": __version__, "commit": source_commit()}
    write_json(output_dir / "results.json", results)
    lines = [f"# {name}", "", summary.strip(), "", "| key | value |", "|---|---|"]
    lines += [
        f"| {key} | {_cell(value)} |" for key, value in sorted(results.items()) if not isinstance(value, (dict, list))
    ]
    lines += [""] + [f"![{figure}]({figure})" for figure in figures]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = source_commit()
    load = ", load average {:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    lines += ["", f"Run {stamp} on {platform.node() or 'unknown host'} ({platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs{load}), commit {commit or 'unknown'}."]
    if command:
        lines += ["", f"Command: `{command}`"]
    report = output_dir / "report.md"
    write_text(report, "\n".join(lines) + "\n")
    return report


def mean_and_std(per_seed, keys):
    """The mean and sample standard deviation over seeds of the numeric `keys` of per-seed result dicts.

    Args:
        per_seed: a list of dicts, one per seed.
        keys: the keys to summarise (each must be a number in every dict).

    Returns:
        A dict key -> {"mean": ..., "std": ..., "values": [...]} (std 0.0 for a single seed).
    """
    import statistics

    summary = {}
    for key in keys:
        values = [float(result[key]) for result in per_seed]
        summary[key] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values,
        }
    return summary
