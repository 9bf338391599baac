"""Shared pieces of the API acceptance tests: the example schema, uploads, invariants."""

from __future__ import annotations

import io
import json
from typing import Any

from bson import ObjectId

#: The original FGLab's example schema (README), one option of every type.
EXAMPLE_SCHEMA: dict[str, dict[str, Any]] = {
    "seed": {"type": "int", "default": 123},
    "model": {"type": "string", "default": "cnn.v2"},
    "batchSize": {"type": "int", "default": 128},
    "optimiser": {"type": "enum", "default": "adam", "values": ["sgd", "adam", "rmsprop"]},
    "learningRate": {"type": "float", "default": 0.001},
    "L2": {"type": "bool", "default": True},
}

#: A valid option set for EXAMPLE_SCHEMA.
OPTIONS: dict[str, Any] = {
    "seed": 7,
    "model": "cnn.v3",
    "batchSize": 64,
    "optimiser": "sgd",
    "learningRate": 0.01,
    "L2": False,
}

#: Counted before and after a refused request: a refusal stores nothing in any of them.
COLLECTIONS = ("projects", "experiments", "machines", "webhooks", "fs.files", "fs.chunks")


def options(**changes: Any) -> dict[str, Any]:
    return {**OPTIONS, **changes}


def upload_schema(client: Any, content: bytes | dict | list, filename: str = "mnist.json") -> Any:
    """POST a schema file (an object is dumped to JSON) as multipart field `schema`."""
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return client.post(
        "/api/v1/projects/schema",
        data={"schema": (io.BytesIO(raw), filename, "application/json")},
        content_type="multipart/form-data",
    )


def upload_files(client: Any, experiment_id: str, *files: tuple[bytes, str, str]) -> Any:
    """PUT `(content, filename, content_type)` triples as multipart field `_files`."""
    return client.put(
        f"/api/v1/experiments/{experiment_id}/files",
        data={"_files": [(io.BytesIO(content), name, ctype) for content, name, ctype in files]},
        content_type="multipart/form-data",
    )


def submit(client: Any, project_id: str, body: Any, *, queue: bool = True) -> Any:
    url = f"/api/v1/projects/{project_id}/experiment" + ("?queue=true" if queue else "")
    return client.post(url, json=body)


def counts(db: Any) -> dict[str, int]:
    return {name: db[name].count_documents({}) for name in COLLECTIONS}


def assert_no_orphans(db: Any) -> None:
    """Every chunk belongs to a stored file, and every stored file is listed by an experiment.

    Also the converse: every `_files` entry points at a stored file, listed once per name.
    """
    file_ids = {doc["_id"] for doc in db["fs.files"].find({}, {"_id": 1})}
    chunk_owners = set(db["fs.chunks"].distinct("files_id"))
    assert chunk_owners <= file_ids, f"chunks without a file: {chunk_owners - file_ids}"

    listed: set[ObjectId] = set()
    for experiment in db["experiments"].find({}, {"_files": 1}):
        names = [entry["filename"] for entry in experiment.get("_files", [])]
        assert len(names) == len(set(names)), f"{experiment['_id']} lists a name twice: {names}"
        listed |= {entry["_id"] for entry in experiment.get("_files", [])}
    assert file_ids <= listed, f"stored files no experiment lists: {file_ids - listed}"
    assert listed <= file_ids, f"listed files that are not stored: {listed - file_ids}"
