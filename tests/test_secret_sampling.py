"""Every entry point samples its batches secretly unless a sampling seed is asked for by name.

A published `--seed` that also seeded the Poisson sampling let anyone who read results.json rebuild
every batch, and with add/remove-one neighbours tell the datasets apart outright. The scripts, commands,
benchmarks and library code may pass `sampling_seed=` only a value that is None by default and comes
from an argument or flag of that name.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted(
    path for folder in ("privgan", "fairness", "experiments", "benchmarks") for path in (ROOT / folder).rglob("*.py")
) + [ROOT / "privgan_commands.py"]


def _named_sampling_seed(value):
    """Whether `value` is None or a name/attribute spelled `sampling_seed` (an argument or flag of that name)."""
    if isinstance(value, ast.Constant) and value.value is None:
        return True
    if isinstance(value, ast.Name):
        return value.id == "sampling_seed"
    if isinstance(value, ast.Attribute):
        return value.attr == "sampling_seed"
    return False


def _offending_calls(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "sampling_seed" and not _named_sampling_seed(keyword.value):
                    yield f"{path.relative_to(ROOT)}:{node.lineno}: sampling_seed={ast.unparse(keyword.value)}"


def test_no_entry_point_seeds_the_poisson_sampling_from_another_seed():
    offending = [line for path in SOURCES for line in _offending_calls(path)]
    assert not offending, "Poisson sampling seeded from a public seed:\n" + "\n".join(offending)


def test_the_experiments_sampling_seed_flag_is_secret_by_default():
    flags = pytest.importorskip("absl.flags")
    from experiments.randomness import define_sampling_seed_flag

    values = flags.FlagValues()
    define_sampling_seed_flag(flag_values=values)
    values(["prog"])
    assert values.sampling_seed is None and "does not hold against anyone who knows it" in values["sampling_seed"].help
