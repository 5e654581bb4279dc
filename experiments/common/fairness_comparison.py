"""Side-by-side comparisons of fairness methods on one split: ours against fairlearn's, several seeds.

A `Method` is a name, the parameter its trade-off curve sweeps (a tolerance, a bound, alpha) and a function
that fits on the training split and predicts the test split. `compare` runs every method at every value
and seed on the same split and returns one row per run (accuracy, equalized-odds and demographic-parity
differences, wall time); `summarize` gives mean and standard deviation over seeds, the input of
`experiments.common.fairness_trade_off.plot_method_curves` and `method_table`.

The peers are fairlearn's (already a dependency): `ExponentiatedGradient` over a logistic regression with
`EqualizedOdds`/`DemographicParity` bounds, `ThresholdOptimizer` (which, unlike the others, reads the
sensitive attribute at prediction time), and `AdversarialFairnessClassifier`, on its TensorFlow backend
(or PyTorch's, an optional extra). fairlearn is given float64 features and NumPy group labels: with
float32 features its `ThresholdOptimizer` fails under pandas 3.

Representations are compared the same way by `compare_representations`: leakage of the sensitive attribute
from the test representation (fresh probes, `fairness.metrics.leakage`) against the accuracy of a fresh
logistic regression trained on the training representation.
"""

import dataclasses
import time
from typing import Callable

import keras
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression

from fairness.adversarial import build_mlp, check_training_parameters, seed_keras, validate_predict_inputs
from fairness.metrics import fairness_report, leakage

METRICS = ("accuracy", "equalized_odds_difference", "demographic_parity_difference", "wall_time_seconds")
REPRESENTATION_METRICS = ("leakage_balanced_accuracy", "downstream_accuracy", "wall_time_seconds")


@dataclasses.dataclass(frozen=True)
class Method:
    """One method of a comparison and the parameter its curve sweeps.

    Attributes:
        name: shown in tables and legends.
        parameter: name of the swept parameter ("tolerance", "difference_bound", "alpha", ...).
        values: the values swept (one point of the curve each); `(None,)` for a single point.
        fit_predict: `(value, seed, train, test, sensitive) -> (predictions, extra)`: fits on the training
            `FairnessDataset` and returns the test predictions and a dict of extra results (may be empty);
            `sensitive` names the column of `train.sensitive`/`test.sensitive`.
        seeded_fit: False when the fit does not depend on the seed (a logistic regression solved
            exactly, as inside fairlearn's reductions): `fit_predict` is then called with
            `seed=None` to fit, and returns a `predict(seed)` callable instead of the predictions, so the
            model is fitted once per value and only its randomized predictions are drawn per seed.
        attribute_at_prediction: whether the predictions read the test rows' sensitive attribute (the
            post-processing regime; shown on its own Pareto front).
    """

    name: str
    parameter: str
    values: tuple
    fit_predict: Callable
    seeded_fit: bool = True
    attribute_at_prediction: bool = False


def _groups(dataset, sensitive):
    return dataset.sensitive[sensitive].astype(str).to_numpy()


def compare(methods, train, test, *, sensitive, seeds, log=print):
    """Runs every method at every swept value and seed on one split.

    Args:
        methods: `Method`s.
        train: training `FairnessDataset` (methods carve their own validation splits from it).
        test: test `FairnessDataset`, used only to score the predictions.
        sensitive: the column of `.sensitive` that is the sensitive attribute.
        seeds: integer seeds.
        log: called with one line per run (None for silence).

    Returns:
        One dict per run: method, parameter, value, seed, the `METRICS` and the method's extra results.
    """
    rows = []
    test_groups = _groups(test, sensitive)
    for method in methods:
        for value in method.values:
            if not method.seeded_fit:
                start = time.perf_counter()
                predict, extra = method.fit_predict(value, None, train, test, sensitive)
                fit_time = time.perf_counter() - start
            for seed in seeds:
                start = time.perf_counter()
                if method.seeded_fit:
                    predictions, extra = method.fit_predict(value, seed, train, test, sensitive)
                    wall_time = time.perf_counter() - start
                else:
                    predictions = predict(seed)
                    wall_time = fit_time + time.perf_counter() - start
                report = fairness_report(test.labels, np.asarray(predictions), sensitive_features=test_groups)
                row = {
                    "method": method.name,
                    "parameter": method.parameter,
                    "value": value,
                    "seed": seed,
                    "accuracy": report.accuracy,
                    "equalized_odds_difference": report.equalized_odds_difference,
                    "demographic_parity_difference": report.demographic_parity_difference,
                    "wall_time_seconds": wall_time,
                    **extra,
                }
                rows.append(row)
                if log is not None:
                    log(_format_run(row, ("accuracy", "equalized_odds_difference", "demographic_parity_difference")))
    return rows


