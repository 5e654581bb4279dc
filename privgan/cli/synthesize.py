r"""privgan-synthesize: a differentially private synthetic copy of a CSV table, with its privacy statement.

  privgan-synthesize --csv=private.csv --schema=schema.json --epsilon=3 --delta=1e-6 --output=release/synthetic.csv

Fits a private synthesizer to the rows of --csv within the budget (--epsilon, --delta) and writes --rows
synthetic rows (default: as many as the noisy count of the private rows, which is part of the release;
the exact number of rows is private) to --output and the privacy statement (epsilon from the accountant, delta,
every noisy release in the ledger, the settings used, the schema) to the same path with suffix .json. The schema
(JSON, see `privgan.tabular.TableSchema.to_dict`) gives the column types, numeric bounds and category
sets; it must be written from public knowledge, not read from the private file. Empty cells are missing
values.

--method chooses the engine: "aim" (default) and "mst" fit a graphical model to noisy marginal counts
(`privgan.tabular.MarginalDPSynthesizer`, RDP accountant); "gan" trains a DPGAN
(`privgan.tabular.TabularDPSynthesizer`), whose epochs, batch size and learning rate follow the number
of the noisy count of rows unless given. AIM is the default; the README compares the three engines and
smartnoise-synth's MST (`benchmarks/tabular_peers.py`) on breast cancer (398 training rows) and a 1,000-row sample of
UCI Adult at epsilon 1 and 8, where the marginal engines are well ahead of the DPGAN. --condition column=value
(repeatable) makes every row take that value and draws the other columns from the model's conditional
distribution (aim and mst).

To try it, `privgan-synthesize --write_example=example` writes example/breast_cancer.csv (scikit-learn's
breast-cancer table, 569 rows) and example/breast_cancer.schema.json, and prints the command to run on them.

A schema with a numeric, an integer and a categorical column (bounds and categories from a codebook, never
from the data; "transform": "log1p" suits heavy-tailed columns such as incomes; "nullable": true allows
empty cells):

  {"columns": [
    {"type": "numeric", "name": "mean radius", "lower": 0, "upper": 60},
    {"type": "numeric", "name": "age", "lower": 18, "upper": 100, "integer": true, "nullable": true},
    {"type": "categorical", "name": "diagnosis", "categories": ["malignant", "benign"]}]}

The console shows the epsilon spent after each epoch, never training losses (a loss is a noiseless
statistic of the private rows). --sampling_seed fixes the DPGAN's Poisson sampling for research; the
guarantee then does not hold against anyone who knows it. --seed never seeds the sampling or the noise.

--fidelity_report=FOLDER writes a fidelity report for the data owner (<name>.PRIVATE-fidelity.md with two
PNG figures) into FOLDER, which must lie outside --output's folder: it compares the synthetic table with
the private one (marginals, pairwise associations, a TSTR estimate for --label), so it is NOT covered by
the guarantee: keep it, do not publish it.

Everything is checked before training: bad input (missing or misspelled columns, a value outside the
schema, an unknown category, a missing value where the schema does not allow one, epsilon <= 0, an output
that cannot be written (a file is created and removed there first), that is one of the inputs (never
written over, even with --overwrite), or that would replace an earlier release without --overwrite) stops
with one error message naming the column, value and line, and no file is written. A second run on the same private data
spends a second privacy budget. Also runs as `python -m privgan.cli.synthesize`.

Images: --input=FOLDER (one subfolder of PNG/JPEG files per class) or --input=FILE.npz (x, y) with --epsilon,
--delta and --output=NAME.npz; see `privgan.cli.synthesize_images` and the DP images guide.
"""

import json
import pathlib
import warnings

from absl import flags

from privgan.cli import command, synthesize_images

_PROGRAM = "privgan-synthesize"
_REQUIRED = ("csv", "schema", "epsilon", "delta", "output")  # unless --write_example

