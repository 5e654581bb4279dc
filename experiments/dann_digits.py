"""DANN from MNIST to MNIST-M (Ganin et al., JMLR 2016, section 5.2.2), with the paper's MNIST network.

    python -m experiments.dann_digits --data_dir=../shared/datasets/mnist --output_dir=runs/dann_digits

MNIST-M is built by the paper's recipe (`fairness.domain_data.make_mnist_m`: |colour patch - digit|, the
patches cropped from scikit-learn's bundled photos since BSDS500 is not available offline), or loaded from
a real MNIST-M folder with --mnist_m_dir. Images are 32 x 32 x 3; MNIST digits are padded to that size and
repeated over the channels. Three models share the architecture, optimiser (momentum SGD with the paper's
annealed learning rate) and number of steps:

* source only: trained on labelled MNIST;
* DANN: labelled MNIST plus unlabelled MNIST-M training images, gradient reversal with the paper's schedule;
* train on target: trained on labelled MNIST-M (the upper bound).

All three are scored on the MNIST-M test images. With --validation_examples, that many MNIST-M *training*
images are held out of the target training set and scored too: their labels serve only to choose settings
(epochs, batch size, mu_0, domain classifier, preprocessing, reversal strength), never the test set.
--pixel_mean subtracts the per-channel pixel mean of the training images (labelled MNIST and unlabelled
MNIST-M together, as in the paper), identically in all three models. Writes results.json and report.md to
--output_dir.
"""

import sys
import time

from absl import app, flags

flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("mnist_m_dir", None, "A real MNIST-M folder; None builds MNIST-M from MNIST.")
flags.DEFINE_string("output_dir", "runs/dann_digits", "Where results.json and report.md go.")
flags.DEFINE_integer("train_examples", 60000, "Labelled MNIST (and MNIST-M) training images used.")
flags.DEFINE_integer("test_examples", 10000, "MNIST-M test images scored.")
flags.DEFINE_integer("validation_examples", 0, "MNIST-M training images held out (of the target "
                     "training set) and scored, for choosing settings; 0 = none.")
flags.DEFINE_integer("epochs", 8, "Passes over the source training images.")
flags.DEFINE_integer("batch_size", 128, "DANN examples per step (half source, half target); the "
                     "classifiers see half as many, all labelled.")
flags.DEFINE_float("learning_rate", 0.01, "mu_0 of the annealed momentum SGD.")
flags.DEFINE_float("max_reversal_strength", 1.0, "Reversal strength reached at the end of training.")
flags.DEFINE_integer("domain_hidden_units", 100, "Hidden units of the domain classifier (the paper: 100).")
flags.DEFINE_bool("pixel_mean", False, "Subtract the training images' per-channel pixel mean (else 127.5).")
flags.DEFINE_multi_enum("models", ["source_only", "dann", "train_on_target"],
                        ["source_only", "dann", "train_on_target"], "Models trained (pilots may skip some).")
flags.DEFINE_integer("seed", 0, "Seed of MNIST-M, the initialisation and the batches.")
FLAGS = flags.FLAGS


def _load():
    import numpy as np

    from fairness.domain_data import load_mnist_m, make_mnist_m, mnist_as_rgb
    from privgan.data import load_mnist

    (mnist_x, mnist_y), (mnist_test_x, mnist_test_y) = load_mnist(FLAGS.data_dir)
    if FLAGS.mnist_m_dir:
        (target_x, target_y), (target_test_x, target_test_y) = load_mnist_m(FLAGS.mnist_m_dir)
    else:
        # Train and test MNIST-M come from different digits and different crops, as in the released set.
        target_x, target_y = make_mnist_m(mnist_x, seed=FLAGS.seed), mnist_y
        target_test_x, target_test_y = make_mnist_m(mnist_test_x, seed=FLAGS.seed + 1), mnist_test_y
    rng = np.random.default_rng(FLAGS.seed)
    source = rng.permutation(len(mnist_x))[: FLAGS.train_examples]
    # The unlabelled target images are other digits than the source ones, as MNIST-M's training set is
    # drawn independently of the MNIST images in a real adaptation problem.
    order = rng.permutation(len(target_x))
    if not 0 <= FLAGS.validation_examples < len(target_x):
        raise ValueError(f"validation_examples must be in [0, {len(target_x)}), got {FLAGS.validation_examples}")
    validation = order[: FLAGS.validation_examples]
    target = order[FLAGS.validation_examples :][: FLAGS.train_examples]
    test = rng.permutation(len(target_test_x))[: FLAGS.test_examples]
    return (
        (mnist_as_rgb(mnist_x[source]), mnist_y[source]),
        (target_x[target], target_y[target]),
        (target_x[validation], target_y[validation]),
        (target_test_x[test], target_test_y[test]),
    )


def _networks(seed, pixel_mean):
    """The paper's MNIST network on the central 28 x 28 pixels (the MNIST digit's own frame):
    conv(32, 5x5)-pool-conv(48, 5x5)-pool -> 768 features; labels fc 100-100-10; domains fc 100-2.

    Pixels become (x - pixel_mean) / 127.5, pixel_mean one value per channel.
    """
    import keras

    def init(offset):
        return keras.initializers.GlorotUniform(seed=seed + offset)

    feature_extractor = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Cropping2D(2),
            keras.layers.Rescaling(1.0 / 127.5, offset=-pixel_mean / 127.5),
            keras.layers.Conv2D(32, 5, activation="relu", kernel_initializer=init(0)),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(48, 5, activation="relu", kernel_initializer=init(1)),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
        ],
        name="features",
    )
    features = feature_extractor.output_shape[-1]
    label_predictor = keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(100, activation="relu", kernel_initializer=init(2)),
            keras.layers.Dense(100, activation="relu", kernel_initializer=init(3)),
            keras.layers.Dense(10, kernel_initializer=init(4)),
        ],
        name="labels",
    )
    domain_classifier = keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(FLAGS.domain_hidden_units, activation="relu", kernel_initializer=init(5)),
            keras.layers.Dense(2, kernel_initializer=init(6)),
        ],
        name="domains",
    )
    return feature_extractor, label_predictor, domain_classifier


