"""Runs several invocations of one console command in one process, for tests of its refusals.

Each start of a command imports TensorFlow (several CPU seconds); a test module that checks many refusals
(bad flags, destinations, inputs: all stopped before any training) runs them here one after another, with
the flags reset to their defaults in between, instead of starting one process each. Runs that train, and
the checks of what reaches a user's terminal (TensorFlow's start-up lines, library notices), still start
their own process through the console entry point.

Usage: python -m tests.console_batch MODULE INVOCATIONS_JSON
  MODULE: the command's module, e.g. privgan.cli.synthesize (it must have a `run()`).
  INVOCATIONS_JSON: {"name": ["--flag=value", ...], ...}
Prints one JSON object {"name": [exit status, stdout, stderr], ...} as the last line of stdout.
"""

import contextlib
import importlib
import io
import json
import sys

from absl import flags


def run_each(module_name, invocations):
    """Runs `module.run()` once per invocation; returns {name: (exit status, stdout, stderr)}."""
    module = importlib.import_module(module_name)
    results = {}
    for name, argv in invocations.items():
        if flags.FLAGS.is_parsed():
            flags.FLAGS.unparse_flags()  # back to the defaults: no flag value leaks into the next invocation
        out, err = io.StringIO(), io.StringIO()
        sys.argv = [module_name, *argv]
        status = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                module.run()
            except SystemExit as exit_:  # what the interpreter would print and return for sys.exit(...)
                if isinstance(exit_.code, str):
                    err.write(exit_.code + "\n")
                    status = 1
                else:
                    status = exit_.code or 0
        results[name] = (status, out.getvalue(), err.getvalue())
    return results


if __name__ == "__main__":
    outcome = run_each(sys.argv[1], json.loads(sys.argv[2]))
    sys.stdout.write("\n" + json.dumps(outcome) + "\n")
