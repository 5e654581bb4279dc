"""DP-SGD under tf.distribute.MirroredStrategy on two logical CPU devices (set up in conftest)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from privgan.accounting import max_steps
from privgan.dp import NoiseStream, make_private, private_gradients

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


@pytest.fixture
def strategy(mirrored_strategy):
    return mirrored_strategy


def _mlp():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(3)])


def _data(rows, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 6)).astype("float32"), rng.integers(0, 3, rows).astype("int32")


def _split(strategy, arrays):
    """Replica r gets rows r, r + R, ...: an uneven split (one replica may get more rows)."""
    replicas = strategy.num_replicas_in_sync
    return strategy.experimental_distribute_values_from_function(
        lambda context: tuple(a[context.replica_id_in_sync_group :: replicas] for a in arrays)
    )


def _distributed_gradients(strategy, model, arrays, **kwargs):
    def loss(batch):
        features, labels = batch
        return SCE(labels, model(features, training=True))

    @tf.function
    def step(batch):
        shares = strategy.run(lambda b: private_gradients(loss, model.trainable_variables, b, **kwargs), args=(batch,))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None) for s in shares]

    return [g.numpy() for g in step(_split(strategy, arrays))]


def test_shares_sum_to_the_single_device_gradient_with_the_same_noise(strategy):
    with strategy.scope():
        model = _mlp()
        mirrored_noise = NoiseStream(seed=42)
    x, y = _data(11)
    kwargs = dict(l2_norm_clip=0.5, noise_multiplier=1.3, expected_batch_size=8.0)
    distributed = _distributed_gradients(strategy, model, (x, y), noise=mirrored_noise, **kwargs)

    def loss(batch):
        return SCE(batch[1], model(batch[0], training=True))

    single = private_gradients(loss, model.trainable_variables, (x, y), noise=NoiseStream(seed=42), **kwargs)
    for got, want in zip(distributed, single):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_noise_is_added_once_not_once_per_replica(strategy):
    # A loss without gradient leaves only the noise: its std must be sigma C / B, not sqrt(2) times that.
    with strategy.scope():
        weights = keras.Variable(np.zeros((100, 100), "float32"))

    def loss(batch):
        return 0.0 * tf.reduce_sum(batch, axis=1) + 0.0 * tf.reduce_sum(weights)

    @tf.function
    def step(batch):
        shares = strategy.run(
            lambda b: private_gradients(
                loss, [weights], b, l2_norm_clip=2.0, noise_multiplier=1.5, expected_batch_size=4.0,
                method="vectorized",
            ),
            args=(batch,),
        )
        return strategy.reduce(tf.distribute.ReduceOp.SUM, shares[0], axis=None)

    noise = step(_split(strategy, (np.ones((4, 3), "float32"),))[0]).numpy()
    assert np.std(noise) == pytest.approx(2.0 * 1.5 / 4.0, rel=0.03)


def _fit(strategy, *, x, y, epochs, target_epsilon=None):
    with strategy.scope():
        keras.utils.set_random_seed(7)
        model = make_private(_mlp(), l2_norm_clip=1.0, noise_multiplier=1.1, num_examples=len(x),
                             expected_batch_size=8, noise_seed=3)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=SCE)
    model.fit(x, y, epochs=epochs, delta=1e-5, target_epsilon=target_epsilon, accountant="rdp",
              sampling_seed=5, verbose=0)
    return model


def test_fit_under_mirrored_strategy_equals_one_device(strategy):
    x, y = _data(64)
    mirrored = _fit(strategy, x=x, y=y, epochs=2)
    single = _fit(tf.distribute.get_strategy(), x=x, y=y, epochs=2)
    assert int(mirrored.dp_steps.numpy()) == int(single.dp_steps.numpy()) == 16
    assert mirrored.privacy_ledger == single.privacy_ledger
    for got, want in zip(mirrored.model.get_weights(), single.model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_budget_holds_under_mirrored_strategy(strategy):
    x, y = _data(64)
    limit = max_steps(target_epsilon=3.0, delta=1e-5, noise_multiplier=1.1, sampling_probability=0.125,
                      accountant="rdp")
    model = _fit(strategy, x=x, y=y, epochs=limit // 8 + 5, target_epsilon=3.0)
    assert int(model.dp_steps.numpy()) == limit
    assert model.privacy_spent(delta=1e-5, accountant="rdp") <= 3.0


def test_other_strategies_with_several_replicas_are_refused():
    # Multi-worker strategies would shard the Poisson batches across workers; CentralStorageStrategy
    # stands in for them here (two replicas on one machine, not a MirroredStrategy).
    strategy = tf.distribute.experimental.CentralStorageStrategy(["/cpu:0", "/cpu:1"])
    x, y = _data(16)
    with strategy.scope():
        model = make_private(_mlp(), l2_norm_clip=1.0, noise_multiplier=1.1, num_examples=16, expected_batch_size=4)
        model.compile(optimizer="sgd", loss=SCE)
    with pytest.raises(NotImplementedError, match="CentralStorageStrategy is not supported"):
        model.fit(x, y, epochs=1, verbose=0)


def test_planned_steps_count_the_whole_calls_of_unrolled_steps_per_execution(strategy):
    # 8 DP steps an epoch, 3 train steps a call under two replicas: an epoch takes 3 calls = 9 DP steps,
    # and a calibrated sigma must be computed for those, not for 8.
    with strategy.scope():
        model = make_private(_mlp(), l2_norm_clip=1.0, noise_multiplier=1.1, num_examples=64, expected_batch_size=8)
        model.compile(optimizer="sgd", loss=SCE, steps_per_execution=3)
    assert model.train_steps_per_epoch == 9
    assert model.planned_dp_steps(2) == 18
    single = make_private(_mlp(), l2_norm_clip=1.0, noise_multiplier=1.1, num_examples=64, expected_batch_size=8)
    single.compile(optimizer="sgd", loss=SCE, steps_per_execution=3)
    assert single.planned_dp_steps(2) == 16  # one device: Keras stops a call at the epoch's end
