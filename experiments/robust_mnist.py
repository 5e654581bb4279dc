"""Adversarial training on MNIST at L-inf epsilon = 0.3: standard, fast FGSM, PGD-AT and a TRADES beta sweep.

    python -m experiments.robust_mnist --data_dir=../shared/datasets/mnist --output_dir=runs/robust_mnist

Each model trains on MNIST's training split less a stratified validation split (never the test split);
after every epoch a PGD attack on part of the validation split gives `val_robust_accuracy`, and the
weights of the best epoch are kept (Wong et al.'s guard against catastrophic overfitting). Every model
is then evaluated on a fixed subset of the test split (the first --eval_examples images) by
`privgan.robustness.robustness_report`: the worst case over APGD-CE and PGD with restarts, plus the
gradient-masking checks; clean accuracy is also measured on the whole test split. Writes results.json,
report.md, trade_off.png and each trained classifier (models/<name>.keras, plain Keras models) to
--output_dir.
"""

import sys
import time

from absl import app, flags

flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("output_dir", "runs/robust_mnist", "Where results, report, plot and models go.")
flags.DEFINE_float("epsilon", 0.3, "L-inf radius of training and evaluation (inputs in [0, 1]).")
flags.DEFINE_list("methods", ["standard", "fast_fgsm", "pgd", "trades"], "Which trainings to run.")
flags.DEFINE_list("trades_betas", ["1", "6"], "TRADES beta values of the sweep.")
flags.DEFINE_integer("standard_epochs", 3, "Epochs of standard training.")
flags.DEFINE_integer("fast_fgsm_epochs", 10, "Epochs of fast FGSM training.")
flags.DEFINE_integer("pgd_epochs", 10, "Epochs of PGD and TRADES training.")
flags.DEFINE_integer("train_steps", 10, "PGD / TRADES inner steps during training.")
flags.DEFINE_float("train_step_size", None, "Inner step during training; None: 2.5 epsilon / steps.")
flags.DEFINE_float("epsilon_warmup_epochs", 2, "Epochs over which the training radius grows from 0 to epsilon.")
flags.DEFINE_integer("batch_size", 100, "Training batch size.")
flags.DEFINE_float("learning_rate", 5e-3, "Peak Adam learning rate (linear warm-up over 20%, cosine decay).")
flags.DEFINE_integer("width", 1, "Width multiplier of the CNN (privgan.models.classifiers.robust_mnist_cnn).")
flags.DEFINE_integer("validation_size", 5000, "Validation examples carved from the training split.")
flags.DEFINE_integer("validation_attack_examples", 1000, "Validation examples attacked after each epoch.")
flags.DEFINE_integer("eval_examples", 1000, "Test examples attacked (the first ones of the test split).")
flags.DEFINE_integer("eval_steps", 100, "Iterations of APGD-CE and PGD in the evaluation.")
flags.DEFINE_integer("eval_restarts", 5, "Random restarts of the evaluation PGD.")
flags.DEFINE_integer("seed", 0, "Seed of the split, initialisation, random starts and attacks.")
FLAGS = flags.FLAGS


def _optimizer(epochs, steps_per_epoch):
    import keras

    from privgan.robustness.training import warmup_cosine_schedule

    return keras.optimizers.Adam(warmup_cosine_schedule(FLAGS.learning_rate, epochs * steps_per_epoch))


