"""Load: many short experiments over several machine workers, each run exactly once.

A scheduler process and ``MACHINES`` machine workers (real Celery processes, one per
machine name) take ``EXPERIMENTS`` experiments submitted in a few batch requests. Each
launch appends its ``--_id=...`` option to a shared file, so a launch that happened twice
(or never) shows. The figures (experiments/s, time to drain, latencies) are printed in
the test output; ``bench/bench_fleet.py`` runs the same measurement by hand.

    FGLAB_LOAD_EXPERIMENTS=200 pytest tests/integration/workers/test_load.py -s

It is marked ``load``: a quick local run leaves it out with ``-m "not load"``; the default
run (and CI) keeps it.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from tasks.states import TERMINAL, Status
from tests.integration.fleet import Fleet, counts_agree
from tests.waiting import wait_for

pytestmark = pytest.mark.load

#: Read at import: the autouse fixture clears FGLAB_* variables before each test runs.
EXPERIMENTS = int(os.environ.get("FGLAB_LOAD_EXPERIMENTS", "1000"))
MACHINES = 3
#: Ten experiments at once per machine; the worker pool must have at least that many slots.
CAPACITY = 0.1
CONCURRENCY = 12
#: Option sets per batch request.
BATCH = 250
#: A deadline for the whole drain, not a target: the figures say how fast it went.
DRAIN_TIMEOUT = 900.0

#: The program: append the last argv item (the ``--_id=...`` option) to the file argv[1].
APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[-1] + '\\n')"


def implementation(root: Path, launches: Path, capacity: float = CAPACITY) -> dict[str, Any]:
    """A projects.json entry running the tiny program; options come last, ``_id`` last of all."""
    return {
        "cwd": str(root),
        "command": sys.executable,
        "args": ["-S", "-c", APPEND, str(launches)],
        "options": "double-dash",
        "boolean": "mandatory",
        "capacity": capacity,
        "results": str(root / "results"),
    }


@dataclass(frozen=True)
class Figures:
    """What one load run measured; seconds throughout."""

    experiments: int
    machines: int
    submit_s: float  # the batch requests themselves
    drain_s: float  # first request sent -> last experiment finished
    dispatch_to_start: tuple[float, float]  # mean, 95th percentile
    submit_to_finish: tuple[float, float]  # mean, 95th percentile

    @property
    def per_second(self) -> float:
        return self.experiments / self.drain_s if self.drain_s > 0 else math.inf

    def summary(self) -> str:
        def pair(values: tuple[float, float]) -> str:
            return f"mean {values[0]:.3f} s, p95 {values[1]:.3f} s"

        return "\n".join(
            [
                f"load: {self.experiments} experiments on {self.machines} machines",
                f"  experiments/s     : {self.per_second:.1f}",
                f"  time to drain     : {self.drain_s:.1f} s "
                f"(batch requests {self.submit_s:.1f} s)",
                f"  dispatch -> start : {pair(self.dispatch_to_start)}",
                f"  submit -> finish  : {pair(self.submit_to_finish)}",
            ]
        )

    def properties(self) -> dict[str, float]:
        return {
            "experiments_per_s": round(self.per_second, 3),
            "drain_s": round(self.drain_s, 3),
            "dispatch_to_start_mean_s": round(self.dispatch_to_start[0], 4),
            "dispatch_to_start_p95_s": round(self.dispatch_to_start[1], 4),
            "submit_to_finish_mean_s": round(self.submit_to_finish[0], 4),
            "submit_to_finish_p95_s": round(self.submit_to_finish[1], 4),
        }


def mean_p95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95th percentile (nearest rank) of `values`; zeros when there are none."""
    if not values:
        return 0.0, 0.0
    ordered = sorted(values)
    rank = max(0, math.ceil(0.95 * len(ordered)) - 1)
    return statistics.fmean(ordered), ordered[rank]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def figures(
    docs: Iterable[Mapping[str, Any]], machines: int, sent: datetime, submitted: datetime
) -> Figures:
    """Figures from the finished experiments' timestamps; `sent` is when the first request left."""
    docs = list(docs)
    finished = [_aware(d["_finished"]) for d in docs]
    starts = [
        (_aware(d["_started"]) - _aware(d["_dispatched"])).total_seconds()
        for d in docs
        if d.get("_started") and d.get("_dispatched")
    ]
    ends = [(_aware(d["_finished"]) - _aware(d["_created"])).total_seconds() for d in docs]
    return Figures(
        experiments=len(docs),
        machines=machines,
        submit_s=(submitted - sent).total_seconds(),
        drain_s=(max(finished) - sent).total_seconds() if finished else 0.0,
        dispatch_to_start=mean_p95(starts),
        submit_to_finish=mean_p95(ends),
    )


