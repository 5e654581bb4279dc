"""Semi-supervised GAN on MNIST with 100 labels, non-private and DP, against supervised and self-training baselines.

    python -m experiments.ssgan_mnist --data_dir=../shared/datasets/mnist --output_dir=runs/ssgan_mnist

For each of `--draws` label draws (10 labels per class, fixed by the seed `--label_seed + draw`) the
rest of the training images (minus a validation split) are the unlabelled set, and the script trains:
a supervised CNN on the labelled images alone (`supervised`), the same with augmentation
(`augmented`), pseudo-label self-training (`pseudo_label`), the `SemiSupervisedGAN` without DP
(`ssgan`), the scattering classifier below without noise (`scattering`) and privately at each
epsilon of `--epsilons` (`dp_eps<e>`): by default (`--dp_discriminator=scattering`) D on a fixed
wavelet-scattering front end whose whitening and centroid head are set by Gaussian releases of the
two streams, then a linear classifier on the scattering features trained with DP-SGD on the
unlabelled stream's pseudo-labels from that head (`--student_epochs`, 0: none; `--gan_weight` > 0 adds
Salimans et al.'s K+1 real / fake terms and a generator of feature vectors, whose steps are free; the
scattering front end runs once per image, before the releases, as it reads no private statistic); with
`--dp_discriminator=mlp`, DP-SGD on an MLP D in the GAN phase and `fit_head`. It reports
the accuracy on the validation split (carved from the training images with `--validation_seed`, never
trained on) and on the 10,000 test images, as mean +- std over the draws. For the SSGANs it also reports,
as a diagnostic outside any privacy guarantee, the test accuracy of a non-private logistic regression on
D's features of the labelled images (`feature_probe_test_accuracy`). Settings were chosen on the
validation accuracy only. Under DP, both the 100 labelled pairs and the unlabelled images are private
(`SemiSupervisedGAN` docstring: two Poisson streams, epsilon is the worse stream's); the validation
labels are not, and choosing settings on them is outside the guarantee.

Each path reads a frozen config made from the flags (`experiments.ssgan_configs`: `SSGANConfig`,
`ScatteringConfig`, `DPGANConfig`, `BaselineConfig`); a bad flag value stops the script before any
training, with one error naming the config's field. The non-private SSGAN is by default
(`--architecture=weight_norm`) Salimans et al.'s pair (`privgan.models.weight_norm`);
`--architecture=plain --adam_epsilon=1e-7` is the earlier LeakyReLU pair with Keras' default Adam.

Writes results.json (per run and draw: accuracies, epsilon, steps, seconds), report.md and accuracy.png
to --output_dir, rewriting them after every run so that an interrupted run keeps what finished.
"""

import sys
import time

from absl import app, flags

from experiments.randomness import define_sampling_seed_flag
from experiments.ssgan_configs import BaselineConfig, DPGANConfig, ScatteringConfig, SSGANConfig

flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX .gz files; None downloads through Keras.")
flags.DEFINE_string("output_dir", "runs/ssgan_mnist", "Where the results go.")
flags.DEFINE_integer("draws", 3, "Label draws (each its own 100 labels and seeds).")
flags.DEFINE_integer("label_seed", 0, "Seed of the first label draw; draw d uses label_seed + d.")
flags.DEFINE_integer("labels_per_class", 10, "Labelled examples per class.")
flags.DEFINE_integer("validation_size", 5000, "Training images held out (with labels) to choose settings on.")
flags.DEFINE_integer("validation_seed", 12345, "Seed of the validation split.")
flags.DEFINE_list("runs", ["supervised", "augmented", "pseudo_label", "ssgan", "scattering", "dp"],
                  "Which runs, in order: supervised, augmented, pseudo_label, ssgan, scattering (the DP scattering "
                  "classifier's steps without noise), dp (every --epsilons) or dp_eps<e>.")
