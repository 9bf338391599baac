"""Each project's experiments by status, kept as counters: reading them costs the same at
100 experiments and at 100,000 (the home page, the table's status chips, `fglab up`).

One document a project in ``status_counts``: ``{"_id": project_id, "s": {status: n},
"v": writes}``. Every status move (`tasks.experiments`), insert and delete adds to it
right after its own write. MongoDB cannot make the two one write across collections, so
the periodic repair (`repair`) recounts from the experiments and sets a counter right
when it is off, guarded by ``v`` so that it never overwrites a count added meanwhile.

A counter may be off for a moment with nothing wrong: a move is written before its count,
and a dispatch pass counts a page of moves after the page. So the repair fixes only a
counter found off twice with no write between (``off_at`` holds the ``v`` it was first
found off at); setting right one that is merely behind would make it wrong when the
late count lands.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

COLLECTION = "status_counts"


def add(db: Database, project_id: ObjectId, deltas: Mapping[str, int]) -> None:
    """Add `deltas` (status -> change) to a project's counter."""
    inc = {f"s.{status}": n for status, n in deltas.items() if n}
    if inc:
        db[COLLECTION].update_one({"_id": project_id}, {"$inc": {**inc, "v": 1}}, upsert=True)


def moved(db: Database, project_id: ObjectId, before: str, after: str) -> None:
    """One experiment of the project moved from status `before` to `after`."""
    if before != after:
        add(db, project_id, {before: -1, after: 1})


class Tally:
    """Moves counted in one write per project, for a pass that moves many (dispatching)."""

    def __init__(self) -> None:
        self._deltas: defaultdict[ObjectId, Counter[str]] = defaultdict(Counter)

    def moved(self, project_id: ObjectId, before: str, after: str) -> None:
        self._deltas[project_id][before] -= 1
        self._deltas[project_id][after] += 1

    def flush(self, db: Database) -> None:
        """Write what is counted; a project's moves leave the tally once written (so a
        flush tried again after an error writes only what is left)."""
        for project_id in list(self._deltas):
            add(db, project_id, self._deltas[project_id])
            del self._deltas[project_id]


def read(db: Database, project_id: ObjectId | None = None) -> dict[ObjectId, dict[str, int]]:
    """Project -> status -> count (statuses with none left out)."""
    query: dict[str, Any] = {} if project_id is None else {"_id": project_id}
    found = {}
    for doc in db[COLLECTION].find(query):
        # Below zero only for a moment (a dispatch pass counts its moves at its end,
        # after the workers counted their claims): read as none.
        found[doc["_id"]] = {s: n for s, n in _nonzero(doc.get("s")).items() if n > 0}
    return found


def total(db: Database, project_id: ObjectId) -> int:
    """How many experiments the project has: the sum of its counter over every status.

    Exact between writes, unlike one status's count (which a dispatch pass's tally holds
    back a moment): each move takes from one status what it gives another in one write,
    so only inserts and deletes change the sum.
    """
    doc = db[COLLECTION].find_one({"_id": project_id}, {"s": 1})
    return max(0, sum(_nonzero(doc.get("s") if doc else None).values()))


def forget(db: Database, project_ids: Iterable[ObjectId]) -> None:
    """Drop the counters of projects whose experiments are all deleted."""
    db[COLLECTION].delete_many({"_id": {"$in": list(project_ids)}})


def recount(db: Database, experiments: str) -> dict[ObjectId, dict[str, int]]:
    """The real counts, from the experiments themselves (one aggregation)."""
    pipeline = [{"$group": {"_id": {"p": "$_project_id", "s": "$_status"}, "n": {"$sum": 1}}}]
    found: dict[ObjectId, dict[str, int]] = {}
    for doc in db[experiments].aggregate(pipeline):
        key = doc["_id"]
        found.setdefault(key.get("p"), {})[str(key.get("s"))] = int(doc["n"])
    return found


def repair(db: Database, experiments: str) -> list[ObjectId]:
    """Set right every counter found off from a recount at this repair and at the one
    before, with no write to it between; the projects it fixed.

    A counter off for the first time, or written since it was last found off, is only
    marked (``off_at``) for the next repair. A missing counter is made at once.
    """
    stored = {doc["_id"]: doc for doc in db[COLLECTION].find()}
    actual = recount(db, experiments)
    fixed = []
    for project_id in set(stored) | set(actual):
        want = actual.get(project_id, {})
        doc = stored.get(project_id)
        if doc is not None and _nonzero(doc.get("s")) == want:
            if "off_at" in doc:  # was only behind
                db[COLLECTION].update_one({"_id": project_id}, {"$unset": {"off_at": ""}})
            continue
        if doc is None:
            try:
                db[COLLECTION].insert_one({"_id": project_id, "s": want, "v": 0})
            except DuplicateKeyError:
                continue  # counted meanwhile: next time
        elif doc.get("off_at") != doc.get("v", 0):
            db[COLLECTION].update_one(
                {"_id": project_id, "v": doc.get("v", 0)}, {"$set": {"off_at": doc.get("v", 0)}}
            )
            continue  # perhaps only behind: fixed next time if still off and unwritten
        else:
            changed = db[COLLECTION].update_one(
                {"_id": project_id, "v": doc.get("v", 0)},
                {"$set": {"s": want}, "$inc": {"v": 1}, "$unset": {"off_at": ""}},
            )
            if not changed.modified_count:
                continue
        fixed.append(project_id)
    return fixed


def _nonzero(counts: Mapping[str, Any] | None) -> dict[str, int]:
    return {status: int(n) for status, n in (counts or {}).items() if n}
