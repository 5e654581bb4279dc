"""The SSGAN experiment's per-path configs: made from the flags, and a bad value is one error naming the field."""

import dataclasses
import types

import pytest

from experiments.ssgan_configs import BaselineConfig, DPGANConfig, ScatteringConfig, SSGANConfig


def _flags(**overrides):
    """Parsed flags as absl gives them (list flags as strings): every field's default under its own name."""
    values = {}
    for config in (SSGANConfig, ScatteringConfig, DPGANConfig, BaselineConfig):
        for field in dataclasses.fields(config):
            default = field.default
            values.setdefault(field.name, [str(v) for v in default] if isinstance(default, tuple) else default)
    return types.SimpleNamespace(**{**values, **overrides})


def test_each_path_reads_its_own_flags():
    flags = _flags(epochs=7, dp_epochs=2, d_hidden=["30", "20"], dp_batch_size=64)
    assert SSGANConfig.from_flags(flags).epochs == 7 and SSGANConfig.from_flags(flags).d_hidden == (30, 20)
    assert DPGANConfig.from_flags(flags).epochs == 2 and DPGANConfig.from_flags(flags).batch_size == 64
    assert ScatteringConfig.from_flags(flags).batch_size == 64
    assert BaselineConfig.from_flags(flags) == BaselineConfig()


@pytest.mark.parametrize("config, field, value", [
    (SSGANConfig, "epochs", 0), (SSGANConfig, "ema_momentum", 1.0), (SSGANConfig, "architecture", "cnn"),
    (SSGANConfig, "d_hidden", (10, 0)), (ScatteringConfig, "delta", 0.0), (DPGANConfig, "feature_l2_norm_clip", 2.0),
    (DPGANConfig, "labelled_gradient", "every"), (BaselineConfig, "baseline_steps", True),
    (ScatteringConfig, "release_share", 1.0), (ScatteringConfig, "student_epochs", -1),
    (ScatteringConfig, "gan_weight", -0.5),
])
def test_a_bad_value_is_one_error_naming_the_field(config, field, value):
    with pytest.raises(ValueError, match=rf"^{config.__name__}\.{field} must be .*got"):
        config(**{field: value})


def test_a_bad_flag_is_refused_before_training():
    with pytest.raises(ValueError, match=r"DPGANConfig\.learning_rate must be a number in \(0, inf\)"):
        DPGANConfig.from_flags(_flags(dp_learning_rate=-1.0))
