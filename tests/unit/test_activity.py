"""`fglab up`'s experiment lines: each start and end once, in order, with project names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from fglab.activity import OVERLAP, Activity

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


class FakeStore:
    """What Activity calls of the Store, over a list of documents."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self.projects = FakeProjects({ObjectId("5f2a00000000000000000001"): {"name": "demo"}})

    def experiments_moved_since(self, since: datetime) -> list[dict[str, Any]]:
        return [
            d
            for d in self.docs
            if any(d.get(f) is not None and d[f] >= since for f in ("_started", "_finished"))
        ]


class FakeProjects(dict):
    """The project record's one read Activity calls."""

    def lookup(self, project_id: object) -> dict[str, Any] | None:
        return self.get(project_id)


def experiment(store: FakeStore, **fields: Any) -> dict[str, Any]:
    doc = {
        "_id": ObjectId(),
        "_project_id": next(iter(store.projects)),
        "_machine_id": "box-1",
        "_status": "running",
        **fields,
    }
    store.docs.append(doc)
    return doc


def test_a_start_then_an_end_each_once_with_duration() -> None:
    store = FakeStore()
    activity = Activity(store, since=T0)  # type: ignore[arg-type]
    doc = experiment(store, _started=T0 + timedelta(seconds=1))

    [start] = activity.poll(now=T0 + timedelta(seconds=2))
    assert start.line() == f"started  {doc['_id']}  project demo  on box-1"
    assert activity.poll(now=T0 + timedelta(seconds=3)) == []

    doc.update(_status="success", _finished=T0 + timedelta(seconds=13.5))
    [end] = activity.poll(now=T0 + timedelta(seconds=14))
    assert end.line() == f"success  {doc['_id']}  project demo  on box-1  after 12.5 s"
    assert activity.poll(now=T0 + timedelta(seconds=15)) == []


def test_a_time_written_late_is_still_seen_and_a_quick_run_starts_before_it_ends() -> None:
    store = FakeStore()
    activity = Activity(store, since=T0)  # type: ignore[arg-type]
    assert activity.poll(now=T0 + timedelta(seconds=10)) == []
    # Stamped before the last look, written after it; started and ended between looks.
    doc = experiment(
        store,
        _status="fail",
        _started=T0 + timedelta(seconds=9),
        _finished=T0 + timedelta(seconds=9.5),
        _project_id=ObjectId(),
    )
    moves = activity.poll(now=T0 + timedelta(seconds=11))
    assert [(m.status, m.ended, m.project) for m in moves] == [
        ("running", False, str(doc["_project_id"])),
        ("fail", True, str(doc["_project_id"])),
    ]


def test_what_happened_before_up_started_is_not_shown() -> None:
    store = FakeStore()
    before = T0 - OVERLAP / 2
    experiment(store, _status="success", _started=before, _finished=before)
    activity = Activity(store, since=T0)  # type: ignore[arg-type]
    assert activity.poll(now=T0 + timedelta(seconds=1)) == []
