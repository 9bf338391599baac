"""The webhook record: the ``webhooks`` collection, each hook with its delivery history.

``{"_id", "object_id", "event", "url", "_created", "deliveries": [attempt...],
"delivered"?, "gave_up"?, "gave_up_after"?}``; an attempt is what `fglab.webhooks`
records of one POST (``at``, ``status`` or ``error``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

COLLECTION = "webhooks"


class WebhookRecord:
    def __init__(self, db: Database) -> None:
        self._webhooks = db[COLLECTION]

    def ensure_indexes(self) -> None:
        self._webhooks.create_index([("object_id", ASCENDING), ("event", ASCENDING)])

    def add(self, hook: Mapping[str, Any]) -> ObjectId:
        doc = {**hook, "_created": datetime.now(UTC), "deliveries": []}
        return self._webhooks.insert_one(doc).inserted_id

    def all(self, object_id: str | None = None) -> list[dict[str, Any]]:
        """Hooks (of one object when given), oldest first, with their delivery history."""
        query = {} if object_id is None else {"object_id": object_id}
        return list(self._webhooks.find(query).sort([("_created", 1), ("_id", 1)]))

    def count_of(self, object_id: str) -> int:
        """How many hooks the object has, whatever their event."""
        return self._webhooks.count_documents({"object_id": object_id})

    def of(self, object_id: str, event: str) -> list[dict[str, Any]]:
        """The object's hooks for `event`, newest first."""
        query = {"object_id": object_id, "event": event}
        return list(self._webhooks.find(query).sort("_created", DESCENDING))

    def remove(self, hook_id: ObjectId) -> None:
        self._webhooks.delete_one({"_id": hook_id})

    def lookup(self, hook_id: ObjectId) -> dict[str, Any] | None:
        return self._webhooks.find_one({"_id": hook_id})

    def record_delivery(self, hook_id: ObjectId, record: Mapping[str, Any]) -> None:
        """Add one attempt to a hook's history; a 2xx one also stamps ``delivered``."""
        update: dict[str, Any] = {"$push": {"deliveries": dict(record)}}
        if "error" not in record:
            update["$set"] = {"delivered": record["at"]}
        self._webhooks.update_one({"_id": hook_id}, update)

    def give_up(self, hook_id: ObjectId, attempts: int) -> None:
        self._webhooks.update_one(
            {"_id": hook_id},
            {"$set": {"gave_up": datetime.now(UTC), "gave_up_after": attempts}},
        )
