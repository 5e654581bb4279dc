"""Drawing and writing synthetic samples with their privacy statement, shared by the private generators.

A host model sets `latent_dim`, `num_classes` (None when unconditional), `seed_generator`, and defines
`_sampling_generator()` (the Keras model that `generate` runs) and `privacy_statement(delta=..., accountant=...)`.
"""

import json
import pathlib

import keras
import numpy as np
import tensorflow as tf

from privgan.accounting.events import check_count
from privgan.accounting.statement import DeprecatedPrivacyReport
from privgan.io import atomic_path

_GENERATION_CHUNK = 1024


def check_labels(labels, *, rows, num_classes):
    """`labels` as int32 after checking they are `rows` integers in [0, num_classes).

    Raises:
        ValueError: naming the shape, dtype or range that does not fit.
    """
    labels = np.asarray(labels)
    if labels.shape != (rows,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be {rows} integers (shape ({rows},)), got {labels.dtype} of shape {labels.shape}"
        )
    if rows and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, num_classes={num_classes}), got [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int32)


class SyntheticSamplesMixin(DeprecatedPrivacyReport):
    """`generate` and `save_synthetic` for a (conditional) private generator (a mixin)."""

    @property
    def conditional(self):
        """Whether the generator is conditioned on class labels."""
        return self.num_classes is not None

    def generate(self, n, labels=None):
        """Draws `n` samples from the generator, in inference mode.

        Args:
            n: number of samples, an integer >= 0.
            labels: for a conditional generator, `n` integer labels in [0, num_classes); None gives
                balanced labels (0, 1, ..., num_classes - 1, 0, 1, ...). Must be None when unconditional.

        Returns:
            The samples as a float32 array, or `(samples, labels)` for a conditional generator.

        Raises:
            ValueError: if `n` is negative or `labels` do not fit.
        """
        n = check_count(n, name="n", minimum=0)
        if not self.conditional:
            if labels is not None:
                raise ValueError(f"labels given to an unconditional {type(self).__name__}")
        elif labels is None:
            labels = (np.arange(n) % self.num_classes).astype(np.int32)
        else:
            labels = check_labels(labels, rows=n, num_classes=self.num_classes)
        generator = self._sampling_generator()
        chunks = []
        for start in range(0, n, _GENERATION_CHUNK):
            size = min(_GENERATION_CHUNK, n - start)
            latent = keras.random.normal((size, self.latent_dim), seed=self.seed_generator)
            inputs = latent if labels is None else [latent, tf.constant(labels[start : start + size])]
            chunks.append(keras.ops.convert_to_numpy(generator(inputs, training=False)))
        shape = (0, *generator.outputs[0].shape[1:])
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(shape, np.float32)
        return (samples, labels) if self.conditional else samples

    def save_synthetic(self, path, n, *, delta, labels=None, accountant="pld"):
        """Writes `n` generated samples to an NPZ file and the privacy statement to a JSON file beside it.

        The NPZ holds `x` (and `y`, the labels, when conditional); the statement (`privacy_statement`) goes
        to the same path with suffix `.json`. Both are written to temporary files first and renamed only
        once both are complete, so an error or interrupt leaves no half-written file.

        Args:
            path: the `.npz` file to write (its folder is created if missing).
            n: number of samples, an integer >= 0.
            delta: the delta of the stated epsilon, in (0, 1).
            labels: see `generate`.
            accountant: "pld" or "rdp".

        Returns:
            `(npz_path, statement_path)` as `pathlib.Path`s.

        Raises:
            ValueError: if `path` does not end in .npz or an argument is out of range.
        """
        path = pathlib.Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"path must end in .npz, got {str(path)!r}")
        statement = self.privacy_statement(delta=delta, accountant=accountant).to_dict()
        generated = self.generate(n, labels=labels)
        arrays = {"x": generated[0], "y": generated[1]} if self.conditional else {"x": generated}
        statement_path = path.with_suffix(".json")
        statement["num_samples"] = n
        statement["data_file"] = path.name
        text = json.dumps(statement, indent=2, sort_keys=True, allow_nan=False) + "\n"
        with atomic_path(path) as npz_temporary, atomic_path(statement_path) as json_temporary:
            with open(npz_temporary, "wb") as handle:
                np.savez_compressed(handle, **arrays)
            json_temporary.write_text(text, encoding="utf-8")
        return path, statement_path
