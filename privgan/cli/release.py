"""Where a synthetic release goes, checked before any training: writable, and not over an earlier release.

A run that fails after training has spent its privacy budget for nothing, so the destination is checked
first. An existing release is not replaced unless asked (`--overwrite`), and either way the user is told
that a new run on the same private data spends a new budget: if the earlier release was shared, the two
together are covered only by the sum of their epsilons (and deltas).
"""

import pathlib

from privgan.evaluation.tabular_report import fidelity_report_paths
from privgan.io import check_destination

SECOND_BUDGET = (
    "a new run on the same private data spends a second privacy budget: if the earlier release (or anything "
    "computed from it) was shared, the two releases together are covered only by (epsilon1 + epsilon2, "
    "delta1 + delta2)"
)


def release_paths(output):
    """The files of a release at `output`: the synthetic CSV, its statement, and the fidelity report's files."""
    output = pathlib.Path(output)
    return [output, output.with_suffix(".json"), *fidelity_report_paths(output).values()]


def check_release_destination(output, *, overwrite, name="--output"):
    """Checks before training that a release can be written at `output`.

    Args:
        output: the synthetic CSV to write.
        overwrite: whether an existing release there may be replaced.
        name: how to call `output` in messages.

    Returns:
        The existing files of an earlier release that will be replaced (empty if none).

    Raises:
        ValueError: if `output` does not end in .csv, a file of the release cannot be written (a folder in the
            way, a file where a folder should be, no permission), or a release exists and `overwrite` is False.
    """
    output = pathlib.Path(output)
    if output.suffix.lower() != ".csv":
        raise ValueError(f"{name} must end in .csv, got {str(output)!r}")
    paths = release_paths(output)
    for path in paths:
        check_destination(path, name=name if path == output else f"{name}'s companion file")
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        raise ValueError(
            f"{name} {str(output)!r}: an earlier release is there ({', '.join(p.name for p in existing)}); pass "
            f"--overwrite to replace it, or choose another path. Note that {SECOND_BUDGET}"
        )
    return existing
