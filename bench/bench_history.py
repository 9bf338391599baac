"""History scale: a point's upsert and a sweep's read of its trials' points, at 20,000 points.

32 experiments with 625 points each are written to the embedded server (memory engine),
then: one ``history.record`` (an upsert), ``history.points`` of one experiment,
``history.points_of`` of all 32 and of 4 (a sweep's trials still going), and the same
reads as one ``$in`` find, which the embedded server answers by reading every point.

Run: ``.venv/bin/python bench/bench_history.py`` (``--compound-only``: without the
single-field ``experiment`` index, as before it was made).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from bson import ObjectId
from pymongo import MongoClient

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fglab.embedded import mongo
from tasks import history

EXPERIMENTS = 32
STEPS = 625


def timed(label: str, action: Callable[[], object]) -> None:
    started = time.perf_counter()
    action()
    print(f"{label:<42} {(time.perf_counter() - started) * 1000:8.1f} ms")


def main() -> None:
    server = mongo.start("memory")
    try:
        db = MongoClient(server.uri)["bench_history"]
        if "--compound-only" in sys.argv:
            db[history.COLLECTION].create_index([(history.EXPERIMENT, 1), (history.STEP, 1)])
        else:
            history.ensure_indexes(db)
        ids = [ObjectId() for _ in range(EXPERIMENTS)]
        points = [
            {history.EXPERIMENT: e, history.STEP: s, history.SCORES: {"loss": 1.0}}
            for e in ids
            for s in range(STEPS)
        ]
        for start in range(0, len(points), 1_000):
            db[history.COLLECTION].insert_many(points[start : start + 1_000])
        print(f"{len(points):,} points of {EXPERIMENTS} experiments")
        timed("record (upsert of a new step)", lambda: history.record(db, ids[0], STEPS, {}))
        timed("points of 1 experiment", lambda: history.points(db, ids[1]))
        timed(f"points_of {EXPERIMENTS} experiments", lambda: history.points_of(db, ids))
        timed("points_of 4 experiments", lambda: history.points_of(db, ids[:4]))
        for count in (EXPERIMENTS, 4):
            query = {history.EXPERIMENT: {"$in": ids[:count]}}
            timed(f"one $in find of {count}", lambda q=query: list(db[history.COLLECTION].find(q)))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
