"""What the console commands share: their `--help`, one-line errors and warnings, quiet logs.

absl's own `--help` lists only the flags of the `__main__` module; behind a console-script wrapper that is
the wrapper, so a user saw "USAGE: ... [flags]" and "Try --helpfull", where the command's flags are buried
among absl's and TensorFlow's. `run` answers `--help` itself with the command's docstring and its own
flags, turns flag and usage errors and Python warnings into single lines naming the command, and hides
log messages that are not the user's business (see `quiet_python_logs`).
"""

import logging
import re
import sys
import textwrap
import warnings

from absl import app, flags

from privgan.accounting.logs import quiet_accountant_logs

FLAGS = flags.FLAGS

_HELP_ARGUMENTS = ("--help", "-help", "--helpshort", "-helpshort", "-h", "-?")
_WIDTH = 100
_FLAG_COLUMN = 28
_METAVARS = {"int": "INT", "float": "FLOAT", "string": "TEXT"}


class CommandError(Exception):
    """An error the command reports as one line `<program>: error: <message>` with exit status 1."""


def fail(program, message):
    """Exits with `<program>: error: <message>` on stderr and status 1."""
    sys.exit(f"{program}: error: {message}")


def _is_required(flag):
    # absl records `required=True` only as a validator; its message is the one stable trace of it.
    return any(
        getattr(validator, "message", "") == f"Flag --{flag.name} must have a value other than None."
        for validator in getattr(flag, "validators", ())
    )


def _flag_synopsis(flag):
    kind = flag.flag_type()
    if kind == "bool":
        return f"--[no]{flag.name}"
    if kind.endswith("enum"):
        return f"--{flag.name}={{{','.join(flag.parser.enum_values)}}}"
    if kind.startswith("multi"):
        return f"--{flag.name}={_METAVARS['string']} (repeatable)"
    return f"--{flag.name}={_METAVARS.get(kind, 'VALUE')}"


def _help_text(flag):
    # absl prefixes an enum's help with "<a|b>: " and appends a "repeat this option" line to a multi flag's;
    # the synopsis already says both.
    text = flag.help
    if flag.flag_type().endswith("enum"):
        text = text.split(": ", 1)[-1]
    return text.split(";\n")[0].strip()


def _default_text(flag):
    if flag.default is None or flag.default == []:
        return ""
    if flag.flag_type() == "bool":
        return f"default: {'true' if flag.default else 'false'}"
    return f"default: {flag.default_as_str.strip(chr(39))}"


def flags_help(module, *, required=()):
    """The flags defined in `module`, one entry each: synopsis, help text, default, required.

    Args:
        module: the module (object or name) whose flags to describe.
        required: names of flags that `main` requires although absl does not (marked like absl's).

    Returns:
        The text, required flags first, each group in alphabetical order, lines at most 100 characters wide
        where words allow.
    """
    entries = []
    needed = {flag.name for flag in FLAGS.get_flags_for_module(module) if _is_required(flag) or flag.name in required}
    for flag in sorted(FLAGS.get_flags_for_module(module), key=lambda f: (f.name not in needed, f.name)):
        notes = [note for note in ("required" if flag.name in needed else "", _default_text(flag)) if note]
        text = _help_text(flag) + (f" ({'; '.join(notes)})" if notes else "")
        synopsis = _flag_synopsis(flag)
        indent = " " * (_FLAG_COLUMN + 2)
        if len(synopsis) + 2 < _FLAG_COLUMN:
            first = f"  {synopsis:<{_FLAG_COLUMN - 2}}  "
            entries.append(textwrap.fill(text, _WIDTH, initial_indent=first, subsequent_indent=indent))
        else:
            body = textwrap.fill(text, _WIDTH, initial_indent=indent, subsequent_indent=indent)
            entries.append(f"  {synopsis}\n" + body)
    return "\n".join(entries)


