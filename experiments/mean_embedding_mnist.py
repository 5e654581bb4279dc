"""DP-MERF on MNIST: a conditional generator trained against one private release of a random-feature
mean embedding; TSTR, classifier-feature FID, precision/recall/density/coverage and diversity, over seeds.

    python -m experiments.mean_embedding_mnist --data_dir=../shared/datasets/mnist \
        --output_dir=runs/mean_embedding_mnist_eps10 --epsilon=10 --seeds=0,1,2

The private training set is read once (`MeanEmbeddingGenerator.release_embedding`: one GaussianDpEvent,
sigma calibrated for (epsilon, delta)); the generator's steps read only the release. `--seed` values fix
the random features, initialisation and latents; the DP noise is secret (OS entropy) unless
`--noise_seed` is given. With `--validation`, 10% of the training set is held out and the numbers are
measured on it instead of the test split: that is how the settings were chosen (width, features, steps,
learning rate), so the test split was never used for selection.

Writes results.json (per seed and mean/std), report.md, samples.png (first seed) and synthetic.npz +
synthetic.json (the privacy statement, first seed) to --output_dir.
"""

import sys
import time

from absl import app, flags

flags.DEFINE_float("epsilon", 10.0, "Target epsilon of the release.")
flags.DEFINE_float("delta", 1e-5, "delta.")
flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("output_dir", "runs/mean_embedding_mnist", "Where the results go.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of features, initialisation and latents (one run each).")
flags.DEFINE_integer("noise_seed", None, "Seed of the DP noise: None (default) draws it from OS entropy.")
flags.DEFINE_bool("validation", False, "Evaluate on 10% of the training set held out (model selection), not on test.")
flags.DEFINE_integer("num_features", 8000, "Random Fourier features (2 x frequencies), all blocks together.")
flags.DEFINE_enum("features", "pixels", ["pixels", "scattering", "both"],
                  "Embedded features: pixels, the public wavelet scattering transform, or both (a^2 + b^2 = 1).")
flags.DEFINE_float("pixel_weight", 0.5**0.5, "a, the pixel block's weight with --features=both.")
flags.DEFINE_integer("orientations", 4, "L of the scattering transform (J = 2).")
flags.DEFINE_float("scattering_length_scale", 1.0, "Multiplier of the scattering kernels' length scales (0.5, 1, 2).")
flags.DEFINE_integer("steps", 1000, "Generator steps (post-processing: free), in epochs of 100 when >= 100.")
flags.DEFINE_integer("batch_size", 500, "Generated samples per step (balanced over classes).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate of the generator.")
flags.DEFINE_integer("latent_dim", 32, "Latent dimension.")
flags.DEFINE_integer("g_width", 32, "Filters of G's last hidden feature map.")
flags.DEFINE_integer("num_synthetic", 10000, "Synthetic images generated for the evaluation.")
flags.DEFINE_integer("eval_epochs", 5, "Epochs of the TSTR CNN (trained on the synthetic images).")
flags.DEFINE_integer("benchmark_epochs", 0,
                     "Epochs of the DPImageBench-style TSTR (privgan.evaluation.benchmark_tstr; theirs: 50), first "
                     "seed only; 0: off.")
flags.DEFINE_list("benchmark_classifiers", ["resnet", "wrn"], "Classifiers of the DPImageBench-style TSTR.")
flags.DEFINE_integer("benchmark_resnet_depth", 110, "Depth of its ResNet (theirs: 110; 6n + 2).")
flags.DEFINE_integer("benchmark_wrn_depth", 40, "Depth of its Wide ResNet (theirs: 40; 6n + 4).")
flags.DEFINE_integer("feature_epochs", 1, "Epochs of the feature CNN (trained on the real training images).")
FLAGS = flags.FLAGS

_NUM_CLASSES = 10


