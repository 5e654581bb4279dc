"""White-box audit of a DP-SGD mechanism with gradient-space ("Dirac") canaries.

The audit runs the mechanism itself (by default `privgan.dp.private_gradients` on Poisson batches from
`privgan.dp.poisson_batches`) with the noise multiplier, sampling probability and number of steps of
a real run, on m canaries each included with probability 1/2 (see `privgan.audit.dirac`; each canary's
gradient may span L variables, so that a mechanism clipping each variable on its own shows), lets the
auditor score every canary from all the intermediate noisy gradients, and turns the scores into
epsilon lower bounds, each at significance alpha, to compare with the accountant's epsilon.

Threat model: white-box, all iterates. The auditor sees every step's noisy gradient sum (the update up
to the learning rate), as DP-SGD's accountant assumes, and chooses the canaries' gradients (Dirac
canaries: its own coordinates, clipped exactly to C). A last-iterate auditor sees only the final
parameters; for these canaries (linear losses, so the gradient never depends on the parameters) the
final parameters in a canary's coordinate are minus the learning rate times its observations summed
over the steps, the "sum" score, so `last_iterate` reports what that weaker auditor can show (much less:
a last-iterate audit of this schedule cannot approach the accountant's epsilon, which covers all iterates).


- `epsilon_lower_bound`, the one-run bound of Steinke, Nasr & Jagielski (2023): valid for any
  (epsilon, delta)-DP mechanism whatever the dependence between canaries. Its delta term grows as
  2 m delta, so it is computed on a fixed subset of `one_run_canaries` canaries (the others, included
  independently of them, are just part of the mechanism for that bound). At delta = 1e-5 it cannot
  exceed about 6 for any m, even with every guess right.
- `fdp_epsilon_lower_bound`, the f-DP one-run bound of Mahloujifar, Melis & Chaudhuri (2024) from the
  same scores (its own guesses, planned on the simulation), tested against the accountant's own
  privacy curves (`privgan.audit.fdp`): the smallest noise multiplier `fdp_noise_multiplier` whose
  DP-SGD curve at this q and T the guesses reject, and its accountant's epsilon at delta. No 2 m delta
  term, so it uses all m canaries. It refutes "the run is as private as DP-SGD with that noise", the
  accountant's claim when that noise is sigma, so above the accountant's epsilon it is a bug; valid for
  this mechanism's claim (not for every (epsilon, delta)-DP mechanism, which Steinke's bound covers).
  `gaussian_dp_mu_lower_bound` is the mu-GDP claim the same guesses reject, to compare with `claimed_mu`.
- `gaussian_dp_estimate`, the Gaussian-DP estimate of mu from the scores with a confidence interval
  (`privgan.audit.gaussian_dp`): one threshold test per score, its fraction of flagged canaries planned
  on the simulation and its threshold set on a calibration tenth of the canaries, the others counted as
  independent trials. Its lower end refutes "the run is mu-GDP" for every smaller mu, under the same
  independence assumption as the next bound; it uses the whole trade-off curve's Gaussian shape
  instead of one (epsilon, delta) point, so it comes much closer to the accountant than either.
- `independent_trials_lower_bound`, Clopper-Pearson over the canaries as independent trials (Jagielski
  et al. 2020; Nasr et al. 2023 use one training run per trial): valid when the canaries' outcomes
  are independent, which a correct DP-SGD implementation guarantees here (independent noise per
  coordinate, independent Poisson sampling per example). It refutes "this implementation is the
  (epsilon, delta)-DP subsampled Gaussian mechanism the accountant analyses"; it is not limited by 2 m
  delta, so it can exceed 8.

A lower bound above the accountant's epsilon is a bug in the mechanism (or, with probability at most
alpha, bad luck). The one-run bound's numbers of guesses are planned before the run on a simulation of
the claimed mechanism, which costs no confidence; scores and the remaining candidates share alpha
(Bonferroni).
"""

import dataclasses
import math
import time

import dp_accounting
import numpy as np

