"""A registry of table engines: how `privgan-synthesize --method=NAME` builds, fits and describes a synthesizer.

Each engine is a `TableEngine`: a factory `factory(schema, *, seed, accountant, options)` returning an
unfitted synthesizer (with `fit(df, *, epsilon, delta)`, `sample(n, conditions=...)`, `save(csv_path,
rows=..., conditions=...)` and `privacy_statement()`), what it accepts (conditions, accountants, options of
its own) and how the console describes its statement. The built-in ones are "aim" and "mst"
(`MarginalDPSynthesizer`) and "gan" (`TabularDPSynthesizer`). Add one with `register_engine`:

    register_engine("my_engine", lambda schema, *, seed, accountant, options: MySynthesizer(schema, seed=seed),
                    description="...", accountants=("rdp",))

Importing this module loads no machine-learning library: factories import what they need when called.
"""

import dataclasses
import warnings
from collections.abc import Callable

ACCOUNTANTS = ("pld", "rdp")
GAN_OPTIONS = ("epochs", "batch_size", "learning_rate", "sampling_seed", "l2_norm_clip")
# Below this epsilon x (noisy) rows the DPGAN fell far behind AIM in the tabular benchmark
# (docs/results/tabular_peers.md: TSTR AUROC LR 0.718 against 0.892 on Adult at epsilon = 1, about 32,000;
# 0.53-0.69 against 0.80-0.87 on its 1,000-row sample at epsilon 1 to 8).
GAN_MIN_EPSILON_ROWS = 50_000


@dataclasses.dataclass(frozen=True)
class TableEngine:
    """A way to synthesise a table, as `privgan-synthesize --method` knows it.

    Attributes:
        name: the `--method` value.
        factory: `factory(schema, *, seed, accountant, options)` -> an unfitted synthesizer; `options` is a
            dict of the engine's own options (those in `options`) that were given.
        description: one line for `--help`.
        conditional: whether `sample` takes conditions (`--condition`).
        accountants: the accountants it can use; the first is the default.
        options: names of the command's options that only this engine takes (e.g. "epochs").
        fit: `fit(synthesizer, df, *, epsilon, delta, report)` (report: a function printing a line to the
            console); None: `synthesizer.fit(df, epsilon=epsilon, delta=delta)`.
        details: statement dict -> a short description for the console ("12 noisy marginals ..."); None: none.
    """

    name: str
    factory: Callable
    description: str
    conditional: bool = False
    accountants: tuple = ACCOUNTANTS
    options: tuple = ()
    fit: Callable | None = None
    details: Callable | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"an engine's name must be an identifier such as 'aim', got {self.name!r}")
        if not callable(self.factory):
            raise ValueError(f"engine {self.name!r}: factory must be callable, got {self.factory!r}")
        accountants = tuple(self.accountants)
        if not accountants or any(a not in ACCOUNTANTS for a in accountants):
            raise ValueError(f"engine {self.name!r}: accountants must be some of {ACCOUNTANTS}, got {accountants}")
        object.__setattr__(self, "accountants", accountants)
        object.__setattr__(self, "options", tuple(self.options))

    def build(self, schema, *, seed=None, accountant=None, options=None):
        """An unfitted synthesizer for `schema`.

        Raises:
            ValueError: if the accountant or an option is not one this engine takes.
        """
        options = {key: value for key, value in (options or {}).items() if value is not None}
        foreign = sorted(set(options) - set(self.options))
        if foreign:
            raise ValueError(f"{', '.join('--' + o for o in foreign)} only apply to --method="
                             f"{'/'.join(e for e in engine_names() if set(foreign) <= set(engine(e).options)) or '?'}"
                             f", not --method={self.name}")
        accountant = accountant or self.accountants[0]
        if accountant not in self.accountants:
            raise ValueError(f"--method={self.name} takes --accountant={'/'.join(self.accountants)}, not {accountant}")
        return self.factory(schema, seed=seed, accountant=accountant, options=options)

    def fit_synthesizer(self, synthesizer, df, *, epsilon, delta, report=print):
        """Fits `synthesizer` (from `build`) to the private table `df`; returns it."""
        if self.fit is None:
            synthesizer.fit(df, epsilon=epsilon, delta=delta)
        else:
            self.fit(synthesizer, df, epsilon=epsilon, delta=delta, report=report)
        return synthesizer


