r"""privgan-demo: train a small conditional DP GAN on the bundled 8x8 digits (no download) in a few minutes.

  privgan-demo --output_dir=privgan_demo --epsilon=10

Writes to --output_dir:
  synthetic.npz   generated images `x` (N, 8, 8, 1) in [0, 1] and labels `y`
  synthetic.json  the privacy statement of synthetic.npz (epsilon, delta, accountant, sigma, C, q, D steps, ...)
  samples.png     a grid of samples, one row per digit
  results.json    the TSTR accuracy (a CNN trained on synthetic.npz, tested on the real digits test split)
and prints where they went. The default budget is epsilon = 10 at delta = 1e-5 (the 1,437 training digits
are few, so a smaller epsilon gives blurrier digits); sigma is calibrated so that the planned D steps
spend exactly that budget. Also runs as `python -m privgan.cli.demo`.
"""

import pathlib
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "privgan_demo", "Folder for synthetic.npz, synthetic.json, samples.png, results.json.")
flags.DEFINE_float("epsilon", 10.0, "Privacy budget (epsilon) of the whole training.")
flags.DEFINE_float("delta", 1e-5, "delta of the budget; keep it well below 1 / 1437.")
flags.DEFINE_integer("epochs", 60, "Epochs of D steps (each round(N / batch_size) Poisson-sampled D steps).")
flags.DEFINE_integer("batch_size", 64, "Expected Poisson batch size of a D step.")
flags.DEFINE_integer("num_synthetic", 2000, "Number of synthetic digits to write.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation, sampling and generation (the DP noise is always secret).")

_NUM_CLASSES = 10


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    import keras

    from privgan.data import load_digits
    from privgan.evaluation import save_sample_grid, train_synthetic_test_real
    from privgan.io import write_json
    from privgan.models.architectures import mlp_discriminator, mlp_generator
    from privgan.models.dpgan import DPGAN

    keras.utils.set_random_seed(FLAGS.seed)
    output_dir = pathlib.Path(FLAGS.output_dir)
    (x_train, y_train), (x_test, y_test) = load_digits(seed=FLAGS.seed)
    shape = x_train.shape[1:]
    gan = DPGAN(
        mlp_generator(output_shape=shape, latent_dim=32, num_classes=_NUM_CLASSES, batch_norm=True),
        mlp_discriminator(input_shape=shape, num_classes=_NUM_CLASSES),
        l2_norm_clip=1.0,
        noise_multiplier=None,  # calibrated in fit for the budget
        num_examples=len(x_train),
        expected_batch_size=FLAGS.batch_size,
        num_classes=_NUM_CLASSES,
        n_critic=1,
        seed=FLAGS.seed,
    )
    gan.compile(
        d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
    )
    start = time.perf_counter()
    gan.fit(x_train, y_train, epochs=FLAGS.epochs, target_epsilon=FLAGS.epsilon, delta=FLAGS.delta,
            sampling_seed=FLAGS.seed, verbose=2)
    seconds = time.perf_counter() - start
    data_path, statement_path = gan.save_synthetic(output_dir / "synthetic.npz", FLAGS.num_synthetic, delta=FLAGS.delta)
    import numpy as np

    with np.load(data_path) as synthetic:
        x_synthetic, y_synthetic = synthetic["x"], synthetic["y"]
    grid = save_sample_grid(x_synthetic, output_dir / "samples.png", labels=y_synthetic, num_classes=_NUM_CLASSES,
                            title=f"DP GAN digits, epsilon={gan.privacy_spent(delta=FLAGS.delta):.2f}")
    tstr = train_synthetic_test_real(x_synthetic, y_synthetic, x_test, y_test, num_classes=_NUM_CLASSES,
                                     epochs=20, batch_size=64, seed=FLAGS.seed)
    epsilon = gan.privacy_spent(delta=FLAGS.delta)
    results_path = output_dir / "results.json"
    write_json(results_path, {
        "tstr_accuracy": tstr.accuracy,
        "epsilon": epsilon,
        "delta": FLAGS.delta,
        "d_steps": gan.privacy_ledger.total_steps,
        "noise_multiplier": gan.dp_config.noise_multiplier,
        "train_seconds": round(seconds, 1),
    })
    print(f"Trained a conditional DP GAN on {len(x_train)} digits in {seconds:.0f} s: epsilon = {epsilon:.3f} "
          f"at delta = {FLAGS.delta:g} ({gan.privacy_ledger.total_steps} D steps, "
          f"sigma = {gan.dp_config.noise_multiplier:.4f}).")
    print(tstr.summary())
    print(f"synthetic data:    {data_path}")
    print(f"privacy statement: {statement_path}")
    print(f"sample grid:       {grid}")
    print(f"results:           {results_path}")


def run():
    """Console-script entry point (`privgan-demo`)."""
    app.run(main)


if __name__ == "__main__":
    run()
