"""An ordered view of a compound index for mongoeco's memory engine (Fix 3 of `patches`).

mongoeco 4.11.0's memory engine keeps an index as hash buckets of whole keys, so
``find({"_project_id": p}).sort([("_scores.loss", 1), ("_id", 1)]).limit(50)`` with an
index on ``(_project_id, _scores.loss)`` reads, filters and sorts every document of the
collection. This module keeps, beside such an index, each prefix value's documents in
sort order and answers that query by walking them in order.

What it keeps (`Ordered`, one per index map, built on the first query that can use it):
for each value of the index's first field (its `bson_equality_key`), a list of
``(sort value key, _id key, serial, storage key)`` sorted ascending, where the keys
(`order_key`) order values exactly as mongoeco's sort compares them. Documents it
cannot order so are kept aside and always handed on as candidates: an array on the sort
path or a value of another type (per prefix value), an array on the prefix path (for
every prefix value). mongoeco's own filter, sort, skip, limit and projection then run on
the candidates, so the page is the one mongoeco would return by reading everything.

How it stays right: it is derived from the collection's documents, not from the index.
Every document write of the memory engine adds or discards the document's entry in every
index map (`MemoryIndexMap.add` / `discard`); those two are wrapped to note the storage
key, and the next query re-reads the noted documents. Any other change of the index map
(a rollback restoring its state, ``clear``, ``del``) replaces its persistent bucket map
without those calls: the ordered view notices that the map is no longer the one it last
saw and rebuilds itself from the collection, as it does when the collection object is not
the one it was built from (a transaction's copy, a restored snapshot).

When it answers (`page_candidates`): a find (`MemoryEngine.scan_find_semantics`, whose
semantics the wrapper hands down in `_FIND`) with an equality on the index's first field
to a string or an ObjectId (alone or in a top-level ``$and``), a sort on the index's
second field (either direction, optionally followed by ``_id`` in the same direction),
a positive limit, no collation, no text search, on a plain index (not sparse, partial or
hidden) of a `MemoryCollection`. Anything else takes mongoeco's own path.
"""

from __future__ import annotations

import bisect
import contextvars
import datetime
import functools
import itertools
import math
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

#: Off switch for tests (same server, same data, mongoeco's own path).
ENABLED = True

#: Counters the tests read: pages answered, documents walked, full builds.
STATS = {"pages": 0, "walked": 0, "builds": 0}

#: The find being run, for the candidate hook (its query plan identifies it).
_FIND: contextvars.ContextVar[Any] = contextvars.ContextVar("fglab_find", default=None)

#: Where an index map keeps its ordered view.
ATTRIBUTE = "_fglab_ordered"

#: Numbers past this are compared through decimals by mongoeco, not as Python numbers.
_EXACT = 2**53

_NULL = (1, 0)


def order_key(value: Any) -> tuple[Any, ...] | None:
    """A key whose order is mongoeco's sort order of `value` (MongoDB 7 dialect, no
    collation), or None for a value it does not cover (arrays, documents, decimals,
    booleans, Int64, NaN, huge integers, aware datetimes, binary, regexes...)."""
    from mongoeco.core.bson_scalars import BsonDouble, BsonInt32, BsonInt64
    from mongoeco.types import is_object_id_like, normalize_object_id

    if value is None:
        return _NULL
    kind = type(value)
    if kind is str:
        return (3, value)
    if is_object_id_like(value):
        return (7, normalize_object_id(value))
    if kind is datetime.datetime:
        return (9, value) if value.tzinfo is None else None
    # Exact types only: mongoeco ranks a value by its type, and an int subclass such as
    # bson's Int64 gets no rank (it sorts after strings there).
    if kind is BsonInt32 or kind is BsonInt64 or kind is BsonDouble:
        value = value.value
        kind = type(value)
    if kind is float:
        if math.isnan(value):
            return None
        if math.isinf(value):
            return (2, value)
    elif kind is not int:
        return None  # booleans, decimals, documents, arrays, binary...
    if abs(value) > _EXACT:
        return None
    return (2, value)