flags.DEFINE_list("epsilons", ["1", "3", "10"], "Target epsilons of the DP runs.")
flags.DEFINE_float("delta", 1e-5, "delta of the DP runs.")
flags.DEFINE_integer("baseline_steps", 1500, "Optimiser steps of the supervised CNNs on the labelled images.")
flags.DEFINE_integer("pseudo_label_rounds", 2, "Pseudo-labelling rounds.")
flags.DEFINE_integer("pseudo_label_epochs", 2, "Epochs of each pseudo-labelling round.")
# The semi-supervised GAN (Salimans et al. 2016's MNIST model).
flags.DEFINE_enum("architecture", "weight_norm", ["weight_norm", "plain"],
                  "Non-private SSGAN pair: weight_norm (the paper's: weight-normalised ReLU D with fixed hidden "
                  "scales and data-dependent init, softplus G) or plain (LeakyReLU Dense D, ReLU G).")
flags.DEFINE_float("ema_momentum", 0.999, "Non-private SSGAN: evaluate an exponential moving average of D's weights "
                   "with this momentum (0: the last weights).")
flags.DEFINE_float("decay_start", 0.6, "Non-private SSGAN: fraction of the steps after which the learning rate "
                   "decays linearly to 0 (0: from the start).")
flags.DEFINE_float("adam_epsilon", 1e-4, "Non-private SSGAN: Adam's epsilon. The paper's Adam adds 1e-8 under the "
                   "square root, i.e. about 1e-4 outside it, which damps the steps of weights with tiny gradients.")
flags.DEFINE_integer("monitor_every", 0, "Non-private SSGAN: print the validation accuracy every this many epochs "
                     "(0: never).")
flags.DEFINE_integer("epochs", 30, "Epochs of the non-private SSGAN (each round(N_U / batch) steps).")
flags.DEFINE_integer("batch_size", 100, "Expected unlabelled (and generated) batch size of the non-private SSGAN.")
flags.DEFINE_integer("labelled_batch_size", 100, "Expected labelled batch size (100 of 100: every step sees all).")
flags.DEFINE_list("d_hidden", ["1000", "500", "250", "250", "250"], "Hidden widths of D (an MLP).")
flags.DEFINE_list("g_hidden", ["500", "500"], "Hidden widths of G (an MLP with BatchNorm).")
flags.DEFINE_integer("latent_dim", 100, "Latent dimension of G.")
flags.DEFINE_float("input_noise", 0.3, "Std of the Gaussian noise on D's input (training only).")
flags.DEFINE_float("hidden_noise", 0.5, "Std of the Gaussian noise on D's hidden layers (training only).")
flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate of D and G (beta_1 = 0.5), decayed linearly to 0.")
flags.DEFINE_float("unsupervised_weight", 1.0, "Weight of D's GAN losses relative to the labelled loss.")
# Its DP version.
flags.DEFINE_enum("dp_discriminator", "scattering", ["scattering", "mlp"],
                  "scattering: D on a fixed wavelet-scattering front end, its projection and head set by three "
                  "kinds of Gaussian releases (no GAN steps); mlp: the DP GAN phase (Salimans et al.'s MLP D) "
                  "and fit_head.")
flags.DEFINE_integer("projection", 45, "Scattering D: dimensions of the DP PCA whitening of the scattering features.")
flags.DEFINE_integer("refine_rounds", 5, "Scattering D: DP k-means rounds of the head on the unlabelled stream.")
flags.DEFINE_float("refine_noise_multiplier", 20.0,
                   "Scattering D: sigma of each k-means round's release (the projection's sigma is calibrated to "
                   "the rest of the unlabelled stream's budget).")
flags.DEFINE_integer("student_epochs", 10, "Scattering D: epochs of the DP-SGD pseudo-label classifier on the "
                     "unlabelled stream's scattering features (0: none; D's centroid head classifies).")
flags.DEFINE_float("student_min_epsilon", 2.0, "Scattering D: private runs below this epsilon skip the student "
                   "(at eps 1 it lost to the releases alone on validation: 0.559 against 0.637, 3 draws).")
flags.DEFINE_integer("student_batch_size", 2000, "Scattering D: the student's expected Poisson batch size.")
flags.DEFINE_float("student_learning_rate", 4.0, "Scattering D: the student's SGD learning rate (momentum 0.9).")
flags.DEFINE_float("student_min_margin", 0.1, "Scattering D: images whose top two head scores differ by less get no "
                   "pseudo-label.")
