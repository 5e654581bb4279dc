"""Where a synthetic release goes, checked before training: writable, not over an input, not over an earlier release.

A run that fails after training has spent its privacy budget for nothing, so the destination is checked
first, by creating and removing a file there (`privgan.io.check_destination`). No file of the release may
be one of the command's inputs (the private table, the schema), whatever the path's spelling, a symbolic
or a hard link: `--overwrite` does not change that. An existing release is not replaced unless asked
(`--overwrite`), and either way the user is told that a new run on the same private data spends a new
budget: if the earlier release was shared, the two together are covered only by the sum of their epsilons
(and deltas).
"""

import os
import pathlib

from privgan.io import check_destination

SECOND_BUDGET = (
    "a new run on the same private data spends a second privacy budget: if the earlier release (or anything "
    "computed from it) was shared, the two releases together are covered only by (epsilon1 + epsilon2, "
    "delta1 + delta2)"
)


def release_paths(output):
    """The files of a release at `output`: the synthetic CSV and its statement (the `.json` beside it)."""
    output = pathlib.Path(output)
    return [output, output.with_suffix(".json")]


def same_file(path, other):
    """Whether `path` and `other` name the same file: equal once resolved (symbolic links followed), or,
    when both exist, the same inode (`os.path.samefile`: hard links too)."""
    path, other = pathlib.Path(path), pathlib.Path(other)
    if path.resolve() == other.resolve():
        return True
    try:
        return os.path.samefile(path, other)
    except OSError:  # one of them does not exist
        return False


def check_not_an_input(paths, *, inputs, name="--output"):
    """Refuses to write any of `paths` over one of the command's `inputs`.

    Args:
        paths: the files the command will write.
        inputs: dict argument name (e.g. "--csv") -> the path it names; None values are skipped.
        name: how to call the written files in messages.

    Raises:
        ValueError: naming both arguments, if a written file would be an input.
    """
    for path in paths:
        for argument, source in inputs.items():
            if source is not None and same_file(path, source):
                what = name if pathlib.Path(path).suffix.lower() == ".csv" else f"{name}'s statement"
                raise ValueError(
                    f"{what} {str(path)!r} is the file of {argument} ({str(source)!r}): the command never writes "
                    f"over its input, with or without --overwrite; choose another {name}"
                )


def check_release_destination(output, *, overwrite, name="--output", inputs=None):
    """Checks before training that a release can be written at `output`.

    Args:
        output: the synthetic CSV to write.
        overwrite: whether an existing release there may be replaced.
        name: how to call `output` in messages.
        inputs: dict argument name -> path of the command's inputs, none of which a file of the release
            may be (see `check_not_an_input`).

    Returns:
        The existing files of an earlier release that will be replaced (empty if none).

    Raises:
        ValueError: if `output` does not end in .csv, a file of the release would be an input, cannot be
            written (a folder in the way, a file where a folder should be, a folder that refuses a new
            file), or a release exists and `overwrite` is False.
    """
    output = pathlib.Path(output)
    if output.suffix.lower() != ".csv":
        raise ValueError(f"{name} must end in .csv, got {str(output)!r}")
    paths = release_paths(output)
    check_not_an_input(paths, inputs=inputs or {}, name=name)
    for path in paths:
        check_destination(path, name=name if path == output else f"{name}'s companion file")
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        raise ValueError(
            f"{name} {str(output)!r}: an earlier release is there ({', '.join(p.name for p in existing)}); pass "
            f"--overwrite to replace it, or choose another path. Note that {SECOND_BUDGET}"
        )
    return existing
