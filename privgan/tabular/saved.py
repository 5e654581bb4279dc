"""Fit once, sample many: a fitted `MarginalDPSynthesizer` saved to a file and loaded to sample again.

`save_synthesizer(synthesizer, path)` writes what sampling needs, all of it post-processing of the noisy
releases listed in the ledger (the graphical model's log-potentials, the merged groups of codes and
the weights of the codes within them, the placement of values within bins), together with the schema
and the privacy statement. No row of the private table and no exact count is in the file: it is as
public as the synthetic tables, and sampling from it again, with other conditions or sizes, reads no
private data and spends no privacy budget. `load_synthesizer(path)` returns a synthesizer whose
`sample`, `save` and `privacy_statement` work as after `fit` (the statement is the saved one); `fit`
is refused, since fitting again would spend a new budget.

The file is a NumPy .npz archive (read without pickle) holding a JSON header and arrays.
"""

import copy
import json
import pathlib

import numpy as np

from privgan.io import atomic_path
from privgan.tabular.marginal import MarginalDPSynthesizer
from privgan.tabular.schema import SchemaError, TableSchema

FORMAT = "privgan-marginal-synthesizer"
VERSION = 1
_SETTINGS = ("method", "max_bins", "bins", "rounds", "degree", "max_model_size", "selection_fraction", "iterations")


def save_synthesizer(synthesizer, path):
    """Writes a fitted `MarginalDPSynthesizer` to `path` (atomically); returns the path.

    Raises:
        ValueError: if `synthesizer` is not a fitted `MarginalDPSynthesizer`.
    """
    if not isinstance(synthesizer, MarginalDPSynthesizer) or not hasattr(synthesizer, "model_"):
        raise ValueError(
            "save_synthesizer takes a fitted MarginalDPSynthesizer (--method=aim or mst), got "
            f"{type(synthesizer).__name__}{'' if hasattr(synthesizer, 'model_') else ' before fit'}"
        )
    statement = synthesizer.privacy_statement()
    statement = statement.to_dict()
    names = list(synthesizer.schema.names)
    model = synthesizer.model_
    header = {
        "format": FORMAT,
        "version": VERSION,
        "settings": {name: getattr(synthesizer, name) for name in _SETTINGS},
        "fitted_bins": synthesizer.bins_,
        "num_rows_estimate": synthesizer.num_rows_estimate_,
        "total": float(model.total),
        "cliques": [list(clique) for clique in model.cliques],
        "statement": statement,
    }
    arrays = {"header": np.array(json.dumps(header, allow_nan=False, default=_json_value))}
    for index, clique in enumerate(model.cliques):
        arrays[f"potential_{index}"] = np.asarray(model.potentials[clique], dtype=np.float64)
    for index, name in enumerate(names):
        arrays[f"groups_{index}"] = synthesizer.groups_[name]
        weights = np.zeros(synthesizer.groups_[name].size)
        for members, share in synthesizer.within_group_[name].values():
            weights[members] = share
        arrays[f"weights_{index}"] = weights
        if name in synthesizer.shapes_:
            arrays[f"left_{index}"], arrays[f"right_{index}"] = synthesizer.shapes_[name]
    path = pathlib.Path(path)
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def load_synthesizer(path, *, seed=None):
    """A synthesizer loaded from `save_synthesizer`'s file: it samples, saves and states, and refuses to fit.

    Args:
        path: the file.
        seed: seed of the rows it draws (post-processing); None: random.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if the file is not a saved synthesizer (or of a newer format).
    """
    from privgan.tabular import estimation

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved synthesizer at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        header = json.loads(str(arrays["header"]))
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a synthesizer saved by privgan (save_synthesizer): {error}") from error
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise ValueError(
            f"{path} is not a synthesizer saved by this version of privgan (format {header.get('format')!r}, "
            f"version {header.get('version')!r}; expected {FORMAT!r} version {VERSION})"
        )
    statement = header["statement"]
    try:
        schema = TableSchema.from_dict(statement["schema"])
    except SchemaError as error:
        raise ValueError(f"{path}: its schema is invalid: {error}") from error
    synthesizer = LoadedMarginalSynthesizer(schema, statement=statement, seed=seed, **header["settings"])
    names = list(schema.names)
    synthesizer.groups_ = {name: arrays[f"groups_{i}"].astype(np.int64) for i, name in enumerate(names)}
    synthesizer.domain_ = {name: int(groups.max()) + 1 for name, groups in synthesizer.groups_.items()}
    synthesizer.within_group_ = {
        name: MarginalDPSynthesizer._within_group(arrays[f"weights_{i}"], synthesizer.groups_[name])
        for i, name in enumerate(names)
    }
    synthesizer.shapes_ = {
        name: (arrays[f"left_{i}"], arrays[f"right_{i}"]) for i, name in enumerate(names) if f"left_{i}" in arrays
    }
    cliques = [tuple(clique) for clique in header["cliques"]]
    synthesizer.model_ = estimation.GraphicalModel(
        dict(synthesizer.domain_), {c: arrays[f"potential_{i}"] for i, c in enumerate(cliques)}, header["total"]
    )
    synthesizer.bins_ = header["fitted_bins"]
    synthesizer.discretizer = synthesizer.discretizer.__class__(schema, bins=synthesizer.bins_)
    synthesizer.num_rows_estimate_ = header["num_rows_estimate"]
    synthesizer.measurements_log_ = statement.get("marginals", [])
    synthesizer._sampling = np.random.default_rng(synthesizer.seed)
    return synthesizer


class LoadedMarginalSynthesizer(MarginalDPSynthesizer):
    """A `MarginalDPSynthesizer` loaded by `load_synthesizer`: fitted, with the saved privacy statement.

    Args:
        schema: the saved schema.
        statement: the saved privacy statement (a dict).
        **settings: the saved settings (method, bins, ...).
    """

    def __init__(self, schema, *, statement, seed=None, **settings):
        super().__init__(schema, seed=seed, **settings)
        self._statement = copy.deepcopy(statement)

    def fit(self, df, *, epsilon, delta, progress=None):
        """Refused: a loaded synthesizer is fitted already, and fitting again would spend a second budget."""
        raise RuntimeError(
            "this synthesizer was loaded fitted; sample from it (sampling spends no budget). Fitting again on "
            "private data spends a new budget: make a new MarginalDPSynthesizer for that"
        )

    def privacy_statement(self):
        """The privacy statement saved with the synthesizer, as a `PrivacyStatement`."""
        from privgan.accounting.statement import PrivacyStatement

        return PrivacyStatement.from_dict(copy.deepcopy(self._statement))


def _json_value(value):
    if hasattr(value, "item"):  # numpy scalars in settings
        return value.item()
    raise TypeError(f"not JSON-serialisable: {value!r}")
