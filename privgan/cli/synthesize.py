r"""privgan-synthesize: a differentially private synthetic copy of a CSV table, with its privacy statement.

  privgan-synthesize --csv=private.csv --schema=schema.json --epsilon=3 --delta=1e-6 --rows=10000 \
      --output=synthetic.csv

Trains a DPGAN (`privgan.tabular.TabularDPSynthesizer`) on the rows of --csv within the budget
(--epsilon, --delta) and writes --rows synthetic rows to --output and the privacy statement (epsilon from
the accountant, delta, noise multiplier, clipping norm, sampling probability, discriminator steps, the
schema) to the same path with suffix .json. The schema (JSON, see `privgan.tabular.TableSchema.to_dict`)
gives the column types, numeric bounds and category sets; it must be written from public knowledge, not
read from the private file. Empty cells are missing values.

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
flags.DEFINE_integer("epochs", 20, "Training epochs (each round(rows / batch_size) Poisson-sampled D steps).")
flags.DEFINE_integer("batch_size", 256, "Expected Poisson batch size of a discriminator step.")
flags.DEFINE_float("l2_norm_clip", 1.0, "Clipping norm of each row's discriminator gradient.")
flags.DEFINE_enum("accountant", "pld", ["pld", "rdp"], "Privacy accountant.")
flags.DEFINE_integer("seed", None, "Seed of initialisation, sampling and generation (default random; the DP noise is always secret).")


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    from privgan.accounting.events import check_count, check_delta, check_positive
    from privgan.tabular import SchemaError, TabularDPSynthesizer, load_schema, read_csv

    output = pathlib.Path(FLAGS.output)
    try:
        # Cheap checks first, so that a typo costs no training time.
        epsilon = check_positive(FLAGS.epsilon, name="--epsilon")
        delta = check_delta(FLAGS.delta)
        rows = check_count(FLAGS.rows, name="--rows", minimum=1)
        if output.suffix.lower() != ".csv":
            raise ValueError(f"--output must end in .csv, got {str(output)!r}")
        schema = load_schema(FLAGS.schema)
        table = read_csv(FLAGS.csv, schema)
        synthesizer = TabularDPSynthesizer(
            schema,
            epochs=FLAGS.epochs,
            batch_size=FLAGS.batch_size,
            l2_norm_clip=FLAGS.l2_norm_clip,
            accountant=FLAGS.accountant,
            seed=FLAGS.seed,
        )
        synthesizer.fit(table, epsilon=epsilon, delta=delta, verbose=2)
        csv_path, statement_path = synthesizer.save(output, rows=rows)
    except (SchemaError, ValueError, FileNotFoundError) as error:
        _fail(str(error))
    statement = json.loads(statement_path.read_text(encoding="utf-8"))
    print(
        f"wrote {rows} synthetic rows to {csv_path} and the privacy statement to {statement_path}: "
        f"epsilon = {statement['epsilon']:.4f} at delta = {delta:g} ({FLAGS.accountant.upper()}), "
        f"{statement['d_steps']} discriminator steps, noise multiplier {statement['noise_multiplier']:.4f}"
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
