"""The one place FGLab speaks pymongo and GridFS: projects, experiments, machines, webhooks.

Documents keep the original FGLab's field names (``_project_id``, ``_options``,
``_status``, ``_files`` ...). IDs are ObjectIds except machines, whose ``_id`` is the
machine name (the name its queue is spelled from).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import GridFSBucket, GridOut
from gridfs.errors import NoFile
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fglab.errors import BadRequest, Conflict, NotFound
from tasks.files import delete_files, put_experiment_file
from tasks.states import Status


def now() -> datetime:
    return datetime.now(UTC)


def object_id(value: object, what: str = "ID") -> ObjectId:
    """Parse an ObjectId from a URL or body, or raise a 400 naming the bad value."""
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        raise BadRequest(f"{what} {value!r} is not a valid ObjectId (24 hex digits)") from None


class Store:
    """Typed access to FGLab's collections; callers pass and get plain documents."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.projects = db["projects"]
        self.experiments = db["experiments"]
        self.machines = db["machines"]
        self.webhooks = db["webhooks"]
        self.tokens = db["tokens"]
        self.files = db["fs.files"]
        self.bucket = GridFSBucket(db)

    def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        self.projects.create_index("name", unique=True)
        self.experiments.create_index([("_project_id", ASCENDING), ("_created", ASCENDING)])
        self.experiments.create_index([("_status", ASCENDING), ("_created", ASCENDING)])
        self.experiments.create_index([("_machine_id", ASCENDING), ("_status", ASCENDING)])
        self.webhooks.create_index([("object_id", ASCENDING), ("event", ASCENDING)])
        self.files.create_index([("metadata.experiment", ASCENDING), ("filename", ASCENDING)])
        self.files.create_index("metadata.project")
        self.tokens.create_index("hash", unique=True)

    # Projects -----------------------------------------------------------------------

    def create_project(self, name: str, schema: Mapping[str, Any]) -> ObjectId:
        doc = {"name": name, "schema": dict(schema), "_created": now()}
        try:
            return self.projects.insert_one(doc).inserted_id
        except DuplicateKeyError:
            raise Conflict(f"Project {name!r} already exists; rename the schema file") from None

    def list_projects(self) -> list[dict[str, Any]]:
        return list(self.projects.find().sort("name", ASCENDING))

    def get_project(self, project_id: object) -> dict[str, Any]:
        oid = _maybe_object_id(project_id)
        doc = self.projects.find_one({"_id": oid}) if oid else None
        if doc is None:
            raise NotFound(f"Project ID {project_id} does not exist")
        return doc

    # Experiments --------------------------------------------------------------------

    def new_experiment(
        self,
        project_id: ObjectId,
        options: Mapping[str, Any],
        *,
        status: Status,
        experiment_id: ObjectId | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ObjectId:
        doc: dict[str, Any] = {
            "_id": experiment_id or ObjectId(),
            "_project_id": project_id,
            "_options": dict(options),
            "_status": str(status),
            "_created": now(),
            "_machine_id": None,
            "_files": [],
            **(extra or {}),
        }
        return self.experiments.insert_one(doc).inserted_id

    def list_experiments(self, project_id: ObjectId | None = None) -> list[dict[str, Any]]:
        query = {} if project_id is None else {"_project_id": project_id}
        return list(self.experiments.find(query).sort("_created", ASCENDING))

    def get_experiment(self, experiment_id: object) -> dict[str, Any]:
        oid = object_id(experiment_id, "Experiment ID")
        doc = self.experiments.find_one({"_id": oid})
        if doc is None:
            raise NotFound(f"Experiment ID {experiment_id} does not exist")
        return doc

    def set_fields(self, experiment_id: object, fields: Mapping[str, Any]) -> dict[str, Any]:
        """`$set` top-level fields (the original's PUT); returns the updated document."""
        oid = object_id(experiment_id, "Experiment ID")
        if not fields:
            return self.get_experiment(oid)
        doc = self.experiments.find_one_and_update(
            {"_id": oid}, {"$set": dict(fields)}, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            raise NotFound(f"Experiment ID {experiment_id} does not exist")
        return doc

    def move(
        self,
        experiment_id: ObjectId,
        expected: Status | frozenset[Status] | set[Status],
        fields: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        """Compare-and-set: apply `fields` only if the status is still `expected`."""
        allowed = [str(expected)] if isinstance(expected, Status) else [str(s) for s in expected]
        return self.experiments.find_one_and_update(
            {"_id": experiment_id, "_status": {"$in": allowed}},
            {"$set": dict(fields)},
            return_document=ReturnDocument.AFTER,
        )

    def delete_experiment(self, experiment_id: object) -> None:
        oid = object_id(experiment_id, "Experiment ID")
        delete_files(self.db, {"metadata.experiment": oid})
        if self.experiments.delete_one({"_id": oid}).deleted_count == 0:
            raise NotFound(f"Experiment ID {experiment_id} does not exist")

    def delete_project_experiments(self, project_id: ObjectId) -> int:
        delete_files(self.db, {"metadata.project": project_id})
        return self.experiments.delete_many({"_project_id": project_id}).deleted_count

    # Files --------------------------------------------------------------------------

    def put_file(
        self,
        experiment: Mapping[str, Any],
        filename: str,
        data: IO[bytes],
        content_type: str | None,
    ) -> ObjectId:
        return put_experiment_file(
            self.db, experiment["_id"], experiment.get("_project_id"), filename, data, content_type
        )

    def delete_experiment_files(self, experiment_id: ObjectId) -> int:
        count = delete_files(self.db, {"metadata.experiment": experiment_id})
        self.experiments.update_one({"_id": experiment_id}, {"$set": {"_files": []}})
        return count

    def delete_project_files(self, project_id: ObjectId) -> int:
        count = delete_files(self.db, {"metadata.project": project_id})
        self.experiments.update_many({"_project_id": project_id}, {"$set": {"_files": []}})
        return count

    def open_file(self, file_id: object) -> GridOut:
        oid = object_id(file_id, "File ID")
        try:
            return self.bucket.open_download_stream(oid)
        except NoFile:
            raise NotFound(f"File ID {file_id} does not exist") from None

    def file_ids(self, query: Mapping[str, Any] | None = None) -> Iterator[ObjectId]:
        for doc in self.files.find(dict(query or {}), {"_id": 1}):
            yield doc["_id"]

    # Machines -----------------------------------------------------------------------

    def list_machines(self) -> list[dict[str, Any]]:
        return list(self.machines.find().sort("hostname", ASCENDING))

    def get_machine(self, machine_id: str) -> dict[str, Any]:
        doc = self.machines.find_one({"_id": machine_id})
        if doc is None:
            raise NotFound(f"Machine ID {machine_id} does not exist")
        return doc

    def upsert_machine(self, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        doc = self.machines.find_one_and_update(
            {"_id": name},
            {"$set": {**fields, "hostname": fields.get("hostname", name)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # an upsert returning AFTER always has a document
        return doc

    def set_machine_fields(self, machine_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        doc = self.machines.find_one_and_update(
            {"_id": machine_id}, {"$set": dict(fields)}, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            raise NotFound(f"Machine ID {machine_id} does not exist")
        return doc

    # Webhooks -----------------------------------------------------------------------

    def add_webhook(self, hook: Mapping[str, Any]) -> ObjectId:
        return self.webhooks.insert_one({**hook, "_created": now(), "deliveries": []}).inserted_id

    def list_webhooks(self, object_id_: str | None = None) -> list[dict[str, Any]]:
        """Hooks (of one object when given), oldest first, with their delivery history."""
        query = {} if object_id_ is None else {"object_id": object_id_}
        return list(self.webhooks.find(query).sort([("_created", 1), ("_id", 1)]))

    def webhooks_for(self, object_id_: str, event: str) -> list[dict[str, Any]]:
        return list(
            self.webhooks.find({"object_id": object_id_, "event": event}).sort(
                "_created", DESCENDING
            )
        )


def _maybe_object_id(value: object) -> ObjectId | None:
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        return None
