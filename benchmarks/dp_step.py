"""Times a DP-SGD step against a plain step of the same model, in one process.

Each case builds one model and two compiled steps (plain: mean loss, one gradient; DP:
`privgan.dp.private_gradients`), both applying Adam. After warm-up, the two steps are timed alternately
(so load on the machine affects both alike) and the medians are compared.

The `transformer` case is a small transformer-encoder text classifier (token and position embeddings,
multi-head self-attention, layer normalisation, a Dense feed-forward block, average pooling, a Dense head) on
random token ids; every one of its layers takes a fast clipping rule (no per-example gradients).

Peers are timed in the same rounds when installed (optional extras; skipped cleanly when absent):
Opacus's DP step on the same architecture and batch (`--opacus`; `benchmarks.opacus_step`: its hooks and
its ghost clipping) and a JAX DP-SGD step with `jax.vmap` per-example gradients, as jax-privacy does
(`--jax`; `benchmarks.jax_step`, with JAX's own plain step for its ratio), for the cases they have a
twin of. `dp_vs_peers` is privgan's DP step over the fastest peer DP step. `--xla` also times privgan's
DP step compiled with XLA (`jit_compile=True`), reported beside the default one.

Peak memory (`--memory`) cannot be read from TensorFlow's CPU allocator, so each (case, step) runs alone
in a fresh subprocess: the figure is the process's peak resident memory (ru_maxrss) minus its resident
memory just before the first step, i.e. what running the step adds, tracing included.

    python -m benchmarks.dp_step                     # a table
    python -m benchmarks.dp_step --memory --json     # with peak memory; the last line is one JSON object
"""

import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_integer("repeats", 30, "Timed steps per variant (median taken), >= 20 recommended.")
flags.DEFINE_integer("warmup", 5, "Untimed steps per variant before timing (tracing, allocation).")
flags.DEFINE_bool("json", False, "Print the results as one JSON object on the last line.")
flags.DEFINE_list("cases", ["dcgan_discriminator", "dcgan_discriminator_256", "mlp", "transformer"], "Cases to run.")
flags.DEFINE_bool("memory", False, "Also measure each step's peak memory (one subprocess per case and step).")
flags.DEFINE_bool("opacus", True, "Also time Opacus on the same architecture, when torch and opacus are installed.")
flags.DEFINE_bool("jax", True, "Also time a JAX vmap DP-SGD step of the same architecture, when jax is installed.")
flags.DEFINE_bool("xla", True, "Also time privgan's DP step compiled with XLA (jit_compile=True).")
flags.DEFINE_string("memory_of", None, "Internal: 'case:plain' or 'case:dp'; print that step's peak memory in MiB.")
FLAGS = flags.FLAGS


def _cases():
    import keras

    def discriminator():
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Conv2D(64, 4, strides=2, padding="same"),
                keras.layers.LeakyReLU(0.2),
                keras.layers.Conv2D(128, 4, strides=2, padding="same"),
                keras.layers.LeakyReLU(0.2),
                keras.layers.Flatten(),
                keras.layers.Dense(1),
            ]
        )

    def mlp():
        return keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(10),
            ]
        )

    def lstm():  # MNIST read row by row: 28 steps of 28 pixels
        return keras.Sequential([keras.Input((28, 28)), keras.layers.LSTM(128), keras.layers.Dense(10)])

    return {
        # name: (builder, input shape without batch, batch size, number of classes; 1 = binary logits,
        #        vocabulary size for token inputs or None for Gaussian features)
        "dcgan_discriminator": (discriminator, (28, 28, 1), 64, 1, None),
        "dcgan_discriminator_256": (discriminator, (28, 28, 1), 256, 1, None),
        "mlp": (mlp, (784,), 256, 10, None),
        "transformer": (transformer_classifier, (TRANSFORMER["length"],), 64, 2, TRANSFORMER["vocabulary"]),
        "mnist_lstm": (lstm, (28, 28), 256, 10, None),
    }


# The transformer case: 64 tokens of a 2,000-word vocabulary, width 64, 4 heads, feed-forward width 128.
TRANSFORMER = {"length": 64, "vocabulary": 2000, "width": 64, "heads": 4, "feed_forward": 128}