FLAGS = flags.FLAGS
flags.DEFINE_string("csv", None, "The private table (CSV with a header row).")
flags.DEFINE_string("schema", None, "The public schema of the table (JSON).")
flags.DEFINE_float("epsilon", None, "Privacy budget epsilon of the whole training, > 0.")
flags.DEFINE_float("delta", None, "delta of the budget; keep it well below 1 / number of rows.")
flags.DEFINE_integer("rows", None, "Number of synthetic rows to write; default: the noisy count of the private rows.")
flags.DEFINE_string("output", None, "The synthetic CSV to write; the statement goes beside it (.json).")
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
flags.DEFINE_integer(
    "seed", None, "Seed of initialisation, latents and generation (default random); never of the Poisson sampling or "
    "the DP noise, which stay secret."
)
flags.DEFINE_integer(
    "sampling_seed", None, "gan: fix the Poisson sampling, for research only: the guarantee does not hold against "
    "anyone who knows it (default: secret, from OS entropy)."
)
flags.DEFINE_bool("overwrite", False, "Replace an earlier release at --output (a second run spends a second budget).")
flags.DEFINE_string(
    "fidelity_report", None, "Folder outside --output's for a PRIVATE fidelity report computed on the private data "
    "(not for publication); default: none."
)
flags.DEFINE_string(
    "write_example", None, "Write an example table and its public schema (scikit-learn's breast cancer) to this folder."
)
flags.DEFINE_string(
    "label", None,
    "Categorical column the fidelity report's TSTR predicts (default: the schema's last categorical one).",
)


def main(argv):
    if "input" in FLAGS and FLAGS.input is not None:  # a folder of images or an .npz: synthesize_images
        synthesize_images.main(argv)
        return
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.write_example is not None:
        _write_example(pathlib.Path(FLAGS.write_example))
        return
    command.require_flags(_PROGRAM, _REQUIRED)
    from privgan.accounting.events import check_count, check_delta, check_positive, warn_if_delta_too_large
    from privgan.cli.release import SECOND_BUDGET, check_release_destination
    from privgan.tabular import MarginalDPSynthesizer, SchemaError, TabularDPSynthesizer, load_schema, read_csv
    from privgan.tabular.conditions import parse_condition

    output = pathlib.Path(FLAGS.output)
    try:
        # Cheap checks first, so that a typo costs no training time.
        epsilon = check_positive(FLAGS.epsilon, name="--epsilon")
        delta = check_delta(FLAGS.delta)
        rows = None if FLAGS.rows is None else check_count(FLAGS.rows, name="--rows", minimum=1)
        marginal = FLAGS.method in ("aim", "mst")
        gan_flags = {"epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size, "learning_rate": FLAGS.learning_rate,
                     "sampling_seed": FLAGS.sampling_seed}
        if marginal and any(value is not None for value in gan_flags.values()):
            given = ", ".join(f"--{name}" for name, value in gan_flags.items() if value is not None)
            raise ValueError(f"{given} only apply to --method=gan, not --method={FLAGS.method}")
        if marginal and FLAGS.accountant == "pld":
            raise ValueError(
                f"--method={FLAGS.method} needs --accountant=rdp: its selections are zCDP events, which "
                "dp-accounting's PLD accountant does not take"
            )
        # Where everything goes, before the private table is read.
        inputs = {"--csv": FLAGS.csv, "--schema": FLAGS.schema}
        replaced = check_release_destination(output, overwrite=FLAGS.overwrite, inputs=inputs)
        report_paths = _check_report_folder(output, inputs=inputs)
        schema = load_schema(FLAGS.schema)
        if FLAGS.label is not None:
            _check_label(schema, FLAGS.label)
        conditions = dict(parse_condition(text, schema) for text in FLAGS.condition)
        if conditions and not marginal:
            raise ValueError("--condition needs --method=aim or --method=mst: the DPGAN cannot condition on a value")
        table = read_csv(FLAGS.csv, schema)
        if replaced:
            warnings.warn(
                f"{output} holds an earlier release, replaced when this run is done; note that {SECOND_BUDGET}",
                stacklevel=2,
            )
        if marginal:
            synthesizer = MarginalDPSynthesizer(schema, method=FLAGS.method, seed=FLAGS.seed)
            synthesizer.fit(table, epsilon=epsilon, delta=delta)
        else:
            synthesizer = TabularDPSynthesizer(
                schema, l2_norm_clip=FLAGS.l2_norm_clip, accountant=FLAGS.accountant or "pld", seed=FLAGS.seed,
                **gan_flags,
            )
            # verbose=0: Keras would print the losses, noiseless statistics of the private batches.
            synthesizer.fit(table, epsilon=epsilon, delta=delta, verbose=0, callbacks=[_epsilon_per_epoch(synthesizer)])
        # The released count stands for N from here on: the exact one is not printed.
        warn_if_delta_too_large(delta, num_examples=synthesizer.num_rows_estimate_)
        if rows is None:
            rows = synthesizer.num_rows_estimate_
        csv_path, statement_path = synthesizer.save(output, rows=rows, conditions=conditions)
    except (SchemaError, ValueError, FileNotFoundError, ImportError) as error:
        _fail(str(error))
    statement = json.loads(statement_path.read_text(encoding="utf-8"))
    if marginal:
        details = f"{statement['measurements']} noisy marginals, {statement['selections']} selections ({FLAGS.method})"
    else:
        details = (
            f"a noisy row count, {statement['d_steps']} discriminator steps, noise multiplier "
            f"{statement['noise_multiplier']:.4f} (batch {statement['settings']['batch_size']}, "
            f"{statement['settings']['epochs']} epochs)"
        )
    print(
        f"wrote {rows} synthetic rows to {csv_path} and the privacy statement to {statement_path}: "
        f"epsilon = {statement['epsilon']:.4f} at delta = {delta:g} ({statement['accountant'].upper()}), {details}"
    )
    if report_paths is None:
        print(f"Publish {csv_path.name} and {statement_path.name}.")
        return
    _fidelity_report(table, csv_path, schema=schema, statement=statement, folder=report_paths["markdown"].parent)