class Ordered:
    """One index map's documents by prefix value, in sort order (see the module doc)."""

    def __init__(self, prefix: str, field: str) -> None:
        self.prefix = prefix
        self.field = field
        self.buckets: Any = None  # the index map's bucket map when last in step
        self.collection: weakref.ref[Any] | None = None
        self.dirty: set[Any] = set()
        self.lists: dict[Any, list[tuple[Any, ...]]] = {}
        self.extras: dict[Any, set[Any]] = {}
        self.wild: set[Any] = set()
        self.records: dict[Any, tuple[Any, ...]] = {}
        self.serial = itertools.count()

    def sync(self, engine: Any, coll: Any, index_map: Any) -> None:
        """Bring the view in step with `coll` before a query."""
        current = None if self.collection is None else self.collection()
        stale: bool = (
            self.buckets is not index_map._buckets
            or current is not coll
            or len(self.dirty) > max(1_000, len(self.records) // 4)  # a bulk load
        )
        if stale:
            self.rebuild(engine, coll, index_map)
            return
        for storage_key in self.dirty:
            self._remove(storage_key)
            data = coll.get(storage_key)
            if data is not None:
                self._place(engine, storage_key, data, keep_sorted=True)
        self.dirty.clear()

    def rebuild(self, engine: Any, coll: Any, index_map: Any) -> None:
        STATS["builds"] += 1
        self.lists.clear()
        self.extras.clear()
        self.wild.clear()
        self.records.clear()
        self.dirty.clear()
        for storage_key, data in coll.items():
            self._place(engine, storage_key, data, keep_sorted=False)
        for entries in self.lists.values():
            entries.sort()
        self.collection = weakref.ref(coll)
        self.buckets = index_map._buckets

    def _place(self, engine: Any, storage_key: Any, data: Any, *, keep_sorted: bool) -> None:
        from mongoeco.core.bson_ordering import bson_equality_key
        from mongoeco.core.sorting import sort_value

        document = engine._borrow_storage_document(data)
        if engine._array_paths_for_index_field(document, self.prefix):
            self.wild.add(storage_key)
            self.records[storage_key] = ("wild",)
            return
        prefix_value = sort_value(document, self.prefix, 1)
        if prefix_value is None:
            return  # matches no equality on a string or an ObjectId
        try:
            prefix_key = bson_equality_key(prefix_value)
            hash(prefix_key)
        except TypeError:
            self.wild.add(storage_key)
            self.records[storage_key] = ("wild",)
            return
        value_key = id_key = None
        if not engine._array_paths_for_index_field(document, self.field):
            value_key = order_key(sort_value(document, self.field, 1))
            id_key = order_key(document.get("_id"))
        if value_key is None or id_key is None:
            self.extras.setdefault(prefix_key, set()).add(storage_key)
            self.records[storage_key] = ("extra", prefix_key)
            return
        entry = (value_key, id_key, next(self.serial), storage_key)
        entries = self.lists.setdefault(prefix_key, [])
        if keep_sorted:
            bisect.insort(entries, entry)
        else:
            entries.append(entry)
        self.records[storage_key] = ("list", prefix_key, entry)

    def _remove(self, storage_key: Any) -> None:
        record = self.records.pop(storage_key, None)
        if record is None:
            return
        if record[0] == "wild":
            self.wild.discard(storage_key)
        elif record[0] == "extra":
            extras = self.extras[record[1]]
            extras.discard(storage_key)
            if not extras:
                del self.extras[record[1]]
        else:
            entries = self.lists[record[1]]
            position = bisect.bisect_left(entries, record[2])
            del entries[position]
            if not entries:
                del self.lists[record[1]]


def track(original: Callable[..., Any]) -> Callable[..., Any]:
    """`MemoryIndexMap.add` / `discard`, noting the storage key for the ordered view."""

    @functools.wraps(original)
    def method(self: Any, key: Any, storage_key: Any, *args: Any, **kwargs: Any) -> Any:
        ordered = self.__dict__.get(ATTRIBUTE)
        if ordered is None:
            return original(self, key, storage_key, *args, **kwargs)
        before = self._buckets
        try:
            return original(self, key, storage_key, *args, **kwargs)
        finally:
            if ordered.buckets is before:
                ordered.buckets = self._buckets
            ordered.dirty.add(storage_key)

    method._fglab_patched = True  # type: ignore[attr-defined]
    return method


def hand_down_semantics(original: Callable[..., Any]) -> Callable[..., Any]:
    """`MemoryEngine.scan_find_semantics`, with the find's semantics in `_FIND` while
    it picks its candidates (the first step of its stream)."""

    @functools.wraps(original)
    def scan(
        self: Any, db_name: str, coll_name: str, semantics: Any, *, context: Any = None
    ) -> AsyncIterator[Any]:
        return _handing_down(
            original(self, db_name, coll_name, semantics, context=context), semantics
        )

    scan._fglab_patched = True  # type: ignore[attr-defined]
    return scan


async def _handing_down(inner: Any, semantics: Any) -> AsyncIterator[Any]:
    try:
        previous = _FIND.set(semantics).old_value
        try:
            first = await anext(inner)
        except StopAsyncIteration:
            return
        finally:
            _FIND.set(None if previous is contextvars.Token.MISSING else previous)
        yield first
        async for document in inner:
            yield document
    finally:
        await inner.aclose()


def ordered_candidates(original: Callable[..., Any]) -> Callable[..., Any]:
    """`MemoryEngine._candidate_items_for_plan_locked`, answering an ordered page from
    the ordered view when it can (`page_candidates`)."""

    @functools.wraps(original)
    def candidates(self: Any, coll: Any, query_plan: Any, **kwargs: Any) -> Any:
        if ENABLED:
            found = page_candidates(self, coll, query_plan, **kwargs)
            if found is not None:
                return found
        return original(self, coll, query_plan, **kwargs)

    candidates._fglab_patched = True  # type: ignore[attr-defined]
    return candidates


def page_candidates(
    engine: Any,
    coll: Any,
    query_plan: Any,
    *,
    indexes: Any = (),
    index_data: Any = None,
    collation: Any = None,
    **_: Any,
) -> list[tuple[Any, Any]] | None:
    """The candidates of the find being run, or None where mongoeco's path must run."""
    from mongoeco.engines._memory_collection import MemoryCollection, MemoryIndexMap
    from mongoeco.engines.semantic_core import iter_filtered_documents

    semantics = _FIND.get()
    if (
        semantics is None
        or semantics.query_plan is not query_plan
        or collation is not None
        or semantics.collation is not None
        or semantics.text_query is not None
        or not isinstance(coll, MemoryCollection)
        or not index_data
    ):
        return None
    window = _window(semantics)
    if window is None:
        return None
    field, descending, with_id, need = window
    equalities = _equalities(query_plan)
    if not equalities:
        return None
    for index in indexes:
        fields = list(index.fields)
        if (
            len(fields) < 2
            or fields[1] != field
            or fields[0] not in equalities
            or index.sparse
            or index.hidden
            or index.partial_filter_expression is not None
        ):
            continue
        index_map = index_data.get(index.name)
        if isinstance(index_map, MemoryIndexMap):
            break
    else:
        return None
    ordered = index_map.__dict__.get(ATTRIBUTE)
    if ordered is None or (ordered.prefix, ordered.field) != (fields[0], field):
        ordered = Ordered(fields[0], field)
        index_map.__dict__[ATTRIBUTE] = ordered
    ordered.sync(engine, coll, index_map)

    from mongoeco.core.bson_ordering import bson_equality_key

    prefix_key = bson_equality_key(equalities[fields[0]])
    entries = ordered.lists.get(prefix_key, [])
    group = 2 if with_id else 1
    boundary: list[Any] = [None]
    current: list[Any] = [None]

    def walk() -> Iterator[Any]:
        for entry in reversed(entries) if descending else entries:
            if boundary[0] is not None and entry[:group] != boundary[0]:
                return  # past the last match's ties
            current[0] = entry
            STATS["walked"] += 1
            yield engine._borrow_storage_document(coll[entry[3]])

    found = []
    for _document in iter_filtered_documents(walk(), semantics):
        entry = current[0]
        found.append(entry[3])
        if len(found) == need:
            boundary[0] = entry[:group]
    found.extend(ordered.extras.get(prefix_key, ()))
    found.extend(ordered.wild)
    STATS["pages"] += 1
    # In natural order, as mongoeco's own candidates: its stable sort then breaks ties
    # (a sort without _id) the same way.
    return [(key, coll[key]) for key in coll.ordered_keys(found)]


def _window(semantics: Any) -> tuple[str, bool, bool, int] | None:
    """(sort field, descending, sort ends with _id, skip + limit) of a find it serves."""
    limit, skip, sort = semantics.limit, semantics.skip, semantics.sort
    if not isinstance(limit, int) or limit <= 0 or not isinstance(skip, int) or skip < 0:
        return None
    if not sort or len(sort) > 2:
        return None
    try:
        pairs = [(str(name), direction) for name, direction in sort]
    except (TypeError, ValueError):
        return None
    field, direction = pairs[0]
    if field == "_id" or field.startswith("$") or direction not in (1, -1):
        return None
    if isinstance(direction, bool):
        return None
    if len(pairs) == 2 and (pairs[1][0] != "_id" or pairs[1][1] != direction):
        return None
    return field, direction == -1, len(pairs) == 2, skip + limit


def _equalities(query_plan: Any) -> dict[str, Any]:
    """Field -> value of the plan's top-level equalities to a string or an ObjectId."""
    from mongoeco.core.query_plan import AndCondition, EqualsCondition
    from mongoeco.types import is_object_id_like

    clauses = query_plan.clauses if isinstance(query_plan, AndCondition) else (query_plan,)
    found: dict[str, Any] = {}
    for clause in clauses:
        if (
            type(clause) is EqualsCondition
            and not clause.null_matches_undefined
            and (isinstance(clause.value, str) or is_object_id_like(clause.value))
        ):
            found.setdefault(clause.field, clause.value)
    return found
