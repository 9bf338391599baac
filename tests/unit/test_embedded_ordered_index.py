"""Fix 3 (`fglab.embedded.ordered_index`): a project's sorted page from the ordered view
is the page mongoeco's own path returns, through pymongo and the real wire server."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from bson import Int64, ObjectId
from pymongo import ASCENDING, MongoClient

from fglab.embedded import ordered_index

PROJECT = ObjectId()
OTHER = ObjectId()
LOSSES = (0, 0.5, 1, 1.0, Int64(1), 2, 2.5, -3, 7.25, 1e300, float("inf"), float("-inf"))


@pytest.fixture(scope="module")
def client() -> Iterator[MongoClient]:
    """The embedded wire server in this process (so STATS can be read), patched."""
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

    from fglab.embedded.mongo import _engine

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = AsyncMongoEcoProxyServer(engine=_engine("memory", None), port=0)
    address = asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    mongo: MongoClient = MongoClient(address.uri, tz_aware=True)
    yield mongo
    mongo.close()
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def experiments(client: MongoClient) -> Iterator[Any]:
    database = client[f"ordered_{ObjectId()}"]
    collection = database["experiments"]
    collection.create_index([("_project_id", ASCENDING), ("_scores.loss", ASCENDING)])
    collection.insert_many(_documents(random.Random(7), 300))
    yield collection
    client.drop_database(database.name)


def _documents(rng: random.Random, count: int) -> list[dict[str, Any]]:
    docs = []
    for number in range(count):
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "_project_id": PROJECT if number % 5 else OTHER,
            "_status": rng.choice(["success", "fail", "killed", "running"]),
            "n": number,
        }
        shape = rng.random()
        if shape < 0.08:
            pass  # no _scores: a missing sort value
        elif shape < 0.12:
            doc["_scores"] = {}
        elif shape < 0.18:
            doc["_scores"] = {"loss": None}
        else:
            doc["_scores"] = {"loss": rng.choice(LOSSES)}
        if doc["_project_id"] == OTHER:
            doc["_scores"] = {"loss": -1e9}  # would lead every page if it leaked in
        docs.append(doc)
    return docs


def _pages(collection: Any, query: dict, sort: list, skip: int = 0, limit: int = 10) -> tuple:
    """(mongoeco's own page, the page with the ordered view, pages it answered)."""
    ordered_index.ENABLED = False
    try:
        expected = list(collection.find(query).sort(sort).skip(skip).limit(limit))
    finally:
        ordered_index.ENABLED = True
    before = ordered_index.STATS["pages"]
    got = list(collection.find(query).sort(sort).skip(skip).limit(limit))
    return expected, got, ordered_index.STATS["pages"] - before


def _assert_same(collection: Any, query: dict, sort: list, skip: int = 0, limit: int = 10):
    expected, got, answered = _pages(collection, query, sort, skip, limit)
    assert got == expected
    assert answered == 1, "the ordered view did not answer"
    return got


def _ids(docs: list[dict]) -> list[ObjectId]:
    return [doc["_id"] for doc in docs]


def _python_page(docs: list[dict], direction: int, skip: int, limit: int) -> list[ObjectId]:
    """The page computed here: missing and null first ascending, ties by _id."""

    def key(doc: dict) -> tuple:
        loss = (doc.get("_scores") or {}).get("loss")
        return (0, 0) if loss is None else (1, float(loss))

    mine = [doc for doc in docs if doc["_project_id"] == PROJECT]
    mine.sort(key=lambda doc: (key(doc), doc["_id"]), reverse=direction == -1)
    return _ids(mine[skip : skip + limit])


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize(("skip", "limit"), [(0, 50), (0, 1), (7, 10), (230, 50)])
def test_the_page_is_mongoecos_page(experiments, direction, skip, limit):
    sort = [("_scores.loss", direction), ("_id", direction)]
    got = _assert_same(experiments, {"_project_id": PROJECT}, sort, skip, limit)
    assert all(doc["_project_id"] == PROJECT for doc in got)
    docs = list(experiments.find({}))
    assert _ids(got) == _python_page(docs, direction, skip, limit)


@pytest.mark.parametrize("direction", [1, -1])
def test_a_sort_without_id_keeps_mongoecos_ties(experiments, direction):
    """Ties (1, 1.0, Int64(1); missing and null) come in mongoeco's order, natural."""
    for skip in (0, 3, 20, 40):
        _assert_same(experiments, {"_project_id": PROJECT}, [("_scores.loss", direction)], skip)


@pytest.mark.parametrize("direction", [1, -1])
def test_an_extra_clause_still_filters(experiments, direction):
    query = {"_project_id": PROJECT, "_status": {"$in": ["success", "fail"]}}
    got = _assert_same(experiments, query, [("_scores.loss", direction), ("_id", direction)])
    assert {doc["_status"] for doc in got} <= {"success", "fail"}
    query = {"_project_id": PROJECT, "n": {"$gte": 150}}
    _assert_same(experiments, query, [("_scores.loss", direction), ("_id", direction)], 3)


def test_writes_after_the_view_is_built(experiments):
    sort = [("_scores.loss", 1), ("_id", 1)]
    first = _assert_same(experiments, {"_project_id": PROJECT}, sort)
    builds = ordered_index.STATS["builds"]
    experiments.delete_many({"_id": {"$in": _ids(first[:3])}})
    last = list(experiments.find({"_project_id": PROJECT}).sort(sort).skip(200).limit(4))
    for doc, loss in zip(last, (-50, -50.0, None, "text"), strict=True):
        experiments.update_one({"_id": doc["_id"]}, {"$set": {"_scores.loss": loss}})
    experiments.update_one({"_id": first[5]["_id"]}, {"$set": {"_scores.loss": 10**6}})
    experiments.update_one({"_id": first[6]["_id"]}, {"$unset": {"_scores": ""}})
    experiments.replace_one({"_id": first[7]["_id"]}, {"_project_id": OTHER, "n": -1})
    experiments.insert_many(
        [{"_project_id": PROJECT, "_scores": {"loss": -60 + i}, "n": 1000 + i} for i in range(3)]
    )
    for direction in (1, -1):
        for skip in (0, 5, 270):
            _assert_same(
                experiments,
                {"_project_id": PROJECT},
                [("_scores.loss", direction), ("_id", direction)],
                skip,
            )
    query = {"_project_id": PROJECT, "_scores.loss": {"$gt": -1000}}
    got = _assert_same(experiments, query, sort, limit=300)
    assert [doc["_scores"]["loss"] for doc in got[:5]] == [-60, -59, -58, -50, -50.0]
    moved = _ids(got).index(first[5]["_id"])
    assert all(
        doc["_scores"]["loss"] > 10**6
        for doc in got[moved + 1 :]
        if isinstance(doc["_scores"]["loss"], int | float)
    )
    assert not set(_ids(first[:3])) & set(_ids(got))
    assert ordered_index.STATS["builds"] == builds, "writes were not followed in place"


@pytest.mark.parametrize("direction", [1, -1])
def test_arrays_at_the_sort_path_stay_right(experiments, direction):
    """mongoeco sorts an array by its least (ascending) or greatest (descending) member."""
    sort = [("_scores.loss", direction), ("_id", direction)]
    _assert_same(experiments, {"_project_id": PROJECT}, sort)
    middle = list(experiments.find({"_project_id": PROJECT}).sort(sort).skip(100).limit(3))
    experiments.update_one({"_id": middle[0]["_id"]}, {"$set": {"_scores.loss": [500, -500]}})
    experiments.update_one(
        {"_id": middle[1]["_id"]}, {"$set": {"_scores": [{"loss": 900}, {"loss": -900}]}}
    )
    experiments.update_one({"_id": middle[2]["_id"]}, {"$set": {"_scores.loss": []}})
    got = _assert_same(experiments, {"_project_id": PROJECT}, sort, limit=80)
    assert {middle[0]["_id"], middle[1]["_id"]} <= set(_ids(got))
    _assert_same(experiments, {"_project_id": PROJECT}, sort, skip=1)


def test_arrays_at_the_prefix_path_stay_right(experiments):
    sort = [("_scores.loss", 1), ("_id", 1)]
    wild = experiments.insert_one(
        {"_project_id": [OTHER, PROJECT], "_scores": {"loss": -(10**5)}}
    ).inserted_id
    got = _assert_same(experiments, {"_project_id": PROJECT}, sort, limit=80)
    assert wild in _ids(got)


def test_strings_and_dates(experiments):
    experiments.create_index([("_project_id", ASCENDING), ("name", ASCENDING)])
    experiments.create_index([("_project_id", ASCENDING), ("_created", ASCENDING)])
    rng = random.Random(3)
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for doc in experiments.find({}, {"_id": 1}):
        name = rng.choice(["b", "a", "ab", "B", "é", "", "z" * 3, None, 5])
        created = start + datetime.timedelta(minutes=rng.randrange(100))
        experiments.update_one({"_id": doc["_id"]}, {"$set": {"name": name, "_created": created}})
    for field, direction, skip in itertools.product(("name", "_created"), (1, -1), (0, 9)):
        _assert_same(
            experiments, {"_project_id": PROJECT}, [(field, direction), ("_id", direction)], skip
        )


def test_what_it_cannot_serve_takes_mongoecos_path(experiments):
    """No limit, a collation, a sort it has no index for, a non-equality: upstream."""
    sort = [("_scores.loss", 1), ("_id", 1)]
    cases = [
        experiments.find({"_project_id": PROJECT}).sort(sort),
        experiments.find({"_project_id": PROJECT}).sort(sort).limit(5).collation({"locale": "en"}),
        experiments.find({"_project_id": PROJECT}).sort([("n", 1)]).limit(5),
        experiments.find({"_project_id": {"$in": [PROJECT]}}).sort(sort).limit(5),
        experiments.find({"_project_id": PROJECT}).sort([("_scores.loss", 1), ("n", 1)]).limit(5),
    ]
    before = ordered_index.STATS["pages"]
    for cursor in cases:
        assert list(cursor.clone())
    assert ordered_index.STATS["pages"] == before


def test_order_keys_order_as_mongoeco_sorts():
    from mongoeco.core.sorting import _compare_sort_values
    from mongoeco.types import ObjectId as EcoObjectId

    values = [
        None,
        0,
        -0.0,
        1,
        1.0,
        2**53,
        float(2**53),
        -(2**53),
        0.1,
        float("inf"),
        float("-inf"),
        "",
        "a",
        "B",
        "é",
        ObjectId("000000000000000000000001"),
        EcoObjectId("000000000000000000000002"),
        datetime.datetime(2026, 1, 1),
        datetime.datetime(2025, 1, 1),
    ]
    for left, right in itertools.product(values, repeat=2):
        left_key, right_key = ordered_index.order_key(left), ordered_index.order_key(right)
        assert left_key is not None and right_key is not None
        ours = (left_key > right_key) - (left_key < right_key)
        assert ours == _compare_sort_values(left, right), (left, right)
    for value in (
        True,
        Int64(1),
        [1],
        {"a": 1},
        float("nan"),
        2**60,
        b"x",
        datetime.datetime.now(datetime.UTC),
    ):
        assert ordered_index.order_key(value) is None


@pytest.mark.parametrize("commit", [False, True])
def test_a_transaction_sees_its_own_writes(client, experiments, commit):
    sort = [("_scores.loss", 1), ("_id", 1)]
    query = {"_project_id": PROJECT, "_scores.loss": {"$gt": -1000}}
    _assert_same(experiments, query, sort)
    moved = experiments.find(query).sort(sort).skip(150).limit(1).next()["_id"]
    with client.start_session() as session:
        session.start_transaction()
        experiments.update_one({"_id": moved}, {"$set": {"_scores.loss": -999}}, session=session)
        ordered_index.ENABLED = False
        try:
            expected = list(experiments.find(query, session=session).sort(sort).limit(5))
        finally:
            ordered_index.ENABLED = True
        got = list(experiments.find(query, session=session).sort(sort).limit(5))
        assert got == expected and got[0]["_id"] == moved
        if commit:
            session.commit_transaction()
        else:
            session.abort_transaction()
    got = _assert_same(experiments, query, sort)
    assert (got[0]["_id"] == moved) is commit


def test_writes_rolled_back_and_bulk_loads(experiments):
    """A write a unique index refuses leaves the page as it was; a bulk load is seen."""
    from pymongo.errors import BulkWriteError, DuplicateKeyError

    sort = [("_scores.loss", -1), ("_id", -1)]
    experiments.create_index([("n", ASCENDING)], unique=True)
    before = _assert_same(experiments, {"_project_id": PROJECT}, sort)
    with pytest.raises(DuplicateKeyError):
        experiments.update_one(
            {"_id": before[-1]["_id"]}, {"$set": {"n": before[0]["n"], "_scores.loss": 1e308}}
        )
    with pytest.raises(BulkWriteError):
        experiments.insert_many(
            [{"_project_id": PROJECT, "_scores": {"loss": 1e307}, "n": -5}, {"n": before[0]["n"]}]
        )
    _assert_same(experiments, {"_project_id": PROJECT}, sort)
    refused = experiments.find_one({"_id": before[-1]["_id"]})
    assert refused.get("_scores") == before[-1].get("_scores")
    fresh = [
        {"_project_id": PROJECT, "_scores": {"loss": i / 7}, "n": 10_000 + i} for i in range(1500)
    ]
    experiments.insert_many(fresh)
    for skip in (0, 1000):
        _assert_same(experiments, {"_project_id": PROJECT}, sort, skip)
