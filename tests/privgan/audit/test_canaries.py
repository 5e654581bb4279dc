import keras
import numpy as np
import pytest

from privgan.audit import independent_trials_bound, mislabelled_canaries, one_run_bound, run_canary_audit
from privgan.audit.canaries import one_run_guess_outcome, plan_one_run_guesses
from privgan.audit.classifier_attacks import cross_entropy
from privgan.data import load_digits


def test_mislabelled_canaries_are_distinct_records_with_wrong_labels():
    x = np.arange(50)[:, None] * np.ones((1, 3))
    y = np.arange(50) % 4
    x_canaries, y_canaries = mislabelled_canaries(x, y, num_canaries=30, num_classes=4, seed=0)
    chosen = x_canaries[:, 0].astype(int)
    assert len(set(chosen)) == 30
    assert np.all(y_canaries != y[chosen])
    assert set(y_canaries) <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match="num_canaries must be in"):
        mislabelled_canaries(x, y, num_canaries=51, num_classes=4)


def test_one_run_bound_counts_guesses_on_both_ends():
    # Top 2 guessed "in" (one right), bottom 2 guessed "out" (one right).
    bound, guesses, correct, attack = one_run_bound(
        [4.0, 3.0, 2.0, 1.0], [True, False, True, False], delta=0.0, guess_fractions=(1.0,)
    )
    assert (guesses, correct, bound) == (4, 2, 0.0)
    assert attack.auc == pytest.approx(0.75)


def test_one_run_bound_on_perfect_and_random_scores():
    rng = np.random.default_rng(0)
    included = rng.random(1000) < 0.5
    # A perfect attack on 1000 canaries: 500 correct guesses refute a large epsilon (cf. logit(alpha^(1/r))).
    bound, guesses, correct, _ = one_run_bound(included.astype(float), included, delta=1e-5)
    assert correct == guesses and bound > 4
    # Uninformative scores refute nothing, except with probability <= alpha per seed.
    bounds = [one_run_bound(rng.normal(size=1000), included, delta=1e-5)[0] for _ in range(20)]
    assert sum(b > 0 for b in bounds) <= 3


def mlp():
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(128, activation="relu"),
         keras.layers.Dense(10, activation="softmax")]
    )


def score(model, x, y):
    return -cross_entropy(model.predict(x, verbose=0), y)


@pytest.fixture(scope="module")
def digits_canaries():
    (x_train, y_train), (x_test, y_test) = load_digits()
    # Canaries come from the test split, so an excluded canary is absent from training altogether.
    x_canaries, y_canaries = mislabelled_canaries(x_test, y_test, num_canaries=200, num_classes=10, seed=0)
    return x_train[:300], y_train[:300], x_canaries, y_canaries


def test_end_to_end_non_private_audit_finds_memorisation(digits_canaries):
    x, y, x_canaries, y_canaries = digits_canaries

    def train(x, y):
        model = mlp()
        model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=40, batch_size=512, verbose=0)
        return model

    result = run_canary_audit(
        x=x, y=y, x_canaries=x_canaries, y_canaries=y_canaries, train_fn=train, score_fn=score,
        delta=1e-5, seed=0,
    )
    assert result.epsilon is None and not result.exceeds_accountant
    assert result.num_canaries == 200
    assert result.attack.auc > 0.9
    assert result.epsilon_lower_bound > 1.5
    assert "accountant epsilon none (non-private)" in result.summary()


def test_end_to_end_dp_audit_stays_below_the_accountant(digits_canaries):
    from privgan.dp import make_private

    x, y, x_canaries, y_canaries = digits_canaries

    def train(x, y):
        model = make_private(
            mlp(), l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=len(x), expected_batch_size=64, noise_seed=0
        )
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=3, verbose=0, sampling_seed=0)
        return model

    result = run_canary_audit(
        x=x, y=y, x_canaries=x_canaries, y_canaries=y_canaries, train_fn=train, score_fn=score,
        delta=1e-5, epsilon_fn=lambda model: model.privacy_spent(delta=1e-5), seed=0,
    )
    assert result.epsilon is not None and result.epsilon > 0
    assert result.epsilon_lower_bound <= result.epsilon
    assert not result.exceeds_accountant
    assert f"accountant epsilon {result.epsilon:.3f}" in result.summary()


