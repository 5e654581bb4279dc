import numpy as np
import pytest

from privgan.audit import evaluate_attack, plot_roc


def test_hand_computed_example():
    # Thresholds 0.8 / 0.4 / 0.35 / 0.1 give (FPR, TPR) = (0, .5), (.5, .5), (.5, 1), (1, 1).
    result = evaluate_attack([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], attack="toy")
    assert result.auc == pytest.approx(0.75)
    assert result.max_advantage == pytest.approx(0.5)
    assert result.tpr_at_fpr == {0.001: 0.5, 0.01: 0.5}
    assert result.top_k_precision() == pytest.approx(0.5)
    assert result.top_k_precision(1) == 1.0
    assert (result.num_members, result.num_non_members) == (2, 2)


def test_perfect_and_inverted_scores():
    is_member = np.arange(100) < 50
    perfect = evaluate_attack(is_member.astype(float), is_member, attack="perfect")
    assert perfect.auc == 1.0 and perfect.max_advantage == 1.0
    assert perfect.tpr_at_fpr[0.001] == 1.0
    inverted = evaluate_attack(-is_member.astype(float), is_member, attack="inverted")
    assert inverted.auc == 0.0
    # Advantage is |TPR - FPR|: an attack that is always wrong is as informative as one always right.
    assert inverted.max_advantage == 1.0


def test_random_scores_are_at_chance():
    rng = np.random.default_rng(0)
    result = evaluate_attack(rng.normal(size=20_000), rng.random(20_000) < 0.5, attack="random")
    assert abs(result.auc - 0.5) < 0.02
    assert result.max_advantage < 0.03
    assert result.tpr_at_fpr[0.01] < 0.03


def test_summary_and_plot(tmp_path):
    rng = np.random.default_rng(1)
    is_member = rng.random(500) < 0.5
    good = evaluate_attack(is_member + rng.normal(size=500), is_member, attack="good")
    bad = evaluate_attack(rng.normal(size=500), is_member, attack="bad")
    text = good.summary()
    assert "good" in text and f"AUC {good.auc:.3f}" in text and "TPR@FPR=0.1%" in text
    figure = plot_roc([good, bad])
    axes = figure.axes[0]
    assert len(axes.lines) == 3  # two attacks and chance
    assert axes.get_xscale() == "log"
    figure.savefig(tmp_path / "roc.png")
    assert (tmp_path / "roc.png").stat().st_size > 0
    assert len(plot_roc(good, log_scale=False).axes[0].lines) == 2


@pytest.mark.parametrize(
    "scores,is_member,match",
    [
        ([1.0, 2.0], [1, 1], "both members and non-members"),
        ([1.0, np.nan], [0, 1], "finite"),
        ([1.0, 2.0, 3.0], [0, 1], "equal length"),
        ([1.0, 2.0], [0, 2], "booleans"),
    ],
)
def test_bad_input(scores, is_member, match):
    with pytest.raises(ValueError, match=match):
        evaluate_attack(scores, is_member, attack="x")


def test_top_k_precision_range():
    result = evaluate_attack([0.0, 1.0], [0, 1], attack="x")
    with pytest.raises(ValueError, match="k must be in"):
        result.top_k_precision(3)
