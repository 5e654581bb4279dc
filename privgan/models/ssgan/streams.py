"""Two streams of one `SemiSupervisedGAN`: which images each read, and their accounting.


The model's epsilon is the worse stream's (parallel composition), which holds only if every record is
read by one stream only: an image read both as a labelled and as an unlabelled example loses the
composition of both streams' events. Every method that reads private images (`fit`, `fit_head`,
`fit_centroid_head`, `fit_projection`, `refine_centroid_head`) passes them to `StreamRecords.check_and_record`
before reading them, which refuses an image that the other stream read earlier or reads in the same
call, whichever method came first, and then records the new ones.

The check compares exact bytes (each image as float32): the same image normalised two ways, shifted by
one pixel, or one person's two different pictures all pass. That each person's record is in one stream
only remains the user's to ensure; the check only catches the plain mistake of passing the same array
to both.

The digests identify the private images (anyone holding a candidate image could tell whether it was
read), so they are never saved with the model, which is what gets published. The model's config keeps
only a random id and the number of recorded reads. `StreamRecords.save` writes the digests to a PRIVATE
file, to be kept with the private data; a model loaded from a file after such reads refuses any further
private read until `restore` reads that file back (or `declare` names the images again). A model saved
by an earlier privgan has no id: its records are unknown and it refuses likewise.

`TwoStreamAccounting` (a mixin of `SemiSupervisedGAN`) keeps one `PrivacyLedger` per stream in a
`ParallelLedger`: the GAN steps charged to each stream that read, then the stream's own phases
(`head_ledger`, `projection_ledger`), after the prior ledger of the whole data; it also calibrates each
stream's noise multiplier to the budget (parallel composition: each may spend all of it).
"""

import hashlib
import uuid

import numpy as np

from privgan.accounting import ParallelLedger, PrivacyLedger, calibrate_noise_multiplier, max_steps
from privgan.dp.bookkeeping import float32_at_least
from privgan.dp.config import DPSGDConfig
from privgan.io import atomic_path

LABELLED, UNLABELLED = "labelled", "unlabelled"
_ARGUMENT = {LABELLED: "x_labelled", UNLABELLED: "x_unlabelled"}
_DIGEST_BYTES = 16

_LEGACY = ("this model was loaded from a file saved by an earlier privgan, which did not record the images "
           "each stream read, so new images cannot be compared with them")
_NOT_RESTORED = ("this model was loaded from a file, and the digests of the images its streams read are not "
                 "saved with a model (they would identify the private images)")
_HOW = ("Restore them from the PRIVATE file that `model.stream_records.save(path)` wrote with "
        "`model.stream_records.restore(path)`, or name every image the model's earlier phases read with "
        "`model.stream_records.declare(x_labelled=..., x_unlabelled=...)` (that they are all of them is "
        "then yours to ensure).")


def image_digests(images):
    """One 128-bit digest per image (its exact float32 bytes), to find images present in two sets."""
    rows = np.ascontiguousarray(images, dtype=np.float32).reshape(len(images), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=_DIGEST_BYTES).digest() for row in rows]


def _shared(digests, others):
    return [i for i, digest in enumerate(digests) if digest in others]


def _overlap_error(what):
    return ValueError(
        f"{what}: the privacy accounting (parallel composition, epsilon = the worse stream's) needs each "
        "record in one stream only. Leave the labelled images out of the unlabelled ones."
    )


