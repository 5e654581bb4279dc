"""DP-SGD across replicas and workers: the strategies supported, each replica's share of a global Poisson
batch, and what the workers of a `MultiWorkerMirroredStrategy` must agree on before a fit.

One DP step is one global Poisson batch, clipped, summed and noised once, whatever the number of
devices. Under `tf.distribute.MirroredStrategy` (one machine) and
`tf.distribute.MultiWorkerMirroredStrategy` (several), every worker runs the same sampler on the whole
private dataset and replica r of R keeps rows r, r + R, ... of each global batch (`replica_shares`), so
the shares cover the batch exactly once; `privgan.dp.private_gradients` divides each share's clipped sum
by the global expected batch size and adds the noise on replica 0 only, and the optimizer's all-reduce
sums the shares into the single-device update.

That needs the workers to agree (`agree_across_workers`, a collective at the start of each fit):
  - on the secrets: the chief's Poisson sampling seed and the chief's noise key are broadcast to the
    other workers over the strategy's collectives (in memory, never written anywhere), so every worker
    draws the same batches; the noise is added by replica 0 alone in any case;
  - on the state: the same private data in the same row order (a 64-bit fingerprint), the same DP step
    count and privacy parameters, the same explicit seeds. A worker holding other data would sample other
    rows at the same positions: one example could land in two workers' shares of a step, twice the
    sensitivity the accountant assumes. Any disagreement stops every worker with the same error.

Strategies that shard a dataset's elements or variables in other ways (parameter servers, TPUs,
`CentralStorageStrategy`) are refused when they have several replicas.
"""

import hashlib

import numpy as np
import tensorflow as tf

SUPPORTED_STRATEGIES = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)


STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name):
    """The distribution strategy an experiment's `--strategy` flag names.

    Args:
        name: "default" (one device), "mirrored" (`MirroredStrategy`: every GPU of this machine, or
            its CPU) or "multi_worker" (`MultiWorkerMirroredStrategy` over the cluster that the
            `TF_CONFIG` environment variable describes; every worker runs the same command).

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: for another name.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def check_strategy(strategy):
    """Raises NotImplementedError for a strategy with several replicas that DP training does not support."""
    if strategy.num_replicas_in_sync > 1 and not isinstance(strategy, SUPPORTED_STRATEGIES):
        raise NotImplementedError(
            f"DP training under {type(strategy).__name__} is not supported: use "
            "tf.distribute.MirroredStrategy (one machine), tf.distribute.MultiWorkerMirroredStrategy "
            "(several machines) or a single device"
        )


def is_multi_worker(strategy):
    """Whether `strategy` spans processes (workers) that must agree on seeds and state."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy):
    """Whether this process writes checkpoints: the chief (worker 0) of a cluster, or a lone process."""
    return bool(strategy.extended.should_checkpoint)


def replica_shares(strategy, dataset):
    """Distributes a dataset of global batches so that replica r of R gets rows r, r + R, ... of each.

    Every worker iterates the whole `dataset` (the same global batches, given the same seed and data) and
    keeps its replicas' shares, instead of the strategy's default of splitting or sharding the elements.

    Args:
        strategy: a `MirroredStrategy` or `MultiWorkerMirroredStrategy`.
        dataset: a `tf.data.Dataset` whose elements are batches (nested structures of tensors with a
            leading batch axis), or tuples of them (grouped batches: each is split the same way).

    Returns:
        A `tf.distribute.DistributedDataset` for `keras.Model.fit` (which then leaves it as it is).
    """
    replicas = strategy.num_replicas_in_sync
    packed_in_tuple = isinstance(dataset.element_spec, tuple)

    def per_worker(context):
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def shares(*element):
            element = element if packed_in_tuple else element[0]
            # One element per local replica, in order: the strategy hands them out round-robin.
            return tf.data.Dataset.range(local).map(
                lambda j: tf.nest.map_structure(lambda t: t[tf.cast(first + j, tf.int32) :: replicas], element)
            )

        return dataset.flat_map(shares).prefetch(2)

    return strategy.distribute_datasets_from_function(per_worker)


def fingerprint(arrays):
    """A 63-bit fingerprint of arrays' shapes, dtypes and bytes (which data, in which row order)."""
    digest = hashlib.blake2b(digest_size=8)
    for leaf in tf.nest.flatten(arrays):
        values = np.ascontiguousarray(leaf)
        digest.update(f"{values.dtype.str}{values.shape}".encode())
        digest.update(memoryview(values).cast("B"))
    return int.from_bytes(digest.digest(), "little") >> 1


def _sum_over_replicas(strategy, values, *, first_replica_only=False):
    """The sum over all replicas of an int64 vector, on every worker (or replica 0's value alone)."""

    @tf.function
    def all_reduce(local):
        def per_replica():
            context = tf.distribute.get_replica_context()
            first = tf.equal(context.replica_id_in_sync_group, 0)
            contribution = tf.where(first, local, tf.zeros_like(local)) if first_replica_only else tf.identity(local)
            return context.all_reduce(tf.distribute.ReduceOp.SUM, contribution)

        return strategy.run(per_replica)

    return strategy.experimental_local_results(all_reduce(tf.constant(values, tf.int64)))[0].numpy()


def agree_across_workers(strategy, *, secrets, checks):
    """Gives every worker the chief's secrets and stops every worker if their states differ.

    Under a single-process strategy (or none) there is nothing to agree on and `secrets` is returned.

    Args:
        strategy: the model's distribution strategy.
        secrets: a dict of name -> int64 value each process drew itself (seeds, keys); the chief's win.
        checks: a dict of name -> int64 value every worker must hold identically (fingerprints,
            step counts, explicit seeds).

    Returns:
        A dict with the chief's value of each secret.

    Raises:
        ValueError: on every worker, naming the checks on which some worker differs from the chief.
    """
    if not is_multi_worker(strategy):
        return dict(secrets)
    names = list(secrets) + list(checks)
    local = [int(secrets[name]) for name in secrets] + [int(checks[name]) for name in checks]
    chiefs = _sum_over_replicas(strategy, local, first_replica_only=True)  # the chief's broadcast
    differs = [int(mine != chief) for mine, chief in zip(local[len(secrets) :], chiefs[len(secrets) :])]
    if checks:
        differs = _sum_over_replicas(strategy, differs) > 0  # on every worker: did any worker differ?
        wrong = [name for name, bad in zip(names[len(secrets) :], differs) if bad]
        if wrong:
            raise ValueError(
                f"the workers of the {type(strategy).__name__} disagree on {wrong}: every worker must call "
                "fit with the same private data (same rows in the same order), the same model state and "
                "the same seeds; otherwise they would sample different batches and one example could be "
                "used twice in a step"
            )
    return {name: int(value) for name, value in zip(secrets, chiefs[: len(secrets)])}
