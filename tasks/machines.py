"""The machine record: its field names, its writes, and what "live" means.

A machine's worker writes its record (registration, heartbeat, start failures); FGLab
reads it to place work and drains or resumes it. A machine is live while its last
heartbeat is within :func:`liveness_window`: the scheduler places work only there, the
sweep marks the experiments of a machine that is not live ``lost``, and the pages show it
silent, all by this one definition.

Documents keep the original's fields (``hostname``, ``address``, ``os``, ``cpus``,
``mem``, ``gpus``); ``_id`` is the machine's name, the one its queue is spelled from.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database

from config import Settings

COLLECTION = "machines"

# The original FGLab's fields.
ID = "_id"
HOSTNAME = "hostname"
ADDRESS = "address"
OS = "os"
CPUS = "cpus"
MEM = "mem"
GPUS = "gpus"
PROJECTS = "projects"  # project ID -> what the scheduler needs of its implementation
# Ours.
GPU_COUNT = "gpu_count"
GPU_DETAILS = "gpu_details"
GPU_BUSY = "gpu_busy"  # GPU indices held by processes outside the fleet
REGISTERED = "_registered"
HEARTBEAT = "_heartbeat"
PROJECTS_ERROR = "projects_error"
DRAINED = "drained"
DRAIN_REASON = "drain_reason"
START_FAILURES = "start_failures"  # recent start failures, seconds since the epoch
GPU_DOWN = "gpu_down"  # GPU indices that take no new work: NVML errors, gone, excluded

#: Every field name of the record, pinned by the contract tests.
FIELDS = (
    ID, HOSTNAME, ADDRESS, OS, CPUS, MEM, GPUS, PROJECTS, GPU_COUNT, GPU_DETAILS, GPU_BUSY,
    REGISTERED, HEARTBEAT, PROJECTS_ERROR, DRAINED, DRAIN_REASON, START_FAILURES, GPU_DOWN,
)  # fmt: skip

#: A machine's recent GPU telemetry, one document a machine (``_id`` its name) holding a
#: capped ``samples`` array; apart from the record, which the scheduler reads often.
HISTORY_COLLECTION = "machine_history"
SAMPLES = "samples"


# Liveness -----------------------------------------------------------------------------


def liveness_window(settings: Settings) -> timedelta:
    """How long after its last heartbeat a machine still counts as live.

    At least a lease lifetime (a machine whose leases are still valid is not dead) and at
    least three heartbeats (one late beat is not a death).
    """
    return timedelta(seconds=max(settings.lease_ttl, 3 * settings.heartbeat))


def live_since(settings: Settings, at: datetime | None = None) -> datetime:
    """The oldest heartbeat of a live machine, as of `at` (default now)."""
    return (at or datetime.now(UTC)) - liveness_window(settings)


def is_live(machine: Mapping[str, Any], settings: Settings, at: datetime | None = None) -> bool:
    """Whether the machine's last heartbeat is within the liveness window."""
    beat = machine.get(HEARTBEAT)
    if not isinstance(beat, datetime):
        return False
    if beat.tzinfo is None:  # pymongo without tz_aware gives naive UTC
        beat = beat.replace(tzinfo=UTC)
    return beat >= live_since(settings, at)


# Writes -------------------------------------------------------------------------------


def _machines(db: Database) -> Collection:
    return db[COLLECTION]


def register(db: Database, name: str, specs: Mapping[str, Any]) -> None:
    """Write the machine's specifications (upserting its record)."""
    _machines(db).update_one(
        {ID: name}, {"$set": {**specs, REGISTERED: datetime.now(UTC)}}, upsert=True
    )


def beat(db: Database, name: str, fields: Mapping[str, Any], *, within: float) -> None:
    """One heartbeat: stamp ``_heartbeat`` and write `fields`, giving up after `within` s.

    Bounded, so an unreachable MongoDB cannot delay the worker's next lease renewal past
    the lease's life. Raises pymongo's errors.
    """
    with pymongo.timeout(within):
        _machines(db).update_one(
            {ID: name}, {"$set": {**fields, HEARTBEAT: datetime.now(UTC)}}, upsert=True
        )


def record_gpu_history(db: Database, name: str, point: Mapping[str, Any], keep: int) -> None:
    """Add one GPU telemetry point to the machine's history, keeping the last `keep`."""
    db[HISTORY_COLLECTION].update_one(
        {ID: name}, {"$push": {SAMPLES: {"$each": [dict(point)], "$slice": -keep}}}, upsert=True
    )


def gpu_history(db: Database, name: str) -> list[dict[str, Any]]:
    """The machine's kept GPU telemetry points, oldest first."""
    doc = db[HISTORY_COLLECTION].find_one({ID: name}) or {}
    return list(doc.get(SAMPLES) or [])


def unavailable_gpus(machine: Mapping[str, Any]) -> list[int]:
    """GPU indices the scheduler must not place on: busy with others' work, or down."""
    indices = list(machine.get(GPU_BUSY) or []) + list(machine.get(GPU_DOWN) or [])
    return sorted({int(i) for i in indices})


def record_start_failure(db: Database, name: str, moment: float, keep: int) -> list[float]:
    """Add a start failure at `moment` (epoch seconds); returns the last `keep` of them."""
    doc = _machines(db).find_one_and_update(
        {ID: name},
        {"$push": {START_FAILURES: {"$each": [moment], "$slice": -keep}}},
        return_document=ReturnDocument.AFTER,
    )
    return list((doc or {}).get(START_FAILURES) or [])


def drain(db: Database, name: str, reason: str) -> dict[str, Any] | None:
    """The machine finishes what runs and takes nothing new; None when there is none."""
    return _machines(db).find_one_and_update(
        {ID: name},
        {"$set": {DRAINED: True, DRAIN_REASON: reason}},
        return_document=ReturnDocument.AFTER,
    )


def resume(db: Database, name: str) -> dict[str, Any] | None:
    """The machine takes work again, its start failures forgotten; None when there is none."""
    return _machines(db).find_one_and_update(
        {ID: name},
        {"$set": {DRAINED: False, DRAIN_REASON: None, START_FAILURES: []}},
        return_document=ReturnDocument.AFTER,
    )


def upsert(db: Database, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Write `fields` of the machine `name`, making its record if it has none; the record."""
    doc = _machines(db).find_one_and_update(
        {ID: name},
        {"$set": {**fields, "hostname": fields.get("hostname", name)}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc is not None  # an upsert returning AFTER always has a document
    return doc


def set_fields(db: Database, name: str, fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """Write `fields` of the machine `name`; its record after, None when there is none."""
    return _machines(db).find_one_and_update(
        {ID: name}, {"$set": dict(fields)}, return_document=ReturnDocument.AFTER
    )
