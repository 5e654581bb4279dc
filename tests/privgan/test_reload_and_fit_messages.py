"""Saved models load after `import privgan` ready to fit; clear refusals; sigma calibrated in make_private's
fit; epsilon without a delta; true messages about the budget."""

import ast
import json
import logging
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from privgan.dp import make_private
from tests.privgan.models.gans import data, make_gan

ROOT = pathlib.Path(__file__).resolve().parents[2]
X = np.random.default_rng(0).normal(size=(40, 5)).astype("float32")
Y = np.arange(40) % 3
SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(3)])


def _private(**kwargs):
    model = make_private(_mlp(), l2_norm_clip=1.0, num_examples=40, expected_batch_size=8,
                         **{"noise_multiplier": 1.0, **kwargs})
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=SCE, metrics=["accuracy"])
    return model


_LOAD_AND_TRAIN = """
import json, sys, warnings
import numpy as np
import keras, privgan
registered = sorted(name for name in keras.saving.get_custom_objects() if name.startswith("privgan>"))
model = keras.models.load_model(sys.argv[1])
x, y = np.load(sys.argv[3])["x"], np.load(sys.argv[3])["y"]
before = model.privacy_ledger.total_steps
evaluated = model.evaluate(x, y, verbose=0, return_dict=True)
model.fit(x, y, epochs=1, delta=1e-5, verbose=0)
gan = keras.models.load_model(sys.argv[2])
print(json.dumps({"registered": registered, "steps_before": before, "steps_after": model.privacy_ledger.total_steps,
                  "metrics": sorted(evaluated), "gan_steps": gan.privacy_ledger.total_steps}))
"""


def test_saved_models_load_in_a_new_process_after_import_privgan_ready_to_fit(tmp_path):
    model = _private()
    model.fit(X, Y, epochs=1, delta=1e-5, verbose=0)
    with _no_unbuilt_warning():
        model.save(tmp_path / "dp.keras")
    gan_x, gan_y = data()
    gan = make_gan()
    gan.fit(gan_x, gan_y, epochs=1, verbose=0)
    gan.save(tmp_path / "gan.keras")
    np.savez(tmp_path / "data.npz", x=X, y=Y)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_TRAIN, str(tmp_path / "dp.keras"), str(tmp_path / "gan.keras"),
         str(tmp_path / "data.npz")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["steps_after"] == out["steps_before"] + 5  # compiled as saved: fit continues the ledger
    assert {"accuracy", "loss"} <= set(out["metrics"])
    assert out["gan_steps"] == gan.privacy_ledger.total_steps
    # Every class privgan registers for saving is registered by `import privgan` alone.
    declared = set()
    for path in (ROOT / "privgan").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any("register_keras_serializable" in ast.unparse(d)
                                                      for d in node.decorator_list):
                declared.add(f"privgan>{node.name}")
    assert declared and declared <= set(out["registered"])


class _no_unbuilt_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self._records = self._catch.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not any("not yet been built" in str(r.message) for r in self._records)


def test_an_unbuilt_model_is_refused():
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="is not built: give it an input shape"):
        make_private(unbuilt, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=40, expected_batch_size=8)


def test_fit_before_compile_is_refused_clearly():
    model = make_private(_mlp(), l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=40, expected_batch_size=8)
    with pytest.raises(ValueError, match="compile the model"):
        model.fit(X, Y, epochs=1, verbose=0)


def test_make_private_calibrates_sigma_in_fit_like_dpgan():
    model = _private(noise_multiplier=None)
    model.fit(X, Y, epochs=2, target_epsilon=3.0, delta=1e-5, accountant="rdp", verbose=0)
    assert model.privacy_ledger.total_steps == 10
    assert 0.99 * 3.0 <= model.privacy_spent(delta=1e-5, accountant="rdp") <= 3.0
    assert model.get_config()["noise_multiplier"] == model.dp_config.noise_multiplier
    with pytest.raises(ValueError, match="needs target_epsilon"):
        _private(noise_multiplier=None).fit(X, Y, epochs=1, verbose=0)


def test_fit_without_delta_logs_epsilon_at_a_stated_default(caplog):
    with caplog.at_level(logging.WARNING):
        history = _private().fit(X, Y, epochs=1, verbose=0)
    assert "epsilon is logged at delta = 1 / N^1.1 = 0.0173" in caplog.text
    assert history.history["epsilon"][0] > 0


def test_budget_messages_are_true(caplog, capsys):
    # Calibrated for exactly the planned steps: every epoch runs, nothing is "stopped".
    with caplog.at_level(logging.WARNING):
        _private(noise_multiplier=None).fit(X, Y, epochs=2, target_epsilon=3.0, delta=1e-5, verbose=2)
    assert "stopping training" not in caplog.text
    assert "10 DP steps planned (2 epochs of 5)" in capsys.readouterr().out
    # A budget smaller than the plan: said before training, and the stop is reported.
    with caplog.at_level(logging.WARNING):
        _private(noise_multiplier=2.0).fit(X, Y, epochs=30, target_epsilon=1.0, delta=1e-5, accountant="rdp",
                                           verbose=2)
    plan = capsys.readouterr().out
    assert "150 DP steps planned (30 epochs of 5)" in plan and "training will stop after" in plan
    assert "stopping training" in caplog.text


def _unregistered_loss(y_true, y_pred):
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


def test_a_model_compiled_with_an_unregistered_loss_loads_uncompiled_with_a_warning(tmp_path):
    model = make_private(_mlp(), l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=40, expected_batch_size=8)
    model.compile(optimizer="sgd", loss=_unregistered_loss)
    model.save(tmp_path / "m.keras")
    with pytest.warns(UserWarning, match="call compile\\(\\) before fit"):
        loaded = keras.models.load_model(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="compile the model"):
        loaded.fit(X, Y, epochs=1, verbose=0)
