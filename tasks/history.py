"""The progress record: each (step, scores) point a running program reported.

A program reports progress by rewriting a JSON file in its results folder with
``_scores`` and ``_step``; the machine's results sync keeps each new point here (one
document per experiment and step), outside the experiment document, so a long history
never meets MongoDB's 16 MB document limit. Sweeps read it to prune; the API serves it.
Both sides call these functions: the machines write, FGLab reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database

COLLECTION = "history"

EXPERIMENT = "experiment"
STEP = "step"
SCORES = "scores"
AT = "at"


def _history(db: Database) -> Collection:
    return db[COLLECTION]


def ensure_indexes(db: Database) -> None:
    """The indexes every read and write of a point uses (idempotent)."""
    _history(db).create_index([(EXPERIMENT, ASCENDING), (STEP, ASCENDING)])
    # MongoDB answers `{experiment: e}` from the index above; the embedded server uses
    # single-field indexes only, and without this one a point's upsert read every point
    # (20,000 points: 0.4 s an upsert, with it 10 to 13 ms; bench/bench_history.py).
    _history(db).create_index(EXPERIMENT)


def read_step(value: object) -> int | None:
    """A reported ``_step`` as a whole number, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None
    return int(value)


def record(db: Database, experiment_id: ObjectId, step: int, scores: Mapping[str, Any]) -> bool:
    """Keep one point; True when it is new (a step reported again replaces its scores)."""
    result = _history(db).update_one(
        {EXPERIMENT: experiment_id, STEP: step},
        {"$set": {SCORES: dict(scores), AT: datetime.now(UTC)}},
        upsert=True,
    )
    return result.upserted_id is not None


def points(db: Database, experiment_id: ObjectId) -> list[dict[str, Any]]:
    """One experiment's points, oldest step first: ``{"step", "scores", "at"}``."""
    cursor = _history(db).find({EXPERIMENT: experiment_id}, {"_id": 0, EXPERIMENT: 0})
    return sorted(cursor, key=lambda point: point[STEP])


def points_of(db: Database, experiment_ids: Iterable[ObjectId]) -> dict[ObjectId, list[dict]]:
    """The points of many experiments, each list oldest step first (none: left out).

    One indexed equality find an experiment rather than one ``$in``: the embedded server
    answers an ``$in`` by reading every point (4 experiments' points among 20,000: 0.3 to
    0.5 s for the ``$in``, 50 to 60 ms for the 4 finds; ``bench/bench_history.py``). On
    MongoDB each find is one round trip, and the callers ask for few: a sweep's trials
    still going, or the trials of one sweep page.
    """
    found: dict[ObjectId, list[dict]] = {}
    for experiment_id in dict.fromkeys(experiment_ids):
        series = points(db, experiment_id)
        if series:
            found[experiment_id] = series
    return found


def delete(db: Database, experiment_ids: Iterable[ObjectId]) -> int:
    """Forget the points of deleted experiments; returns how many went."""
    return _history(db).delete_many({EXPERIMENT: {"$in": list(experiment_ids)}}).deleted_count
