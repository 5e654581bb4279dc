r"""privgan-demo: private synthetic 8x8 digits (scikit-learn's, no download) in a few minutes on a CPU.

  privgan-demo --output_dir=privgan_demo --epsilon=10

Two phases on the 1,437 training digits, both charged to one privacy ledger:
  1. DP-MERF (`privgan.models.mean_embedding`): the digits are read once, their random-feature mean
     embedding is released with Gaussian noise (one GaussianDpEvent, `--release_fraction` of the budget),
     and a conditional generator is trained against the release (post-processing: free).
  2. A conditional DP GAN warm-started from that generator: its discriminator reads the digits through
     Poisson-sampled DP-SGD steps whose sigma is calibrated for the rest of the budget.
`--gan_epochs=0` stops after phase 1 (the whole budget then goes to the release).

Writes to --output_dir:
  synthetic.npz   generated images `x` (N, 8, 8, 1) in [0, 1] and labels `y`
  synthetic.json  the privacy statement of synthetic.npz (epsilon, delta, the ledger of both phases, ...)
  samples.png     a grid of samples, one row per digit
  results.json    TSTR accuracy (a CNN trained on synthetic.npz, tested on the held-out digits test split),
                  within-class diversity, epsilon, timings; also the same for phase 1's generator. Under
                  "private_evaluation", labelled PRIVATE: FID and precision / recall / density / coverage
                  on the features of a digits classifier trained WITHOUT noise on the private training
                  digits, so they are not covered by the guarantee (keep them, do not publish them)
and prints where they went. `--seed` fixes the split, initialisation, random features, latents and
generation, never the Poisson sampling or the DP noise: both are secret (OS entropy) unless
`--sampling_seed` / `--noise_seed` is given (research only: the guarantee does not hold against anyone who
knows them), so two runs with the same seed give statistically, not bit-for-bit, equal results. Also runs
as `python -m privgan.cli.demo`.
"""

import pathlib
import time

from absl import app, flags

from privgan.cli import command

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "privgan_demo",
                    "Folder for synthetic.npz, synthetic.json, samples.png, results.json.")
flags.DEFINE_float("epsilon", 10.0, "Privacy budget (epsilon) of both phases together.")
flags.DEFINE_float("delta", 1e-5, "delta of the budget; keep it well below 1 / 1437.")
flags.DEFINE_float("release_fraction", 0.5, "Share of epsilon aimed at the DP-MERF release (phase 1), in (0, 1].")
flags.DEFINE_integer("release_steps", 1000, "Generator steps against the release (free post-processing).")
flags.DEFINE_integer("num_features", 4000, "Random Fourier features of the release.")
flags.DEFINE_integer("gan_epochs", 20, "Epochs of DP GAN D steps (phase 2); 0 skips phase 2.")
flags.DEFINE_integer("batch_size", 64, "Expected Poisson batch size of a D step.")
flags.DEFINE_integer("n_critic", 5, "D steps per G step in phase 2.")
flags.DEFINE_integer("num_synthetic", 2000, "Number of synthetic digits to write.")
flags.DEFINE_integer("tstr_epochs", 20, "Epochs of the TSTR CNN.")
flags.DEFINE_integer("feature_epochs", 20,
                     "Epochs of the digits classifier whose features serve FID and precision/recall.")
flags.DEFINE_integer("seed", 0, "Seed of the split, initialisation, random features, latents and generation; never "
                     "of the Poisson sampling or the DP noise.")
flags.DEFINE_integer("noise_seed", None, "Seed of the DP noise, for research only: the guarantee does not hold against "
                     "anyone who knows it; None (default): secret, from OS entropy.")
flags.DEFINE_integer("sampling_seed", None, "Seed of phase 2's Poisson sampling, for research only: the guarantee does "
                     "not hold against anyone who knows it; None (default): secret, from OS entropy.")

_NUM_CLASSES = 10
_PUBLIC_KEYS = ("tstr_accuracy", "within_class_pixel_std", "real_within_class_pixel_std")
PRIVATE_NOTE = (
    "PRIVATE: FID, precision, recall, density and coverage are measured on the features of a classifier trained "
    "without noise on the private training digits; they are NOT covered by the guarantee of synthetic.json. "
    "Keep them, do not publish them."
)