def transformer_classifier(*, length=TRANSFORMER["length"], vocabulary=TRANSFORMER["vocabulary"],
                           width=TRANSFORMER["width"], heads=TRANSFORMER["heads"],
                           feed_forward=TRANSFORMER["feed_forward"], num_classes=2):
    """A one-block transformer-encoder text classifier (post-norm, as in Vaswani et al.)."""
    import keras

    layers = keras.layers
    tokens = keras.Input((length,), dtype="int32")
    # Position ids with the batch axis of the tokens, so that the position table is an Embedding whose
    # per-example gradient the Embedding rule computes (a table added as one (length, width) tensor would
    # be read outside any per-example call).
    positions = keras.ops.zeros_like(tokens) + keras.ops.arange(length, dtype="int32")
    h = layers.Embedding(vocabulary, width)(tokens) + layers.Embedding(length, width)(positions)
    attended = layers.MultiHeadAttention(num_heads=heads, key_dim=width // heads)(h, h)
    h = layers.LayerNormalization()(h + attended)
    transformed = layers.Dense(width)(layers.Dense(feed_forward, activation="relu")(h))
    h = layers.LayerNormalization()(h + transformed)
    return keras.Model(tokens, layers.Dense(num_classes)(layers.GlobalAveragePooling1D()(h)))


def _steps(builder, input_shape, batch_size, num_classes, vocabulary, *, xla=False):
    """The case's plain and DP steps (compiled), built on one model; with `xla`, also an XLA DP step."""
    import keras
    import numpy as np
    import tensorflow as tf

    from privgan.dp import private_gradients

    rng = np.random.default_rng(0)
    if vocabulary is None:
        x = tf.constant(rng.normal(size=(batch_size, *input_shape)).astype("float32"))
    else:
        x = tf.constant(rng.integers(0, vocabulary, (batch_size, *input_shape)).astype("int32"))
    if num_classes == 1:
        y = tf.constant(rng.integers(0, 2, (batch_size, 1)).astype("float32"))
        loss = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)
    else:
        y = tf.constant(rng.integers(0, num_classes, batch_size))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    model = builder()
    variables = model.trainable_variables
    plain_optimizer, dp_optimizer = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)

    def per_example_loss(batch):
        features, labels = batch
        return tf.reshape(loss(labels, model(features, training=True)), [-1])

    @tf.function
    def plain_step():
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(per_example_loss((x, y)))
        plain_optimizer.apply(tape.gradient(value, variables), variables)
        return value

    def dp_update():
        grads = private_gradients(
            per_example_loss, variables, (x, y),
            l2_norm_clip=1.0, noise_multiplier=1.0, expected_batch_size=batch_size,
        )
        dp_optimizer.apply(grads, variables)
        return grads[0][0]

    dp_step = tf.function(dp_update)
    if not xla:
        return plain_step, dp_step
    return plain_step, dp_step, tf.function(dp_update, jit_compile=True)


def _installed(*names):
    return all(importlib.util.find_spec(name) is not None for name in names)


def _time_case(name, builder, input_shape, batch_size, num_classes, vocabulary, *, repeats, warmup, opacus, jax,
               xla):
    steps = _steps(builder, input_shape, batch_size, num_classes, vocabulary, xla=xla)
    # Each variant ends with a host read, so asynchronous dispatch cannot hide its time.
    variants = {"plain": lambda: steps[0]().numpy(), "dp": lambda: steps[1]().numpy()}
    if xla:
        variants["dp_xla"] = lambda: steps[2]().numpy()
    peers = []
    if opacus:
        from benchmarks.opacus_step import BUILDERS as OPACUS_TWINS
        from benchmarks.opacus_step import MODES, opacus_step

        opacus = name in OPACUS_TWINS  # the peers have twins of some cases only
    if opacus:
        for mode in MODES:
            variants[f"opacus_{mode}"] = opacus_step(
                name, mode=mode, batch_size=batch_size, num_classes=num_classes, threads=os.cpu_count()
            )
            peers.append(f"opacus_{mode}")
    if jax:
        from benchmarks.jax_step import BUILDERS as JAX_TWINS
        from benchmarks.jax_step import jax_step

        jax = name in JAX_TWINS
    if jax:
        for mode in ("plain", "dp"):
            variants[f"jax_{mode}"] = jax_step(name, mode=mode, batch_size=batch_size, num_classes=num_classes)
        peers.append("jax_dp")
    for _ in range(warmup):
        for run in variants.values():
            run()
    seconds = {variant: [] for variant in variants}
    for _ in range(repeats):  # round-robin, so load on the machine affects every variant alike
        for variant, run in variants.items():
            start = time.perf_counter()
            run()
            seconds[variant].append(time.perf_counter() - start)
    row = {f"{variant}_ms": round(1e3 * statistics.median(times), 3) for variant, times in seconds.items()}
    row["ratio"] = round(row["dp_ms"] / row["plain_ms"], 3)
    if xla:
        row["xla_ratio"] = round(row["dp_xla_ms"] / row["plain_ms"], 3)
    if jax:
        row["jax_ratio"] = round(row["jax_dp_ms"] / row["jax_plain_ms"], 3)
    if peers:
        row["dp_vs_peers"] = round(row["dp_ms"] / min(row[f"{peer}_ms"] for peer in peers), 3)
    row["batch_size"] = batch_size
    return row


