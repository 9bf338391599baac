from __future__ import annotations

import re

import pytest

from fglab.schema import (
    OptionsError,
    SchemaError,
    defaults,
    validate_options,
    validate_schema,
)
from tests.examples import EXAMPLE_SCHEMA

GOOD = {
    "seed": 1,
    "model": "rnn",
    "batchSize": 64,
    "optimiser": "sgd",
    "learningRate": 0.01,
    "L2": True,
}


@pytest.fixture
def schema() -> dict[str, dict]:
    return validate_schema(EXAMPLE_SCHEMA)


def exactly(text: str) -> str:
    return "^" + re.escape(text) + "$"


# --- validate_schema -------------------------------------------------------------------


def test_example_schema_validates_and_keeps_order(schema: dict[str, dict]) -> None:
    assert schema == EXAMPLE_SCHEMA
    assert list(schema) == list(EXAMPLE_SCHEMA)


def test_schema_is_normalised() -> None:
    schema = validate_schema(
        {
            "n": {"type": "int", "default": 3.0, "help": "dropped"},
            "lr": {"type": "float", "default": 1},
        }
    )
    assert schema == {"n": {"type": "int", "default": 3}, "lr": {"type": "float", "default": 1.0}}
    assert isinstance(schema["n"]["default"], int)
    assert isinstance(schema["lr"]["default"], float)


def test_schema_input_is_not_mutated() -> None:
    raw = {"n": {"type": "int", "default": 3.0}}
    validate_schema(raw)
    assert raw == {"n": {"type": "int", "default": 3.0}}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([1, 2], "schema must be a JSON object of option -> {type, default}, got list"),
        ("x", "schema must be a JSON object of option -> {type, default}, got str"),
        ({}, "schema is empty; give at least one option"),
        ({"": {"type": "int", "default": 1}}, "schema field '': give each option a non-empty name"),
        (
            {"_id": {"type": "string", "default": "x"}},
            "schema field '_id': names starting with '_' are reserved",
        ),
        (
            {"_seed": {"type": "int", "default": 1}},
            "schema field '_seed': names starting with '_' are reserved",
        ),
        (
            {"a.b": {"type": "int", "default": 1}},
            "schema field 'a.b': names cannot contain '.' or '$'",
        ),
        (
            {"$a": {"type": "int", "default": 1}},
            "schema field '$a': names cannot contain '.' or '$'",
        ),
        ({"n": 5}, "schema field 'n': spec must be an object"),
        ({"n": {"type": "integer", "default": 1}}, "schema field 'n': unknown type 'integer'"),
        ({"n": {"default": 1}}, "schema field 'n': unknown type None"),
        ({"n": {"type": "int"}}, "schema field 'n': missing 'default'"),
    ],
)
def test_bad_schema_shapes(schema: object, message: str) -> None:
    with pytest.raises(SchemaError, match="^" + re.escape(message)):
        validate_schema(schema)


@pytest.mark.parametrize(
    "values",
    [None, "sgd,adam", [], ["sgd", 1], ["sgd", ""]],
)
def test_enum_needs_values(values: object) -> None:
    spec = {"type": "enum", "default": "sgd"}
    if values is not None:
        spec["values"] = values
    with pytest.raises(
        SchemaError,
        match="^"
        + re.escape("schema field 'optimiser': enum needs a non-empty list of strings in 'values'"),
    ):
        validate_schema({"optimiser": spec})


def test_enum_values_must_be_distinct() -> None:
    with pytest.raises(SchemaError, match=re.escape("enum 'values' lists 'sgd' twice")):
        validate_schema({"o": {"type": "enum", "default": "sgd", "values": ["sgd", "sgd"]}})


@pytest.mark.parametrize(
    ("kind", "default"),
    [
        ("int", 1.5),
        ("int", True),
        ("int", "3"),
        ("int", None),
        ("float", True),
        ("float", "0.1"),
        ("float", float("nan")),
        ("float", float("inf")),
        ("bool", 0),
        ("bool", "true"),
        ("string", ""),
        ("string", 5),
        ("enum", "nesterov"),
    ],
)
def test_default_must_fit_its_type(kind: str, default: object) -> None:
    spec: dict = {"type": kind, "default": default}
    if kind == "enum":
        spec["values"] = ["sgd", "adam"]
    message = f"schema field 'f': default {default!r} is not a valid {kind}"
    with pytest.raises(SchemaError, match="^" + re.escape(message)):
        validate_schema({"f": spec})