def _accuracy(model, x, y):
    return float((model.predict(x, batch_size=1000, verbose=0).argmax(axis=1) == y).mean())


def _pixel_mean(source_x, target_x):
    import numpy as np

    if not FLAGS.pixel_mean:
        # Scaling pixels from [0, 255] to [-1, 1] is a property of the format, not of the data.
        return np.full(3, 127.5, np.float32)
    # Computed on the training images of both domains, which DANN sees anyway, never on held-out ones.
    # Per-image means first, so that no (N, 32, 32, 3) float copy is made.
    return np.concatenate([source_x.mean(axis=(1, 2)), target_x.mean(axis=(1, 2))]).mean(axis=0).astype(np.float32)


def _train_classifier(x, y, pixel_mean):
    """Feature extractor + label predictor on labelled images, with the same optimiser and steps as DANN."""
    import keras

    from fairness.schedules import AnnealedLearningRate

    keras.utils.set_random_seed(FLAGS.seed)
    feature_extractor, label_predictor, _ = _networks(FLAGS.seed, pixel_mean)
    model = keras.Sequential([feature_extractor, label_predictor])
    batch_size = FLAGS.batch_size // 2
    steps = FLAGS.epochs * (len(x) // batch_size)
    model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=AnnealedLearningRate(FLAGS.learning_rate, total_steps=steps), momentum=0.9
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    start = time.time()
    model.fit(x, y, batch_size=batch_size, epochs=FLAGS.epochs, verbose=2)
    return model, time.time() - start


def _train_dann(source, target_x, pixel_mean):
    import keras

    from fairness.domain_adaptation import DANN

    keras.utils.set_random_seed(FLAGS.seed)
    model = DANN(*_networks(FLAGS.seed, pixel_mean), max_reversal_strength=FLAGS.max_reversal_strength, seed=FLAGS.seed)
    model.compile(learning_rate=FLAGS.learning_rate)
    start = time.time()
    history = model.fit(*source, target_x, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=2)
    return model, history.history, time.time() - start


def main(argv):
    del argv
    from experiments.common.reporting import write_experiment

    source, target, validation, target_test = _load()
    pixel_mean = _pixel_mean(source[0], target[0])
    print(f"pixel mean: {pixel_mean}", flush=True)
    models, seconds, results = {}, {}, {}
    for name in ("source_only", "dann", "train_on_target"):
        if name not in FLAGS.models:
            continue
        if name == "dann":
            models[name], dann_history, seconds[name] = _train_dann(source, target[0], pixel_mean)
            results["dann_final_domain_accuracy"] = float(dann_history["domain_accuracy"][-1])
        else:
            models[name], seconds[name] = _train_classifier(*(source if name == "source_only" else target), pixel_mean)
        results[f"{name}_accuracy"] = _accuracy(models[name], *target_test)
        if len(validation[0]):
            results[f"{name}_validation_accuracy"] = _accuracy(models[name], *validation)
        print(f"{name}: test {results[f'{name}_accuracy']:.4f}, validation "
              f"{results.get(f'{name}_validation_accuracy')} ({seconds[name]:.0f} s)", flush=True)
    for suffix in ("", "_validation"):
        accuracies = [results.get(f"{name}{suffix}_accuracy") for name in ("source_only", "dann", "train_on_target")]
        if None not in accuracies and accuracies[2] > accuracies[0]:
            results[f"gap_closed{suffix}"] = (accuracies[1] - accuracies[0]) / (accuracies[2] - accuracies[0])
    if "dann" in models:
        results["dann_source_train_accuracy"] = _accuracy(
            models["dann"], source[0][: FLAGS.test_examples], source[1][: FLAGS.test_examples]
        )
    results.update(
        train_seconds=seconds,
        pixel_mean=[float(value) for value in pixel_mean],
        target=FLAGS.mnist_m_dir or "MNIST-M built from MNIST with scikit-learn's sample photos",
    )
    summary = (
        "MNIST -> MNIST-M with the paper's MNIST network; accuracies on MNIST-M test images "
        f"(`*_validation_accuracy`: {len(validation[0])} held-out MNIST-M training images, used only to choose "
        "settings). "
        f"{len(source[0])} labelled MNIST and {len(target[0])} unlabelled MNIST-M training images, "
        f"{FLAGS.epochs} epoch(s) of {FLAGS.batch_size // 2} labelled images per step. "
        "Published (Ganin et al. 2016, table 2, real MNIST-M from BSDS500 patches): source only 0.5225, "
        "DANN 0.7666, train on target 0.9596, so 52.9% of the gap closed. "
        "`gap_closed` = (DANN - source only) / (train on target - source only)."
    )
    write_experiment(
        FLAGS.output_dir,
        name="DANN: MNIST -> MNIST-M",
        results=results,
        summary=summary,
        command=" ".join(["python -m experiments.dann_digits", *sys.argv[1:]]),
    )
    print(f"gap_closed: {results.get('gap_closed')}, validation: {results.get('gap_closed_validation')}")


if __name__ == "__main__":
    app.run(main)
