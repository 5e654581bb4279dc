"""Canary audit of a DPGAN on MNIST: an empirical epsilon lower bound next to the accountant's epsilon.

    python -m experiments.audit_dpgan --data_dir=../shared/datasets/mnist --output_dir=runs/audit_dpgan

One training run per setting (Steinke, Nasr & Jagielski 2023): m mislabelled canaries (MNIST test images
with a wrong label), each added with probability 1/2 to a subset of the MNIST training set; a conditional
DPGAN (MLP generator and discriminator) is trained once with noise_multiplier = 0 (per-example clipping
still on: "non-private") and once per target epsilon (sigma calibrated by the PLD accountant). Only the
discriminator reads the data, so the canaries are scored through it: the logit D(image, wrong label),
minus that of a reference DPGAN trained the same way without canaries and with independent seeds
(--reference; it cancels how plausible each pair is anyway). The highest and lowest scores are guessed
"included" and "excluded"; the count of correct guesses gives epsilon_lower_bound. A lower bound above
the accountant's epsilon would be a bug in the DP code: it is flagged in the output and the report.
Writes results.json, report.md, epsilon_bounds.png and canary_roc.png to --output_dir.
"""

import sys
import time

from absl import app, flags

from experiments.randomness import define_sampling_seed_flag

flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("output_dir", "runs/audit_dpgan", "Where results.json, report.md and the plots go.")
flags.DEFINE_integer("num_train", 2000, "Ordinary training records (a random subset of MNIST train).")
flags.DEFINE_integer("num_canaries", 500, "m, mislabelled canaries from the MNIST test split.")
flags.DEFINE_list("epsilons", ["2", "10"], "Target epsilons of the private runs.")
flags.DEFINE_bool("non_private", True, "Also audit a run with noise_multiplier = 0 (the attack's sanity check).")
flags.DEFINE_float("delta", 1e-5, "delta of the accountant's epsilon and of the lower bound.")
flags.DEFINE_float("alpha", 0.05, "Significance of the lower bound (confidence 1 - alpha).")
flags.DEFINE_integer("batch_size", 64, "Expected Poisson batch size of a D step (also the fake batch size).")
flags.DEFINE_integer("epochs", 20, "Epochs of the private runs.")
flags.DEFINE_integer("non_private_epochs", 150, "Epochs of the non-private run (long enough to memorise).")
flags.DEFINE_float("d_learning_rate", 1e-3, "Adam learning rate of D.")
flags.DEFINE_float("g_learning_rate", 2e-3, "Adam learning rate of G.")
flags.DEFINE_float("l2_norm_clip", 1.0, "C, the per-example clipping bound of D's gradient.")
flags.DEFINE_integer("latent_dim", 32, "Latent dimension.")
flags.DEFINE_list("d_hidden", ["512", "256"], "Hidden widths of the MLP discriminator.")
flags.DEFINE_list("g_hidden", ["256", "512", "1024"], "Hidden widths of the MLP generator (BatchNorm, ReLU).")
flags.DEFINE_bool("reference", True, "Subtract the logit of a reference DPGAN trained without canaries.")
flags.DEFINE_integer(
    "seed", 0,
    "Seed of the subset, canaries, inclusion and initialisation (the DP noise and the Poisson sampling are secret).",
)
define_sampling_seed_flag()
FLAGS = flags.FLAGS

NUM_CLASSES = 10
SCORES = {
    True: "the discriminator's logit D(image, wrong label) minus that of a reference DPGAN trained the same "
    "way without canaries, with independent seeds",
    False: "the discriminator's logit D(image, wrong label)",
}


def _load():
    from privgan.audit import subset_with_mislabelled_canaries
    from privgan.data import load_mnist_unit_range

    train, test = load_mnist_unit_range(FLAGS.data_dir, flatten=True)
    train, canaries, _ = subset_with_mislabelled_canaries(
        train, test, num_train=FLAGS.num_train,
        num_canaries=FLAGS.num_canaries, num_classes=NUM_CLASSES, seed=FLAGS.seed,
    )
    return train, canaries