flags.DEFINE_float("release_share", 0.8, "Scattering D with a student: part of the unlabelled stream's epsilon for the "
                   "projection and k-means releases (the student's DP-SGD gets the rest).")
flags.DEFINE_float("gan_weight", 0.0, "Scattering D with a student: weight of the K+1 real/fake terms (0: no GAN "
                   "step; > 0: a generator of scattering features trained by free steps against the student).")
flags.DEFINE_integer("dp_epochs", 5, "Epochs of the DP SSGAN (the noise is calibrated for them).")
flags.DEFINE_integer("dp_batch_size", 250, "Expected unlabelled batch size of the DP SSGAN.")
flags.DEFINE_integer("dp_labelled_batch_size", 100, "Expected labelled batch size of the DP SSGAN.")
flags.DEFINE_list("dp_d_hidden", ["500", "250", "250"], "Hidden widths of the DP SSGAN's D.")
flags.DEFINE_float("dp_input_noise", 0.3, "Std of the noise on the DP D's input.")
flags.DEFINE_float("dp_hidden_noise", 0.5, "Std of the noise on the DP D's hidden layers.")
flags.DEFINE_enum("labelled_gradient", "all", ["all", "head", "split"],
                  "Variables of D the labelled loss trains (non-private).")
flags.DEFINE_enum("dp_labelled_gradient", "none", ["all", "head", "split", "none"],
                  "Variables of D the labelled loss trains under DP; none: the GAN phase reads no labels and the "
                  "head is then trained on frozen features (fit_head).")
flags.DEFINE_integer("head_epochs", 100, "Epochs of the DP head phase (labelled_gradient none).")
flags.DEFINE_integer("head_batch_size", 50, "Expected Poisson batch size of the DP head phase.")
flags.DEFINE_float("head_learning_rate", 0.01, "Adam learning rate of the DP head phase.")
flags.DEFINE_float("dp_unsupervised_weight", 0.02,
                   "Weight of the DP D's GAN losses relative to the labelled loss "
                   "(Adam makes it matter for the head only).")
flags.DEFINE_float("l2_norm_clip", 1.0, "C of both private streams.")
flags.DEFINE_float("feature_l2_norm_clip", 0.3, "Part of an unlabelled example's C spent on its features.")
flags.DEFINE_float("dp_learning_rate", 1e-3, "Adam learning rate of the DP SSGAN.")
flags.DEFINE_float("dp_beta_1", 0.9, "Adam beta_1 of the DP SSGAN (more momentum averages more noise).")
flags.DEFINE_enum("accountant", "pld", ["pld", "rdp"], "Accountant.")
define_sampling_seed_flag()
FLAGS = flags.FLAGS

_NUM_CLASSES = 10


def _accuracy(model, x, y):
    import numpy as np

    return float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), axis=1) == y))


def _hold_then_decay(rate, *, steps, hold):
    """A public learning-rate schedule: `rate` for the first `hold` steps, then linearly to 0 at `steps`."""
    import keras

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            left = keras.ops.clip((steps - keras.ops.cast(step, "float32")) / max(steps - hold, 1), 0.0, 1.0)
            return rate * left

        def get_config(self):
            return {"rate": rate, "steps": steps, "hold": hold}

    return Schedule()


def _with_average(optimizer, variables):
    """A context that swaps `optimizer`'s moving averages into `variables` and back (no averages: nothing)."""
    import contextlib

    @contextlib.contextmanager
    def swapped():
        averages = getattr(optimizer, "_model_variables_moving_average", None) if optimizer.use_ema else None
        if not averages:
            yield
            return
        saved = [v.numpy() for v in variables]
        for variable, average in zip(variables, averages):
            variable.assign(average)
        try:
            yield
        finally:
            for variable, value in zip(variables, saved):
                variable.assign(value)

    return swapped()


