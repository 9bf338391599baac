"""The experiments table's first page as a project grows: server time, median of 10.

For each size (``--sizes``, default 100 10000 100000) one project on the embedded server
(``--engine``, default the memory engine; ``--uri`` measures any MongoDB) is filled with
ended experiments carrying a ``loss`` score (as ``bench_store_scale.py`` fills them), then
``GET /api/v1/projects/{id}/experiments/table?sort=_scores.loss&order=asc&limit=50`` is
asked ``--repeats`` times through the Flask app in this process, and the median time the
app took to answer is printed with the size of the answer.

    .venv/bin/python bench/bench_table.py --sizes 100 10000 100000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bson import ObjectId
from pymongo import MongoClient

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_store_scale import fill
from config import Settings
from fglab.app import create_app
from fglab.embedded import mongo as embedded_mongo
from fglab.store import Store

PAGE = "/api/v1/projects/{}/experiments/table?sort=_scores.loss&order=asc&limit=50"


def measure(uri: str, sizes: list[int], repeats: int) -> list[tuple[int, float, int]]:
    """(size, median seconds, bytes) of the first page, growing one project through sizes."""
    client: MongoClient = MongoClient(uri, tz_aware=True)
    name = f"bench_table_{ObjectId()}"
    store = Store(client[name])
    store.ensure_indexes()
    project_id = store.projects.create("table", {})
    app = create_app(Settings(mongodb_uri=uri, mongodb_db=name), store=store)
    http = app.test_client()
    rows = []
    stored = 0
    for size in sorted(sizes):
        fill(store, client[name], project_id, size - stored)
        store.repair_counts()  # the fill wrote past the counters, as the repair expects
        stored = size
        http.get(PAGE.format(project_id))  # the first visitor makes the score's index
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            response = http.get(PAGE.format(project_id))
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.get_data(as_text=True)
            assert response.get_json()["total"] == size
        rows.append((size, statistics.median(samples), len(response.get_data())))
        print(f"  {size:>7} experiments: {rows[-1][1] * 1000:8.1f} ms", file=sys.stderr, flush=True)
    client.drop_database(name)
    client.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--uri", help="measure this MongoDB instead of the embedded server")
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    where = args.uri or f"embedded, {args.engine} engine"
    if args.uri:
        rows = measure(args.uri, args.sizes, args.repeats)
    else:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "table.sqlite" if args.engine == "sqlite" else None
            server = embedded_mongo.start(args.engine, path)
            try:
                rows = measure(server.uri, args.sizes, args.repeats)
            finally:
                server.stop()
    print(f"first table page (50 rows sorted by a score), median of {args.repeats}, {where}")
    for size, seconds, size_bytes in rows:
        print(f"{size:>7,} experiments: {seconds * 1000:.1f} ms, {size_bytes:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
