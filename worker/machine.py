"""One machine's runtime: its connections, projects, running experiments and heartbeat.

The heartbeat keeps four things true while the worker lives: the supervisors of its runs
know it is there (one left alone longer than a lease stops its run), the machine's record
in MongoDB is fresh (the scheduler only uses machines that beat), the leases of its
running experiments are renewed (a dead worker's leases expire by themselves), and
projects.json changes reach FGLab.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pymongo
from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import PyMongoError
from redis import Redis
from redis.exceptions import RedisError

from config import Settings
from tasks import experiments, machines
from tasks.contract import FINISHED, ExperimentEvent, dispatch_channel, kill_channel
from tasks.database import mongo_client
from tasks.ledger import Lease, Ledger
from tasks.states import Status
from worker.changes import WakingEvent
from worker.launcher import group_alive, stop_group
from worker.projects import Implementation, ProjectsFile
from worker.specs import gpu_memory_used, read_specs
from worker.supervision import ForkServer, Supervised
from worker.telemetry import (
    GpuReport,
    RunStats,
    gpu_memory_of,
    history_point,
    process_tree,
    read_gpu_report,
    tree_usage,
)

logger = logging.getLogger(__name__)

#: Chart points an experiment keeps of its resource use (one each 6 heartbeats: a day).
RUN_POINTS = 2880


@dataclass
class Running:
    """What the heartbeat and kill need to know about one running experiment."""

    experiment_id: str
    token: str
    cpu: float
    gpu_share: float
    gpu: int | None
    #: Set when someone asked to stop it (the kill channel, or the heartbeat's look).
    kill: WakingEvent = field(default_factory=WakingEvent)
    #: Its supervisor, once the program runs; the heartbeat keeps it company.
    supervised: Supervised | None = None


class Machine:
    """The worker side of one machine; one per worker process."""

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        redis: Redis | None = None,
        notify: Callable[[ExperimentEvent | None], None] | None = None,
        nvml: Any = None,
    ) -> None:
        """``nvml`` stands in for the pynvml module (tests); None asks the real NVML."""
        self.settings = settings
        self.nvml = nvml
        self.name = settings.machine_name
        self.db = db if db is not None else mongo_client(settings)[settings.mongodb_db]
        self.redis = redis or Redis.from_url(settings.redis)
        self.ledger = Ledger(self.redis, ttl=settings.lease_ttl)
        self.projects = ProjectsFile(settings.projects_file)
        #: Tells FGLab of a run's event; None: only ask it to dispatch (room came free).
        self.notify = notify or (lambda event: None)
        self.gpu_count = 0
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()
        self._published: dict[str, Any] | None = None
        self._published_error: str | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._run_stats: dict[str, RunStats] = {}
        self._pids: dict[str, int] = {}
        self._last_point: dict[str, float] = {}
        self._down: tuple[int, ...] = ()
        #: Set when the worker stops and leaves its runs to their supervisors.
        self.detaching = threading.Event()
        self._adopted: list[threading.Thread] = []
        #: Forks each run's supervisor (started with the worker, or on the first run).
        self.forkserver = ForkServer()

    # Running experiments ------------------------------------------------------------

    def add_running(self, running: Running) -> None:
        with self._lock:
            self._running[running.experiment_id] = running

    def remove_running(self, experiment_id: str) -> None:
        with self._lock:
            self._running.pop(experiment_id, None)

    def running(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    def add_adopted(self, thread: threading.Thread) -> None:
        """A thread that follows a run an earlier worker left (see `wait_for_adopted`)."""
        with self._lock:
            self._adopted.append(thread)

    def leave_runs(self) -> None:
        """The worker is stopping: runs stay with their supervisors for the next worker."""
        self.detaching.set()

    def wait_for_adopted(self) -> None:
        """Wait until every re-adopted run has ended (a warm shutdown that waits for runs)."""
        with self._lock:
            adopted = list(self._adopted)
        for thread in adopted:
            thread.join()

    def implementation(self, project_id: str) -> Implementation | None:
        return self.projects.current().get(project_id)

    # Registration and heartbeat -----------------------------------------------------

    def register(self) -> None:
        """Write this machine's specs and projects to MongoDB and mark it alive."""
        specs = read_specs(self.name, self.settings.gpu_count, self.nvml)
        self.gpu_count = len(specs.gpus)
        machines.register(self.db, self.name, specs.to_dict())
        self.beat()
        logger.info("machine %s registered with %d GPU(s)", self.name, self.gpu_count)

    def beat(self) -> None:
        """One heartbeat: tell supervisors, renew leases, refresh the record, look for kill
        requests, publish projects.json changes."""
        self._touch_supervisors()
        self._renew_leases()
        projects = {pid: impl.summary() for pid, impl in self.projects.current().items()}
        fields: dict[str, Any] = {machines.GPU_BUSY: self.busy_gpus()}
        report = self._gpu_report()
        if report is not None:
            fields[machines.GPU_DETAILS] = list(report.gpus)
            fields[machines.GPU_DOWN] = list(report.down)
        changed = projects != self._published or self.projects.error != self._published_error
        if changed:
            fields[machines.PROJECTS] = projects
            fields[machines.PROJECTS_ERROR] = self.projects.error
        try:
            # Bounded: an unreachable MongoDB (5 s server selection) must not delay the
            # next lease renewal past the lease's life, or the sweep marks work lost.
            machines.beat(self.db, self.name, fields, within=self.settings.lease_ttl / 4)
        except PyMongoError as e:
            logger.warning("machine %s: heartbeat not stored: %s", self.name, e)
            return
        self._look_for_kills()
        self._record_telemetry(report)
        if changed:
            first = self._published is None
            self._published, self._published_error = projects, self.projects.error
            if not first:
                logger.info(
                    "machine %s: projects.json changed, %d project(s)", self.name, len(projects)
                )
            self.notify(None)

    def nudge(self) -> None:
        """Say this machine has room again, so the scheduler dispatches what waits.

        A publish on the fleet's dispatch channel; when no scheduler hears it (none
        listening, or Redis blinked), a dispatch task instead.
        """
        try:
            if self.redis.publish(dispatch_channel(self.settings.mongodb_db), self.name):
                return
        except RedisError as e:
            logger.warning("machine %s: dispatch nudge not sent: %s", self.name, e)
        self.notify(None)

    def record_start_failure(self, reason: str) -> bool:
        """Count a program that could not start; drain the machine after too many.

        One broken box (a missing interpreter, a full disk) must not eat a whole batch:
        after ``drain_after_failures`` failures within ``drain_window`` seconds the
        machine marks itself drained, with why, until someone resumes it. Returns True
        when this failure drained the machine.
        """
        limit = self.settings.drain_after_failures
        moment = datetime.now(UTC).timestamp()
        failures = machines.record_start_failure(self.db, self.name, moment, limit)
        recent = [t for t in failures if t >= moment - self.settings.drain_window]
        if len(recent) < limit:
            return False
        reason = (
            f"{len(recent)} experiments failed to start within "
            f"{self.settings.drain_window:g}s; last: {reason}"
        )
        machines.drain(self.db, self.name, reason)
        logger.warning("machine %s drains itself: %s", self.name, reason)
        return True

    def busy_gpus(self) -> list[int]:
        """GPUs whose memory processes outside the fleet hold (NVML), to be left alone."""
        if self.settings.gpu_count is not None or not self.gpu_count:
            return []  # simulated GPUs: nothing to measure
        ours = {r.gpu for r in self.running() if r.gpu is not None}
        busy = []
        for index in range(self.gpu_count):
            if index in ours:
                continue
            used = gpu_memory_used(index, self.nvml)
            if used is not None and used > self.settings.gpu_busy_bytes:
                busy.append(index)
        return busy

    # Telemetry (worker.telemetry) --------------------------------------------------

    def _history_keep(self) -> int:
        """GPU history points a machine keeps: an hour of heartbeats."""
        return max(1, math.ceil(3600 / self.settings.heartbeat))

    def _gpu_report(self) -> GpuReport | None:
        """This beat's GPU telemetry; None for simulated GPUs or none at all."""
        if self.settings.gpu_count is not None or not self.gpu_count:
            return None
        report = read_gpu_report(self.gpu_count, self.settings, self.nvml)
        if report.down != self._down:
            reasons = {g["index"]: g.get("down") for g in report.gpus}
            for index in sorted(set(report.down) - set(self._down)):
                why = reasons.get(index) or "NVML cannot be loaded"
                logger.warning("machine %s: GPU %s takes no new work: %s", self.name, index, why)
            for index in sorted(set(self._down) - set(report.down)):
                logger.warning("machine %s: GPU %s is back and takes work", self.name, index)
            self._down = report.down
        return report

    def _record_telemetry(self, report: GpuReport | None) -> None:
        """Keep the GPU history point and each running experiment's resource use."""
        now = time.time()
        running = self.running()
        try:
            with pymongo.timeout(self.settings.lease_ttl / 4):
                if report is not None and report.gpus:
                    point = history_point(now, report.gpus)
                    machines.record_gpu_history(self.db, self.name, point, self._history_keep())
                for run in running:
                    self._record_run(run, report, now)
        except PyMongoError as e:
            logger.warning("machine %s: telemetry not stored: %s", self.name, e)
        for gone in set(self._run_stats) - {r.experiment_id for r in running}:
            self._run_stats.pop(gone, None)
            self._pids.pop(gone, None)
            self._last_point.pop(gone, None)

    def _record_run(self, run: Running, report: GpuReport | None, now: float) -> None:
        experiment_id = ObjectId(run.experiment_id)
        if run.experiment_id not in self._pids:
            doc = experiments.get(self.db, experiment_id, [experiments.PID]) or {}
            if not doc.get(experiments.PID):
                return  # not started yet
            self._pids[run.experiment_id] = int(doc[experiments.PID])
        cpu_seconds, rss, pids = tree_usage(process_tree(self._pids[run.experiment_id]))
        if not pids:
            return  # ended between the look and now
        stats = self._run_stats.setdefault(run.experiment_id, RunStats(gpu=run.gpu))
        gpu_memory = utilization = None
        gpu = report.gpu(run.gpu) if report is not None and run.gpu is not None else None
        if report is not None and gpu is not None and not gpu.get("down"):
            gpu_memory = gpu_memory_of(pids, report.processes().get(gpu["index"], {}))
            utilization = gpu.get("utilization")
        point = stats.add(now, cpu_seconds, rss, gpu_memory, utilization)
        every = 6 * self.settings.heartbeat
        if now - self._last_point.get(run.experiment_id, 0.0) < every:
            experiments.set_fields(self.db, experiment_id, {experiments.RESOURCES: stats.summary()})
            return
        self._last_point[run.experiment_id] = now
        experiments.record_resources(self.db, experiment_id, stats.summary(), point, RUN_POINTS)

    def _look_for_kills(self) -> None:
        """Kill requests the channel did not bring (Redis blinked): one query a beat."""
        running = {ObjectId(r.experiment_id): r for r in self.running()}
        if not running:
            return
        try:
            # Bounded like the record's write, for the same reason: leases come first.
            with pymongo.timeout(self.settings.lease_ttl / 4):
                requested = experiments.kill_requests(self.db, running)
            for experiment_id in requested:
                running[experiment_id].kill.set()
        except PyMongoError as e:
            logger.warning("machine %s: kill requests not read: %s", self.name, e)

    def _hear_kills(self) -> None:
        """Follow the kill channel: a stop request reaches its run within milliseconds."""
        while not self._stop.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(kill_channel(self.name))
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._kill(_text(message["data"]))
            except RedisError as e:
                logger.warning("machine %s: kill channel lost (%s); reconnecting", self.name, e)
                self._stop.wait(1.0)
            finally:
                pubsub.close()

    def _kill(self, experiment_id: str) -> None:
        with self._lock:
            running = self._running.get(experiment_id)
        if running is not None:
            running.kill.set()

    def _touch_supervisors(self) -> None:
        for running in self.running():
            if running.supervised is not None:
                try:
                    running.supervised.touch()
                except OSError as e:  # its folder is gone: the run is ending
                    logger.debug("experiment %s: heartbeat file: %s", running.experiment_id, e)

    def _renew_leases(self) -> None:
        running = self.running()
        if not running:
            return
        try:
            live = self.ledger.renew(self.name, [r.experiment_id for r in running])
            for lost in (r for r in running if r.experiment_id not in live):
                # Redis was emptied or restarted: the program still holds its share.
                self.ledger.restore(
                    Lease(
                        owner=lost.experiment_id,
                        machine=self.name,
                        token=lost.token,
                        cpu=lost.cpu,
                        gpu=lost.gpu,
                        gpu_share=lost.gpu_share,
                    )
                )
        except RedisError as e:
            logger.warning("machine %s: leases not renewed: %s", self.name, e)

    def recover_unsupervised(self, doc: dict[str, Any], left: Supervised | None = None) -> bool:
        """After a restart: end a run an earlier worker left without a live supervisor
        (claimed but never started, a supervisor that died, or a run from before
        supervisors).

        The program's process group, as its supervisor's own file in the run folder
        (`left`) says, is stopped if still alive, and the experiment is marked ``lost``
        with why (one the sweep already marked lost keeps its status; the reason gains
        the stop). The ``_pgid`` of the document is never signalled: people can write it.
        Returns True when it was newly marked lost.
        """
        pgid = left.program_pid if left is not None else 0
        recorded = doc.get("_pgid")
        if recorded not in (None, pgid):
            logger.warning(
                "experiment %s: _pgid %r in MongoDB is not its supervisor's process group"
                " (%s); ignored",
                doc["_id"], recorded, pgid or "none recorded",
            )  # fmt: skip
        reaped = pgid > 1 and group_alive(pgid)
        if reaped:
            stop_group(pgid, self.settings.kill_grace)
        stopped = f"process group {pgid} was still running and has been stopped"
        if doc["_status"] == str(Status.LOST):
            reason = None
            if reaped:
                before = (doc.get("_exit") or {}).get("reason") or "lost"
                reason = f"{before}; {stopped} by the restarted worker"
                logger.warning("experiment %s: %s", doc["_id"], stopped)
            experiments.note_reaped(self.db, doc["_id"], reason)
            return False
        reason = "its worker stopped while it ran" + (f"; {stopped}" if reaped else "")
        if experiments.lose(self.db, doc["_id"], reason, reaped=True) is None:
            return False
        self.ledger.release(self.name, str(doc["_id"]))
        self.notify(ExperimentEvent(str(doc["_id"]), FINISHED))
        logger.warning("experiment %s: lost (%s)", doc["_id"], reason)
        return True

    def start_heartbeat(self) -> None:
        """Start the heartbeat and the kill channel's listener (daemon threads)."""
        if self._threads:
            return
        self._stop.clear()
        for name, target in (("heartbeat", self._beat_forever), ("kills", self._hear_kills)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop_heartbeat(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.settings.heartbeat):
            try:
                self.beat()
            except Exception:
                logger.exception("machine %s: heartbeat failed", self.name)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
