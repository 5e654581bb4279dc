"""Privacy meets robustness on MNIST: DP-SGD and DP adversarial training at the same (epsilon, delta).

    python -m experiments.robust_private_mnist --data_dir=../shared/datasets/mnist  # to runs/robust_private_mnist

Trains the DP-SGD tutorial CNN (tanh, no normalisation) on MNIST's training split less a validation split:
  - `dp_sgd`: DP-SGD (`privgan.dp.make_private`), sigma calibrated so that the planned steps spend
    --target_epsilon at --delta;
  - `dp_adversarial`: the same DP-SGD step on PGD adversarial examples of each Poisson batch
    (`privgan.robustness.DPAdversarialTraining`), same sigma, q and steps, hence the same epsilon;
  - `non_private`: ordinary training;
  - `non_private_matched`: ordinary training stopped when its validation accuracy first reaches the DP-SGD
    model's, to compare robustness at the same clean accuracy.
Each is evaluated by `robustness_report` at L-inf --epsilon (worst case of APGD-CE and PGD with restarts
on the first --eval_examples test images, gradient-masking checks, a PGD-20 sweep over radii) and by its
clean accuracy on the whole test split. Writes results.json, report.md, robustness_vs_epsilon.png and
the classifiers (models/<name>.keras) to --output_dir.
"""

import sys
import time

from absl import app, flags

from experiments.randomness import define_sampling_seed_flag

flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("output_dir", "runs/robust_private_mnist", "Where results, report, plot and models go.")
flags.DEFINE_float("target_epsilon", 3.0, "DP budget of each private run.")
flags.DEFINE_float("delta", 1e-5, "DP delta.")
flags.DEFINE_integer("epochs", 5, "Epochs of the private runs (round(N / batch) Poisson steps each).")
flags.DEFINE_integer("batch_size", 256, "Expected Poisson batch size.")
flags.DEFINE_float("l2_norm_clip", 1.0, "C.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate, cosine-decayed to 0 (private runs).")
flags.DEFINE_float("epsilon", 0.1, "L-inf radius of adversarial training and evaluation (inputs in [0, 1]).")
flags.DEFINE_integer("train_steps", 2, "PGD steps of DP adversarial training.")
flags.DEFINE_float("epsilon_warmup_epochs", 2, "Epochs over which the training radius grows to --epsilon.")
flags.DEFINE_integer("non_private_epochs", 2, "Epochs of the non-private model.")
flags.DEFINE_integer("validation_size", 5000, "Validation examples carved from the training split.")
flags.DEFINE_integer("eval_examples", 500, "Test examples attacked (the first ones of the test split).")
flags.DEFINE_integer("eval_steps", 50, "Iterations of APGD-CE and PGD in the evaluation.")
flags.DEFINE_integer("eval_restarts", 2, "Random restarts of the evaluation PGD.")
flags.DEFINE_integer("seed", 0, "Seed of the split, initialisation and attacks "
                     "(the DP noise and the Poisson sampling are secret).")
define_sampling_seed_flag()
FLAGS = flags.FLAGS


def _non_private(name, x_train, y_train, x_val, y_val, *, stop_at_accuracy=None):
    import keras

    from privgan.models.classifiers import dpsgd_cnn

    class StopAtAccuracy(keras.callbacks.Callback):
        # Checks validation accuracy every 10 batches; stops once it reaches the target.
        def on_train_batch_end(self, batch, logs=None):
            if batch % 10 == 9:
                accuracy = self.model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
                if accuracy >= stop_at_accuracy:
                    self.model.stop_training = True
                    self.stopped = (batch + 1, accuracy)

    keras.utils.set_random_seed(FLAGS.seed)
    model = dpsgd_cnn()
    model.compile(optimizer=keras.optimizers.Adam(1e-3 if stop_at_accuracy is None else 3e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    callbacks = [StopAtAccuracy()] if stop_at_accuracy is not None else []
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=FLAGS.non_private_epochs, batch_size=FLAGS.batch_size, verbose=2,
              callbacks=callbacks)
    info = {"train_seconds": round(time.perf_counter() - start, 1), "private": False}
    if callbacks and hasattr(callbacks[0], "stopped"):
        info["stopped_at_batch_of_last_epoch"], info["val_accuracy_at_stop"] = callbacks[0].stopped
    print(f"{name}: {info}", flush=True)
    return model, info


def _private(name, adversarial, x_train, y_train, noise_multiplier):
    import keras

    from privgan.dp import make_private
    from privgan.models.classifiers import dpsgd_cnn
    from privgan.robustness import DPAdversarialTraining

    keras.utils.set_random_seed(FLAGS.seed)
    classifier = dpsgd_cnn()
    dp = dict(l2_norm_clip=FLAGS.l2_norm_clip, noise_multiplier=noise_multiplier, num_examples=len(x_train),
              expected_batch_size=FLAGS.batch_size)
    if adversarial:
        steps_per_epoch = round(len(x_train) / FLAGS.batch_size)
        model = DPAdversarialTraining(
            classifier, epsilon=FLAGS.epsilon, steps=FLAGS.train_steps, attack_seed=FLAGS.seed,
            epsilon_warmup_steps=int(FLAGS.epsilon_warmup_epochs * steps_per_epoch), **dp)
    else:
        model = make_private(classifier, **dp)
    total = model.planned_dp_steps(FLAGS.epochs)
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(FLAGS.learning_rate, total)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=FLAGS.epochs, target_epsilon=FLAGS.target_epsilon, delta=FLAGS.delta,
              sampling_seed=FLAGS.sampling_seed, verbose=2)
    info = {
        "train_seconds": round(time.perf_counter() - start, 1), "private": True,
        "epsilon_spent": model.privacy_spent(delta=FLAGS.delta), "delta": FLAGS.delta,
        "noise_multiplier": noise_multiplier, "dp_steps": model.privacy_ledger.total_steps,
    }
    print(f"{name}: {info}", flush=True)
    return classifier, info


