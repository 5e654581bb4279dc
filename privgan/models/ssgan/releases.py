"""What a `SemiSupervisedGAN`'s discriminator can get besides the GAN steps, each read charged to one stream.

`fit_head` is a DP-SGD phase of D's last layer on the labelled examples' frozen features (`_HeadPhase`,
charged to the labelled stream's `head_ledger`). The others are one-shot Gaussian releases of
sensitivity 1, each drawn at its own global noise position and recorded as a `ReleasePhase`:
`fit_centroid_head` (the last layer from the labelled examples' class sums, `head_ledger`),
`refine_centroid_head` (k-means rounds of the last layer on the unlabelled images) and
`fit_projection` (a PCA whitening layer from the unlabelled images' second moments), both in
`projection_ledger`. `StreamReleases` is a mixin of `SemiSupervisedGAN`: it relies on the model's
configs, ledgers, `stream_records`, `noise_stream` and checks.
"""

import hashlib

import dp_accounting
import keras
import numpy as np
import tensorflow as tf

from privgan.accounting import calibrate_noise_multiplier
from privgan.accounting.events import check_accountant, check_count, check_delta, check_noise_multiplier, check_positive
from privgan.dp.noise import gaussian_noise_like
from privgan.dp.training import DPModel


def _scaled_to_unit_ball(rows):
    """Each row of a float64 array scaled to L2 norm <= 1 (rows that are not finite become 0)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    finite = np.isfinite(norms)
    return np.where(finite, rows / np.where(finite, np.maximum(norms, 1.0), 1.0), 0.0)


def _in_batches(model, inputs, *, batch_size=1024):
    """`model`'s outputs (inference mode) for all of `inputs`, computed a batch at a time, as one NumPy array."""
    return np.concatenate([keras.ops.convert_to_numpy(model(inputs[i : i + batch_size], training=False))
                           for i in range(0, len(inputs), batch_size)])


def _fingerprint(images, weights):
    """A digest of an image array and of the weights of the model that maps it, to key a cache."""
    digest = hashlib.blake2b(np.ascontiguousarray(images).tobytes(), digest_size=16)
    for weight in weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.digest()



