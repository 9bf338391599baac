"""Decides where experiments run: pick a live machine with room, reserve, send.

A reservation is taken in the Redis ledger first (atomic check-and-take), then the
experiment moves to ``dispatched`` in MongoDB, then the run task goes to the machine's
queue. Any step that fails undoes the ones before it, so capacity never leaks and an
experiment is never sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from redis import Redis
from redis.exceptions import LockError, RedisError

from config import Settings
from fglab.broker import Broker
from fglab.errors import Conflict, NoCapacity, Unavailable
from fglab.store import Store
from tasks import machines
from tasks.contract import RunRequest, kill_channel
from tasks.counts import Tally
from tasks.database import mongo_client
from tasks.experiments import Reservation
from tasks.ledger import Lease, Ledger

logger = logging.getLogger(__name__)

#: Sends one run request to its machine's queue (a Celery ``send_task`` in production).
Sender = Callable[[RunRequest], None]

#: Queued experiments one query of a dispatch pass reads.
DISPATCH_PAGE = 20


_LOCK_KEY = "fglab:dispatch-lock"
#: Set by every call of dispatch_queued; the running dispatcher passes again while it is.
_AGAIN_KEY = "fglab:dispatch-again"


@dataclass
class _Pass:
    """What one dispatch pass has learnt: live machines per project, CPU load per machine."""

    machines: dict[ObjectId, list[dict[str, Any]]] = field(default_factory=dict)
    load: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    machine: str
    lease: Lease

    @property
    def reservation(self) -> Reservation:
        return Reservation(self.machine, self.lease.token, self.lease.gpu)


class Scheduler:
    """Places experiments on machines; with no ledger (no Redis) nothing is ever placed."""

    def __init__(
        self,
        store: Store,
        ledger: Ledger | None = None,
        send: Sender | None = None,
        *,
        settings: Settings | None = None,
        redis: Redis | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.send = send
        #: Decides which machines are live (`tasks.machines.liveness_window`).
        self.settings = settings or Settings()
        self.redis = redis

    # Submission ---------------------------------------------------------------------

    def submit(
        self,
        project: Mapping[str, Any],
        options: Mapping[str, Any],
        *,
        queue: bool,
        extra: Mapping[str, Any] | None = None,
        priority: int = 0,
    ) -> ObjectId:
        """Start an experiment now, or keep it queued (`queue`), or raise NoCapacity.

        Without `queue` nothing is stored when no machine has room (the original's 501).
        A queued one leaves the queue by `priority`, then age (`tasks.experiments.queue_at`).
        """
        experiment_id = ObjectId()
        placement = self._place(project, experiment_id)
        if isinstance(placement, str):
            if not queue:
                raise NoCapacity("No machine capacity available")
            return self.store.new_experiment(
                project["_id"],
                options,
                experiment_id=experiment_id,
                extra={**(extra or {}), "_waiting": placement},
                priority=priority,
            )
        self.store.new_experiment(
            project["_id"],
            options,
            experiment_id=experiment_id,
            reservation=placement.reservation,
            extra=extra,
            priority=priority,
        )
        self._send(project, experiment_id, placement)
        return experiment_id

    # Dispatching what waits ---------------------------------------------------------

    def dispatch_queued(self, limit: int = 500) -> int:
        """Place queued experiments, highest effective priority first (priority, then
        age: `tasks.experiments.QUEUE_ORDER`); returns how many were dispatched.

        One dispatcher runs at a time (a Redis lock), so two do not race for the same
        experiments; each placement is safe anyway, the lock saves wasted reservations.
        A call that finds the lock taken does not wait: it leaves a mark that makes the
        running dispatcher pass over the queue once more, so no request for a dispatch
        is lost and none queues up behind another.
        """
        if self.ledger is None:
            return 0
        if self.redis is None:
            return self._dispatch_queued(limit)
        self.redis.set(_AGAIN_KEY, 1, ex=60)
        dispatched = 0
        while True:
            lock = self.redis.lock(_LOCK_KEY, timeout=60)
            if not lock.acquire(blocking=False):
                return dispatched  # the holder sees the mark and passes again
            try:
                while self.redis.delete(_AGAIN_KEY):
                    dispatched += self._dispatch_queued(limit)
            finally:
                try:
                    lock.release()
                except LockError:
                    logger.warning("dispatch lock expired before release")
            # A mark left between our last look and the release is ours to serve.
            if not self.redis.exists(_AGAIN_KEY):
                return dispatched

    def _dispatch_queued(self, limit: int) -> int:
        # Read the queue a page at a time, leaving out projects already found blocked:
        # a pass after one experiment ended mostly places one, and reading the whole
        # queue on every event made each pass cost as much as the queue is long.
        placing = _Pass()
        projects: dict[ObjectId, dict[str, Any] | None] = {}
        blocked: dict[ObjectId, str] = {}  # projects no machine has room for, and why
        passed: set[ObjectId] = set()  # blocked or deleted projects: not read again
        tally = Tally()  # a page's moves, one counter write a project
        try:
            dispatched = self._dispatch_pages(limit, placing, projects, blocked, passed, tally)
        finally:
            self.store.flush_counts(tally)
        return dispatched

    def _dispatch_pages(
        self,
        limit: int,
        placing: _Pass,
        projects: dict[ObjectId, dict[str, Any] | None],
        blocked: dict[ObjectId, str],
        passed: set[ObjectId],
        tally: Tally,
    ) -> int:
        dispatched = seen = 0
        while seen < limit:
            size = min(DISPATCH_PAGE, limit - seen)
            page = self.store.queued(passed, size)
            stale: dict[ObjectId, str] = {}  # blocked projects whose waiting reason changed
            for doc in page:
                seen += 1
                project_id = doc["_project_id"]
                if project_id not in projects:
                    projects[project_id] = self.store.projects.lookup(project_id)
                project = projects[project_id]
                if project is None:
                    passed.add(project_id)
                    continue
                placed = blocked.get(project_id) or self._place(project, doc["_id"], placing)
                if isinstance(placed, str):
                    blocked[project_id] = placed
                    passed.add(project_id)
                    if doc.get("_waiting") != placed:
                        stale[project_id] = placed
                    continue
                moved = self.store.dispatch(doc["_id"], placed.reservation, tally)
                if moved is None:  # cancelled or taken meanwhile
                    self._release(placed, doc["_id"])
                    continue
                self._send(project, doc["_id"], placed)
                dispatched += 1
            for project_id, reason in stale.items():
                self.store.set_waiting(project_id, reason)
            self.store.flush_counts(tally)  # a page's moves counted now, not at the pass's end
            if len(page) < size:
                break
        return dispatched

    # Placement ----------------------------------------------------------------------

    def live_machines(self, project_id: ObjectId) -> list[dict[str, Any]]:
        """Live machines that implement the project (drained ones included)."""
        return self.store.machines_serving(project_id, machines.live_since(self.settings))

    def _place(
        self, project: Mapping[str, Any], experiment_id: ObjectId, placing: _Pass | None = None
    ) -> Placement | str:
        """Reserve room on the least loaded machine that fits, or say why none does.

        `placing` keeps what one dispatch pass learnt (machines, their load) for the
        next placement of the same pass.
        """
        if self.ledger is None or self.send is None:
            return "no scheduler connected to Redis"
        placing = placing or _Pass()
        project_id = project["_id"]
        if project_id not in placing.machines:
            placing.machines[project_id] = self.live_machines(project_id)
        candidates = placing.machines[project_id]
        if not candidates:
            return "no live machine implements this project"
        open_machines = [m for m in candidates if not m.get("drained")]
        if not open_machines:
            return "every machine that implements this project is drained"
        try:
            for machine in open_machines:
                if machine["_id"] not in placing.load:
                    placing.load[machine["_id"]] = self._load(machine)
            ordered = sorted(open_machines, key=lambda m: placing.load[m["_id"]])
            for machine in ordered:
                lease = self._reserve(machine, project_id, experiment_id)
                if lease is not None:
                    placing.load[machine["_id"]] += lease.cpu
                    return Placement(machine["_id"], lease)
        except RedisError as e:
            logger.warning("ledger unreachable, experiment %s waits: %s", experiment_id, e)
            return "the capacity ledger (Redis) is unreachable"
        return _full_reason(open_machines, project_id)

    def _load(self, machine: Mapping[str, Any]) -> float:
        assert self.ledger is not None
        return self.ledger.usage(machine["_id"], int(machine.get("gpu_count") or 0)).cpu_used

    def _reserve(
        self, machine: Mapping[str, Any], project_id: ObjectId, experiment_id: ObjectId
    ) -> Lease | None:
        assert self.ledger is not None
        implementation = machine["projects"][str(project_id)] or {}
        gpu_share = float(implementation.get("gpu_capacity") or 0.0)
        gpu_count = int(machine.get("gpu_count") or 0)
        if gpu_share and not gpu_count:
            return None
        return self.ledger.reserve(
            machine["_id"],
            str(experiment_id),
            float(implementation.get("capacity") or 1.0),
            gpu_share=gpu_share,
            gpu_count=gpu_count,
            busy_gpus=machines.unavailable_gpus(machine),
        )

    def _send(
        self, project: Mapping[str, Any], experiment_id: ObjectId, placement: Placement
    ) -> None:
        assert self.send is not None
        request = RunRequest(
            experiment_id=str(experiment_id),
            project_id=str(project["_id"]),
            machine=placement.machine,
            token=placement.lease.token,
            gpu=placement.lease.gpu,
        )
        try:
            self.send(request)
        except Unavailable:
            # The broker refused (and said so once): give the room back, wait again.
            self._release(placement, experiment_id)
            self.store.requeue(experiment_id)

    def _release(self, placement: Placement, experiment_id: ObjectId) -> None:
        assert self.ledger is not None
        try:
            self.ledger.release(placement.machine, str(experiment_id), placement.lease.token)
        except RedisError as e:
            logger.warning(
                "could not release %s on %s (it expires): %s", experiment_id, placement.machine, e
            )

    def cancel(self, experiment_id: ObjectId) -> dict[str, Any]:
        """Stop an experiment: a waiting one never starts, a running one is killed.

        Queued or dispatched experiments become ``cancelled`` at once (a message still on
        its way finds the status changed and launches nothing); claimed or running ones
        get a kill request that their worker acts on within a second (TERM to the process
        group, then KILL after the grace period). Returns the experiment afterwards.
        """
        doc = self.store.cancel(experiment_id)
        if doc is not None and self.ledger is not None and doc.get("_machine_id"):
            self._release(Placement(doc["_machine_id"], _stub_lease(doc)), experiment_id)
        if doc is None:
            doc = self.store.request_kill(experiment_id)
            if doc is not None:
                self._tell_machine(doc)
        if doc is None:
            doc = self.store.get_experiment(experiment_id)
            raise Conflict(f"Experiment {experiment_id} has already ended ({doc['_status']})")
        return doc

    def prune(self, experiment_id: ObjectId, reason: str, step: int) -> bool:
        """Stop a sweep's trial early: it is stopped as a kill is (TERM, grace, KILL) and
        ends ``pruned`` with `reason`. False when it no longer runs or is already being
        pruned."""
        doc = self.store.request_prune(experiment_id, reason, step)
        if doc is None:
            return False
        self._tell_machine(doc)
        return True

    def _tell_machine(self, doc: Mapping[str, Any]) -> None:
        """Hurry a kill request to its machine (its heartbeat would find it anyway)."""
        if self.redis is None or not doc.get("_machine_id"):
            return
        try:
            self.redis.publish(kill_channel(doc["_machine_id"]), str(doc["_id"]))
        except RedisError as e:
            logger.warning(
                "kill of %s not announced (its machine's heartbeat finds it): %s", doc["_id"], e
            )

    def requeue_unclaimed(self, experiment_ids: Iterable[ObjectId]) -> int:
        """Put dispatched experiments whose reservation vanished back in the queue."""
        return sum(self.store.requeue(experiment_id) for experiment_id in experiment_ids)


def _full_reason(machines: list[dict[str, Any]], project_id: ObjectId) -> str:
    needs_gpu = any(
        float((m["projects"].get(str(project_id)) or {}).get("gpu_capacity") or 0) for m in machines
    )
    if needs_gpu and not any(int(m.get("gpu_count") or 0) for m in machines):
        return "it needs a GPU and no machine that implements it has one"
    busy = [m["_id"] for m in machines if m.get("gpu_busy")]
    if needs_gpu and busy:
        return (
            "all capacity in use; GPU memory on "
            + ", ".join(busy)
            + " is taken by processes outside the fleet"
        )
    down = [m["_id"] for m in machines if m.get("gpu_down")]
    if needs_gpu and down:
        return "all capacity in use; GPUs on " + ", ".join(down) + " are down or excluded"
    return "all capacity in use"


def _stub_lease(doc: Mapping[str, Any]) -> Lease:
    return Lease(
        owner=str(doc["_id"]), machine=doc["_machine_id"], token=doc.get("_token") or "", cpu=0.0
    )


def connect_scheduler(
    settings: Settings, broker: Broker, store: Store | None = None, redis: Redis | None = None
) -> Scheduler:
    """The scheduler wired to MongoDB, the Redis ledger and the machines' queues."""
    if store is None:
        store = Store(mongo_client(settings)[settings.mongodb_db])
        store.ensure_indexes()
    redis = redis or Redis.from_url(settings.redis)
    return Scheduler(
        store,
        Ledger(redis, ttl=settings.lease_ttl),
        broker.run_experiment,
        settings=settings,
        redis=redis,
    )
