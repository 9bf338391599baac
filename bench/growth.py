"""Growth: what a dispatch pass costs as the queue grows, and throughput as machines are added.

Dispatch is timed by calling ``Scheduler.dispatch_queued()`` directly, in this process,
on a queue of K experiments stored as the batch route stores them, for a machine record
that beats (written through ``tasks.machines``, as a worker writes it). The run request
goes to a list instead of the broker, so the figure is the scheduler's own work:
MongoDB, the ledger, the lock. Two passes per size: one where the machine has room for
one experiment (the pass after an experiment ended, the common case) and one where it
has room for all K. Between repeats the placed experiments go back to the queue. Not run
by itself: ``bench/suite.py`` uses it.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bson import ObjectId

from bench.services import Counts, Services
from fglab.scheduler import Scheduler
from fglab.store import Store
from tasks import machines
from tasks.contract import RunRequest
from tasks.ledger import Ledger


@dataclass(frozen=True)
class Pass:
    """One kind of dispatch pass at one queue length."""

    queued: int
    placed: int  # experiments one pass placed
    seconds: float  # median over the repeats
    counts: Counts  # of the last repeat


def dispatch_passes(services: Services, queued: int, repeats: int) -> tuple[Pass, Pass]:
    """(room for one, room for all): dispatch passes over `queued` waiting experiments."""
    proxied, _ = services.database(f"growth_{queued}")
    store = Store(proxied)
    store.ensure_indexes()
    project_id = store.projects.create(f"growth-{uuid.uuid4().hex[:6]}", {})
    for start in range(0, queued, 250):  # as the batch route stores them, 250 at a time
        store.new_experiments(project_id, [{}] * min(250, queued - start))
    settings = services.settings(proxied.name, services.root / "growth")
    ledger = Ledger(services.redis, ttl=settings.lease_ttl)
    sent: list[RunRequest] = []
    scheduler = Scheduler(store, ledger, sent.append, settings=settings, redis=services.redis)
    machine = f"growth-{uuid.uuid4().hex[:6]}"

    def serve(capacity: float) -> None:
        """The machine's record as its worker writes it: implementing the project, live."""
        implementation = {"capacity": capacity, "gpu_capacity": 0.0, "options": "double-dash"}
        machines.register(proxied, machine, {"projects": {str(project_id): implementation}})
        machines.beat(proxied, machine, {}, within=5.0)

    serve(1.0)
    one = _timed_passes(services, scheduler, repeats, undo=lambda: _undo(store, ledger, sent))
    serve(1.0 / queued)
    # Placing all of a long queue takes seconds, and so does undoing it: once is enough.
    again = repeats if queued <= 100 else 1
    every = _timed_passes(
        services, scheduler, again, undo=lambda: _undo(store, ledger, sent), limit=queued
    )
    ledger.redis.delete(ledger.lease_key(machine), ledger.expiry_key(machine))
    return Pass(queued, *one), Pass(queued, *every)


def _timed_passes(
    services: Services,
    scheduler: Scheduler,
    repeats: int,
    undo: Callable[[], None],
    limit: int = 500,
) -> tuple[int, float, Counts]:
    """(placed by the last pass, median seconds of a pass, the last pass's counts)."""
    times: list[float] = []
    placed = 0
    counts = Counts(Counter(), Counter())
    for _ in range(repeats):
        with services.window() as box:
            started = time.perf_counter()
            placed = scheduler.dispatch_queued(limit)
            times.append(time.perf_counter() - started)
        counts = box[0]
        undo()
    return placed, statistics.median(times), counts


def _undo(store: Store, ledger: Ledger, sent: list[RunRequest]) -> None:
    """Give back what the last pass placed: the lease, and the experiment to the queue."""
    while sent:
        request = sent.pop()
        ledger.release(request.machine, request.experiment_id, request.token)
        store.requeue(ObjectId(request.experiment_id))