def _format_run(row, keys):
    value = "" if row["value"] is None else f" {row['parameter']}={row['value']:g}"
    metrics = " ".join(f"{key} {row[key]:.4f}" for key in keys)
    return f"{row['method']}{value} seed {row['seed']}: {metrics} ({row['wall_time_seconds']:.1f} s)"


def summarize(rows, *, metrics=METRICS):
    """Mean and standard deviation over seeds of each (method, value).

    Args:
        rows: the rows of `compare` or `compare_representations`.
        metrics: the keys to aggregate (extra numeric keys present in every row of a group are added).

    Returns:
        One dict per (method, value), in first-seen order: method, parameter, value, seeds, and
        `<metric>` (mean) and `<metric>_std` (population standard deviation over seeds) for each metric.
    """
    groups = {}
    for row in rows:
        groups.setdefault((row["method"], row["value"]), []).append(row)
    summary = []
    for (method, value), group in groups.items():
        keys = list(metrics) + sorted(
            key
            for key in set(group[0]).difference(metrics, ("method", "parameter", "value", "seed"))
            if all(isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool) for row in group)
        )
        entry = {"method": method, "parameter": group[0]["parameter"], "value": value, "seeds": len(group)}
        for key in keys:
            values = np.array([row[key] for row in group], dtype=float)
            entry[key] = float(values.mean())
            entry[f"{key}_std"] = float(values.std())
        summary.append(entry)
    return summary


# --- classifiers -----------------------------------------------------------------------------------------


def logistic_regression():
    """Plain logistic regression: the reference point of fairlearn's reductions."""

    def fit_predict(value, seed, train, test, sensitive):
        model = LogisticRegression(max_iter=1000).fit(train.features, train.labels)
        return (lambda seed: model.predict(test.features)), {}

    return Method("logistic regression (unconstrained)", "none", (None,), fit_predict, seeded_fit=False)


def adversarial_debiasing(
    *, constraint, tolerances, name=None, with_attribute=False, fits=None, swept="tolerance", **params
):
    """`fairness.AdversarialDebiasing` with `tolerance` swept (None: the unconstrained network, debias=False).

    Args:
        constraint: the estimator's constraint.
        tolerances: the swept tolerances; None in the list gives the network trained without adversary.
        name: shown name; by default "AdversarialDebiasing (<constraint>)", plus "+ group thresholds" with
            `with_attribute`.
        with_attribute: predict with the test rows' sensitive attribute (`predict(X, sensitive_features=s)`,
            randomised with the run's seed) instead of the features only.
        fits: a dict shared between Methods to fit each (constraint, tolerance, seed, params) once: the
            two regimes of one fit then cost one training.
        swept: the estimator parameter `tolerances` sweeps: "tolerance", or "postprocess_tolerance" (the
            group thresholds' tolerance; `tolerance` then comes fixed in `params`).
        **params: further estimator parameters (epochs, batch_size, ...).

    Returns:
        A `Method` whose extra results are the measured constraint violation and the selected adversary weight.
    """
    from fairness.debiasing import AdversarialDebiasing

    fits = {} if fits is None else fits

    if swept not in ("tolerance", "postprocess_tolerance"):
        raise ValueError(f"swept must be 'tolerance' or 'postprocess_tolerance', got {swept!r}")

    def fit_predict(value, seed, train, test, sensitive):
        settings = {**params, swept: value}
        key = (constraint, seed, id(train), sensitive, tuple(sorted(settings.items())))
        if key not in fits:
            debias = settings.get("tolerance") is not None or "adversary_weight" in settings
            model = AdversarialDebiasing(constraint=constraint, debias=debias, random_state=seed, **settings)
            start = time.perf_counter()
            model.fit(train.features, train.labels, sensitive_features=_groups(train, sensitive))
            fits[key] = (model, time.perf_counter() - start)
        model, fit_seconds = fits[key]
        extra = {"adversary_weight": model.adversary_weight_, "fit_seconds": fit_seconds}
        if model.constraint_violation_ is not None:
            extra["constraint_violation"] = model.constraint_violation_
        if with_attribute:
            return model.predict(test.features, sensitive_features=_groups(test, sensitive), random_state=seed), extra
        return model.predict(test.features), extra

    name = name or f"AdversarialDebiasing ({constraint})" + (" + group thresholds" if with_attribute else "")
    return Method(name, swept, tuple(tolerances), fit_predict, attribute_at_prediction=with_attribute)


