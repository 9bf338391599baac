"""Experiments that started or ended since the last look: the lines `fglab up` prints.

`fglab up` asks the store about once a second for experiments whose ``_started`` or
``_finished`` is recent (one indexed query), rather than listening to Celery events:
a start and an end are status moves written to MongoDB, the source of truth, so the
lines are right whichever machine ran the experiment, whatever task sent it, and after
Redis restarts; and polling needs no event receiver thread to keep alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fglab.store import Store

#: How far back each look reaches again: a time stamped by a worker just before our last
#: look may be written just after it (a write retried after a blip lands later still).
OVERLAP = timedelta(seconds=60)


@dataclass(frozen=True)
class Move:
    """One experiment started (`status` "running") or ended (its final status)."""

    experiment_id: str
    project: str
    machine: str
    status: str
    ended: bool
    #: Seconds from start to end; None for a start, or an end that never started.
    duration: float | None

    def line(self) -> str:
        """One console line: id, project, machine, status (and duration when it ended)."""
        what = self.status if self.ended else "started"
        text = f"{what:<8} {self.experiment_id}  project {self.project}  on {self.machine}"
        if self.duration is not None:
            text += f"  after {self.duration:.1f} s"
        return text


class Activity:
    """Follows the store from `since`: each `poll` returns the moves not returned before,
    oldest first (a start before its end)."""

    def __init__(self, store: Store, since: datetime) -> None:
        self._store = store
        self._since = since
        self._last = since
        self._seen: dict[tuple[Any, bool], datetime] = {}
        self._projects: dict[Any, str] = {}

    def poll(self, now: datetime | None = None) -> list[Move]:
        """The experiments that started or ended since the last look (pymongo errors pass)."""
        now = now or datetime.now(UTC)
        look_from = max(self._last - OVERLAP, self._since)
        moves: list[tuple[datetime, Move]] = []
        for doc in self._store.experiments_moved_since(look_from):
            started, finished = _aware(doc.get("_started")), _aware(doc.get("_finished"))
            for ended, moment in ((False, started), (True, finished)):
                if moment is None or moment < look_from or (doc["_id"], ended) in self._seen:
                    continue
                self._seen[doc["_id"], ended] = moment
                moves.append((moment, self._move(doc, ended, started, finished)))
        self._last = now
        self._seen = {key: at for key, at in self._seen.items() if at >= now - OVERLAP}
        return [move for _, move in sorted(moves, key=lambda pair: (pair[0], pair[1].ended))]

    def _move(
        self,
        doc: dict[str, Any],
        ended: bool,
        started: datetime | None,
        finished: datetime | None,
    ) -> Move:
        duration = None
        if ended and started is not None and finished is not None:
            duration = (finished - started).total_seconds()
        return Move(
            experiment_id=str(doc["_id"]),
            project=self._project_name(doc.get("_project_id")),
            machine=doc.get("_machine_id") or "-",
            status=str(doc.get("_status")) if ended else "running",
            ended=ended,
            duration=duration,
        )

    def _project_name(self, project_id: Any) -> str:
        if project_id not in self._projects:
            project = self._store.projects.lookup(project_id) if project_id else None
            self._projects[project_id] = project["name"] if project else str(project_id)
        return self._projects[project_id]


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo:
        return moment
    return moment.replace(tzinfo=UTC)