class StreamReleases:
    """`SemiSupervisedGAN`'s head phase and one-shot releases (a mixin; see the module docstring)."""

    def fit_head(self, x_labelled, y_labelled, *, epochs, expected_batch_size, l2_norm_clip=None,
                 noise_multiplier=None, target_epsilon=None, delta=None, accountant="pld", optimizer="adam",
                 sampling_seed=None, **kwargs):
        """Trains D's last layer on the labelled examples with the features frozen (DP-SGD when private).

        The features of the labelled images come from the trained D (in inference mode), which is a
        function of the earlier releases only; each (features, label) pair is one private example,
        clipped per example. The head's steps read the labelled stream only, so they go to its part of
        the `ParallelLedger` (`head_ledger`), composed after that stream's earlier events (its GAN
        releases, earlier `fit_head` phases, the prior ledger): with `labelled_gradient="none"` in `fit`,
        the GAN phase reads no labels, and this is the labelled stream's whole cost. On a fixed, convex
        problem the labels' budget is not spent chasing features that keep moving. `x_labelled` must
        share no image with the unlabelled images read earlier (checked, as exact bytes).
        The phase's Poisson samples and noise draws take the global positions after this model's steps
        so far, so they repeat none of the GAN phase's, whatever seeds are given.

        Args:
            x_labelled, y_labelled: the N_L labelled images and their labels, as in `fit`.
            epochs: epochs of Poisson-sampled steps over the labelled examples, >= 1.
            expected_batch_size: expected Poisson batch size, in (0, N_L].
            l2_norm_clip: C of the head's per-example gradients (private only; default: the model's C).
            noise_multiplier: sigma, or None to calibrate it to `target_epsilon` (private only).
            target_epsilon, delta, accountant: the labelled stream's budget (see `DPModel.fit`).
            optimizer: a Keras optimizer for the head.
            sampling_seed: seed of the Poisson sampling (None: secret).
            **kwargs: passed to the head's `fit` (e.g. `verbose`).

        The noise is seeded as the model's (its `noise_seed`: secret unless the model was given one),
        so that the statement's `noise_seeding` covers this phase too.

        Returns:
            The `History` of the head's training.

        Raises:
            ValueError: for data or arguments out of range, as `fit` and `DPModel.fit` check them, or
                images that the other stream read, now or earlier (or whose earlier reads are unknown: see
                `ssgan.streams`).
        """
        x_labelled, labels = self._check_labelled(x_labelled, y_labelled)
        if self.private:
            self.stream_records.check_and_record("fit_head", x_labelled=x_labelled)
        features = _in_batches(self._head_input, x_labelled)
        head = self.discriminator.layers[-1]
        model = keras.Sequential([keras.Input(features.shape[1:]), head])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if not self.private:
            model.compile(optimizer=optimizer, loss=loss)
            return model.fit(features, labels, epochs=epochs, batch_size=max(1, round(expected_batch_size)), **kwargs)
        private = _HeadPhase(
            model, first_position=self._first_position() + self._steps_taken(),
            l2_norm_clip=self.dp_config.l2_norm_clip if l2_norm_clip is None else l2_norm_clip,
            noise_multiplier=noise_multiplier, num_examples=len(features), expected_batch_size=expected_batch_size,
            noise_seed=self.noise_seed, ledger=self.privacy_ledger.part_ledger("labelled"),
        )
        private.compile(optimizer=optimizer, loss=loss)
        history = private.fit(features, labels, epochs=epochs, target_epsilon=target_epsilon, delta=delta,
                              accountant=accountant, sampling_seed=sampling_seed, **kwargs)
        self._charge_phase("head_ledger", private, sampling_seed=sampling_seed)
        return history

    def fit_centroid_head(self, x_labelled, y_labelled, *, noise_multiplier=None, target_epsilon=None, delta=None,
                          accountant="pld"):
        """Sets D's last layer to the (noisy, when private) class sums of the labelled examples' features.

        A one-shot alternative to `fit_head` for few labels: each labelled example's features f (D's
        input to its last layer, frozen, in inference mode), scaled to L2 norm <= 1, are added to the
        row of its class, S_k = sum_{i: y_i = k} f_i. Adding or removing one example moves one row by
        at most 1, so S + N(0, sigma^2) per entry is one Gaussian release of sensitivity 1, charged to
        the labelled stream as `GaussianDpEvent(sigma)` after its earlier events. The head then scores
        logit_k(x) = <f(x), S_k> / (N_L / K) with bias 0 (a nearest-centroid rule for unit-norm
        features, as `scattering_discriminator` gives). For a fixed test image the noise moves each
        logit by N(0, sigma^2 |f|^2 / (N_L / K)^2) whatever the feature dimension, whereas DP-SGD on the
        same head adds noise of norm growing with the square root of its K F parameters at every step.
        The release takes the global noise position after this model's steps and releases so far.

        Args:
            x_labelled, y_labelled: the N_L labelled images and their labels, as in `fit`.
            noise_multiplier: sigma (private only), or None to calibrate it so that the labelled
                stream's epsilon, this release included, is `target_epsilon`.
            target_epsilon, delta, accountant: the labelled stream's budget; with a given
                `noise_multiplier` the budget, when given, is checked.

        Raises:
            ValueError: for data or arguments out of range, a last layer that is not a Dense layer
                with bias, a release that would exceed the budget, or images that the other
                stream read, now or earlier (or whose earlier reads are unknown: see `ssgan.streams`).
        """
        x_labelled, labels = self._check_labelled(x_labelled, y_labelled)
        head = self._dense_head("fit_centroid_head")
        if self.private:
            self.stream_records.check_and_record("fit_centroid_head", x_labelled=x_labelled)
        features = _scaled_to_unit_ball(_in_batches(self._head_input, x_labelled).astype(np.float64))
        sums = np.zeros((self.num_classes, features.shape[1]))
        np.add.at(sums, labels, features)
        if self.private:
            sigma = self._release_noise_multiplier("labelled", noise_multiplier, target_epsilon, delta, accountant)
            sums = self._gaussian_release(sums, sigma=sigma, ledger="head_ledger", description=(
                f"class sums of the labelled examples' features ({self.num_classes} x {sums.shape[1]}, each "
                "example's features scaled to L2 norm <= 1), L2 sensitivity 1, Gaussian noise of std "
                "noise_multiplier"))
        per_class = self.labelled_config.num_examples / self.num_classes
        head.kernel.assign((sums.T / per_class).astype(head.kernel.dtype))
        head.bias.assign(np.zeros(head.bias.shape, head.bias.dtype))

    def refine_centroid_head(self, x_unlabelled, *, rounds, noise_multiplier=None, target_epsilon=None, delta=None,
                             accountant="pld"):
        """Refines D's centroid head on the unlabelled images: `rounds` of spherical k-means, each a Gaussian release.

        Starting from D's last layer (e.g. set by `fit_centroid_head`), each round assigns every
        unlabelled image to the class whose (unit-normalised) head column scores its features highest
        (a function of the image and of earlier releases only), and releases the class sums of the
        assigned features, each scaled to L2 norm <= 1, plus N(0, sigma^2) per entry: one Gaussian
        release of sensitivity 1 per round (one image moves one row by at most 1), charged to the
        unlabelled stream as `GaussianDpEvent(sigma)`. The head's columns become the released sums,
        unit-normalised, with bias 0. With thousands of images per class the sums are long next to the
        noise, so the rounds cost little epsilon at a large sigma; what the labelled release only
        roughly located, the unlabelled images' clusters then pin down. Each release takes the next
        global noise position.

        Args:
            x_unlabelled: the N_U unlabelled images, as in `fit`.
            rounds: number of k-means rounds (releases), >= 1.
            noise_multiplier: sigma of every round (private only), or None to calibrate it so that the
                unlabelled stream's epsilon, these rounds included, is `target_epsilon`.
            target_epsilon, delta, accountant: the unlabelled stream's budget; with a given
                `noise_multiplier` the budget, when given, is checked.

        Raises:
            ValueError: for data or arguments out of range, a last layer that is not a Dense layer with
                bias, releases that would exceed the budget, or images that the other
                stream read, now or earlier (or whose earlier reads are unknown: see `ssgan.streams`).
        """
        rounds = check_count(rounds, name="rounds", minimum=1)
        head = self._dense_head("refine_centroid_head")
        x_unlabelled = self._check_images(x_unlabelled, "x_unlabelled", self.dp_config)
        if self.private:
            self.stream_records.check_and_record("refine_centroid_head", x_unlabelled=x_unlabelled)
        features = _scaled_to_unit_ball(self._unlabelled_head_inputs(x_unlabelled).astype(np.float64))
        if self.private:
            sigma = self._release_noise_multiplier("unlabelled", noise_multiplier, target_epsilon, delta, accountant,
                                                   releases=rounds)
        centroids = keras.ops.convert_to_numpy(head.kernel).T.astype(np.float64)
        for _ in range(rounds):
            norms = np.linalg.norm(centroids, axis=1, keepdims=True)
            assigned = np.argmax(features @ (centroids / np.maximum(norms, 1e-12)).T, axis=1)
            centroids = np.zeros_like(centroids)
            np.add.at(centroids, assigned, features)
            if self.private:
                centroids = self._gaussian_release(centroids, sigma=sigma, ledger="projection_ledger", description=(
                    f"k-means round: class sums of the unlabelled examples' features ({self.num_classes} x "
                    f"{centroids.shape[1]}, each scaled to L2 norm <= 1), assigned by the released head, L2 "
                    "sensitivity 1, Gaussian noise of std noise_multiplier"))
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        head.kernel.assign((centroids / np.maximum(norms, 1e-12)).T.astype(head.kernel.dtype))
        head.bias.assign(np.zeros(head.bias.shape, head.bias.dtype))

    def _cached_projection_rows(self, x_unlabelled):
        """(the projected layer, its input rows) from `fit_projection` when still valid for these images, else None."""
        cache = getattr(self, "_projection_cache", None)
        if cache is None:
            return None
        dense, fingerprint, rows = cache
        front = keras.Model(self.discriminator.inputs[0], dense.input)
        return (dense, rows) if fingerprint == _fingerprint(x_unlabelled, front.weights) else None

    def _unlabelled_head_inputs(self, x_unlabelled):
        """D's input to its last layer for each image, from `fit_projection`'s rows when they are still valid."""
        cached = self._cached_projection_rows(x_unlabelled)
        if cached is not None:
            dense, rows = cached
            return _in_batches(keras.Model(dense.input, self.discriminator.layers[-1].input), rows, batch_size=4096)
        return _in_batches(self._head_input, x_unlabelled)

    def _dense_head(self, method):
        head = self.discriminator.layers[-1]
        if not isinstance(head, keras.layers.Dense) or not head.use_bias:
            raise ValueError(f"{method} sets a Dense last layer with bias; D's is {type(head).__name__}")
        return head

    def fit_projection(self, x_unlabelled, *, layer="projection", noise_multiplier=None, target_epsilon=None,
                       delta=None, accountant="pld"):
        """Sets a Dense layer of D to a PCA whitening of its inputs, from a Gaussian release of the unlabelled stream.

        Each unlabelled image's input v to the layer (D frozen, in inference mode), scaled to L2 norm
        <= 1, adds v v^T to the second-moment matrix M = sum_j v_j v_j^T (d x d). Adding or removing
        one image moves M by at most ||v v^T||_F = |v|^2 <= 1, so M + E, E with independent N(0,
        sigma^2) entries, is one Gaussian release of sensitivity 1, charged to the unlabelled stream
        as `GaussianDpEvent(sigma)` (symmetrising it afterwards is post-processing). The layer's kernel
        (d x k, no bias) becomes the top k eigenvectors of the symmetrised release, each divided by the
        square root of its eigenvalue: the unlabelled images' main directions, equalised, so that a
        class-centroid head (`fit_centroid_head`) is not dominated by the few directions of largest
        variance that every digit shares. Many unlabelled images make the release's noise small next
        to M's leading eigenvalues, which grow with their number. The release takes the global noise
        position after this model's steps and releases so far.

        Args:
            x_unlabelled: the N_U unlabelled images, as in `fit` (the same records: each stream's
                releases are charged to its own examples).
            layer: name of a Dense layer of D without bias whose input is a flat vector
                (`scattering_discriminator(..., projection=k)` names it "projection").
            noise_multiplier: sigma (private only), or None to calibrate it so that the unlabelled
                stream's epsilon, this release included, is `target_epsilon`.
            target_epsilon, delta, accountant: the unlabelled stream's budget; with a given
                `noise_multiplier` the budget, when given, is checked.

        Raises:
            ValueError: for data or arguments out of range, a layer that is not a Dense layer without
                bias, a release that would exceed the budget, or images that the other
                stream read, now or earlier (or whose earlier reads are unknown: see `ssgan.streams`).
        """
        try:
            dense = self.discriminator.get_layer(layer)
        except ValueError as error:
            raise ValueError(f"layer {layer!r} is not a layer of the discriminator") from error
        if not isinstance(dense, keras.layers.Dense) or dense.use_bias:
            raise ValueError(f"layer {layer!r} must be a Dense layer without bias, got {type(dense).__name__}")
        x_unlabelled = self._check_images(x_unlabelled, "x_unlabelled", self.dp_config)
        if self.private:
            self.stream_records.check_and_record("fit_projection", x_unlabelled=x_unlabelled)
        inputs = keras.Model(self.discriminator.inputs[0], dense.input)
        dimension, components = dense.kernel.shape
        moments = np.zeros((dimension, dimension))
        cached = []
        for i in range(0, len(x_unlabelled), 1024):
            rows = keras.ops.convert_to_numpy(inputs(x_unlabelled[i : i + 1024], training=False))
            cached.append(rows.astype(np.float32))
            rows = _scaled_to_unit_ball(rows.astype(np.float64))
            moments += rows.T @ rows
        # `refine_centroid_head` on the same images starts from these rows instead of the images: a
        # scattering front end costs most of the time. Kept in memory only, keyed by the images and by
        # the weights that computed them.
        object.__setattr__(self, "_projection_cache",
                           (dense, _fingerprint(x_unlabelled, inputs.weights), np.concatenate(cached)))
        if self.private:
            sigma = self._release_noise_multiplier("unlabelled", noise_multiplier, target_epsilon, delta, accountant)
            moments = self._gaussian_release(moments, sigma=sigma, ledger="projection_ledger", description=(
                f"second-moment matrix ({dimension} x {dimension}) of the unlabelled examples' inputs to D's layer "
                f"{layer!r}, each scaled to L2 norm <= 1, L2 sensitivity 1, Gaussian noise of std noise_multiplier"))
        values, vectors = np.linalg.eigh((moments + moments.T) / 2)
        values, vectors = values[::-1][:components], vectors[:, ::-1][:, :components]
        # Noise can leave an eigenvalue <= 0 among the top k only when k exceeds what the data support.
        floor = max(values[0], 1.0) * 1e-6
        dense.kernel.assign((vectors / np.sqrt(np.maximum(values, floor))).astype(dense.kernel.dtype))

    def _charge_phase(self, ledger_name, phase, *, sampling_seed):
        """Records a finished DP-SGD phase's steps, at the sigma they used, in the stream ledger `ledger_name`.

        Args:
            ledger_name: "head_ledger" (labelled stream) or "projection_ledger" (unlabelled stream).
            phase: the `_HeadPhase` that took the steps.
            sampling_seed: the phase's sampling seed (None: secret).
        """
        ledger = getattr(self, ledger_name).copy()
        ledger.record(noise_multiplier=phase.dp_config.noise_multiplier,
                      sampling_probability=phase.dp_config.sampling_probability, steps=phase._steps_taken())
        setattr(self, ledger_name, ledger)
        self.train_function = None  # a traced GAN step holds the positions from before these steps
        self.sampling_seed_fixed = bool(self.sampling_seed_fixed) or sampling_seed is not None

    def _gaussian_release(self, values, *, sigma, ledger, description):
        """`values` (float64, sensitivity 1) plus N(0, sigma^2) per entry, recorded in the ledger attribute `ledger`.

        The noise is drawn at the current global position, then the release is recorded, which moves the
        position on (see `_first_position`): later steps and releases never reuse this draw.
        """
        (noise,) = gaussian_noise_like([tf.zeros(values.shape, tf.float64)], stddev=sigma,
                                       seed=self.noise_stream.next_seed())
        updated = getattr(self, ledger).copy()
        updated.record_release(dp_accounting.GaussianDpEvent(sigma), description=description)
        setattr(self, ledger, updated)
        self.train_function = None  # the compiled step's positions start after this release
        return values + keras.ops.convert_to_numpy(noise)

    def _release_noise_multiplier(self, stream, noise_multiplier, target_epsilon, delta, accountant, releases=1):
        """The sigma of `releases` Gaussian releases (sensitivity 1) charged to `stream`, calibrated or checked."""
        accountant = check_accountant(accountant)
        if (target_epsilon is None) != (delta is None):
            raise ValueError("target_epsilon and delta go together")
        ledger = self.privacy_ledger.part_ledger(stream)
        if noise_multiplier is None:
            if target_epsilon is None:
                raise ValueError("noise_multiplier=None is calibrated to target_epsilon, which then needs delta")
            # A Gaussian release of sensitivity 1 is DP-SGD's full-batch step (q = 1).
            noise_multiplier = calibrate_noise_multiplier(
                target_epsilon=check_positive(target_epsilon, name="target_epsilon"), delta=check_delta(delta),
                sampling_probability=1.0, steps=releases, accountant=accountant, ledger=ledger)
        sigma = check_noise_multiplier(noise_multiplier)
        if not sigma > 0:
            raise ValueError("a private release needs noise_multiplier > 0")
        if target_epsilon is not None:
            for _ in range(releases):
                ledger.record_release(dp_accounting.GaussianDpEvent(sigma), description="a planned release")
            spent = ledger.epsilon(delta=delta, accountant=accountant)
            if spent > target_epsilon:
                raise ValueError(f"a release with noise_multiplier={sigma:g} would spend epsilon={spent:.4g} > "
                                 f"target_epsilon={target_epsilon} on the {stream} stream (earlier events included)")
        return sigma

class _HeadPhase(DPModel):
    """The `DPModel` of `fit_head`: charged after the labelled stream's ledger, at positions after the GAN's.

    Its `ledger` is the labelled stream's (what its examples went through); its Poisson samples and noise
    draws start at `first_position`, the host's next global position, not at that ledger's end (which,
    when the GAN phase read no labels, would be the GAN phase's own first positions).
    """

    def __init__(self, model, *, first_position, **kwargs):
        super().__init__(model, **kwargs)
        self._head_first_position = int(first_position)

    def _first_position(self):
        return self._head_first_position

