import numpy as np
import pytest

from fairness.data import load_adult, make_biased_toy
from privgan.data.adult import ADULT_SCHEMA


def test_toy_bias_is_known_and_tunable():
    fair = make_biased_toy(4000, bias=0.0, random_state=0)
    biased = make_biased_toy(4000, bias=1.0, random_state=0)
    group = biased.sensitive["group"].to_numpy()

    def gap(data):
        return data.labels[group == 1].mean() - data.labels[group == 0].mean()

    assert abs(gap(fair)) < 0.05
    assert 0.3 < gap(biased) < 0.45  # Phi(0.5) - Phi(-0.5) = 0.38
    assert np.corrcoef(biased.features[:, 1], group)[0, 1] > 0.8  # the proxy reveals the group


def test_toy_refuses_negative_bias():
    with pytest.raises(ValueError, match="bias must be >= 0"):
        make_biased_toy(10, bias=-1.0)


def test_adult_from_shared_datasets(shared_datasets):
    train, test = load_adult(shared_datasets / "adult")
    assert (len(train), len(test)) == (32561, 16281)
    assert train.features.shape[1] == test.features.shape[1] == len(train.feature_names)
    assert not any(name.startswith(("sex=", "race=")) for name in train.feature_names)
    assert 0.23 < train.labels.mean() < 0.25 and 0.23 < test.labels.mean() < 0.25
    assert set(train.sensitive["sex"]) == set(ADULT_SCHEMA["sex"].categories)
    assert set(test.sensitive["race"]) == set(ADULT_SCHEMA["race"].categories)
    np.testing.assert_allclose(train.features[:, 0].mean(), 0.0, atol=1e-5)  # standardised on train
    assert np.isfinite(test.features).all()


def test_adult_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="adult.data"):
        load_adult(tmp_path)
