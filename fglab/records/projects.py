"""The project record: the ``projects`` collection, one document per schema upload."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fglab.errors import Conflict, NotFound

COLLECTION = "projects"


class ProjectRecord:
    """Projects: ``{"_id", "name" (unique), "schema", "_created"}``."""

    def __init__(self, db: Database) -> None:
        self._projects = db[COLLECTION]

    def ensure_indexes(self) -> None:
        self._projects.create_index("name", unique=True)

    def create(self, name: str, schema: Mapping[str, Any]) -> ObjectId:
        doc = {"name": name, "schema": dict(schema), "_created": datetime.now(UTC)}
        try:
            return self._projects.insert_one(doc).inserted_id
        except DuplicateKeyError:
            raise Conflict(f"Project {name!r} already exists; rename the schema file") from None

    def all(self) -> list[dict[str, Any]]:
        """Every project, by name."""
        return list(self._projects.find().sort("name", ASCENDING))

    def get(self, project_id: object) -> dict[str, Any]:
        """The project; NotFound when the ID is malformed or unknown."""
        doc = self.lookup(project_id)
        if doc is None:
            raise NotFound(f"Project ID {project_id} does not exist")
        return doc

    def lookup(self, project_id: object) -> dict[str, Any] | None:
        """The project, or None when the ID is malformed or unknown."""
        try:
            oid = ObjectId(str(project_id))
        except (InvalidId, TypeError):
            return None
        return self._projects.find_one({"_id": oid})

    def find_by_name(self, name: str) -> dict[str, Any] | None:
        return self._projects.find_one({"name": name})
