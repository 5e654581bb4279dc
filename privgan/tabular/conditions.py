"""Conditions of conditional sampling: column -> value, checked against the public schema.

`check_conditions` validates a Python dict; `parse_condition` reads the command line's `column=value`,
typed by the schema (an integer category or a number is parsed as one; an empty value means missing).
"""

import math
import warnings

from privgan.tabular.schema import CategoricalColumn, SchemaError

RARE_NOISE_MULTIPLE = 3.0  # a noisy count below 3 sigma is indistinguishable from zero (MST's rule)


def check_conditions(conditions, schema):
    """Checks `conditions` (None, or a dict column -> value) against `schema`; returns a dict.

    Values are a category of a categorical column, a number within a numeric column's bounds (a whole
    number for an integer column), or None (missing) for a nullable column.

    Raises:
        SchemaError: naming the column and value, if a column is unknown or a value does not fit it.
    """
    if conditions is None:
        return {}
    if not isinstance(conditions, dict):
        raise SchemaError(f"conditions must be a dict column -> value, got {conditions!r}")
    checked = {}
    for name, value in conditions.items():
        if name not in schema.names:
            raise SchemaError(f"condition on unknown column {name!r}; the schema has {list(schema.names)}")
        column = schema[name]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if not column.nullable:
                raise SchemaError(f"condition {name}=missing: the schema does not allow missing values in {name!r}")
            checked[name] = None
            continue
        if isinstance(column, CategoricalColumn):
            if value not in column.categories or isinstance(value, bool):
                raise SchemaError(
                    f"condition {name}={value!r}: not a category of {name!r}; the schema allows "
                    f"{list(column.categories)}"
                )
            checked[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SchemaError(f"condition {name}={value!r}: {name!r} is numeric, the value must be a number")
        if not column.lower <= value <= column.upper:
            raise SchemaError(
                f"condition {name}={value!r}: outside the schema bounds [{column.lower:g}, {column.upper:g}]"
            )
        if column.integer and value != int(value):
            raise SchemaError(f"condition {name}={value!r}: {name!r} holds whole numbers")
        checked[name] = int(value) if column.integer else float(value)
    return checked


def parse_condition(text, schema):
    """Parses one `column=value` of the command line into `(column, value)`, typed by `schema`.

    Raises:
        SchemaError: if the text is not `column=value` or the value does not fit the column.
    """
    name, separator, raw = str(text).partition("=")
    if not separator or not name:
        raise SchemaError(f"a condition must be column=value, got {text!r}")
    if name not in schema.names:
        raise SchemaError(f"condition on unknown column {name!r}; the schema has {list(schema.names)}")
    column = schema[name]
    value = raw
    if raw == "":
        value = None
    elif isinstance(column, CategoricalColumn):
        if column.integer_categories:
            try:
                value = int(raw)
            except ValueError:
                raise SchemaError(
                    f"condition {name}={raw}: not a category of {name!r}; the schema allows {list(column.categories)}"
                ) from None
    else:
        try:
            value = float(raw)
        except ValueError:
            raise SchemaError(f"condition {name}={raw}: {name!r} is numeric, the value must be a number") from None
    return name, check_conditions({name: value}, schema)[name]


def warn_rare_conditions(synthesizer, conditions, codes):
    """Warns for each category condition whose estimated number of rows is below 3 sigma of the noise.

    The estimate is the fitted model's count of the category's group times the category's weight within
    it: post-processing of the released noisy marginals, never the private count. Rows drawn given such a
    category rest on noise more than on rows that have it.

    Args:
        synthesizer: a fitted `MarginalDPSynthesizer` (its `model_`, `groups_`, `within_group_` and the
            one-way noise in `measurements_log_`).
        conditions: dict column -> value (checked).
        codes: dict column -> the value's code.
    """
    for name, value in conditions.items():
        if value is None or not isinstance(synthesizer.schema[name], CategoricalColumn):
            continue
        sigma = next((m["sigma"] for m in synthesizer.measurements_log_ if list(m["clique"]) == [name]), None)
        if sigma is None:
            continue
        group = int(synthesizer.groups_[name][codes[name]])
        members, weights = synthesizer.within_group_[name][group]
        estimate = float(synthesizer.model_.counts((name,))[group]) * float(weights[members == codes[name]][0])
        if estimate < RARE_NOISE_MULTIPLE * sigma:
            warnings.warn(
                f"condition {name}={value!r}: the model estimates about {estimate:.0f} rows with this category "
                f"(from the noisy marginals), below {RARE_NOISE_MULTIPLE:g} times the noise's standard deviation "
                f"({RARE_NOISE_MULTIPLE * sigma:.0f} rows): the rows drawn given it rest on noise more than on the "
                "rows that have it",
                UserWarning,
                stacklevel=3,
            )
