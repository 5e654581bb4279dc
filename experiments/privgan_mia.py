"""White-box membership inference on MNIST: GAN vs privGAN vs DPGAN, in the privGAN paper's setup.

    python -m experiments.privgan_mia --data_dir=../shared/datasets/mnist --output_dir=runs/privgan_mia

Setup of Mukherjee et al. (2021): each model is trained on a random 10% of the MNIST training set
(--num_train = 6000 records); the attacker ranks a pool made of those records plus the other training
records (all 54000 by default, or a random sample of --num_non_members) by the discriminator's score (for
privGAN, the maximum over its N discriminators) and guesses the top |train| as members. The score is
the precision of those guesses (0.10 is random guessing with a 10% member pool); the AUC of the same
ranking is reported too. The GAN is the same training loop with a single pair (privGAN with N = 1);
the DPGAN's discriminator is trained with DP-SGD at --dpgan_epsilon. All models are unconditional MLPs.

TSTR accuracy: the synthetic images are labelled by a CNN trained on the real 6000-record training
subset, then a CNN trained on those labelled synthetic images is tested on the real MNIST test set.
Writes results.json, report.md, mia_precision.png, mia_roc.png and samples_<model>.png.
"""

import sys
import time

from absl import app, flags

from experiments.randomness import define_sampling_seed_flag

flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("output_dir", "runs/privgan_mia", "Where results.json, report.md and the plots go.")
flags.DEFINE_integer("num_train", 6000, "Training records (a random subset of MNIST train).")
flags.DEFINE_integer("num_non_members", None, "Non-members in the attack pool (None: all other training records).")
flags.DEFINE_integer("epochs", 100, "Epochs of the GAN and of privGAN (overfitting the GAN is what the attack needs).")
flags.DEFINE_integer("dpgan_epochs", 30, "Epochs of the DPGAN.")
flags.DEFINE_float("dpgan_epsilon", 10.0, "Target epsilon of the DPGAN.")
flags.DEFINE_float("delta", 1e-5, "delta of the DPGAN.")
flags.DEFINE_float("l2_norm_clip", 1.0, "C of the DPGAN's discriminator.")
flags.DEFINE_integer("num_pairs", 2, "N, generator/discriminator pairs of privGAN.")
flags.DEFINE_float("privacy_weight", 1.0, "lambda, weight of privGAN's privacy term.")
flags.DEFINE_integer("batch_size", 64, "Batch size (per pair for privGAN; expected Poisson batch for DPGAN).")
flags.DEFINE_float("learning_rate", 2e-4, "Adam learning rate of every network (beta_1 = 0.5).")
flags.DEFINE_integer("latent_dim", 64, "Latent dimension.")
flags.DEFINE_list("g_hidden", ["256", "512", "1024"], "Hidden widths of the MLP generators (BatchNorm, ReLU).")
flags.DEFINE_list("d_hidden", ["512", "256"], "Hidden widths of the MLP discriminators (and privacy discriminator).")
flags.DEFINE_integer("num_synthetic", 10000, "Synthetic images per model for TSTR.")
flags.DEFINE_integer("label_epochs", 5, "Epochs of the labelling CNN (trained on the real training subset).")
flags.DEFINE_integer("eval_epochs", 3, "Epochs of the TSTR CNN.")
flags.DEFINE_list("models", ["GAN", "privGAN", "DPGAN"], "Models to train and attack.")
flags.DEFINE_integer("seed", 0, "Seed of the subset, initialisation and splits "
                     "(the DP noise and the Poisson sampling are secret).")
define_sampling_seed_flag()
FLAGS = flags.FLAGS

NUM_CLASSES = 10
PUBLISHED = {"GAN": 0.538, "privGAN": 0.210}  # privGAN repository, MNIST, white-box attack
SIDE = 28


def _load():
    import numpy as np

    from privgan.data import load_mnist_unit_range

    (x_train, y_train), (x_test, y_test) = load_mnist_unit_range(FLAGS.data_dir, flatten=True)
    rng = np.random.default_rng(FLAGS.seed)
    order = rng.permutation(len(y_train))
    members, others = order[: FLAGS.num_train], order[FLAGS.num_train :]
    if FLAGS.num_non_members is not None:
        others = rng.choice(others, size=FLAGS.num_non_members, replace=False)
    return (x_train[members], y_train[members]), x_train[others], (x_test, y_test)


def _mlp_pair():
    from privgan.models.architectures import mlp_discriminator, mlp_generator

    generator = mlp_generator(output_shape=(SIDE * SIDE,), latent_dim=FLAGS.latent_dim,
                              hidden=tuple(int(h) for h in FLAGS.g_hidden), batch_norm=True)
    discriminator = mlp_discriminator(input_shape=(SIDE * SIDE,), hidden=tuple(int(h) for h in FLAGS.d_hidden))
    return generator, discriminator


def _adam():
    import keras

    return keras.optimizers.Adam(FLAGS.learning_rate, beta_1=0.5)


