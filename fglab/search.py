"""Hyperparameter search: grid and random search over a project's schema, as a batch.

The original FGLab's optimisation page, as pure functions: a *spec* says, per schema
field, which values to try, and :func:`grid` / :func:`random_search` turn it into a list
of option sets for ``POST /projects/{id}/batch``. Per field:

- ``int`` / ``float``: ``{"min": a, "max": b, "steps": n, "scale": "linear"|"log",
  "base": 10}``, ``min`` inclusive and ``max`` exclusive. Grid search takes ``n`` evenly
  spaced values (in the exponent for log scale, which needs ``min > 0``); ints are
  rounded and repeats dropped. Random search draws uniformly (log scale: uniformly in
  the exponent); ints are floored.
- ``string``: ``{"values": "a, b, c"}`` (comma-separated; blanks dropped) or a list.
- ``enum`` / ``bool``: ``{"values": [...]}``, a subset of the enum's values / of
  ``[true, false]``.
- a field left out of the spec keeps its schema default.

Every option set produced passes :func:`fglab.schema.validate_options`.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "MAX_COMBINATIONS",
    "MAX_EVALUATIONS",
    "Axis",
    "Range",
    "SearchError",
    "axes",
    "grid",
    "random_search",
]

MAX_COMBINATIONS = 10_000
MAX_EVALUATIONS = 10_000

_NUMBER_KEYS = ("min", "max", "steps", "scale", "base")


class SearchError(ValueError):
    """A search spec is unusable; the message names the field and quotes the value."""


@dataclass(frozen=True)
class Range:
    """A numeric field's range; ``low``/``high`` are exponents when ``base`` is set."""

    kind: str
    low: float
    high: float
    steps: int
    base: float | None

    def values(self) -> list[int | float]:
        width = (self.high - self.low) / self.steps
        points = [self._scale(self.low + i * width) for i in range(self.steps)]
        if self.kind == "int":
            # JS Math.round, as the original's form did; Python's round() rounds to even.
            return list(dict.fromkeys(math.floor(p + 0.5) for p in points))
        # 12 significant digits turn 0.30000000000000004 and 10**log10(0.001) back into
        # the numbers a person typed, which then reach the program's argv.
        return list(dict.fromkeys(float(f"{p:.12g}") for p in points))

    def draw(self, rng: random.Random) -> int | float:
        value = self._scale(self.low + (self.high - self.low) * rng.random())
        return math.floor(value) if self.kind == "int" else value

    def _scale(self, point: float) -> float:
        return point if self.base is None else self.base**point


Axis = Range | list


def grid(schema: Mapping[str, Mapping], spec: Mapping[str, Mapping]) -> list[dict]:
    """Every combination of the spec's values, fields in schema order (the last varies fastest).

    Raises :class:`SearchError` for a bad spec or a grid of more than
    :data:`MAX_COMBINATIONS` option sets.
    """
    by_field = axes(schema, spec)
    values = [axis.values() if isinstance(axis, Range) else axis for axis in by_field.values()]
    size = math.prod(len(v) for v in values)
    if size > MAX_COMBINATIONS:
        sizes = " x ".join(f"{name} {len(v):,}" for name, v in zip(by_field, values, strict=True))
        raise SearchError(
            f"grid search makes {size:,} option sets ({sizes}); the limit is "
            f"{MAX_COMBINATIONS:,}: use fewer steps or values, or random search"
        )
    return [dict(zip(by_field, combo, strict=True)) for combo in itertools.product(*values)]


def random_search(
    schema: Mapping[str, Mapping],
    spec: Mapping[str, Mapping],
    evaluations: object,
    rng: random.Random,
) -> list[dict]:
    """``evaluations`` option sets, each field drawn independently and uniformly.

    ``rng`` is the caller's, so a seeded one repeats a search. Raises :class:`SearchError`
    for a bad spec or ``evaluations`` outside 1..:data:`MAX_EVALUATIONS`.
    """
    if (
        isinstance(evaluations, bool)
        or not isinstance(evaluations, int)
        or not 1 <= evaluations <= MAX_EVALUATIONS
    ):
        raise SearchError(
            f"evaluations is {evaluations!r}; use a whole number from 1 to {MAX_EVALUATIONS:,}"
        )
    by_field = axes(schema, spec)
    return [
        {
            name: axis.draw(rng) if isinstance(axis, Range) else rng.choice(axis)
            for name, axis in by_field.items()
        }
        for _ in range(evaluations)
    ]


