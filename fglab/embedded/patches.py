"""Version-pinned fixes of mongoeco, the embedded MongoDB wire server, applied at start.

Each fix replaces one upstream method of mongoeco |PINNED| and is applied only when the
installed mongoeco is that version and the method's source is the one it was written
against (``UPSTREAM_SOURCES``; ``tests/unit/test_embedded_patches.py`` fails when either
changes, so an upgrade is a conscious review). Otherwise the server runs unpatched and
says so on stderr. ``FGLAB_EMBEDDED_PATCHES=0`` turns them off. The upstream bugs are
written up in ``docs/mongoeco-scaling.md``.

Fix 1: every insert compared the new document's ``_id`` with every stored document
(``scan_payload_id``), so an insert cost O(n) and filling a collection O(n²). The wire
server inserts one document at a time even for an ``insert_many``, so every insert takes
that path. The scan exists for numeric ``_id`` values, whose equal values (``1``,
``1.0``, ``Int64(1)``) have different storage keys; an ``ObjectId`` or a string has
exactly one storage key, so the lookup by storage key that runs before the scan is the
whole duplicate check. FGLab's documents all have ``ObjectId`` (or string) ids.

Fix 2: the memory engine finds documents by ``_id`` without a scan only for an equality;
``{"_id": {"$in": [...]}}`` (a worker's heartbeat asking which of its runs have a kill
request) read every document. With exact-keyed ids the candidates are the documents
stored under those keys; the query's whole filter still runs on them afterwards.

Fix 3: the memory engine uses an index only when its key is one ascending field and the
query has an equality on it (never a compound index), so a project's table page,
``find({"_project_id": p}).sort([("_scores.loss", 1), ("_id", 1)]).limit(50)`` with an
index on ``(_project_id, _scores.loss)``, read, filtered and sorted every document.
`fglab.embedded.ordered_index` keeps beside such an index each prefix value's documents
in sort order and hands mongoeco's pipeline only the first skip+limit matches in that
order (with the ties at the boundary, and the documents it cannot order: arrays, other
types); mongoeco's own filter, sort, skip and limit then run on them. It needs three
hooks: ``scan_find_semantics`` hands the find's semantics down to
``_candidate_items_for_plan_locked`` (composed with Fix 2), and ``MemoryIndexMap.add`` /
``discard`` note each written document for the ordered view.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from bson import ObjectId

from fglab.embedded import ordered_index

#: The mongoeco version these fixes were written against.
PINNED = "4.11.0"

#: SHA-256 of each replaced method's source in mongoeco PINNED.
UPSTREAM_SOURCES = {
    "mongoeco.engines.memory:MemoryEngine._ensure_unique_indexes": (
        "1fb2ba1532c565aa8fef250a9c2e158e6286e262caadca41f3829ace50e1adcb"
    ),
    "mongoeco.engines.sqlite:SQLiteEngine._validate_document_against_unique_indexes": (
        "f50e60835a1d8144657b7e0538a0ba7c77dc28f9dd1e10f0056175d53fe62b54"
    ),
    "mongoeco.engines.memory:MemoryEngine._candidate_items_for_plan_locked": (
        "c8a015be72c2f4f6e3510c09bb0753121dcd51d0fc8bc0e1729a5fbae70e03a4"
    ),
    "mongoeco.engines.memory:MemoryEngine.scan_find_semantics": (
        "990187665e6f953e0e3be70fecfbfcbeecc88c87b43c1e34f9dbb4845f8f8996"
    ),
    "mongoeco.engines._memory_collection:MemoryIndexMap.add": (
        "e07fa5d11a2d650b0e9e48e881ad66842deb12d515ab68313edfb7da00111ca1"
    ),
    "mongoeco.engines._memory_collection:MemoryIndexMap.discard": (
        "61588eea2d012292cfb306a30697d16ebc7e074a9fb541b1649cb19bbf535140"
    ),
}

#: ``_id`` types whose storage key is their only equal value.
EXACT_ID_TYPES = (ObjectId, str)


def source_digest(target: str) -> str:
    """SHA-256 of the source of `target` ("module:Class.method") as installed."""
    function = _resolve(target)
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def problems() -> list[str]:
    """Why the fixes cannot be applied to the installed mongoeco (empty when they can)."""
    from mongoeco import __version__

    if __version__ != PINNED:
        return [f"mongoeco is {__version__}, the fixes are for {PINNED}"]
    return [
        f"{target} changed upstream"
        for target, digest in UPSTREAM_SOURCES.items()
        if source_digest(target) != digest
    ]


def apply() -> bool:
    """Install the fixes; False (with one line on stderr) when they are off or stale."""
    if os.environ.get("FGLAB_EMBEDDED_PATCHES", "1") == "0":
        return False
    found = problems()
    if found:
        print(
            f"embedded MongoDB runs without FGLab's fixes ({'; '.join(found)}); "
            "inserts slow down as collections grow",
            file=sys.stderr,
        )
        return False
    for target, fix in FIXES.items():
        owner, name = _owner(target)
        original = getattr(owner, name)
        if not getattr(original, "_fglab_patched", False):
            setattr(owner, name, fix(original))
    return True


def _skip_payload_id_scan(original: Callable[..., Any]) -> Callable[..., Any]:
    """`original` without the whole-collection ``_id`` scan for exact-keyed ids."""

    @functools.wraps(original)
    def check(self: Any, db_name: str, coll_name: str, document: Any, **kwargs: Any) -> Any:
        if kwargs.get("scan_payload_id") and isinstance(document.get("_id"), EXACT_ID_TYPES):
            kwargs["scan_payload_id"] = False
        return original(self, db_name, coll_name, document, **kwargs)

    check._fglab_patched = True  # type: ignore[attr-defined]
    return check


def _find_by_id_list(original: Callable[..., Any]) -> Callable[..., Any]:
    """`original`, answering an ``_id`` ``$in`` of exact-keyed ids by key lookups."""

    @functools.wraps(original)
    def candidates(self: Any, coll: Any, query_plan: Any, **kwargs: Any) -> Any:
        ids = _id_list(query_plan)
        if ids is None or kwargs.get("collation") is not None:
            return original(self, coll, query_plan, **kwargs)
        found = []
        for value in dict.fromkeys(ids):
            key = self._storage_key(value)
            data = coll.get(key)
            if data is not None:
                found.append((key, data))
        return found

    candidates._fglab_patched = True  # type: ignore[attr-defined]
    return candidates


def _id_list(query_plan: Any) -> tuple[Any, ...] | None:
    """The ids of an ``_id`` ``$in`` (alone or in an ``$and``), when all are exact-keyed."""
    from mongoeco.core.query_plan import AndCondition, InCondition

    clauses = query_plan.clauses if isinstance(query_plan, AndCondition) else (query_plan,)
    for clause in clauses:
        if (
            isinstance(clause, InCondition)
            and clause.field == "_id"
            and all(isinstance(value, EXACT_ID_TYPES) for value in clause.values)
        ):
            return clause.values
    return None


#: Each replaced method and what replaces it.
FIXES: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "mongoeco.engines.memory:MemoryEngine._ensure_unique_indexes": _skip_payload_id_scan,
    "mongoeco.engines.sqlite:SQLiteEngine._validate_document_against_unique_indexes": (
        _skip_payload_id_scan
    ),
    "mongoeco.engines.memory:MemoryEngine._candidate_items_for_plan_locked": (
        lambda original: _find_by_id_list(ordered_index.ordered_candidates(original))
    ),
    "mongoeco.engines.memory:MemoryEngine.scan_find_semantics": ordered_index.hand_down_semantics,
    "mongoeco.engines._memory_collection:MemoryIndexMap.add": ordered_index.track,
    "mongoeco.engines._memory_collection:MemoryIndexMap.discard": ordered_index.track,
}


def _owner(target: str) -> tuple[type, str]:
    module_name, qualified = target.split(":")
    class_name, name = qualified.split(".")
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name), name


def _resolve(target: str) -> Callable[..., Any]:
    owner, name = _owner(target)
    function = getattr(owner, name)
    while getattr(function, "_fglab_patched", False):  # a fix, maybe wrapping another
        function = function.__wrapped__
    return function