def _monitor(gan, validation, every):
    """A callback printing the validation accuracy (of D's moving average, if any) every `every` epochs."""
    import keras

    class Monitor(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if every and (epoch + 1) % every == 0:
                with _with_average(gan.d_optimizer, gan.discriminator.trainable_variables):
                    accuracy = _accuracy(gan, *validation)
                print(f"epoch {epoch + 1}: validation accuracy {accuracy:.4f}", flush=True)

    return Monitor()


def _gan_pair(config, private, x_unlabelled):
    """D and G of an SSGAN path (`config` an `SSGANConfig` or a `DPGANConfig`)."""
    from privgan.models.architectures import mlp_discriminator, mlp_generator
    from privgan.models.weight_norm import initialize_from_data, softplus_generator, weight_norm_discriminator

    shape = (28, 28, 1)
    if not private and config.architecture == "weight_norm":
        discriminator = weight_norm_discriminator(input_shape=shape, num_logits=_NUM_CLASSES, hidden=config.d_hidden,
                                                  input_noise=config.input_noise, hidden_noise=config.hidden_noise)
        # The paper's data-dependent initialisation, on 500 unlabelled images (non-private only).
        initialize_from_data(discriminator, x_unlabelled[:500])
        return discriminator, softplus_generator(output_shape=shape, latent_dim=config.latent_dim,
                                                 hidden=config.g_hidden)
    discriminator = mlp_discriminator(input_shape=shape, hidden=config.d_hidden, num_logits=_NUM_CLASSES,
                                      input_noise=config.input_noise, hidden_noise=config.hidden_noise)
    return discriminator, mlp_generator(output_shape=shape, latent_dim=config.latent_dim, hidden=config.g_hidden,
                                        batch_norm=True)


def _ssgan(x_labelled, y_labelled, x_unlabelled, *, seed, config, epsilon=None, validation=None):
    """Trains one SSGAN, returns (model, extra results).

    Args:
        config: an `SSGANConfig` (non-private, `epsilon` None) or a `DPGANConfig` (private at `epsilon`).
        validation: `(x, y)` of the validation split, for `SSGANConfig.monitor_every`.
    """
    import keras

    from privgan.models import SemiSupervisedGAN

    private = epsilon is not None
    keras.utils.set_random_seed(seed)
    discriminator, generator = _gan_pair(config, private, x_unlabelled)
    privacy = dict(l2_norm_clip=config.l2_norm_clip, feature_l2_norm_clip=config.feature_l2_norm_clip) if private \
        else {}
    gan = SemiSupervisedGAN(
        generator, discriminator, num_labelled=len(x_labelled), num_unlabelled=len(x_unlabelled),
        labelled_batch_size=config.labelled_batch_size, unlabelled_batch_size=config.batch_size,
        unsupervised_weight=config.unsupervised_weight, labelled_gradient=config.labelled_gradient,
        private=private, seed=seed, **privacy,
    )
    steps = gan.planned_dp_steps(config.epochs)
    # Constant, then linearly to 0 over the planned steps (a public schedule: no data read).
    hold = 0 if private else round(config.decay_start * steps)
    schedule = _hold_then_decay(config.learning_rate, steps=steps, hold=hold)
    adam = dict(beta_1=config.beta_1) if private else dict(beta_1=0.5, epsilon=config.adam_epsilon)
    # The paper evaluates a moving average of D's weights (non-private only here).
    average = {} if private or not config.ema_momentum else dict(use_ema=True, ema_momentum=config.ema_momentum)
    gan.compile(d_optimizer=keras.optimizers.Adam(schedule, **adam, **average),
                g_optimizer=keras.optimizers.Adam(schedule, **adam))
    monitor = not private and validation is not None and config.monitor_every
    budget = dict(target_epsilon=epsilon, delta=config.delta, accountant=config.accountant) if private else {}
    gan.fit(x_labelled, y_labelled, x_unlabelled, epochs=config.epochs, sampling_seed=FLAGS.sampling_seed, verbose=2,
            callbacks=[_monitor(gan, validation, config.monitor_every)] if monitor else [], **budget)
    if average:
        gan.d_optimizer.finalize_variable_values(gan.discriminator.trainable_variables)
    if private and config.labelled_gradient == "none":
        gan.fit_head(x_labelled, y_labelled, epochs=config.head_epochs, expected_batch_size=config.head_batch_size,
                     sampling_seed=FLAGS.sampling_seed, optimizer=keras.optimizers.Adam(config.head_learning_rate),
                     verbose=0, **budget)
    extra = {"steps": int(gan.dp_steps.numpy()), "head_steps": gan.head_ledger.total_steps,
             "feature_probe_test_accuracy": _feature_probe(gan, x_labelled, y_labelled)}
    if private:
        report = gan.privacy_statement(delta=config.delta, accountant=config.accountant)
        extra.update(epsilon=report.epsilon, streams=report["streams"])
    return gan, extra


def _scattering_classifier(x_labelled, y_labelled, x_unlabelled, *, seed, epsilon, config, validation):
    """The classifier on a scattering D: three kinds of Gaussian release, no GAN steps; returns (model, extra results).

    With `epsilon` None the same steps run without noise (`scattering`): what the releases' noise costs.

    Unlabelled stream: the second moments of the normalised scattering features (D's projection, a PCA
    whitening) and `refine_rounds` k-means rounds of the head; labelled stream: the class sums of the
    100 labelled examples' features (the head's starting point). Each stream spends `epsilon`
    (parallel composition); on the unlabelled one the rounds' sigma is fixed and the projection's is
    calibrated to what is left. G is built but not trained: at about 1.6 ms per image through the
    scattering layer on this CPU, GAN steps through it did not fit in the run budget.
    """
    import dataclasses

    import keras

    from privgan.accounting import PrivacyLedger, calibrate_noise_multiplier
    from privgan.models import SemiSupervisedGAN
    from privgan.models.architectures import mlp_generator

    # D after the public front end: its input is an image's scattering features (`_scattering_front`,
    # computed once per image in `main`), then the "projection", unit norm ("features") and the head:
    # `scattering_discriminator` without its first layers, so the same function of the image.
    rows = keras.Input((x_unlabelled.shape[1],), name="scattering_features")
    features = keras.layers.UnitNormalization(name="features")(
        keras.layers.Dense(config.projection, use_bias=False, name="projection")(rows))
    discriminator = keras.Model(rows, keras.layers.Dense(_NUM_CLASSES)(features), name="scattering_discriminator")
    generator = mlp_generator(output_shape=(x_unlabelled.shape[1],), latent_dim=config.latent_dim,
                              hidden=config.g_hidden, batch_norm=True)
    private = epsilon is not None
    gan = SemiSupervisedGAN(generator, discriminator, num_labelled=len(x_labelled), num_unlabelled=len(x_unlabelled),
                            labelled_batch_size=config.labelled_batch_size, unlabelled_batch_size=config.batch_size,
                            labelled_gradient="none", private=private, seed=seed,
                            **({"l2_norm_clip": config.l2_norm_clip} if private else {}))
    if not private:
        gan.fit_projection(x_unlabelled)
        gan.fit_centroid_head(x_labelled, y_labelled)
        gan.refine_centroid_head(x_unlabelled, rounds=config.refine_rounds)
        student, extra = _student(gan, x_unlabelled, config=config, budget={}, validation=validation)
        return student or gan, {"steps": 0, "head_steps": 0, **extra}
    budget = dict(target_epsilon=epsilon, delta=config.delta, accountant=config.accountant)
    if epsilon < config.student_min_epsilon:
        config = dataclasses.replace(config, student_epochs=0)
    # With a student, the releases of the unlabelled stream spend `release_share` of its epsilon, the
    # student's DP-SGD steps the rest (calibrated after them, in the same ledger).
    releases = dict(budget, target_epsilon=epsilon * config.release_share) if config.student_epochs else budget
    rounds = PrivacyLedger()
    rounds.record(noise_multiplier=config.refine_noise_multiplier, sampling_probability=1.0, steps=config.refine_rounds)
    projection_sigma = calibrate_noise_multiplier(sampling_probability=1.0, steps=1, ledger=rounds, **releases)
    gan.fit_projection(x_unlabelled, noise_multiplier=projection_sigma, **releases)
    gan.fit_centroid_head(x_labelled, y_labelled, **budget)
    gan.refine_centroid_head(x_unlabelled, rounds=config.refine_rounds, noise_multiplier=config.refine_noise_multiplier,
                             **releases)
    student, extra = _student(gan, x_unlabelled, config=config, budget=budget, validation=validation)
    report = gan.privacy_statement(delta=config.delta, accountant=config.accountant)
    # No feature probe here: another pass of the test images through the scattering layer, for a
    # diagnostic of the GAN phase's features, which this classifier does not have.
    extra.update({"steps": 0, "head_steps": 0, "projection_noise_multiplier": projection_sigma,
                  "epsilon": report.epsilon, "streams": report["streams"]})
    return student or gan, extra


def _student(gan, x_unlabelled, *, config, budget, validation):
    """The DP-SGD pseudo-label classifier on the scattering features (with a GAN step if `gan_weight`).

    Returns (the classifier or None without `student_epochs`, extra results). The validation accuracy
    of D's centroid head before the student (`teacher_validation_accuracy`) is outside the guarantee.
    """
    import keras

    if not config.student_epochs:
        return None, {}
    teacher = _accuracy(gan, *validation)
    features = gan.discriminator.get_layer("projection").input.shape[-1]
    classifier = keras.Sequential([keras.Input((features,)),
                                   keras.layers.Dense(_NUM_CLASSES, kernel_initializer="zeros")])
    generator = _feature_generator(latent_dim=config.latent_dim) if config.gan_weight else None
    model = gan.fit_pseudo_label_classifier(
        x_unlabelled, classifier=classifier, epochs=config.student_epochs,
        expected_batch_size=config.student_batch_size, min_margin=config.student_min_margin,
        unsupervised_weight=config.gan_weight, generator=generator,
        optimizer=keras.optimizers.SGD(config.student_learning_rate, momentum=0.9),
        sampling_seed=FLAGS.sampling_seed, verbose=0, **budget)
    return model, {"teacher_validation_accuracy": teacher, "gan_step": bool(generator),
                   "student_noise_multiplier": gan.pseudo_label_noise_multiplier,
                   "student_steps": config.student_epochs * round(len(x_unlabelled) / config.student_batch_size)}


def _feature_generator(*, latent_dim):
    """G of the student's GAN step: latent -> scattering features, normalised per example as the front end's are.

    The output goes through a GroupNormalization without learnt scale or offset over the same groups
    as `_scattering_front`'s, so that generated vectors live where the real ones do.
    """
    import keras
    import numpy as np

    norm = next(layer for layer in _scattering_front().layers if isinstance(layer, keras.layers.GroupNormalization))
    shape = tuple(norm.output.shape[1:])
    z = keras.Input((latent_dim,))
    h = keras.layers.Dense(256, activation="relu")(z)
    h = keras.layers.Reshape(shape)(keras.layers.Dense(int(np.prod(shape)))(h))
    h = keras.layers.GroupNormalization(groups=norm.groups, center=False, scale=False)(h)
    return keras.Model(z, keras.layers.Flatten()(h), name="feature_generator")


def _scattering_front():
    """The public front end of `scattering_discriminator`: images -> normalised, flattened scattering features.

    It has no trained weights and reads each image alone: applying it once per image before the private
    releases is the same as applying it inside D, and much cheaper on this CPU (about 1.6 ms per image).
    """
    import keras

    from privgan.models.architectures import scattering_discriminator

    full = scattering_discriminator(input_shape=(28, 28, 1), num_logits=_NUM_CLASSES, projection=1)
    return keras.Model(full.inputs[0], full.get_layer("projection").input, name="scattering_front")


def _scattering_rows(x):
    """`_scattering_front` applied to images `x`, 1,000 at a time, as float32."""
    import numpy as np

    front = _scattering_front()
    return np.concatenate([np.asarray(front(x[i : i + 1000], training=False)) for i in range(0, len(x), 1000)])


def _feature_probe(gan, x_labelled, y_labelled):
    """Diagnostic, not private: test accuracy of a logistic regression on D's features of the labelled images.

    It tells whether D's features (learnt, under DP, from the unlabelled stream) separate the classes,
    apart from how well the head learnt from the labels.
    """
    import keras
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from privgan.data import load_mnist_unit_range

    def features(x):
        return np.concatenate([keras.ops.convert_to_numpy(gan._features(x[i : i + 1000], training=False)[0])
                               for i in range(0, len(x), 1000)])

    (_, _), (x_test, y_test) = load_mnist_unit_range(FLAGS.data_dir)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features(x_labelled), y_labelled)
    return float(np.mean(probe.predict(features(x_test)) == y_test))


