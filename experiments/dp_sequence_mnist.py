"""DP-SGD on a sequence task: an LSTM reads each MNIST digit row by row (28 steps of 28 pixels), at epsilon = 3.

    python -m experiments.dp_sequence_mnist --data_dir=../shared/datasets/mnist --output_dir=runs/dp_sequence_mnist

The same model (LSTM + Dense(10)) is trained with DP-SGD at `--target_epsilon` (the noise multiplier is
calibrated for the planned steps) and without privacy. The DP learning rate is chosen among
`--learning_rates` on a validation split carved from the training data; the test split is evaluated once,
on the chosen model. Writes results.json and report.md to --output_dir. `--train_size` trains on a
subset (the sampling probability and the accounting use that subset's size) to keep a run short on a CPU.
"""

import dataclasses
import math
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    """Settings of one run (every seed, both models).

    Attributes:
        units: LSTM width, >= 1.
        batch_size: expected Poisson batch size of DP-SGD (and the batch of the non-private model), >= 1.
        epochs: DP-SGD epochs (round(N / batch_size) Poisson steps each), >= 1.
        learning_rates: DP-SGD Adam learning rates to choose from on the validation split, each > 0.
        target_epsilon: the budget of each DP training, > 0.
        delta: its delta, in (0, 1).
        l2_norm_clip: C, > 0.
        plain_epochs: epochs of the non-private model, >= 1.
        plain_learning_rate: its Adam learning rate, > 0.
        train_size: training examples used (a subset drawn with the split's seed), or None for all.
        validation_size: examples carved from the training split for validation, in [1, 59999].
        seeds: initialisation seeds, one run each (the split is the same for all).
    """

    units: int = 64
    batch_size: int = 256
    epochs: int = 8
    learning_rates: tuple = (0.003,)  # chosen on the validation split among 0.001, 0.003, 0.01
    target_epsilon: float = 3.0
    delta: float = 1e-5
    l2_norm_clip: float = 1.0
    plain_epochs: int = 4
    plain_learning_rate: float = 0.002
    train_size: int | None = None
    validation_size: int = 5000
    seeds: tuple = (0,)

    def __post_init__(self):
        for name in ("units", "batch_size", "epochs", "plain_epochs"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        positive = {"target_epsilon": self.target_epsilon, "l2_norm_clip": self.l2_norm_clip,
                    "plain_learning_rate": self.plain_learning_rate}
        positive.update({f"learning_rates[{i}]": rate for i, rate in enumerate(self.learning_rates)})
        for name, value in positive.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not self.learning_rates:
            raise ValueError("learning_rates must hold at least one learning rate")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta!r}")
        if int(self.validation_size) != self.validation_size or not 1 <= self.validation_size < 60000:
            raise ValueError(f"validation_size must be an integer in [1, 59999], got {self.validation_size!r}")
        size = self.train_size
        if size is not None and (int(size) != size or size < self.batch_size):
            raise ValueError(f"train_size must be None or an integer >= batch_size, got {self.train_size!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds!r}")


def _rows(images):
    return images.reshape(-1, 28, 28)  # a sequence of 28 rows of 28 pixels


def load(config, data_dir):
    """(train, validation, test) as (N, 28, 28) row sequences, the training split cut to `train_size`."""
    import numpy as np

    from privgan.data import load_mnist_with_validation

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = load_mnist_with_validation(
        data_dir, validation_size=config.validation_size, seed=0
    )
    if config.train_size is not None:
        if config.train_size > len(x_train):
            raise ValueError(f"train_size must be at most {len(x_train)}, got {config.train_size}")
        keep = np.random.default_rng(0).permutation(len(x_train))[: config.train_size]
        x_train, y_train = x_train[keep], y_train[keep]
    return (_rows(x_train), y_train), (_rows(x_val), y_val), (_rows(x_test), y_test)


def _model(units):
    import keras

    return keras.Sequential([keras.Input((28, 28)), keras.layers.LSTM(units), keras.layers.Dense(10)])


def _accuracy(model, x, y):
    return float(model.evaluate(x, y, verbose=0, batch_size=1024, return_dict=True)["accuracy"])


