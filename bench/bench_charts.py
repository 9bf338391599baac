"""Chart costs: LTTB on long series, and a 1M-point `_charts` stored and read back.

    python bench/bench_charts.py [--points 500000]

The round-trip starts its own embedded MongoDB (memory engine) and stores two series
of --points values with their x arrays through ``tasks.fields`` (GridFS, outside the
experiment document), then reads them back whole.
"""

from __future__ import annotations

import argparse
import math
import time

from bson import ObjectId
from pymongo import MongoClient

from fglab.charts import lttb, prepare_charts
from fglab.embedded import mongo
from tasks.fields import resolve_large_fields, store_field_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500_000)
    args = parser.parse_args()
    n = args.points
    xs = list(range(n))
    ys = [math.sin(i / 1000) + (i % 97) / 97 for i in range(n)]

    started = time.perf_counter()
    lttb(xs, ys, 1000)
    print(f"LTTB {n:,} -> 1,000 points: {time.perf_counter() - started:.3f} s")

    chart = {
        "columnNames": ["train", "val", "x1", "x2"],
        "data": {"xs": {"train": "x1", "val": "x2"}, "columns": [ys, ys[::-1], xs, xs]},
    }
    started = time.perf_counter()
    prepare_charts(chart, max_points=1000)
    print(f"prepare_charts, 2 series of {n:,}: {time.perf_counter() - started:.3f} s")

    server = mongo.start("memory")
    try:
        db = MongoClient(server.uri)["bench"]
        experiment_id = db["experiments"].insert_one({"_files": []}).inserted_id
        started = time.perf_counter()
        value = store_field_value(db, experiment_id, ObjectId(), "_charts", chart)
        db["experiments"].update_one({"_id": experiment_id}, {"$set": {"_charts": value}})
        stored = time.perf_counter() - started
        started = time.perf_counter()
        doc = resolve_large_fields(db, db["experiments"].find_one({"_id": experiment_id}))
        read = time.perf_counter() - started
        assert doc["_charts"] == chart
        print(f"store 2x{n:,} points with x arrays: {stored:.2f} s; read back whole: {read:.2f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