def test_enum_default_error_lists_values() -> None:
    with pytest.raises(SchemaError, match=re.escape("use one of ['sgd', 'adam']")):
        validate_schema({"f": {"type": "enum", "default": "x", "values": ["sgd", "adam"]}})


# --- validate_options ------------------------------------------------------------------


def test_good_options_pass_in_schema_order(schema: dict[str, dict]) -> None:
    shuffled = dict(reversed(list(GOOD.items())))
    result = validate_options(schema, shuffled)
    assert result == GOOD
    assert list(result) == list(schema)


def test_defaults_are_valid_options(schema: dict[str, dict]) -> None:
    assert defaults(schema) == {
        "seed": 123,
        "model": "cnn",
        "batchSize": 32,
        "optimiser": "adam",
        "learningRate": 0.001,
        "L2": False,
    }
    assert validate_options(schema, defaults(schema)) == defaults(schema)


def test_whole_float_is_an_int(schema: dict[str, dict]) -> None:
    result = validate_options(schema, {**GOOD, "seed": 3.0})
    assert result["seed"] == 3
    assert isinstance(result["seed"], int)


def test_int_is_a_float(schema: dict[str, dict]) -> None:
    result = validate_options(schema, {**GOOD, "learningRate": 1})
    assert result["learningRate"] == 1.0
    assert isinstance(result["learningRate"], float)


@pytest.mark.parametrize("options", [None, [], "seed=1", 5])
def test_options_must_be_an_object(schema: dict[str, dict], options: object) -> None:
    with pytest.raises(OptionsError, match=exactly("Options must be a JSON object")):
        validate_options(schema, options)


def test_missing_field(schema: dict[str, dict]) -> None:
    options = dict(GOOD)
    del options["optimiser"]
    with pytest.raises(OptionsError, match=exactly("Field optimiser missing")):
        validate_options(schema, options)


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("seed", 1.5, "int"),
        ("seed", True, "int"),
        ("seed", "1", "int"),
        ("seed", None, "int"),
        ("seed", float("nan"), "int"),
        ("seed", float("inf"), "int"),
        ("learningRate", "0.1", "float"),
        ("learningRate", False, "float"),
        ("learningRate", float("nan"), "float"),
        ("learningRate", float("-inf"), "float"),
        ("learningRate", 10**400, "float"),
        ("learningRate", [0.1], "float"),
        ("L2", 1, "bool"),
        ("L2", "true", "bool"),
        ("L2", None, "bool"),
        ("model", "", "string"),
        ("model", 7, "string"),
        ("model", ["cnn"], "string"),
        ("optimiser", "nesterov", "enum"),
        ("optimiser", "SGD", "enum"),
        ("optimiser", 0, "enum"),
    ],
)
def test_invalid_field(schema: dict[str, dict], field: str, value: object, kind: str) -> None:
    with pytest.raises(OptionsError, match=exactly(f"Field {field} of type {kind} is invalid")):
        validate_options(schema, {**GOOD, field: value})


@pytest.mark.parametrize("name", ["momentum", "_id"])
def test_unknown_field(schema: dict[str, dict], name: str) -> None:
    with pytest.raises(OptionsError, match=exactly(f"Field {name} is not in the project schema")):
        validate_options(schema, {**GOOD, name: 0.9})


def test_first_error_wins_in_schema_order(schema: dict[str, dict]) -> None:
    # "L2" and "model" are both bad and "extra" unknown: "model" comes first in the schema.
    options = {"extra": 1, **GOOD, "L2": "yes", "model": ""}
    with pytest.raises(OptionsError, match=exactly("Field model of type string is invalid")):
        validate_options(schema, options)
    del options["seed"]
    with pytest.raises(OptionsError, match=exactly("Field seed missing")):
        validate_options(schema, options)


def test_unknown_names_checked_after_schema_fields(schema: dict[str, dict]) -> None:
    options = {"zeta": 1, "alpha": 2, **GOOD}
    with pytest.raises(OptionsError, match=exactly("Field zeta is not in the project schema")):
        validate_options(schema, options)


def test_errors_are_value_errors() -> None:
    assert issubclass(SchemaError, ValueError)
    assert issubclass(OptionsError, ValueError)