def _compile(model, learning_rate):
    import keras

    model.compile(keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


def train_private(config, seed, learning_rate, train, *, sampling_seed=None, verbose=0):
    """One DP-SGD training at the budget; returns the model and its noise multiplier and epsilon."""
    import keras

    from privgan.dp import make_private

    keras.utils.set_random_seed(seed)
    x, y = train
    model = make_private(_model(config.units), l2_norm_clip=config.l2_norm_clip, noise_multiplier=None,
                         num_examples=len(x), expected_batch_size=config.batch_size)
    _compile(model, learning_rate)
    model.fit(x, y, epochs=config.epochs, target_epsilon=config.target_epsilon, delta=config.delta,
              sampling_seed=sampling_seed, verbose=verbose)
    return model, model.dp_config.noise_multiplier, model.privacy_spent(delta=config.delta)


def train_plain(config, seed, train, *, verbose=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = _model(config.units)
    _compile(model, config.plain_learning_rate)
    model.fit(*train, epochs=config.plain_epochs, batch_size=config.batch_size, verbose=verbose)
    return model


def run(config, *, data_dir, sampling_seed=None, verbose=0):
    """Trains and evaluates every seed; returns the results dict (JSON-serialisable)."""
    train, validation, test = load(config, data_dir)
    per_seed = []
    for seed in config.seeds:
        start = time.perf_counter()
        candidates = []
        for rate in config.learning_rates:
            model, sigma, spent = train_private(config, seed, rate, train, sampling_seed=sampling_seed,
                                                verbose=verbose)
            candidates.append({"learning_rate": rate, "validation_accuracy": _accuracy(model, *validation),
                               "noise_multiplier": sigma, "epsilon": spent, "model": model})
        chosen = max(candidates, key=lambda c: c["validation_accuracy"])
        dp_seconds = time.perf_counter() - start
        start = time.perf_counter()
        plain = train_plain(config, seed, train, verbose=verbose)
        plain_seconds = time.perf_counter() - start
        per_seed.append({
            "seed": seed,
            "dp_test_accuracy": _accuracy(chosen["model"], *test),
            "dp_learning_rate": chosen["learning_rate"],
            "noise_multiplier": chosen["noise_multiplier"],
            "epsilon": chosen["epsilon"],
            "dp_steps": int(chosen["model"].privacy_ledger.total_steps),
            "validation_accuracy_by_learning_rate": {str(c["learning_rate"]): c["validation_accuracy"]
                                                     for c in candidates},
            "plain_validation_accuracy": _accuracy(plain, *validation),
            "plain_test_accuracy": _accuracy(plain, *test),
            "dp_seconds": round(dp_seconds, 1),
            "plain_seconds": round(plain_seconds, 1),
        })
    results = {**{k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()},
               "num_examples": len(train[0]), "per_seed": per_seed}
    for key in ("dp_test_accuracy", "plain_test_accuracy"):
        values = [row[key] for row in per_seed]
        results[f"{key}_mean"] = statistics.fmean(values)
        results[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    results["epsilon"] = max(row["epsilon"] for row in per_seed)
    results["sampling_seed"] = "secret (OS entropy)" if sampling_seed is None else sampling_seed
    return results


def _validation_text(per_seed):
    return "; ".join(
        f"seed {r['seed']}: " + ", ".join(f"{rate} -> {acc:.4f}" for rate, acc in
                                           r["validation_accuracy_by_learning_rate"].items())
        for r in per_seed
    )


def _earlier_selection(path):
    """A sentence citing the validation accuracies of an earlier run that chose the learning rate."""
    import json
    import pathlib

    earlier = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    accuracies = _validation_text(earlier["per_seed"])
    return (f" The candidates were compared by an earlier run ({earlier['epochs']} DP epochs, commit "
            f"{earlier.get('commit')}), validation accuracy by learning rate: {accuracies}.")


def _summary(config, results, earlier=""):
    rows = "\n".join(
        f"| {r['seed']} | {r['dp_learning_rate']} | {r['noise_multiplier']:.3f} | {r['epsilon']:.3f} | "
        f"{r['dp_test_accuracy']:.4f} | {r['plain_test_accuracy']:.4f} | "
        f"{r['dp_seconds']:.0f} + {r['plain_seconds']:.0f} s |"
        for r in results["per_seed"]
    )
    validation = _validation_text(results["per_seed"])
    seeds = len(config.seeds)
    spread = f" ± {results['dp_test_accuracy_std']:.4f}" if seeds > 1 else ""
    plain_spread = f" ± {results['plain_test_accuracy_std']:.4f}" if seeds > 1 else ""
    fixed = ("" if results["sampling_seed"] == "secret (OS entropy)" else
             " The Poisson sampling seed was fixed: the guarantee does not hold against anyone who knows it.")
    return (
        f"An LSTM({config.units}) + Dense(10) reads each digit as 28 rows of 28 pixels. DP-SGD (Adam, Poisson "
        f"batches of expected size {config.batch_size} out of N = {results['num_examples']}, C = "
        f"{config.l2_norm_clip}, {config.epochs} epochs, the noise multiplier calibrated to spend epsilon = "
        f"{config.target_epsilon} at delta = {config.delta}; PLD accounting) against the same model trained "
        f"without privacy ({config.plain_epochs} epochs, Adam {config.plain_learning_rate}).\n\n"
        f"Test accuracy over {seeds} seed{'s' if seeds > 1 else ''}: DP **{results['dp_test_accuracy_mean']:.4f}"
        f"{spread}** at epsilon <= {results['epsilon']:.3f}, non-private **{results['plain_test_accuracy_mean']:.4f}"
        f"{plain_spread}**.\n\n"
        "| seed | DP learning rate | sigma | epsilon | DP test acc. | non-private test acc. | time (DP + plain) |\n"
        f"|---|---|---|---|---|---|---|\n{rows}\n\n"
        f"The DP learning rate was chosen on a validation split of {config.validation_size} digits carved from "
        f"the training data (validation accuracy by learning rate: {validation}); the test split was evaluated "
        f"once, on the chosen model.{earlier} Epsilon covers each DP training, not the choice among the candidates. "
        f"The Poisson batches were secret unless stated.{fixed}"
    )


def _define_flags():
    # Defined when the script runs, not at import: the test imports `run` next to other modules' flags.
    from experiments.randomness import define_sampling_seed_flag

    defaults = SequenceConfig()
    flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
    flags.DEFINE_string("output_dir", "runs/dp_sequence_mnist", "Where results.json and report.md go.")
    flags.DEFINE_integer("units", defaults.units, "LSTM width.")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Expected Poisson batch size.")
    flags.DEFINE_integer("epochs", defaults.epochs, "DP-SGD epochs.")
    flags.DEFINE_list("learning_rates", [str(r) for r in defaults.learning_rates],
                      "DP-SGD Adam learning rates, chosen on the validation split.")
    flags.DEFINE_float("target_epsilon", defaults.target_epsilon, "Budget of each DP training.")
    flags.DEFINE_float("delta", defaults.delta, "delta.")
    flags.DEFINE_float("l2_norm_clip", defaults.l2_norm_clip, "C.")
    flags.DEFINE_integer("plain_epochs", defaults.plain_epochs, "Epochs of the non-private model.")
    flags.DEFINE_float("plain_learning_rate", defaults.plain_learning_rate, "Adam learning rate, non-private.")
    flags.DEFINE_integer("train_size", None, "Train on this many training examples (None: all).")
    flags.DEFINE_integer("validation_size", defaults.validation_size, "Validation examples carved from training.")
    flags.DEFINE_list("seeds", ["0"], "Initialisation seeds.")
    flags.DEFINE_integer("verbose", 0, "Keras fit verbosity.")
    flags.DEFINE_string("selection_results", None,
                        "results.json of an earlier run over several --learning_rates, cited in the report.")
    define_sampling_seed_flag()


def main(argv):
    del argv
    from experiments.common.reporting import write_experiment

    config = SequenceConfig(
        units=FLAGS.units, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
        learning_rates=tuple(float(r) for r in FLAGS.learning_rates), target_epsilon=FLAGS.target_epsilon,
        delta=FLAGS.delta, l2_norm_clip=FLAGS.l2_norm_clip, plain_epochs=FLAGS.plain_epochs,
        plain_learning_rate=FLAGS.plain_learning_rate, train_size=FLAGS.train_size,
        validation_size=FLAGS.validation_size, seeds=tuple(int(s) for s in FLAGS.seeds),
    )
    results = run(config, data_dir=FLAGS.data_dir, sampling_seed=FLAGS.sampling_seed, verbose=FLAGS.verbose)
    report = write_experiment(FLAGS.output_dir, name="DP-SGD on a sequence task: LSTM on MNIST rows",
                              results=results, command=" ".join(sys.argv),
                              summary=_summary(config, results, _earlier_selection(FLAGS.selection_results)
                                               if FLAGS.selection_results else ""))
    print(f"DP test accuracy {results['dp_test_accuracy_mean']:.4f} at epsilon {results['epsilon']:.3f}, "
          f"non-private {results['plain_test_accuracy_mean']:.4f}; report: {report}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
