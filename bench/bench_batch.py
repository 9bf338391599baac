"""How long the batch route takes to answer 1,000 option sets, as the store fills up.

    .venv/bin/python bench/bench_batch.py [--batches 5] [--size 1000] [--engine memory]

Starts an embedded MongoDB (``fglab.embedded.mongo``), creates a project and POSTs
``--batches`` batches of ``--size`` option sets through the Flask test client, printing
how long each answer took and how many experiments the store held before it. Nothing is
dispatched (no Redis scheduler runs): the figure is validation plus storing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymongo import MongoClient

from config import Settings
from fglab.app import create_app
from fglab.embedded import mongo
from fglab.store import Store

SCHEMA = {
    "lr": {"type": "float", "default": 0.1},
    "seed": {"type": "int", "default": 1},
    "optimiser": {"type": "enum", "default": "adam", "values": ["adam", "sgd"]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--engine", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        path = Path(tmp) / "store.sqlite3" if args.engine == "sqlite" else None
        server = mongo.start(args.engine, path)
        client: MongoClient = MongoClient(server.uri, tz_aware=True)
        try:
            database = f"bench_batch_{uuid.uuid4().hex[:6]}"
            settings = Settings(
                mongodb_uri=server.uri,
                mongodb_db=database,
                redis_url=args.redis,
                machine_name="bench",
                data_dir=Path(tmp) / "data",
            )
            store = Store(client[database])
            store.ensure_indexes()
            http = create_app(settings, store=store).test_client()
            project = store.projects.create("batch", SCHEMA)
            seconds = []
            for batch in range(args.batches):
                body = [{"lr": 0.001 * i, "seed": i, "optimiser": "sgd"} for i in range(args.size)]
                started = time.perf_counter()
                answer = http.post(f"/api/v1/projects/{project}/batch", json=body)
                seconds.append(time.perf_counter() - started)
                assert answer.status_code == 201, answer.get_json()
                print(
                    f"batch {batch + 1}: {args.size} option sets answered in "
                    f"{seconds[-1]:.2f} s with {batch * args.size} experiments stored before"
                )
            print(f"median {statistics.median(seconds):.2f} s ({args.engine} engine)")
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