def _resident_mib():
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _step_memory_mib(case, variant, *, steps):
    plain_step, dp_step = _steps(*_cases()[case])
    step = {"plain": plain_step, "dp": dp_step}[variant]
    before = _resident_mib()
    for _ in range(steps):
        step().numpy()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before


def _memory_in_subprocess(case, variant):
    command = [sys.executable, "-m", "benchmarks.dp_step", f"--memory_of={case}:{variant}", "--repeats=5"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(output.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.memory_of:
        case, variant = FLAGS.memory_of.split(":")
        print(f"{_step_memory_mib(case, variant, steps=FLAGS.repeats):.1f}")
        return
    cases = _cases()
    unknown = sorted(set(FLAGS.cases) - set(cases))
    if unknown:
        raise app.UsageError(f"--cases: unknown {unknown}; choose from {sorted(cases)}")
    if FLAGS.repeats < 1:
        raise app.UsageError(f"--repeats must be >= 1, got {FLAGS.repeats}")
    opacus = FLAGS.opacus and _installed("torch", "opacus")
    if FLAGS.opacus and not opacus:
        print("torch or opacus is not installed: the Opacus comparison is skipped")
    jax = FLAGS.jax and _installed("jax")
    if FLAGS.jax and not jax:
        print("jax is not installed: the JAX comparison is skipped")
    results = {}
    for name in FLAGS.cases:
        results[name] = _time_case(name, *cases[name], repeats=FLAGS.repeats, warmup=FLAGS.warmup, opacus=opacus,
                                   jax=jax, xla=FLAGS.xla)
        row = results[name]
        line = (f"{name:24s} batch {row['batch_size']:4d}  plain {row['plain_ms']:8.2f} ms  "
                f"dp {row['dp_ms']:8.2f} ms  ratio {row['ratio']:.2f}")
        if FLAGS.xla:
            line += f"  dp xla {row['dp_xla_ms']:8.2f} ms ({row['xla_ratio']:.2f})"
        if "opacus_hooks_ms" in row:
            line += f"  opacus hooks {row['opacus_hooks_ms']:8.2f} ms  ghost {row['opacus_ghost_ms']:8.2f} ms"
        if "jax_ratio" in row:
            line += f"  jax plain {row['jax_plain_ms']:8.2f} ms  dp {row['jax_dp_ms']:8.2f} ms ({row['jax_ratio']:.2f})"
        if "dp_vs_peers" in row:
            line += f"  dp/best peer {row['dp_vs_peers']:.2f}"
        if FLAGS.memory:
            row["plain_peak_mib"] = round(_memory_in_subprocess(name, "plain"), 1)
            row["dp_peak_mib"] = round(_memory_in_subprocess(name, "dp"), 1)
            row["memory_ratio"] = round(row["dp_peak_mib"] / max(row["plain_peak_mib"], 1e-9), 2)
            line += f"  peak +{row['plain_peak_mib']:.0f} / +{row['dp_peak_mib']:.0f} MiB ({row['memory_ratio']:.2f}x)"
        print(line)
    if FLAGS.json:
        print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