def exponentiated_gradient(*, constraint, bounds, name=None):
    """fairlearn's `ExponentiatedGradient` over a logistic regression, `difference_bound` swept.

    Args:
        constraint: "equalized_odds" or "demographic_parity".
        bounds: the swept `difference_bound`s.
        name: shown name.

    Returns:
        A `Method`; predictions are drawn from the randomized classifier with the run's seed.
    """
    from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient

    moments = {"equalized_odds": EqualizedOdds, "demographic_parity": DemographicParity}

    def fit_predict(bound, seed, train, test, sensitive):
        model = ExponentiatedGradient(LogisticRegression(max_iter=1000), moments[constraint](difference_bound=bound))
        model.fit(train.features.astype(np.float64), train.labels, sensitive_features=_groups(train, sensitive))
        test_features = test.features.astype(np.float64)
        return (lambda seed: model.predict(test_features, random_state=seed)), {}

    name = name or f"ExponentiatedGradient ({constraint})"
    return Method(name, "difference_bound", tuple(bounds), fit_predict, seeded_fit=False)


def threshold_optimizer(*, constraint, tolerances=(None,), name=None):
    """fairlearn's `ThresholdOptimizer` on a logistic regression; it uses the sensitive attribute to predict.

    Args:
        constraint: fairlearn's constraint name ("equalized_odds" cannot be relaxed: one point).
        tolerances: the swept `tol` (None: the exact constraint).
        name: shown name.

    Returns:
        A `Method`; predictions are randomized with the run's seed.
    """
    from fairlearn.postprocessing import ThresholdOptimizer

    def fit_predict(tol, seed, train, test, sensitive):
        model = ThresholdOptimizer(
            estimator=LogisticRegression(max_iter=1000), constraints=constraint, predict_method="predict_proba", tol=tol
        )
        model.fit(train.features.astype(np.float64), train.labels, sensitive_features=_groups(train, sensitive))
        test_features, test_groups = test.features.astype(np.float64), _groups(test, sensitive)

        def predict(seed):
            return model.predict(test_features, sensitive_features=test_groups, random_state=seed)

        return predict, {}

    name = name or f"ThresholdOptimizer ({constraint})"
    return Method(name, "tol", tuple(tolerances), fit_predict, seeded_fit=False, attribute_at_prediction=True)


def fairlearn_adversarial(*, constraint, alphas, backend="tensorflow", epochs=10, batch_size=256, name=None):
    """fairlearn's `AdversarialFairnessClassifier` (Zhang et al. 2018 as fairlearn ships it), alpha swept.

    Args:
        constraint: "equalized_odds" or "demographic_parity".
        alphas: the swept `alpha`s.
        backend: "tensorflow" (always installed here) or "torch" (an optional extra).
        epochs: training epochs.
        batch_size: batch size.
        name: shown name.

    Returns:
        A `Method`, or None when the backend is not installed.
    """
    try:
        __import__("torch" if backend == "torch" else "tensorflow")
    except ImportError:
        return None
    from fairlearn.adversarial import AdversarialFairnessClassifier

    def fit_predict(alpha, seed, train, test, sensitive):
        model = AdversarialFairnessClassifier(
            backend=backend,
            predictor_model=[64, "relu"],  # the hidden layer of our default predictor
            adversary_model=[],
            constraints=constraint,
            alpha=alpha,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            random_state=seed,
        )
        model.fit(train.features.astype(np.float64), train.labels, sensitive_features=_groups(train, sensitive))
        return model.predict(test.features.astype(np.float64)), {}

    name = name or f"fairlearn AdversarialFairnessClassifier ({constraint})"
    return Method(name, "alpha", tuple(alphas), fit_predict)


# --- representations -------------------------------------------------------------------------------------


class AutoencoderRepresentation(TransformerMixin, BaseEstimator):
    """A plain autoencoder's code: the representation learnt without any label or sensitive attribute.

    The encoder has the architecture of `FairRepresentation`'s (dense layers, a tanh code); the decoder
    mirrors it; the loss is the mean squared reconstruction error.

    Args:
        representation_dim: size of the code.
        hidden_units: hidden layer sizes of the encoder (reversed in the decoder).
        epochs: passes over the data.
        batch_size: examples per step.
        learning_rate: Adam learning rate.
        random_state: int, RandomState or None.

    Attributes:
        encoder_, decoder_: the fitted Keras models.
        n_features_in_: number of features.
    """

    def __init__(
        self, *, representation_dim=8, hidden_units=(64,), epochs=30, batch_size=128, learning_rate=1e-3,
        random_state=None,
    ):
        self.representation_dim = representation_dim
        self.hidden_units = hidden_units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state

    def fit(self, X, y=None):
        """Trains encoder and decoder to reconstruct X (y is ignored).

        Returns:
            self.
        """
        check_training_parameters(
            adversary_weight=0.0, epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate
        )
        from sklearn.utils.validation import validate_data

        X = validate_data(self, X, dtype=[np.float64, np.float32]).astype(np.float32)
        seed = seed_keras(self.random_state)
        self.encoder_ = build_mlp(
            X.shape[1], hidden_units=self.hidden_units, output_dim=self.representation_dim, seed=seed,
            output_activation="tanh", name="encoder",
        )
        self.decoder_ = build_mlp(
            self.representation_dim, hidden_units=tuple(reversed(self.hidden_units)), output_dim=X.shape[1],
            seed=seed + 100, name="decoder",
        )
        autoencoder = keras.Sequential([self.encoder_, self.decoder_])
        autoencoder.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mse")
        autoencoder.fit(X, X, epochs=self.epochs, batch_size=self.batch_size, verbose=0)
        return self

    def transform(self, X):
        """The code of X, `(n_samples, representation_dim)`."""
        X = validate_predict_inputs(self, X)
        return keras.ops.convert_to_numpy(self.encoder_(X, training=False))


