from __future__ import annotations

import math
import random
import re

import pytest

from fglab.schema import validate_options, validate_schema
from fglab.search import MAX_COMBINATIONS, SearchError, grid, random_search
from tests.examples import EXAMPLE_SCHEMA

SPEC = {
    "batchSize": {"min": 16, "max": 128, "steps": 3},
    "model": {"values": " cnn, rnn,, mlp "},
    "optimiser": {"values": ["sgd", "adam"]},
    "learningRate": {"min": 0.0001, "max": 1, "steps": 4, "scale": "log"},
    "L2": {"values": [True, False]},
}


@pytest.fixture
def schema() -> dict[str, dict]:
    return validate_schema(EXAMPLE_SCHEMA)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


def values_of(option_sets: list[dict], name: str) -> list:
    return list(dict.fromkeys(o[name] for o in option_sets))


def assert_all_valid(schema: dict[str, dict], option_sets: list[dict]) -> None:
    for options in option_sets:
        assert validate_options(schema, options) == options
        assert list(options) == list(schema)


# --- grid ------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_in_schema_order(schema: dict[str, dict]) -> None:
    batch = grid(schema, SPEC)
    assert len(batch) == 3 * 3 * 2 * 4 * 2
    assert_all_valid(schema, batch)
    assert len({tuple(o.values()) for o in batch}) == len(batch)
    assert batch[0] == {
        "seed": 123,
        "model": "cnn",
        "batchSize": 16,
        "optimiser": "sgd",
        "learningRate": 0.0001,
        "L2": True,
    }
    assert batch[1]["L2"] is False  # the last field varies fastest
    assert values_of(batch, "seed") == [123]  # not in the spec: the default alone
    assert values_of(batch, "model") == ["cnn", "rnn", "mlp"]
    assert values_of(batch, "optimiser") == ["sgd", "adam"]


def test_grid_without_spec_is_the_defaults(schema: dict[str, dict]) -> None:
    assert grid(schema, {}) == [
        {
            "seed": 123,
            "model": "cnn",
            "batchSize": 32,
            "optimiser": "adam",
            "learningRate": 0.001,
            "L2": False,
        }
    ]


def test_linear_float_grid_is_half_open(schema: dict[str, dict]) -> None:
    batch = grid(schema, {"learningRate": {"min": 0.1, "max": 0.5, "steps": 4}})
    assert values_of(batch, "learningRate") == [0.1, 0.2, 0.3, 0.4]


def test_log_grid(schema: dict[str, dict]) -> None:
    batch = grid(schema, {"learningRate": {"min": 0.0001, "max": 1, "steps": 4, "scale": "log"}})
    assert values_of(batch, "learningRate") == [0.0001, 0.001, 0.01, 0.1]
    batch = grid(
        schema, {"batchSize": {"min": 16, "max": 256, "steps": 4, "scale": "log", "base": 2}}
    )
    assert values_of(batch, "batchSize") == [16, 32, 64, 128]


def test_int_grid_is_rounded_and_deduplicated(schema: dict[str, dict]) -> None:
    batch = grid(schema, {"batchSize": {"min": 16, "max": 128, "steps": 3}})
    assert values_of(batch, "batchSize") == [16, 53, 91]  # 52.67 and 90.5 round half up
    batch = grid(schema, {"seed": {"min": 0, "max": 2, "steps": 5}})
    assert [o["seed"] for o in batch] == [0, 1, 2]  # 0, .4, .8, 1.2, 1.6
    assert all(isinstance(o["seed"], int) for o in batch)
    assert_all_valid(schema, batch)


def test_steps_default_to_one(schema: dict[str, dict]) -> None:
    batch = grid(schema, {"learningRate": {"min": 0.5, "max": 2}})
    assert values_of(batch, "learningRate") == [0.5]


def test_string_values_as_list(schema: dict[str, dict]) -> None:
    batch = grid(schema, {"model": {"values": ["a b", "c", "a b"]}})
    assert values_of(batch, "model") == ["a b", "c"]
    assert len(batch) == 2


def test_grid_size_limit(schema: dict[str, dict]) -> None:
    spec = {
        "seed": {"min": 0, "max": 200, "steps": 200},
        "learningRate": {"min": 0.1, "max": 1, "steps": 60},
    }
    with pytest.raises(
        SearchError,
        match=re.escape("grid search makes 12,000 option sets (seed 200 x model 1 x batchSize 1"),
    ):
        grid(schema, spec)
    spec["learningRate"]["steps"] = MAX_COMBINATIONS // 200
    assert len(grid(schema, spec)) == MAX_COMBINATIONS


# --- random_search ---------------------------------------------------------------------


def test_random_search_draws_within_ranges(schema: dict[str, dict], rng: random.Random) -> None:
    batch = random_search(schema, SPEC, 500, rng)
    assert len(batch) == 500
    assert_all_valid(schema, batch)
    assert all(16 <= o["batchSize"] < 128 for o in batch)
    assert all(isinstance(o["batchSize"], int) for o in batch)
    assert all(0.0001 <= o["learningRate"] < 1 for o in batch)
    assert set(values_of(batch, "model")) == {"cnn", "rnn", "mlp"}
    assert set(values_of(batch, "optimiser")) == {"sgd", "adam"}
    assert set(values_of(batch, "L2")) == {True, False}
    assert values_of(batch, "seed") == [123]


def test_random_log_scale_is_uniform_in_the_exponent(
    schema: dict[str, dict], rng: random.Random
) -> None:
    spec = {"learningRate": {"min": 1e-6, "max": 1, "scale": "log"}}
    rates = [o["learningRate"] for o in random_search(schema, spec, 2000, rng)]
    below = sum(r < 1e-3 for r in rates)  # half the exponent range
    assert 850 < below < 1150