from privgan.accounting import epsilon as accountant_epsilon
from privgan.audit.bounds import epsilon_lower_bound_one_run, gaussian_dp_lower_bound_one_run
from privgan.audit.canaries import (
    DEFAULT_FLAG_FRACTIONS,
    independent_trials_bound,
    one_run_guess_outcome,
    plan_one_run_guesses,
)
from privgan.audit.dirac import check_scores, dirac_canary_scores, simulated_canary_scores
from privgan.audit.fdp import dp_sgd_curve_bound, plan_fdp_guesses
from privgan.audit.gaussian_dp import (
    CALIBRATION_FRACTION,
    GaussianDPEstimate,
    calibration_size,
    gaussian_dp_estimate,
    plan_gaussian_dp_fraction,
)
from privgan.audit.metrics import evaluate_attack
from privgan.dp import private_gradients

# The likelihood-ratio score is the most powerful against the claimed mechanism; the differenced one
# catches noise that repeats across steps, which the plain one misses entirely.
DEFAULT_SCORES = ("likelihood_ratio", "differenced_likelihood_ratio")
# Fractions of the canaries guessed "included" (top) and as many "excluded" (bottom) by the f-DP bound's
# candidates for a broken mechanism, beside its planned guesses.
BROKEN_FRACTIONS = (0.01, 0.025, 0.05, 0.1)


