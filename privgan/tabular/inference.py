"""Exact inference on a fitted Private-PGM graphical model, in numpy: marginals and conditional sampling.

A model is given by its log-potentials, one array per clique of columns (`estimation.GraphicalModel`);
its distribution is proportional to exp(sum of the potentials). Private-PGM's own inference runs in JAX and
compiles a program for every new model structure and query shape, which costs far more than the
arithmetic for the small models of a table: AIM asks for the marginals of every candidate clique of
every intermediate model, and sampling needs one per column. Variable elimination in numpy computes them
exactly without compiling anything.

Evidence (a column fixed to one code) is a log-factor that is 0 at that code and -inf elsewhere, so
every marginal and every sample is from the conditional distribution given it.
"""

import numpy as np


class LogFactor:
    """A non-negative function of some columns, as an array of logs with one axis per column.

    Args:
        columns: the columns, in the order of the axes.
        values: the log-values, an array with one axis per column.
    """

    def __init__(self, columns, values):
        self.columns = tuple(columns)
        self.values = np.asarray(values, dtype=np.float64)

    def aligned(self, columns):
        """The values with axes reordered and broadcast to `columns` (a superset of this factor's)."""
        present = [c for c in columns if c in self.columns]
        values = np.transpose(self.values, [self.columns.index(c) for c in present])
        shape = [values.shape[present.index(c)] if c in present else 1 for c in columns]
        return values.reshape(shape)


def _logsumexp(values, axis):
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(np.log(np.sum(np.exp(values - top), axis=axis, keepdims=True)) + top, axis=axis)


def _combine(factors):
    columns = tuple(dict.fromkeys(c for f in factors for c in f.columns))
    return LogFactor(columns, sum(f.aligned(columns) for f in factors))


def marginal(factors, sizes, query, evidence=None):
    """The distribution of the columns `query` under the model (given the evidence), by variable elimination.

    Args:
        factors: the model's `LogFactor`s.
        sizes: dict column -> number of codes.
        query: the columns of the result, in order.
        evidence: optional dict column -> code.

    Returns:
        An array with one axis per query column, summing to 1.
    """
    query = tuple(query)
    factors = _relevant(list(factors) + _evidence_factors(sizes, evidence), query)
    # Each queried column gets a factor of its own, so that the result has all its axes.
    factors += [LogFactor((c,), np.zeros(sizes[c])) for c in query]
    remaining = {c for f in factors for c in f.columns} - set(query)
    while remaining:
        # Greedy: eliminate the column whose elimination builds the smallest intermediate factor.
        def cost(column, factors=factors):
            involved = {c for f in factors if column in f.columns for c in f.columns}
            return np.prod([sizes[c] for c in involved], dtype=np.float64)

        column = min(sorted(remaining), key=cost)
        involved = [f for f in factors if column in f.columns]
        factors = [f for f in factors if column not in f.columns]
        combined = _combine(involved)
        axis = combined.columns.index(column)
        kept = combined.columns[:axis] + combined.columns[axis + 1 :]
        factors.append(LogFactor(kept, _logsumexp(combined.values, axis)))
        remaining.remove(column)
    log_joint = _combine(factors).aligned(query)
    log_joint = np.broadcast_to(log_joint, [sizes[c] for c in query])
    top = np.max(log_joint)
    joint = np.exp(log_joint - top) if np.isfinite(top) else np.zeros_like(log_joint)
    return joint / joint.sum()


def _relevant(factors, query):
    """The factors connected to the query's columns: the others only scale the result by a constant."""
    parent = {}

    def root(column):
        while parent.setdefault(column, column) != column:
            column = parent[column]
        return column

    for factor in factors:
        for column in factor.columns[1:]:
            parent[root(column)] = root(factor.columns[0])
    wanted = {root(column) for column in query}
    return [f for f in factors if f.columns and root(f.columns[0]) in wanted]


def _evidence_factors(sizes, evidence):
    factors = []
    for column, code in (evidence or {}).items():
        values = np.full(sizes[column], -np.inf)
        values[code] = 0.0
        factors.append(LogFactor((column,), values))
    return factors


def sample(factors, sizes, order, neighbours, n, rng, evidence=None):
    """`n` rows of codes drawn from the model (given the evidence), one column at a time.

    Each column is drawn from its distribution given the columns drawn before it among its neighbours;
    with `order` the reverse of a perfect elimination order of the model's triangulated graph (a junction
    tree's) and `neighbours` each column's neighbours in that graph, that is its distribution given all
    the columns drawn before it, so the rows are exact draws from the model.

    Args:
        factors: the model's `LogFactor`s.
        sizes: dict column -> number of codes.
        order: the columns in drawing order.
        neighbours: dict column -> set of columns sharing a clique of the triangulated graph with it.
        n: number of rows.
        rng: a `numpy.random.Generator`.
        evidence: optional dict column -> code.

    Returns:
        A dict column -> int64 array of `n` codes.
    """
    rows = {}
    for column in order:
        parents = tuple(c for c in rows if c in neighbours[column])
        joint = marginal(factors, sizes, parents + (column,), evidence)
        conditional = joint[tuple(rows[p] for p in parents)] if parents else np.broadcast_to(joint, (n, joint.size))
        totals = conditional.sum(axis=1, keepdims=True)
        uniform = np.full_like(conditional, 1 / joint.shape[-1])
        conditional = np.divide(conditional, totals, out=uniform, where=totals > 0)
        cumulative = np.cumsum(conditional, axis=1)
        draws = (cumulative < rng.random((n, 1)) * cumulative[:, -1:]).sum(axis=1)
        rows[column] = np.minimum(draws, sizes[column] - 1).astype(np.int64)
    return rows
