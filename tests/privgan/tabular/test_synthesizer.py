import json

import dp_accounting
import numpy as np
import pytest

from privgan.accounting.events import dp_sgd_event, epsilon_of_event
from privgan.tabular import (
    SchemaError,
    TableTransformer,
    TabularDPSynthesizer,
    infer_schema,
    read_csv,
    validate_frame,
)
from tests.privgan.tabular.tables import SCHEMA, make_table

ROWS, BATCH, EPOCHS, DELTA = 300, 60, 2, 1e-4


@pytest.fixture(scope="module")
def fitted():
    synthesizer = TabularDPSynthesizer(
        SCHEMA, epochs=EPOCHS, batch_size=BATCH, generator_hidden=(16,), discriminator_hidden=(16,), seed=3
    )
    return synthesizer.fit(make_table(ROWS), epsilon=5.0, delta=DELTA, verbose=0)


def _planned_steps(synthesizer):
    # The training is sized by the noisy count of the rows, not by ROWS.
    return EPOCHS * round(synthesizer.num_rows_estimate_ / BATCH)


def test_statement_matches_the_accountant(fitted):
    statement = fitted.privacy_statement()
    steps, rows = _planned_steps(fitted), statement["num_rows_estimate"]
    assert statement["d_steps"] == steps
    assert statement["sampling_probability"] == pytest.approx(BATCH / rows)
    event = dp_accounting.ComposedDpEvent([
        dp_accounting.GaussianDpEvent(fitted.count_noise_multiplier_),
        dp_sgd_event(noise_multiplier=statement["noise_multiplier"], sampling_probability=BATCH / rows, steps=steps),
    ])
    assert statement["epsilon"] == pytest.approx(epsilon_of_event(event, delta=DELTA), rel=1e-9)
    assert 4.5 < statement["epsilon"] <= 5.0  # calibrated to spend the budget, never more
    assert statement["schema"] == SCHEMA.to_dict() and statement["schema_source"] == "public"
    assert "warning" not in statement


def test_samples_fit_the_schema(fitted):
    synthetic = fitted.sample(200)
    validate_frame(synthetic, SCHEMA)
    assert list(synthetic.columns) == list(SCHEMA.names)
    assert synthetic["age"].dtype == np.int64
    assert synthetic["colour"].nunique(dropna=False) >= 2  # Gumbel sampling: not one mode per column


def test_the_gan_refuses_conditions(fitted):
    # Rejecting unconditional rows would be the only way, and it is not conditioning: refused, with the way out.
    with pytest.raises(ValueError, match="cannot sample conditionally; use method 'aim' or 'mst'"):
        fitted.sample(5, conditions={"label": "yes"})
    assert len(fitted.sample(5, conditions={})) == 5


def test_save_writes_csv_and_statement(fitted, tmp_path):
    csv_path, statement_path = fitted.save(tmp_path / "out" / "synthetic.csv", rows=40)
    assert statement_path == tmp_path / "out" / "synthetic.json"
    table = read_csv(csv_path, SCHEMA)
    assert len(validate_frame(table, SCHEMA)) == 40
    statement = json.loads(statement_path.read_text())
    assert statement["num_rows"] == 40 and statement["data_file"] == "synthetic.csv"
    exact = fitted.privacy_statement()
    # Floats rounded to 6 significant digits, epsilon up and sigma down: never a stronger-looking guarantee.
    assert exact["epsilon"] <= statement["epsilon"] == pytest.approx(exact["epsilon"], rel=1e-5)
    assert (exact["noise_multiplier"] >= statement["noise_multiplier"]
            == pytest.approx(exact["noise_multiplier"], rel=1e-5))
    assert len(repr(statement["sampling_probability"])) <= 8
    steps = _planned_steps(fitted)
    assert statement["training"] == {"epochs_requested": EPOCHS, "epochs_run": EPOCHS, "d_steps_planned": steps,
                                     "d_steps_taken": steps, "stopped_by_budget": False}
    # seed=3 seeds initialisation and latents, never the sampling.
    assert statement["noise_seeding"].startswith("secret") and statement["sampling_seeding"].startswith("secret")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["synthetic.csv", "synthetic.json"]


def test_save_refuses_other_suffixes_and_leaves_no_file(fitted, tmp_path):
    with pytest.raises(ValueError, match="must end in .csv"):
        fitted.save(tmp_path / "synthetic.txt", rows=5)
    assert list(tmp_path.iterdir()) == []


def test_encoding_reads_no_statistic_of_the_data():
    # Each row's encoding depends on that row and the schema alone, not on the other rows (no min/max,
    # no category list, no normalisation statistics): encoding rows one by one gives the same result.
    table = make_table(20)
    narrow = table[table["colour"] == "red"].reset_index(drop=True)  # categories and ranges missing from the data
    transformer = TableTransformer(SCHEMA)
    together = transformer.encode(narrow, dtype="float64")
    alone = np.concatenate([transformer.encode(narrow.iloc[[i]], dtype="float64") for i in range(len(narrow))])
    np.testing.assert_array_equal(together, alone)
    assert transformer.width == TableTransformer(SCHEMA).width  # set by the schema's 3 colours, not the 1 seen


