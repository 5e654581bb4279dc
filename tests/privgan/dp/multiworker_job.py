"""One worker of the two-process MultiWorkerMirroredStrategy tests (`test_multiworker.py`).

Run by the test as `python -m tests.privgan.dp.multiworker_job --jobs=fits,backup --output_dir=...`
with `TF_CONFIG` set; each job writes `<job><index>.npz` (arrays) and `<job><index>.json` (numbers) to
the output folder, in the order given. The model builders are shared with the test, which fits the same
models in one process to compare. A worker still running after `--timeout` seconds is ended by SIGALRM,
so a worker left behind by a hung or killed test run never outlives it by much.
"""

import hashlib
import json
import math
import os
import pathlib
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

NUM_EXAMPLES = 64
EXPECTED_BATCH_SIZE = 8  # 8 DP steps per epoch
SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
DELTA = 1e-5
# Allows 10 DP steps (RDP): not a multiple of steps_per_execution=3, so the budget rounds down to 9.
BUDGET_EPSILON = 3.4


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_EXAMPLES, 6)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")


def dp_model(*, noise_seed=3, steps_per_execution=1):
    from privgan.dp import make_private

    keras.utils.set_random_seed(7)
    network = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(3)])
    model = make_private(network, l2_norm_clip=1.0, noise_multiplier=1.1, num_examples=NUM_EXAMPLES,
                         expected_batch_size=EXPECTED_BATCH_SIZE, noise_seed=noise_seed)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=SCE, steps_per_execution=steps_per_execution)
    return model


def dpgan():
    from privgan.models.dpgan import DPGAN

    keras.utils.set_random_seed(9)
    generator = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(6)])
    discriminator = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )
    gan = DPGAN(generator, discriminator, l2_norm_clip=1.0, noise_multiplier=1.2, num_examples=NUM_EXAMPLES,
                expected_batch_size=EXPECTED_BATCH_SIZE, n_critic=2, seed=11, noise_seed=13)
    gan.compile(d_optimizer=keras.optimizers.Adam(0.01), g_optimizer=keras.optimizers.Adam(0.01), steps_per_execution=2)
    return gan


def fit_dpgan(gan):
    gan.fit(data()[0], epochs=2, sampling_seed=17, verbose=0)
    return gan


def _digest(value):
    return hashlib.blake2b(str(int(value)).encode(), digest_size=8).hexdigest()


def _noise_std(strategy):
    """Std of the all-reduced update of a loss without gradient: only the noise is left."""
    from privgan.dp import NoiseStream, private_gradients

    with strategy.scope():
        weights = keras.Variable(np.zeros((100, 100), "float32"))
        stream = NoiseStream()  # secret: each process draws its own key, then the chief's is agreed

    def loss(batch):
        return 0.0 * tf.reduce_sum(batch, axis=1) + 0.0 * tf.reduce_sum(weights)

    @tf.function
    def step():
        def share():
            rows = tf.ones((2, 3))
            return private_gradients(loss, [weights], rows, l2_norm_clip=2.0, noise_multiplier=1.5,
                                     expected_batch_size=4.0, noise=stream)[0]

        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(share), axis=None)

    return float(np.std(step().numpy()))


def _agreement(strategy):
    from privgan.dp.distribution import agree_across_workers
    from privgan.dp.noise import secret_int64

    agreed = agree_across_workers(strategy, secrets={"secret": secret_int64()}, checks={"same": 1})
    try:
        agree_across_workers(strategy, secrets={}, checks={"worker index": strategy.cluster_resolver.task_id})
        refused = ""
    except ValueError as error:
        refused = str(error)
    return _digest(agreed["secret"]), refused


def run_fits(strategy):
    numbers, arrays = {}, {}
    numbers["seconds"] = seconds = {"start": time.process_time()}
    numbers["agreed_secret_digest"], numbers["disagreement_error"] = _agreement(strategy)
    with strategy.scope():
        model = dp_model()
    model.fit(*data(), epochs=2, sampling_seed=5, verbose=0)
    seconds["dp_model"] = time.process_time()
    numbers["dp_steps"] = model._steps_taken()
    numbers["ledger"] = model.privacy_ledger.to_dict()
    arrays.update({f"dp_model_{i}": w for i, w in enumerate(model.model.get_weights())})
    numbers["evaluate"] = model.evaluate(*data(), batch_size=16, verbose=0, return_dict=True)

    with strategy.scope():  # secret noise: the chief's fresh key on every worker
        budgeted = dp_model(noise_seed=None, steps_per_execution=3)
    budgeted.fit(*data(), epochs=20, target_epsilon=BUDGET_EPSILON, delta=DELTA, accountant="rdp", verbose=0)
    seconds["budget"] = time.process_time()
    numbers["budget_dp_steps"] = budgeted._steps_taken()
    numbers["budget_epsilon"] = budgeted.privacy_spent(delta=DELTA, accountant="rdp")
    numbers["noise_key_digest"] = _digest(budgeted.noise_stream._key.numpy())

    with strategy.scope():
        gan = dpgan()
    fit_dpgan(gan)
    seconds["dpgan"] = time.process_time()
    numbers["gan_dp_steps"] = gan._steps_taken()
    arrays.update({f"gan_d_{i}": w for i, w in enumerate(gan.discriminator.get_weights())})
    arrays.update({f"gan_g_{i}": w for i, w in enumerate(gan.generator.get_weights())})

    numbers["noise_std"] = _noise_std(strategy)
    seconds["noise"] = time.process_time()
    return numbers, arrays


class _Pause(keras.callbacks.Callback):
    """Gives the test time to kill a worker between epochs."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(self.seconds)


def run_backup(strategy, *, backup_dir, epochs, pause):
    from privgan.dp import DPBackupAndRestore

    with strategy.scope():
        model = dp_model()
    history = model.fit(*data(), epochs=epochs, delta=DELTA, accountant="rdp", sampling_seed=5, verbose=0,
                        callbacks=[DPBackupAndRestore(backup_dir), _Pause(pause)])
    numbers = {"dp_steps": model._steps_taken(), "ledger": model.privacy_ledger.to_dict(), "epochs_run": history.epoch}
    return numbers, {f"dp_model_{i}": w for i, w in enumerate(model.model.get_weights())}


def main(argv):
    arguments = dict(a.lstrip("-").split("=", 1) for a in argv)
    # The kernel ends the process at the alarm (SIGALRM's default action): unlike a Python timer thread or
    # a SIGTERM (which TensorFlow's multi-worker runtime handles), this also stops a worker blocked in a
    # collective whose peer is gone.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(max(1, math.ceil(float(arguments["timeout"]))))
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    index = strategy.cluster_resolver.task_id
    output = pathlib.Path(arguments["output_dir"])
    for job in arguments["jobs"].split(","):
        if job == "fits":
            numbers, arrays = run_fits(strategy)
        else:
            numbers, arrays = run_backup(strategy, backup_dir=arguments["backup_dir"], epochs=int(arguments["epochs"]),
                                         pause=float(arguments["pause"]))
        np.savez(output / f"{job}{index}.npz", **arrays)
        (output / f"{job}{index}.json").write_text(json.dumps(numbers), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