def _epsilon_per_epoch(synthesizer):
    """A Keras callback printing the epsilon spent after each epoch of `synthesizer`'s DPGAN, in place of
    Keras' lines, whose losses are noiseless statistics of the private batches."""
    import keras

    def show(epoch, logs):
        spent = synthesizer.gan_.privacy_spent(delta=synthesizer.delta_, accountant=synthesizer.accountant)
        print(f"epoch {epoch + 1}/{synthesizer.settings_.epochs}: epsilon = {spent:.4f} at delta = "
              f"{synthesizer.delta_:g}", flush=True)

    return keras.callbacks.LambdaCallback(on_epoch_end=show)


def _write_example(folder):
    from privgan.data.examples import write_table_example

    try:
        csv_path, schema_path = write_table_example(folder)
    except (OSError, ValueError) as error:
        _fail(f"--write_example: {error}")
    print(f"wrote an example private table to {csv_path} (569 rows) and its public schema to {schema_path}; try\n"
          f"  {_PROGRAM} --csv={csv_path} --schema={schema_path} --epsilon=3 --delta=1e-5 "
          f"--output={folder / 'release' / 'synthetic.csv'}")


def _check_label(schema, label):
    from privgan.tabular import CategoricalColumn, SchemaError

    categorical = [column.name for column in schema.columns if isinstance(column, CategoricalColumn)]
    if label not in categorical:
        raise SchemaError(f"--label must be a categorical column of the schema, one of {categorical}; got {label!r}")


def _check_report_folder(output, *, inputs):
    """The fidelity report's files (None without --fidelity_report), checked before training: outside the
    release's folder, writable, not over an input."""
    from privgan.cli.release import check_not_an_input
    from privgan.evaluation.tabular_report import fidelity_report_paths
    from privgan.io import check_destination

    if FLAGS.fidelity_report is None:
        return None
    folder = pathlib.Path(FLAGS.fidelity_report)
    release = output.parent.resolve()
    if folder.resolve() == release or release in folder.resolve().parents:
        raise ValueError(
            f"--fidelity_report {str(folder)!r} is inside --output's folder {str(output.parent)!r}, which is what gets "
            "published; the report is computed on the private data: give a folder outside it"
        )
    paths = fidelity_report_paths(output, folder=folder)
    check_not_an_input(paths.values(), inputs=inputs, name="--fidelity_report")
    for path in paths.values():
        check_destination(path, name="--fidelity_report")
    return paths


def _fidelity_report(table, csv_path, *, schema, statement, folder):
    """Writes the PRIVATE fidelity report into `folder` and says what may be published."""
    from privgan.evaluation.tabular_report import write_fidelity_report
    from privgan.tabular import SchemaError, read_csv

    try:
        report, paths = write_fidelity_report(
            table, read_csv(csv_path, schema), schema=schema, synthetic_path=csv_path, epsilon=statement["epsilon"],
            delta=statement["delta"], label=FLAGS.label, seed=0 if FLAGS.seed is None else FLAGS.seed, folder=folder,
        )
    except (SchemaError, ValueError) as error:
        _fail(f"the release was written, but not its fidelity report: {error}")
    print(f"PRIVATE (computed on the private data, not covered by the guarantee): {report.summary()}")
    print(
        f"PRIVATE fidelity report: {paths['markdown']} "
        f"(+ {', '.join(p.name for k, p in paths.items() if k != 'markdown')}); "
        f"keep it, do not publish it. Publish {csv_path.name} and {csv_path.with_suffix('.json').name} only."
    )


def _fail(message):
    command.fail(_PROGRAM, message)


def run():
    """Runs the command (`privgan-synthesize`, or `python -m privgan.cli.synthesize`)."""
    synthesize_images.define_flags(__name__)  # --input and the other image flags
    command.run(main, program=_PROGRAM, module=__name__, required=_REQUIRED)


if __name__ == "__main__":
    run()
