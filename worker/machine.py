"""One machine's runtime: its connections, projects, running experiments and heartbeat.

The heartbeat keeps three things true while the worker lives: the machine's record in
MongoDB is fresh (the scheduler only uses machines that beat), the leases of its running
experiments are renewed (a dead worker's leases expire by themselves), and projects.json
changes reach FGLab.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError
from redis import Redis
from redis.exceptions import RedisError

from config import Settings
from tasks.ledger import Ledger
from worker.projects import Implementation, ProjectsFile
from worker.specs import read_specs

logger = logging.getLogger(__name__)


@dataclass
class Running:
    """What the heartbeat and kill need to know about one running experiment."""

    experiment_id: str
    token: str
    cpu: float
    gpu_share: float
    gpu: int | None
    stop: threading.Event = field(default_factory=threading.Event)


class Machine:
    """The worker side of one machine; one per worker process."""

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        redis: Redis | None = None,
        notify: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.machine_name
        if db is None:
            if not settings.mongodb_uri:
                raise ValueError("MONGODB_URI is not set; the worker writes results to MongoDB")
            client: MongoClient = MongoClient(
                settings.mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=True
            )
            db = client[settings.mongodb_db]
        self.db = db
        self.redis = redis or Redis.from_url(settings.redis)
        self.ledger = Ledger(self.redis, ttl=settings.lease_ttl)
        self.projects = ProjectsFile(settings.projects_file)
        self.notify = notify or (lambda name, kwargs: None)
        self.gpu_count = 0
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()
        self._published: dict[str, Any] | None = None
        self._published_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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

    def implementation(self, project_id: str) -> Implementation | None:
        return self.projects.current().get(project_id)

    # Registration and heartbeat -----------------------------------------------------

    def register(self) -> None:
        """Write this machine's specs and projects to MongoDB and mark it alive."""
        specs = read_specs(self.name, self.settings.gpu_count)
        self.gpu_count = len(specs.gpus)
        self.db["machines"].update_one(
            {"_id": self.name},
            {"$set": {**specs.to_dict(), "_registered": datetime.now(UTC)}},
            upsert=True,
        )
        self.beat()
        logger.info("machine %s registered with %d GPU(s)", self.name, self.gpu_count)

    def beat(self) -> None:
        """One heartbeat: renew leases, refresh the record, publish projects.json changes."""
        self._renew_leases()
        projects = {pid: impl.summary() for pid, impl in self.projects.current().items()}
        fields: dict[str, Any] = {"_heartbeat": datetime.now(UTC)}
        changed = projects != self._published or self.projects.error != self._published_error
        if changed:
            fields["projects"] = projects
            fields["projects_error"] = self.projects.error
        try:
            self.db["machines"].update_one({"_id": self.name}, {"$set": fields}, upsert=True)
        except PyMongoError as e:
            logger.warning("machine %s: heartbeat not stored: %s", self.name, e)
            return
        if changed:
            first = self._published is None
            self._published, self._published_error = projects, self.projects.error
            if not first:
                logger.info(
                    "machine %s: projects.json changed, %d project(s)", self.name, len(projects)
                )
            self.notify("dispatch", {})

    def _renew_leases(self) -> None:
        running = self.running()
        if not running:
            return
        try:
            live = self.ledger.renew(self.name, [r.experiment_id for r in running])
            for lost in (r for r in running if r.experiment_id not in live):
                # Redis was emptied or restarted: take the same reservation again.
                self.ledger.reserve(
                    self.name,
                    lost.experiment_id,
                    lost.cpu,
                    gpu_share=lost.gpu_share,
                    gpu_count=self.gpu_count,
                    token=lost.token,
                )
        except RedisError as e:
            logger.warning("machine %s: leases not renewed: %s", self.name, e)

    def recover(self) -> int:
        """After a restart: end what a previous worker of this machine left running.

        Its programs were started in process groups recorded on the experiments; any
        group still alive is stopped, and the experiment is marked ``lost`` with why.
        Returns how many experiments were recovered.
        """
        from tasks.states import Status
        from worker.launcher import group_alive, stop_group

        count = 0
        orphans = self.db["experiments"].find(
            {
                "_machine_id": self.name,
                "_status": {"$in": [str(Status.CLAIMED), str(Status.RUNNING)]},
            }
        )
        for doc in orphans:
            pgid = doc.get("_pgid")
            reaped = bool(pgid) and group_alive(int(pgid))
            if reaped:
                stop_group(int(pgid), self.settings.kill_grace)
            reason = "its worker stopped while it ran" + (
                f"; process group {pgid} was still running and has been stopped" if reaped else ""
            )
            moved = self.db["experiments"].update_one(
                {"_id": doc["_id"], "_status": doc["_status"]},
                {
                    "$set": {
                        "_status": str(Status.LOST),
                        "_finished": datetime.now(UTC),
                        "_exit": {"code": None, "signal": None, "reason": reason},
                    }
                },
            )
            if moved.modified_count:
                count += 1
                self.ledger.release(self.name, str(doc["_id"]))
                self.notify("finished", {"experiment_id": str(doc["_id"])})
                logger.warning("experiment %s: lost (%s)", doc["_id"], reason)
        return count

    def start_heartbeat(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.settings.heartbeat):
            try:
                self.beat()
            except Exception:
                logger.exception("machine %s: heartbeat failed", self.name)
