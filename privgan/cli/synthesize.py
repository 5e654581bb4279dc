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
distribution (aim and mst). The engines come from a registry (`privgan.tabular.engines.register_engine`).

Fit once, sample many: --save_model=model.npz also saves the fitted aim/mst synthesizer with its statement;
later, `privgan-synthesize --load_model=model.npz --condition=... --output=...` (and --rows) samples from
it without reading the private table or spending epsilon again (the statement beside each CSV is the saved
one). Conditioning on a category whose noisy count is below 3 sigma of the noise warns.

Tables as they come: --drop_columns=id,admitted (or {"type": "ignored", "name": "id"} in the schema) leaves
identifiers, dates and free text out; dates are not modelled (a date column is refused with that hint).
--delimiter=';' reads other separators (a header that looks like it uses one gets a hint), --na_values=,NA,.
sets the cells that are missing. --chunk_rows=100000 (aim, mst) reads --csv in chunks of that many rows and
only counts them, for tables larger than memory: a bad value then stops the run at its chunk. Non-integer
columns are rounded to the schema's "decimals", or to about a thousandth of their public range
(--noround_values: every digit).

To try it, `privgan-synthesize --write_example=example` writes example/breast_cancer.csv (scikit-learn's
breast-cancer table, 569 rows) and example/breast_cancer.schema.json, and prints the command to run on them.

