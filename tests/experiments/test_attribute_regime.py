import json

from experiments import attribute_regime


def test_the_fresh_rows_comparison_writes_every_method_of_every_table(tmp_path):
    attribute_regime.main(["--output_dir", str(tmp_path), "--variants", "1", "--seeds", "0", "--train_rows", "800",
                           "--fresh_rows", "3000", "--tolerances", "0.05"])
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(row["table"], row["method"]) for row in rows] == [
        ("biased_1", "ThresholdOptimizer"), ("biased_1", "ours, tolerance 0.05")]
    assert all(0.5 < row["accuracy"] < 0.8 and 0.0 <= row["gap"] < 0.2 for row in rows)
    assert "| biased_1 | ours, tolerance 0.05 |" in (tmp_path / "report.md").read_text()
    assert not list(tmp_path.glob("*.tmp"))
