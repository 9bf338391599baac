"""The two systems the suite drains N no-op experiments through: FGLab's fleet and plain Celery.

FGLab: the Flask app (a test client, in this process), a scheduler process and machine
workers, as ``tests/integration/workers/test_load.py`` runs them; experiments go in
through the batch route. Baseline: ``bench/baseline_celery.py``'s workers, the tasks sent
straight to their queue. Both run the load test's one-line program, which appends its
``--_id=...`` to a launches file, so a launch that happened twice (or never) shows. Not
run by itself: ``bench/suite.py`` uses it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import ObjectId
from celery import Celery
from flask.testing import FlaskClient
from pymongo.database import Database

from bench import baseline_celery
from bench.services import Counts, Services, start_process
from fglab.app import create_app
from fglab.store import Store
from tasks.states import Status
from tests.integration.fleet import Fleet, settings_env
from tests.integration.workers.test_load import (
    APPEND,
    CAPACITY,
    CONCURRENCY,
    DRAIN_TIMEOUT,
    launched,
    submit_batches,
    unfinished,
)
from tests.integration.workers.test_load import figures as load_figures
from tests.waiting import wait_for

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
#: Seconds between "is it done yet?" reads; the figures come from timestamps, not from these.
POLL = 0.5


@dataclass(frozen=True)
class Drain:
    """One system draining `experiments` experiments."""

    system: str
    experiments: int
    drain_s: float  # first submit sent -> last experiment finished
    statuses: Counter[str]
    launches: Counter[str]  # experiment ID -> times launched
    ids: frozenset[str]
    counts: Counts | None = None

    @property
    def per_second(self) -> float:
        return self.experiments / self.drain_s if self.drain_s > 0 else math.inf

    @property
    def twice(self) -> int:
        return sum(1 for n in self.launches.values() if n > 1)

    @property
    def lost(self) -> int:
        return len(self.ids - set(self.launches))

    @property
    def exactly_once(self) -> bool:
        return self.twice == 0 and self.lost == 0 and set(self.launches) == self.ids

    def describe_runs(self) -> str:
        ok = self.statuses.get("success", 0)
        return f"{ok}/{self.experiments} success, {self.twice} twice, {self.lost} lost"


def load_args(launches: Path) -> list[str]:
    """The load test's program after the interpreter; ``--_id=...`` goes last."""
    return ["-S", "-c", APPEND, str(launches)]


def implementation(root: Path, args: list[str], capacity: float = CAPACITY) -> dict[str, Any]:
    """A projects.json entry running ``python <args> --_id=...`` in `root`."""
    return {
        "cwd": str(root),
        "command": sys.executable,
        "args": args,
        "options": "double-dash",
        "boolean": "mandatory",
        "capacity": capacity,
        "results": str(root / "results"),
    }


# --- FGLab ----------------------------------------------------------------------------------


@dataclass
class Ours:
    """FGLab's side: a database, the app's test client, the fleet's processes (once started)."""

    root: Path
    store: Store
    db: Database  # direct: the suite's reads
    client: FlaskClient
    fleet: Fleet
    machines: list[str]

    def start(self, machines: int, projects: Mapping[str, Mapping[str, Any]]) -> None:
        """Start the scheduler and `machines` workers serving `projects`; wait until they do."""
        self.fleet.start_scheduler()
        concurrency = max(CONCURRENCY, math.floor(1 / CAPACITY + 1e-6))
        for index in range(machines):
            name = f"bench{index}-{uuid.uuid4().hex[:6]}"
            self.fleet.start_machine(name, projects, concurrency=concurrency)
            self.machines.append(name)
        wanted = {f"projects.{pid}": {"$exists": True} for pid in projects}
        wait_for(
            lambda: (
                self.db["machines"].count_documents({"_id": {"$in": self.machines}, **wanted})
                == machines
            ),
            timeout=90,
            interval=0.2,
            what=f"{machines} machine worker(s) to register with the bench projects",
        )

    def load(self, project_id: ObjectId, experiments: int, launches: Path) -> Drain:
        """Submit through the batch route; returns once every experiment has ended."""
        sent = datetime.now(UTC)
        ids = submit_batches(self.client, project_id, experiments)
        submitted = datetime.now(UTC)
        wait_for(
            lambda: unfinished(self.db, project_id) == 0,
            timeout=DRAIN_TIMEOUT,
            interval=POLL,
            what=f"FGLab's {experiments} experiments to end",
        )
        docs = list(self.db["experiments"].find({"_project_id": project_id}))
        done = [d for d in docs if d["_status"] == Status.SUCCESS]
        return Drain(
            system="FGLab",
            experiments=experiments,
            drain_s=load_figures(done, len(self.machines), sent, submitted).drain_s,
            statuses=Counter(str(d["_status"]) for d in docs),
            launches=launched(launches),
            ids=frozenset(ids),
        )


