"""The layers stay apart: who may import whom, and who may speak pymongo.

    config/  settings            imports nothing of ours
    tasks/   the shared contract imports config only
    fglab/   the server          imports tasks and config, never worker
    worker/  the machine side    imports tasks and config, never fglab

pymongo collection calls (and GridFS) live in FGLab's store, the shared records and the
GridFS upload path; everyone else calls their functions. Each collection has one writer:
only its record's module inserts, updates, deletes or indexes it (`WRITERS`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "tasks", "fglab", "worker")

#: Which of our packages each package may import.
ALLOWED_IMPORTS = {
    "config": {"config"},
    "tasks": {"config", "tasks"},
    "fglab": {"config", "tasks", "fglab"},
    "worker": {"config", "tasks", "worker"},
}

#: The modules that may call pymongo collections and GridFS buckets.
DATABASE_MODULES = {
    "fglab/store.py",  # FGLab's one gateway: reads, and calls the records
    "fglab/records/projects.py",  # the records only FGLab writes
    "fglab/records/webhooks.py",
    "fglab/records/tokens.py",
    "fglab/records/sessions.py",
    "tasks/experiments.py",  # the experiment record
    "tasks/machines.py",  # the machine record
    "tasks/files.py",  # the GridFS upload path: result files, the kept log
    "tasks/fields.py",  # the GridFS upload path: fields too large for a document
    "tasks/history.py",  # the progress record: reported (step, scores) points
    "tasks/counts.py",  # each project's experiments by status, kept by every move
    "fglab/sweeps/record.py",  # the sweep record, built by the store
}

#: Each writer module and the collections it alone writes (GridFS is fs.files + fs.chunks).
WRITERS = {
    "tasks/experiments.py": {"experiments"},
    "tasks/machines.py": {"machines", "machine_history"},
    "tasks/history.py": {"history"},
    "tasks/counts.py": {"status_counts"},
    "tasks/files.py": {"fs.files", "fs.chunks"},
    "fglab/records/projects.py": {"projects"},
    "fglab/records/webhooks.py": {"webhooks"},
    "fglab/records/tokens.py": {"tokens"},
    "fglab/records/sessions.py": {"sessions"},
    "fglab/sweeps/record.py": {"sweeps"},
}
#: The calls that change a collection (or its indexes).
WRITE_METHODS = frozenset(
    {
        "find_one_and_update", "find_one_and_replace", "find_one_and_delete", "insert_one",
        "insert_many", "update_one", "update_many", "replace_one", "delete_one",
        "delete_many", "create_index", "create_indexes", "drop_index", "bulk_write",
        "upload_from_stream", "upload_from_stream_with_id",
    }
)  # fmt: skip

#: Method names of pymongo's Collection and gridfs' GridFSBucket.
COLLECTION_METHODS = frozenset(
    {
        "find", "find_one", "find_one_and_update", "find_one_and_replace",
        "find_one_and_delete", "insert_one", "insert_many", "update_one", "update_many",
        "replace_one", "delete_one", "delete_many", "count_documents",
        "estimated_document_count", "aggregate", "distinct", "create_index",
        "create_indexes", "drop_index", "bulk_write", "watch", "upload_from_stream",
        "open_download_stream", "get_collection",
    }
)  # fmt: skip


def sources() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path))


def imported_packages(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def import_violations(files: Iterator[tuple[str, ast.Module]]) -> list[str]:
    problems = []
    for name, tree in files:
        package = name.split("/")[0]
        for imported in sorted(imported_packages(tree) - ALLOWED_IMPORTS[package]):
            problems.append(f"{name} imports {imported}")
    return problems


def database_calls(files: Iterator[tuple[str, ast.Module]]) -> list[str]:
    """``collection.method(...)`` calls and ``db["collection"]`` lookups outside the
    database modules."""
    problems = []
    for name, tree in files:
        if name in DATABASE_MODULES:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in COLLECTION_METHODS
            ):
                problems.append(f"{name}:{node.lineno} calls .{node.func.attr}()")
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name | ast.Attribute)
                and (getattr(node.value, "id", None) or getattr(node.value, "attr", "")) == "db"
            ):
                problems.append(f"{name}:{node.lineno} looks up a collection in db[...]")
    return problems


def status_writes(files: Iterator[tuple[str, ast.Module]]) -> list[str]:
    """``{"$set": {"_status": ...}}`` written anywhere but the experiment record."""
    problems = []
    for name, tree in files:
        if name == "tasks/experiments.py":
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "$set"
                    and isinstance(value, ast.Dict)
                    and any(
                        isinstance(k, ast.Constant) and k.value == "_status" for k in value.keys
                    )
                ):
                    problems.append(f"{name}:{node.lineno} sets _status itself")
    return problems


def write_violations(files: Iterator[tuple[str, ast.Module]]) -> list[str]:
    """Collection writes outside the writers, and writers naming another's collection.

    A writer names its collections as string constants (``COLLECTION = "experiments"``,
    ``db["fs.files"]``); any other writer's collection name in its source is reported,
    so a write to another record's collection cannot hide behind a variable.
    """
    owned = {c: module for module, collections in WRITERS.items() for c in collections}
    problems = []
    for name, tree in files:
        for node in ast.walk(tree):
            if (
                name not in WRITERS
                and name in DATABASE_MODULES
                and isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WRITE_METHODS
                and not _is_module(node.func.value, tree)
            ):
                problems.append(f"{name}:{node.lineno} writes with .{node.func.attr}()")
            for value in _collection_names(node) if name in WRITERS else ():
                if owned.get(value, name) != name:
                    problems.append(f"{name}:{node.lineno} names {owned[value]}'s {value}")
    return problems


def _is_module(node: ast.expr, tree: ast.Module) -> bool:
    """Whether `node` is a name the file imports (``experiments.insert_many`` is a
    record's function, not a collection's method)."""
    imported = {
        alias.asname or alias.name.split(".")[0]
        for statement in ast.walk(tree)
        if isinstance(statement, ast.Import | ast.ImportFrom)
        for alias in statement.names
    }
    return isinstance(node, ast.Name) and node.id in imported


def _collection_names(node: ast.AST) -> list[str]:
    """The strings `node` uses as collection names: ``db["name"]`` and ``*COLLECTION =
    "name"``."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return [node.slice.value] if isinstance(node.slice.value, str) else []
    if (
        isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id.endswith("COLLECTION") for t in node.targets)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ):
        return [node.value.value]
    return []