def _train(name, method, beta, data, validation):
    import keras

    from privgan.models.classifiers import robust_mnist_cnn
    from privgan.robustness import PGD, RobustValidation
    from privgan.robustness.training import TRADES, FastFGSMTraining, PGDAdversarialTraining

    (x_train, y_train), (x_val, y_val) = data, validation
    keras.utils.set_random_seed(FLAGS.seed)
    classifier = robust_mnist_cnn(width=FLAGS.width)
    steps_per_epoch = -(-len(x_train) // FLAGS.batch_size)
    epsilon, seed = FLAGS.epsilon, FLAGS.seed
    common = dict(epsilon=epsilon, seed=seed, epsilon_warmup_steps=int(FLAGS.epsilon_warmup_epochs * steps_per_epoch))
    if method == "standard":
        epochs = FLAGS.standard_epochs
        trainer = classifier
        trainer.compile(optimizer=_optimizer(epochs, steps_per_epoch),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        callbacks = []
    else:
        epochs = FLAGS.fast_fgsm_epochs if method == "fast_fgsm" else FLAGS.pgd_epochs
        if method == "fast_fgsm":
            trainer = FastFGSMTraining(classifier, **common)
        elif method == "pgd":
            trainer = PGDAdversarialTraining(classifier, steps=FLAGS.train_steps, step_size=FLAGS.train_step_size,
                                             **common)
        else:
            trainer = TRADES(classifier, beta=beta, steps=FLAGS.train_steps, step_size=FLAGS.train_step_size,
                             **common)
        trainer.compile(optimizer=_optimizer(epochs, steps_per_epoch))
        attacked = slice(0, FLAGS.validation_attack_examples)
        callbacks = [RobustValidation(PGD(epsilon=epsilon, steps=20), x_val[attacked], y_val[attacked], seed=seed)]
    start = time.perf_counter()
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=FLAGS.batch_size, callbacks=callbacks,
                          verbose=2).history
    seconds = time.perf_counter() - start
    best_epoch = callbacks[0].best_epoch + 1 if callbacks else epochs
    print(f"{name}: trained {epochs} epochs in {seconds:.0f} s (kept epoch {best_epoch})", flush=True)
    return classifier, {
        "method": method, "beta": beta, "epochs": epochs, "kept_epoch": best_epoch, "train_seconds": round(seconds, 1),
        "val_robust_accuracy_per_epoch": [float(v) for v in history.get("val_robust_accuracy", [])],
    }


def main(argv):
    del argv
    import pathlib

    import numpy as np

    from experiments.common.reporting import write_experiment
    from privgan.data import load_mnist_with_validation
    from privgan.io import atomic_path
    from privgan.robustness import APGD, PGD, Classifier, robustness_report
    from privgan.robustness.plots import plot_trade_off

    output_dir = pathlib.Path(FLAGS.output_dir)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = load_mnist_with_validation(
        FLAGS.data_dir, validation_size=FLAGS.validation_size, seed=FLAGS.seed)
    x_eval, y_eval = x_test[: FLAGS.eval_examples], y_test[: FLAGS.eval_examples]
    runs = []
    for method in FLAGS.methods:
        betas = [float(b) for b in FLAGS.trades_betas] if method == "trades" else [None]
        runs += [(f"trades_beta{b:g}" if b is not None else method, method, b) for b in betas]
    suite = (APGD(epsilon=FLAGS.epsilon, steps=FLAGS.eval_steps),
             PGD(epsilon=FLAGS.epsilon, steps=FLAGS.eval_steps, restarts=FLAGS.eval_restarts))
    started = time.perf_counter()
    models = {}
    for name, method, beta in runs:
        classifier, info = _train(name, method, beta, (x_train, y_train), (x_val, y_val))
        start = time.perf_counter()
        target = Classifier(classifier, valid_range=(0.0, 1.0))
        report = robustness_report(target, x_eval, y_eval, epsilon=FLAGS.epsilon, suite=suite,
                                   many_steps=FLAGS.eval_steps, seed=FLAGS.seed)
        clean = float(np.mean(target.predict_labels(x_test) == y_test))
        info.update(report.to_dict(), clean_accuracy_full_test=clean,
                    eval_seconds=round(time.perf_counter() - start, 1))
        print(report.summary(), flush=True)
        with atomic_path(output_dir / "models" / f"{name}.keras") as path:
            classifier.save(path)
        models[name] = info
    seconds = time.perf_counter() - started
    points = [(name, info["clean_accuracy_full_test"], info["robust_accuracy"]) for name, info in models.items()]
    plot_trade_off(points, output_dir / "trade_off.png",
                   title=f"MNIST, L-inf eps={FLAGS.epsilon}: worst case of APGD-CE + PGD-{FLAGS.eval_steps}"
                         f"x{FLAGS.eval_restarts} on {len(y_eval)} test images",
                   connect=[name for name, method, _ in runs if method == "trades"])
    rows = [
        f"| {name} | {info['epochs']} (kept {info['kept_epoch']}) | {info['clean_accuracy_full_test']:.4f} | "
        f"{info['robust_accuracy']:.4f} | {info['attacks'][suite[0]._describe()]['robust_accuracy']:.4f} | "
        f"{info['attacks'][suite[1]._describe()]['robust_accuracy']:.4f} | "
        f"{'yes' if info['checks_passed'] else 'NO'} | {info['train_seconds']:.0f} |"
        for name, info in models.items()
    ]
    table = "\n".join(
        ["| model | epochs | clean (10k test) | robust (worst case) | APGD-CE | PGD x restarts "
         "| masking checks pass | train s |",
         "|---|---|---|---|---|---|---|---|", *rows]
    )
    results = {
        "norm": "linf", "eval_examples": len(y_eval), "models": models,
    }
    write_experiment(
        output_dir, name=f"Adversarial training on MNIST (L-inf epsilon = {FLAGS.epsilon})", results=results,
        summary=(
            f"Robust accuracy is the per-example worst case of {suite[0]._describe()} and "
            f"{suite[1]._describe()} on the first {len(y_eval)} test images (a fixed subset, for CPU time); "
            "clean accuracy is on all 10,000 test images. Models were selected (best epoch) on PGD-20 robust "
            f"accuracy of {FLAGS.validation_attack_examples} validation images carved from the training split; "
            "nothing was chosen on the test split in this run. One seed.\n\n" + table
        ),
        figures=["trade_off.png"], command=" ".join(sys.argv),
    )
    print(table)
    print(f"total {seconds:.0f} s; report: {output_dir / 'report.md'}")


if __name__ == "__main__":
    app.run(main)