def _configs():
    """Each path's config from the flags: a bad value stops the run here, before any training."""
    return {"ssgan": SSGANConfig.from_flags(FLAGS), "scattering": ScatteringConfig.from_flags(FLAGS),
            "mlp": DPGANConfig.from_flags(FLAGS), "baselines": BaselineConfig.from_flags(FLAGS)}


def _run(name, draw, x_labelled, y_labelled, x_unlabelled, validation, configs):
    import keras

    from experiments.common.few_labels import train_pseudo_label_cnn, train_supervised_cnn

    seed = FLAGS.label_seed + draw
    baselines = configs["baselines"]
    if name in ("supervised", "augmented"):
        model = train_supervised_cnn(x_labelled, y_labelled, num_classes=_NUM_CLASSES, augment=name == "augmented",
                                     steps=baselines.baseline_steps, seed=seed)
        return model, {}
    if name == "pseudo_label":
        model, counts = train_pseudo_label_cnn(
            x_labelled, y_labelled, x_unlabelled, num_classes=_NUM_CLASSES, rounds=baselines.pseudo_label_rounds,
            labelled_steps=baselines.baseline_steps, epochs_per_round=baselines.pseudo_label_epochs, seed=seed)
        return model, {"pseudo_labelled": counts}
    if name == "ssgan":
        return _ssgan(x_labelled, y_labelled, x_unlabelled, seed=seed, config=configs["ssgan"], validation=validation)
    epsilon = None if name == "scattering" else float(name.removeprefix("dp_eps"))
    if _scattering_path(name):
        keras.utils.set_random_seed(seed)
        return _scattering_classifier(x_labelled, y_labelled, x_unlabelled, seed=seed, epsilon=epsilon,
                                      config=configs["scattering"], validation=validation)
    return _ssgan(x_labelled, y_labelled, x_unlabelled, seed=seed, config=configs["mlp"], epsilon=epsilon)


