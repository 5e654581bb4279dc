"""`TabularDPSynthesizer`: DP synthetic tables from a DataFrame and a public schema, with a DPGAN.

The table is encoded with the schema alone (`TableTransformer`), a `DPGAN` with the tabular generator and
discriminator is trained with the noise multiplier calibrated so that the planned discriminator steps
spend exactly the budget (epsilon, delta), and samples are decoded back to a DataFrame. `save` writes a
CSV and, beside it, a JSON privacy statement built from the model's privacy ledger.

Training length, expected batch size and learning rate adapt to the number of rows unless given
(`gan_settings`): a fixed number of discriminator steps, so that a 500-row table is trained as long as a
50,000-row one, with the sampling probability and hence sigma recalibrated for the budget.

The number of rows N is private, as in the marginal engines: a share of the budget (`count_fraction`)
releases a noisy count N~ (one `GaussianDpEvent` in the ledger), and everything that depends on the size
(the settings, the sampling probability q = batch_size / N~, the steps per epoch, the divisor of the
noisy gradient sum, the statement) uses N~ alone. `count_fraction=0` declares N public instead: the exact
N is then used and published. The Poisson sampling is secret (OS entropy) unless `sampling_seed` is given.
"""

import dataclasses
import math
import secrets
import warnings

import dp_accounting
import keras
import numpy as np

from privgan.accounting import PrivacyLedger, calibrate_noise_multiplier
from privgan.accounting.events import check_accountant, check_count, check_delta, check_positive
from privgan.accounting.guarantees import INFERRED_SCHEMA_WARNING, tabular_gan_guarantee
from privgan.models.dpgan import DPGAN
from privgan.tabular.conditions import check_conditions
from privgan.tabular.networks import tabular_discriminator, tabular_generator
from privgan.tabular.schema import TableSchema
from privgan.tabular.statement import SyntheticTableMixin, warn_if_inferred, write_synthetic
from privgan.tabular.transformer import TableTransformer

DEFAULT_D_STEPS = 1500
DEFAULT_COUNT_FRACTION = 0.05
FIXED_SAMPLING_SEED_WARNING = (
    "sampling_seed fixes the Poisson sampling (which rows each discriminator step read): the privacy guarantee "
    "does not hold against anyone who knows it; use it for research only, never for a release"
)


@dataclasses.dataclass(frozen=True)
class GANSettings:
    """The training length, batch size and learning rate of one DPGAN fit.

    Attributes:
        epochs: training epochs of round(rows / batch_size) Poisson-sampled D steps each.
        batch_size: expected Poisson batch size of a D step.
        learning_rate: Adam learning rate of D and G.
        adaptive: which of them came from the rule of `gan_settings` (the others were given).
    """

    epochs: int
    batch_size: int
    learning_rate: float
    adaptive: tuple = ()


