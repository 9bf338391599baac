"""How fast a fleet drains many short experiments: the load test, run by hand.

    python bench/bench_fleet.py [--experiments 1000] [--machines 3] [--redis redis://...]

Starts an embedded MongoDB (memory engine), a scheduler process and --machines machine
workers on this host, submits --experiments experiments through the batch route, waits
until every one ended and prints experiments/s, the time to drain (first request sent to
last experiment finished) and the mean and 95th percentile of the dispatch -> start and
submit -> finish latencies. The experiments run a one-line Python program that appends
its ID to a file, so the figures are the fleet's own overhead. The database is dropped
afterwards; Redis keeps only what expires by itself (live logs, for a day).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The measurement lives with the load test (tests/integration/workers/test_load.py), which
# is not an installed package: run from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import Settings
from fglab.app import create_app
from fglab.embedded import mongo
from fglab.store import Store
from tests.integration.fleet import Fleet
from tests.integration.workers.test_load import CAPACITY, DRAIN_TIMEOUT, launched, run_load


@contextmanager
def embedded_fleet(redis_url: str, prefix: str) -> Iterator[tuple[Settings, Any, Fleet, Path]]:
    """(settings, database, fleet, folder) of a fleet on this host over an embedded
    MongoDB (memory engine) and `redis_url`; every process stopped and the database
    dropped at the end, errors included."""
    from pymongo import MongoClient

    server = mongo.start("memory")
    client: MongoClient = MongoClient(server.uri, tz_aware=True)
    database = f"fglab_bench_{uuid.uuid4().hex[:8]}"
    fleet: Fleet | None = None
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            root = Path(tmp)
            settings = Settings(
                mongodb_uri=server.uri,
                mongodb_db=database,
                redis_url=redis_url,
                machine_name="bench",
                data_dir=root / "data",
                projects_file=root / "projects.json",
                lease_ttl=15.0,
                heartbeat=1.0,
                kill_grace=2.0,
            )
            fleet = Fleet(settings, root / "fleet")
            yield settings, client[database], fleet, root
    finally:
        if fleet is not None:
            fleet.stop_all()
        client.drop_database(database)
        client.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--machines", type=int, default=3)
    parser.add_argument("--capacity", type=float, default=CAPACITY, help="per experiment")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--timeout", type=float, default=DRAIN_TIMEOUT, help="seconds")
    args = parser.parse_args()

    with embedded_fleet(args.redis, "bench-fleet-") as (settings, db, fleet, root):
        store = Store(db)
        store.ensure_indexes()
        app = create_app(settings, store=store)
        started = time.perf_counter()
        run = run_load(
            app.test_client(),
            store,
            fleet,
            root,
            experiments=args.experiments,
            machines=args.machines,
            capacity=args.capacity,
            timeout=args.timeout,
            db=db,
        )
        fleet.stop_all()
        statuses = Counter(d["_status"] for d in run.docs)
        counts = launched(root / "launches.txt")
        print(run.figures.summary())
        print(f"  statuses          : {dict(statuses)}")
        print(
            f"  launched          : {len(counts)} IDs, "
            f"{sum(1 for n in counts.values() if n != 1)} not exactly once"
        )
        print(f"  wall (with start) : {time.perf_counter() - started:.1f} s")
        services = app.extensions["fglab"]
        services.redis.close()


if __name__ == "__main__":
    main()
