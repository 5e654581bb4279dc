"""Console entry points of privgan's commands: privgan-audit, privgan-budget, privgan-demo, privgan-synthesize.

They live outside the `privgan` package on purpose. Importing anything in `privgan` imports Keras and
TensorFlow, and TensorFlow's C++ start-up writes its messages straight to the process's stderr during
that import and the first look at the devices: oneDNN and CPU-instruction notices, CUDA probing, and an
`E... failed call to cuInit` ERROR line on every machine without a GPU. Those lines come before any
Python code of a command runs, and `TF_CPP_MIN_LOG_LEVEL` does not silence the ones written before
TensorFlow initialises its logging. So each entry point here starts TensorFlow with file descriptor 2
pointed at a temporary file, then writes back every line except the known start-up notices (`_is_notice`):
real warnings and errors, and any traceback, still reach the user. It also sets `TF_CPP_MIN_LOG_LEVEL=2`
(TensorFlow's later INFO and WARNING lines, e.g. "Local rendezvous is aborting", are not the user's
business; its errors still show).

Set `TF_CPP_MIN_LOG_LEVEL` yourself (e.g. to 0) to see all of TensorFlow's messages: nothing is then
filtered. `python -m privgan.cli.<command>` runs the same commands without this start-up filter.
"""

import contextlib
import importlib
import os
import re
import sys
import tempfile

# glog-style prefix of TensorFlow's and absl's C++ log lines: severity, date, time, thread, file:line.
_CPP_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] ")
_PRE_INIT_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# WARNING and ERROR lines that every CPU-only or pip-installed TensorFlow prints and that ask nothing of
# the user (on a machine with a working GPU, cuInit does not fail).
_HARMLESS = re.compile(
    r"failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory|Could not find TensorRT"
    r"|computation placer already registered"
)
# The second line of the INFO notice of cpu_feature_guard.cc.
_CONTINUATION = "To enable the following instructions:"


def _is_notice(line, previous_was_notice):
    """Whether a start-up stderr line is a notice to drop (INFO lines, known harmless lines)."""
    match = _CPP_LINE.match(line)
    if match:
        return match.group(1) == "I" or bool(_HARMLESS.search(line))
    if line.startswith(_PRE_INIT_NOTICE):
        return True
    return previous_was_notice and line.startswith(_CONTINUATION)


def filter_startup_lines(text):
    """`text` without the start-up notices, line by line (see `_is_notice`)."""
    kept, previous = [], False
    for line in text.splitlines(keepends=True):
        previous = _is_notice(line, previous)
        if not previous:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _startup_stderr_filtered():
    """Collects what is written to file descriptor 2 in the block; writes it back filtered at the end."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr file descriptor (e.g. a windowed interpreter): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = filter_startup_lines(captured.read().decode("utf-8", errors="replace"))
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


def _run(command, *, uses_devices):
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        # The user chose TensorFlow's verbosity: show everything it writes.
        importlib.import_module(f"privgan.cli.{command}").run()
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    with _startup_stderr_filtered():
        module = importlib.import_module(f"privgan.cli.{command}")
        if uses_devices and not _help_requested():
            import tensorflow as tf

            # The device probe (and its cuInit line) happens here, inside the filter, not at the first op.
            tf.config.list_physical_devices()
    module.run()


def _help_requested():
    return any(argument in ("--help", "-help", "--helpshort", "-helpshort", "-h", "-?", "--helpfull")
               for argument in sys.argv[1:])


def audit():
    """`privgan-audit`: see `privgan.cli.audit`."""
    _run("audit", uses_devices=True)


def budget():
    """`privgan-budget`: see `privgan.cli.budget`."""
    _run("budget", uses_devices=False)


def demo():
    """`privgan-demo`: see `privgan.cli.demo`."""
    _run("demo", uses_devices=True)


def synthesize():
    """`privgan-synthesize`: see `privgan.cli.synthesize`."""
    _run("synthesize", uses_devices=True)