def axes(schema: Mapping[str, Mapping], spec: object) -> dict[str, Axis]:
    """Each schema field's values to try: a :class:`Range`, or a list of choices (a field
    the spec leaves out: its default alone). Raises :class:`SearchError` for a bad spec."""
    if not isinstance(spec, Mapping):
        raise SearchError(f"search spec must be an object of field -> settings, got {spec!r}")
    for name in spec:
        if name not in schema:
            raise SearchError(f"search spec names {name!r}, which is not in the project schema")
    found: dict[str, Axis] = {}
    for name, field in schema.items():
        if name not in spec:
            found[name] = [field["default"]]
            continue
        settings = spec[name]
        if not isinstance(settings, Mapping):
            raise SearchError(
                f"search spec for {name!r} must be an object of settings, got {settings!r}"
            )
        kind = field["type"]
        if kind in ("int", "float"):
            found[name] = _number_range(name, kind, settings)
        else:
            found[name] = _choices(name, field, settings)
    return found


def _number_range(name: str, kind: str, settings: Mapping) -> Range:
    for key in settings:
        if key not in _NUMBER_KEYS:
            raise SearchError(
                f"search spec for {name!r}: unknown setting {key!r}; use {', '.join(_NUMBER_KEYS)}"
            )
    low = _number(name, "min", settings.get("min"))
    high = _number(name, "max", settings.get("max"))
    if low >= high:
        raise SearchError(
            f"search spec for {name!r}: min {low!r} must be below max {high!r} (max is exclusive)"
        )
    steps = settings.get("steps", 1)
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SearchError(f"search spec for {name!r}: steps is {steps!r}; use a whole number >= 1")
    if steps > MAX_COMBINATIONS:
        raise SearchError(
            f"search spec for {name!r}: steps is {steps:,}; a grid holds at most "
            f"{MAX_COMBINATIONS:,} option sets"
        )
    scale = settings.get("scale", "linear")
    if scale == "linear":
        return Range(kind, low, high, steps, None)
    if scale != "log":
        raise SearchError(f"search spec for {name!r}: scale is {scale!r}; use 'linear' or 'log'")
    base = _number(name, "base", settings.get("base", 10))
    if base <= 0 or base == 1:
        raise SearchError(f"search spec for {name!r}: base is {base!r}; use a number > 0, not 1")
    if low <= 0:
        raise SearchError(f"search spec for {name!r}: log scale needs min > 0, got min {low!r}")
    return Range(kind, math.log(low, base), math.log(high, base), steps, base)


def _number(name: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SearchError(f"search spec for {name!r}: {key} is {value!r}; use a finite number")
    return value


def _choices(name: str, field: Mapping, settings: Mapping) -> list:
    for key in settings:
        if key != "values":
            raise SearchError(f"search spec for {name!r}: unknown setting {key!r}; use 'values'")
    if "values" not in settings:
        raise SearchError(f"search spec for {name!r}: give the values to try in 'values'")
    values = settings["values"]
    kind = field["type"]
    if kind == "string" and isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    if not isinstance(values, list) or not values:
        raise SearchError(
            f"search spec for {name!r}: 'values' must be a non-empty list"
            + (" or comma-separated string" if kind == "string" else "")
            + f", got {values!r}"
        )
    for value in values:
        if kind == "string":
            ok = isinstance(value, str) and value != ""
            allowed = "non-empty strings"
        elif kind == "enum":
            ok = isinstance(value, str) and value in field["values"]
            allowed = f"the enum's values {field['values']!r}"
        else:
            ok = isinstance(value, bool)
            allowed = "true and false"
        if not ok:
            raise SearchError(f"search spec for {name!r}: {value!r} is not allowed; use {allowed}")
    return list(dict.fromkeys(values))
