"""`MarginalDPSynthesizer`: private synthetic tables from noisy marginals (MST, AIM) and Private-PGM.

The table's columns become integer codes from the public schema (`TableDiscretizer`: categories, and
equal-width bins between the schema's bounds). The private data is then read only through Gaussian noisy
counts of marginals (L2 sensitivity 1 under add/remove-one: a row adds one to one cell) and through
exponential-mechanism choices of which marginal to count next. A graphical model fitted to the noisy
counts by Private-PGM's mirror descent (McKenna et al. 2019; in numpy, `privgan.tabular.estimation`) is
sampled for synthetic rows; everything after the noisy counts is post-processing.

    1. Every column's one-way marginal is counted with noise, the categorical columns first: the rows
       they count set the numeric columns' grid (`bins` halved while a bin would average fewer rows than
       half the noise's sigma; post-processing). The noisy counts (post-processing again) merge
       rare codes: categories whose noisy count is below 3 sigma into one group, numeric bins into
       contiguous groups of at least max(3 sigma, total / max_bins) rows, so bins follow the data
       without reading it twice, however generous the schema's bounds. Bins are grouped, and codes
       weighted within a group, by the non-negative counts nearest to the noisy ones (`_nonnegative`):
       summing raw noisy counts along a long empty stretch of generous bounds is a random walk that can
       swallow the data into one group or make groups of noise alone, and clipping them at zero would
       give empty codes a share of the rows.
    2. MST (McKenna et al. 2021): a maximum spanning tree of column pairs, each edge chosen by the
       exponential mechanism from how badly the one-way model fits the pair, then the tree's pairs are
       counted. AIM (McKenna et al. 2022): rounds of choosing the marginal (of up to `degree` columns)
       that the current model fits worst, discounted by the noise a measurement would add, counting it,
       and re-fitting the model.
    3. Synthetic rows are drawn from the final model, column by column along its junction tree; a
       condition (`sample(n, conditions=...)`) is evidence in the model, so the other columns are drawn
       from their conditional distribution given it (no rejection).

Differences from the published mechanisms, for exact accounting with dp-accounting: the schedule of noise
scales and selection budgets is fixed before any private data is read (AIM anneals its noise
adaptively; here its number of rounds is set in advance), and the budget is found by calibrating one
scale so that the dp-accounting RDP accountant's epsilon of the planned events meets the target. Each
noisy count is recorded as a `GaussianDpEvent(sigma)` and each selection as the exponential mechanism's
`ZCDpEvent(rho)` (epsilon_em = sqrt(8 rho): its bounded-range zCDP guarantee, Cesar & Rogers 2021) in a
`PrivacyLedger`; the statement's epsilon is the ledger's, from the RDP accountant (the PLD accountant
does not take zCDP events).

The noise (and the exponential mechanism's draws) come from a generator seeded with 128 bits of OS
entropy, unless `noise_seed` is given: then they are reproducible, and the statement says so.
"""

import datetime
import itertools
import math
import secrets
import sys

import dp_accounting
import keras
import numpy as np
from absl import logging

from privgan.accounting import PrivacyLedger
from privgan.accounting.events import check_count, check_delta, check_positive, epsilon_of_event
from privgan.accounting.guarantees import INFERRED_SCHEMA_WARNING, REPRODUCIBLE_TABLE_NOISE_WARNING, marginal_guarantee
from privgan.accounting.statement import PrivacyStatement
from privgan.tabular import counting, estimation, inference
from privgan.tabular.conditions import check_conditions, warn_rare_conditions
from privgan.tabular.discretize import TableDiscretizer
from privgan.tabular.schema import CategoricalColumn, TableSchema
from privgan.tabular.sources import DEFAULT_CHUNK_ROWS, table_source
from privgan.tabular.statement import SyntheticTableMixin, warn_if_inferred, write_synthetic
from privgan.tabular.support import bin_shapes, sparse_counts
from privgan.tabular.support import nonnegative as _nonnegative

METHODS = ("aim", "mst")
ACCOUNTANT = "rdp"
_RARE_NOISE_MULTIPLE = 3.0  # MST's rule: a noisy count below 3 sigma is indistinguishable from zero
_EXPECTED_ABS_NORMAL = math.sqrt(2 / math.pi)  # E|N(0, 1)|


