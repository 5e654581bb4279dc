r"""privgan-audit: re-derive a privacy statement's epsilon from its ledger; audit DP-SGD at its parameters.

  privgan-audit --statement=runs/demo/synthetic.json
  privgan-audit --statement=synthetic.json --whitebox --num_canaries=20000
  privgan-audit --model=model.keras --delta=1e-5 --whitebox

Reads a privacy statement written by privgan (`save_synthetic`, `privgan-synthesize`, `privgan-demo`: a
JSON file with epsilon, delta, accountant and the ledger of every use of the private data), rebuilds the
ledger's dp-accounting events and recomputes epsilon at the statement's delta with its accountant: a
check that the statement's epsilon is what its own ledger gives (exit status 1 if not).

With --model (a DP model saved by `model.save`, e.g. from `privgan.make_private`), the ledger is the one
its weights carry (DP step count and the sigma and q of those steps), and epsilon is computed at --delta.

With --whitebox, for a ledger with DP-SGD steps, it also runs privgan's DP-SGD mechanism
(`privgan.dp.private_gradients`, secret noise and sampling) at that phase's sigma, q and T on the
auditor's own gradient-space canaries (`privgan.audit.run_whitebox_audit`) and prints empirical lower
bounds on epsilon beside the accountant's. It reads no private data: it tests the mechanism that the
statement's numbers assume (as this installation implements it), not the finished run, whose data and
noise are gone. The work grows with T x canaries x --canary_variables (about a minute for 10^4 canaries
at T = 14,040 on two CPU cores).

Also runs as `python -m privgan.cli.audit`.
"""

import json
import math
import pathlib

import dp_accounting
from absl import flags

from privgan.accounting.ledger import DpSgdPhase, PrivacyLedger
from privgan.cli import command

_PROGRAM = "privgan-audit"

FLAGS = flags.FLAGS


def _define_flags():
    """Defines the command's flags, once: at run time, so that importing this module (its functions are a
    library too) adds nothing to absl's process-wide flags, where a --delta of another program would clash."""
    if "statement" in FLAGS:
        return
    flags.DEFINE_string("statement", None, "The privacy statement (JSON) to check (or --model).")
    flags.DEFINE_string("model", None,
                        "A DP model saved with model.save (.keras) whose ledger to read (or --statement).")
    flags.DEFINE_float("delta", None, "delta at which to report a --model's epsilon.")
    flags.DEFINE_enum("accountant", "pld", ["pld", "rdp"], "Accountant of a --model's epsilon.")
    flags.DEFINE_bool("whitebox", False, "Also run the white-box audit of the DP-SGD mechanism at the ledger's "
                      "sigma, q and T (needs DP-SGD steps in the ledger).")
    flags.DEFINE_integer("phase", None, "Which DP-SGD phase of the ledger to audit (0 = first), when it has "
                         "several; default: its only one.")
    flags.DEFINE_integer("num_canaries", 10000, "Canaries of the white-box audit (more: tighter bounds, longer run).")
    flags.DEFINE_integer("canary_variables", 1, "Variables each canary's gradient spans (more: catches a mechanism "
                         "that clips each variable separately; longer run).")
    flags.DEFINE_integer("seed", None, "Seed of the canaries' inclusion (default: fresh); the mechanism's noise and "
                         "sampling stay secret.")


# Relative difference between the stated and the recomputed epsilon that counts as the same number
# (both come from dp-accounting; a newer version may move the last digits).
_TOLERANCE = 1e-6


def _load_statement(path):
    try:
        statement = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise command.CommandError(
            f"--statement: cannot read a JSON privacy statement from {path!r}: {error}"
        ) from error
    missing = [key for key in ("epsilon", "delta", "ledger")
               if not isinstance(statement, dict) or key not in statement]
    if missing:
        raise command.CommandError(
            f"--statement: {path!r} is not a privgan privacy statement (no {', '.join(missing)})"
        )
    try:
        ledger = PrivacyLedger.from_dict(statement["ledger"])
    except (TypeError, ValueError) as error:
        raise command.CommandError(f"--statement: its ledger is not valid: {error}") from error
    return statement, ledger


def _phase_text(phase):
    if isinstance(phase, DpSgdPhase):
        return (f"{phase.steps} DP-SGD steps, sigma = {phase.noise_multiplier:.6g}, "
                f"q = {phase.sampling_probability:.6g}")
    return f"release: {phase.description}"


def _dp_sgd_phase(ledger, index):
    phases = [phase for phase in ledger.phases if isinstance(phase, DpSgdPhase)]
    if not phases:
        raise command.CommandError("--whitebox: the ledger has no DP-SGD steps to audit")
    if index is None:
        if len(phases) > 1:
            raise command.CommandError(f"--whitebox: the ledger has {len(phases)} DP-SGD phases; choose one with "
                                       f"--phase in [0, {len(phases) - 1}]")
        index = 0
    if not 0 <= index < len(phases):
        raise command.CommandError(f"--phase must be in [0, {len(phases) - 1}], got {index}")
    return phases[index]