@dataclasses.dataclass(frozen=True)
class WhiteboxAuditResult:
    """Epsilon lower bounds from a white-box Dirac-canary audit, next to the accountant's epsilon.

    Attributes:
        epsilon: the accountant's (PLD) epsilon at `delta` for the audited sigma, q and T.
        delta: the delta of every epsilon here.
        alpha: significance of each lower bound.
        noise_multiplier: sigma.
        sampling_probability: q.
        steps: T.
        num_canaries: m.
        canary_variables: L, the variables each canary's gradient spans.
        num_included: how many canaries were in the private dataset.
        one_run_canaries: the canaries behind the one-run bound.
        epsilon_lower_bound: the one-run bound (no independence assumption).
        one_run_score: the score behind it.
        num_guesses: its guesses.
        num_correct: its correct guesses.
        fdp_epsilon_lower_bound: the f-DP one-run bound (Mahloujifar, Melis & Chaudhuri 2024) on all the
            canaries against DP-SGD's own privacy curves at q and T (all iterates): the accountant's
            epsilon at `delta` of the least noisy DP-SGD run the guesses refute; 0 if none.
        fdp_noise_multiplier: that run's noise multiplier (None if none); below sigma means a bug.
        fdp_score: the score behind it.
        fdp_guesses: its guesses (planned on the simulation for this bound).
        fdp_correct: its correct guesses.
        gaussian_dp_mu_lower_bound: the largest mu whose mu-Gaussian-DP claim the same guesses reject.
        claimed_mu: the mu of a Gaussian mechanism with the accountant's epsilon at `delta`, to compare
            with `gaussian_dp_mu_lower_bound`.
        gaussian_dp_estimate: the Gaussian-DP estimate of mu with its confidence interval (all iterates;
            canaries as independent trials; the best score, each at alpha / number of scores).
        last_iterate: the same from the "sum" score alone, at alpha: what an auditor of the final
            parameters only can show.
        independent_trials_lower_bound: the Clopper-Pearson bound over canaries as independent trials.
        trials_score: the score behind it.
        num_flagged: the canaries it flagged as included.
        true_positives: how many of them were.
        auc: each score's ROC AUC for telling included from excluded canaries.
        seconds: wall time of the mechanism's run and the scoring.
    """

    epsilon: float
    delta: float
    alpha: float
    noise_multiplier: float
    sampling_probability: float
    steps: int
    num_canaries: int
    canary_variables: int
    num_included: int
    one_run_canaries: int
    epsilon_lower_bound: float
    one_run_score: str
    num_guesses: int
    num_correct: int
    fdp_epsilon_lower_bound: float
    fdp_noise_multiplier: float | None
    fdp_score: str
    fdp_guesses: int
    fdp_correct: int
    gaussian_dp_mu_lower_bound: float
    claimed_mu: float
    gaussian_dp_estimate: GaussianDPEstimate
    last_iterate: GaussianDPEstimate
    independent_trials_lower_bound: float
    trials_score: str
    num_flagged: int
    true_positives: int
    auc: dict
    seconds: float

    @property
    def exceeds_accountant(self) -> bool:
        """True when the one-run bound is above the accountant's epsilon: the mechanism is not DP as claimed."""
        return self.epsilon_lower_bound > self.epsilon

    @property
    def fdp_exceeds_accountant(self) -> bool:
        """True when the f-DP bound refutes the accountant's own curve (a noise multiplier below sigma)."""
        return self.fdp_noise_multiplier is not None and self.fdp_noise_multiplier < self.noise_multiplier

    @property
    def gaussian_dp_exceeds_accountant(self) -> bool:
        """True when the Gaussian-DP estimate's epsilon (lower end of mu) is above the accountant's epsilon."""
        return self.gaussian_dp_estimate.epsilon_lower > self.epsilon

    @property
    def trials_exceed_accountant(self) -> bool:
        """True when the independent-trials bound is above the accountant's epsilon."""
        return self.independent_trials_lower_bound > self.epsilon

    def summary(self) -> str:
        """A few readable lines: the accountant's epsilon, both lower bounds and their guesses."""
        lines = [
            f"white-box Dirac-canary audit: sigma={self.noise_multiplier:.4g}, q={self.sampling_probability:.4g}, "
            f"T={self.steps}, canaries spanning {self.canary_variables} variable(s); accountant epsilon "
            f"{self.epsilon:.3f} at delta={self.delta:g}",
            f"  one-run lower bound {self.epsilon_lower_bound:.3f} (confidence {1 - self.alpha:.0%}): "
            f"{self.num_correct}/{self.num_guesses} correct guesses over {self.one_run_canaries} canaries "
            f"({self.one_run_score})",
            f"  f-DP one-run lower bound {self.fdp_epsilon_lower_bound:.3f} (all iterates, against the accountant's "
            f"DP-SGD curve; refutes noise multiplier {self.fdp_noise_multiplier or math.inf:.4g} against "
            f"{self.noise_multiplier:.4g}):"
            f" {self.fdp_correct}/{self.fdp_guesses} correct over {self.num_canaries} canaries ({self.fdp_score}); "
            f"same guesses against Gaussian DP: mu >= {self.gaussian_dp_mu_lower_bound:.3f} (claimed "
            f"{self.claimed_mu:.3f})",
            f"  Gaussian-DP estimate (all iterates, independent trials): {self.gaussian_dp_estimate.describe()}",
            f"  last iterate only: {self.last_iterate.describe()}",
            f"  independent-trials lower bound {self.independent_trials_lower_bound:.3f}: "
            f"{self.true_positives}/{self.num_flagged} flagged canaries included, {self.num_included} of "
            f"{self.num_canaries} included ({self.trials_score})",
            "  AUC " + ", ".join(f"{name} {auc:.3f}" for name, auc in self.auc.items()),
        ]
        if self.exceeds_accountant:
            lines.append("  WARNING: the one-run lower bound exceeds the accountant's epsilon: the mechanism is "
                         "not DP as claimed")
        if self.fdp_exceeds_accountant:
            lines.append("  WARNING: the f-DP one-run bound refutes the accountant's own privacy curve: the mechanism "
                         "is not DP as claimed")
        if self.gaussian_dp_exceeds_accountant:
            lines.append("  WARNING: the Gaussian-DP estimate's lower bound exceeds the accountant's epsilon: the "
                         "mechanism is not the DP-SGD mechanism it claims to be")
        if self.trials_exceed_accountant:
            lines.append("  WARNING: the independent-trials lower bound exceeds the accountant's epsilon: the "
                         "mechanism is not the DP-SGD mechanism it claims to be")
        return "\n".join(lines)


def _planned_estimate(simulated, simulated_included, all_scores, is_included, *, name, delta, alpha):
    # The Gaussian-DP estimate of one score, flagging the fraction planned on its simulated scores.
    counted = is_included[calibration_size(is_included.size, CALIBRATION_FRACTION):]
    fraction = plan_gaussian_dp_fraction(simulated[name], simulated_included, alpha=alpha,
                                         num_positives=int(counted.sum()), num_negatives=int((~counted).sum()))
    return gaussian_dp_estimate(all_scores[name], is_included, flag_fraction=fraction, delta=delta, alpha=alpha,
                                score=name)


