"""A conditional DP GAN on MNIST: TSTR, classifier-feature FID, precision/recall/density/coverage and
within-class diversity at a target (epsilon, delta), with two presets.

    # CPU preset (the default): the whole budget to one DP-MERF release; no GAN phase (see below)
    python -m experiments.dpgan_mnist --data_dir=../shared/datasets/mnist --output_dir=runs/dpgan_mnist_eps10 \
        --epsilon=10 --seed=0
    # cpu_gan: DPGAN warm-started from a DP-MERF release at half the budget, both costs in one ledger
    python -m experiments.dpgan_mnist --preset=cpu_gan --data_dir=../shared/datasets/mnist --output_dir=runs/cpu_gan
    # Bie, Kamath & Zhang 2023 ("Private GANs, revisited"), meant for a GPU
    python -m experiments.dpgan_mnist --preset=bie2023 --data_dir=../shared/datasets/mnist --output_dir=runs/bie2023

Only the discriminator is trained with DP-SGD (Poisson sampling, per-example clipping, Gaussian noise);
sigma is calibrated so that the planned `epochs * round(N / batch_size)` D steps (rounded up to a multiple
of n_critic) spend what is left of (epsilon, delta). With `--warm_start_fraction` f > 0, the generator
first learns from one DP-MERF release (`privgan.models.mean_embedding`, on `--features`) at about
f * epsilon, and the DPGAN continues from it in the same ledger (`privgan.models.warm_start`); f = 0
trains the DPGAN alone, f = 1 gives the release the whole budget and skips the GAN phase.

Presets (flags given on the command line override them):
  cpu      the whole budget to one DP-MERF release of pixels + scattering features (`--features=both`),
           no GAN phase (f = 1). The GAN phase did not earn its
           place: after a warm start at half the budget it ended BELOW DP-MERF alone (TSTR 0.848 against
           0.884 at epsilon = 10, 3 seeds each), so the preset does not spend budget on it (issue 26).
  cpu_gan  warm start at half the budget, then 5 epochs of D steps (n_critic 5, batch 128), small widths:
           fits in an hour on a 2-core CPU; results.json has the warm start's own TSTR and FID*
           (`warm_start_tstr_accuracy`, `warm_start_fid`) beside the final ones.
  bie2023  their MNIST epsilon = 10 setting: DPGAN alone, n_critic (n_D) = 50, expected batch 128,
           450,000 D steps (sigma then calibrates to about 1), Adam 2e-4 (beta_1 0.5) for both, latent
           128, widths 128 (on privgan's DCGAN builders, not their exact layers), no EMA, no warm start.
           On a machine without a GPU the script does not pretend: it times a few hundred D steps and
           reports the seconds per 1,000 D steps and the projected training time, then stops
           (`--run_on_cpu` trains anyway).

Model selection: `--validation` holds out 10% of the training set and measures there instead of on the
test split; the CPU preset's settings were chosen that way (and on the 8x8 digits), never on the test
split. `--seed` fixes initialisation, random features and sampling; the DP noise is secret unless
`--noise_seed` is given. `--time_limit_minutes` stops training early on wall time (not data-dependent,
so it costs no privacy; the epsilon reported is then what was actually spent, below the target).

Writes results.json, report.md, samples.png and synthetic.npz + synthetic.json (the privacy statement)
to --output_dir.
"""

import sys
import time

from absl import app, flags

from experiments.randomness import define_sampling_seed_flag

flags.DEFINE_enum("preset", "cpu", ["cpu", "cpu_gan", "bie2023"], "Settings preset (explicit flags override it).")
flags.DEFINE_float("epsilon", 10.0, "Target epsilon of the whole training (release and D steps).")
flags.DEFINE_float("delta", 1e-5, "delta.")
flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("output_dir", "runs/dpgan_mnist", "Where the results go.")
flags.DEFINE_bool("validation", False, "Evaluate on 10% of the training set held out (model selection), not on test.")
flags.DEFINE_float("warm_start_fraction", 0.5,
                   "Share of epsilon for the DP-MERF warm start; 0: DPGAN alone; 1: the release alone (no GAN).")
flags.DEFINE_integer("release_steps", 1000, "Generator steps against the DP-MERF release (free).")
flags.DEFINE_integer("num_features", 8000, "Random Fourier features of the DP-MERF release.")
flags.DEFINE_enum("features", "pixels", ["pixels", "scattering", "both"],
                  "Features of the DP-MERF release: pixels, the public wavelet scattering transform, or both.")
flags.DEFINE_integer("epochs", 5, "Epochs of D steps (each round(N / batch_size) Poisson-sampled D steps).")
flags.DEFINE_integer("batch_size", 128, "Expected Poisson batch size of a D step (also the fake batch size).")
flags.DEFINE_integer("n_critic", 5, "D steps per G step (many help under DP noise: Bie et al. 2023).")
flags.DEFINE_enum("g_normalization", "batch", ["batch", "layer", "none"],
                  "Normalisation of G's hidden layers (G only; D never has BatchNorm).")