def test_random_ints_are_floored(schema: dict[str, dict], rng: random.Random) -> None:
    batch = random_search(schema, {"seed": {"min": 0, "max": 3}}, 300, rng)
    assert set(values_of(batch, "seed")) == {0, 1, 2}


def test_random_search_is_repeatable_with_a_seed(schema: dict[str, dict]) -> None:
    first = random_search(schema, SPEC, 20, random.Random(7))
    assert first == random_search(schema, SPEC, 20, random.Random(7))


@pytest.mark.parametrize("evaluations", [0, -1, 10_001, 2.0, True, "5", None])
def test_evaluations_range(
    schema: dict[str, dict], rng: random.Random, evaluations: object
) -> None:
    with pytest.raises(
        SearchError,
        match=re.escape(f"evaluations is {evaluations!r}; use a whole number from 1 to 10,000"),
    ):
        random_search(schema, SPEC, evaluations, rng)  # type: ignore[arg-type]


def test_evaluations_bounds_accepted(schema: dict[str, dict], rng: random.Random) -> None:
    assert len(random_search(schema, {}, 1, rng)) == 1
    assert len(random_search(schema, {}, 10_000, rng)) == 10_000


# --- bad specs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], "search spec must be an object of field -> settings, got []"),
        ({"momentum": {"min": 0, "max": 1}}, "search spec names 'momentum', which is not in"),
        ({"_id": {"values": ["x"]}}, "search spec names '_id', which is not in"),
        ({"seed": 5}, "search spec for 'seed' must be an object of settings, got 5"),
        ({"seed": {"min": 5, "max": 5}}, "search spec for 'seed': min 5 must be below max 5"),
        ({"seed": {"min": 6, "max": 5}}, "search spec for 'seed': min 6 must be below max 5"),
        ({"seed": {"max": 5}}, "search spec for 'seed': min is None; use a finite number"),
        ({"seed": {"min": "0", "max": 5}}, "search spec for 'seed': min is '0'"),
        ({"seed": {"min": 0, "max": True}}, "search spec for 'seed': max is True"),
        (
            {"learningRate": {"min": 0, "max": float("inf")}},
            "search spec for 'learningRate': max is inf",
        ),
        (
            {"seed": {"min": 0, "max": 5, "steps": 0}},
            "search spec for 'seed': steps is 0; use a whole number >= 1",
        ),
        ({"seed": {"min": 0, "max": 5, "steps": 1.5}}, "search spec for 'seed': steps is 1.5"),
        (
            {"seed": {"min": 0, "max": 5, "steps": 10**6}},
            "search spec for 'seed': steps is 1,000,000; a grid holds at most 10,000",
        ),
        ({"seed": {"min": 0, "max": 5, "num": 2}}, "search spec for 'seed': unknown setting 'num'"),
        (
            {"learningRate": {"min": 0, "max": 1, "scale": "log"}},
            "search spec for 'learningRate': log scale needs min > 0, got min 0",
        ),
        (
            {"learningRate": {"min": -1, "max": 1, "scale": "log"}},
            "search spec for 'learningRate': log scale needs min > 0, got min -1",
        ),
        (
            {"learningRate": {"min": 0.1, "max": 1, "scale": "log", "base": 1}},
            "search spec for 'learningRate': base is 1; use a number > 0, not 1",
        ),
        (
            {"learningRate": {"min": 0.1, "max": 1, "scale": "exp"}},
            "search spec for 'learningRate': scale is 'exp'; use 'linear' or 'log'",
        ),
        (
            {"optimiser": {"values": ["sgd", "nesterov"]}},
            "search spec for 'optimiser': 'nesterov' is not allowed; use the enum's values "
            "['sgd', 'adam', 'rmsprop']",
        ),
        (
            {"optimiser": {"values": []}},
            "search spec for 'optimiser': 'values' must be a non-empty",
        ),
        ({"optimiser": {"values": "sgd"}}, "search spec for 'optimiser': 'values' must be a"),
        ({"optimiser": {}}, "search spec for 'optimiser': give the values to try in 'values'"),
        (
            {"optimiser": {"values": ["sgd"], "x": 1}},
            "search spec for 'optimiser': unknown setting 'x'",
        ),
        ({"L2": {"values": [1]}}, "search spec for 'L2': 1 is not allowed; use true and false"),
        ({"L2": {"values": ["true"]}}, "search spec for 'L2': 'true' is not allowed"),
        (
            {"model": {"values": " , ,"}},
            "search spec for 'model': 'values' must be a non-empty list or comma-separated",
        ),
        ({"model": {"values": ["a", ""]}}, "search spec for 'model': '' is not allowed"),
        ({"model": {"values": ["a", 3]}}, "search spec for 'model': 3 is not allowed"),
    ],
)
def test_bad_specs(schema: dict[str, dict], rng: random.Random, spec: object, message: str) -> None:
    with pytest.raises(SearchError, match="^" + re.escape(message)):
        grid(schema, spec)  # type: ignore[arg-type]
    with pytest.raises(SearchError, match="^" + re.escape(message)):
        random_search(schema, spec, 3, rng)  # type: ignore[arg-type]


def test_whole_float_steps_accepted(schema: dict[str, dict]) -> None:
    batch = grid(schema, {"learningRate": {"min": 0, "max": 1, "steps": 2.0}})
    assert values_of(batch, "learningRate") == [0.0, 0.5]


def test_grid_floats_have_no_rounding_noise(schema: dict[str, dict]) -> None:
    batch = grid(schema, {"learningRate": {"min": 0.0, "max": 1.0, "steps": 10}})
    rates = values_of(batch, "learningRate")
    assert rates == [i / 10 for i in range(10)]
    assert all(math.isfinite(r) for r in rates)
