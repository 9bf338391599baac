"""The baseline the suite measures FGLab's fleet against: a plain Celery app.

Each task does what the least an experiment runner must do: one ``insert_one`` (the
record), two ``update_one`` (running, then finished) and the program, run with
``subprocess`` and waited for. No ledger, no leases, no logs, no results sync. Started
by ``bench/suite.py``; by hand, from the repo root:

    REDIS_URL=redis://127.0.0.1:6379/13 BENCH_MONGODB_URI=mongodb://127.0.0.1:27017 \\
    BENCH_MONGODB_DB=baseline .venv/bin/celery -A bench.baseline_celery worker \\
        -Q bench-baseline --pool threads -c 10 --without-mingle --without-gossip
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime

from celery import Celery
from pymongo import MongoClient
from pymongo.collection import Collection

#: The baseline's own queue, so that FGLab's workers never see its tasks.
QUEUE = "bench-baseline"
TASK = "bench.baseline.run"

app = Celery("bench-baseline", broker=os.environ.get("REDIS_URL"), set_as_current=False)
# The settings FGLab's fleet shares (tasks/app.py) where they change the work per task;
# the rest stays Celery's default.
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@functools.cache
def _records() -> Collection:
    """The worker's one client, made on first use and shared by the pool's threads."""
    client: MongoClient = MongoClient(os.environ["BENCH_MONGODB_URI"], tz_aware=True)
    return client[os.environ["BENCH_MONGODB_DB"]]["experiments"]


@app.task(name=TASK)
def run(experiment_id: str, argv: Sequence[str]) -> int:
    """Record the experiment, run `argv` to its end, record how it ended; its exit code."""
    records = _records()
    records.insert_one({"_id": experiment_id, "status": "claimed", "claimed": _now()})
    records.update_one({"_id": experiment_id}, {"$set": {"status": "running", "started": _now()}})
    code = subprocess.run(list(argv), stdin=subprocess.DEVNULL, check=False).returncode
    status = "success" if code == 0 else "fail"
    records.update_one(
        {"_id": experiment_id}, {"$set": {"status": status, "exit": code, "finished": _now()}}
    )
    return code


def _now() -> datetime:
    return datetime.now(UTC)