@dataclasses.dataclass(frozen=True)
class RepresentationMethod:
    """One representation of a comparison and the parameter its curve sweeps.

    Attributes:
        name: shown in tables and legends.
        parameter: name of the swept parameter.
        values: the swept values; `(None,)` for a single point.
        fit_transform: `(value, seed, train, test, sensitive) -> (train_Z, test_Z, extra)`.
    """

    name: str
    parameter: str
    values: tuple
    fit_transform: Callable


def fair_representation(*, tolerances, name=None, **params):
    """`fairness.FairRepresentation` with its leakage `tolerance` swept (None: the default fixed lambda).

    Returns:
        A `RepresentationMethod` whose extra results are the validation leakage excess (`constraint_violation`)
        and lambda.
    """
    from fairness.representation import FairRepresentation

    def fit_transform(tolerance, seed, train, test, sensitive):
        model = FairRepresentation(tolerance=tolerance, random_state=seed, **params)
        model.fit(train.features, train.labels, sensitive_features=_groups(train, sensitive))
        extra = {"adversary_weight": model.adversary_weight_}
        if model.constraint_violation_ is not None:
            extra["constraint_violation"] = model.constraint_violation_
        return model.transform(train.features), model.transform(test.features), extra

    return RepresentationMethod(name or "FairRepresentation", "tolerance", tuple(tolerances), fit_transform)


def unconstrained_representation(**params):
    """`FairRepresentation` with adversary weight 0: the same networks, no pressure on Z."""
    from fairness.representation import FairRepresentation

    def fit_transform(value, seed, train, test, sensitive):
        model = FairRepresentation(adversary_weight=0.0, random_state=seed, **params)
        model.fit(train.features, train.labels, sensitive_features=_groups(train, sensitive))
        return model.transform(train.features), model.transform(test.features), {}

    return RepresentationMethod("unconstrained representation", "none", (None,), fit_transform)


def plain_autoencoder(**params):
    """`AutoencoderRepresentation`: a code learnt without labels or the sensitive attribute."""

    def fit_transform(value, seed, train, test, sensitive):
        model = AutoencoderRepresentation(random_state=seed, **params).fit(train.features)
        return model.transform(train.features), model.transform(test.features), {}

    return RepresentationMethod("plain autoencoder", "none", (None,), fit_transform)


def drop_sensitive_column():
    """The features themselves, without the sensitive column (the datasets here already leave it out)."""

    def fit_transform(value, seed, train, test, sensitive):
        return train.features, test.features, {}

    return RepresentationMethod("features without the sensitive column", "none", (None,), fit_transform)


def compare_representations(methods, train, test, *, sensitive, seeds, log=print):
    """Leakage and downstream accuracy of every representation at every swept value and seed.

    Leakage: `fairness.metrics.leakage` of the test representation (best balanced accuracy of fresh
    probes, cross-validated on the test rows). Downstream accuracy: a fresh logistic regression fitted on
    the training representation, scored on the test representation.

    Returns:
        One dict per run: method, parameter, value, seed, the `REPRESENTATION_METRICS` and extras.
    """
    rows = []
    test_groups = _groups(test, sensitive)
    for method in methods:
        for value in method.values:
            for seed in seeds:
                start = time.perf_counter()
                train_z, test_z, extra = method.fit_transform(value, seed, train, test, sensitive)
                wall_time = time.perf_counter() - start
                leaked = leakage(test_z, test_groups, random_state=seed)
                downstream = LogisticRegression(max_iter=1000).fit(train_z, train.labels).score(test_z, test.labels)
                row = {
                    "method": method.name,
                    "parameter": method.parameter,
                    "value": value,
                    "seed": seed,
                    "leakage_balanced_accuracy": leaked.max_balanced_accuracy,
                    "downstream_accuracy": float(downstream),
                    "wall_time_seconds": wall_time,
                    **extra,
                }
                rows.append(row)
                if log is not None:
                    log(_format_run(row, REPRESENTATION_METRICS[:2]))
    return rows