def test_audit_checks_shapes(digits_canaries):
    x, y, x_canaries, y_canaries = digits_canaries
    with pytest.raises(ValueError, match="must pair up"):
        run_canary_audit(
            x=x, y=y[:-1], x_canaries=x_canaries, y_canaries=y_canaries, train_fn=None, score_fn=None,
            delta=1e-5,
        )


def test_subset_with_mislabelled_canaries_keeps_canaries_out_of_training_and_held_out_data():
    from privgan.audit import subset_with_mislabelled_canaries

    x_train, y_train = np.arange(100, dtype=float)[:, None], np.arange(100) % 10
    x_test, y_test = 1000 + np.arange(50, dtype=float)[:, None], np.arange(50) % 10
    (x, y), (x_c, y_c), (x_h, y_h) = subset_with_mislabelled_canaries(
        (x_train, y_train), (x_test, y_test), num_train=30, num_canaries=20, num_classes=10, seed=0
    )
    assert len(x) == 30 and len(set(x[:, 0])) == 30 and set(x[:, 0]) <= set(x_train[:, 0])
    assert len(x_c) == 20 and len(x_h) == 30
    assert not set(x_c[:, 0]) & set(x_h[:, 0]) and set(x_c[:, 0]) | set(x_h[:, 0]) == set(x_test[:, 0])
    assert np.all(y_c != (x_c[:, 0].astype(int) - 1000) % 10)  # every canary label is wrong
    with pytest.raises(ValueError, match="num_train"):
        subset_with_mislabelled_canaries((x_train, y_train), (x_test, y_test), num_train=0, num_canaries=5,
                                         num_classes=10)


def test_epsilon_bounds_plot_has_a_pair_of_bars_per_run():
    from privgan.audit import plot_epsilon_bounds

    runs = [{"name": "non-private", "epsilon": None, "epsilon_lower_bound": 3.0},
            {"name": "DP eps=1", "epsilon": 1.0, "epsilon_lower_bound": 0.1}]
    figure = plot_epsilon_bounds(runs, delta=1e-5, alpha=0.05, title="t")
    assert len(figure.axes[0].patches) == 4


def test_independent_trials_bound_on_perfect_and_random_scores():
    rng = np.random.default_rng(0)
    included = rng.random(2000) < 0.5
    # Flagging 40% of 2000 perfectly scored canaries: 800 true positives, no false positive.
    bound, flagged, true_positives = independent_trials_bound(included.astype(float), included, delta=1e-5)
    assert (flagged, true_positives) == (800, 800) and bound > 4.5  # ln(0.8 N / ln(2 K / alpha)) = 4.98
    bounds = [independent_trials_bound(rng.normal(size=2000), included, delta=1e-5)[0] for _ in range(20)]
    assert sum(b > 0 for b in bounds) <= 3
    with pytest.raises(ValueError, match="flag_fractions"):
        independent_trials_bound(included.astype(float), included, delta=1e-5, flag_fractions=(0.0,))


def test_planned_guesses_follow_the_scores_quality():
    # Top 2 guessed "in" (both right), bottom 1 guessed "out" (wrong: that canary was included).
    assert one_run_guess_outcome([5.0, 4.0, 3.0, 2.0, 1.0], [1, 1, 0, 0, 1], num_top=2, num_bottom=1) == (3, 2)
    with pytest.raises(ValueError, match="num_top and num_bottom"):
        one_run_guess_outcome([1.0, 2.0], [0, 1], num_top=2, num_bottom=1)
    rng = np.random.default_rng(0)
    included = rng.random(2000) < 0.5
    # Perfect scores: guess as much as possible; scores reliable only at the top: guess few, at the top.
    top, bottom = plan_one_run_guesses(included.astype(float), included, delta=1e-5)
    assert top + bottom >= 1000
    tail = np.where(included & (rng.random(2000) < 0.1), 10.0, rng.normal(size=2000))
    top, bottom = plan_one_run_guesses(tail, included, delta=1e-5)
    assert top <= 100 and bottom == 0
