r"""privgan-synthesize: a differentially private synthetic copy of a CSV table, with its privacy statement.

  privgan-synthesize --csv=private.csv --schema=schema.json --epsilon=3 --delta=1e-6 --rows=10000 \
      --output=synthetic.csv

Fits a private synthesizer to the rows of --csv within the budget (--epsilon, --delta) and writes --rows
synthetic rows to --output and the privacy statement (epsilon from the accountant, delta, every noisy
release in the ledger, the settings used, the schema) to the same path with suffix .json. The schema
(JSON, see `privgan.tabular.TableSchema.to_dict`) gives the column types, numeric bounds and category
sets; it must be written from public knowledge, not read from the private file. Empty cells are missing
values.

--method chooses the engine: "aim" (default) and "mst" fit a graphical model to noisy marginal counts
(`privgan.tabular.MarginalDPSynthesizer`, RDP accountant); "gan" trains a DPGAN
(`privgan.tabular.TabularDPSynthesizer`), whose epochs, batch size and learning rate follow the number
of rows unless given. AIM is the default; the README compares the three engines (and smartnoise-synth's
MST and AIM) on tables of 398 to 32,561 rows (`benchmarks/tabular_peers.py`). --condition column=value
(repeatable) makes every row take that value and draws the other columns from the model's conditional
distribution (aim and mst).

Bad input (missing or extra columns, a value outside the schema, an unknown category, a missing value
where the schema does not allow one, epsilon <= 0, ...) stops with one error message naming the column and
value, before any training, and no output file is written. Also runs as `python -m privgan.cli.synthesize`.
"""

import json
import pathlib
import sys

from absl import app, flags

_PROGRAM = "privgan-synthesize"

FLAGS = flags.FLAGS
flags.DEFINE_string("csv", None, "The private table (CSV with a header row).", required=True)
flags.DEFINE_string("schema", None, "The public schema of the table (JSON).", required=True)
flags.DEFINE_float("epsilon", None, "Privacy budget epsilon of the whole training, > 0.", required=True)
flags.DEFINE_float("delta", None, "delta of the budget; keep it well below 1 / number of rows.", required=True)
flags.DEFINE_integer("rows", None, "Number of synthetic rows to write.", required=True)
flags.DEFINE_string("output", None, "The synthetic CSV to write; the statement goes beside it (.json).", required=True)
flags.DEFINE_enum("method", "aim", ["aim", "mst", "gan"], "Synthesizer: aim, mst (noisy marginals) or gan (DPGAN).")
flags.DEFINE_multi_string(
    "condition", [], "column=value that every synthetic row takes (repeatable; aim and mst; empty value: missing)."
)
flags.DEFINE_integer("epochs", None, "gan: training epochs (each round(rows / batch_size) D steps); default from rows.")
flags.DEFINE_integer("batch_size", None, "gan: expected Poisson batch size of a D step; default from rows.")
flags.DEFINE_float("learning_rate", None, "gan: Adam learning rate of D and G; default from the batch size.")
flags.DEFINE_float("l2_norm_clip", 1.0, "gan: clipping norm of each row's discriminator gradient.")
flags.DEFINE_enum(
    "accountant", None, ["pld", "rdp"], "Privacy accountant (default pld for gan; aim and mst need rdp)."
)
flags.DEFINE_integer("seed", None, "Seed of initialisation, sampling and generation (default random; the DP noise is always secret).")


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    from privgan.accounting.events import check_count, check_delta, check_positive
    from privgan.tabular import MarginalDPSynthesizer, SchemaError, TabularDPSynthesizer, load_schema, read_csv
    from privgan.tabular.conditions import parse_condition

    output = pathlib.Path(FLAGS.output)
    try:
        # Cheap checks first, so that a typo costs no training time.
        epsilon = check_positive(FLAGS.epsilon, name="--epsilon")
        delta = check_delta(FLAGS.delta)
        rows = check_count(FLAGS.rows, name="--rows", minimum=1)
        if output.suffix.lower() != ".csv":
            raise ValueError(f"--output must end in .csv, got {str(output)!r}")
        marginal = FLAGS.method in ("aim", "mst")
        gan_flags = {"epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size, "learning_rate": FLAGS.learning_rate}
        if marginal and any(value is not None for value in gan_flags.values()):
            given = ", ".join(f"--{name}" for name, value in gan_flags.items() if value is not None)
            raise ValueError(f"{given} only apply to --method=gan, not --method={FLAGS.method}")
        if marginal and FLAGS.accountant == "pld":
            raise ValueError(
                f"--method={FLAGS.method} needs --accountant=rdp: its selections are zCDP events, which "
                "dp-accounting's PLD accountant does not take"
            )
        schema = load_schema(FLAGS.schema)
        conditions = dict(parse_condition(text, schema) for text in FLAGS.condition)
        if conditions and not marginal:
            raise ValueError("--condition needs --method=aim or --method=mst: the DPGAN cannot condition on a value")
        table = read_csv(FLAGS.csv, schema)
        if marginal:
            synthesizer = MarginalDPSynthesizer(schema, method=FLAGS.method, seed=FLAGS.seed)
            synthesizer.fit(table, epsilon=epsilon, delta=delta)
        else:
            synthesizer = TabularDPSynthesizer(
                schema, l2_norm_clip=FLAGS.l2_norm_clip, accountant=FLAGS.accountant or "pld", seed=FLAGS.seed,
                **gan_flags,
            )
            synthesizer.fit(table, epsilon=epsilon, delta=delta, verbose=2)
        csv_path, statement_path = synthesizer.save(output, rows=rows, conditions=conditions)
    except (SchemaError, ValueError, FileNotFoundError, ImportError) as error:
        _fail(str(error))
    statement = json.loads(statement_path.read_text(encoding="utf-8"))
    if marginal:
        details = f"{statement['measurements']} noisy marginals, {statement['selections']} selections ({FLAGS.method})"
    else:
        details = (
            f"{statement['d_steps']} discriminator steps, noise multiplier {statement['noise_multiplier']:.4f} "
            f"(batch {statement['settings']['batch_size']}, {statement['settings']['epochs']} epochs)"
        )
    print(
        f"wrote {rows} synthetic rows to {csv_path} and the privacy statement to {statement_path}: "
        f"epsilon = {statement['epsilon']:.4f} at delta = {delta:g} ({statement['accountant'].upper()}), {details}"
    )


def _parse_flags(argv):
    try:
        return FLAGS(argv)
    except flags.Error as error:
        _fail(str(error))


def _fail(message):
    sys.exit(f"{_PROGRAM}: error: {message}")


def run():
    """Console entry point (`privgan-synthesize`)."""
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
