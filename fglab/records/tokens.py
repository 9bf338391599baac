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

    def add(self, name: str, digest: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": name, "hash": digest, "_created": datetime.now(UTC)}
        doc["_id"] = self._tokens.insert_one(doc).inserted_id
        return doc

    def all(self) -> list[dict[str, Any]]:
        """Every token's ID, name and creation time (never the hash)."""
        return list(self._tokens.find({}, {"hash": 0}).sort("_created", 1))

    def revoke(self, token_id: ObjectId) -> bool:
        return self._tokens.delete_one({"_id": token_id}).deleted_count > 0

    def find_hash(self, digest: str) -> str | None:
        doc = self._tokens.find_one({"hash": digest}, {"hash": 1})
        return None if doc is None else str(doc.get("hash", ""))