A schema with a numeric, an integer and a categorical column (bounds and categories from a codebook, never
from the data; "transform": "log1p" suits heavy-tailed columns such as incomes; "nullable": true allows
empty cells):

  {"columns": [
    {"type": "numeric", "name": "mean radius", "lower": 0, "upper": 60, "decimals": 2, "unit": "mm"},
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
with one error message listing every bad value (column, value, line, allowed range or categories; five per
column and kind), and no file is written. A second run on the same private data
spends a second privacy budget. Also runs as `python -m privgan.cli.synthesize`.

Images: --input=FOLDER (one subfolder of PNG/JPEG files per class) or --input=FILE.npz (x, y) with --epsilon,
--delta and --output=NAME.npz; see `privgan.cli.synthesize_images` and the DP images guide.
"""

import json
import pathlib
import warnings

from absl import flags

from privgan.cli import command, synthesize_images
from privgan.tabular.engines import engine, engine_names

_PROGRAM = "privgan-synthesize"
_REQUIRED = ("csv", "schema", "epsilon", "delta", "output")  # unless --write_example or --load_model
_LOADED_REQUIRED = ("output",)

FLAGS = flags.FLAGS
flags.DEFINE_string("csv", None, "The private table (CSV with a header row).")
flags.DEFINE_string("schema", None, "The public schema of the table (JSON).")
flags.DEFINE_float("epsilon", None, "Privacy budget epsilon of the whole training, > 0.")
flags.DEFINE_float("delta", None, "delta of the budget; keep it well below 1 / number of rows.")
flags.DEFINE_integer("rows", None, "Number of synthetic rows to write; default: the noisy count of the private rows.")
flags.DEFINE_string("output", None, "The synthetic CSV to write; the statement goes beside it (.json).")
flags.DEFINE_enum(
    "method", "aim", engine_names(),
    "Table engine: " + "; ".join(f"{name}: {engine(name).description}" for name in engine_names()) + ".",
)
flags.DEFINE_multi_string(
    "condition", [], "column=value that every synthetic row takes (repeatable; aim and mst; empty value: missing)."
)
flags.DEFINE_list("drop_columns", [], "Columns of --csv left out of the model and the synthetic table (identifiers, "
                  "dates, free text), as if the schema declared them ignored.")
flags.DEFINE_string("delimiter", ",", "The character between the columns of --csv (e.g. ';' or '\\t').")
flags.DEFINE_list("na_values", [""], "Cells of --csv that are missing values, comma-separated (default: empty cells "
                  "only; e.g. --na_values=,NA,. for empty cells, NA and .).")
flags.DEFINE_integer(
    "chunk_rows", None, "aim/mst: read --csv in chunks of this many rows, only to count them, for tables larger than "
    "memory (--delimiter, --na_values and --drop_columns apply; not with --fidelity_report); default: read it whole."
)
flags.DEFINE_bool(
    "round_values", True, "Round each non-integer column to its schema's decimals, or where the schema gives none "
    "to about a thousandth of its public range (from the bounds, never from the data)."
)
flags.DEFINE_string(
    "save_model", None, "aim/mst: also save the fitted synthesizer (with its statement) to this file, to sample "
    "from it later with --load_model without reading the private data or spending epsilon again."
)
flags.DEFINE_string(
    "load_model", None, "Sample from a synthesizer saved with --save_model instead of fitting: --output, --rows "
    "and --condition only; no private data is read and no budget is spent."
)
flags.DEFINE_integer("epochs", None, "gan: training epochs (each round(rows / batch_size) D steps); default from rows.")
flags.DEFINE_integer("batch_size", None, "gan: expected Poisson batch size of a D step; default from rows.")
flags.DEFINE_float("learning_rate", None, "gan: Adam learning rate of D and G; default from the batch size.")
flags.DEFINE_float("l2_norm_clip", None, "gan: clipping norm of each row's discriminator gradient (default 1).")
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
    # What the command synthesises from: an example to write, a saved synthesizer, or a private table.
    if FLAGS.write_example is not None:
        _write_example(pathlib.Path(FLAGS.write_example))
    elif FLAGS.load_model is not None:
        _sample_saved()
    else:
        _synthesize_table()


def _synthesize_table():
    """Fits the --method engine to --csv within the budget and writes the release (and the saved model)."""
    command.require_flags(_PROGRAM, _REQUIRED)
    from privgan.accounting.events import check_count, check_delta, check_positive, warn_if_delta_too_large
    from privgan.cli.release import SECOND_BUDGET, check_release_destination
    from privgan.tabular import CsvTable, SchemaError, load_schema, read_csv
    from privgan.tabular.conditions import parse_condition

    output = pathlib.Path(FLAGS.output)
    try:
        # Cheap checks first, so that a typo costs no training time.
        epsilon = check_positive(FLAGS.epsilon, name="--epsilon")
        delta = check_delta(FLAGS.delta)
        rows = None if FLAGS.rows is None else check_count(FLAGS.rows, name="--rows", minimum=1)
        chosen = engine(FLAGS.method)
        options = {name: getattr(FLAGS, name) for name in ("epochs", "batch_size", "learning_rate", "sampling_seed",
                                                              "l2_norm_clip")}
        if FLAGS.save_model is not None and FLAGS.method not in ("aim", "mst"):
            raise ValueError(f"--save_model needs --method=aim or --method=mst, not --method={FLAGS.method}")
        chunk_rows = _chunk_rows()
        # Where everything goes, before the private table is read.
        inputs = {"--csv": FLAGS.csv, "--schema": FLAGS.schema}
        replaced = check_release_destination(output, overwrite=FLAGS.overwrite, inputs=inputs)
        report_paths = _check_report_folder(output, inputs=inputs)
        model_path = _check_model_path(output, inputs=inputs)
        schema = _public_schema(load_schema(FLAGS.schema))
        synthesizer = chosen.build(schema, seed=FLAGS.seed, accountant=FLAGS.accountant, options=options)
        if FLAGS.label is not None:
            _check_label(schema, FLAGS.label)
        conditions = dict(parse_condition(text, schema) for text in FLAGS.condition)
        if conditions and not chosen.conditional:
            raise ValueError(f"--condition needs {' or '.join('--method=' + name for name in _conditional())}: "
                             f"--method={FLAGS.method} cannot condition on a value")
        if chunk_rows is None:
            table = read_csv(FLAGS.csv, schema, delimiter=FLAGS.delimiter, na_values=FLAGS.na_values)
        else:  # counted chunk by chunk while fitting, with read_csv's options
            table = CsvTable(FLAGS.csv, delimiter=FLAGS.delimiter, na_values=tuple(FLAGS.na_values))
        if replaced:
            warnings.warn(
                f"{output} holds an earlier release, replaced when this run is done; note that {SECOND_BUDGET}",
                stacklevel=2,
            )
        if chunk_rows is None:
            chosen.fit_synthesizer(synthesizer, table, epsilon=epsilon, delta=delta, report=_print)
        else:
            synthesizer.fit(table, epsilon=epsilon, delta=delta, chunk_rows=chunk_rows)
        # The released count stands for N from here on: the exact one is not printed.
        warn_if_delta_too_large(delta, num_examples=synthesizer.num_rows_estimate_)
        if rows is None:
            rows = synthesizer.num_rows_estimate_
        csv_path, statement_path = synthesizer.save(output, rows=rows, conditions=conditions)
        if model_path is not None:
            from privgan.tabular.saved import save_synthesizer

            save_synthesizer(synthesizer, model_path)
    except (SchemaError, ValueError, FileNotFoundError, ImportError) as error:
        _fail(str(error))
    statement = json.loads(statement_path.read_text(encoding="utf-8"))
    details = f", {chosen.details(statement)}" if chosen.details else ""
    print(
        f"wrote {rows} synthetic rows to {csv_path} and the privacy statement to {statement_path}: "
        f"epsilon = {statement['epsilon']:.4f} at delta = {delta:g} ({statement['accountant'].upper()}){details}"
    )
    if model_path is not None:
        print(f"saved the fitted synthesizer to {model_path}: sample again with --load_model={model_path} "
              "(no private data read, no epsilon spent)")
    if report_paths is None:
        print(f"Publish {csv_path.name} and {statement_path.name}.")
        return
    _fidelity_report(table, csv_path, schema=schema, statement=statement, folder=report_paths["markdown"].parent)


def _chunk_rows():
    """--chunk_rows checked (None: the table is read whole)."""
    from privgan.accounting.events import check_count

    if FLAGS.chunk_rows is None:
        return None
    chunk_rows = check_count(FLAGS.chunk_rows, name="--chunk_rows", minimum=1)
    if FLAGS.method not in ("aim", "mst"):
        raise ValueError(f"--chunk_rows needs --method=aim or --method=mst, not --method={FLAGS.method}")
    if FLAGS.fidelity_report is not None:
        raise ValueError("--fidelity_report compares the synthetic table with the whole private one in memory: "
                         "leave out --chunk_rows")
    return chunk_rows


def _sample_saved():
    """Samples --rows rows (with --condition) from the --load_model synthesizer: no private data, no budget."""
    command.require_flags(_PROGRAM, _LOADED_REQUIRED)
    from privgan.accounting.events import check_count
    from privgan.cli.release import check_release_destination
    from privgan.tabular import SchemaError
    from privgan.tabular.conditions import parse_condition
    from privgan.tabular.saved import load_synthesizer

    output = pathlib.Path(FLAGS.output)
    try:
        fitting = [name for name in ("csv", "schema", "epsilon", "delta", "fidelity_report", "save_model",
                                     "chunk_rows", "epochs", "batch_size", "learning_rate", "sampling_seed",
                                     "l2_norm_clip", "accountant")
                   if getattr(FLAGS, name) is not None]
        if fitting:
            raise ValueError(f"--load_model samples from a fitted synthesizer, reading no private data and spending "
                             f"no budget: {', '.join('--' + name for name in fitting)} do not apply")
        rows = None if FLAGS.rows is None else check_count(FLAGS.rows, name="--rows", minimum=1)
        check_release_destination(output, overwrite=FLAGS.overwrite, inputs={"--load_model": FLAGS.load_model})
        synthesizer = load_synthesizer(FLAGS.load_model, seed=FLAGS.seed)
        conditions = dict(parse_condition(text, synthesizer.schema) for text in FLAGS.condition)
        rows = synthesizer.num_rows_estimate_ if rows is None else rows
        csv_path, statement_path = synthesizer.save(output, rows=rows, conditions=conditions)
    except (SchemaError, ValueError, FileNotFoundError) as error:
        _fail(str(error))
    statement = json.loads(statement_path.read_text(encoding="utf-8"))
    print(f"wrote {rows} synthetic rows to {csv_path} and the privacy statement to {statement_path}, sampled from "
          f"{FLAGS.load_model} (no epsilon spent: the release stays at epsilon = {statement['epsilon']:.4f} at delta = "
          f"{statement['delta']:g}). Publish {csv_path.name} and {statement_path.name}.")


def _public_schema(schema):
    """The schema with --drop_columns ignored and, with --round_values, default decimals from its bounds."""
    import dataclasses

    from privgan.tabular.schema import NumericColumn, default_decimals

    if FLAGS.drop_columns:
        schema = schema.ignoring(*FLAGS.drop_columns)
    if FLAGS.round_values:
        schema = dataclasses.replace(schema, columns=tuple(
            dataclasses.replace(column, decimals=default_decimals(column))
            if isinstance(column, NumericColumn) and column.decimals is None and not column.integer else column
            for column in schema.columns
        ))
    return schema


def _conditional():
    return [name for name in engine_names() if engine(name).conditional]


def _print(line):
    print(line, flush=True)


def _check_model_path(output, *, inputs):
    """--save_model's file (None without it), checked before training: writable, not an input, not --output."""
    from privgan.cli.release import check_not_an_input
    from privgan.io import check_destination

    if FLAGS.save_model is None:
        return None
    path = pathlib.Path(FLAGS.save_model)
    check_not_an_input([path], inputs={**inputs, "--output": str(output)}, name="--save_model")
    if path.exists() and not FLAGS.overwrite:
        raise ValueError(f"--save_model {str(path)!r} exists; pass --overwrite to replace it")
    return check_destination(path, name="--save_model")


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