def check_statement(path):
    """The consistency report of the statement at `path`: its epsilon against its ledger's.

    Returns:
        `(text, consistent, statement, ledger)`.

    Raises:
        command.CommandError: if the file is not a readable privgan privacy statement.
    """
    statement, ledger = _load_statement(path)
    delta, accountant = statement["delta"], statement.get("accountant", "pld")
    try:
        recomputed = ledger.epsilon(delta=delta, accountant=accountant)
    except (TypeError, ValueError, dp_accounting.UnsupportedEventError) as error:
        raise command.CommandError(f"--statement: cannot recompute its epsilon: {error}") from error
    claimed = float(statement["epsilon"])
    consistent = math.isclose(claimed, recomputed, rel_tol=_TOLERANCE, abs_tol=1e-9)
    lines = [
        f"statement {path}",
        "  ledger: " + ("; ".join(_phase_text(phase) for phase in ledger.phases) or "empty"),
        f"  claimed epsilon    {claimed:.6g} at delta = {delta:g} ({accountant.upper()} accountant)",
        f"  recomputed epsilon {recomputed:.6g} from the ledger's dp-accounting events: "
        + ("consistent" if consistent else "INCONSISTENT: the statement's epsilon is not its ledger's"),
    ]
    for key in ("noise_seeding", "sampling_seeding"):
        if key in statement:
            lines.append(f"  {key.replace('_', ' ')}: {statement[key]}")
    return "\n".join(lines), consistent, statement, ledger


def model_report(path, *, delta, accountant="pld"):
    """The ledger and epsilon of a saved DP model (its weights carry the DP step count and parameters).

    Returns:
        `(text, statement, ledger)`, `statement` holding the delta the white-box audit reports at.

    Raises:
        command.CommandError: if the file is not a saved privgan DP model or delta is out of range.
    """
    if delta is None or not 0 < delta < 1:
        raise command.CommandError(f"--delta must be in (0, 1) with --model, got {delta}")
    import keras

    import privgan  # noqa: F401  (registers privgan's saveable classes with Keras)

    try:
        model = keras.models.load_model(path)
    except (OSError, ValueError, TypeError) as error:
        raise command.CommandError(f"--model: cannot load a Keras model from {path!r}: {error}") from error
    ledger = getattr(model, "privacy_ledger", None)
    if not isinstance(ledger, PrivacyLedger):
        raise command.CommandError(f"--model: {path!r} is not a privgan DP model (it has no privacy ledger)")
    epsilon = ledger.epsilon(delta=delta, accountant=accountant)
    lines = [
        f"model {path}",
        "  ledger: " + ("; ".join(_phase_text(phase) for phase in ledger.phases) or "empty"),
        f"  epsilon {epsilon:.6g} at delta = {delta:g} ({accountant.upper()} accountant), from the DP steps "
        "its weights record",
    ]
    return "\n".join(lines), {"delta": delta}, ledger


def whitebox_report(statement, ledger, *, phase=None, num_canaries, canary_variables=1, seed=None):
    """Runs the white-box audit at a DP-SGD phase's sigma, q and T; returns the report's lines as text."""
    from privgan.audit import run_whitebox_audit

    audited = _dp_sgd_phase(ledger, phase)
    try:
        result = run_whitebox_audit(
            noise_multiplier=audited.noise_multiplier, sampling_probability=audited.sampling_probability,
            steps=audited.steps, delta=statement["delta"], num_canaries=num_canaries,
            one_run_canaries=min(num_canaries, 10000), canary_variables=canary_variables, seed=seed,
        )
    except ValueError as error:
        raise command.CommandError(str(error)) from error
    return "\n".join([
        f"white-box audit of privgan's DP-SGD mechanism at that phase ({_phase_text(audited)}), "
        f"{num_canaries} canaries over {canary_variables} variable(s), {result.seconds:.0f} s:",
        f"  upper bound: epsilon {result.epsilon:.4f} (accountant, this phase alone) - proven for the "
        "mechanism as analysed; it holds if the code is that mechanism",
        f"  lower bound: epsilon {result.epsilon_lower_bound:.4f} (one run, Steinke et al. 2023, "
        f"{1 - result.alpha:.0%} confidence) - measured on the code; above the upper bound means a bug",
        f"  independent-trials lower bound: epsilon {result.independent_trials_lower_bound:.4f} - the same "
        "test, valid when canaries are independent, as in DP-SGD",
        f"  f-DP one-run lower bound: epsilon {result.fdp_epsilon_lower_bound:.4f} (Mahloujifar et al. 2024, "
        "against the accountant's own DP-SGD privacy curve; white-box, all iterates) - the run is less private "
        "than DP-SGD with that epsilon; above the upper bound means a bug",
        f"  Gaussian-DP estimate (all iterates; canaries as independent trials): "
        f"{result.gaussian_dp_estimate.describe()}",
        "  A lower bound far below the upper one is expected (the attack is not optimal, one run); it "
        "only rules out bugs large enough to show.",
        *(["  WARNING: a lower bound exceeds the accountant's epsilon: the mechanism is not DP as claimed"]
          if result.exceeds_accountant or result.trials_exceed_accountant or result.fdp_exceeds_accountant
          or result.gaussian_dp_exceeds_accountant else []),
    ])


def main(argv):
    if len(argv) > 1:
        raise command.CommandError(f"unexpected arguments: {' '.join(argv[1:])}")
    if (FLAGS.statement is None) == (FLAGS.model is None):
        raise command.CommandError("give one of --statement (a privacy statement) or --model (a saved DP model)")
    consistent = True
    if FLAGS.model is not None:
        text, statement, ledger = model_report(FLAGS.model, delta=FLAGS.delta, accountant=FLAGS.accountant)
    else:
        text, consistent, statement, ledger = check_statement(FLAGS.statement)
    print(text)
    if FLAGS.whitebox:
        print(whitebox_report(statement, ledger, phase=FLAGS.phase, num_canaries=FLAGS.num_canaries,
                              canary_variables=FLAGS.canary_variables, seed=FLAGS.seed))
    if not consistent:
        raise command.CommandError("the statement's epsilon differs from the one its ledger gives")


def run():
    """Runs the command (`privgan-audit`, or `python -m privgan.cli.audit`)."""
    _define_flags()
    command.run(main, program=_PROGRAM, module=__name__)


if __name__ == "__main__":
    run()
