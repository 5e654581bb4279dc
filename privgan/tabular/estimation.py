"""Fitting a graphical model to noisy marginal counts, in numpy: Private-PGM's mirror descent without JAX.

`estimate` solves the problem of Private-PGM's `mbi.estimation.MirrorDescent` (McKenna et al. 2019,
Algorithm 1): find the distribution of a graphical model, scaled to the known number of rows, whose
marginals minimise the L2 distance to the noisy counts, each weighted by 1 / the noise's standard
deviation. The model's log-potentials live on the maximal measured cliques; each step computes the
model's marginals by belief propagation on a junction tree (in log space), takes the loss's gradient in
those marginals, and subtracts it, times a step size, from the potentials (mirror descent with the
entropy as mirror map). The step size starts at 2 / (L * total), L the gradient's Lipschitz constant,
and follows Private-PGM's Armijo rule: a step that decreases the loss enough is kept and the step grows
by 1%, otherwise it is undone and the step halves. A warm start adds the previous model's potentials
into the new cliques, so each AIM round starts from the last round's model.

Private-PGM runs the same arithmetic in JAX, which compiles a new XLA program for each model structure:
on a table's small models, compiling took about 75% of an AIM fit (88 of 122 s on the 569-row quick
start, cProfile) and the arithmetic little. Here nothing is compiled, and JAX is not imported.

Everything here is post-processing of noisy counts that were already released.
"""

import collections
import dataclasses
import itertools
import math

import networkx as nx
import numpy as np