class StreamRecords:
    """The digests of the images each stream read, in memory, and whether they are known.

    Args:
        record_id: a random id that ties a saved model to its PRIVATE digests file (None: a new one).
        reads: the number of recorded reads so far.
        unknown: None when the digests are known (a new model: none read yet), else why they are not.
    """

    def __init__(self, *, record_id=None, reads=0, unknown=None):
        self.record_id = uuid.uuid4().hex if record_id is None else str(record_id)
        self.reads = int(reads)
        self.unknown = unknown
        self._digests = {LABELLED: set(), UNLABELLED: set()}

    # --- the check ---------------------------------------------------------------------------------

    def check_and_record(self, method, *, x_labelled=None, x_unlabelled=None):
        """Refuses images of one stream that the other read (earlier or now), then records them.

        Called before the images are read, so that a refused call reads nothing.

        Args:
            method: the caller's name, for messages.
            x_labelled: the labelled images the call reads, or None.
            x_unlabelled: the unlabelled images the call reads, or None.

        Raises:
            ValueError: if an image is in both streams, or if the digests of earlier reads are unknown.
        """
        if self.unknown is not None:
            raise ValueError(f"{method} cannot check that its images are in one stream only: {self.unknown}. "
                             f"{_HOW}")
        new = {stream: image_digests(images) for stream, images in
               ((LABELLED, x_labelled), (UNLABELLED, x_unlabelled)) if images is not None}
        if len(new) == 2:
            shared = _shared(new[LABELLED], set(new[UNLABELLED]))
            if shared:
                raise _overlap_error(f"{len(shared)} of the {len(new[LABELLED])} images of x_labelled (first at "
                                     f"index {shared[0]}) are also in x_unlabelled")
        for stream, other in ((LABELLED, UNLABELLED), (UNLABELLED, LABELLED)):
            shared = _shared(new.get(stream, ()), self._digests[other])
            if shared:
                raise _overlap_error(f"{_ARGUMENT[stream]} shares images with the {other} set that an earlier call "
                                     f"read ({len(shared)} of its {len(new[stream])} images, first at index "
                                     f"{shared[0]})")
        for stream, digests in new.items():
            self._digests[stream].update(digests)
        self.reads += 1

    # --- persistence -------------------------------------------------------------------------------

    def get_config(self):
        """What the model's saved config keeps: a random id and the number of reads, nothing of the images."""
        return {"record_id": self.record_id, "reads": self.reads}

    @classmethod
    def from_config(cls, config):
        """The records of a loaded model: known (empty) if nothing was read, else unknown until restored.

        Args:
            config: `get_config()`'s dict, or None for a model saved before privgan kept it.
        """
        if config is None:
            return cls(unknown=_LEGACY)
        reads = int(config["reads"])
        return cls(record_id=config["record_id"], reads=reads, unknown=_NOT_RESTORED if reads else None)

    def save(self, path):
        """Writes the digests to `path` (NumPy .npz), atomically. PRIVATE: keep it with the private data.

        The digests identify the private images (anyone with a candidate image could tell whether it was
        read): the file must never be published beside the model.

        Raises:
            ValueError: if the digests are unknown (nothing complete to save).
        """
        if self.unknown is not None:
            raise ValueError(f"cannot save the stream records: {self.unknown}. {_HOW}")
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            np.savez(file, record_id=np.array(self.record_id), reads=np.array(self.reads),
                     **{stream: self._array(stream) for stream in (LABELLED, UNLABELLED)})

    def _array(self, stream):
        return np.array(sorted(self._digests[stream]), dtype=f"S{_DIGEST_BYTES}")

    def restore(self, path):
        """Reads back the digests `save` wrote for this model, as it is now (same id, same number of reads).

        Raises:
            ValueError: if the file belongs to another model or to an earlier state of this one.
        """
        with np.load(path, allow_pickle=False) as file:
            record_id, reads = str(file["record_id"]), int(file["reads"])
            digests = {stream: {bytes(d).ljust(_DIGEST_BYTES, b"\0") for d in file[stream]}
                       for stream in (LABELLED, UNLABELLED)}
        if record_id != self.record_id:
            raise ValueError(f"{path} holds the stream records of another model (id {record_id}, this model's is "
                             f"{self.record_id})")
        if reads != self.reads:
            raise ValueError(f"{path} holds this model's stream records after {reads} reads of private images, but "
                             f"the model made {self.reads}: save them again after the last read")
        self._digests, self.unknown = digests, None

    def declare(self, *, x_labelled=None, x_unlabelled=None):
        """Records images as read by each stream, checked as a read; makes unknown records known.

        For a model whose records are unknown (loaded from an older file, or without its PRIVATE
        records file): the images must be all that its earlier phases read, which only the caller can
        ensure. On a model whose records are known it adds images, as a read would.

        Raises:
            ValueError: if an image is in both streams.
        """
        unknown, self.unknown = self.unknown, None
        try:
            self.check_and_record("declare", x_labelled=x_labelled, x_unlabelled=x_unlabelled)
        except ValueError:
            self.unknown = unknown
            raise


