"""The sweep record: the ``sweeps`` collection's fields and every write of a sweep.

    running --pause--> paused --resume--> running
    running | paused --cancel--> cancelled
    running --finish--> finished          (every trial of the budget made and ended)

A sweep document holds its settings (`SweepConfig`), its ``state``, ``next_trial`` (the
number the next trial gets) and ``open``: the trials it made that have not ended, each
``{"trial": n, "experiment": id}``. A slot is claimed by a compare-and-set on
``version``, which every change of ``next_trial`` or ``open`` bumps, so two schedulers
never make the same trial nor run more than ``parallelism`` at once. The experiment ID
is chosen in the claim: making the trial's experiment is idempotent, and a claim whose
experiment was never made (a crash in between) is made by the next pass.

The Store builds one `SweepRecord` over its database (``store.sweeps``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database

from fglab.sweeps.config import SweepConfig

COLLECTION = "sweeps"

RUNNING, PAUSED, FINISHED, CANCELLED = "running", "paused", "finished", "cancelled"
STATES = (RUNNING, PAUSED, FINISHED, CANCELLED)
#: Every state move: name -> (states it starts from, the state it leads to).
MOVES = {
    "pause": ((RUNNING,), PAUSED),
    "resume": ((PAUSED,), RUNNING),
    "cancel": ((RUNNING, PAUSED), CANCELLED),
    "finish": ((RUNNING,), FINISHED),
}


def now() -> datetime:
    return datetime.now(UTC)


class SweepRecord:
    """Reads and compare-and-set writes of sweep documents."""

    def __init__(self, db: Database) -> None:
        self._sweeps = db[COLLECTION]

    def ensure_indexes(self) -> None:
        self._sweeps.create_index([("project", ASCENDING), ("created", ASCENDING)])
        self._sweeps.create_index("state")

    def insert(self, project_id: ObjectId, config: SweepConfig) -> dict[str, Any]:
        """Store a new running sweep with no trials yet; returns its document."""
        doc = {
            "_id": ObjectId(),
            "project": project_id,
            **config.to_dict(),
            "state": RUNNING,
            "created": now(),
            "finished": None,
            "next_trial": 0,
            "open": [],
            "version": 0,
            "pruner_attrs": {},
        }
        self._sweeps.insert_one(doc)
        return doc

    def get(self, sweep_id: ObjectId) -> dict[str, Any] | None:
        return self._sweeps.find_one({"_id": sweep_id})

    def of_project(self, project_id: ObjectId) -> list[dict[str, Any]]:
        """A project's sweeps, newest first."""
        return list(self._sweeps.find({"project": project_id}).sort("created", -1))

    def unsettled(self) -> list[ObjectId]:
        """Sweeps that may still make or wait for trials: running ones, and any with open
        trials."""
        query = {"$or": [{"state": RUNNING}, {"open.0": {"$exists": True}}]}
        return [doc["_id"] for doc in self._sweeps.find(query, {"_id": 1})]

    def claim(self, sweep: Mapping[str, Any]) -> dict[str, Any] | None:
        """Take the next trial number for a new experiment, if `sweep` (as read) is
        still current, running, under its budget and below its parallelism.

        Returns the claim ``{"trial", "experiment"}``, or None when someone else changed
        the sweep first (read it again) or there is no room.
        """
        number = sweep["next_trial"]
        if (
            sweep["state"] != RUNNING
            or number >= sweep["budget"]
            or len(sweep["open"]) >= sweep["parallelism"]
        ):
            return None
        claim = {"trial": number, "experiment": ObjectId()}
        claimed = self._sweeps.find_one_and_update(
            {"_id": sweep["_id"], "version": sweep["version"], "state": RUNNING},
            {"$set": {"next_trial": number + 1}, "$push": {"open": claim}, "$inc": {"version": 1}},
        )
        return claim if claimed is not None else None

    def close(self, sweep_id: ObjectId, numbers: Iterable[int]) -> None:
        """Forget ended trials from ``open``, freeing their slots (idempotent)."""
        numbers = list(numbers)
        if numbers:
            self._sweeps.update_one(
                {"_id": sweep_id},
                {"$pull": {"open": {"trial": {"$in": numbers}}}, "$inc": {"version": 1}},
            )

    def move(self, sweep_id: ObjectId, move: str) -> dict[str, Any] | None:
        """Compare-and-set one state move; the document after, or None when the sweep is
        not in a state the move starts from."""
        sources, target = MOVES[move]
        fields: dict[str, Any] = {"state": target}
        if target in (FINISHED, CANCELLED):
            fields["finished"] = now()
        return self._sweeps.find_one_and_update(
            {"_id": sweep_id, "state": {"$in": list(sources)}},
            {"$set": fields, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    def finish_if_done(self, sweep: Mapping[str, Any]) -> bool:
        """running -> finished once every trial of the budget was made and has ended."""
        changed = self._sweeps.find_one_and_update(
            {
                "_id": sweep["_id"],
                "state": RUNNING,
                "next_trial": {"$gte": sweep["budget"]},
                "open": [],
            },
            {"$set": {"state": FINISHED, "finished": now()}, "$inc": {"version": 1}},
        )
        return changed is not None

    def note_pruner(self, sweep_id: ObjectId, number: int, attrs: Mapping[str, Any]) -> None:
        """Keep what the pruner noted on a trial (hyperband's rungs) for the next rebuild."""
        if attrs:
            self._sweeps.update_one(
                {"_id": sweep_id}, {"$set": {f"pruner_attrs.{number}": dict(attrs)}}
            )
