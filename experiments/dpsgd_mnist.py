"""DP-SGD on MNIST with the tutorial CNN (Abadi et al. 2016; tensorflow-privacy's tutorial setting).

    python -m experiments.dpsgd_mnist --data_dir=../shared/datasets/mnist --output_dir=runs/dpsgd_mnist

Writes results.json, report.md and accuracy_epsilon.png to --output_dir. `--dataset=digits` runs the
same pipeline on scikit-learn's bundled 8x8 digits (no download), for a quick check.

`--strategy=multi_worker` trains on the cluster that `TF_CONFIG` describes: every worker runs the same
command (with its own `TF_CONFIG`), the chief writes the outputs, and `--backup_dir` (on storage every
worker reads) lets a restarted job resume where the last epoch's backup ends (see the README).
"""

import sys
import time

from absl import app, flags

from experiments.randomness import define_sampling_seed_flag

flags.DEFINE_enum("dataset", "mnist", ["mnist", "digits"], "mnist (IDX files or download) or digits (bundled).")
flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("output_dir", "runs/dpsgd_mnist", "Where results.json, report.md and the plot go.")
flags.DEFINE_integer("epochs", 60, "Epochs (each round(N / batch_size) Poisson steps).")
flags.DEFINE_integer("batch_size", 256, "Expected Poisson batch size.")
flags.DEFINE_float("noise_multiplier", 1.1, "sigma.")
flags.DEFINE_float("l2_norm_clip", 1.0, "C.")
flags.DEFINE_float("learning_rate", 0.05, "Learning rate: constant for SGD, cosine-decayed to 0 for Adam.")
flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam"], "sgd uses momentum 0.9.")
flags.DEFINE_enum("activation", "tanh", ["tanh", "relu"], "Hidden activation of the CNN.")
flags.DEFINE_float("delta", 1e-5, "delta of the reported epsilon.")
flags.DEFINE_enum("accountant", "pld", ["pld", "rdp"], "Accountant of the reported epsilon.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation (the DP noise and the Poisson sampling are secret).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "default (one device), mirrored (all local GPUs) or multi_worker (the cluster in TF_CONFIG).")
flags.DEFINE_string("backup_dir", None, "Back up every epoch here and resume from it after a restart.")
define_sampling_seed_flag()
FLAGS = flags.FLAGS


def _load():
    from privgan.data import load_digits, load_mnist_unit_range

    if FLAGS.dataset == "digits":
        return load_digits()
    return load_mnist_unit_range(FLAGS.data_dir)


def _plot(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from privgan.io import save_figure

    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot(history["epsilon"], history["val_accuracy"], marker=".")
    axis.set_xlabel("epsilon spent")
    axis.set_ylabel("test accuracy")
    axis.grid(alpha=0.3)
    save_figure(figure, path, dpi=120, bbox_inches="tight")


def main(argv):
    del argv
    import keras

    from privgan.dp import DPBackupAndRestore
    from privgan.dp.distribution import is_chief, make_strategy

    strategy = make_strategy(FLAGS.strategy)
    keras.utils.set_random_seed(FLAGS.seed)
    (x_train, y_train), (x_test, y_test) = _load()
    num_examples = len(x_train)
    with strategy.scope():
        model, optimizer = _model(x_train.shape[1:], num_examples)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    callbacks = [DPBackupAndRestore(FLAGS.backup_dir)] if FLAGS.backup_dir else []
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, epochs=FLAGS.epochs, delta=FLAGS.delta, accountant=FLAGS.accountant,
        sampling_seed=FLAGS.sampling_seed, validation_data=(x_test, y_test), verbose=2, callbacks=callbacks,
    ).history
    seconds = time.perf_counter() - start
    test_accuracy = float(model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])
    if not is_chief(strategy):
        return  # the chief writes the outputs
    _report(model, history, test_accuracy=test_accuracy, seconds=seconds, num_examples=num_examples)


def _model(input_shape, num_examples):
    import keras

    from privgan.dp import make_private
    from privgan.models.classifiers import dpsgd_cnn

    model = make_private(
        dpsgd_cnn(input_shape=input_shape, activation=FLAGS.activation),
        l2_norm_clip=FLAGS.l2_norm_clip,
        noise_multiplier=FLAGS.noise_multiplier,
        num_examples=num_examples,
        expected_batch_size=FLAGS.batch_size,
    )
    steps = FLAGS.epochs * model.dp_config.steps_per_epoch
    if FLAGS.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(FLAGS.learning_rate, momentum=0.9)
    else:
        optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(FLAGS.learning_rate, steps))
    return model, optimizer


def _report(model, history, *, test_accuracy, seconds, num_examples):
    from experiments.common.reporting import write_experiment
    from privgan.accounting import epsilon

    dp_steps = model.privacy_ledger.total_steps
    q = model.dp_config.sampling_probability
    results = {
        "test_accuracy": test_accuracy,
        "epsilon": model.privacy_spent(delta=FLAGS.delta, accountant=FLAGS.accountant),
        "epsilon_rdp": epsilon(noise_multiplier=FLAGS.noise_multiplier, sampling_probability=q,
                               steps=dp_steps, delta=FLAGS.delta, accountant="rdp"),
        "sampling_probability": q,
        "num_examples": num_examples,
        "steps": dp_steps,
        "test_accuracy_per_epoch": [float(a) for a in history["val_accuracy"]],
        "epsilon_per_epoch": [float(e) for e in history["epsilon"]],
    }
    _plot(history, f"{FLAGS.output_dir}/accuracy_epsilon.png")
    report = write_experiment(
        FLAGS.output_dir,
        name="DP-SGD on MNIST (tutorial CNN)",
        results=results,
        summary=(
            f"DP-SGD with Poisson sampling (q = {q:.5f}), sigma = {FLAGS.noise_multiplier}, "
            f"C = {FLAGS.l2_norm_clip}, {dp_steps} steps: test accuracy **{test_accuracy:.4f}** at "
            f"epsilon = **{results['epsilon']:.3f}** ({FLAGS.accountant.upper()}; RDP: "
            f"{results['epsilon_rdp']:.3f}), delta = {FLAGS.delta}. The test set is evaluated after every "
            "epoch for the plot only; no hyper-parameter was chosen on it in this run."
        ),
        figures=["accuracy_epsilon.png"],
        command=" ".join(sys.argv),
    )
    print(f"test accuracy {test_accuracy:.4f}, epsilon {results['epsilon']:.3f} (delta {FLAGS.delta}), "
          f"{seconds:.0f} s; report: {report}")


if __name__ == "__main__":
    app.run(main)
