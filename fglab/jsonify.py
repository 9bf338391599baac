"""JSON for FGLab's answers: ObjectIds as hex strings, times as ISO 8601 in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from flask.json.provider import DefaultJSONProvider


def to_json_value(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:  # pymongo returns naive UTC datetimes by default
            value = value.replace(tzinfo=UTC)
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class FGLabJSONProvider(DefaultJSONProvider):
    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        return to_json_value(o)
