"""`TabularDPSynthesizer`: DP synthetic tables from a DataFrame and a public schema, with a DPGAN.

The table is encoded with the schema alone (`TableTransformer`), a `DPGAN` with the tabular generator and
discriminator is trained with the noise multiplier calibrated so that the planned discriminator steps
spend exactly the budget (epsilon, delta), and samples are decoded back to a DataFrame. `save` writes a
CSV and, beside it, a JSON privacy statement built from the model's privacy ledger.
"""

import json
import pathlib
import warnings

import keras

from privgan.accounting.events import check_accountant, check_count, check_delta, check_positive
from privgan.accounting.statement import rounded_statement
from privgan.io import atomic_path
from privgan.models.dpgan import DPGAN
from privgan.tabular.networks import tabular_discriminator, tabular_generator
from privgan.tabular.schema import TableSchema
from privgan.tabular.transformer import TableTransformer


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


class TabularDPSynthesizer:
    """Trains a DPGAN on a table that fits `schema` and samples synthetic rows.

    Args:
        schema: a `TableSchema` written from public knowledge.
        epochs: training epochs; an epoch is round(N / batch_size) Poisson-sampled D steps, >= 1.
        batch_size: expected Poisson batch size of a D step, >= 1 (at most the number of rows).
        l2_norm_clip: clipping bound of each row's D gradient, > 0.
        n_critic: D steps per G step, >= 1.
        latent_dim: size of G's latent vector, >= 1.
        generator_hidden: widths of G's hidden layers.
        discriminator_hidden: widths of D's hidden layers.
        learning_rate: Adam learning rate of both D and G, > 0.
        temperature: Gumbel-softmax temperature of G's categorical outputs, > 0.
        generator_average: decay of the moving average of G's weights that replaces them after training
            (`GeneratorAverage`), in [0, 1); 0 keeps the last iterate.
        accountant: "pld" or "rdp", for calibration and the statement.
        seed: seed of the initialisation (set globally with `keras.utils.set_random_seed`), Poisson
            sampling and generation; None for random. The DP noise is always secret.

    Raises:
        ValueError: if an argument is out of range.
    """

    def __init__(
        self,
        schema,
        *,
        epochs=20,
        batch_size=256,
        l2_norm_clip=1.0,
        n_critic=1,
        latent_dim=64,
        generator_hidden=(256, 256),
        discriminator_hidden=(256, 256),
        learning_rate=2e-4,
        temperature=0.2,
        generator_average=0.99,
        accountant="pld",
        seed=None,
    ):
        if not isinstance(schema, TableSchema):
            raise ValueError(f"schema must be a TableSchema, got {type(schema).__name__}")
        self.schema = schema
        self.epochs = check_count(epochs, name="epochs", minimum=1)
        self.batch_size = check_count(batch_size, name="batch_size", minimum=1)
        self.l2_norm_clip = check_positive(l2_norm_clip, name="l2_norm_clip")
        self.n_critic = check_count(n_critic, name="n_critic", minimum=1)
        self.latent_dim = check_count(latent_dim, name="latent_dim", minimum=1)
        self.generator_hidden = tuple(generator_hidden)
        self.discriminator_hidden = tuple(discriminator_hidden)
        self.learning_rate = check_positive(learning_rate, name="learning_rate")
        self.temperature = check_positive(temperature, name="temperature")
        if not 0 <= generator_average < 1:
            raise ValueError(f"generator_average must be in [0, 1), got {generator_average}")
        self.generator_average = float(generator_average)
        self.accountant = check_accountant(accountant)
        self.seed = seed
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
        if self.schema.source != "public":
            warnings.warn(
                "the schema was read from the data (source='data'): the synthetic data's privacy guarantee "
                "does not cover its bounds and categories",
                UserWarning,
                stacklevel=2,
            )
        encoded = self.transformer.encode(df)
        if self.batch_size > len(encoded):
            raise ValueError(f"batch_size must be in [1, number of rows={len(encoded)}], got {self.batch_size}")
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
            num_examples=len(encoded),
            expected_batch_size=self.batch_size,
            n_critic=self.n_critic,
            seed=self.seed,
        )
        # beta_1 = 0.5: the usual GAN setting (Radford et al. 2016), less momentum against a moving target.
        self.gan_.compile(
            d_optimizer=keras.optimizers.Adam(self.learning_rate, beta_1=0.5),
            g_optimizer=keras.optimizers.Adam(self.learning_rate, beta_1=0.5),
        )
        self.delta_ = delta
        self.target_epsilon_ = epsilon
        self.history_ = self.gan_.fit(
            encoded,
            epochs=self.epochs,
            target_epsilon=epsilon,
            delta=delta,
            accountant=self.accountant,
            sampling_seed=self.seed,
            callbacks=[*(callbacks or []), GeneratorAverage(self.generator_average)],
            verbose=verbose,
        )
        self.training_ = {
            "epochs_requested": self.epochs,
            "epochs_run": len(self.history_.epoch),
            "d_steps_planned": self.gan_.planned_dp_steps(self.epochs),
            "d_steps_taken": self.gan_.privacy_ledger.total_steps,
        }
        return self

    def _check_fitted(self):
        if not hasattr(self, "gan_"):
            raise RuntimeError("call fit before sampling from the synthesizer")

    def sample(self, n):
        """Draws `n` synthetic rows.

        Args:
            n: number of rows, an integer >= 0.

        Returns:
            A DataFrame with the schema's columns, order and dtypes.

        Raises:
            RuntimeError: before `fit`.
            ValueError: if `n` is negative.
        """
        self._check_fitted()
        n = check_count(n, name="n", minimum=0)
        return self.transformer.decode(self.gan_.generate(n))

    def privacy_statement(self):
        """The privacy statement of this synthesizer's samples, as a JSON-serialisable dict.

        The DPGAN's statement (epsilon from the ledger, delta, sigma, C, q, D steps, how noise and sampling
        were seeded, ...) plus the target epsilon, the epochs and D steps requested and taken (`training`),
        the schema and where the schema came from. `save` writes it with its floats rounded
        (`privgan.accounting.statement.rounded_statement`).

        Raises:
            RuntimeError: before `fit`.
        """
        self._check_fitted()
        statement = self.gan_.privacy_report(delta=self.delta_, accountant=self.accountant)
        statement["target_epsilon"] = self.target_epsilon_
        statement["training"] = {
            **self.training_, "stopped_by_budget": self.training_["d_steps_taken"] < self.training_["d_steps_planned"]
        }
        statement["schema"] = self.schema.to_dict()
        statement["schema_source"] = self.schema.source
        statement["guarantee"] += (
            " The schema (column types, numeric bounds, category sets) and the model's hyper-parameters are "
            "taken to be public; rows are encoded with the schema alone, no statistic of the data."
        )
        if self.schema.source != "public":
            statement["warning"] = (
                "The schema was read from the private data (infer_schema): its bounds and categories are NOT "
                "covered by the guarantee above and may reveal individual rows."
            )
        return statement

    def save(self, csv_path, *, rows):
        """Writes `rows` synthetic rows to a CSV and the privacy statement to a JSON file beside it.

        The statement goes to `csv_path` with suffix `.json`. Both files are written to temporary files and
        renamed only when both are complete, so an error leaves neither.

        Args:
            csv_path: destination, ending in `.csv` (its folder is created if missing).
            rows: number of synthetic rows, an integer >= 1.

        Returns:
            `(csv_path, statement_path)` as `pathlib.Path`s.

        Raises:
            RuntimeError: before `fit`.
            ValueError: if `csv_path` does not end in .csv or `rows` < 1.
        """
        self._check_fitted()
        csv_path = pathlib.Path(csv_path)
        if csv_path.suffix.lower() != ".csv":
            raise ValueError(f"csv_path must end in .csv, got {str(csv_path)!r}")
        rows = check_count(rows, name="rows", minimum=1)
        synthetic = self.sample(rows)
        statement = rounded_statement({**self.privacy_statement(), "num_rows": rows, "data_file": csv_path.name})
        text = json.dumps(statement, indent=2, sort_keys=True, allow_nan=False) + "\n"
        statement_path = csv_path.with_suffix(".json")
        with atomic_path(csv_path) as csv_temporary, atomic_path(statement_path) as json_temporary:
            synthetic.to_csv(csv_temporary, index=False)
            json_temporary.write_text(text, encoding="utf-8")
        return csv_path, statement_path