def test_packages_import_only_what_their_layer_allows() -> None:
    assert import_violations(sources()) == []


def test_only_the_store_and_the_records_call_pymongo() -> None:
    assert database_calls(sources()) == []


def test_each_collection_has_one_writer() -> None:
    assert write_violations(sources()) == []
    every = [c for collections in WRITERS.values() for c in collections]
    assert len(every) == len(set(every))


def test_only_the_experiment_record_writes_the_status() -> None:
    assert status_writes(sources()) == []


# The checks themselves catch what they are for -----------------------------------------


def parsed(name: str, text: str) -> Iterator[tuple[str, ast.Module]]:
    yield name, ast.parse(text)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("fglab/views.py", "from worker.machine import Machine", "fglab/views.py imports worker"),
        ("worker/runner.py", "import fglab.store", "worker/runner.py imports fglab"),
        ("tasks/ledger.py", "from fglab.errors import Conflict", "tasks/ledger.py imports fglab"),
        ("config/settings.py", "from tasks import Status", "config/settings.py imports tasks"),
    ],
)
def test_a_forbidden_import_is_reported(name: str, text: str, problem: str) -> None:
    assert import_violations(parsed(name, text)) == [problem]


def test_a_collection_call_outside_the_store_is_reported() -> None:
    text = 'def f(store, db):\n    store.experiments.update_one({}, {})\n    db["machines"]\n'
    assert database_calls(parsed("fglab/scheduler.py", text)) == [
        "fglab/scheduler.py:2 calls .update_one()",
        "fglab/scheduler.py:3 looks up a collection in db[...]",
    ]
    assert database_calls(parsed("fglab/store.py", text)) == []


def test_a_status_written_outside_the_record_is_reported() -> None:
    text = 'update = {"$set": {"_status": "lost"}}\n'
    assert status_writes(parsed("worker/machine.py", text)) == [
        "worker/machine.py:1 sets _status itself"
    ]


def test_a_write_outside_the_writer_is_reported() -> None:
    text = "def f(self):\n    self._experiments.update_one({}, {})\n    self._x.find({})\n"
    assert write_violations(parsed("fglab/store.py", text)) == [
        "fglab/store.py:2 writes with .update_one()"
    ]
    text = 'def f(db):\n    db["experiments"].update_one({}, {})\n'
    assert write_violations(parsed("tasks/files.py", text)) == [
        "tasks/files.py:2 names tasks/experiments.py's experiments"
    ]
    assert write_violations(parsed("tasks/experiments.py", text)) == []
