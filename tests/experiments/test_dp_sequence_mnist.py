"""The sequence experiment runs end to end on a tiny configuration, and refuses bad settings."""

import pytest

from experiments.dp_sequence_mnist import SequenceConfig, run


def test_a_tiny_run_trains_both_models_within_the_budget(shared_datasets):
    config = SequenceConfig(units=4, batch_size=64, epochs=1, learning_rates=(0.02,), plain_epochs=1,
                            train_size=256, validation_size=100)
    results = run(config, data_dir=shared_datasets / "mnist")
    (row,) = results["per_seed"]
    assert set(row["validation_accuracy_by_learning_rate"]) == {"0.02"}
    assert 0 <= row["dp_test_accuracy"] <= 1 and 0 <= row["plain_test_accuracy"] <= 1
    assert row["epsilon"] <= config.target_epsilon and row["noise_multiplier"] > 0
    assert results["num_examples"] == 256 and results["sampling_seed"] == "secret (OS entropy)"


@pytest.mark.parametrize("field, value", [("epochs", 0), ("delta", 1.0), ("learning_rates", ()),
                                          ("train_size", 10), ("seeds", (1, 1))])
def test_bad_settings_name_the_argument(field, value):
    with pytest.raises(ValueError, match=field):
        SequenceConfig(**{field: value})
