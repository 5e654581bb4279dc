import numpy as np
import pytest

from privgan.evaluation.tabular import (
    association_difference,
    classifier_auroc,
    marginal_tvd,
    plot_marginals,
)
from privgan.tabular import SchemaError
from tests.privgan.tabular.tables import SCHEMA, make_table


def test_auroc_is_high_on_real_data_and_chance_on_shuffled_labels():
    train, test = make_table(600, seed=1), make_table(400, seed=2)
    real = classifier_auroc(train, test, schema=SCHEMA, label="label", positive="yes")
    assert real.auroc_gb > 0.95  # the label is a function of age and colour: trees find it
    shuffled = train.assign(label=train["label"].sample(frac=1, random_state=0).to_numpy())
    tstr = classifier_auroc(shuffled, test, schema=SCHEMA, label="label", positive="yes")
    assert abs(tstr.auroc_gb - 0.5) < 0.1 and abs(tstr.auroc_lr - 0.5) < 0.1
    assert "AUROC LogisticRegression" in tstr.summary()


def test_auroc_with_one_synthetic_class_is_chance():
    train, test = make_table(100, seed=1), make_table(100, seed=2)
    result = classifier_auroc(train.assign(label="no"), test, schema=SCHEMA, label="label", positive="yes")
    assert result.single_class and result.auroc_lr == result.auroc_gb == 0.5


def test_auroc_refuses_a_label_that_is_not_categorical():
    table = make_table(50)
    with pytest.raises(SchemaError, match="label 'age' must be a categorical column"):
        classifier_auroc(table, table, schema=SCHEMA, label="age", positive=1)


def test_tvd_is_zero_for_equal_tables_and_exact_for_a_known_shift():
    real = make_table(400)
    assert all(value == 0 for value in marginal_tvd(real, real, schema=SCHEMA).values())
    synthetic = real.assign(label="yes", age=18)
    tvd = marginal_tvd(real, synthetic, schema=SCHEMA, bins=73)
    assert tvd["label"] == pytest.approx((real["label"] == "no").mean())
    assert tvd["age"] == pytest.approx(1 - (real["age"] == 18).mean())  # one bin per year
    assert tvd["colour"] == 0


def test_association_difference_sees_broken_dependence():
    real = make_table(600)
    real["label"] = np.where(real["colour"] == "red", "yes", "no").astype(object)  # label is a function of colour
    assert association_difference(real, real, schema=SCHEMA).mean_absolute_difference == 0
    rng = np.random.default_rng(0)
    independent = real.apply(lambda column: column.sample(frac=1, random_state=int(rng.integers(1000))).to_numpy())
    result = association_difference(real, independent, schema=SCHEMA)
    i, j = SCHEMA.names.index("colour"), SCHEMA.names.index("label")
    assert result.real[i, j] > 0.9 and result.synthetic[i, j] < 0.2
    assert result.mean_absolute_difference > 0
    assert "Cramér's V" in result.summary()


def test_plot_marginals_writes_a_png(tmp_path):
    path = plot_marginals(make_table(100), make_table(100, seed=5), schema=SCHEMA, path=tmp_path / "m.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
