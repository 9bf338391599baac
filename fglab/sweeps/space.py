"""Which options trial number n of a sweep runs with, for grid and random, and the
search space as Optuna distributions for bayes.

Pure and deterministic: the same sweep settings and trial number give the same options,
so a trial made again after a restart is the trial that was meant.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from fglab.search import Axis, Range, axes, grid
from fglab.sweeps.config import SweepError

__all__ = ["distributions", "fixed_options", "grid_options", "random_options"]


def grid_options(schema: Mapping[str, Mapping], space: Mapping[str, Any], number: int) -> dict:
    """Trial `number` of a grid sweep: the grid's option sets in order (the last field
    varies fastest)."""
    return grid(schema, space)[number]


def random_options(
    schema: Mapping[str, Mapping], space: Mapping[str, Any], seed: int, number: int
) -> dict:
    """Trial `number` of a random sweep: each field drawn uniformly (log scales in the
    exponent, ints floored), from a generator seeded by the sweep's seed and `number`."""
    rng = random.Random(seed * 1_000_003 + number)
    return {
        name: axis.draw(rng) if isinstance(axis, Range) else rng.choice(axis)
        for name, axis in axes(schema, space).items()
    }


def fixed_options(schema: Mapping[str, Mapping], space: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a bayes sweep does not search: one value each (the default, or the
    only value listed)."""
    return {
        name: axis[0]
        for name, axis in axes(schema, space).items()
        if isinstance(axis, list) and len(axis) == 1
    }


def distributions(
    schema: Mapping[str, Mapping], space: Mapping[str, Any]
) -> dict[str, BaseDistribution]:
    """The searched fields as Optuna distributions; ``max`` stays exclusive.

    Raises SweepError for an int range that holds no whole number.
    """
    found: dict[str, BaseDistribution] = {}
    for name, axis in axes(schema, space).items():
        distribution = _distribution(name, axis)
        if distribution is not None:
            found[name] = distribution
    return found


def _distribution(name: str, axis: Axis) -> BaseDistribution | None:
    if isinstance(axis, list):
        return CategoricalDistribution(axis) if len(axis) > 1 else None
    low, high = _bounds(axis)
    log = axis.base is not None
    if axis.kind == "int":
        first, last = math.ceil(low), math.ceil(high) - 1
        if first > last:
            raise SweepError(f"space: {name!r} holds no whole number from {low:g} up to {high:g}")
        return IntDistribution(first, last, log=log)
    # Optuna's high is inclusive; the largest float below max keeps the sweep's exclusive.
    return FloatDistribution(low, math.nextafter(high, -math.inf), log=log)


def _bounds(axis: Range) -> tuple[float, float]:
    if axis.base is None:
        return axis.low, axis.high
    # 12 significant digits give back the numbers a person typed (see fglab.search).
    return float(f"{axis.base**axis.low:.12g}"), float(f"{axis.base**axis.high:.12g}")
