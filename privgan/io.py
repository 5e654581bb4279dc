"""Atomic file writes: a reader sees the old file or the complete new one, never half of it.

Each writer fills a temporary file in the destination folder and renames it over the destination
(`os.replace` is atomic on POSIX and Windows); on any error, the temporary file is removed.
"""

import contextlib
import json
import os
import pathlib
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it to `path` if the block succeeds.

    Args:
        path: the destination file; its folder is created if missing.

    Yields:
        A `pathlib.Path` to write to (the file does not exist yet; the suffix of `path` is kept, for
        writers that choose a format by suffix).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    os.unlink(temporary)
    temporary = pathlib.Path(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically (NaN/inf are refused, as JSON has none)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def save_figure(figure, path, **kwargs):
    """Saves a matplotlib figure to `path` atomically and closes it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, **kwargs)
    finally:
        plt.close(figure)
