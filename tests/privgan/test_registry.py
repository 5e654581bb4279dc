"""The registry: every registered DP generator follows `DPGenerator` and states a `PrivacyStatement`, and the
registry alone decides what `import privgan` exposes and imports."""

import functools
import json

import keras
import numpy as np
import pandas as pd
import pytest

import privgan
from privgan import registry
from privgan.accounting.statement import PrivacyStatement
from privgan.models.architectures import mlp_discriminator, mlp_generator
from privgan.tabular import CategoricalColumn, NumericColumn, TableSchema

DELTA = 1e-5
SCHEMA = TableSchema((NumericColumn("age", 18, 90, integer=True), CategoricalColumn("label", ("yes", "no"))))


def _table(rows=60):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"age": rng.integers(18, 91, rows), "label": rng.choice(["yes", "no"], rows).astype(object)})


@functools.cache
def _dpgan():
    gan = privgan.DPGAN(mlp_generator(output_shape=(3,), latent_dim=2, hidden=(4,)),
                        mlp_discriminator(input_shape=(3,), hidden=(4,)), l2_norm_clip=1.0, noise_multiplier=1.0,
                        num_examples=16, expected_batch_size=8, seed=0)
    gan.compile()
    gan.fit(np.random.default_rng(0).uniform(size=(16, 3)).astype("float32"), epochs=1, delta=DELTA, verbose=0)
    return gan, {"delta": DELTA}, "npz"


@functools.cache
def _mean_embedding():
    model = privgan.MeanEmbeddingGenerator(mlp_generator(output_shape=(3,), latent_dim=2, hidden=(4,)),
                                           num_features=16, batch_size=4, noise_multiplier=5.0, seed=0)
    model.compile()
    model.fit(np.random.default_rng(0).uniform(size=(16, 3)).astype("float32"), epochs=1, steps_per_epoch=1,
              delta=DELTA, verbose=0)
    return model, {"delta": DELTA}, "npz"


@functools.cache
def _tabular_gan():
    synthesizer = privgan.TabularDPSynthesizer(SCHEMA, epochs=1, batch_size=20, generator_hidden=(4,),
                                               discriminator_hidden=(4,), accountant="rdp", seed=0)
    # Rows enough that the noisy row count (the secret noise differs each run) never falls below the batch.
    return synthesizer.fit(_table(400), epsilon=3.0, delta=DELTA, verbose=0), {}, "csv"


@functools.cache
def _marginal():
    synthesizer = privgan.MarginalDPSynthesizer(SCHEMA, method="mst", seed=0, iterations=50, bins=4, max_bins=4)
    return synthesizer.fit(_table(), epsilon=3.0, delta=DELTA), {}, "csv"


# A small fitted instance of each registered generator (made once), the arguments of its `privacy_statement`
# and the suffix of its `save_synthetic` file.
FITTED = {"DPGAN": _dpgan, "MeanEmbeddingGenerator": _mean_embedding, "TabularDPSynthesizer": _tabular_gan,
          "MarginalDPSynthesizer": _marginal}


def test_every_registered_generator_has_a_small_fitted_example_here():
    assert sorted(registry.generator_classes()) == sorted(FITTED)


@pytest.mark.parametrize("name", sorted(FITTED))
def test_a_registered_generator_follows_the_protocol_and_states_a_privacy_statement(name, tmp_path):
    cls = registry.generator_classes()[name]
    assert issubclass(cls, registry.DPGenerator)
    keras.utils.set_random_seed(0)
    generator, arguments, suffix = FITTED[name]()
    assert isinstance(generator, cls) and isinstance(generator, registry.DPGenerator)
    statement = generator.privacy_statement(**arguments)
    assert isinstance(statement, PrivacyStatement) and 0 < statement.epsilon < 10 and statement.delta == DELTA
    assert PrivacyStatement.from_dict(json.loads(json.dumps(statement.to_dict(), allow_nan=False))) == statement
    assert statement.summary().startswith("epsilon = ")
    data_path, statement_path = generator.save_synthetic(tmp_path / f"synthetic.{suffix}", 4, **arguments)
    written = json.loads(statement_path.read_text())
    assert data_path.is_file() and set(statement.to_dict()) < set(written)


def test_the_former_privacy_report_is_a_deprecated_alias_returning_the_dict():
    gan, arguments, _ = _dpgan()
    with pytest.warns(DeprecationWarning, match="use privacy_statement"):
        former = gan.privacy_report(**arguments)
    current = gan.privacy_statement(**arguments).to_dict()
    assert isinstance(former, dict) and {**former, "date": None} == {**current, "date": None}


def test_the_registry_alone_sets_the_public_names_and_the_modules_imported_at_once():
    assert privgan._API == registry.public_names()
    assert privgan.SAVEABLE_MODULES == tuple(entry.module for entry in registry.ENTRIES if entry.saveable)
    assert set(privgan.__all__) == set(registry.public_names()) | {"__version__"}
    for name in registry.generator_classes():
        assert name in privgan._API
    extra = registry.Entry("privgan.models.extra", names=("Extra",), generators=("Extra",), saveable=True)
    assert registry.saveable_modules((*registry.ENTRIES, extra))[-1] == "privgan.models.extra"
    assert registry.public_names((*registry.ENTRIES, extra))["Extra"] == "privgan.models.extra"
    with pytest.raises(ValueError, match="privgan.DPGAN is claimed by both"):
        registry.public_names((*registry.ENTRIES, registry.Entry("privgan.other", names=("DPGAN",))))
    with pytest.raises(ValueError, match="generators must be among names"):
        registry.Entry("privgan.other", generators=("Other",))
