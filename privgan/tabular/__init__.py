"""Private synthetic tables: a public schema, its encoding for a GAN, tabular G/D and a DP synthesizer."""

from privgan.tabular.networks import TabularActivation, tabular_discriminator, tabular_generator
from privgan.tabular.schema import (
    CategoricalColumn,
    NumericColumn,
    SchemaError,
    TableSchema,
    infer_schema,
    load_schema,
    save_schema,
)
from privgan.tabular.synthesizer import GeneratorAverage, TabularDPSynthesizer
from privgan.tabular.transformer import TableTransformer, read_csv, validate_frame

__all__ = [
    "CategoricalColumn",
    "GeneratorAverage",
    "NumericColumn",
    "SchemaError",
    "TableSchema",
    "TableTransformer",
    "TabularActivation",
    "TabularDPSynthesizer",
    "infer_schema",
    "load_schema",
    "read_csv",
    "save_schema",
    "tabular_discriminator",
    "tabular_generator",
    "validate_frame",
]