def test_fit_rejects_bad_input_before_training():
    synthesizer = TabularDPSynthesizer(SCHEMA, epochs=1, batch_size=10)
    table = make_table(30)
    table.loc[4, "colour"] = "purple"
    with pytest.raises(SchemaError, match="column 'colour': unknown category 'purple' at row 4"):
        synthesizer.fit(table, epsilon=1.0, delta=1e-5)
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0, got 0"):
        synthesizer.fit(make_table(30), epsilon=0, delta=1e-5)
    with pytest.raises(RuntimeError, match="call fit"):
        synthesizer.sample(3)


def test_fit_with_an_inferred_schema_warns():
    table = make_table(30)
    with pytest.warns(UserWarning):
        schema = infer_schema(table, i_understand_this_is_not_private=True)
    synthesizer = TabularDPSynthesizer(schema, epochs=1, batch_size=31, count_fraction=0)
    # The warning comes first; the batch size larger than the table then stops fit before any training.
    with pytest.warns(UserWarning, match="source='data'"), pytest.raises(ValueError, match="batch_size must be in"):
        synthesizer.fit(table, epsilon=1.0, delta=1e-5)


def test_generator_average_is_the_moving_average_of_the_iterates():
    import types

    from privgan.tabular import tabular_generator
    from privgan.tabular.synthesizer import GeneratorAverage

    generator = tabular_generator(TableTransformer(SCHEMA), latent_dim=2, hidden=(3,))
    kernel = generator.get_layer("logits").kernel
    start = kernel.numpy().copy()
    callback = GeneratorAverage(0.5)
    callback.set_model(types.SimpleNamespace(generator=generator))
    callback.on_train_begin()
    for value in (1.0, 3.0):
        kernel.assign(np.full(kernel.shape, value, dtype="float32"))
        callback.on_train_batch_end(0)
    callback.on_train_end()
    np.testing.assert_allclose(kernel.numpy(), 0.25 * start + 0.25 * 1.0 + 0.5 * 3.0, rtol=1e-6)
    with pytest.raises(ValueError, match="decay must be in"):
        GeneratorAverage(1.0)


def test_gan_settings_adapt_to_the_table():
    from privgan.tabular import gan_settings

    def d_steps(settings, rows):
        return settings.epochs * round(rows / settings.batch_size)

    small, large = gan_settings(500), gan_settings(50_000)
    assert (small.batch_size, large.batch_size) == (64, 1024)
    # The same training length whatever the size: 1,500 D steps, not 20 epochs (8 steps per epoch at 500 rows).
    assert abs(d_steps(small, 500) - 1500) <= 10 and abs(d_steps(large, 50_000) - 1500) <= 30
    assert small.learning_rate == 2.5e-4 and large.learning_rate == pytest.approx(1e-3)
    assert small.adaptive == ("epochs", "batch_size", "learning_rate")
    given = gan_settings(500, epochs=3, batch_size=100, learning_rate=0.01)
    assert (given.epochs, given.batch_size, given.learning_rate, given.adaptive) == (3, 100, 0.01, ())


def test_fit_uses_and_states_the_adaptive_settings():
    synthesizer = TabularDPSynthesizer(SCHEMA, d_steps=12, generator_hidden=(8,), discriminator_hidden=(8,), seed=0,
                                       count_fraction=0)
    synthesizer.fit(make_table(700), epsilon=2.0, delta=DELTA, verbose=0)
    statement = synthesizer.privacy_statement()
    settings = statement["settings"]
    assert settings["batch_size"] == 64 and settings["adaptive"] == ["epochs", "batch_size", "learning_rate"]
    assert statement["d_steps"] == settings["epochs"] * round(700 / 64) == 11
    assert statement["sampling_probability"] == pytest.approx(64 / 700) and statement["epsilon"] <= 2.0
    assert statement["num_examples"] == 700 and "declared public (count_fraction=0)" in statement["guarantee"]


def test_the_number_of_rows_is_private_by_default(fitted):
    # The statement publishes a noisy count charged to the ledger, never the exact N (as DP-MERF and AIM).
    statement = fitted.privacy_statement()
    assert "num_examples" not in statement and "treated as public" not in statement["guarantee"]
    first = statement["ledger"]["phases"][0]
    assert first["release"]["event"] == "GaussianDpEvent" and "noisy count of the rows" in first["description"]
    assert statement["num_rows_estimate"] == fitted.num_rows_estimate_ and statement["expected_batch_size"] == BATCH
    with pytest.raises(ValueError, match=r"count_fraction must be in \[0, 1\)"):
        TabularDPSynthesizer(SCHEMA, count_fraction=1.0)


def test_a_fixed_sampling_seed_is_its_own_argument_and_says_what_it_costs():
    synthesizer = TabularDPSynthesizer(SCHEMA, epochs=1, batch_size=20, generator_hidden=(4,),
                                       discriminator_hidden=(4,), seed=0, sampling_seed=1, count_fraction=0)
    with pytest.warns(UserWarning, match="does not hold against anyone who knows it"):
        synthesizer.fit(make_table(40), epsilon=5.0, delta=DELTA, verbose=0)
    assert not synthesizer.privacy_statement()["sampling_seeding"].startswith("secret")