def _trainer(target_epsilon):
    """A `train(x, y, seed, sampling_seed)` for a conditional DPGAN: sigma 0 without a target, else calibrated."""

    def train(x, y, seed, sampling_seed):
        import keras

        from privgan.models.architectures import mlp_discriminator, mlp_generator
        from privgan.models.dpgan import DPGAN

        keras.utils.set_random_seed(seed)
        gan = DPGAN(
            mlp_generator(output_shape=x.shape[1:], latent_dim=FLAGS.latent_dim, num_classes=NUM_CLASSES,
                          hidden=tuple(int(h) for h in FLAGS.g_hidden), batch_norm=True),
            mlp_discriminator(input_shape=x.shape[1:], num_classes=NUM_CLASSES,
                              hidden=tuple(int(h) for h in FLAGS.d_hidden)),
            l2_norm_clip=FLAGS.l2_norm_clip,
            noise_multiplier=0.0 if target_epsilon is None else None,
            num_examples=len(x),
            expected_batch_size=FLAGS.batch_size,
            num_classes=NUM_CLASSES,
            seed=seed,
        )
        gan.compile(d_optimizer=keras.optimizers.Adam(FLAGS.d_learning_rate, beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(FLAGS.g_learning_rate, beta_1=0.5))
        epochs = FLAGS.non_private_epochs if target_epsilon is None else FLAGS.epochs
        gan.fit(x, y, epochs=epochs, target_epsilon=target_epsilon,
                delta=None if target_epsilon is None else FLAGS.delta, sampling_seed=sampling_seed, verbose=0)
        return gan

    return train


def _logits(gan, x, y):
    return gan.discriminator.predict([x, y], batch_size=1024, verbose=0).reshape(-1)


def _run(name, target_epsilon, data):
    from privgan.audit import run_canary_audit

    (x, y), (x_canaries, y_canaries) = data
    train = _trainer(target_epsilon)
    start = time.perf_counter()
    # The reference never sees a canary and shares no seed with the audited run (its batches are always
    # secret), so the guesses depend on the audited run only through its discriminator, as the one-run
    # bound requires.
    reference = train(x, y, seed=FLAGS.seed + 1, sampling_seed=None) if FLAGS.reference else None
    models = []

    def train_and_keep(x, y):
        models.append(train(x, y, seed=FLAGS.seed, sampling_seed=FLAGS.sampling_seed))
        return models[-1]

    def score(gan, x, y):
        logits = _logits(gan, x, y)
        return logits if reference is None else logits - _logits(reference, x, y)

    audit = run_canary_audit(
        x=x, y=y, x_canaries=x_canaries, y_canaries=y_canaries, train_fn=train_and_keep, score_fn=score,
        delta=FLAGS.delta, alpha=FLAGS.alpha,
        epsilon_fn=None if target_epsilon is None else (lambda gan: gan.privacy_spent(delta=FLAGS.delta)),
        seed=FLAGS.seed,
    )
    seconds = time.perf_counter() - start
    gan = models[0]
    print(f"[{name}] {audit.summary()}\n  {seconds:.0f} s", flush=True)
    return audit, {
        "name": name,
        "epsilon": audit.epsilon,
        "epsilon_lower_bound": audit.epsilon_lower_bound,
        "num_canaries": audit.num_canaries,
        "num_guesses": audit.num_guesses,
        "num_correct": audit.num_correct,
        "canary_auc": audit.attack.auc,
        "exceeds_accountant": audit.exceeds_accountant,
        "noise_multiplier": gan.dp_config.noise_multiplier,
        "d_steps": gan.privacy_ledger.total_steps,
        "seconds": round(seconds, 1),
    }


def main(argv):
    del argv
    import dataclasses

    from experiments.common.reporting import write_experiment
    from privgan.audit import plot_epsilon_bounds, plot_roc
    from privgan.audit.canaries import DEFAULT_GUESS_FRACTIONS
    from privgan.io import save_figure

    data = _load()
    settings = ([("non-private (sigma=0)", None)] if FLAGS.non_private else []) + [
        (f"DP eps={float(e):g}", float(e)) for e in FLAGS.epsilons
    ]
    start = time.perf_counter()
    attacks, runs = [], []
    for name, target_epsilon in settings:
        audit, run = _run(name, target_epsilon, data)
        attacks.append(dataclasses.replace(audit.attack, attack=name))
        runs.append(run)
    seconds = time.perf_counter() - start

    save_figure(
        plot_epsilon_bounds(runs, delta=FLAGS.delta, alpha=FLAGS.alpha, title="DPGAN canary audit"),
        f"{FLAGS.output_dir}/epsilon_bounds.png", dpi=120, bbox_inches="tight",
    )
    save_figure(plot_roc(attacks), f"{FLAGS.output_dir}/canary_roc.png", dpi=120)
    violations = [run["name"] for run in runs if run["exceeds_accountant"]]
    table = ["| run | accountant epsilon | epsilon lower bound | correct / guesses | canary AUC | sigma |",
             "|---|---|---|---|---|---|"]
    table += [
        f"| {run['name']} | {'-' if run['epsilon'] is None else format(run['epsilon'], '.3f')} | "
        f"{run['epsilon_lower_bound']:.3f} | {run['num_correct']} / {run['num_guesses']} | "
        f"{run['canary_auc']:.3f} | {run['noise_multiplier']:.3f} |"
        for run in runs
    ]
    verdict = (
        "**DP BUG: the lower bound exceeds the accountant's epsilon in " + ", ".join(violations) + ".**"
        if violations else "No lower bound exceeds the accountant's epsilon."
    )
    summary = (
        (verdict + "\n\n" if violations else "")
        + f"One-run canary audit (Steinke et al. 2023) of a conditional DPGAN: {FLAGS.num_canaries} mislabelled "
        f"MNIST test images, each added with probability 1/2 to {FLAGS.num_train} MNIST training images. MLP "
        f"G {FLAGS.g_hidden} and D {FLAGS.d_hidden}, Adam (D {FLAGS.d_learning_rate}, G {FLAGS.g_learning_rate}), "
        f"Poisson batches of expected size {FLAGS.batch_size}, C = {FLAGS.l2_norm_clip}; the non-private run "
        f"uses sigma = 0 (clipping on) for {FLAGS.non_private_epochs} epochs, the private runs {FLAGS.epochs} "
        f"epochs with sigma calibrated to each target epsilon (PLD accountant). Canaries are scored by "
        f"{SCORES[FLAGS.reference]}; guesses at the top ('included') and bottom ('excluded') of the ranking, "
        f"the number of guesses chosen among {len(DEFAULT_GUESS_FRACTIONS)} candidates with a Bonferroni "
        f"correction. Lower bounds hold with confidence {1 - FLAGS.alpha:.0%} at delta = {FLAGS.delta:g}.\n\n"
        + "\n".join(table) + "\n\n" + (verdict if not violations else "")
        + " The auditor sees only the final discriminator (and the generator never sees data), so the bound "
        "is far from tight; the non-private run shows how much the attack itself can detect."
    )
    write_experiment(
        FLAGS.output_dir,
        name="Canary audit of a DPGAN on MNIST",
        results={
            "runs": runs,
            "violations": violations,
            "canaries": "mislabelled MNIST test images, each included with probability 1/2",
            "score": SCORES[FLAGS.reference],
        },
        summary=summary,
        figures=["epsilon_bounds.png", "canary_roc.png"],
        command=" ".join(sys.argv),
    )
    print(f"done in {seconds:.0f} s; report: {FLAGS.output_dir}/report.md")
    if violations:
        print(f"WARNING: DP BUG: epsilon lower bound above the accountant's epsilon in {violations}")


if __name__ == "__main__":
    app.run(main)
