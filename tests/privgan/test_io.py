"""privgan.io: atomic writes leave nothing behind on errors, Ctrl-C, SIGTERM or SIGHUP; destination checks."""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

from privgan import io

IO_FILE = pathlib.Path(io.__file__)

# A writer that stops in the middle of a long write. privgan/io.py is loaded by path: importing the
# package would import TensorFlow (~10 s) for nothing.
WRITER = textwrap.dedent(
    """
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("privgan_io", sys.argv[1])
    io = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(io)
    with io.atomic_path(sys.argv[2]) as temporary:
        with open(temporary, "w") as handle:
            handle.write("half a table\\n" * 1000)
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_a_write_leaves_no_file(tmp_path, signum):
    folder = tmp_path / "out"
    folder.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(IO_FILE), str(folder / "s.csv")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline() == "writing\n"
        assert len(list(folder.iterdir())) == 1  # the hidden temporary file exists mid-write
        process.send_signal(signum)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert list(folder.iterdir()) == []
    if signum != signal.SIGINT:
        assert process.returncode == -signum  # the process still ends by the signal, as without cleanup


def test_handlers_are_set_only_during_writes_and_never_replace_a_programs_own(tmp_path):
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with io.atomic_path(tmp_path / "a.txt") as first, io.atomic_path(tmp_path / "b.txt") as second:
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        first.write_text("a")
        second.write_text("b")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]

    def own_handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own_handler)
    try:
        io.write_text(tmp_path / "c.txt", "c")
        with io.atomic_path(tmp_path / "d.txt") as temporary:
            assert signal.getsignal(signal.SIGTERM) is own_handler
            temporary.write_text("d")
        assert signal.getsignal(signal.SIGTERM) is own_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_error_during_a_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "s.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as temporary:
            temporary.write_text("new, half")
            raise RuntimeError("failed")
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"] and target.read_text() == "old"


def test_check_destination(tmp_path):
    (tmp_path / "table.csv").write_text("a\n1\n")
    assert io.check_destination(tmp_path / "new" / "deeper" / "s.csv") == tmp_path / "new" / "deeper" / "s.csv"
    with pytest.raises(ValueError, match=r"--output '.*table.csv/x.csv' cannot be created: '.*table.csv' is a file"):
        io.check_destination(tmp_path / "table.csv" / "x.csv", name="--output")
    with pytest.raises(ValueError, match="is a folder"):
        io.check_destination(tmp_path, name="--output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]  # the probe file is gone
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="refuses a new file"):
            io.check_destination(locked / "s.csv")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_check_destination_tries_the_folder_even_as_root():
    # os.access passes for root whatever the folder; only creating a file there tells.
    with pytest.raises(ValueError, match=r"--output '/proc/privgan/s.csv' cannot be written: folder '/proc' refuses"):
        io.check_destination("/proc/privgan/s.csv", name="--output")
