"""Experiment outputs: `results.json` and a Markdown `report.md`, both written atomically.

Every experiment and benchmark writes them through `write_experiment`, which adds to the script's own
results what each script used to type by hand: the absl flags the script defined (`"flags"`, name ->
value), the run's wall seconds (`"seconds"`) and the machine and command (`"run"`), next to `"commit"` and
`"privgan_version"`. A script's results keep their own keys; they never hold a copy of a flag.
"""

import datetime
import math
import os
import pathlib
import platform
import subprocess
import sys

from privgan import __version__
from privgan.io import write_json, write_text

# The keys write_experiment adds; a script's results may not use them.
ADDED_KEYS = ("flags", "seconds", "run", "commit", "privgan_version")


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


def main_module_name():
    """The name under which absl files the flags of the script being run (`sys.argv[0]` for `__main__`)."""
    return sys.argv[0]


def _json_value(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return str(value)  # enum members and other parsed values, as the command line would spell them


def experiment_flags(*, module=None, flag_values=None):
    """The flags a script defined, name -> value as parsed (defaults included), JSON-ready.

    Args:
        module: the module whose flags to take, as absl names it; default the script being run. Its key
            flags count too: `experiments.randomness.define_sampling_seed_flag` files `--sampling_seed`
            under the script that calls it.
        flag_values: an `absl.flags.FlagValues`; default `absl.flags.FLAGS`.

    Returns:
        A dict sorted by flag name; empty when the flags are not parsed yet (no values to record).
    """
    if flag_values is None:
        from absl import flags

        flag_values = flags.FLAGS
    if not flag_values.is_parsed():
        return {}
    defined = flag_values.get_key_flags_for_module(module or main_module_name())
    return {flag.name: _json_value(flag.value) for flag in sorted(defined, key=lambda flag: flag.name)}


def process_wall_seconds():
    """Wall seconds since this process started (from /proc on Linux), or None where that is unknown."""
    try:
        # Field 22 of /proc/self/stat is the start time in clock ticks after boot; the command name (field 2)
        # may hold spaces, so fields are counted after its closing parenthesis (which ends field 2).
        fields = pathlib.Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        uptime = float(pathlib.Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(uptime - started, 0.0)


def run_metadata(*, command=None):
    """When, where and how the run happened: date, host, processor, CPUs, load average and command."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node() or "unknown host",
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "command": command if command is not None else command_line(sys.argv),
    }


def command_line(argv, *, cwd=None):
    """`argv` as a reader can re-type it from the checkout root: a script path becomes `python -m package.module`
    and absolute paths in flags become relative to `cwd`, so no machine's folders end up in a report."""
    cwd = os.path.abspath(cwd or os.getcwd())
    words = list(argv)
    if words and words[0].endswith(".py") and os.path.isabs(words[0]):
        script = os.path.relpath(words[0], cwd)
        if not script.startswith(".."):
            words[0] = "python -m " + script[: -len(".py")].replace(os.sep, ".")
    for index, word in enumerate(words[1:], start=1):
        name, sep, value = word.partition("=")
        if sep and os.path.isabs(value):
            words[index] = f"{name}={os.path.relpath(value, cwd)}"
    return " ".join(words)


def write_experiment(output_dir, *, name, results, summary, figures=(), command=None, seconds=None,
                     flag_values=None):
    """Writes `results.json` and `report.md` for one experiment run, each to a temporary file then renamed.

    Args:
        output_dir: the folder (created if missing).
        name: the experiment's title.
        results: a JSON-serialisable dict (the machine-readable results), without the keys in `ADDED_KEYS`.
            The report's key/value table lists the scalar results; nested ones are in results.json.
        summary: Markdown paragraphs explaining the setting and what the numbers mean (tables welcome).
        figures: file names of PNGs already written to `output_dir`, embedded in the report.
        command: the command line that produced the run (default: `sys.argv` joined).
        seconds: the run's wall seconds; default the seconds since the process started.
        flag_values: the `absl.flags.FlagValues` to record the script's flags from (default `absl.flags.FLAGS`).

    Returns:
        The path of `report.md`.

    Raises:
        ValueError: `results` uses a key that write_experiment adds (nothing is written then).
    """
    clashes = sorted(set(results) & set(ADDED_KEYS))
    if clashes:
        raise ValueError(f"results must not use the keys write_experiment adds ({', '.join(ADDED_KEYS)}); "
                         f"got {', '.join(clashes)}")
    output_dir = pathlib.Path(output_dir)
    seconds = process_wall_seconds() if seconds is None else seconds
    run = run_metadata(command=command)
    flags = experiment_flags(flag_values=flag_values)
    commit = source_commit()
    results = {
        **results,
        "flags": flags,
        "seconds": None if seconds is None else round(seconds, 1),
        "run": run,
        "privgan_version": __version__,
        "commit": commit,
    }
    write_json(output_dir / "results.json", results)
    lines = [f"# {name}", "", summary.strip(), "", "| key | value |", "|---|---|"]
    lines += [
        f"| {key} | {_cell(value)} |" for key, value in sorted(results.items()) if not isinstance(value, (dict, list))
    ]
    lines += [""] + [f"![{figure}]({figure})" for figure in figures]
    load = "" if run["load_average"] is None else f", load average {run['load_average']:.1f}"
    lines += ["", f"Run {run['date']} on {run['host']} ({run['processor']}, {run['cpus']} CPUs{load}), "
              f"commit {commit or 'unknown'}."]
    if run["command"]:
        lines += ["", f"Command: `{run['command']}`"]
    if flags:
        lines += ["", "Flags: " + " ".join(f"`--{key}={_cell(value)}`" for key, value in flags.items())]
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