_ENGINES = {}


def register_engine(name, factory, *, description, conditional=False, accountants=ACCOUNTANTS, options=(), fit=None,
                    details=None, replace=False):
    """Adds an engine to the registry (see `TableEngine` for the arguments); returns it.

    Raises:
        ValueError: if `name` is taken (unless `replace`) or an argument is invalid.
    """
    if name in _ENGINES and not replace:
        raise ValueError(f"an engine named {name!r} is registered already (pass replace=True to replace it)")
    entry = TableEngine(name, factory, description, conditional=conditional, accountants=accountants,
                        options=options, fit=fit, details=details)
    _ENGINES[name] = entry
    return entry


def engine(name):
    """The registered engine `name`.

    Raises:
        ValueError: naming the registered engines, if there is none of that name.
    """
    if name not in _ENGINES:
        raise ValueError(f"unknown engine {name!r}; the registered ones are {engine_names()}")
    return _ENGINES[name]


def engine_names():
    """The registered engines' names, in order of registration."""
    return list(_ENGINES)


def gan_budget_warning(epsilon, rows):
    """The warning text when epsilon x rows is too small for the DPGAN, else None."""
    if epsilon * rows >= GAN_MIN_EPSILON_ROWS:
        return None
    return (
        f"--method=gan: epsilon x rows = {epsilon:g} x {rows} (noisy count) = {epsilon * rows:,.0f} is below "
        f"{GAN_MIN_EPSILON_ROWS:,}, where the DPGAN fell far behind AIM in the tabular benchmark (e.g. TSTR AUROC "
        "0.53-0.69 against 0.80-0.87 on a 1,000-row sample of Adult at epsilon 1 to 8): its noise drowns what "
        "so few rows can teach it. Prefer --method=aim (the default) on this table"
    )


def _marginal(method):
    def factory(schema, *, seed, accountant, options):
        from privgan.tabular.marginal import MarginalDPSynthesizer

        return MarginalDPSynthesizer(schema, method=method, seed=seed)

    return factory


def _marginal_details(statement):
    return f"{statement['measurements']} noisy marginals, {statement['selections']} selections ({statement['method']})"


def _gan(schema, *, seed, accountant, options):
    from privgan.tabular.synthesizer import TabularDPSynthesizer

    options = dict(options)
    return TabularDPSynthesizer(schema, l2_norm_clip=options.pop("l2_norm_clip", 1.0), accountant=accountant,
                                seed=seed, **options)


def _gan_fit(synthesizer, df, *, epsilon, delta, report):
    import keras

    def begin(logs):  # after the noisy row count, which sizes the training, before the first step
        message = gan_budget_warning(epsilon, synthesizer.num_rows_estimate_)
        if message:
            warnings.warn(message, UserWarning, stacklevel=2)

    def epoch_end(epoch, logs):  # the epsilon spent, in place of Keras' lines (losses are private statistics)
        spent = synthesizer.gan_.privacy_spent(delta=synthesizer.delta_, accountant=synthesizer.accountant)
        report(f"epoch {epoch + 1}/{synthesizer.settings_.epochs}: epsilon = {spent:.4f} at delta = "
               f"{synthesizer.delta_:g}")

    callback = keras.callbacks.LambdaCallback(on_train_begin=begin, on_epoch_end=epoch_end)
    synthesizer.fit(df, epsilon=epsilon, delta=delta, verbose=0, callbacks=[callback])


def _gan_details(statement):
    return (
        f"a noisy row count, {statement['d_steps']} discriminator steps, noise multiplier "
        f"{statement['noise_multiplier']:.4f} (batch {statement['settings']['batch_size']}, "
        f"{statement['settings']['epochs']} epochs)"
    )


register_engine("aim", _marginal("aim"), conditional=True, accountants=("rdp",), details=_marginal_details,
                description="AIM: adaptive noisy marginals on a graphical model (the default)")
register_engine("mst", _marginal("mst"), conditional=True, accountants=("rdp",), details=_marginal_details,
                description="MST: a maximum spanning tree of noisy pair marginals (fast)")
register_engine("gan", _gan, accountants=("pld", "rdp"), options=GAN_OPTIONS, fit=_gan_fit, details=_gan_details,
                description="a DPGAN trained with DP-SGD (needs many rows per unit of epsilon)")