def submit_batches(client: Any, project_id: object, count: int) -> list[str]:
    """POST `count` experiments in batches of BATCH; returns their IDs in order."""
    ids: list[str] = []
    while len(ids) < count:
        size = min(BATCH, count - len(ids))
        answer = client.post(f"/api/v1/projects/{project_id}/batch", json=[{}] * size)
        assert answer.status_code == 201, answer.json
        ids.extend(answer.json["_ids"])
    return ids


def unfinished(db: Database, project_id: object) -> int:
    terminal = [str(s) for s in TERMINAL]
    return db["experiments"].count_documents(
        {"_project_id": project_id, "_status": {"$nin": terminal}}
    )


def launched(launches: Path) -> Counter[str]:
    """How many times each experiment ID was launched, from the launches file."""
    text = launches.read_text() if launches.exists() else ""
    return Counter(line.removeprefix("--_id=") for line in text.splitlines())


@dataclass(frozen=True)
class LoadRun:
    ids: list[str]
    machines: list[str]
    docs: list[dict[str, Any]]
    figures: Figures


def run_load(
    client: Any,
    store: Any,
    fleet: Fleet,
    root: Path,
    *,
    db: Database,
    experiments: int,
    machines: int,
    capacity: float = CAPACITY,
    timeout: float = DRAIN_TIMEOUT,
) -> LoadRun:
    """Start a scheduler and `machines` workers, submit, wait until nothing is unfinished.

    `store` creates the project; `db` (the database `store` wraps) is read directly.
    """
    launches = root / "launches.txt"
    project_id = store.projects.create(f"load-{uuid.uuid4().hex[:6]}", {})
    names = [f"load{index}-{uuid.uuid4().hex[:6]}" for index in range(machines)]
    fleet.start_scheduler()
    for name in names:
        fleet.start_machine(
            name,
            {str(project_id): implementation(root, launches, capacity)},
            concurrency=max(CONCURRENCY, math.floor(1 / capacity + 1e-6)),
        )
    wait_for(
        lambda: (
            db["machines"].count_documents(
                {"_id": {"$in": names}, f"projects.{project_id}": {"$exists": True}}
            )
            == len(names)
        ),
        timeout=60,
        interval=0.2,
        what="every machine to register with the project",
    )

    sent = datetime.now(UTC)
    ids = submit_batches(client, project_id, experiments)
    submitted = datetime.now(UTC)
    wait_for(
        lambda: unfinished(db, project_id) == 0,
        timeout=timeout,
        interval=1.0,
        what=f"{experiments} experiments to end",
    )
    docs = list(db["experiments"].find({"_project_id": project_id}))
    done = [d for d in docs if d["_status"] == Status.SUCCESS]
    return LoadRun(ids, names, docs, figures(done, machines, sent, submitted))


@pytest.fixture
def settings(settings):
    return settings.with_changes(lease_ttl=15.0, heartbeat=1.0, kill_grace=2.0)


@pytest.fixture
def fleet(settings, tmp_path, request):
    """Logs are printed only after a failure: they are long, and this test is run with -s."""
    fleet = Fleet(settings, tmp_path / "fleet")
    failed_before = request.session.testsfailed
    yield fleet
    fleet.stop_all()
    if request.session.testsfailed > failed_before:
        fleet.print_logs()


def test_a_thousand_short_experiments_each_succeed_once_and_leave_nothing_behind(
    client, store, db, fleet, ledger, tmp_path, capsys, record_property
):
    run = run_load(
        client, store, fleet, tmp_path, db=db, experiments=EXPERIMENTS, machines=MACHINES
    )

    with capsys.disabled():
        print("\n" + run.figures.summary())
    for name, value in run.figures.properties().items():
        record_property(name, value)

    statuses = Counter(d["_status"] for d in run.docs)
    assert statuses == {"success": EXPERIMENTS}
    assert len(set(run.ids)) == EXPERIMENTS
    assert {str(d["_id"]) for d in run.docs} == set(run.ids)
    counts = launched(tmp_path / "launches.txt")
    assert set(counts) == set(run.ids)
    assert [i for i, n in counts.items() if n != 1] == []
    assert {d["_machine_id"] for d in run.docs} <= set(run.machines)

    def nothing_left() -> bool:
        usages = [ledger.usage(name) for name in run.machines]
        keys = [ledger.lease_key(name) for name in run.machines]
        keys += [ledger.expiry_key(name) for name in run.machines]
        results = tmp_path / "results"
        return (
            all(u.cpu_used == 0 and not u.leases for u in usages)
            and ledger.redis.exists(*keys) == 0
            and not (results.exists() and any(results.iterdir()))
        )

    wait_for(nothing_left, timeout=30, interval=0.2, what="every lease and results folder to go")
    assert all(ledger.usage(name).cpu_used == 0 for name in run.machines)
    wait_for(lambda: counts_agree(db), timeout=10, what="the counters to equal a real count")
