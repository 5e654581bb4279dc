"""What the experiments and benchmarks share, kept out of the installed packages.

`reporting` writes every run's `results.json` (with the script's flags, wall seconds and the machine) and
`report.md`; `few_labels` holds the supervised baselines of the few-labels experiment; `fairness_comparison`
and `fairness_trade_off` put fairness methods side by side and draw their trade-off curves.
"""