flags.DEFINE_float("ema_decay", 0.99, "Sample from an exponential moving average of G's weights (0: off).")
flags.DEFINE_float("l2_norm_clip", 1.0, "C, the per-example clipping bound of D's gradient.")
flags.DEFINE_float("d_learning_rate", 5e-4, "Adam learning rate of D.")
flags.DEFINE_float("g_learning_rate", 1e-4, "Adam learning rate of G.")
flags.DEFINE_float("beta_1", 0.5, "Adam beta_1 of both.")
flags.DEFINE_integer("latent_dim", 32, "Latent dimension.")
flags.DEFINE_bool("d_projection", True, "Projection discriminator: add <features, embedding(label)> to D's logit.")
flags.DEFINE_integer("d_width", 16, "Filters of D's first convolution.")
flags.DEFINE_integer("g_width", 32, "Filters of G's last hidden feature map.")
flags.DEFINE_integer("num_synthetic", 10000, "Synthetic images generated for the evaluation.")
flags.DEFINE_integer("eval_epochs", 5, "Epochs of the TSTR CNN (trained on the synthetic images).")
flags.DEFINE_integer("feature_epochs", 1, "Epochs of the feature CNN (trained on the real training images).")
flags.DEFINE_float("time_limit_minutes", None, "Stop training after this wall time (epsilon then stays below target).")
flags.DEFINE_bool("run_on_cpu", False,
                  "Train a GPU preset (bie2023) even without a GPU instead of projecting its time.")
flags.DEFINE_integer("timing_train_steps", 4, "Train steps (of n_critic D steps) timed for the projection on CPU.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation, random features and generation "
                     "(the DP noise and the Poisson sampling are secret).")
flags.DEFINE_integer("noise_seed", None, "Seed of the DP noise (release and D steps); None (default): secret.")
define_sampling_seed_flag()
FLAGS = flags.FLAGS

_NUM_CLASSES = 10
PRESETS = {
    "cpu": {"warm_start_fraction": 1.0, "features": "both"},
    "cpu_gan": {},  # the flag defaults
    "bie2023": {
        "warm_start_fraction": 0.0, "epochs": 900, "batch_size": 128, "n_critic": 50, "g_normalization": "none",
        "ema_decay": 0.0, "d_learning_rate": 2e-4, "g_learning_rate": 2e-4, "beta_1": 0.5, "latent_dim": 128,
        "d_projection": False, "d_width": 64, "g_width": 128,
    },
}


def _apply_preset():
    for name, value in PRESETS[FLAGS.preset].items():
        if not FLAGS[name].present:
            FLAGS[name].value = value


def _stop_callback(*, minutes=None, train_steps=None):
    import keras

    class Stop(keras.callbacks.Callback):
        """Stops training after a wall time or a number of train steps (data-independent: no privacy cost)."""

        def on_train_begin(self, logs=None):
            self.started = time.monotonic()
            self.steps = 0
            self.timed_from = None

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps == 2:  # the first steps trace the graph: time from here
                self.timed_from = (time.monotonic(), self.steps)
            if minutes is not None and time.monotonic() - self.started > 60 * minutes:
                self.model.stop_training = True
            if train_steps is not None and self.steps >= train_steps:
                self.model.stop_training = True

    return Stop()