def _scattering_path(name):
    """Whether run `name` is the scattering classifier's (its inputs are then the scattering features)."""
    return name == "scattering" or (name.startswith("dp_eps") and FLAGS.dp_discriminator == "scattering")


def _summary(results):
    import numpy as np

    rows = ["| run | test accuracy (mean ± std) | validation accuracy | draws | ε (δ = %g) | minutes per draw |"
            % FLAGS.delta,
            "|---|---|---|---|---|---|"]
    for name, draws in results["runs"].items():
        test = np.array([d["test_accuracy"] for d in draws])
        validation = np.array([d["validation_accuracy"] for d in draws])
        epsilon = ", ".join(f"{d['epsilon']:.2f}" for d in draws) if "epsilon" in draws[0] else "∞ (not private)"
        minutes = np.mean([d["seconds"] for d in draws]) / 60
        rows.append(f"| {name} | {test.mean():.4f} ± {test.std():.4f} "
                    f"| {validation.mean():.4f} ± {validation.std():.4f} "
                    f"| {len(draws)} | {epsilon} | {minutes:.1f} |")
    return "\n".join(rows)


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from privgan.io import save_figure

    names = list(results["runs"])
    accuracies = [np.array([d["test_accuracy"] for d in results["runs"][n]]) for n in names]
    figure, axis = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    axis.bar(names, [a.mean() for a in accuracies], yerr=[a.std() for a in accuracies], capsize=4)
    axis.set_ylabel("MNIST test accuracy")
    axis.set_ylim(0, 1)
    axis.set_title(f"{FLAGS.labels_per_class * _NUM_CLASSES} labels, mean ± std over label draws")
    axis.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    save_figure(figure, path)


