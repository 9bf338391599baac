"""Experiment fields too large for the document live in GridFS.

A MongoDB document may not exceed 16 MB (Sacred's observer died of a run that grew past
it), so a field value whose BSON size is above `LARGE_FIELD_BYTES` is written to GridFS as
JSON and the document holds a small reference instead::

    {"_fglab_large": ObjectId("..."), "bytes": 36000000}

Writers call `store_field_value` and ``$set`` what it returns; readers call
`resolve_large_fields` (or `load_field_value` for one value) to get the whole value back.
Shared by FGLab (serving experiments) and the machines (uploading results).
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any, TypeGuard

import bson
from bson import ObjectId
from gridfs import GridFSBucket
from gridfs.errors import NoFile
from pymongo.database import Database

from tasks import experiments
from tasks.files import delete_files, put_blob

logger = logging.getLogger(__name__)

#: A value whose BSON size is above this many bytes is stored outside the document.
LARGE_FIELD_BYTES = 1_000_000

#: The key that marks a reference to a value kept in GridFS.
LARGE_REF_KEY = "_fglab_large"

JSON_CONTENT_TYPE = "application/json"


def store_field_value(
    db: Database,
    experiment_id: ObjectId,
    project_id: ObjectId | None,
    name: str,
    value: Any,
    *,
    limit: int = LARGE_FIELD_BYTES,
    was_large: bool = True,
) -> Any:
    """Return what to ``$set`` as the experiment's field `name` for `value`.

    A value whose BSON size is at most `limit` bytes is returned as is. A larger one is
    written to GridFS as JSON (file ``<name>.json``, metadata ``kind: "field"``) and a
    reference ``{"_fglab_large": <file ID>, "bytes": <JSON size>}`` is returned. Either
    way, large versions of the same field stored earlier are deleted once the new value
    is stored, so the caller must ``$set`` the result right after (a reader that comes in
    between finds the old file gone; `resolve_large_fields` copes with that).

    `was_large` False says no earlier value of the field went to GridFS (a writer that
    stored every earlier value knows): a small value then costs no look for one.

    Raises `bson.errors.InvalidDocument` or `OverflowError` for a value BSON cannot hold
    (an integer beyond 64 bits), and pymongo's errors when MongoDB cannot be reached.
    """
    if len(bson.encode({"v": value})) <= limit:
        if was_large:
            _delete_large_versions(db, experiment_id, name, keep=None)
        return value
    data = json.dumps(value, separators=(",", ":"), allow_nan=True).encode("utf-8")
    file_id = put_blob(
        db,
        f"{name}.json",
        io.BytesIO(data),
        metadata={
            "experiment": experiment_id,
            "project": project_id,
            "kind": "field",
            "field": name,
            "contentType": JSON_CONTENT_TYPE,
        },
    )
    _delete_large_versions(db, experiment_id, name, keep=file_id)
    return {LARGE_REF_KEY: file_id, "bytes": len(data)}


def is_large_ref(value: object) -> TypeGuard[dict[str, Any]]:
    """Whether `value` is a reference written by `store_field_value`.

    Only a real ObjectId counts, so a value that came from JSON can never pose as one.
    """
    return (
        isinstance(value, dict)
        and set(value) == {LARGE_REF_KEY, "bytes"}
        and isinstance(value[LARGE_REF_KEY], ObjectId)
    )


def load_field_value(db: Database, value: Any) -> Any:
    """Return the whole value behind a reference; any other value is returned unchanged.

    Raises `gridfs.errors.NoFile` when the referenced file is gone (replaced meanwhile).
    """
    if not is_large_ref(value):
        return value
    data = GridFSBucket(db).open_download_stream(value[LARGE_REF_KEY]).read()
    return json.loads(data)


def resolve_large_fields(db: Database, doc: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `doc` with every top-level reference replaced by its value.

    A field replaced while this runs (its old file already deleted) is read again from
    the experiment; should it still be missing, it comes back as None with a warning.
    """
    resolved = dict(doc)
    for name, value in doc.items():
        if is_large_ref(value):
            resolved[name] = _load_or_reread(db, doc, name, value)
    return resolved


def _load_or_reread(db: Database, doc: dict[str, Any], name: str, value: Any) -> Any:
    try:
        return load_field_value(db, value)
    except NoFile:
        pass
    if "_id" in doc:
        fresh = experiments.get(db, doc["_id"], [name])
        if fresh is not None and name in fresh:
            try:
                return load_field_value(db, fresh[name])
            except NoFile:
                pass
    logger.warning(
        "experiment %s: field %r refers to GridFS file %s, which is gone",
        doc.get("_id"),
        name,
        value[LARGE_REF_KEY],
    )
    return None


def _delete_large_versions(
    db: Database, experiment_id: ObjectId, name: str, *, keep: ObjectId | None
) -> None:
    query: dict[str, Any] = {
        "metadata.experiment": experiment_id,
        "metadata.kind": "field",
        "metadata.field": name,
    }
    if keep is not None:
        query["_id"] = {"$ne": keep}
    delete_files(db, query)
