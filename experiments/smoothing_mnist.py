"""Randomised smoothing on MNIST (Cohen, Rosenfeld & Kolter 2019): certified accuracy against L2 radius.

    python -m experiments.smoothing_mnist --data_dir=../shared/datasets/mnist --output_dir=runs/smoothing_mnist

For each noise level sigma, a base CNN is trained on inputs plus N(0, sigma^2) noise
(`GaussianNoiseTraining`) on MNIST's training split less a validation split (noisy validation accuracy
is logged, nothing is selected on it), then CERTIFY (n0 selection samples, n estimation samples,
alpha) runs on a fixed subset of the test split (the first --certify_examples images). Writes
results.json, report.md, certified_accuracy.png (the paper's plot) and the base models
(models/sigma_<sigma>.keras, plain Keras models) to --output_dir.
"""

import sys
import time

from absl import app, flags

flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("output_dir", "runs/smoothing_mnist", "Where results, report, plot and models go.")
flags.DEFINE_list("sigmas", ["0.25", "0.5", "1.0"], "Noise levels (training and certification).")
flags.DEFINE_integer("epochs", 8, "Epochs of noise-augmented training.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_float("learning_rate", 3e-3, "Peak Adam learning rate (linear warm-up over 20%, cosine decay).")
flags.DEFINE_integer("width", 1, "Width multiplier of the CNN (privgan.models.classifiers.robust_mnist_cnn).")
flags.DEFINE_integer("validation_size", 5000, "Validation examples carved from the training split.")
flags.DEFINE_integer("certify_examples", 300, "Test examples certified (the first ones of the test split).")
flags.DEFINE_integer("num_selection", 100, "n0: samples that choose the class.")
flags.DEFINE_integer("num_estimation", 10000, "n: samples that bound the class probability (the paper: 100,000).")
flags.DEFINE_float("alpha", 0.001, "Error level of each certificate.")
flags.DEFINE_integer("seed", 0, "Seed of the split, initialisation and training noise (certification noise is fresh).")
FLAGS = flags.FLAGS

RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def main(argv):
    del argv
    import pathlib

    import keras
    import numpy as np
    from scipy import stats

    from experiments.common.reporting import write_experiment
    from privgan.data import load_mnist_with_validation
    from privgan.io import atomic_path
    from privgan.models.classifiers import robust_mnist_cnn
    from privgan.robustness import Classifier
    from privgan.robustness.plots import plot_certified_accuracy
    from privgan.robustness.smoothing import GaussianNoiseTraining, SmoothedClassifier
    from privgan.robustness.training import warmup_cosine_schedule

    output_dir = pathlib.Path(FLAGS.output_dir)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = load_mnist_with_validation(
        FLAGS.data_dir, validation_size=FLAGS.validation_size, seed=FLAGS.seed)
    x_cert, y_cert = x_test[: FLAGS.certify_examples], y_test[: FLAGS.certify_examples]
    grid = np.linspace(0.0, 4.0, 161)
    curves, runs = {}, {}
    started = time.perf_counter()
    for sigma in (float(s) for s in FLAGS.sigmas):
        keras.utils.set_random_seed(FLAGS.seed)
        base = robust_mnist_cnn(width=FLAGS.width)
        trainer = GaussianNoiseTraining(base, sigma=sigma, seed=FLAGS.seed)
        total = FLAGS.epochs * -(-len(x_train) // FLAGS.batch_size)
        trainer.compile(optimizer=keras.optimizers.Adam(warmup_cosine_schedule(FLAGS.learning_rate, total)))
        start = time.perf_counter()
        history = trainer.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
                              validation_data=(x_val, y_val), verbose=2).history
        train_seconds = time.perf_counter() - start
        classifier = Classifier(base, valid_range=(0.0, 1.0))
        clean = float(np.mean(classifier.predict_labels(x_test) == y_test))
        smoothed = SmoothedClassifier(classifier, sigma=sigma, num_classes=10)  # fresh noise (no seed)
        start = time.perf_counter()
        result = smoothed.certify(x_cert, y_cert, num_selection=FLAGS.num_selection,
                                  num_estimation=FLAGS.num_estimation, alpha=FLAGS.alpha)
        certify_seconds = time.perf_counter() - start
        print(result.summary(RADII), flush=True)
        curves[f"sigma = {sigma:g}"] = (grid, result.curve(grid))
        runs[f"{sigma:g}"] = {
            **result.to_dict(RADII), "base_clean_accuracy_full_test": clean,
            "val_noisy_accuracy": float(history["val_noisy_accuracy"][-1]),
            "train_seconds": round(train_seconds, 1), "certify_seconds": round(certify_seconds, 1),
            "max_certifiable_radius": sigma * float(stats.norm.ppf(FLAGS.alpha ** (1.0 / FLAGS.num_estimation))),
        }
        with atomic_path(output_dir / "models" / f"sigma_{sigma:g}.keras") as path:
            base.save(path)
    seconds = time.perf_counter() - started
    plot_certified_accuracy(curves, output_dir / "certified_accuracy.png", title=(
        f"MNIST, {len(y_cert)} test images, n0={FLAGS.num_selection}, n={FLAGS.num_estimation}, alpha={FLAGS.alpha}"))
    header = "| sigma | base clean acc. (10k) | abstain rate | " + " | ".join(f"r = {r:g}" for r in RADII) + " |"
    rows = [
        f"| {s} | {run['base_clean_accuracy_full_test']:.4f} | {run['abstain_rate']:.4f} | "
        + " | ".join(f"{run['certified_accuracy'][f'{r:g}']:.3f}" for r in RADII) + " |"
        for s, run in runs.items()
    ]
    table = "\n".join([header, "|" + "---|" * (3 + len(RADII)), *rows])
    results = {
        "certify_examples": len(y_cert), "runs": runs,
    }
    write_experiment(
        output_dir, name="Randomised smoothing on MNIST (certified L2 robustness)", results=results,
        summary=(
            f"Certified accuracy at L2 radius r: the fraction of the first {len(y_cert)} test images that CERTIFY "
            f"classifies correctly with a certified radius >= r (n0 = {FLAGS.num_selection}, n = "
            f"{FLAGS.num_estimation}, alpha = {FLAGS.alpha}; each certificate holds with probability >= "
            f"1 - alpha). With n = {FLAGS.num_estimation} no radius above sigma * Phi^-1(alpha^(1/n)) "
            "can be certified (max_certifiable_radius in results.json); the paper's n = 100,000 allows more. "
            "Abstentions count as wrong. One seed; nothing was selected on the test split.\n\n" + table
        ),
        figures=["certified_accuracy.png"], command=" ".join(sys.argv),
    )
    print(table)
    print(f"total {seconds:.0f} s; report: {output_dir / 'report.md'}")


if __name__ == "__main__":
    app.run(main)
