"""Project schemas and the options an experiment is submitted with.

A schema is a flat JSON object ``option -> {"type": t, "default": d, "values": [...]}``
with ``t`` one of ``int``, ``float``, ``bool``, ``string``, ``enum`` (``values`` only for
``enum``). ``_id`` and every other name starting with ``_`` is reserved: FGLab sends the
experiment ID to the program as option ``_id``.

Pure functions, no I/O: the API checks an uploaded schema with :func:`validate_schema`
and each submitted option set with :func:`validate_options`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = [
    "TYPES",
    "OptionsError",
    "SchemaError",
    "defaults",
    "validate_options",
    "validate_schema",
]

TYPES = ("int", "float", "bool", "string", "enum")


class SchemaError(ValueError):
    """A project schema is malformed; the message names the field and quotes the value."""


class OptionsError(ValueError):
    """An option set does not fit its schema.

    ``str(error)`` is exactly the original FGLab's error text (e.g. ``Field lr missing``),
    because FGLab clients match on it: the API returns it as ``{"error": str(error)}``.
    """


def validate_schema(schema: object) -> dict[str, dict]:
    """Check a project schema and return it normalised.

    Normalised means: each field spec holds only ``type``, ``default`` and (for enums)
    ``values``; an int default given as ``3.0`` becomes ``3``, a float default becomes a
    ``float``. Field order is kept, since forms and grids follow it.

    Raises :class:`SchemaError` naming the first bad field.
    """
    if not isinstance(schema, Mapping):
        raise SchemaError(
            f"schema must be a JSON object of option -> {{type, default}}, "
            f"got {type(schema).__name__}"
        )
    if not schema:
        raise SchemaError("schema is empty; give at least one option")
    return {name: _validate_field(name, spec) for name, spec in schema.items()}


def validate_options(schema: Mapping[str, Mapping], options: object) -> dict[str, object]:
    """Check an option set against a (validated) schema and return it typed, in schema order.

    The rules and messages are the original FGLab's: every schema field present; ``int``
    whole (``3.0`` is accepted and returned as ``3``), ``float`` a finite number, ``bool``
    exactly true/false, ``string`` non-empty, ``enum`` one of its values. New here: names
    not in the schema (``_id`` included) are refused. The first error wins, checked in
    schema order and then in the options' order.

    Raises :class:`OptionsError` whose text is the message to send to the client.
    """
    if not isinstance(options, Mapping):
        raise OptionsError("Options must be a JSON object")
    typed: dict[str, object] = {}
    for name, spec in schema.items():
        if name not in options:
            raise OptionsError(f"Field {name} missing")
        ok, value = _coerce(spec, options[name])
        if not ok:
            raise OptionsError(f"Field {name} of type {spec['type']} is invalid")
        typed[name] = value
    for name in options:
        if name not in schema:
            raise OptionsError(f"Field {name} is not in the project schema")
    return typed


def defaults(schema: Mapping[str, Mapping]) -> dict[str, object]:
    """The option set made of every field's default (what the new-experiment form starts with)."""
    return {name: spec["default"] for name, spec in schema.items()}


def _validate_field(name: object, spec: object) -> dict:
    if not isinstance(name, str) or not name:
        raise SchemaError(f"schema field {name!r}: give each option a non-empty name")
    if name.startswith("_"):
        raise SchemaError(
            f"schema field {name!r}: names starting with '_' are reserved "
            f"('_id' carries the experiment ID); rename the option"
        )
    if "." in name or "$" in name:
        raise SchemaError(
            f"schema field {name!r}: names cannot contain '.' or '$' (MongoDB field names)"
        )
    if not isinstance(spec, Mapping):
        raise SchemaError(
            f"schema field {name!r}: spec must be an object like "
            f'{{"type": "int", "default": 1}}, got {spec!r}'
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise SchemaError(
            f"schema field {name!r}: unknown type {kind!r}; use one of {', '.join(TYPES)}"
        )
    normalised: dict = {"type": kind}
    if kind == "enum":
        normalised["values"] = _enum_values(name, spec.get("values"))
    if "default" not in spec:
        raise SchemaError(f"schema field {name!r}: missing 'default'")
    ok, default = _coerce(normalised, spec["default"])
    if not ok:
        raise SchemaError(
            f"schema field {name!r}: default {spec['default']!r} is not a valid {kind}"
            + (f"; use one of {normalised['values']!r}" if kind == "enum" else "")
        )
    normalised["default"] = default
    return normalised


def _enum_values(name: str, values: object) -> list[str]:
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) and v for v in values)
    ):
        raise SchemaError(
            f"schema field {name!r}: enum needs a non-empty list of strings in 'values', "
            f"got {values!r}"
        )
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise SchemaError(
                f"schema field {name!r}: enum 'values' lists {value!r} twice; "
                f"each value must be distinct"
            )
        seen.add(value)
    return list(values)


def _coerce(spec: Mapping, value: object) -> tuple[bool, object]:
    """Return ``(True, typed value)`` if ``value`` fits ``spec``, else ``(False, None)``."""
    kind = spec["type"]
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str) and value != ""
    elif kind == "enum":
        ok = isinstance(value, str) and value in spec["values"]
    elif isinstance(value, bool) or not isinstance(value, int | float):
        # bool is an int subclass in Python but never a number in JSON.
        ok = False
    elif kind == "int":
        if isinstance(value, float):
            # Number.isInteger semantics: 3.0 is the whole number 3.
            ok = math.isfinite(value) and value.is_integer()
            value = int(value) if ok else value
        else:
            ok = True
        # MongoDB stores whole numbers of up to 64 bits.
        ok = ok and isinstance(value, int) and -(2**63) <= value < 2**63
    elif kind == "float":
        try:
            value = float(value)
        except OverflowError:  # an int too large for a double
            return False, None
        ok = math.isfinite(value)
    else:
        ok = False
    return (True, value) if ok else (False, None)
