"""The table query: conditions parsed, fields checked, one MongoDB filter built."""

from __future__ import annotations

import pytest
from bson import ObjectId

from fglab.table_query import (
    Condition,
    QueryError,
    TableQuery,
    check_field,
    parse_condition,
    parse_ids,
    text_options,
)

PROJECT = ObjectId("0123456789abcdef01234567")


@pytest.mark.parametrize(
    ("written", "condition"),
    [
        ("_scores.loss<0.5", Condition("_scores.loss", "<", 0.5)),
        ("_scores.loss <= 1", Condition("_scores.loss", "<=", 1)),
        ("_options.model = cnn v2", Condition("_options.model", "=", "cnn v2")),
        ('_options.model="42"', Condition("_options.model", "=", "42")),
        ("_options.L2!=true", Condition("_options.L2", "!=", True)),
        ("Version Number>=0.7", Condition("Version Number", ">=", 0.7)),
        ("_options.model~1e3", Condition("_options.model", "~", "1e3")),
        ("notes_field=", Condition("notes_field", "=", "")),
        ("tags=[1,2]", Condition("tags", "=", "[1,2]")),
    ],
)
def test_conditions_are_read_with_json_values(written: str, condition: Condition) -> None:
    assert parse_condition(written) == condition


def test_a_contains_condition_is_an_escaped_case_insensitive_regex() -> None:
    assert parse_condition("_options.model~cnn.v2").to_mongo() == {
        "_options.model": {"$regex": r"cnn\.v2", "$options": "i"}
    }


def test_a_commit_is_text_and_a_short_one_matches_as_a_prefix() -> None:
    whole = "1234567" + "a" * 33
    assert parse_condition("_code.commit=1234567").to_mongo() == {
        "_code.commit": {"$regex": "^1234567"}
    }
    assert parse_condition(f"_code.commit={whole.upper()}").to_mongo() == {
        "_code.commit": {"$eq": whole}
    }
    assert parse_condition("_code.commit!=12345").to_mongo() == {"_code.commit": {"$ne": "12345"}}
    assert parse_condition("_code.dirty=true") == Condition("_code.dirty", "=", True)
    with pytest.raises(QueryError, match=r"_code\.commit or a custom field"):
        check_field("_code.diff")


@pytest.mark.parametrize(
    "name", ["$where", "_charts", "_scores.", "_options.a.b", "a..b", "_scores.$gt", "x\0y", ""]
)
def test_fields_that_could_reach_operators_or_hidden_fields_are_refused(name: str) -> None:
    with pytest.raises(QueryError, match="use one of"):
        check_field(name)


def test_the_filter_is_an_and_of_every_part() -> None:
    ids = [ObjectId(), ObjectId()]
    query = TableQuery(
        statuses=["running", "queued"],
        text="a+b",
        conditions=[Condition("_scores.loss", "<", 1)],
        ids=ids,
        text_options=["model"],
    )

    assert query.to_mongo(PROJECT) == {
        "_project_id": PROJECT,
        "_status": {"$in": ["queued", "running"]},
        "_id": {"$in": ids},
        "$or": [
            {"_notes": {"$regex": r"a\+b", "$options": "i"}},
            {"_options.model": {"$regex": r"a\+b", "$options": "i"}},
        ],
        "$and": [{"_scores.loss": {"$lt": 1}}],
    }
    assert TableQuery().to_mongo(PROJECT) == {"_project_id": PROJECT}


def test_free_text_that_is_an_id_also_matches_that_experiment() -> None:
    wanted = ObjectId()
    found = TableQuery(text=str(wanted)).to_mongo(PROJECT)["$or"]
    assert {"_id": wanted} in found


def test_ids_come_repeated_or_comma_separated() -> None:
    a, b, c = ObjectId(), ObjectId(), ObjectId()
    assert parse_ids([f"{a},{b}", f" {c} ", ""]) == [a, b, c]
    with pytest.raises(QueryError, match="ID 'nope' is not a valid ObjectId"):
        parse_ids(["nope"])


def test_free_text_searches_string_and_enum_options() -> None:
    schema = {
        "seed": {"type": "int"},
        "model": {"type": "string"},
        "opt": {"type": "enum"},
        "L2": {"type": "bool"},
    }
    assert text_options(schema) == ["model", "opt"]
