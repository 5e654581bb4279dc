"""Atomic file writes: a reader sees the old file or the complete new one, never half of it.

Each writer fills a temporary file in the destination folder and renames it over the destination
(`os.replace` is atomic on POSIX and Windows); on any error, the temporary file is removed. An interrupt
(Ctrl-C, SIGINT) raises KeyboardInterrupt and is cleaned up like an error. SIGTERM and SIGHUP (what
schedulers, `timeout` and a closed terminal send) would end the process without running any cleanup, so
while a temporary file is being written `atomic_path` handles them: it removes the temporary files and
then lets the signal end the process as it would have (same exit status). It does so only in the main
thread and only where nobody else handles the signal (a program's own handler is left alone).
"""

import contextlib
import json
import os
import pathlib
import signal
import tempfile
import threading

_CLEANUP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_pending = set()  # temporary files of atomic_path blocks in progress
_handled = set()  # signals whose default action our handler currently stands in for


def _remove_pending_and_end(signum, frame):
    for temporary in list(_pending):
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    _pending.clear()
    _handled.clear()
    for handled in _CLEANUP_SIGNALS:
        if signal.getsignal(handled) is _remove_pending_and_end:
            signal.signal(handled, signal.SIG_DFL)
    signal.raise_signal(signum)  # the default action, as if we had never handled it


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


def _track(temporary):
    _pending.add(temporary)
    if not _in_main_thread():
        return  # signal handlers can only be set from the main thread
    for signum in _CLEANUP_SIGNALS:
        if signum not in _handled and signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _remove_pending_and_end)
            _handled.add(signum)


def _untrack(temporary):
    _pending.discard(temporary)
    if _pending or not _in_main_thread():
        return
    for signum in list(_handled):
        if signal.getsignal(signum) is _remove_pending_and_end:
            signal.signal(signum, signal.SIG_DFL)
        _handled.discard(signum)


def check_destination(path, *, name="path"):
    """Checks, before any work, that a file can later be written at `path`.

    The path must not be a folder, and its nearest existing ancestor must be a folder in which a file can
    be created: a temporary file is created there and removed (missing folders in between are created when
    writing).

    Args:
        path: the file to be written.
        name: how to call the path in messages (e.g. "--output").

    Returns:
        `path` as a `pathlib.Path`.

    Raises:
        ValueError: naming the path and what is wrong with it.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a folder; give a file name inside it")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{name} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a folder")
    # Try it: os.access answers for the real uid from permission bits alone, so root passes it in /proc or on a
    # read-only mount, and the failure came only after training.
    try:
        handle, probe = tempfile.mkstemp(dir=ancestor, prefix=f".{path.name}.", suffix=".probe")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(
            f"{name} {str(path)!r} cannot be written: folder {str(ancestor)!r} refuses a new file ({reason})"
        ) from None
    os.close(handle)
    os.unlink(probe)
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it to `path` if the block succeeds.

    The temporary file is removed if the block raises (KeyboardInterrupt included) or the process
    receives SIGTERM or SIGHUP during the block (see the module docstring).

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
    _track(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
        _untrack(temporary)


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
