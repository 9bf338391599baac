"""The API token record: the ``tokens`` collection. Only a token's SHA-256 is kept
(``fglab.auth``); the token itself is shown once, when it is made."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.database import Database

COLLECTION = "tokens"


class TokenRecord:
    def __init__(self, db: Database) -> None:
        self._tokens = db[COLLECTION]

    def ensure_indexes(self) -> None:
        self._tokens.create_index("hash", unique=True)
        # MongoDB deletes a token some time after it expires; `find_hash` does not wait.
        self._tokens.create_index("_expires", expireAfterSeconds=0)

    def add(self, name: str, digest: str, expires: datetime | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": name, "hash": digest, "_created": datetime.now(UTC)}
        if expires is not None:
            doc["_expires"] = expires
        doc["_id"] = self._tokens.insert_one(doc).inserted_id
        return doc

    def all(self) -> list[dict[str, Any]]:
        """Every token's ID, name, creation and expiry times (never the hash)."""
        return list(self._tokens.find({}, {"hash": 0}).sort("_created", 1))

    def revoke(self, token_id: ObjectId) -> bool:
        return self._tokens.delete_one({"_id": token_id}).deleted_count > 0

    def find_hash(self, digest: str) -> str | None:
        """The stored hash equal to `digest`, if such a token exists and has not expired."""
        live = {
            "hash": digest,
            "$or": [{"_expires": {"$exists": False}}, {"_expires": {"$gt": datetime.now(UTC)}}],
        }
        doc = self._tokens.find_one(live, {"hash": 1})
        return None if doc is None else str(doc.get("hash", ""))
