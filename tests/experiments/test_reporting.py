"""An experiment's results.json records its flags, wall seconds and machine; report.md names commit, machine, load."""

import json
import pathlib

import pytest
from absl import flags

from experiments.common.reporting import command_line, write_experiment

# A script as an experiment spells it: its own flags, the shared --sampling_seed, then a results dict without them.
_SCRIPT = """
from absl import flags
from experiments.randomness import define_sampling_seed_flag
flags.DEFINE_integer("epochs", 2, "Epochs.", flag_values=VALUES)
flags.DEFINE_list("weights", ["0.1", "1"], "Weights.", flag_values=VALUES)
flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam"], "Optimizer.", flag_values=VALUES)
define_sampling_seed_flag(flag_values=VALUES)
"""


@pytest.fixture
def script_flags(monkeypatch):
    """The flags of a script run as `python fake_experiment.py --epochs=3`, and one flag of another module."""
    values = flags.FlagValues()
    monkeypatch.setattr("sys.argv", ["fake_experiment.py", "--epochs=3"])
    exec(compile(_SCRIPT, "fake_experiment.py", "exec"), {"__name__": "__main__", "VALUES": values})
    flags.DEFINE_string("elsewhere", "x", "A flag of an imported module.", flag_values=values, module_name="other")
    values(["fake_experiment.py", "--epochs=3"])
    return values


def test_results_record_the_scripts_flags_seconds_and_machine(tmp_path, script_flags):
    write_experiment(tmp_path, name="t", results={"accuracy": 0.5}, summary="s", flag_values=script_flags)
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["flags"] == {"epochs": 3, "optimizer": "sgd", "sampling_seed": None, "weights": ["0.1", "1"]}
    assert results["accuracy"] == 0.5 and results["seconds"] > 0
    assert results["run"]["command"] == "fake_experiment.py --epochs=3" and results["run"]["cpus"] >= 1
    assert {"date", "host", "processor", "load_average"} <= set(results["run"]) and "commit" in results
    assert "`--epochs=3`" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_the_report_records_commit_machine_and_command(tmp_path):
    report = write_experiment(tmp_path, name="t", results={"accuracy": 0.5}, summary="s", command="python -m x",
                              seconds=2.04)
    text = report.read_text(encoding="utf-8")
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert "commit " in text and "CPUs" in text and "Command: `python -m x`" in text
    assert "commit" in results and results["accuracy"] == 0.5 and results["seconds"] == 2.0


def test_a_failed_write_leaves_the_previous_results_and_no_temporary_file(tmp_path, monkeypatch):
    write_experiment(tmp_path, name="t", results={"accuracy": 0.5}, summary="s")
    before = (tmp_path / "results.json").read_text(encoding="utf-8")
    original = pathlib.Path.write_text

    def half_then_fail(path, text, **kwargs):
        original(path, text[: len(text) // 2], **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_text", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_experiment(tmp_path, name="t", results={"accuracy": 0.9}, summary="s")
    monkeypatch.undo()
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.md", "results.json"]


def test_results_may_not_hand_type_what_the_writer_adds(tmp_path):
    with pytest.raises(ValueError, match="must not use the keys write_experiment adds .*got flags, seconds"):
        write_experiment(tmp_path, name="t", results={"seconds": 1.0, "flags": {}}, summary="s")
    assert list(tmp_path.iterdir()) == []


def test_the_command_names_the_module_and_relative_paths_not_this_machines_folders(tmp_path):
    root = tmp_path / "checkout"
    argv = [str(root / "experiments" / "dpsgd_mnist.py"), f"--data_dir={tmp_path / 'shared' / 'mnist'}", "--seed=1"]
    line = command_line(argv, cwd=str(root))
    assert line == "python -m experiments.dpsgd_mnist --data_dir=../shared/mnist --seed=1"
    assert str(tmp_path) not in line