def main(argv):
    del argv
    import keras
    import numpy as np

    from experiments.common.reporting import mean_and_std, write_experiment
    from privgan.data import carve_validation_split, load_mnist_unit_range
    from privgan.evaluation import evaluate_synthetic_images, save_sample_grid, train_classifier
    from privgan.evaluation.benchmark_tstr import benchmark_tstr
    from privgan.models.architectures import dcgan_generator
    from privgan.models.embedding_features import DEFAULT_SCATTERING_LENGTH_SCALES
    from privgan.models.mean_embedding import MeanEmbeddingGenerator

    (x_train, y_train), (x_test, y_test) = load_mnist_unit_range(FLAGS.data_dir)
    if FLAGS.validation:
        (x_train, y_train), (x_test, y_test) = carve_validation_split(x_train, y_train, validation_fraction=0.1)
    feature_classifier = train_classifier(x_train, y_train, num_classes=_NUM_CLASSES, epochs=FLAGS.feature_epochs)
    per_seed = []
    for index, seed in enumerate(int(s) for s in FLAGS.seeds):
        run_start = time.perf_counter()
        keras.utils.set_random_seed(seed)
        feature_options = {}
        if FLAGS.features != "pixels":
            feature_options = {"orientations": FLAGS.orientations, "scattering_length_scales": [
                FLAGS.scattering_length_scale * v for v in DEFAULT_SCATTERING_LENGTH_SCALES]}
        if FLAGS.features == "both":
            feature_options["pixel_weight"] = FLAGS.pixel_weight
        model = MeanEmbeddingGenerator(
            dcgan_generator(image_shape=(28, 28, 1), latent_dim=FLAGS.latent_dim, num_classes=_NUM_CLASSES,
                            width=FLAGS.g_width),
            num_classes=_NUM_CLASSES, num_features=FLAGS.num_features, batch_size=FLAGS.batch_size, seed=seed,
            noise_seed=FLAGS.noise_seed, features=FLAGS.features, feature_options=feature_options,
        )
        model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate))
        model.release_embedding(x_train, y_train, target_epsilon=FLAGS.epsilon, delta=FLAGS.delta)
        model.fit(epochs=max(1, FLAGS.steps // 100), steps_per_epoch=min(100, FLAGS.steps), verbose=2)
        train_seconds = time.perf_counter() - run_start
        if index == 0:
            data_path, _ = model.save_synthetic(f"{FLAGS.output_dir}/synthetic.npz", FLAGS.num_synthetic,
                                                delta=FLAGS.delta)
            with np.load(data_path) as saved:
                x_synthetic, y_synthetic = saved["x"], saved["y"]
        else:
            x_synthetic, y_synthetic = model.generate(FLAGS.num_synthetic)
        epsilon = model.privacy_spent(delta=FLAGS.delta)
        if index == 0:
            save_sample_grid(x_synthetic, f"{FLAGS.output_dir}/samples.png", labels=y_synthetic,
                             num_classes=_NUM_CLASSES, title=f"DP-MERF, epsilon = {epsilon:.2f}")
        evaluation = evaluate_synthetic_images(x_synthetic, y_synthetic, x_test, y_test,
                                               feature_classifier=feature_classifier, num_classes=_NUM_CLASSES,
                                               tstr_epochs=FLAGS.eval_epochs, seed=seed)
        print(f"seed {seed}: epsilon {epsilon:.3f}\n{evaluation.summary()}", flush=True)
        benchmark = {}
        if index == 0 and FLAGS.benchmark_epochs:
            benchmark = benchmark_tstr(
                x_synthetic, y_synthetic, x_test, y_test, num_classes=_NUM_CLASSES,
                classifiers=FLAGS.benchmark_classifiers, epochs=FLAGS.benchmark_epochs, seed=seed,
                depths={"resnet": FLAGS.benchmark_resnet_depth, "wrn": FLAGS.benchmark_wrn_depth},
            ).to_dict()
            print(f"seed {seed}: DPImageBench-style TSTR {benchmark['benchmark_tstr_accuracy']:.4f}", flush=True)
        per_seed.append({
            "seed": seed, **evaluation.to_dict(), **benchmark, "epsilon": epsilon,
            "noise_multiplier": model.noise_multiplier, "train_seconds": round(train_seconds, 1),
            "seconds": round(time.perf_counter() - run_start, 1),
        })
    keys = ["tstr_accuracy", "fid", "precision", "recall", "density", "coverage", "within_class_pixel_std", "seconds"]
    summary = mean_and_std(per_seed, keys)
    split = "validation split (10% of train)" if FLAGS.validation else "test split"
    results = {
        "summary": summary, "per_seed": per_seed, "evaluated_on": split, "target_epsilon": FLAGS.epsilon,
        "noise_seeded": FLAGS.noise_seed is not None, "features": FLAGS.features,
        "tstr_mean": summary["tstr_accuracy"]["mean"], "tstr_std": summary["tstr_accuracy"]["std"],
    }

    def row(key):
        return f"| {key} | {summary[key]['mean']:.4f} ± {summary[key]['std']:.4f} |"

    report = write_experiment(
        FLAGS.output_dir,
        name="DP-MERF on MNIST",
        results=results,
        summary="\n".join([
            f"One Gaussian release (epsilon = {per_seed[0]['epsilon']:.3f}, delta = {FLAGS.delta}, sigma = "
            f"{per_seed[0]['noise_multiplier']:.4f}) of the {FLAGS.num_features}-feature {FLAGS.features} embedding; "
            f"DCGAN-style generator, {FLAGS.steps} steps of {FLAGS.batch_size}. Measured on the {split} over seeds "
            f"{', '.join(FLAGS.seeds)} (mean ± sample std); the feature CNN of FID and precision/recall was "
            "trained on the real training split.",
            "", "| metric | mean ± std |", "|---|---|", *[row(key) for key in keys],
        ]),
        figures=["samples.png"],
        command=" ".join(sys.argv),
    )
    print(f"TSTR {results['tstr_mean']:.4f} ± {results['tstr_std']:.4f} over {len(per_seed)} seeds; report: {report}")


if __name__ == "__main__":
    app.run(main)