def _check_integer(name, value, *, low, high=math.inf):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _check_arguments(*, num_canaries, one_run_canaries, canary_variables, noise_multiplier, sampling_probability,
                     steps, l2_norm_clip, delta, alpha, mechanism, sampling_seed):
    _check_integer("num_canaries", num_canaries, low=2)
    _check_integer("canary_variables", canary_variables, low=1)
    if one_run_canaries is not None:
        _check_integer("one_run_canaries", one_run_canaries, low=2, high=num_canaries)
    _check_integer("steps", steps, low=1)
    if not (isinstance(noise_multiplier, (int, float)) and 0 < noise_multiplier < math.inf):
        raise ValueError(f"noise_multiplier must be a finite number > 0, got {noise_multiplier!r}")
    if not (isinstance(sampling_probability, (int, float)) and 0 < sampling_probability <= 1):
        raise ValueError(f"sampling_probability must be in (0, 1], got {sampling_probability!r}")
    if not (isinstance(l2_norm_clip, (int, float)) and 0 < l2_norm_clip < math.inf):
        raise ValueError(f"l2_norm_clip must be a finite number > 0, got {l2_norm_clip!r}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if sampling_seed is not None:
        _check_integer("sampling_seed", sampling_seed, low=0, high=2**63 - 1)
    if not callable(mechanism):
        raise ValueError(f"mechanism must be a callable with private_gradients' signature, got {mechanism!r}")


def _check_background(background):
    if background is None:
        return None
    background = np.asarray(background, dtype=np.float32)
    if background.ndim != 2 or len(background) == 0 or not np.all(np.isfinite(background)):
        raise ValueError(
            f"background must be None or a finite 2-D array (examples, features) with at least one row, got "
            f"shape {background.shape}"
        )
    return background


def run_whitebox_audit(
    *,
    noise_multiplier: float,
    sampling_probability: float,
    steps: int,
    delta: float,
    num_canaries: int,
    one_run_canaries: int | None = None,
    canary_variables: int = 1,
    l2_norm_clip: float = 1.0,
    background=None,
    alpha: float = 0.05,
    scores=DEFAULT_SCORES,
    flag_fractions=DEFAULT_FLAG_FRACTIONS,
    mechanism=private_gradients,
    seed=None,
    sampling_seed=None,
) -> WhiteboxAuditResult:
    """Audits a DP-SGD mechanism in one run with m Dirac canaries, each included with probability 1/2.

    For the one-run bound, each score has two candidates, each tested at alpha / (2 x number of scores):
    the numbers of top and bottom guesses planned (`plan_one_run_guesses`) on scores simulated from the
    claimed mechanism with the same sigma, q, T and number of canaries, and a guess for every canary.
    For the f-DP bound, each score has two candidates: the guesses planned
    (`privgan.audit.fdp.plan_fdp_guesses`) on the same simulation for that bound, tested at
    0.9 alpha / (number of scores), and "included" for the top and "excluded" for the bottom
    `BROKEN_FRACTIONS` of the scores sharing 0.1 alpha / (number of scores), for clearly broken mechanisms.
    For the independent-trials bound, every (score, number of flagged canaries) pair is a candidate
    with its share of alpha. The best of either is a valid bound at significance alpha.

    Args:
        noise_multiplier: sigma of the audited run, > 0.
        sampling_probability: q of the audited run, in (0, 1].
        steps: T of the audited run, >= 1.
        delta: the delta of the accountant's epsilon and of the bounds, in (0, 1).
        num_canaries: m, >= 2 (10^4-10^5 for a meaningful bound at delta = 1e-5).
        one_run_canaries: how many canaries (the first ones) the one-run bound uses, in [2, m]; None:
            all. Around 10^4 is best at delta = 1e-5, as its delta term grows with m.
        canary_variables: L >= 1, how many variables (separate layers) each canary's gradient spans, with
            equal norm in each. For a correct mechanism the audit is the same for every L; a mechanism
            that clips each variable's part separately (sensitivity sqrt(L) C) shows only with L > 1, more
            clearly the larger L. The mechanism's work grows with m x L.
        l2_norm_clip: the clipping bound C, > 0.
        background: None, or an array (n, d) of background examples' gradients (see `dirac`).
        alpha: significance of each bound, in (0, 1).
        scores: names from `privgan.audit.dirac.SCORES` to try.
        flag_fractions: fractions of the canaries to flag (see `independent_trials_bound`).
        mechanism: a callable with the signature of `privgan.dp.private_gradients`, the default; inject
            a different one to audit it (e.g. one of `privgan.audit.faults`).
        seed: seed of the canaries' inclusion and of the simulation that plans the guesses (None: fresh).
            It never seeds the mechanism: the noise is the mechanism's own, and the Poisson sampling is
            secret unless `sampling_seed` is given.
        sampling_seed: None (the default: secret Poisson sampling from operating-system entropy, as the
            accountant's epsilon assumes and as in training), or an int seed of the sampling, for
            reproducing batches in research; the claimed epsilon does not hold against anyone who knows it.

    Returns:
        A `WhiteboxAuditResult`.

    Raises:
        ValueError: if an argument is out of range.
    """
    _check_arguments(
        num_canaries=num_canaries, one_run_canaries=one_run_canaries, canary_variables=canary_variables,
        noise_multiplier=noise_multiplier,
        sampling_probability=sampling_probability, steps=steps, l2_norm_clip=l2_norm_clip, delta=delta,
        alpha=alpha, mechanism=mechanism, sampling_seed=sampling_seed,
    )
    scores = check_scores(scores)
    background = _check_background(background)
    one_run_canaries = num_canaries if one_run_canaries is None else one_run_canaries
    claimed = accountant_epsilon(
        noise_multiplier=noise_multiplier, sampling_probability=sampling_probability, steps=steps, delta=delta
    )

    rng = np.random.default_rng(seed)
    is_included = rng.random(num_canaries) < 0.5
    if not 0 < is_included[:one_run_canaries].sum() < one_run_canaries:
        raise ValueError(f"num_canaries={num_canaries} (one_run_canaries={one_run_canaries}) drew canaries all "
                         "included or all excluded; use more canaries")
    start = time.perf_counter()
    all_scores = dirac_canary_scores(
        is_included=is_included,
        noise_multiplier=noise_multiplier,
        sampling_probability=sampling_probability,
        steps=steps,
        l2_norm_clip=l2_norm_clip,
        canary_variables=canary_variables,
        background=background,
        mechanism=mechanism,
        sampling_seed=sampling_seed,
    )
    seconds = time.perf_counter() - start

    # The one-run guesses and the Gaussian-DP thresholds are planned on a simulation of the claimed
    # mechanism (public sigma, q, T and fresh randomness), so choosing them costs no confidence. Guessing
    # every canary is the other one-run candidate: best when the scores separate perfectly, as they do
    # for a grossly broken mechanism.
    simulated_included = rng.random(num_canaries) < 0.5
    simulated = simulated_canary_scores(
        is_included=simulated_included, noise_multiplier=noise_multiplier,
        sampling_probability=sampling_probability, steps=steps, seed=int(rng.integers(2**62)),
    )
    one_run_alpha = alpha / (2 * len(scores))
    # The f-DP bound's candidates per score: its planned guesses, with most of alpha, and the top and
    # bottom BROKEN_FRACTIONS of the canaries, sharing a tenth of alpha. Even all right, the planned
    # guesses (~1.5% of the canaries at the MNIST schedule) cannot refute the accountant's curve, and
    # guessing every canary refutes little (the one-run analysis allows any dependence between
    # canaries); a broken mechanism whose scores separate clearly gets thousands of extreme canaries
    # right, which a small share of alpha hardly weakens (weighted Bonferroni).
    fdp_shares = (0.9, *[0.1 / len(BROKEN_FRACTIONS)] * len(BROKEN_FRACTIONS))
    fdp_alphas = [share * alpha / len(scores) for share in fdp_shares]
    schedule = {"sampling_probability": sampling_probability, "steps": steps}
    one_run, fdp, estimates, trials, auc = [], [], [], [], {}
    for name in scores:
        # Steinke's bound on the first one_run_canaries (its 2 m delta term).
        planned = plan_one_run_guesses(
            simulated[name][:one_run_canaries], simulated_included[:one_run_canaries], delta=delta,
            alpha=one_run_alpha,
        )
        for num_top, num_bottom in (planned, (one_run_canaries // 2, one_run_canaries - one_run_canaries // 2)):
            guesses, correct = one_run_guess_outcome(
                all_scores[name][:one_run_canaries], is_included[:one_run_canaries], num_top=num_top,
                num_bottom=num_bottom,
            )
            bound = epsilon_lower_bound_one_run(
                num_canaries=one_run_canaries, num_guesses=guesses, num_correct=correct, delta=delta,
                alpha=one_run_alpha,
            )
            one_run.append((bound, name, guesses, correct))
        # The f-DP bound on all the canaries.
        # The likelihood-ratio score is the exact log-likelihood ratio of the simulated mechanism.
        planned = plan_fdp_guesses(simulated[name], simulated_included, alpha=fdp_alphas[0],
                                   start_noise_multiplier=noise_multiplier, calibrated=name == "likelihood_ratio",
                                   **schedule)
        extremes = [(round(fraction * num_canaries),) * 2 for fraction in BROKEN_FRACTIONS]
        for (num_top, num_bottom), share in zip((planned, *extremes), fdp_alphas):
            fdp.append((name, *one_run_guess_outcome(all_scores[name], is_included, num_top=num_top,
                                                     num_bottom=num_bottom), share))
        estimates.append(_planned_estimate(simulated, simulated_included, all_scores, is_included, name=name,
                                           delta=delta, alpha=alpha / len(scores)))
        trials.append((*independent_trials_bound(
            all_scores[name], is_included, delta=delta, alpha=alpha / len(scores), flag_fractions=flag_fractions
        ), name))
        auc[name] = evaluate_attack(all_scores[name], is_included, attack=name).auc
    bound, one_run_score, guesses, correct = max(one_run, key=lambda candidate: candidate[0])
    fdp_bound = dp_sgd_curve_bound([candidate[1:3] for candidate in fdp], num_canaries=num_canaries,
                                   alpha=[candidate[3] for candidate in fdp], start_noise_multiplier=noise_multiplier,
                                   **schedule)
    fdp_score, fdp_guesses, fdp_correct, fdp_alpha = fdp[max(fdp_bound.candidate, 0)]
    gaussian_mu, _ = gaussian_dp_lower_bound_one_run(
        num_canaries=num_canaries, num_guesses=fdp_guesses, num_correct=fdp_correct, delta=delta, alpha=fdp_alpha
    )
    estimate = max(estimates, key=lambda candidate: candidate.mu_lower)
    # A separate statement at its own alpha: what the final parameters alone show.
    last_iterate = _planned_estimate(simulated, simulated_included, all_scores, is_included, name="sum",
                                     delta=delta, alpha=alpha)
    trials_bound, flagged, true_positives, trials_score = max(trials, key=lambda candidate: candidate[0])
    return WhiteboxAuditResult(
        epsilon=float(claimed),
        delta=delta,
        alpha=alpha,
        noise_multiplier=float(noise_multiplier),
        sampling_probability=float(sampling_probability),
        steps=int(steps),
        num_canaries=int(num_canaries),
        canary_variables=int(canary_variables),
        num_included=int(is_included.sum()),
        one_run_canaries=int(one_run_canaries),
        epsilon_lower_bound=float(bound),
        one_run_score=one_run_score,
        num_guesses=int(guesses),
        num_correct=int(correct),
        fdp_epsilon_lower_bound=fdp_bound.epsilon(delta=delta, **schedule),
        fdp_noise_multiplier=None if math.isinf(fdp_bound.noise_multiplier) else fdp_bound.noise_multiplier,
        fdp_score=fdp_score,
        fdp_guesses=int(fdp_guesses),
        fdp_correct=int(fdp_correct),
        gaussian_dp_mu_lower_bound=gaussian_mu,
        claimed_mu=float(1 / dp_accounting.get_sigma_gaussian(claimed, delta)),
        gaussian_dp_estimate=estimate,
        last_iterate=last_iterate,
        independent_trials_lower_bound=float(trials_bound),
        trials_score=trials_score,
        num_flagged=int(flagged),
        true_positives=int(true_positives),
        auc=auc,
        seconds=round(seconds, 2),
    )

