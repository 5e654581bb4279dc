"""Fault tolerance for DP training: epoch backups that carry the privacy state, and resuming from them.

A DP model's `fit` with a `DPBackupAndRestore` callback writes, at the end of every epoch, the model's
weights (its DP step counter and the sigma, C and q of those steps among them) and its optimizers' state
into a new folder `epoch-NNNNNN` of the backup directory. The folder is filled under a temporary name
and renamed when complete, so a process killed at any moment leaves only complete backups, each holding
the weights after exactly the DP steps it records. Under `MultiWorkerMirroredStrategy` only the chief
writes (every worker holds the same weights); every worker reads, so the directory must be on storage
that all workers see (a shared file system).

When the job is started again with the same callback, `fit` loads the newest backup before it samples
anything: the step counter, hence the positions of the Poisson sampling and of the noise
(`privgan.dp.noise`), continue where the backup ends, and Keras continues at the next epoch. Steps taken
after the last backup by the killed job released nothing (their weights died with it) and are taken
again, on the same batches when the sampling seed is fixed and with a fresh secret noise key. The backup
directory is deleted once `fit` completes, as Keras' `BackupAndRestore` does: save the model yourself.

What a killed job's steps after its last backup computed must not have left the process, or the resumed
job's fresh noise on the same steps would be a second, uncharged release. `fit` therefore refuses, beside
a `DPBackupAndRestore`, callbacks that write between epoch ends (`ModelCheckpoint` with a `save_freq` in
batches, `TensorBoard` with an `update_freq` in batches), and runs the backup's `on_epoch_end` before
every other callback's, so whatever they write at an epoch end describes a state already backed up.
It warns about other callbacks that act after batches: they must not write anything outside the process.

Backups hold no secret: the noise key is never saved, and a secret sampling seed is not saved either
(a resumed job draws a fresh one, which gives fresh independent Poisson samples, as the accountant
assumes). A fixed `sampling_seed=` must be passed again to the resumed fit.
"""

import json
import os
import pathlib
import re
import shutil
import tempfile

import keras
from absl import logging

from privgan.dp.distribution import is_chief

_BACKUP = re.compile(r"epoch-(\d{6,})")
_WEIGHTS = "model.weights.h5"
_STATE = "state.json"