def _train_privgan(x, num_pairs):
    """privGAN with `num_pairs` pairs; one pair is the plain GAN. Returns (discriminators, generate, info)."""
    import keras

    from privgan.models.privgan import PrivGAN

    pairs = [_mlp_pair() for _ in range(num_pairs)]
    privacy_discriminator = None
    if num_pairs > 1:
        privacy_discriminator = keras.Sequential(
            [keras.Input((SIDE * SIDE,))]
            + [layer for h in FLAGS.d_hidden for layer in (keras.layers.Dense(int(h)), keras.layers.LeakyReLU(0.2))]
            + [keras.layers.Dense(num_pairs)],
            name="privacy_discriminator",
        )
    gan = PrivGAN([g for g, _ in pairs], [d for _, d in pairs], privacy_discriminator, seed=FLAGS.seed)
    gan.compile(_adam(), _adam(), _adam(), privacy_weight=FLAGS.privacy_weight if num_pairs > 1 else 0.0)
    history = gan.fit(x, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=2).history
    info = {"epochs": FLAGS.epochs, "num_pairs": num_pairs,
            "final_losses": {k: float(v[-1]) for k, v in history.items()}}
    return gan.discriminators, gan.generate, info


def _train_dpgan(x):
    from privgan.models.dpgan import DPGAN

    generator, discriminator = _mlp_pair()
    gan = DPGAN(generator, discriminator, l2_norm_clip=FLAGS.l2_norm_clip, noise_multiplier=None,
                num_examples=len(x), expected_batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    gan.compile(d_optimizer=_adam(), g_optimizer=_adam())
    gan.fit(x, epochs=FLAGS.dpgan_epochs, target_epsilon=FLAGS.dpgan_epsilon, delta=FLAGS.delta,
            sampling_seed=FLAGS.sampling_seed, verbose=2)
    info = {"epochs": FLAGS.dpgan_epochs, "epsilon": gan.privacy_spent(delta=FLAGS.delta), "delta": FLAGS.delta,
            "noise_multiplier": gan.dp_config.noise_multiplier, "d_steps": gan.privacy_ledger.total_steps}
    return [gan.discriminator], gan.generate, info


def _evaluate(name, discriminators, generate, records, is_member, labeller, test):
    import numpy as np

    from privgan.audit import discriminator_ranking_attack
    from privgan.evaluation import save_sample_grid, train_synthetic_test_real

    attack = discriminator_ranking_attack(discriminators=discriminators, records=records, is_member=is_member,
                                          aggregate="max")
    synthetic = generate(FLAGS.num_synthetic).reshape(-1, SIDE, SIDE, 1)
    labels = np.argmax(labeller.predict(synthetic, batch_size=512, verbose=0), axis=1)
    x_test, y_test = test
    tstr = train_synthetic_test_real(synthetic, labels, x_test.reshape(-1, SIDE, SIDE, 1), y_test,
                                     num_classes=NUM_CLASSES, epochs=FLAGS.eval_epochs, seed=FLAGS.seed)
    save_sample_grid(synthetic[:100], f"{FLAGS.output_dir}/samples_{name}.png", title=name)
    print(f"[{name}] {attack.summary()}\n  {tstr.summary()}")
    return attack, {
        "mia_precision": attack.top_k_precision(),
        "auc": attack.auc,
        "max_advantage": attack.max_advantage,
        "tstr_accuracy": tstr.accuracy,
        "synthetic_label_counts": np.bincount(labels, minlength=NUM_CLASSES).tolist(),
    }


def _plot_precision(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from privgan.io import save_figure

    names = list(results)
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.bar(names, [results[n]["mia_precision"] for n in names], color="tab:blue", label="measured")
    published = [(i, PUBLISHED[n]) for i, n in enumerate(names) if n in PUBLISHED]
    if published:
        axis.scatter(*zip(*published), marker="_", s=600, color="black", label="published (privGAN repo)")
    axis.axhline(FLAGS.num_train / (FLAGS.num_train + results[names[0]]["num_non_members"]), linestyle="--",
                 color="grey", label="random guessing")
    axis.set_ylabel("precision of the top-|train| records")
    axis.set_title("White-box attack (discriminator ranking)")
    axis.legend(fontsize="small")
    save_figure(figure, path, dpi=120, bbox_inches="tight")


def main(argv):
    del argv
    import dataclasses

    import keras
    import numpy as np

    from experiments.common.reporting import write_experiment
    from privgan.audit import plot_roc
    from privgan.evaluation import train_classifier
    from privgan.io import save_figure

    unknown = set(FLAGS.models) - {"GAN", "privGAN", "DPGAN"}
    if unknown:
        raise app.UsageError(f"--models must be among GAN, privGAN, DPGAN; got {sorted(unknown)}")
    keras.utils.set_random_seed(FLAGS.seed)
    (x, y), x_non_members, test = _load()
    records = np.concatenate([x, x_non_members])
    is_member = np.arange(len(records)) < len(x)
    start = time.perf_counter()
    labeller = train_classifier(x.reshape(-1, SIDE, SIDE, 1), y, num_classes=NUM_CLASSES,
                                epochs=FLAGS.label_epochs, seed=FLAGS.seed)
    x_test, y_test = test
    labeller_accuracy = float(np.mean(
        np.argmax(labeller.predict(x_test.reshape(-1, SIDE, SIDE, 1), batch_size=512, verbose=0), 1) == y_test))
    trainers = {"GAN": lambda: _train_privgan(x, 1), "privGAN": lambda: _train_privgan(x, FLAGS.num_pairs),
                "DPGAN": lambda: _train_dpgan(x)}
    results, attacks = {}, []
    for name in FLAGS.models:
        model_start = time.perf_counter()
        keras.utils.set_random_seed(FLAGS.seed)
        discriminators, generate, info = trainers[name]()
        train_seconds = time.perf_counter() - model_start
        attack, metrics = _evaluate(name, discriminators, generate, records, is_member, labeller, test)
        attacks.append(dataclasses.replace(attack, attack=name))
        results[name] = {**metrics, **info, "num_members": int(is_member.sum()),
                         "num_non_members": int((~is_member).sum()), "train_seconds": round(train_seconds, 1),
                         "seconds": round(time.perf_counter() - model_start, 1)}
    seconds = time.perf_counter() - start

    _plot_precision(results, f"{FLAGS.output_dir}/mia_precision.png")
    save_figure(plot_roc(attacks), f"{FLAGS.output_dir}/mia_roc.png", dpi=120)
    chance = len(x) / len(records)
    table = [f"| model | attack precision (top {len(x)}) | published | AUC | TSTR accuracy |", "|---|---|---|---|---|"]
    table += [
        f"| {name} | {r['mia_precision']:.3f} | {PUBLISHED.get(name, '-')} | {r['auc']:.3f} | "
        f"{r['tstr_accuracy']:.4f} |"
        for name, r in results.items()
    ]
    dp_note = ""
    if "DPGAN" in results:
        dp = results["DPGAN"]
        dp_note = (f" DPGAN: epsilon = {dp['epsilon']:.2f} at delta = {FLAGS.delta:g} (sigma = "
                   f"{dp['noise_multiplier']:.3f}, C = {FLAGS.l2_norm_clip}, {FLAGS.dpgan_epochs} epochs).")
    summary = (
        f"privGAN paper setup: each model trained on {len(x)} random MNIST training images (10%); the attack pool "
        f"is those {len(x)} members plus {len(x_non_members)} other MNIST training images "
        f"({'all of them' if FLAGS.num_non_members is None else 'a random sample'}), ranked by the discriminator's "
        f"score (privGAN: max over its {FLAGS.num_pairs} discriminators); precision of the top {len(x)} records, "
        f"random guessing = {chance:.3f}. MLP generators {FLAGS.g_hidden} (with BatchNorm: without it the GAN "
        f"collapsed to a single image) and discriminators {FLAGS.d_hidden}, "
        f"Adam({FLAGS.learning_rate}, beta_1=0.5), batch {FLAGS.batch_size}; GAN and privGAN "
        f"(N = {FLAGS.num_pairs}, lambda = {FLAGS.privacy_weight}) {FLAGS.epochs} epochs.{dp_note} "
        f"The GAN is privGAN's training loop with one pair. privGAN is an empirical defence, not DP.\n\n"
        f"TSTR: {FLAGS.num_synthetic} synthetic images per model, labelled by a CNN trained on the real "
        f"{len(x)}-image training subset ({FLAGS.label_epochs} epochs; {labeller_accuracy:.4f} on the real test "
        f"set), train a CNN ({FLAGS.eval_epochs} epochs) tested on the 10000 real test images.\n\n"
        + "\n".join(table)
        + "\n\nPublished numbers (privGAN repository, MNIST) come from larger MLPs trained much longer "
        "(200 epochs); this run is sized for ~30 minutes on 2 shared cores."
    )
    write_experiment(
        FLAGS.output_dir,
        name="White-box membership inference: GAN vs privGAN vs DPGAN on MNIST",
        results={
            "models": results,
            "published_mia_precision": PUBLISHED,
            "random_guess_precision": chance,
            "labeller_test_accuracy": labeller_accuracy,
            "num_train": len(x),
            "num_non_members": len(x_non_members),
            "non_members": "all other MNIST training records" if FLAGS.num_non_members is None else "random sample",
            "tstr_labels": "predicted by a CNN trained on the real training subset",
            "g_hidden": [int(h) for h in FLAGS.g_hidden],
            "d_hidden": [int(h) for h in FLAGS.d_hidden],
        },
        summary=summary,
        figures=["mia_precision.png", "mia_roc.png"] + [f"samples_{name}.png" for name in results],
        command=" ".join(sys.argv),
    )
    print(f"done in {seconds:.0f} s; report: {FLAGS.output_dir}/report.md")


if __name__ == "__main__":
    app.run(main)