def gan_settings(num_rows, *, epochs=None, batch_size=None, learning_rate=None, d_steps=DEFAULT_D_STEPS):
    """The DPGAN settings for a table of `num_rows` rows; given values are kept, None ones follow the rule.

    The rule: an expected batch of num_rows / 32 rows, between 64 and 1,024 (at most the table); as many
    epochs as make about `d_steps` discriminator steps; an Adam learning rate of 1e-3 at a batch of
    1,024, scaled with the square root of the batch (at least 2.5e-4), as the gradient noise of a smaller
    batch is larger. On UCI Adult (32,561 rows) this gives 47 epochs of batch 1,017 at 1e-3, close to
    the settings tuned on it by hand (`experiments/dpgan_adult.py`: 60 epochs of 1,024); a 1,000-row table
    gets 136 epochs of 64 rows at 2.5e-4 instead of 20 epochs of 4 steps. `TabularDPSynthesizer` passes
    the noisy count of the rows, not the private one (unless the count is declared public).

    Args:
        num_rows: rows of the private table, >= 1.
        epochs: given number of epochs, or None.
        batch_size: given expected batch size, or None.
        learning_rate: given learning rate, or None.
        d_steps: the discriminator steps the rule aims at, >= 1.

    Returns:
        A `GANSettings`.
    """
    num_rows = check_count(num_rows, name="num_rows", minimum=1)
    d_steps = check_count(d_steps, name="d_steps", minimum=1)
    adaptive = tuple(
        name for name, value in (("epochs", epochs), ("batch_size", batch_size), ("learning_rate", learning_rate))
        if value is None
    )
    if batch_size is None:
        batch_size = min(num_rows, max(64, min(1024, num_rows // 32)))
    if epochs is None:
        epochs = max(1, round(d_steps / max(1, round(num_rows / batch_size))))
    if learning_rate is None:
        learning_rate = max(2.5e-4, 1e-3 * math.sqrt(batch_size / 1024))
    return GANSettings(int(epochs), int(batch_size), float(learning_rate), adaptive)


class GeneratorAverage(keras.callbacks.Callback):
    """Replaces the generator's weights by their exponential moving average over the training steps.

    A GAN's last iterate oscillates; the average of G's recent iterates samples more stably (Yazici et al.
    2019). It is computed from G's weights alone, so it is post-processing and costs no privacy.

    Args:
        decay: weight of the running average at each step, in [0, 1).
    """

    def __init__(self, decay):
        super().__init__()
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)

    def on_train_begin(self, logs=None):
        # Float weights only: BatchNormalization's moving statistics are averaged with the weights they
        # belong to; integer state (the Gumbel noise's seed) is not a weight to average.
        self._variables = [v for v in self.model.generator.weights if "float" in str(v.dtype)]
        self._averages = [keras.ops.convert_to_numpy(v).copy() for v in self._variables]

    def on_train_batch_end(self, batch, logs=None):
        for average, variable in zip(self._averages, self._variables):
            average *= self.decay
            average += (1 - self.decay) * keras.ops.convert_to_numpy(variable)

    def on_train_end(self, logs=None):
        for average, variable in zip(self._averages, self._variables):
            variable.assign(average)


class TabularDPSynthesizer(SyntheticTableMixin):
    """Trains a DPGAN on a table that fits `schema` and samples synthetic rows.

    Args:
        schema: a `TableSchema` written from public knowledge.
        epochs: training epochs; an epoch is round(N / batch_size) Poisson-sampled D steps, >= 1; None:
            from the number of rows (`gan_settings`).
        batch_size: expected Poisson batch size of a D step, >= 1 (at most the number of rows); None:
            from the number of rows.
        d_steps: the number of D steps the adaptive epochs aim at, >= 1.
        l2_norm_clip: clipping bound of each row's D gradient, > 0.
        n_critic: D steps per G step, >= 1.
        latent_dim: size of G's latent vector, >= 1.
        generator_hidden: widths of G's hidden layers.
        discriminator_hidden: widths of D's hidden layers.
        learning_rate: Adam learning rate of both D and G, > 0; None: from the batch size.
        temperature: Gumbel-softmax temperature of G's categorical outputs, > 0.
        generator_average: decay of the moving average of G's weights that replaces them after training
            (`GeneratorAverage`), in [0, 1); 0 keeps the last iterate.
        accountant: "pld" or "rdp", for calibration and the statement.
        seed: seed of the initialisation (set globally with `keras.utils.set_random_seed`), latents and
            generation; None for random. It never seeds the Poisson sampling or the DP noise.
        sampling_seed: None (default): the Poisson sampling is secret (OS entropy); an integer fixes it, for
            research only: the guarantee then does not hold against anyone who knows it (a warning says so).
        count_fraction: share of epsilon spent on the noisy count of the rows that sizes the training, in
            [0, 1); 0 declares the number of rows public (then used exactly and published).

    Raises:
        ValueError: if an argument is out of range.
    """

    def __init__(
        self,
        schema,
        *,
        epochs=None,
        batch_size=None,
        d_steps=DEFAULT_D_STEPS,
        l2_norm_clip=1.0,
        n_critic=1,
        latent_dim=64,
        generator_hidden=(256, 256),
        discriminator_hidden=(256, 256),
        learning_rate=None,
        temperature=0.2,
        generator_average=0.99,
        accountant="pld",
        seed=None,
        sampling_seed=None,
        count_fraction=DEFAULT_COUNT_FRACTION,
    ):
        if not isinstance(schema, TableSchema):
            raise ValueError(f"schema must be a TableSchema, got {type(schema).__name__}")
        self.schema = schema
        self.epochs = None if epochs is None else check_count(epochs, name="epochs", minimum=1)
        self.batch_size = None if batch_size is None else check_count(batch_size, name="batch_size", minimum=1)
        self.d_steps = check_count(d_steps, name="d_steps", minimum=1)
        self.l2_norm_clip = check_positive(l2_norm_clip, name="l2_norm_clip")
        self.n_critic = check_count(n_critic, name="n_critic", minimum=1)
        self.latent_dim = check_count(latent_dim, name="latent_dim", minimum=1)
        self.generator_hidden = tuple(generator_hidden)
        self.discriminator_hidden = tuple(discriminator_hidden)
        self.learning_rate = None if learning_rate is None else check_positive(learning_rate, name="learning_rate")
        self.temperature = check_positive(temperature, name="temperature")
        if not 0 <= generator_average < 1:
            raise ValueError(f"generator_average must be in [0, 1), got {generator_average}")
        self.generator_average = float(generator_average)
        self.accountant = check_accountant(accountant)
        self.seed = seed
        self.sampling_seed = sampling_seed
        if not 0 <= count_fraction < 1:
            raise ValueError(f"count_fraction must be in [0, 1), got {count_fraction}")
        self.count_fraction = float(count_fraction)
        self.transformer = TableTransformer(schema)

    def fit(self, df, *, epsilon, delta, verbose="auto", callbacks=None):
        """Trains on the private table `df` within the budget (epsilon, delta).

        Args:
            df: the private DataFrame; it must fit the schema (columns in any order).
            epsilon: the privacy budget, > 0.
            delta: its delta, in (0, 1); keep it well below 1 / len(df).
            verbose: Keras progress output (0 silent, 1 progress bar, 2 one line per epoch).
            callbacks: more Keras callbacks (epsilon is logged after every epoch).

        Returns:
            self.

        Raises:
            ValueError: if epsilon or delta are out of range or the batch size exceeds the rows.
            SchemaError: if `df` does not fit the schema (the message names the column and value).
        """
        epsilon = check_positive(epsilon, name="epsilon")
        delta = check_delta(delta)
        warn_if_inferred(self.schema)
        encoded = self.transformer.encode(df)
        if self.sampling_seed is not None:
            warnings.warn(FIXED_SAMPLING_SEED_WARNING, UserWarning, stacklevel=2)
        ledger, self.num_rows_estimate_ = self._count_rows(len(encoded), epsilon=epsilon, delta=delta)
        size = "the number of rows" if self.count_fraction == 0 else "the noisy number of rows"
        if self.batch_size is not None and self.batch_size > self.num_rows_estimate_:
            raise ValueError(f"batch_size must be in [1, {size}={self.num_rows_estimate_}], got {self.batch_size}")
        self.settings_ = gan_settings(
            self.num_rows_estimate_, epochs=self.epochs, batch_size=self.batch_size,
            learning_rate=self.learning_rate, d_steps=self.d_steps,
        )
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        generator = tabular_generator(
            self.transformer, latent_dim=self.latent_dim, hidden=self.generator_hidden,
            temperature=self.temperature, seed=self.seed,
        )
        discriminator = tabular_discriminator(self.transformer, hidden=self.discriminator_hidden)
        self.gan_ = DPGAN(
            generator,
            discriminator,
            l2_norm_clip=self.l2_norm_clip,
            noise_multiplier=None,
            num_examples=self.num_rows_estimate_,  # q = batch_size / N~, the divisor batch_size: public
            expected_batch_size=self.settings_.batch_size,
            n_critic=self.n_critic,
            seed=self.seed,
            ledger=ledger,
            # Sized by the noisy count alone (fit takes the rows whatever their number), unless N is public.
            num_examples_source="public" if self.count_fraction == 0 else "released",
        )
        # beta_1 = 0.5: the usual GAN setting (Radford et al. 2016), less momentum against a moving target.
        self.gan_.compile(
            d_optimizer=keras.optimizers.Adam(self.settings_.learning_rate, beta_1=0.5),
            g_optimizer=keras.optimizers.Adam(self.settings_.learning_rate, beta_1=0.5),
        )
        self.delta_ = delta
        self.target_epsilon_ = epsilon
        self.history_ = self.gan_.fit(
            encoded,
            epochs=self.settings_.epochs,
            target_epsilon=epsilon,
            delta=delta,
            accountant=self.accountant,
            sampling_seed=self.sampling_seed,
            callbacks=[*(callbacks or []), GeneratorAverage(self.generator_average)],
            verbose=verbose,
        )
        self.training_ = {
            "epochs_requested": self.settings_.epochs,
            "epochs_run": len(self.history_.epoch),
            "d_steps_planned": self.gan_.planned_dp_steps(self.settings_.epochs),
            "d_steps_taken": self.gan_.privacy_ledger.total_steps,
        }
        return self

    def _count_rows(self, num_rows, *, epsilon, delta):
        """The ledger of the noisy row count and the count the training is sized by (an int >= 1).

        With `count_fraction` > 0, N + N(0, s^2) (sensitivity 1 under add/remove-one) with s calibrated so
        that this release alone spends count_fraction * epsilon; the DP-SGD steps are then calibrated for
        what it leaves. With 0, the exact count (declared public) and an empty ledger.
        """
        ledger = PrivacyLedger()
        if self.count_fraction == 0:
            return ledger, num_rows
        sigma = calibrate_noise_multiplier(target_epsilon=self.count_fraction * epsilon, delta=delta,
                                           sampling_probability=1.0, steps=1, accountant=self.accountant)
        ledger.record_release(
            dp_accounting.GaussianDpEvent(sigma),
            description=f"noisy count of the rows (Gaussian noise of std {sigma:.4g}, sensitivity 1)",
        )
        self.count_noise_multiplier_ = sigma
        noisy = num_rows + sigma * np.random.default_rng(secrets.randbits(128)).standard_normal()
        return ledger, max(1, int(round(noisy)))

    def _check_fitted(self):
        if not hasattr(self, "gan_"):
            raise RuntimeError("call fit before sampling from the synthesizer")

    def sample(self, n, *, conditions=None):
        """Draws `n` synthetic rows.

        Args:
            n: number of rows, an integer >= 0.
            conditions: must be None or empty: the DPGAN generates whole rows from noise and cannot
                condition on a column value (rejecting the rows that do not match would change the
                distribution it learned only by chance). `MarginalDPSynthesizer` conditions exactly.

        Returns:
            A DataFrame with the schema's columns, order and dtypes.

        Raises:
            RuntimeError: before `fit`.
            ValueError: if `n` is negative or conditions are given.
        """
        self._check_fitted()
        n = check_count(n, name="n", minimum=0)
        if check_conditions(conditions, self.schema):
            raise ValueError(
                "the DPGAN synthesizer (method 'gan') cannot sample conditionally; use method 'aim' or 'mst' "
                "(privgan.tabular.MarginalDPSynthesizer), which condition the fitted model on the values"
            )
        return self.transformer.decode(self.gan_.generate(n))

    def privacy_statement(self):
        """The privacy statement of this synthesizer's samples.

        The DPGAN's statement (epsilon from the ledger, delta, sigma, C, q, D steps, how noise and sampling
        were seeded, ...) plus the target epsilon, the epochs and D steps requested and taken (`training`),
        the settings, the schema and where the schema came from. `save` writes it with its floats rounded
        (`privgan.accounting.statement.rounded_statement`).

        Returns:
            A `PrivacyStatement` at the delta and accountant of `fit`.

        Raises:
            RuntimeError: before `fit`.
        """
        self._check_fitted()
        gan = self.gan_.privacy_statement(delta=self.delta_, accountant=self.accountant)
        details = {**gan.details, "method": "gan"}
        del details["num_examples"]  # the model's N is num_examples or num_rows_estimate below
        details["num_examples" if self.count_fraction == 0 else "num_rows_estimate"] = self.num_rows_estimate_
        details["target_epsilon"] = self.target_epsilon_
        details["training"] = {
            **self.training_, "stopped_by_budget": self.training_["d_steps_taken"] < self.training_["d_steps_planned"]
        }
        details["settings"] = {
            **dataclasses.asdict(self.settings_),
            "adaptive": list(self.settings_.adaptive),
            "rule": "privgan.tabular.synthesizer.gan_settings" if self.settings_.adaptive else None,
            "n_critic": self.n_critic,
            "l2_norm_clip": self.l2_norm_clip,
            "generator_average": self.generator_average,
        }
        details["schema"] = self.schema.to_dict()
        details["schema_source"] = self.schema.source
        return dataclasses.replace(
            gan, details=details,
            guarantee=tabular_gan_guarantee(gan.guarantee, count_fraction=self.count_fraction),
            warning=INFERRED_SCHEMA_WARNING if self.schema.source != "public" else None,
        )

    def save(self, csv_path, *, rows, conditions=None):
        """Writes `rows` synthetic rows to a CSV and the privacy statement to a JSON file beside it.

        See `privgan.tabular.statement.write_synthetic`.

        Raises:
            RuntimeError: before `fit`.
            ValueError: if `csv_path` does not end in .csv, `rows` < 1 or conditions are given.
        """
        self._check_fitted()
        return write_synthetic(self, csv_path, rows=rows, conditions=conditions)
