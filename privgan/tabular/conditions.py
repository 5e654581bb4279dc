"""Conditions of conditional sampling: column -> value, checked against the public schema.

`check_conditions` validates a Python dict; `parse_condition` reads the command line's `column=value`,
typed by the schema (an integer category or a number is parsed as one; an empty value means missing).
"""

import math

from privgan.tabular.schema import CategoricalColumn, SchemaError


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