@contextlib.contextmanager
def ours(services: Services, tag: str) -> Iterator[Ours]:
    """FGLab on a fresh database; its processes are stopped when the block ends."""
    proxied, direct = services.database(f"fglab_{tag}")
    root = services.root / f"fglab-{tag}"
    settings = services.settings(proxied.name, root)
    store = Store(proxied)
    store.ensure_indexes()
    app = create_app(settings, store=store)
    fleet = Fleet(settings, root / "fleet")
    try:
        yield Ours(root, store, direct, app.test_client(), fleet, [])
    except Exception:
        logger.error("FGLab's fleet logs, last lines:\n%s", _fleet_logs(fleet))
        raise
    finally:
        fleet.stop_all()
        app.extensions["fglab"].redis.close()


def _fleet_logs(fleet: Fleet) -> str:
    return "\n".join(
        f"===== {process.name} =====\n{process.output()[-3000:]}" for process in fleet.processes
    )


# --- Baseline -------------------------------------------------------------------------------


@dataclass
class Baseline:
    """Plain Celery: workers of ``bench/baseline_celery.py`` and a producer app here."""

    root: Path
    db: Database  # direct
    producer: Celery

    def load(self, experiments: int, launches: Path) -> Drain:
        """Send the tasks to the baseline's queue; returns once every task has finished."""
        argv = [sys.executable, *load_args(launches)]
        ids = [str(ObjectId()) for _ in range(experiments)]
        sent = datetime.now(UTC)
        with self.producer.producer_or_acquire() as producer:
            for experiment_id in ids:
                self.producer.send_task(
                    baseline_celery.TASK,
                    args=[experiment_id, [*argv, f"--_id={experiment_id}"]],
                    queue=baseline_celery.QUEUE,
                    producer=producer,
                )
        ended = {"status": {"$in": ["success", "fail"]}}
        wait_for(
            lambda: self.db["experiments"].count_documents(ended) >= experiments,
            timeout=DRAIN_TIMEOUT,
            interval=POLL,
            what=f"the baseline's {experiments} tasks to end",
        )
        docs = list(self.db["experiments"].find({"_id": {"$in": ids}}))
        last = max(d["finished"] for d in docs)
        return Drain(
            system="Celery baseline",
            experiments=experiments,
            drain_s=(last - sent).total_seconds(),
            statuses=Counter(d["status"] for d in docs),
            launches=launched(launches),
            ids=frozenset(ids),
        )


@contextlib.contextmanager
def baseline(services: Services, tag: str, workers: int, concurrency: int) -> Iterator[Baseline]:
    """`workers` baseline worker processes with `concurrency` threads each, ready to work."""
    proxied, direct = services.database(f"baseline_{tag}")
    root = services.root / f"baseline-{tag}"
    env = settings_env(services.settings(proxied.name, root))
    env.update(
        BENCH_MONGODB_URI=services.counter.uri,
        BENCH_MONGODB_DB=proxied.name,
        PYTHONPATH=str(REPO),
    )
    producer = Celery("bench-producer", broker=services.redis_url, set_as_current=False)
    producer.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    processes = []
    try:
        for index in range(workers):
            name = f"baseline{index}-{uuid.uuid4().hex[:6]}"
            command = [
                sys.executable, "-m", "celery", "-A", "bench.baseline_celery", "worker",
                "-Q", baseline_celery.QUEUE, "-n", f"{name}@%h", "--pool", "threads",
                "-c", str(concurrency), "--loglevel", "WARNING",
                "--without-mingle", "--without-gossip",
            ]  # fmt: skip
            log = root / f"{name}.log"
            processes.append(start_process(name, command, env, REPO, log))
        wait_for(
            _all_answer(producer, workers, processes),
            timeout=60,
            interval=0.2,
            what=f"{workers} baseline worker(s) to answer a ping",
        )
        yield Baseline(root, direct, producer)
    finally:
        for process in processes:
            process.stop()
        producer.close()


def _all_answer(producer: Celery, workers: int, processes: list[Any]) -> Callable[[], bool]:
    def check() -> bool:
        dead = [p.name for p in processes if not p.alive()]
        if dead:
            tails = "\n".join(p.output()[-2000:] for p in processes)
            raise RuntimeError(f"baseline worker(s) {dead} exited:\n{tails}")
        return len(producer.control.ping(timeout=0.5)) >= workers

    return check