from privgan.tabular import inference


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Noisy counts of one marginal: the cells of `clique` (first column slowest), with their noise.

    Args:
        clique: the columns, a tuple of names.
        values: the noisy counts, flattened in the clique's order (numpy's C order).
        stddev: the noise's standard deviation, > 0: one number, or one per cell (a sum of `k` cells each
            with noise sigma has sigma * sqrt(k)).

    Raises:
        ValueError: on an empty clique, non-finite counts or a non-positive standard deviation.
    """

    clique: tuple
    values: np.ndarray
    stddev: object

    def __post_init__(self):
        object.__setattr__(self, "clique", tuple(self.clique))
        values = np.asarray(self.values, dtype=np.float64).ravel()
        stddev = np.asarray(self.stddev, dtype=np.float64)
        if not self.clique or len(set(self.clique)) != len(self.clique):
            raise ValueError(f"clique must name distinct columns, got {self.clique!r}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"the counts of {self.clique} must be finite")
        if stddev.ndim not in (0, 1) or (stddev.ndim == 1 and stddev.shape != values.shape):
            raise ValueError(f"stddev of {self.clique} must be one number or one per cell, got shape {stddev.shape}")
        if not np.all(np.isfinite(stddev) & (stddev > 0)):
            raise ValueError(f"stddev of {self.clique} must be > 0 and finite")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "stddev", float(stddev) if stddev.ndim == 0 else stddev)


def grouped_measurement(measurement, mapping):
    """A one-column measurement with its codes merged into groups: each group's count is the sum of its
    codes' noisy counts, with noise sigma * sqrt(number of codes) (post-processing).

    Args:
        measurement: a `Measurement` of one column with a scalar stddev.
        mapping: int array, code -> group (groups 0 .. max, each holding at least one code).
    """
    mapping = np.asarray(mapping)
    groups = int(mapping.max()) + 1
    members = np.bincount(mapping, minlength=groups)
    return Measurement(
        measurement.clique,
        np.bincount(mapping, weights=measurement.values, minlength=groups),
        measurement.stddev * np.sqrt(members),
    )


def maximal_cliques(cliques):
    """The cliques not contained in another, the largest first (as Private-PGM's `maximal_subset`)."""
    result, kept = [], []
    for clique in sorted(cliques, key=len, reverse=True):
        members = frozenset(clique)
        if not any(members <= other for other in kept):
            result.append(tuple(clique))
            kept.append(members)
    return result


def _elimination(sizes, cliques):
    """(elimination order, the maximal cliques of the triangulated graph) for the model with these cliques.

    Private-PGM's rule: a connected tree is eliminated leaves first (no fill-in); otherwise greedily, the
    column whose elimination builds the smallest table first (ties: the earlier column). The
    triangulated graph's maximal cliques are the maximal ones among each column and its neighbours
    when it is eliminated. Plain sets and dicts, updated incrementally: AIM sizes hundreds of
    hypothetical models a round.
    """
    names = list(sizes)
    neighbours = {name: set() for name in names}
    covered = set()
    for clique in cliques:
        covered.update(clique)
        for first, second in itertools.combinations(clique, 2):
            neighbours[first].add(second)
            neighbours[second].add(first)
    edges = sum(len(n) for n in neighbours.values()) // 2
    if edges and edges == len(names) - 1 and _connected(neighbours):
        order = _postorder(neighbours, names[0])
    else:
        order = None

    def cost(name):
        if name not in covered:
            return 1
        return sizes[name] * math.prod(sizes[n] for n in neighbours[name])

    costs = {name: cost(name) for name in names}
    remaining, found, elimination = list(names), [], []
    for step in range(len(names)):
        name = order[step] if order is not None else min(remaining, key=costs.__getitem__)
        remaining.remove(name)
        elimination.append(name)
        others = neighbours.pop(name)
        found.append(frozenset(others | {name}))
        for other in others:
            neighbours[other] |= others - {other}
            neighbours[other].discard(name)
        for other in others:
            costs[other] = cost(other)
    maximal = []
    for clique in sorted(set(found), key=len, reverse=True):
        if not any(clique <= kept for kept in maximal):
            maximal.append(clique)
    return elimination, [tuple(name for name in names if name in clique) for clique in maximal]


def _connected(neighbours):
    start = next(iter(neighbours))
    seen, frontier = {start}, [start]
    while frontier:
        for other in neighbours[frontier.pop()]:
            if other not in seen:
                seen.add(other)
                frontier.append(other)
    return len(seen) == len(neighbours)


def _postorder(neighbours, root):
    """Depth-first postorder of a tree: every column comes after all the columns below it."""
    order, stack, seen = [], [(root, iter(sorted(neighbours[root], key=list(neighbours).index)))], {root}
    while stack:
        name, children = stack[-1]
        child = next((c for c in children if c not in seen), None)
        if child is None:
            order.append(name)
            stack.pop()
        else:
            seen.add(child)
            stack.append((child, iter(sorted(neighbours[child], key=list(neighbours).index))))
    return order


def junction_tree(sizes, cliques):
    """A junction tree of the model with these cliques and its elimination order (as Private-PGM's).

    Args:
        sizes: dict column -> number of codes, in the table's column order.
        cliques: tuples of columns.

    Returns:
        (a networkx forest whose nodes are the maximal cliques of the triangulated graph, each in the
        table's column order, and whose edges join cliques that share columns (a maximum spanning tree
        by the number shared); the elimination order, a list of columns).
    """
    order, nodes = _elimination(sizes, cliques)
    nodes = sorted(nodes)
    complete = nx.Graph()
    complete.add_nodes_from(nodes)
    for first, second in itertools.combinations(nodes, 2):
        shared = len(set(first) & set(second))
        if shared:
            complete.add_edge(first, second, weight=-shared)
    return nx.minimum_spanning_tree(complete), order


def model_size(sizes, cliques):
    """The size (MB, 8-byte cells) of the junction tree of a model with these cliques."""
    return sum(math.prod(sizes[name] for name in node) for node in _elimination(sizes, cliques)[1]) * 8 / 2**20


def _canonical(sizes, clique):
    return tuple(name for name in sizes if name in clique)


def _shape(sizes, clique):
    return tuple(sizes[name] for name in clique)


def _axes(outer, inner):
    """The axes of `outer` not in `inner`: summed to project onto `inner`."""
    return tuple(axis for axis, name in enumerate(outer) if name not in inner)


def _broadcast(sizes, outer, inner):
    """The shape that lays an array over `inner` (canonical) along the axes of `outer`."""
    return tuple(sizes[name] if name in inner else 1 for name in outer)


def _logsumexp(values, axes, shape):
    """log(sum(exp(values))) over `axes`, reshaped to `shape` (finite values: no -inf guard needed)."""
    top = values.max(axis=axes, keepdims=True)
    shifted = values - top
    np.exp(shifted, out=shifted)
    summed = shifted.sum(axis=axes).reshape(shape)
    np.log(summed, out=summed)
    summed += top.reshape(shape)
    return summed


@dataclasses.dataclass(frozen=True)
class GraphicalModel:
    """A fitted model: the distribution proportional to exp(sum of the log-potentials), times `total`.

    Args:
        sizes: dict column -> number of codes, in the table's column order.
        potentials: dict clique (in the table's column order) -> array of log-potentials, one axis per column.
        total: the number of rows the model's counts sum to, > 0.
    """

    sizes: dict
    potentials: dict
    total: float

    @property
    def cliques(self):
        return list(self.potentials)

    def factors(self):
        """The log-potentials as `inference.LogFactor`s."""
        return [inference.LogFactor(clique, values) for clique, values in self.potentials.items()]

    def counts(self, clique):
        """The model's counts of the marginal of `clique`, an array with one axis per column, in its order."""
        return inference.marginal(self.factors(), self.sizes, tuple(clique)) * self.total

    def counts_of(self, cliques):
        """The model's counts of many marginals at once: dict clique -> counts flattened in its order.

        One calibration of the junction tree gives every marginal inside one of its cliques; a pair of
        columns in different ones is carried along the tree from the first column's clique (each step
        multiplies by the next clique's distribution given the separator), for all second columns at
        once. Larger cliques across the tree fall back to variable elimination (`counts`).
        """
        calibration = _Calibration(self.sizes, self.cliques)
        flat = np.concatenate([self.potentials[c].ravel() for c in calibration.cliques])
        nodes = calibration.node_counts(flat, self.total)
        homes = {}
        for node in nodes:
            for name in node:
                if name not in homes or nodes[node].size < nodes[homes[name]].size:
                    homes[name] = node
        result, pairs = {}, collections.defaultdict(list)
        for clique in map(tuple, cliques):
            inside = [node for node in nodes if set(clique) <= set(node)]
            if inside:
                node = min(inside, key=lambda n: nodes[n].size)
                result[clique] = _project(nodes[node], node, clique).ravel()
            elif len(clique) == 2:
                pairs[clique[0]].append(clique)
            else:
                result[clique] = self.counts(clique).ravel()
        for first, wanted in pairs.items():
            joint = calibration.joint_with(first, nodes, homes[first])
            for clique in wanted:
                second = clique[1]
                if second in joint:
                    node = joint[second]
                    table = _project(node[1], (first,) + node[0], (first, second))
                else:  # in another part of the forest: independent
                    table = np.outer(nodes[homes[first]].sum(axis=_axes(homes[first], (first,))),
                                     nodes[homes[second]].sum(axis=_axes(homes[second], (second,)))) / self.total
                result[clique] = table.ravel()
        return {tuple(clique): result[tuple(clique)] for clique in cliques}


def _project(counts, columns, clique):
    """Counts over `columns` summed onto `clique`, with the axes in the clique's order."""
    summed = counts.sum(axis=_axes(columns, clique)) if len(clique) < len(columns) else counts
    kept = [name for name in columns if name in clique]
    return np.transpose(summed, [kept.index(name) for name in clique])


class _Calibration:
    """Belief propagation for one model structure (its potentials' cliques), in log space.

    The junction tree, the message schedule and every axis and shape are worked out once, here; a call
    is then a few numpy operations per node and edge. Potentials come as one flat vector, the cliques'
    arrays one after the other (`cliques`, `offsets`).
    """

    def __init__(self, sizes, cliques):
        self.sizes = sizes
        self.cliques = [_canonical(sizes, c) for c in cliques]
        sizes_of = [math.prod(_shape(sizes, c)) for c in self.cliques]
        self.offsets = dict(zip(self.cliques, np.cumsum([0] + sizes_of[:-1]).tolist()))
        self.length = sum(sizes_of)
        self.tree, self.order = junction_tree(sizes, self.cliques)
        nodes = sorted(self.tree.nodes)
        # Each potential lies in the smallest node that contains it.
        self.home = {
            c: min((n for n in nodes if set(c) <= set(n)), key=lambda n: math.prod(_shape(sizes, n)))
            for c in self.cliques
        }
        self.nodes = []
        for node in nodes:
            hosted = [(self.offsets[c], math.prod(_shape(sizes, c)), _broadcast(sizes, node, c))
                      for c in self.cliques if self.home[c] == node]
            # A node whose potentials do not span all its axes is filled out to its shape.
            spans = any(b == _shape(sizes, node) for _, _, b in hosted)
            self.nodes.append((node, _shape(sizes, node), hosted, spans))
        # Collect (leaves to root) then distribute (root to leaves), per connected part of the forest.
        self.upward, self.roots = [], []
        for part in nx.connected_components(self.tree):
            root = min(part)
            self.roots.append((root, sorted(part)))
            for parent, child in reversed(list(nx.bfs_edges(self.tree, root))):
                separator = tuple(n for n in child if n in parent)
                self.upward.append(
                    (parent, child, _axes(child, separator), _broadcast(sizes, parent, separator),
                     _axes(parent, separator), _broadcast(sizes, child, separator), _shape(sizes, separator))
                )

    def _beliefs(self, flat):
        """Each node's log-potential: the sum of the potentials it holds, over its axes."""
        beliefs = {}
        for node, shape, hosted, spans in self.nodes:
            belief = None if spans else np.zeros(shape)
            for offset, size, broadcast in hosted:
                term = flat[offset:offset + size].reshape(broadcast)
                belief = term if belief is None else belief + term
            beliefs[node] = belief
        return beliefs

    def node_counts(self, flat, total):
        """The model's counts on every node of the junction tree (dict node -> array), scaled to `total`.

        The messages are passed on exp(potentials - their maximum), each message scaled to a maximum
        of 1, so no cell exceeds 1 and nothing overflows: sums and products instead of a logsumexp per
        message, several times fewer passes over the tables. Should a node still come out empty (cells
        below 1e-308 of its maximum everywhere: potentials far beyond a noisy table's), the messages
        are passed again in log space (`_log_node_counts`).
        """
        factors = {}
        for node, belief in self._beliefs(flat).items():
            factor = belief - belief.max()
            factors[node] = np.exp(factor, out=factor)
        messages = {}
        with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
            for parent, child, child_axes, in_parent, _, _, separator in self.upward:
                message = factors[child].sum(axis=child_axes).reshape(separator)
                message /= message.max()
                messages[child] = message
                factors[parent] *= message.reshape(in_parent)
            for parent, child, _, _, parent_axes, in_child, separator in reversed(self.upward):
                # The parent's table already holds the child's message: divide it out (0 where it is 0,
                # and the parent's table is 0 there too).
                message = factors[parent].sum(axis=parent_axes).reshape(separator)
                np.divide(message, messages[child], out=message, where=messages[child] > 0)
                message /= message.max()
                factors[child] *= message.reshape(in_child)
            counts = {}
            for node, factor in factors.items():
                normaliser = factor.sum()
                if not 0 < normaliser < np.inf:
                    return self._log_node_counts(flat, total)
                factor *= total / normaliser
                counts[node] = factor
        return counts

    def _log_node_counts(self, flat, total):
        """`node_counts` with log-space messages (a logsumexp each): slower, never underflows."""
        beliefs = self._beliefs(flat)
        messages = {}
        for parent, child, child_axes, in_parent, _, _, separator in self.upward:
            messages[child] = message = _logsumexp(beliefs[child], child_axes, separator)
            beliefs[parent] = beliefs[parent] + message.reshape(in_parent)
        for parent, child, _, _, parent_axes, in_child, separator in reversed(self.upward):
            message = _logsumexp(beliefs[parent], parent_axes, separator)
            message -= messages[child]
            beliefs[child] = beliefs[child] + message.reshape(in_child)
        counts = {}
        for root, part in self.roots:
            top = beliefs[root].max()
            log_normaliser = np.log(np.exp(beliefs[root] - top).sum()) + top - math.log(total)
            for node in part:
                counts[node] = np.exp(beliefs[node] - log_normaliser)
        return counts

    def joint_with(self, first, counts, start):
        """For each column in `first`'s part of the forest: (its node, the counts of `first` and the node's
        columns, `first` on the first axis), carried from `start` (a node holding `first`) along the tree."""
        sizes = self.sizes
        eye = np.eye(sizes[first]).reshape((sizes[first],) + _broadcast(sizes, start, (first,)))
        joints = {start: eye * counts[start][None]}
        for parent, child in nx.bfs_edges(self.tree, start):
            separator = tuple(n for n in child if n in parent)
            on_separator = joints[parent].sum(axis=tuple(a + 1 for a in _axes(parent, separator)))
            given = counts[child].sum(axis=_axes(child, separator), keepdims=True)
            conditional = np.divide(counts[child], given, out=np.zeros(counts[child].shape), where=given > 0)
            shape = (sizes[first],) + _broadcast(sizes, child, separator)
            joints[child] = on_separator.reshape(shape) * conditional[None]
        found = {}
        for node in sorted(joints, key=lambda n: joints[n].size):
            for name in node:
                found.setdefault(name, (node, joints[node]))
        return found


class _Loss:
    """0.5 * sum over measurements of ||(model counts - noisy counts) / stddev||^2, and its gradient.

    All measured cells form one vector. Each measurement reads its cells from the smallest potential
    clique that holds it, whose counts are read once from the smallest junction-tree node holding it,
    and its gradient goes to that potential clique (Private-PGM's routing).
    """

    def __init__(self, calibration, measurements):
        sizes = calibration.sizes
        self.reads, values, weights, writes = [], [], [], []
        position = 0
        for m in measurements:
            clique = _canonical(sizes, m.clique)
            order = [m.clique.index(name) for name in clique]
            shape = _shape(sizes, m.clique)
            values.append(m.values.reshape(shape).transpose(order).ravel())
            stddev = np.broadcast_to(np.asarray(m.stddev, dtype=np.float64), (m.values.size,))
            weights.append(1.0 / np.square(stddev.reshape(shape).transpose(order).ravel()))
            size = values[-1].size
            home = clique if clique in calibration.cliques else min(
                (c for c in calibration.cliques if set(clique) <= set(c)), key=lambda c: math.prod(_shape(sizes, c))
            )
            self.reads.append((home, _axes(home, clique) or None))
            writes.append((home, position, size, _broadcast(sizes, home, clique)))
            position += size
        self.values, self.weights = np.concatenate(values), np.concatenate(weights)
        homes = {home for home, _ in self.reads}
        self.clique_reads = [
            (c, calibration.home[c], _axes(calibration.home[c], c) or None) for c in calibration.cliques if c in homes
        ]
        # The gradient's Lipschitz constant, exact for these marginal queries (Private-PGM's
        # calculate_l2_lipschitz_from_metadata): per potential clique, the sum over its measurements of
        # max(1 / stddev^2) times the number of cells summed into each measured cell.
        blocks = collections.defaultdict(float)
        for home, start, size, _ in writes:
            blocks[home] += float(self.weights[start:start + size].max()) * math.prod(_shape(sizes, home)) / size
        self.lipschitz = max(blocks.values())
        # The gradient is written into views of one buffer laid out as the potentials.
        self.buffer = np.zeros(calibration.length)
        self.writes = [
            (self.buffer[calibration.offsets[home]:calibration.offsets[home] + math.prod(_shape(sizes, home))]
             .reshape(_shape(sizes, home)), start, size, broadcast)
            for home, start, size, broadcast in writes
        ]

    def cells(self, counts):
        """The model's counts of every measured cell, one vector."""
        on = {c: counts[node] if axes is None else counts[node].sum(axis=axes) for c, node, axes in self.clique_reads}
        return np.concatenate([(on[home] if axes is None else on[home].sum(axis=axes)).ravel()
                               for home, axes in self.reads])

    def value(self, cells):
        residual = cells - self.values
        return 0.5 * float(np.dot(residual * residual, self.weights))

    def gradient(self, cells):
        """(the gradient in the measured cells, the gradient in the potentials: a fresh flat vector)."""
        scaled = (cells - self.values) * self.weights
        self.buffer[:] = 0.0
        for view, start, size, broadcast in self.writes:
            view += scaled[start:start + size].reshape(broadcast)
        return scaled, self.buffer.copy()


def estimate(sizes, measurements, total, *, iterations, warm_start=None):
    """Fits a graphical model to noisy marginal counts by Private-PGM's mirror descent (see the module).

    Args:
        sizes: dict column -> number of codes, in the table's column order.
        measurements: `Measurement`s on cliques of these columns.
        total: the known number of rows, > 0.
        iterations: mirror-descent steps (rounded up to a multiple of 50, as Private-PGM), >= 1.
        warm_start: a `GraphicalModel` whose cliques each lie within a measured one, or None (uniform).

    Returns:
        A `GraphicalModel` with potentials on the maximal measured cliques.

    Raises:
        ValueError: if an argument is out of range or a measurement names an unknown column.
    """
    if not total > 0:
        raise ValueError(f"total must be > 0, got {total!r}")
    if not measurements:
        raise ValueError("estimate needs at least one measurement")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations!r}")
    for m in measurements:
        if any(name not in sizes for name in m.clique) or m.values.size != math.prod(_shape(sizes, m.clique)):
            raise ValueError(f"measurement of {m.clique} does not fit the columns' sizes")
    cliques = maximal_cliques(list(dict.fromkeys(_canonical(sizes, m.clique) for m in measurements)))
    calibration = _Calibration(sizes, cliques)
    potentials = np.zeros(calibration.length)
    for old, values in (warm_start.potentials.items() if warm_start is not None else ()):
        containing = [c for c in calibration.cliques if set(old) <= set(c)]
        if not containing:
            raise ValueError(f"warm_start's clique {old} lies in no measured clique")
        home = min(containing, key=lambda c: math.prod(_shape(sizes, c)))
        offset, shape = calibration.offsets[home], _shape(sizes, home)
        view = potentials[offset:offset + math.prod(shape)].reshape(shape)
        view += values.reshape(_broadcast(sizes, home, old))
    loss = _Loss(calibration, measurements)
    step = 2.0 / (loss.lipschitz * total)
    cells = loss.cells(calibration.node_counts(potentials, total))
    current = loss.value(cells)
    scaled, gradient = loss.gradient(cells)
    for _ in range(50 * math.ceil(iterations / 50)):
        trial = potentials - step * gradient
        trial_cells = loss.cells(calibration.node_counts(trial, total))
        trial_loss = loss.value(trial_cells)
        # Armijo: keep a step that decreases the loss by at least half the linear prediction.
        if current - trial_loss >= 0.5 * step * float(np.dot(scaled, cells - trial_cells)):
            potentials, cells, current = trial, trial_cells, trial_loss
            scaled, gradient = loss.gradient(cells)
            step *= 1.01
        else:
            step *= 0.5
    return GraphicalModel(
        dict(sizes),
        {c: potentials[o:o + math.prod(_shape(sizes, c))].reshape(_shape(sizes, c)).copy()
         for c, o in calibration.offsets.items()},
        float(total),
    )