def main(argv):
    del argv
    _apply_preset()
    import keras
    import tensorflow as tf

    from experiments.common.reporting import write_experiment
    from privgan.data import carve_validation_split, load_mnist_unit_range
    from privgan.models.architectures import dcgan_discriminator, dcgan_generator
    from privgan.models.dpgan import DPGAN
    from privgan.models.mean_embedding import MeanEmbeddingGenerator
    from privgan.models.warm_start import warm_started_dpgan

    start = time.perf_counter()
    keras.utils.set_random_seed(FLAGS.seed)
    (x_train, y_train), (x_test, y_test) = load_mnist_unit_range(FLAGS.data_dir)
    if FLAGS.validation:
        (x_train, y_train), (x_test, y_test) = carve_validation_split(x_train, y_train, validation_fraction=0.1)
    generator = dcgan_generator(image_shape=(28, 28, 1), latent_dim=FLAGS.latent_dim, num_classes=_NUM_CLASSES,
                                width=FLAGS.g_width,
                                normalization=None if FLAGS.g_normalization == "none" else FLAGS.g_normalization)
    discriminator = dcgan_discriminator(image_shape=(28, 28, 1), num_classes=_NUM_CLASSES, width=FLAGS.d_width,
                                        projection=FLAGS.d_projection)
    gan_options = dict(expected_batch_size=FLAGS.batch_size, n_critic=FLAGS.n_critic,
                       l2_norm_clip=FLAGS.l2_norm_clip, ema_decay=FLAGS.ema_decay or None, seed=FLAGS.seed,
                       noise_seed=FLAGS.noise_seed)
    results = {}
    if not 0.0 <= FLAGS.warm_start_fraction <= 1.0:
        raise app.UsageError(f"--warm_start_fraction must be in [0, 1], got {FLAGS.warm_start_fraction}")
    gan_phase = FLAGS.warm_start_fraction < 1.0
    if FLAGS.warm_start_fraction > 0:
        source = MeanEmbeddingGenerator(generator, num_classes=_NUM_CLASSES, num_features=FLAGS.num_features,
                                        features=FLAGS.features, batch_size=500, seed=FLAGS.seed,
                                        noise_seed=FLAGS.noise_seed)
        source.compile(optimizer=keras.optimizers.Adam(1e-3))
        source.release_embedding(x_train, y_train, target_epsilon=FLAGS.warm_start_fraction * FLAGS.epsilon,
                                 delta=FLAGS.delta)
        source.fit(epochs=max(1, FLAGS.release_steps // 100), steps_per_epoch=min(100, FLAGS.release_steps), verbose=2)
        results["release_epsilon"] = source.privacy_spent(delta=FLAGS.delta)
        results["release_noise_multiplier"] = source.noise_multiplier
        results["release_seconds"] = round(time.perf_counter() - start, 1)
    if not gan_phase:
        method = (f"One DP-MERF release of the {FLAGS.features} embedding ({FLAGS.num_features} features) at the "
                  f"whole budget, generator trained {FLAGS.release_steps} free steps against it, no GAN phase")
        return _evaluate_and_report(source, results, x_train, y_train, x_test, y_test, start=start, method=method,
                                    title="DP-MERF (no GAN phase)")
    if FLAGS.warm_start_fraction > 0:
        # The warm start's own samples, drawn before the GAN phase trains the same generator further.
        warm_start_samples = source.generate(FLAGS.num_synthetic)
        gan = warm_started_dpgan(source, discriminator, **gan_options)
    else:
        # MNIST's size is public knowledge; after a warm start the release's noisy count sizes the D steps.
        gan = DPGAN(generator, discriminator, noise_multiplier=None, num_classes=_NUM_CLASSES,
                    num_examples=len(x_train), **gan_options)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(FLAGS.d_learning_rate, beta_1=FLAGS.beta_1),
        g_optimizer=keras.optimizers.Adam(FLAGS.g_learning_rate, beta_1=FLAGS.beta_1),
    )
    fit = dict(epochs=FLAGS.epochs, target_epsilon=FLAGS.epsilon, delta=FLAGS.delta, sampling_seed=FLAGS.sampling_seed)
    planned = gan.planned_dp_steps(FLAGS.epochs)
    if FLAGS.preset == "bie2023" and not tf.config.list_physical_devices("GPU") and not FLAGS.run_on_cpu:
        # Time a few train steps (after the tracing ones) and project, instead of pretending to train.
        probe = _stop_callback(train_steps=FLAGS.timing_train_steps)
        gan.fit(x_train, y_train, callbacks=[probe], verbose=0, **fit)
        timed_start, timed_step = probe.timed_from
        d_steps = (probe.steps - timed_step) * FLAGS.n_critic
        per_thousand = (time.monotonic() - timed_start) / d_steps * 1000
        results.update({
            "device": "cpu", "trained": False, "timed_d_steps": d_steps, "seconds_per_1000_d_steps": per_thousand,
            "planned_d_steps": planned, "projected_hours": per_thousand * planned / 1000 / 3600,
            "noise_multiplier": gan.dp_config.noise_multiplier,
        })
        report = write_experiment(
            FLAGS.output_dir, name="DP GAN on MNIST, Bie et al. 2023 preset: CPU time projection", results=results,
            summary=(f"No GPU here: timed {d_steps} D steps of the bie2023 preset (n_critic {FLAGS.n_critic}, batch "
                     f"{FLAGS.batch_size}, sigma {gan.dp_config.noise_multiplier:.4f}): {per_thousand:.0f} s per 1,000 "
                     f"D steps, so its {planned} D steps would take about {results['projected_hours']:.0f} hours. "
                     "Run it on a GPU (unchanged), or pass --run_on_cpu."),
            command=" ".join(sys.argv),
        )
        print(f"{per_thousand:.1f} s per 1,000 D steps on CPU; {planned} planned D steps: projected "
              f"{results['projected_hours']:.1f} h; not trained (report: {report})")
        return
    callbacks = [_stop_callback(minutes=FLAGS.time_limit_minutes)] if FLAGS.time_limit_minutes else []
    history = gan.fit(x_train, y_train, callbacks=callbacks, verbose=2, **fit).history
    results.update({
        "d_steps": gan.privacy_ledger.total_steps, "g_steps": int(gan.g_optimizer.iterations.numpy()),
        "planned_d_steps": planned, "noise_multiplier": gan.dp_config.noise_multiplier,
        "sampling_probability": gan.dp_config.sampling_probability,
        "epsilon_per_epoch": [float(e) for e in history.get("epsilon", [])],
        "g_loss_per_epoch": [float(v) for v in history.get("g_loss", [])],
    })
    warm = (f"warm-started from one DP-MERF release (epsilon {results['release_epsilon']:.3f}), then "
            if FLAGS.warm_start_fraction else "")
    method = (f"DCGAN-style G and D, {warm}D trained with DP-SGD on Poisson batches (q = "
              f"{results['sampling_probability']:.5f}, sigma = {results['noise_multiplier']:.4f} calibrated for "
              f"{planned} planned D steps, C = {FLAGS.l2_norm_clip}), {FLAGS.n_critic} D steps per G step. "
              f"{results['d_steps']} D steps")
    _evaluate_and_report(gan, results, x_train, y_train, x_test, y_test, start=start, method=method,
                         title=f"DP GAN{' (DP-MERF warm start)' if FLAGS.warm_start_fraction else ''}",
                         warm_start_samples=warm_start_samples if FLAGS.warm_start_fraction else None)


def _evaluate_and_report(model, results, x_train, y_train, x_test, y_test, *, start, method, title,
                         warm_start_samples=None):
    """Emits the synthetic set with its statement, evaluates it (and the warm start's samples) and reports."""
    import numpy as np

    from experiments.common.reporting import write_experiment
    from privgan.evaluation import evaluate_synthetic_images, save_sample_grid, train_classifier

    train_seconds = time.perf_counter() - start
    data_path, _ = model.save_synthetic(f"{FLAGS.output_dir}/synthetic.npz", FLAGS.num_synthetic, delta=FLAGS.delta)
    with np.load(data_path) as synthetic:
        x_synthetic, y_synthetic = synthetic["x"], synthetic["y"]
    epsilon = model.privacy_spent(delta=FLAGS.delta)
    save_sample_grid(x_synthetic, f"{FLAGS.output_dir}/samples.png", labels=y_synthetic, num_classes=_NUM_CLASSES,
                     title=f"{title}, epsilon = {epsilon:.2f}")
    feature_classifier = train_classifier(x_train, y_train, num_classes=_NUM_CLASSES, epochs=FLAGS.feature_epochs,
                                          seed=FLAGS.seed)
    evaluation = evaluate_synthetic_images(x_synthetic, y_synthetic, x_test, y_test,
                                           feature_classifier=feature_classifier, num_classes=_NUM_CLASSES,
                                           tstr_epochs=FLAGS.eval_epochs, seed=FLAGS.seed)
    if warm_start_samples is not None:  # did the GAN phase improve on its warm start? (issue 26)
        warm = evaluate_synthetic_images(*warm_start_samples, x_test, y_test, feature_classifier=feature_classifier,
                                         num_classes=_NUM_CLASSES, tstr_epochs=FLAGS.eval_epochs, seed=FLAGS.seed)
        results.update({"warm_start_tstr_accuracy": warm.tstr.accuracy, "warm_start_fid": warm.fid.fid})
    seconds = time.perf_counter() - start
    results.update({
        **evaluation.to_dict(),
        "evaluated_on": "validation split (10% of train)" if FLAGS.validation else "test split",
        "epsilon": epsilon, "target_epsilon": FLAGS.epsilon, "gan_phase": FLAGS.warm_start_fraction < 1.0,
        "features": FLAGS.features, "train_seconds": round(train_seconds, 1),
    })
    report = write_experiment(
        FLAGS.output_dir,
        name=f"Conditional DP generator on MNIST ({FLAGS.preset} preset)",
        results=results,
        summary=(
            f"{method}; the whole ledger spent epsilon = **{epsilon:.3f}** at delta = {FLAGS.delta} (PLD).\n\n"
            f"Measured on the {results['evaluated_on']}:\n\n{evaluation.summary()}\n\n"
            "The evaluation reads real data outside the DP guarantee. "
            f"Wall time {seconds / 60:.1f} min in total, {train_seconds / 60:.1f} min of training."
        ),
        figures=["samples.png"],
        command=" ".join(sys.argv),
    )
    print(f"tstr_accuracy {evaluation.tstr.accuracy:.4f}, fid {evaluation.fid.fid:.3f}, recall "
          f"{evaluation.prdc.recall:.3f}, epsilon {epsilon:.3f}, {seconds:.0f} s; report: {report}")


if __name__ == "__main__":
    app.run(main)
