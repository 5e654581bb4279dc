"""An experiment's report names the commit, machine and load it ran on (the docs quote it, not prose)."""

import json

from experiments.common.reporting import write_experiment


def test_the_report_records_commit_machine_and_command(tmp_path):
    report = write_experiment(tmp_path, name="t", results={"accuracy": 0.5}, summary="s", command="python -m x")
    text = report.read_text(encoding="utf-8")
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert "commit " in text and "CPUs" in text and "Command: `python -m x`" in text
    assert "commit" in results and results["accuracy"] == 0.5