def default_rounds(num_columns):
    """AIM's number of selection rounds: twice the number of columns, at most 32 (run time)."""
    return min(2 * num_columns, 32)


class MarginalDPSynthesizer(SyntheticTableMixin):
    """Differentially private synthetic tables from noisy marginals: MST or AIM on a Private-PGM model.

    Args:
        schema: a `TableSchema` written from public knowledge.
        method: "aim" (adaptive choice of marginals, the better one on most tables) or "mst" (a
            maximum spanning tree of column pairs: faster, pairs only).
        max_bins: the most groups a numeric column is merged into after its noisy one-way count, >= 2.
        bins: the finest grid: equal-width bins of a numeric column's scaled range before merging, >= 2.
            `fit` halves it (down to 4) while the estimated rows per bin are below half the one-way
            noise's sigma (the grid used is `bins_`, and in the statement).
        rounds: AIM's selection rounds; None: `default_rounds(number of columns)`.
        degree: AIM's largest marginal, 2 or 3 columns.
        max_model_size: AIM's largest graphical model, in megabytes of its junction tree (caps time and
            memory), > 0.
        selection_fraction: share of the zCDP budget spent on choosing marginals, in (0, 1). MST's fixed
            split (a third each for one-way counts, the tree and its pairs) ignores it.
        iterations: mirror-descent iterations of the final fit (AIM's rounds use a quarter), >= 50.
        seed: seed of the synthetic rows drawn from the fitted model (post-processing); None: random.
        noise_seed: None (default) draws the DP noise from 128 bits of OS entropy; an integer makes the
            noise reproducible, which the privacy statement flags (for tests and debugging only).

    Raises:
        ValueError: if an argument is out of range.
    """

    def __init__(
        self,
        schema,
        *,
        method="aim",
        max_bins=16,
        bins=64,
        rounds=None,
        degree=2,
        max_model_size=4.0,
        selection_fraction=0.1,
        iterations=1000,
        seed=None,
        noise_seed=None,
    ):
        if not isinstance(schema, TableSchema):
            raise ValueError(f"schema must be a TableSchema, got {type(schema).__name__}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.schema = schema
        self.method = method
        self.max_bins = check_count(max_bins, name="max_bins", minimum=2)
        self.bins = check_count(bins, name="bins", minimum=2)
        self.rounds = None if rounds is None else check_count(rounds, name="rounds", minimum=1)
        if degree not in (2, 3):
            raise ValueError(f"degree must be 2 or 3, got {degree!r}")
        self.degree = degree
        self.max_model_size = check_positive(max_model_size, name="max_model_size")
        if not 0 < selection_fraction < 1:
            raise ValueError(f"selection_fraction must be in (0, 1), got {selection_fraction!r}")
        self.selection_fraction = float(selection_fraction)
        self.iterations = check_count(iterations, name="iterations", minimum=50)
        self.seed = seed
        self.noise_seed = noise_seed
        self.discretizer = TableDiscretizer(schema, bins=self.bins)

    # ----------------------------------------------------------------------------------------------
    # The plan: noise scales and selection budgets, fixed before any private data is read.

    def _plan(self, rho):
        """(one-way sigma, pair sigma, selection rho, number of selections, number of later measurements)."""
        columns = len(self.schema.columns)
        if columns == 1:
            return math.sqrt(1 / (2 * rho)), None, None, 0, 0
        if self.method == "mst":
            # A third of the budget each for the one-way counts, the tree's edges and its pairs.
            edges = columns - 1
            return (
                math.sqrt(columns / (2 * rho / 3)), math.sqrt(edges / (2 * rho / 3)), rho / 3 / edges, edges, edges
            )
        rounds = self.rounds_
        # AIM: the same sigma for the one-way counts and every round's count.
        measurements = columns + rounds
        sigma = math.sqrt(measurements / (2 * (1 - self.selection_fraction) * rho))
        return sigma, sigma, self.selection_fraction * rho / rounds, rounds, rounds

    def _planned_event(self, rho):
        one_way, pair, selection_rho, selections, later = self._plan(rho)
        events = [dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(one_way), len(self.schema.columns))]
        if selections:
            events.append(dp_accounting.SelfComposedDpEvent(dp_accounting.ZCDpEvent(selection_rho), selections))
            events.append(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(pair), later))
        return dp_accounting.ComposedDpEvent(events)

    def _calibrate(self, epsilon, delta):
        """The largest total rho whose planned events stay within (epsilon, delta) (RDP accountant)."""

        def spent(rho):
            return epsilon_of_event(self._planned_event(rho), delta=delta, accountant=ACCOUNTANT)

        low, high = 1e-12, 1.0
        while spent(high) <= epsilon:
            low, high = high, high * 4
            if high > 1e9:
                raise ValueError(f"epsilon={epsilon} is too large to calibrate")
        if spent(low) > epsilon:
            raise ValueError(f"epsilon={epsilon} at delta={delta} is too small to calibrate")
        for _ in range(60):
            middle = math.sqrt(low * high)
            if spent(middle) <= epsilon:
                low = middle
            else:
                high = middle
            if high / low < 1 + 1e-6:
                break
        return low

    # ----------------------------------------------------------------------------------------------
    # Mechanisms: every read of the private codes goes through these two methods.

    def _measure(self, counts, clique, sigma):
        """Noisy counts of one marginal (Gaussian mechanism, L2 sensitivity 1), recorded in the ledger."""
        noisy = counts + self._noise.normal(0.0, sigma, size=counts.shape)
        self.ledger_.record_release(
            dp_accounting.GaussianDpEvent(sigma),
            description=f"noisy counts of the marginal {list(clique)} ({counts.size} cells, Gaussian noise of "
            f"standard deviation {sigma:.6g}, L2 sensitivity 1)",
        )
        self.measurements_log_.append({"clique": list(clique), "cells": int(counts.size), "sigma": sigma})
        return noisy

    def _select(self, qualities, sensitivity, rho, what):
        """The exponential mechanism with zCDP parameter rho (epsilon_em = sqrt(8 rho)), recorded."""
        epsilon_em = math.sqrt(8 * rho)
        scores = 0.5 * epsilon_em / sensitivity * np.asarray(qualities, dtype=np.float64)
        scores -= scores.max()
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum()
        choice = int(self._noise.choice(len(probabilities), p=probabilities))
        self.ledger_.record_release(
            dp_accounting.ZCDpEvent(rho),
            description=f"exponential mechanism (epsilon {epsilon_em:.6g}, quality sensitivity {sensitivity:g}, "
            f"bounded range: rho = epsilon^2 / 8) choosing {what}",
        )
        return choice

    # ----------------------------------------------------------------------------------------------

    def fit(self, data, *, epsilon, delta, progress=None, chunk_rows=DEFAULT_CHUNK_ROWS):
        """Fits the model to the private table `data` within the budget (epsilon, delta).

        The table is read in chunks and only counted (`privgan.tabular.counting`), so it need not fit in
        memory: once, or twice for AIM with `degree=3` (its three-column marginals are counted in a
        second pass). Whatever the form of `data`, the mechanisms receive the same exact counts.

        Args:
            data: the private table, fitting the schema (columns in any order): a pandas DataFrame; an
                iterable of DataFrame chunks (a list, or a generator: read once, so not with AIM's
                `degree=3`); a path to a Parquet file, a folder of Parquet files (pyarrow) or a CSV file
                (read as `privgan.tabular.read_csv` reads); or a Dask DataFrame (counted on its workers;
                the noise is added once, here).
            epsilon: the privacy budget, > 0.
            delta: its delta, in (0, 1); keep it well below 1 / (number of rows).
            progress: AIM's rounds as a progress bar (Keras') on standard output. None (default): shown
                when standard output is a terminal; otherwise (logs, captured output) each round is an
                INFO line of the log instead. True or False: always or never the bar.
            chunk_rows: rows per chunk read from a DataFrame or a file (memory), an integer >= 1.

        Returns:
            self.

        Raises:
            ValueError: if epsilon, delta or chunk_rows are out of range, `data` is of none of these
                kinds, or a generator of chunks is given with AIM's `degree=3`.
            SchemaError: if the table does not fit the schema (the message names the column and value).
        """
        epsilon = check_positive(epsilon, name="epsilon")
        delta = check_delta(delta)
        source = table_source(data, self.schema, chunk_rows=chunk_rows)
        names = list(self.schema.names)
        triples = self.method == "aim" and self.degree == 3 and len(names) > 2
        if triples and not source.rereadable:
            raise ValueError(
                "data: AIM with degree=3 reads the table twice, but a generator or iterator of chunks can be read "
                "once only; pass a list of chunks, a path, a Dask DataFrame, or use degree=2"
            )
        warn_if_inferred(self.schema)
        # The one pass: exact PRIVATE counts of every column and pair, on codes fine enough for any grid.
        counter = counting.TableCounter(self.schema, grids=counting.candidate_grids(self.bins), pairs=len(names) > 1)
        counts = source.map_reduce(counter.count, counter.merge, counter.empty)
        started = datetime.datetime.now(datetime.timezone.utc)
        self.rounds_ = self.rounds or default_rounds(len(self.schema.columns))
        rho = self._calibrate(epsilon, delta)
        self.rho_ = rho
        one_way_sigma, pair_sigma, selection_rho, _, _ = self._plan(rho)
        self.reproducible_noise_ = self.noise_seed is not None
        self._noise = np.random.default_rng(self.noise_seed if self.reproducible_noise_ else secrets.randbits(128))
        self.ledger_ = PrivacyLedger()
        self.measurements_log_ = []

        # 1. One-way counts on the full code domain; merging rare codes is post-processing of them.
        # Categorical columns first: their noisy counts estimate the number of rows, from which the numeric
        # columns' grid is chosen (post-processing of released counts; the noise scales are the plan's).
        categorical = [name for name in names if isinstance(self.schema[name], CategoricalColumn)]
        one_way = {name: self._measure(counts.column(name, self.bins), (name,), one_way_sigma) for name in categorical}
        self.bins_ = self._grid(list(one_way.values()), one_way_sigma)
        self.discretizer = TableDiscretizer(self.schema, bins=self.bins_)
        one_way.update({
            name: self._measure(counts.column(name, self.bins_), (name,), one_way_sigma)
            for name in names if name not in one_way
        })
        one_way = {name: one_way[name] for name in names}
        # The number of rows, estimated from the noisy counts (post-processing; the model needs it). The
        # exact number of rows read is never used: it would be a release the ledger does not cover.
        total = max(1.0, float(np.mean([y.sum() for y in one_way.values()])))
        self.num_rows_estimate_ = max(1, int(round(total)))  # e.g. the default size of a synthetic table
        nonnegative = {name: _nonnegative(one_way[name], total) for name in names}
        for name in names:  # empty bins of generous bounds stay empty (see `support`)
            if not isinstance(self.schema[name], CategoricalColumn):
                nonnegative[name] = sparse_counts(
                    one_way[name], total, one_way_sigma, value_codes=self.discretizer.sizes[name]
                    - int(self.schema[name].nullable), projected=nonnegative[name],
                )
        self.groups_ = {
            name: self._groups(name, one_way[name], nonnegative[name], one_way_sigma, total) for name in names
        }
        self.domain_ = {name: int(self.groups_[name].max()) + 1 for name in names}
        measurements = [
            estimation.grouped_measurement(
                estimation.Measurement((name,), one_way[name], one_way_sigma), self.groups_[name]
            )
            for name in names
        ]
        self.shapes_ = {  # values placed within their bins by the estimated density (see `support`)
            name: bin_shapes(nonnegative[name][: self.discretizer.sizes[name] - int(self.schema[name].nullable)])
            for name in names if not isinstance(self.schema[name], CategoricalColumn)
        }
        # Within a group, codes keep the proportions of their non-negative estimated counts.
        self.within_group_ = {name: self._within_group(nonnegative[name], self.groups_[name]) for name in names}
        # The exact counts of every marginal the mechanisms below may read, on the groups (PRIVATE).
        answers = {
            clique: counts.marginal(clique, self.bins_, self.groups_)
            for size in (1, 2) for clique in itertools.combinations(names, size)
        }
        del counts
        if triples:  # the second pass
            grouped = counting.GroupedCounter(self.discretizer, self.groups_, itertools.combinations(names, 3))
            exact = source.map_reduce(grouped.count, grouped.merge, grouped.empty)
            answers.update({clique: values.astype(np.float64) for clique, values in exact.items()})

        model = estimation.estimate(self.domain_, measurements, total, iterations=max(50, self.iterations // 4))
        if len(names) > 1:
            if self.method == "mst":
                measurements += self._mst(answers, model, pair_sigma, selection_rho)
            else:
                model, measurements = self._aim(
                    answers, model, measurements, pair_sigma, selection_rho, total, progress=progress
                )
        self.model_ = estimation.estimate(
            self.domain_, measurements, total, iterations=self.iterations, warm_start=model
        )
        self.delta_ = delta
        self.target_epsilon_ = epsilon
        self.epsilon_ = self.ledger_.epsilon(delta=delta, accountant=ACCOUNTANT)
        if self.epsilon_ > epsilon * (1 + 1e-6):  # the plan was calibrated to the target: a bug otherwise
            raise RuntimeError(f"spent epsilon {self.epsilon_} exceeds the target {epsilon}")
        finished = datetime.datetime.now(datetime.timezone.utc)
        self.fit_seconds_ = (finished - started).total_seconds()
        # The statement is dated when the release was made, so every call (and a saved copy) states the same.
        self.fitted_at_ = finished.isoformat(timespec="seconds")
        self._sampling = np.random.default_rng(self.seed)
        return self

    def _grid(self, categorical_counts, sigma):
        """Equal-width bins of the numeric columns: `bins`, halved (down to 4) while the rows per bin,
        estimated from the categorical columns' noisy counts, are below half the one-way noise's sigma.

        Every bin's noisy count carries noise of standard deviation sigma whatever the grid, so a grid too
        fine for the table drowns each bin's rows in noise: on the 398-row breast-cancer table at
        epsilon=1 (sigma about 49 against about 6 rows per bin of 64) the merged groups could hold all
        the rows in one group and noise alone in the others, and the label's relationship with the
        features came out reversed in some runs; 16 bins keep it. Without a categorical column: `bins`.
        """
        if not categorical_counts:
            return self.bins
        rows = max(1.0, float(np.mean([counts.sum() for counts in categorical_counts])))
        grids = counting.candidate_grids(self.bins)
        return next((grid for grid in grids if rows / grid >= sigma / 2), grids[-1])

    def _groups(self, name, noisy, nonnegative, sigma, total):
        """Code -> group: categories with a noisy count below 3 sigma merged, numeric bins merged into
        contiguous groups of at least max(3 sigma, total / max_bins) rows of the `nonnegative` estimate."""
        column = self.schema[name]
        threshold = _RARE_NOISE_MULTIPLE * sigma
        mapping = np.zeros(noisy.size, dtype=np.int64)
        if isinstance(column, CategoricalColumn):
            kept = noisy >= threshold
            mapping[kept] = np.arange(kept.sum())
            mapping[~kept] = kept.sum()  # one group of the rare codes (empty if none)
            return mapping
        values = noisy.size - int(column.nullable)
        threshold = max(threshold, total / self.max_bins)
        group, running = 0, 0.0
        for code in range(values):
            mapping[code] = group
            running += nonnegative[code]
            if running >= threshold and code < values - 1:
                group, running = group + 1, 0.0
        if running < threshold and group > 0:
            mapping[mapping == group] = group - 1  # a thin last group joins the one before
            group -= 1
        if column.nullable:
            mapping[values] = group + 1
        return mapping

    @staticmethod
    def _within_group(weights, mapping):
        result = {}
        for group in range(int(mapping.max()) + 1):
            members = np.flatnonzero(mapping == group)
            w = weights[members]
            result[group] = (members, w / w.sum() if w.sum() > 0 else np.full(members.size, 1 / members.size))
        return result

    def _mst(self, answers, model, sigma, selection_rho):
        """Chooses a spanning tree of column pairs with the exponential mechanism and counts its pairs."""
        names = list(self.domain_)
        total = float(model.total)
        marginals = {name: counts for (name,), counts in _model_counts(model, [(name,) for name in names]).items()}
        errors = {
            pair: np.abs(
                answers[pair] - np.outer(marginals[pair[0]], marginals[pair[1]]).ravel() / total
            ).sum()
            for pair in itertools.combinations(names, 2)
        }
        component = {name: name for name in names}

        def root(name):
            while component[name] != name:
                name = component[name]
            return name

        measurements = []
        for _ in range(len(names) - 1):
            candidates = [pair for pair in errors if root(pair[0]) != root(pair[1])]
            pair = candidates[
                self._select([errors[c] for c in candidates], 1.0, selection_rho, "the next edge of the tree")
            ]
            component[root(pair[0])] = root(pair[1])
            noisy = self._measure(answers[pair], pair, sigma)
            measurements.append(estimation.Measurement(pair, noisy, sigma))
        return measurements

    def _aim(self, answers, model, measurements, sigma, selection_rho, total, *, progress):
        """AIM's rounds: choose the worst-fitted marginal (exponential mechanism), count it, re-fit."""
        names = list(self.domain_)
        workload = list(itertools.combinations(names, self.degree))
        candidates = {}
        for size in range(1, self.degree + 1):
            for clique in itertools.combinations(names, size):
                # AIM's weight: how much of the workload the marginal covers.
                candidates[clique] = float(sum(len(set(clique) & set(w)) for w in workload))
        if progress is None:
            progress = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        bar = keras.utils.Progbar(self.rounds_, unit_name="round") if progress else None
        for round_index in range(self.rounds_):
            size_limit = self.max_model_size * (round_index + 1) / self.rounds_
            covered = {sub for clique in model.cliques for k in range(1, len(clique) + 1)
                       for sub in itertools.combinations(clique, k)}
            size = _ModelSize(self.domain_, model.cliques)
            allowed = [clique for clique in candidates if clique in covered or size.after(clique) <= size_limit]
            qualities = []
            estimates = _model_counts(model, allowed)
            for clique in allowed:
                estimate = estimates[clique]
                bias = _EXPECTED_ABS_NORMAL * sigma * estimate.size
                qualities.append(candidates[clique] * (np.abs(answers[clique] - estimate).sum() - bias))
            sensitivity = max(candidates[clique] for clique in allowed)
            clique = allowed[self._select(qualities, sensitivity, selection_rho, "the next marginal to count")]
            measurements.append(estimation.Measurement(clique, self._measure(answers[clique], clique, sigma), sigma))
            model = estimation.estimate(
                self.domain_, measurements, total, iterations=max(50, self.iterations // 4), warm_start=model
            )
            # A round can take seconds and AIM runs dozens: say where it is, as a bar on a terminal, else in
            # the log (the CLIs show INFO). The chosen marginal is the exponential mechanism's output,
            # already part of the release.
            if bar is not None:
                bar.update(round_index + 1)
            else:
                logging.info("AIM round %d of %d: counted the marginal of %s", round_index + 1, self.rounds_,
                             ", ".join(clique))
        return model, measurements

    # ----------------------------------------------------------------------------------------------

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise RuntimeError("call fit before sampling from the synthesizer")

    def sample(self, n, *, conditions=None):
        """Draws `n` synthetic rows, optionally conditioned on column values.

        Args:
            n: number of rows, an integer >= 0.
            conditions: optional dict column name -> value (a category, a number within the schema's
                bounds, or None for missing): every row takes these values and the other columns are
                drawn from the model's conditional distribution given them.

        Returns:
            A DataFrame with the schema's columns, order and dtypes.

        Raises:
            RuntimeError: before `fit`.
            ValueError: if `n` is negative.
            SchemaError: if a condition names an unknown column or a value outside the schema.
        """
        self._check_fitted()
        n = check_count(n, name="n", minimum=0)
        conditions = check_conditions(conditions, self.schema)
        codes = {name: self.discretizer.code(name, value) for name, value in conditions.items()}
        warn_rare_conditions(self, conditions, codes)
        evidence = {name: int(self.groups_[name][code]) for name, code in codes.items()}
        grouped = _draw(self.model_, n, evidence, self._sampling)
        fine = {}
        for name in self.schema.names:
            if name in codes:
                fine[name] = np.full(n, codes[name], dtype=np.int64)
                continue
            fine[name] = np.zeros(n, dtype=np.int64)
            for group, (members, weights) in self.within_group_[name].items():
                rows = np.flatnonzero(grouped[name] == group)
                fine[name][rows] = members[self._sampling.choice(members.size, size=rows.size, p=weights)]
        return self.discretizer.decode(fine, self._sampling, fixed=conditions, shapes=self.shapes_)

    def privacy_statement(self):
        """The privacy statement of this synthesizer's samples.

        Returns:
            A `PrivacyStatement` at the delta of `fit`, with the RDP accountant.

        Raises:
            RuntimeError: before `fit`.
        """
        self._check_fitted()
        details = {
            "method": self.method,
            "target_epsilon": self.target_epsilon_,
            "zcdp_rho": self.rho_,
            "measurements": len(self.measurements_log_),
            "marginals": self.measurements_log_,
            "selections": sum(1 for p in self.ledger_.phases if isinstance(p.event, dp_accounting.ZCDpEvent)),
            "settings": {
                "rounds": self.rounds_ if self.method == "aim" else None,
                "degree": self.degree if self.method == "aim" else 2,
                "max_bins": self.max_bins,
                "bins": self.bins_,
                "finest_bins": self.bins,
                "max_model_size": self.max_model_size,
                "selection_fraction": self.selection_fraction if self.method == "aim" else 1 / 3,
                "iterations": self.iterations,
            },
            "noise": "reproducible (noise_seed was given): NOT for release" if self.reproducible_noise_
            else "secret (128 bits of OS entropy)",
            "reproducible_noise": self.reproducible_noise_,
            "ledger": self.ledger_.to_dict(),
            "schema": self.schema.to_dict(),
            "schema_source": self.schema.source,
        }
        cautions = [REPRODUCIBLE_TABLE_NOISE_WARNING] if self.reproducible_noise_ else []
        if self.schema.source != "public":
            cautions.append(INFERRED_SCHEMA_WARNING)
        return PrivacyStatement(epsilon=self.epsilon_, delta=self.delta_, accountant=ACCOUNTANT, details=details,
                                guarantee=marginal_guarantee(self.method), warning=" ".join(cautions) or None,
                                date=self.fitted_at_)

    def save(self, csv_path, *, rows, conditions=None):
        """Writes `rows` synthetic rows to a CSV and the privacy statement to a JSON file beside it.

        See `privgan.tabular.statement.write_synthetic`; `conditions` as in `sample`.
        """
        self._check_fitted()
        return write_synthetic(self, csv_path, rows=rows, conditions=conditions)


class _ModelSize:
    """The size (MB) of a model's junction tree with one more clique (`estimation.model_size`).

    A clique whose columns lie in separate connected parts of the model closes no cycle: the junction
    tree keeps its cliques (less the one-column ones it absorbs) and gains this one, so the size is
    added up without building a junction tree. Other cliques are sized by building it. Only public
    quantities (the model's structure) are involved.
    """

    def __init__(self, sizes, cliques):
        self.sizes, self.cliques = sizes, list(cliques)
        self.size = estimation.model_size(sizes, self.cliques)
        self.component = {}
        for clique in self.cliques:
            for name in clique:
                self.component.setdefault(name, name)
            for name in clique[1:]:
                self.component[self._root(name)] = self._root(clique[0])
        self.alone = {clique[0] for clique in self.cliques if len(clique) == 1}
        self.alone -= {name for clique in self.cliques if len(clique) > 1 for name in clique}

    def _root(self, name):
        while self.component.setdefault(name, name) != name:
            name = self.component[name]
        return name

    def after(self, clique):
        if len({self._root(name) for name in clique}) < len(clique):
            return estimation.model_size(self.sizes, self.cliques + [clique])
        absorbed = sum(self.sizes[name] for name in clique if name in self.alone)
        return self.size + (math.prod(self.sizes[name] for name in clique) - absorbed) * 8 / 2**20


def _model_counts(model, cliques):
    """The model's counts on each clique, flattened in the clique's order (`GraphicalModel.counts_of`)."""
    return model.counts_of(cliques)


def _draw(model, n, evidence, rng):
    """`n` rows of group codes from the model given `evidence` (column -> code), column by column."""
    jtree, elimination_order = estimation.junction_tree(model.sizes, model.cliques)
    neighbours = {name: set() for name in model.sizes}
    for clique in jtree.nodes:
        for name in clique:
            neighbours[name].update(clique)
    order = list(reversed(elimination_order))
    return inference.sample(model.factors(), model.sizes, order, neighbours, n, rng, evidence)
