"""How an experiment's files live in GridFS.

Shared by FGLab's upload route and the machines' results uploader, so both keep the
same rule: one stored file per (experiment, file name); writing a name again replaces
the old file, and the experiment's ``_files`` lists each name once. The kept log
(`tasks.logs`) is stored here too, unlisted.
"""

from __future__ import annotations

import hashlib
from typing import IO, Any

from bson import ObjectId
from gridfs import GridFSBucket
from pymongo import ASCENDING
from pymongo.database import Database

from tasks import experiments
from tasks.logs import LOG_FILENAME, LOG_METADATA

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def file_entry(file_id: ObjectId, filename: str, content_type: str) -> dict[str, Any]:
    """The item of ``_files`` that points at one stored file (the original's shape)."""
    return {"_id": file_id, "filename": filename, "mimetype": content_type}


def put_experiment_file(
    db: Database,
    experiment_id: ObjectId,
    project_id: ObjectId | None,
    filename: str,
    data: IO[bytes],
    content_type: str | None = None,
) -> ObjectId:
    """Store `data` as the experiment's file `filename`, replacing an earlier one.

    The new file is written first and listed second, and older versions are deleted
    last, so a crash in between leaves at worst an unlisted extra file, never a listed
    file whose content is missing. Returns the new GridFS file ID.
    """
    bucket = GridFSBucket(db)
    content_type = content_type or DEFAULT_CONTENT_TYPE
    digest = hashlib.sha256()
    stream = _HashingReader(data, digest)
    file_id = bucket.upload_from_stream(
        filename,
        stream,
        metadata={
            "experiment": experiment_id,
            "project": project_id,
            "contentType": content_type,
        },
    )
    bucket_files = db["fs.files"]
    bucket_files.update_one({"_id": file_id}, {"$set": {"metadata.sha256": digest.hexdigest()}})
    experiments.list_file(db, experiment_id, file_entry(file_id, filename, content_type))
    for old in bucket_files.find(
        {
            "metadata.experiment": experiment_id,
            "metadata.kind": None,  # only listed files; not kept logs or large fields
            "filename": filename,
            "_id": {"$ne": file_id},
        },
        {"_id": 1},
    ):
        delete_file(db, old["_id"])
    return file_id


def ensure_indexes(db: Database) -> None:
    """The indexes the reads of an experiment's files use (idempotent)."""
    db["fs.files"].create_index([("metadata.experiment", ASCENDING), ("filename", ASCENDING)])
    db["fs.files"].create_index("metadata.project")


def put_blob(db: Database, filename: str, data: IO[bytes], metadata: dict[str, Any]) -> ObjectId:
    """Store `data` as a GridFS file that no ``_files`` lists (a large field's value)."""
    return GridFSBucket(db).upload_from_stream(filename, data, metadata=metadata)


def put_kept_log(
    db: Database, experiment_id: ObjectId | str, project_id: ObjectId | str | None, data: bytes
) -> ObjectId:
    """Keep an experiment's log (``LOG_FILENAME``, never listed in ``_files``); returns its ID.

    New first, old last: a crash in between leaves two kept logs, never none.
    """
    metadata = {"experiment": experiment_id, "project": project_id, **LOG_METADATA}
    file_id = GridFSBucket(db).upload_from_stream(LOG_FILENAME, data, metadata=metadata)
    for old in db["fs.files"].find(
        {"metadata.experiment": experiment_id, "filename": LOG_FILENAME, "_id": {"$ne": file_id}},
        {"_id": 1},
    ):
        delete_file(db, old["_id"])
    return file_id


#: The whole uncommitted diff of a run's code, when too long for ``_code`` (unlisted).
CODE_DIFF_FILENAME = "code.diff"


def put_code_diff(
    db: Database, experiment_id: ObjectId, project_id: ObjectId | None, data: bytes
) -> ObjectId:
    """Keep a run's whole ``git diff`` (``CODE_DIFF_FILENAME``, never listed in
    ``_files``, which holds what the program wrote); returns its ID."""
    metadata = {
        "experiment": experiment_id,
        "project": project_id,
        "kind": "code",
        "contentType": "text/x-diff",
    }
    return GridFSBucket(db).upload_from_stream(CODE_DIFF_FILENAME, data, metadata=metadata)


def delete_file(db: Database, file_id: ObjectId) -> None:
    """Delete one GridFS file and its chunks; a file already gone is fine."""
    db["fs.chunks"].delete_many({"files_id": file_id})
    db["fs.files"].delete_one({"_id": file_id})


def delete_files(db: Database, query: dict[str, Any]) -> int:
    """Delete every GridFS file whose ``fs.files`` document matches `query`."""
    ids = [doc["_id"] for doc in db["fs.files"].find(query, {"_id": 1})]
    if ids:
        db["fs.chunks"].delete_many({"files_id": {"$in": ids}})
        db["fs.files"].delete_many({"_id": {"$in": ids}})
    return len(ids)


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, stream: IO[bytes], digest: Any) -> None:
        self._stream = stream
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._digest.update(chunk)
        return chunk
