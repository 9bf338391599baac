"""The login sessions' version: the ``sessions`` collection, one document.

Every session cookie carries the version it was made under; "log out everywhere" bumps
it, and every cookie made before stops counting at its next request.
"""

from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.database import Database

COLLECTION = "sessions"
_ID = "version"


class SessionRecord:
    def __init__(self, db: Database) -> None:
        self._sessions = db[COLLECTION]

    def version(self) -> int:
        doc = self._sessions.find_one({"_id": _ID})
        return int(doc["version"]) if doc else 0

    def bump(self) -> int:
        """End every session made so far; the new version."""
        doc = self._sessions.find_one_and_update(
            {"_id": _ID},
            {"$inc": {"version": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # an upsert always returns the document
        return int(doc["version"])
