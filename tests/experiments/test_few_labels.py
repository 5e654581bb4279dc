"""Few-label baselines: the balanced label draw, supervised and pseudo-label CNNs on the 8x8 digits."""

import numpy as np
import pytest

from experiments.common.few_labels import balanced_label_draw, train_pseudo_label_cnn
from privgan.data import load_digits


def test_balanced_label_draw_takes_k_per_class_fixed_by_the_seed():
    labels = np.repeat(np.arange(4), 25)
    drawn = balanced_label_draw(labels, per_class=3, seed=1)
    assert np.bincount(labels[drawn]).tolist() == [3, 3, 3, 3]
    np.testing.assert_array_equal(drawn, balanced_label_draw(labels, per_class=3, seed=1))
    assert not np.array_equal(drawn, balanced_label_draw(labels, per_class=3, seed=2))
    with pytest.raises(ValueError, match="class 0 has 25 examples, fewer than per_class=26"):
        balanced_label_draw(labels, per_class=26, seed=0)


def test_pseudo_labelling_labels_confident_images_and_learns_above_chance():
    (x_train, y_train), (x_test, y_test) = load_digits()
    labelled = balanced_label_draw(y_train, per_class=5, seed=0)
    unlabelled = np.setdiff1d(np.arange(len(x_train)), labelled)
    model, counts = train_pseudo_label_cnn(x_train[labelled], y_train[labelled], x_train[unlabelled], num_classes=10,
                                           rounds=1, threshold=0.5, labelled_steps=60, epochs_per_round=2)
    assert len(counts) == 1 and 0 < counts[0] <= len(unlabelled)
    accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test)
    assert accuracy > 0.3  # chance is 0.1
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\)"):
        train_pseudo_label_cnn(x_train[labelled], y_train[labelled], x_train[unlabelled], num_classes=10, threshold=1)
