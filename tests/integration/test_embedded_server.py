"""Lookups the embedded server's fixes change still answer as MongoDB does."""

from __future__ import annotations

import pytest
from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError


def test_a_repeated_object_id_is_refused(db):
    oid = ObjectId()
    db.things.insert_many([{"_id": ObjectId()} for _ in range(50)])
    db.things.insert_one({"_id": oid})
    with pytest.raises(DuplicateKeyError):
        db.things.insert_one({"_id": oid})
    assert db.things.count_documents({"_id": oid}) == 1


def test_a_repeated_id_within_one_insert_many_is_refused(db):
    oid = ObjectId()
    with pytest.raises(BulkWriteError):
        db.things.insert_many([{"_id": oid, "n": 1}, {"_id": oid, "n": 2}])
    assert [doc["n"] for doc in db.things.find({"_id": oid})] == [1]


def test_equal_numeric_ids_are_refused(db):
    db.things.insert_one({"_id": 1})
    with pytest.raises(DuplicateKeyError):
        db.things.insert_one({"_id": 1.0})
    assert db.things.count_documents({}) == 1


def test_a_list_of_ids_finds_exactly_those_that_match_the_whole_filter(db):
    ids = db.things.insert_many([{"n": n, "stop": n % 2 == 0} for n in range(20)]).inserted_ids
    wanted = [ids[2], ids[3], ids[4], ObjectId()]
    found = db.things.find({"_id": {"$in": wanted}, "stop": True}, {"n": 1})
    assert sorted(doc["n"] for doc in found) == [2, 4]
    assert db.things.count_documents({"_id": {"$in": wanted}}) == 3
    db.things.update_many({"_id": {"$in": wanted}}, {"$set": {"seen": True}})
    assert sorted(doc["n"] for doc in db.things.find({"seen": True})) == [2, 3, 4]