def _split(evaluation):
    """(public numbers, PRIVATE numbers) of an `ImageEvaluation`: TSTR and diversity read the synthetic
    images and the held-out test split; the feature metrics read the private training digits too."""
    numbers = evaluation.to_dict()
    return ({key: numbers[key] for key in _PUBLIC_KEYS},
            {key: value for key, value in numbers.items() if key not in _PUBLIC_KEYS})


def _private_line(evaluation):
    return "PRIVATE (features trained on the private digits, not covered by the guarantee): " + ", ".join(
        f"{key} {value:.3f}" for key, value in _split(evaluation)[1].items())


def _evaluate(model, x_test, y_test, classifier, *, seed):
    from privgan.evaluation import evaluate_synthetic_images

    x_synthetic, y_synthetic = model.generate(FLAGS.num_synthetic)
    return evaluate_synthetic_images(x_synthetic, y_synthetic, x_test, y_test, feature_classifier=classifier,
                                     num_classes=_NUM_CLASSES, tstr_epochs=FLAGS.tstr_epochs, tstr_batch_size=64,
                                     nearest_k=5, seed=seed)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not 0.0 < FLAGS.release_fraction <= 1.0:
        raise app.UsageError(f"--release_fraction must be in (0, 1], got {FLAGS.release_fraction}")
    if FLAGS.gan_epochs < 0:
        raise app.UsageError(f"--gan_epochs must be >= 0, got {FLAGS.gan_epochs}")
    from privgan.io import check_destination

    try:  # before training, not after it
        check_destination(pathlib.Path(FLAGS.output_dir) / "synthetic.npz", name="--output_dir's synthetic.npz")
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    import keras

    from privgan.data import load_digits
    from privgan.evaluation import save_sample_grid, train_classifier
    from privgan.io import write_json
    from privgan.models.architectures import mlp_discriminator, mlp_generator
    from privgan.models.mean_embedding import MeanEmbeddingGenerator
    from privgan.models.warm_start import warm_started_dpgan

    start = time.perf_counter()
    keras.utils.set_random_seed(FLAGS.seed)
    output_dir = pathlib.Path(FLAGS.output_dir)
    (x_train, y_train), (x_test, y_test) = load_digits(seed=FLAGS.seed)
    shape = x_train.shape[1:]
    use_gan = FLAGS.gan_epochs > 0
    release_epsilon = FLAGS.epsilon * (FLAGS.release_fraction if use_gan else 1.0)

    # Phase 1: one Gaussian release of the digits' mean embedding, then free generator training.
    source = MeanEmbeddingGenerator(
        mlp_generator(output_shape=shape, latent_dim=32, num_classes=_NUM_CLASSES, hidden=(256, 256), batch_norm=True),
        num_classes=_NUM_CLASSES, num_features=FLAGS.num_features, batch_size=500, seed=FLAGS.seed,
        noise_seed=FLAGS.noise_seed,
    )
    source.compile(optimizer=keras.optimizers.Adam(1e-3))
    source.release_embedding(x_train, y_train, target_epsilon=release_epsilon, delta=FLAGS.delta)
    source.fit(epochs=1, steps_per_epoch=FLAGS.release_steps, verbose=0)
    release_seconds = time.perf_counter() - start
    classifier = train_classifier(x_train, y_train, num_classes=_NUM_CLASSES, epochs=FLAGS.feature_epochs,
                                  batch_size=64, seed=FLAGS.seed)
    release_evaluation = _evaluate(source, x_test, y_test, classifier, seed=FLAGS.seed)
    print(f"Phase 1 (DP-MERF release, epsilon = {source.privacy_spent(delta=FLAGS.delta):.3f}): "
          f"{release_evaluation.tstr.summary()}\n{_private_line(release_evaluation)}", flush=True)

    # Phase 2: a DP GAN warm-started from the phase-1 generator, in the same ledger.
    model = source
    if use_gan:
        model = warm_started_dpgan(
            source, mlp_discriminator(input_shape=shape, num_classes=_NUM_CLASSES, hidden=(128, 128)),
            expected_batch_size=FLAGS.batch_size, n_critic=FLAGS.n_critic,
            ema_decay=0.99, seed=FLAGS.seed, noise_seed=FLAGS.noise_seed,
        )
        model.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                      g_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5))
        # With --sampling_seed, fit itself logs that the guarantee does not hold against anyone who knows it.
        model.fit(x_train, y_train, epochs=FLAGS.gan_epochs, target_epsilon=FLAGS.epsilon, delta=FLAGS.delta,
                  sampling_seed=FLAGS.sampling_seed, verbose=0)
    train_seconds = time.perf_counter() - start
    data_path, statement_path = model.save_synthetic(output_dir / "synthetic.npz", FLAGS.num_synthetic,
                                                     delta=FLAGS.delta)
    import numpy as np

    with np.load(data_path) as synthetic:
        x_synthetic, y_synthetic = synthetic["x"], synthetic["y"]
    epsilon = model.privacy_spent(delta=FLAGS.delta)
    kind = "DP GAN warm-started from DP-MERF" if use_gan else "DP-MERF"
    grid = save_sample_grid(x_synthetic, output_dir / "samples.png", labels=y_synthetic, num_classes=_NUM_CLASSES,
                            title=f"{kind} digits, epsilon={epsilon:.2f}")
    from privgan.evaluation import evaluate_synthetic_images

    evaluation = evaluate_synthetic_images(x_synthetic, y_synthetic, x_test, y_test, feature_classifier=classifier,
                                           num_classes=_NUM_CLASSES, tstr_epochs=FLAGS.tstr_epochs,
                                           tstr_batch_size=64, seed=FLAGS.seed)
    seconds = time.perf_counter() - start
    ledger = model.privacy_ledger
    results_path = output_dir / "results.json"
    public, private = _split(evaluation)
    phase1_public, phase1_private = _split(release_evaluation)
    write_json(results_path, {
        "model": kind,
        **public,
        "epsilon": epsilon,
        "delta": FLAGS.delta,
        "release_epsilon": source.privacy_spent(delta=FLAGS.delta),
        "release_noise_multiplier": source.noise_multiplier,
        "d_steps": ledger.total_steps,
        "d_noise_multiplier": model.dp_config.noise_multiplier if use_gan else None,
        "phase1_dp_merf": phase1_public,
        "private_evaluation": {"note": PRIVATE_NOTE, **private, "phase1_dp_merf": phase1_private},
        "noise_seeded": FLAGS.noise_seed is not None,
        "sampling_seeded": FLAGS.sampling_seed is not None,
        "seed": FLAGS.seed,
        "release_seconds": round(release_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "seconds": round(seconds, 1),
    })
    steps = (f", then {ledger.total_steps} DP D steps (sigma = {model.dp_config.noise_multiplier:.4f})"
             if use_gan else "")
    # The number of training digits is private (the GAN phase is sized by the release's noisy count).
    print(f"Trained a conditional {kind} on the private digits in {train_seconds:.0f} s: epsilon = {epsilon:.3f} "
          f"at delta = {FLAGS.delta:g} (one DP-MERF release, sigma = {source.noise_multiplier:.4f}{steps}).")
    print(evaluation.tstr.summary())
    print(_private_line(evaluation))
    print(f"TSTR accuracy {evaluation.tstr.accuracy:.4f} (phase 1 alone: {release_evaluation.tstr.accuracy:.4f}); "
          f"{seconds:.0f} s in total including evaluation.")
    print(f"synthetic data:    {data_path}")
    print(f"privacy statement: {statement_path}")
    print(f"sample grid:       {grid}")
    print(f"results:           {results_path}")


def run():
    """Runs the command (`privgan-demo`, or `python -m privgan.cli.demo`)."""
    command.run(main, program="privgan-demo", module=__name__)


if __name__ == "__main__":
    run()
