"""Private synthetic tables: a public schema, its encoding for a GAN, tabular G/D and a DP synthesizer."""

from privgan.tabular.conditions import check_conditions, parse_condition
from privgan.tabular.discretize import TableDiscretizer
from privgan.tabular.engines import TableEngine, engine, engine_names, register_engine
from privgan.tabular.marginal import MarginalDPSynthesizer
from privgan.tabular.networks import TabularActivation, tabular_discriminator, tabular_generator
from privgan.tabular.saved import load_synthesizer, save_synthesizer
from privgan.tabular.schema import (
    CategoricalColumn,
    NumericColumn,
    SchemaError,
    TableSchema,
    infer_schema,
    load_schema,
    save_schema,
)
from privgan.tabular.sources import CsvTable
from privgan.tabular.synthesizer import GANSettings, GeneratorAverage, TabularDPSynthesizer, gan_settings
from privgan.tabular.transformer import TableTransformer, read_csv, validate_frame

__all__ = [
    "CategoricalColumn",
    "CsvTable",
    "GANSettings",
    "GeneratorAverage",
    "MarginalDPSynthesizer",
    "NumericColumn",
    "SchemaError",
    "TableDiscretizer",
    "TableEngine",
    "TableSchema",
    "TableTransformer",
    "TabularActivation",
    "TabularDPSynthesizer",
    "check_conditions",
    "engine",
    "engine_names",
    "gan_settings",
    "infer_schema",
    "load_schema",
    "load_synthesizer",
    "parse_condition",
    "read_csv",
    "register_engine",
    "save_schema",
    "save_synthesizer",
    "tabular_discriminator",
    "tabular_generator",
    "validate_frame",
]
