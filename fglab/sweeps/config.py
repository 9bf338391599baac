"""A sweep's settings, read from a request body and checked before anything is stored.

    {"method": "grid" | "random" | "bayes",
     "space": {field: settings},                     # fglab.search's spec format
     "objective": {"score": "<_scores key>", "goal": "minimize" | "maximize"},
     "budget": trials, "parallelism": n, "seed": int,
     "prune": {"pruner": "median", "n_startup_trials": 5, "n_warmup_steps": 0,
               "interval_steps": 1, "n_min_trials": 1}
            | {"pruner": "hyperband", "min_resource": 1, "max_resource": 20,
               "reduction_factor": 3}}

Pure: :func:`parse_sweep` raises :class:`SweepError` whose message starts with the field
at fault, and the API answers it as a 400 with nothing stored.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fglab.schema import OptionsError, validate_options
from fglab.search import SearchError, axes, grid
from fglab.tags import TagError, parse_tags

__all__ = ["MAX_BUDGET", "METHODS", "Objective", "SweepConfig", "SweepError", "parse_sweep"]

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
MAX_BUDGET = 10_000
MAX_PARALLELISM = 1_000
BODY_KEYS = frozenset(
    {"method", "space", "objective", "budget", "parallelism", "seed", "prune", "priority", "tags"}
)
#: A sweep's trials queue with its priority (as experiments' ``?priority=``).
MAX_PRIORITY = 1000

#: Each pruner's settings (Optuna's argument names) and their defaults.
PRUNERS: dict[str, dict[str, int | None]] = {
    "median": {"n_startup_trials": 5, "n_warmup_steps": 0, "interval_steps": 1, "n_min_trials": 1},
    "hyperband": {"min_resource": 1, "max_resource": None, "reduction_factor": 3},
}


class SweepError(ValueError):
    """A sweep body is unusable; the message names the field and quotes the value."""


@dataclass(frozen=True)
class Objective:
    """What a sweep optimises: one key of the trials' ``_scores``, and which way."""

    score: str
    goal: str  # "minimize" or "maximize"

    @property
    def maximize(self) -> bool:
        return self.goal == "maximize"

    def better(self, a: float, b: float) -> bool:
        """Whether `a` beats `b`."""
        return a > b if self.maximize else a < b


@dataclass(frozen=True)
class SweepConfig:
    method: str
    space: dict[str, Any]
    objective: Objective | None
    budget: int
    parallelism: int
    seed: int
    prune: dict[str, Any] | None
    priority: int = 0
    tags: list[str] = field(default_factory=list)  # every trial's `_tags`

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepConfig:
        objective = data.get("objective")
        return cls(
            method=data["method"],
            space=dict(data["space"]),
            objective=Objective(**objective) if objective else None,
            budget=int(data["budget"]),
            parallelism=int(data["parallelism"]),
            seed=int(data["seed"]),
            prune=dict(data["prune"]) if data.get("prune") else None,
            priority=int(data.get("priority") or 0),
            tags=list(data.get("tags") or ()),
        )


def parse_sweep(schema: Mapping[str, Mapping], body: Mapping[str, Any]) -> SweepConfig:
    """Check a sweep body against the project's schema; the settings, defaults filled in.

    Grid's budget defaults to the size of its grid (and may not exceed it); random and
    bayes need one. Without a seed one is drawn, and stored, so a rebuilt sweep draws
    the same trials.
    """
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        raise SweepError(f"unknown sweep setting(s) {unknown}; use {', '.join(sorted(BODY_KEYS))}")
    method = body.get("method")
    if method not in METHODS:
        raise SweepError(f"method is {method!r}; use one of {', '.join(METHODS)}")
    space = body.get("space", {})
    try:
        combos = grid(schema, space) if method == "grid" else None
        if combos is not None:
            for options in combos:
                validate_options(schema, options)
        else:
            axes(schema, space)
    except (SearchError, OptionsError) as e:
        raise SweepError(f"space: {e}") from None
    objective = _objective(body.get("objective"))
    prune = _prune(body.get("prune"))
    if objective is None and method == "bayes":
        raise SweepError("objective: bayes needs an objective {score, goal} to optimise")
    if objective is None and prune is not None:
        raise SweepError("objective: pruning needs an objective {score, goal} to compare")
    budget = body.get("budget")
    if budget is None and combos is not None:
        budget = len(combos)
    budget = _whole(
        "budget", budget, 1, len(combos) if combos is not None else MAX_BUDGET, required=True
    )
    parallelism = _whole("parallelism", body.get("parallelism", 1), 1, MAX_PARALLELISM)
    seed = body.get("seed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise SweepError(f"seed is {seed!r}; use a whole number, or leave it out")
    priority = _whole("priority", body.get("priority", 0), -MAX_PRIORITY, MAX_PRIORITY)
    try:
        tags = parse_tags(body.get("tags", []))
    except TagError as e:
        raise SweepError(str(e)) from None
    return SweepConfig(
        method, dict(space), objective, budget, parallelism, seed, prune, priority, tags
    )


def _objective(value: object) -> Objective | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"score", "goal"}:
        raise SweepError(f'objective is {value!r}; use {{"score": name, "goal": "minimize"}}')
    score = value.get("score")
    if not isinstance(score, str) or not score or score.startswith("$") or "." in score:
        raise SweepError(
            f"objective.score is {score!r}; name a key of the trials' _scores (no '.' or '$')"
        )
    goal = value.get("goal", "minimize")
    if goal not in GOALS:
        raise SweepError(f"objective.goal is {goal!r}; use 'minimize' or 'maximize'")
    return Objective(score, goal)


def _prune(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("pruner") not in PRUNERS:
        pruner = value.get("pruner") if isinstance(value, Mapping) else value
        raise SweepError(f"prune.pruner is {pruner!r}; use 'median' or 'hyperband'")
    name = value["pruner"]
    defaults = PRUNERS[name]
    unknown = sorted(set(value) - set(defaults) - {"pruner"})
    if unknown:
        raise SweepError(f"prune: unknown {name} setting(s) {unknown}; use {', '.join(defaults)}")
    settings: dict[str, Any] = {"pruner": name}
    for key, default in defaults.items():
        given = value.get(key, default)
        low = 1 if key in ("interval_steps", "min_resource", "n_min_trials") else 0
        if key == "reduction_factor":
            low = 2
        settings[key] = _whole(f"prune.{key}", given, low, 10**9, required=True)
    if name == "hyperband" and settings["max_resource"] <= settings["min_resource"]:
        raise SweepError(
            f"prune.max_resource is {settings['max_resource']}; use the last step, "
            f"above min_resource {settings['min_resource']}"
        )
    return settings


def _whole(name: str, value: object, low: int, high: int, *, required: bool = False) -> int:
    if value is None and required:
        raise SweepError(f"{name} is required; give a whole number from {low} to {high:,}")
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SweepError(f"{name} is {value!r}; use a whole number from {low} to {high:,}")
    return value
