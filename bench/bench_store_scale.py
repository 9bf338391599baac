"""Store scale: what one store operation costs as a project grows to 100,000 experiments.

For each engine of the embedded server (``--engines sqlite memory``; ``--uri`` measures
any MongoDB instead) and each size, one project is filled to that size with finished
experiments carrying a ``loss`` score, then each operation is timed ``--repeats`` times
through FGLab's own code and its median is kept:

- insert: ``Store.new_experiment`` (one queued experiment);
- move by _id: ``Store.requeue`` of a dispatched experiment (a compare-and-set
  ``find_one_and_update`` on ``{_id, _status}``), then dispatched again by the record;
- first page: ``Store.experiment_rows`` sorted by ``_scores.loss``, 50 rows, with its count;
- counts: the project's experiments counted by status (its counter, `tasks.counts`);
- recount: the same by one ``$group``, as the periodic repair counts them.

Run: ``.venv/bin/python bench/bench_store_scale.py --sizes 1000 10000 100000``
(``FGLAB_EMBEDDED_PATCHES=0`` measures mongoeco without FGLab's fixes). Progress goes to
stderr; the last lines on stdout are a table (operation, engine, patched or not, size,
median ms, ratio to the smallest size) that ``bench/suite.py`` reads; ``--json`` also
writes the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo import MongoClient

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fglab.embedded import mongo as embedded_mongo
from fglab.store import Store
from tasks import experiments
from tasks.experiments import Reservation
from tasks.states import Status

OPERATIONS = (
    "insert",
    "move by _id",
    "first page by score",
    "counts by status",
    "recount (the repair)",
)
FILL_CHUNK = 1_000
#: Statuses of the filled experiments: mostly ended, as in a real project.
SPREAD = (Status.SUCCESS,) * 7 + (Status.FAIL, Status.KILLED, Status.TIMEOUT)


def fill(store: Store, db: Any, project_id: ObjectId, count: int) -> None:
    """Add `count` ended experiments with a random ``loss`` score, FILL_CHUNK a write
    (straight into the collection: the counters learn of them from the repair)."""
    collection = db[experiments.COLLECTION]
    rng = random.Random(count)
    created = experiments.now()
    for start in range(0, count, FILL_CHUNK):
        docs = [
            {
                experiments.ID: ObjectId(),
                experiments.PROJECT: project_id,
                experiments.OPTIONS: {"lr": rng.random(), "layers": rng.randint(1, 8)},
                experiments.STATUS: str(rng.choice(SPREAD)),
                experiments.CREATED: created,
                experiments.MACHINE: "bench",
                experiments.FILES: [],
                experiments.SCORES: {"loss": rng.random()},
            }
            for _ in range(min(FILL_CHUNK, count - start))
        ]
        collection.insert_many(docs, ordered=False)


def measure(store: Store, db: Any, project_id: ObjectId, repeats: int) -> dict[str, float]:
    """Median milliseconds of each operation in OPERATIONS on the project as it is."""
    moving = store.new_experiment(
        project_id, {}, reservation=Reservation(machine="bench", token="t")
    )
    collection = db[experiments.COLLECTION]

    def insert() -> None:
        store.new_experiment(project_id, {"lr": 0.1})

    def move() -> None:
        assert store.requeue(moving)
        assert experiments.dispatch(db, moving, Reservation(machine="bench", token="t"))

    def first_page() -> None:
        total, rows = store.experiment_rows(
            project_id, sort="_scores.loss", descending=False, limit=50
        )
        assert len(rows) == 50 and total > 0

    def counts() -> None:
        assert store.status_counts(project_id)[project_id]

    def recount() -> None:
        pipeline = [
            {"$match": {experiments.PROJECT: project_id}},
            {"$group": {"_id": f"${experiments.STATUS}", "n": {"$sum": 1}}},
        ]
        assert list(collection.aggregate(pipeline, allowDiskUse=True))

    first_page()  # makes the score's index, as the first visitor would
    timed: dict[str, Callable[[], None]] = dict(
        zip(OPERATIONS, (insert, move, first_page, counts, recount), strict=True)
    )
    return {name: _median_ms(operation, repeats) for name, operation in timed.items()}


def _median_ms(operation: Callable[[], None], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run_engine(uri: str, sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    """Rows for one server: grow one project through `sizes`, measuring at each."""
    client: MongoClient = MongoClient(uri, tz_aware=True)
    db = client[f"store_scale_{ObjectId()}"]
    store = Store(db)
    store.ensure_indexes()
    project_id = store.projects.create("scale", {})
    rows = []
    stored = 0
    for size in sorted(sizes):
        started = time.perf_counter()
        fill(store, db, project_id, size - stored)
        fill_s = time.perf_counter() - started
        store.repair_counts()  # fill writes around the counters, as a restore would
        stored = size
        figures = measure(store, db, project_id, repeats)
        stored += repeats + 1  # the inserts measure() made
        rows.append({"size": size, "fill_s": round(fill_s, 1), **figures})
        print(
            f"  {size:>7} stored (filled in {fill_s:6.1f} s): "
            + ", ".join(f"{name} {ms:.1f} ms" for name, ms in figures.items()),
            file=sys.stderr,
            flush=True,
        )
    client.drop_database(db.name)
    client.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["sqlite", "memory"])
    parser.add_argument("--uri", help="measure this MongoDB instead of the embedded engines")
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    report: dict[str, list[dict[str, Any]]] = {}
    code = "unpatched" if os.environ.get("FGLAB_EMBEDDED_PATCHES") == "0" else "patched"
    if args.uri:
        report["given"] = run_engine(args.uri, args.sizes, args.repeats)
    for engine in [] if args.uri else args.engines:
        print(f"engine {engine}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "scale.sqlite" if engine == "sqlite" else None
            server = embedded_mongo.start(engine, path)
            try:
                report[engine] = run_engine(server.uri, args.sizes, args.repeats)
            finally:
                server.stop()
    print("operation engine code size median_ms ratio")
    for engine, rows in report.items():
        smallest = rows[0]
        for name in OPERATIONS:
            for row in rows:
                ratio = row[name] / smallest[name]
                key = re.sub(r"[\W_]+", "_", name).strip("_")
                print(f"{key} {engine} {code} {row['size']:,} {row[name]:.2f} {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