class TwoStreamAccounting:
    """The privacy bookkeeping of `SemiSupervisedGAN`'s two streams (a mixin; see the module docstring)."""

    def _streams(self):
        return {"labelled": self.labelled_config, "unlabelled": self.dp_config}

    def _first_position(self):
        # `fit_head`'s steps took the positions after the GAN steps before them (see `privgan.models.ssgan`).
        ledgers = (self.prior_ledger, self.head_ledger, self.projection_ledger)
        return sum(ledger.mechanism_runs for ledger in ledgers)

    def _step_parameters(self):
        return {
            "noise_multiplier": self.dp_config.noise_multiplier,
            "labelled_noise_multiplier": self.labelled_config.noise_multiplier,
            "l2_norm_clip": self.dp_config.l2_norm_clip,
            "feature_l2_norm_clip": self.feature_l2_norm_clip,
            "sampling_probability": self.dp_config.sampling_probability,
            "labelled_sampling_probability": self.labelled_config.sampling_probability,
        }

    @property
    def privacy_ledger(self):
        """A `ParallelLedger`: one `PrivacyLedger` per stream, after the prior ledger of the whole data.

        A non-private model's steps are charged with noise multiplier 0: its epsilon is infinite.
        """
        steps = self._steps_taken()
        parts = {}
        for name, config in self._streams().items():
            ledger = PrivacyLedger()
            if name == "unlabelled" or self.labelled_gradient != "none":
                ledger.record(noise_multiplier=config.noise_multiplier,
                              sampling_probability=config.sampling_probability, steps=steps)
            parts[name] = ledger
        # The head's own training (`fit_head`) read the labelled examples only.
        parts["labelled"] = PrivacyLedger(parts["labelled"].phases + self.head_ledger.phases)
        # `fit_projection`'s releases read the unlabelled examples only.
        parts["unlabelled"] = PrivacyLedger(parts["unlabelled"].phases + self.projection_ledger.phases)
        return ParallelLedger(parts, prior=self.prior_ledger)

    def _training_plan(self, epochs, remaining, target_epsilon, delta, *, initial_epoch=0):
        plan = super()._training_plan(epochs, remaining, target_epsilon, delta, initial_epoch=initial_epoch)
        return plan.replace("noise_multiplier", "noise_multiplier (unlabelled stream)", 1) + (
            f" Labelled stream: noise_multiplier {self.labelled_config.noise_multiplier:.4g}, sampling probability "
            f"{self.labelled_config.sampling_probability:.4g}; epsilon is the worse stream's.")

    def _max_further_steps(self, *, target_epsilon, delta, accountant):
        ledger = self.privacy_ledger
        return min(
            max_steps(target_epsilon=target_epsilon, delta=delta, noise_multiplier=config.noise_multiplier,
                      sampling_probability=config.sampling_probability, accountant=accountant,
                      ledger=ledger.part_ledger(name))
            for name, config in self._streams().items()
            if name == "unlabelled" or self.labelled_gradient != "none"
        )

    def _calibrate(self, *, epochs, target_epsilon, delta, accountant):
        if target_epsilon is None:
            raise ValueError("noise multipliers of None are calibrated in fit, which then needs target_epsilon and "
                             "delta")
        if self._steps_taken():
            raise ValueError("noise multipliers can only be calibrated before this model's first DP step")
        steps = self.planned_dp_steps(epochs)
        ledger = self.privacy_ledger

        def calibrated(name, config):
            # After what the stream's examples went through already (a prior ledger, `fit_head`'s steps).
            sigma = calibrate_noise_multiplier(target_epsilon=target_epsilon, delta=delta, steps=steps,
                                               sampling_probability=config.sampling_probability, accountant=accountant,
                                               ledger=ledger.part_ledger(name))
            return DPSGDConfig(l2_norm_clip=config.l2_norm_clip, noise_multiplier=float32_at_least(sigma),
                               num_examples=config.num_examples, expected_batch_size=config.expected_batch_size)

        # Parallel composition: each stream may spend the whole budget.
        self.dp_config = calibrated("unlabelled", self.dp_config)
        if self.labelled_gradient != "none":
            self.labelled_config = calibrated("labelled", self.labelled_config)
        self.noise_multiplier_calibrated = True
        self.train_function = None  # a step traced before holds the old sigmas