class DPBackupAndRestore(keras.callbacks.Callback):
    """Backs up a DP model at every epoch end and lets a restarted `fit` resume from the newest backup.

    Pass it in `callbacks` of `privgan.dp.DPModel.fit` or `privgan.models.DPGAN.fit` (Keras'
    `keras.callbacks.BackupAndRestore` is refused there: it restores after the sampler has started,
    which would restart the batches). Build and compile the model as in the first run; its privacy
    parameters must match the backup's (loading refuses others).

    Args:
        backup_dir: the directory of the backups (created when first needed), on storage every worker
            can read.
        keep: how many of the newest backups to keep, >= 1.
        delete_on_success: remove `backup_dir` when `fit` completes (it is then of no further use).

    Raises:
        ValueError: if `backup_dir` is empty or `keep` < 1.
    """

    def __init__(self, backup_dir, *, keep=1, delete_on_success=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("backup_dir must be a directory path, got an empty value")
        if int(keep) != keep or keep < 1:
            raise ValueError(f"keep must be an integer >= 1, got {keep}")
        self.backup_dir = pathlib.Path(backup_dir)
        self.keep = int(keep)
        self.delete_on_success = bool(delete_on_success)

    def backups(self):
        """The complete backups, oldest first, as `(next_epoch, path)` pairs."""
        if not self.backup_dir.is_dir():
            return []
        found = []
        for path in self.backup_dir.iterdir():
            match = _BACKUP.fullmatch(path.name)
            if match and (path / _STATE).is_file():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def restore(self, model):
        """Loads the newest backup into `model` (its optimizers built), if there is one.

        Returns:
            The epoch at which the backed-up `fit` continues (0 without a backup).

        Raises:
            ValueError: if the backup's step count does not match its weights, or its privacy parameters
                are not the model's (see `load_own_variables` of the model).
        """
        found = self.backups()
        if not found:
            return 0
        next_epoch, path = found[-1]
        state = json.loads((path / _STATE).read_text(encoding="utf-8"))
        model.load_weights(path / _WEIGHTS)
        if model._steps_taken() != state["dp_steps"]:
            raise ValueError(
                f"backup {path} records {state['dp_steps']} DP steps but its weights hold "
                f"{model._steps_taken()}: it is not a backup written by DPBackupAndRestore"
            )
        return next_epoch

    def on_epoch_end(self, epoch, logs=None):
        if not is_chief(self.model.distribute_strategy):
            return
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        temporary = pathlib.Path(tempfile.mkdtemp(prefix=".epoch-", dir=self.backup_dir))
        try:
            self.model.save_weights(temporary / _WEIGHTS)
            state = {"next_epoch": epoch + 1, "dp_steps": self.model._steps_taken()}
            (temporary / _STATE).write_text(json.dumps(state) + "\n", encoding="utf-8")
            target = self.backup_dir / f"epoch-{epoch + 1:06d}"
            shutil.rmtree(target, ignore_errors=True)  # only a run resumed from an older backup has one
            # rename(2) of a complete folder to a new name is atomic: readers see it whole or not at all.
            os.rename(temporary, target)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        stale = [path for path in self.backup_dir.glob(".epoch-*")]  # left by a chief killed while writing
        for old in stale + [path for _, path in self.backups()[: -self.keep]]:
            shutil.rmtree(old, ignore_errors=True)

    def on_train_end(self, logs=None):
        if self.delete_on_success and is_chief(self.model.distribute_strategy):
            shutil.rmtree(self.backup_dir, ignore_errors=True)


_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


def _acts_after_batches(callback):
    """Whether `callback` has a batch hook of its own (a subclass's method or a LambdaCallback's function)."""
    return any(
        hook in vars(callback) or getattr(type(callback), hook) is not getattr(keras.callbacks.Callback, hook)
        for hook in _BATCH_HOOKS
    )


def arrange_beside_backups(callbacks):
    """The callbacks of a fit, the `DPBackupAndRestore`s first; refuses those that write between backups.

    Without a `DPBackupAndRestore` the list is returned as it is.

    Args:
        callbacks: the fit's callbacks.

    Returns:
        A new list: the backups, then the other callbacks in their order.

    Raises:
        ValueError: for a `keras.callbacks.ModelCheckpoint` whose `save_freq` is not "epoch" or a
            `keras.callbacks.TensorBoard` whose `update_freq` is not "epoch", beside a backup.
    """
    backups = [c for c in callbacks if isinstance(c, DPBackupAndRestore)]
    if not backups:
        return list(callbacks)
    others = [c for c in callbacks if not isinstance(c, DPBackupAndRestore)]
    for callback in others:
        if isinstance(callback, keras.callbacks.ModelCheckpoint) and callback.save_freq != "epoch":
            raise ValueError(
                f"callbacks: ModelCheckpoint(save_freq={callback.save_freq!r}) beside DPBackupAndRestore writes "
                "weights between backups; a job killed after such a save and resumed from the last backup "
                "would release those steps twice with different noise, uncharged. Use save_freq='epoch'."
            )
        if isinstance(callback, keras.callbacks.TensorBoard) and callback.update_freq != "epoch":
            raise ValueError(
                f"callbacks: TensorBoard(update_freq={callback.update_freq!r}) beside DPBackupAndRestore writes "
                "between backups; a job killed after such a write and resumed from the last backup would "
                "release those steps twice with different noise, uncharged. Use update_freq='epoch'."
            )
        if _acts_after_batches(callback) and not type(callback).__module__.startswith("privgan."):
            logging.warning(
                "%s acts after batches beside DPBackupAndRestore: if it writes anything outside the process, "
                "what it writes after the last backup of a killed job is a release the ledger does not charge.",
                type(callback).__name__,
            )
    return backups + others