def main(argv):
    del argv
    import pathlib

    import numpy as np

    from experiments.common.reporting import write_experiment
    from privgan.accounting import calibrate_noise_multiplier
    from privgan.data import load_mnist_with_validation
    from privgan.dp.config import DPSGDConfig
    from privgan.io import atomic_path
    from privgan.robustness import APGD, PGD, Classifier, robustness_report
    from privgan.robustness.plots import plot_robust_accuracy_curves

    output_dir = pathlib.Path(FLAGS.output_dir)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = load_mnist_with_validation(
        FLAGS.data_dir, validation_size=FLAGS.validation_size, seed=FLAGS.seed)
    x_eval, y_eval = x_test[: FLAGS.eval_examples], y_test[: FLAGS.eval_examples]
    config = DPSGDConfig(l2_norm_clip=FLAGS.l2_norm_clip, noise_multiplier=0.0, num_examples=len(x_train),
                         expected_batch_size=FLAGS.batch_size)
    noise_multiplier = calibrate_noise_multiplier(
        target_epsilon=FLAGS.target_epsilon, delta=FLAGS.delta, sampling_probability=config.sampling_probability,
        steps=FLAGS.epochs * config.steps_per_epoch)
    suite = (APGD(epsilon=FLAGS.epsilon, steps=FLAGS.eval_steps),
             PGD(epsilon=FLAGS.epsilon, steps=FLAGS.eval_steps, restarts=FLAGS.eval_restarts))
    started = time.perf_counter()
    models = {}

    def evaluate(name, classifier, info):
        target = Classifier(classifier, valid_range=(0.0, 1.0))
        start = time.perf_counter()
        report = robustness_report(target, x_eval, y_eval, epsilon=FLAGS.epsilon, suite=suite,
                                   many_steps=FLAGS.eval_steps, sweep=(0.5, 1.0, 2.0, 3.0), seed=FLAGS.seed)
        print(report.summary(), flush=True)
        info.update(report.to_dict(), clean_accuracy_full_test=float(np.mean(target.predict_labels(x_test) == y_test)),
                    val_accuracy=float(np.mean(target.predict_labels(x_val) == y_val)),
                    eval_seconds=round(time.perf_counter() - start, 1))
        with atomic_path(output_dir / "models" / f"{name}.keras") as path:
            classifier.save(path)
        models[name] = info

    for name, adversarial in (("dp_sgd", False), ("dp_adversarial", True)):
        evaluate(name, *_private(name, adversarial, x_train, y_train, noise_multiplier))
    evaluate("non_private", *_non_private("non_private", x_train, y_train, x_val, y_val))
    evaluate("non_private_matched", *_non_private("non_private_matched", x_train, y_train, x_val, y_val,
                                                  stop_at_accuracy=models["dp_sgd"]["val_accuracy"]))
    seconds = time.perf_counter() - started
    plot_robust_accuracy_curves(
        {name: info["epsilon_sweep"] for name, info in models.items()}, output_dir / "robustness_vs_epsilon.png",
        title=f"MNIST, PGD-20 on {len(y_eval)} test images; DP runs at epsilon={FLAGS.target_epsilon:g}")
    rows = [
        f"| {name} | {'yes' if info['private'] else 'no'} | "
        f"{info.get('epsilon_spent', float('inf')):.3g} | {info['clean_accuracy_full_test']:.4f} | "
        f"{info['robust_accuracy']:.4f} | "
        + " | ".join(f"{point['robust_accuracy']:.3f}" for point in info["epsilon_sweep"])
        + f" | {'yes' if info['checks_passed'] else 'NO'} | {info['train_seconds']:.0f} |"
        for name, info in models.items()
    ]
    sweep_header = " | ".join(f"PGD-20 eps {point['epsilon']:g}" for point in models["dp_sgd"]["epsilon_sweep"])
    table = "\n".join([
        f"| model | DP | epsilon (delta={FLAGS.delta:g}) | clean (10k test) "
        f"| robust at {FLAGS.epsilon:g} (worst case) | "
        f"{sweep_header} | masking checks pass | train s |",
        "|---|---|---|---|---|" + "---|" * len(models["dp_sgd"]["epsilon_sweep"]) + "---|---|", *rows])
    results = {
        "noise_multiplier": noise_multiplier, "epsilon_attack": FLAGS.epsilon, "eval_examples": len(y_eval),
        "models": models,
    }
    write_experiment(
        output_dir, name=f"DP-SGD and DP adversarial training on MNIST (epsilon = {FLAGS.target_epsilon:g})",
        results=results,
        summary=(
            f"Both private runs use sigma = {noise_multiplier:.4f}, C = {FLAGS.l2_norm_clip}, Poisson q = "
            f"{config.sampling_probability:.5f} and {FLAGS.epochs} epochs, so they spend the same epsilon (PLD). "
            f"Robust accuracy at L-inf {FLAGS.epsilon:g} is the worst case of {suite[0]._describe()} and "
            f"{suite[1]._describe()} on the first {len(y_eval)} test images. `non_private_matched` stopped at "
            "the DP-SGD model's validation accuracy (validation split carved from the training split and not "
            "used by the private runs). Nothing was selected on the test split. One seed. The privacy guarantee "
            "covers the private runs' weights; the hyper-parameters were set by hand.\n\n" + table
        ),
        figures=["robustness_vs_epsilon.png"], command=" ".join(sys.argv),
    )
    print(table)
    print(f"total {seconds:.0f} s; report: {output_dir / 'report.md'}")


if __name__ == "__main__":
    app.run(main)