def main(argv):
    del argv
    import numpy as np

    from experiments.common.few_labels import balanced_label_draw
    from experiments.common.reporting import write_experiment
    from privgan.data import load_mnist_unit_range

    configs = _configs()
    (x_train, y_train), (x_test, y_test) = load_mnist_unit_range(FLAGS.data_dir)
    order = np.random.default_rng(FLAGS.validation_seed).permutation(len(x_train))
    validation, pool = order[: FLAGS.validation_size], order[FLAGS.validation_size :]
    x_validation, y_validation = x_train[validation], y_train[validation]
    x_pool, y_pool = x_train[pool], y_train[pool]
    # "dp" stands for one DP run per epsilon of --epsilons; "dp_eps<e>" names one directly.
    names = []
    for run in FLAGS.runs:
        names += [f"dp_eps{float(e):g}" for e in FLAGS.epsilons] if run == "dp" else [run]
    results = {"runs": {}, "labels": FLAGS.labels_per_class * _NUM_CLASSES,
               "unlabelled": len(x_pool) - FLAGS.labels_per_class * _NUM_CLASSES}
    images = {"pool": x_pool, "validation": x_validation, "test": x_test}
    inputs = {}
    for name in names:
        if not inputs and _scattering_path(name):
            # The public scattering front end, once per image for every run and draw of the scattering path.
            start = time.perf_counter()
            inputs = {part: _scattering_rows(x) for part, x in images.items()}
            results["scattering_front_seconds"] = round(time.perf_counter() - start, 1)
        data = inputs if _scattering_path(name) else images
        for draw in range(FLAGS.draws):
            labelled = balanced_label_draw(y_pool, per_class=FLAGS.labels_per_class, seed=FLAGS.label_seed + draw)
            unlabelled = np.setdiff1d(np.arange(len(x_pool)), labelled)
            start = time.perf_counter()
            model, extra = _run(name, draw, data["pool"][labelled], y_pool[labelled], data["pool"][unlabelled],
                                (data["validation"], y_validation), configs)
            entry = {"draw": draw, "label_seed": FLAGS.label_seed + draw, **extra,
                     "validation_accuracy": _accuracy(model, data["validation"], y_validation),
                     "test_accuracy": _accuracy(model, data["test"], y_test),
                     "seconds": round(time.perf_counter() - start, 1)}
            results["runs"].setdefault(name, []).append(entry)
            print(f"{name} draw {draw}: " + ", ".join(f"{k} {v}" for k, v in entry.items() if k != "streams"),
                  flush=True)
            _plot(results, f"{FLAGS.output_dir}/accuracy.png")
            write_experiment(
                FLAGS.output_dir, name="Semi-supervised GAN on MNIST, 100 labels", results=results,
                summary=(
                    f"{results['labels']} labelled training images ({FLAGS.labels_per_class} per class, drawn "
                    f"with seed label_seed + draw), the other {results['unlabelled']} training images unlabelled, "
                    f"{FLAGS.validation_size} held out for validation. Settings were chosen on the validation "
                    "accuracy; the test accuracy is reported as mean ± std over the draws.\n\n"
                    + _summary(results) + "\n\n"
                    "`supervised` / `augmented`: a small CNN on the labelled images alone, without / with "
                    "random shifts and rotations. `pseudo_label`: self-training from the augmented CNN. `ssgan`: "
                    "Salimans et al.'s K-class discriminator with feature matching, no DP. `dp_eps<e>`: labelled and "
                    "unlabelled examples private, epsilon the worse stream's (parallel composition); with "
                    f"--dp_discriminator={FLAGS.dp_discriminator}: " + (
                        "D on a fixed scattering front end, its whitening, centroid head and k-means rounds set "
                        "by Gaussian releases of the two streams, no GAN step."
                        if FLAGS.dp_discriminator == "scattering"
                        else "the SSGAN trained with DP-SGD on D (two Poisson streams), then fit_head."
                    ) + " Wall times were measured on a shared, loaded 2-core machine."
                ),
                figures=["accuracy.png"],
                command=" ".join(sys.argv),
            )


if __name__ == "__main__":
    app.run(main)
