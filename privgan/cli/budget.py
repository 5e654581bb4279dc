r"""privgan-budget: the privacy guarantee of a DP-SGD configuration, or the noise for a target epsilon.

Without --target_epsilon, prints the privacy statement (epsilon under RDP and PLD for Poisson
sampling and for each example used once per epoch):

  privgan-budget --num_examples=60000 --batch_size=256 --epochs=60 --noise_multiplier=1.1

With --target_epsilon, prints the smallest noise multiplier that keeps Poisson-sampled DP-SGD
(q = batch_size / num_examples, ceil(epochs * round(num_examples / batch_size)) steps, as `fit` takes) within it:

  privgan-budget --num_examples=60000 --batch_size=256 --epochs=60 --target_epsilon=3

Also runs as `python -m privgan.cli.budget`.
"""

import math

from absl import flags

from privgan.accounting.calibration import calibrate_noise_multiplier
from privgan.accounting.events import epsilon, warn_if_delta_too_large
from privgan.accounting.statement import poisson_sampling_schedule, privacy_statement
from privgan.cli import command

_PROGRAM = "privgan-budget"
_DECIMALS = 4

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_examples", None, "Number of training examples.", required=True)
flags.DEFINE_integer("batch_size", None, "(Expected) batch size.", required=True)
flags.DEFINE_float("epochs", None, "Number of passes over the data (may be fractional).", required=True)
flags.DEFINE_float(
    "noise_multiplier",
    None,
    "Ratio of the noise standard deviation to the clipping norm. Required unless --target_epsilon.",
)
flags.DEFINE_float("delta", 1e-5, "Target delta.")
flags.DEFINE_float(
    "target_epsilon", None, "If set, print the noise multiplier that reaches this epsilon instead."
)
flags.DEFINE_enum(
    "accountant", "pld", ["pld", "rdp"], "Accountant used with --target_epsilon (the statement shows both)."
)


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        warn_if_delta_too_large(FLAGS.delta, num_examples=FLAGS.num_examples)
        if FLAGS.target_epsilon is None:
            if FLAGS.noise_multiplier is None:
                _fail("--noise_multiplier is required unless --target_epsilon is given")
            print(
                privacy_statement(
                    num_examples=FLAGS.num_examples,
                    batch_size=FLAGS.batch_size,
                    epochs=FLAGS.epochs,
                    noise_multiplier=FLAGS.noise_multiplier,
                    delta=FLAGS.delta,
                ),
                end="",
            )
        else:
            if FLAGS.noise_multiplier is not None:
                _fail("give either --noise_multiplier or --target_epsilon, not both")
            print(_calibration_report())
    except ValueError as error:
        _fail(str(error))


def _calibration_report() -> str:
    sampling_probability, steps = poisson_sampling_schedule(
        num_examples=FLAGS.num_examples, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs
    )
    calibrated = calibrate_noise_multiplier(
        target_epsilon=FLAGS.target_epsilon,
        delta=FLAGS.delta,
        sampling_probability=sampling_probability,
        steps=steps,
        accountant=FLAGS.accountant,
    )
    # Rounded up, so that the printed value itself stays within the target.
    noise_multiplier = math.ceil(calibrated * 10**_DECIMALS) / 10**_DECIMALS
    reached = epsilon(
        noise_multiplier=noise_multiplier,
        sampling_probability=sampling_probability,
        steps=steps,
        delta=FLAGS.delta,
        accountant=FLAGS.accountant,
    )
    return (
        f"noise_multiplier = {noise_multiplier:.{_DECIMALS}f}\n"
        f"epsilon = {reached:.4f} (target {FLAGS.target_epsilon:g}) at delta = {FLAGS.delta:g}, "
        f"{FLAGS.accountant.upper()} accountant, Poisson sampling with q = {sampling_probability:.4g} "
        f"over {steps} steps"
    )


def _fail(message: str):
    command.fail(_PROGRAM, message)


def run():
    """Runs the command (`privgan-budget`, or `python -m privgan.cli.budget`)."""
    command.run(main, program=_PROGRAM, module=__name__)


if __name__ == "__main__":
    run()
