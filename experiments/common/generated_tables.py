"""Generated tables like the fairness issue's held-back one (`experiments.fairness_generated`).

A latent merit decides a binary label together with a group shift; the features measure the merit with much
noise and reveal the group through proxies, never the group itself, so a plain classifier leans on the group's
base rate: logistic regression is 0.65-0.70 accurate with an equalized-odds difference of 0.2-0.3 on each
table (`tests/experiments/test_fairness_generated.py`).
"""

import numpy as np
import pandas as pd

from fairness.data import FairnessDataset

# Each table: share of group 1, the label's shift between the groups, the noise of the two merit measurements,
# the number of group proxies and their noise, features mixing merit and group, the label's own noise; optionally
# the merit's measurement noise in group 1 (unset: as in group 0).
TABLES = {
    "proxy": dict(group_share=0.4, bias=1.0, merit_noise=1.5, proxies=1, proxy_noise=0.3, mixed=1, label_noise=0.7),
    "minority": dict(group_share=0.25, bias=1.0, merit_noise=2.0, proxies=2, proxy_noise=0.5, mixed=2,
                     label_noise=0.7),
    "mixed": dict(group_share=0.5, bias=1.5, merit_noise=2.0, proxies=1, proxy_noise=0.7, mixed=1, label_noise=0.7),
    "measurement": dict(group_share=0.4, bias=0.5, merit_noise=2.0, merit_noise_group1=0.5, proxies=1, proxy_noise=0.5,
                        mixed=0, label_noise=0.6),
}


def make_table(name, *, rows, seed=0):
    """Generated table `name` of TABLES as `(train, test)` FairnessDatasets (70/30), the group not a feature.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in TABLES:
        raise ValueError(f"table must be one of {sorted(TABLES)}, got {name!r}")
    spec = TABLES[name]
    rng = np.random.default_rng(seed)
    group = (rng.random(rows) < spec["group_share"]).astype(np.int64)
    merit = rng.normal(size=rows)
    labels = (merit + spec["bias"] * (group - spec["group_share"]) + spec["label_noise"] * rng.normal(size=rows)
              > 0).astype(np.int64)
    noise = np.where(group == 1, spec.get("merit_noise_group1", spec["merit_noise"]), spec["merit_noise"])
    columns = [merit + noise * rng.normal(size=rows) for _ in range(2)]
    columns += [group + spec["proxy_noise"] * rng.normal(size=rows) for _ in range(spec["proxies"])]
    columns += [0.5 * merit + 0.8 * group + rng.normal(size=rows) for _ in range(spec["mixed"])]
    columns += [rng.normal(size=rows) for _ in range(2)]
    features = np.stack(columns, axis=1).astype(np.float32)
    cut = int(round(0.7 * rows))
    return tuple(
        FairnessDataset(features=features[part], labels=labels[part],
                        sensitive=pd.DataFrame({"group": group[part].astype(str)}),
                        feature_names=tuple(f"x{j}" for j in range(features.shape[1])))
        for part in (slice(0, cut), slice(cut, None))
    )
