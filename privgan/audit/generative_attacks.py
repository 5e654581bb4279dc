"""Membership inference against generative models, from a discriminator or from synthetic samples only.

These functions take arrays and callables, not GAN classes, so they audit any generator: a DPGAN, a
privGAN or a model from another library.
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors

from privgan.audit.metrics import AttackResult, evaluate_attack

_AGGREGATIONS = {"max": np.max, "mean": np.mean}


def _as_rows(name, array):
    """Flattens records (images, tables) to a float matrix of shape (n, features)."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(f"{name} must have shape (num_records, ...) with >= 1 record, got {array.shape}")
    return array.reshape(len(array), -1)


def discriminator_scores(discriminator, records, *, batch_size: int = 1024) -> np.ndarray:
    """A discriminator's output for every record, one number per record, computed in batches.

    Args:
        discriminator: callable mapping a batch of records to shape (batch,) or (batch, 1), e.g. a Keras
            discriminator model or its `predict`.
        records: array of shape (n, ...).
        batch_size: records per call, >= 1.

    Returns:
        Array of shape (n,).

    Raises:
        ValueError: if batch_size < 1 or the discriminator does not return one number per record.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    outputs = []
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        output = np.asarray(discriminator(batch), dtype=np.float64)
        if output.size != len(batch):
            raise ValueError(
                f"discriminator must return one number per record, got shape {output.shape} for "
                f"{len(batch)} records"
            )
        outputs.append(output.reshape(-1))
    return np.concatenate(outputs)


def discriminator_ranking_attack(
    *, discriminators, records, is_member, aggregate: str = "max", batch_size: int = 1024
) -> AttackResult:
    """White-box attack: records the discriminator finds most "real" are guessed to be training data.

    LOGAN's white-box attack (Hayes et al. 2019) with one discriminator, an overfit discriminator
    scoring its training records higher. privGAN (Mukherjee et al. 2021) has several discriminators,
    each trained on a split of the data; their scores are combined per record by `aggregate` ("max" or
    "mean", the two variants of privGAN's reference attack). `AttackResult.top_k_precision()` is the attack
    accuracy those papers report.

    Args:
        discriminators: one discriminator callable (see `discriminator_scores`) or a sequence of them.
        records: candidate records, members and non-members, shape (n, ...).
        is_member: whether each record was in the training set, shape (n,).
        aggregate: "max" or "mean", how to combine several discriminators.
        batch_size: records per discriminator call.

    Returns:
        An `AttackResult`.

    Raises:
        ValueError: for an unknown `aggregate`, no discriminators, or bad shapes.
    """
    if aggregate not in _AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {sorted(_AGGREGATIONS)}, got {aggregate!r}")
    if callable(discriminators):
        discriminators = [discriminators]
    if not discriminators:
        raise ValueError("discriminators must contain at least one discriminator")
    scores = np.stack(
        [discriminator_scores(d, records, batch_size=batch_size) for d in discriminators]
    )
    name = "discriminator ranking"
    if len(discriminators) > 1:
        name += f" ({aggregate} of {len(discriminators)})"
    return evaluate_attack(_AGGREGATIONS[aggregate](scores, axis=0), is_member, attack=name)


def distance_to_closest_synthetic_attack(*, records, synthetic, is_member) -> AttackResult:
    """Black-box attack: a record very close to some synthetic sample was probably memorised.

    The score is minus the Euclidean distance from each record to its nearest synthetic sample (the
    "full black-box" attack of Chen et al. 2020's GAN-Leaks; the distance-to-closest-record test of
    synthetic-data practice). Scale features comparably first (e.g. pixels in [0, 1], one-hot
    categories); no statistics of the records are fitted here.

    Args:
        records: candidate records, members and non-members, shape (n, ...).
        synthetic: samples from the generator, shape (s, ...), same feature shape as records.
        is_member: whether each record was in the training set, shape (n,).

    Returns:
        An `AttackResult`.

    Raises:
        ValueError: if records and synthetic have different feature shapes, or bad shapes.
    """
    records = _as_rows("records", records)
    synthetic = _as_rows("synthetic", synthetic)
    if records.shape[1] != synthetic.shape[1]:
        raise ValueError(
            f"records and synthetic must have the same number of features, got {records.shape[1]} and "
            f"{synthetic.shape[1]}"
        )
    distances, _ = NearestNeighbors(n_neighbors=1).fit(synthetic).kneighbors(records)
    return evaluate_attack(-distances[:, 0], is_member, attack="distance to closest synthetic")