def command_help(*, program, doc, module, required=()):
    """The whole `--help` text: the command's docstring, then its own flags."""
    return (
        f"{doc.strip()}\n\nFlags of {program}:\n{flags_help(module, required=required)}\n\n"
        "--helpfull also lists the flags of absl and TensorFlow (not needed to use the command).\n"
    )


def _missing_flags(names):
    return "missing required flag" + ("s " if len(names) > 1 else " ") + ", ".join(f"--{name}" for name in names)


def _flag_error(error):
    """absl's flag error on one line; missing required flags named together."""
    missing = re.findall(r"Flag --(\w+) must have a value other than None", str(error))
    if missing:
        return _missing_flags(missing)
    return " ".join(str(error).split())


def require_flags(program, names):
    """Exits with one error line naming the flags of `names` that were not given (for flags that are
    required only in some uses of a command, which absl's `required=True` cannot express)."""
    missing = [name for name in names if FLAGS[name].value is None]
    if missing:
        fail(program, f"{_missing_flags(missing)} (see {program} --help)")


def _wants_help(argv):
    for argument in argv[1:]:
        if argument == "--":
            return False
        if argument in _HELP_ARGUMENTS:
            return True
    return False


def _one_line_warning(program):
    def show(message, category, filename, lineno, file=None, line=None):
        stream = file or sys.stderr
        try:
            stream.write(f"{program}: warning: {message}\n")
        except OSError:
            pass

    return show


class _CommandFormatter(logging.Formatter):
    """Formats log records as `<program>: warning: <message>` (`<program>: <message>` for INFO)."""

    def __init__(self, program):
        super().__init__()
        self.program = program

    def format(self, record):
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"{self.program}: {level}{record.getMessage()}"


def quiet_python_logs(program):
    """Hides the Python-side messages of a command that are not the user's business; keeps errors.

    - Python warnings print as one line `<program>: warning: ...` (no file name and source line);
      deprecation notices of the libraries underneath are dropped (the user cannot act on them).
    - Log records through absl (privgan's and dp-accounting's) print as `<program>: warning: ...`, without
      the date, thread and source file of absl's format.
    - TensorFlow's Python logger shows errors only (retracing notices and the like are for developers).
    - JAX (which TensorFlow imports where it is installed; privgan's engines do not use it) does not log,
      at INFO, each accelerator it probes for and does not find ("Unable to initialize backend 'tpu'");
      its warnings and errors still show.
    - The RDP accountant's convergence notices are dropped (`privgan.quiet_accountant_logs`).
    """
    from absl import logging as absl_logging

    warnings.showwarning = _one_line_warning(program)
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    absl_logging.get_absl_handler().setFormatter(_CommandFormatter(program))
    quiet_accountant_logs()


def run(main, *, program, module, required=()):
    """Runs `main(argv)` as the console command `program` with absl flags.

    `--help` (also `-h`, `--helpshort`) prints `command_help` to stdout and exits with status 0; a flag
    error, an `app.UsageError` or a `CommandError` raised by `main` prints one line
    `<program>: error: ...` and exits with status 1.

    Args:
        main: the command's main function (absl style: takes the remaining argv).
        program: the command's name, e.g. "privgan-synthesize".
        module: the module that defines the command's flags (its docstring is the help's text).
        required: flags `main` checks itself but that `--help` should mark as required.
    """
    module = sys.modules[module] if isinstance(module, str) else module
    if _wants_help(sys.argv):
        sys.stdout.write(command_help(program=program, doc=module.__doc__ or "", module=module, required=required))
        sys.exit(0)
    quiet_python_logs(program)

    def parse(argv):
        try:
            return FLAGS(argv)
        except flags.Error as error:
            fail(program, f"{_flag_error(error)} (see {program} --help)")

    def checked_main(argv):
        try:
            return main(argv)
        except (app.UsageError, CommandError) as error:
            fail(program, str(error))

    app.run(checked_main, flags_parser=parse)
