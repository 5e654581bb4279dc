"""DPImageBench-style TSTR: model selection on the synthetic validation part, never on the real test split."""

import numpy as np
import pytest

from privgan.evaluation.benchmark_tstr import benchmark_classifier, benchmark_tstr

SHAPE = (8, 8, 1)


def images(count, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, count)
    x = np.clip(rng.normal(0.3 + 0.4 * y[:, None, None, None], 0.1, (count, *SHAPE)), 0, 1).astype("float32")
    return x, y


def test_selection_reads_the_synthetic_validation_part_only():
    x, y = images(48, 0)
    x_test, y_test = images(20, 1)
    result = benchmark_tstr(x, y, x_test, y_test, num_classes=2, classifiers=("resnet",), epochs=3,
                            depths={"resnet": 8}, batch_size=16, seed=0)
    assert result.num_validation == 4 and result.num_train == 44 and result.epochs == 3
    entry = result.per_classifier["resnet"]
    history = entry["validation_history"]
    # The epoch is the (last) best on the synthetic validation part: the test split plays no part in it.
    assert len(history) == 3 and entry["best_epoch"] == 3 - int(np.argmax(history[::-1]))
    assert entry["validation_accuracy"] == max(history) and entry["depth"] == 8
    assert result.accuracy == entry["test_accuracy"]
    assert result.to_dict()["benchmark_tstr_shortened"] is True


def test_default_depths_and_bad_input():
    assert benchmark_classifier("resnet", input_shape=SHAPE, num_classes=2).name == "resnet110"  # their default
    wide = benchmark_classifier("wrn", input_shape=SHAPE, num_classes=2, depth=10)
    assert wide.output_shape == (None, 2) and any(layer.name.startswith("dropout") for layer in wide.layers)
    with pytest.raises(ValueError, match="depth of the wrn"):
        benchmark_classifier("wrn", input_shape=SHAPE, num_classes=2, depth=12)
    with pytest.raises(ValueError, match="classifiers must be"):
        benchmark_tstr(*images(48, 0), *images(4, 1), num_classes=2, classifiers=("vgg",))
    with pytest.raises(ValueError, match="epochs must be"):
        benchmark_tstr(*images(48, 0), *images(4, 1), num_classes=2, epochs=0)
