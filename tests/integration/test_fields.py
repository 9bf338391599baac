"""Large experiment fields live in GridFS; the document keeps a small reference."""

from __future__ import annotations

import logging
import math

import bson
import pytest
from bson import ObjectId

from tasks.fields import (
    LARGE_FIELD_BYTES,
    is_large_ref,
    load_field_value,
    resolve_large_fields,
    store_field_value,
)


@pytest.fixture
def experiment(db) -> tuple[ObjectId, ObjectId]:
    project_id = ObjectId()
    experiment_id = db["experiments"].insert_one({"_project_id": project_id}).inserted_id
    return experiment_id, project_id


def _set(db, experiment_id: ObjectId, name: str, value: object) -> None:
    db["experiments"].update_one({"_id": experiment_id}, {"$set": {name: value}})


def _field_files(db, experiment_id: ObjectId, name: str) -> list[dict]:
    return list(db["fs.files"].find({"metadata.experiment": experiment_id, "metadata.field": name}))


def _big_charts(points: int) -> dict:
    return {
        "columnNames": ["train", "val", "x1", "x2"],
        "columns": [
            [math.sin(i / 1000) for i in range(points)],
            [math.cos(i / 1000) * 0.5 for i in range(points)],
            list(range(points)),
            [i * 0.5 for i in range(points)],
        ],
        "axis": {"x": {"label": "epoch"}},
    }


def test_500k_point_chart_round_trips_through_an_experiment(db, experiment) -> None:
    experiment_id, project_id = experiment
    charts = _big_charts(500_000)
    assert len(bson.encode({"v": charts})) > 16 * 1024 * 1024 > LARGE_FIELD_BYTES

    stored = store_field_value(db, experiment_id, project_id, "_charts", charts)
    _set(db, experiment_id, "_charts", stored)
    doc = db["experiments"].find_one({"_id": experiment_id})
    resolved = resolve_large_fields(db, doc)

    assert is_large_ref(doc["_charts"])
    assert len(bson.encode(doc)) < 1000
    assert resolved["_charts"] == charts
    assert resolved["_project_id"] == project_id
    assert is_large_ref(doc["_charts"])  # the input document is left as it was
    (meta,) = _field_files(db, experiment_id, "_charts")
    assert meta["filename"] == "_charts.json"
    assert meta["length"] == doc["_charts"]["bytes"]
    assert meta["metadata"] == {
        "experiment": experiment_id,
        "project": project_id,
        "kind": "field",
        "field": "_charts",
        "contentType": "application/json",
    }


def test_small_values_stay_inline(db, experiment) -> None:
    experiment_id, project_id = experiment
    scores = {"F1": 0.5, "BLEU": 12.25}

    stored = store_field_value(db, experiment_id, project_id, "_scores", scores)

    assert stored == scores
    assert not is_large_ref(stored)
    assert load_field_value(db, stored) == scores
    assert db["fs.files"].count_documents({}) == 0


def test_value_just_over_the_limit_goes_outside(db, experiment) -> None:
    experiment_id, project_id = experiment
    value = "x" * 200

    stored = store_field_value(db, experiment_id, project_id, "text", value, limit=100)

    assert is_large_ref(stored)
    assert load_field_value(db, stored) == value
    assert store_field_value(db, experiment_id, project_id, "text", "x" * 10, limit=100) == (
        "x" * 10
    )
    assert _field_files(db, experiment_id, "text") == []


def test_replacing_a_large_field_leaves_one_file(db, experiment) -> None:
    experiment_id, project_id = experiment
    other = store_field_value(db, experiment_id, project_id, "other", "y" * 500, limit=100)
    _set(db, experiment_id, "other", other)

    for round_ in range(3):
        value = [round_] * 100
        _set(
            db,
            experiment_id,
            "series",
            store_field_value(db, experiment_id, project_id, "series", value, limit=100),
        )

    (kept,) = _field_files(db, experiment_id, "series")
    doc = db["experiments"].find_one({"_id": experiment_id})
    assert doc["series"]["_fglab_large"] == kept["_id"]
    assert resolve_large_fields(db, doc)["series"] == [2] * 100
    assert resolve_large_fields(db, doc)["other"] == "y" * 500
    assert db["fs.files"].count_documents({}) == 2
    file_ids = {f["_id"] for f in db["fs.files"].find()}
    assert set(db["fs.chunks"].distinct("files_id")) == file_ids


def test_json_values_cannot_pose_as_references(db) -> None:
    lookalike = {"_fglab_large": "5f2a00000000000000000000", "bytes": 3}

    assert not is_large_ref(lookalike)
    assert load_field_value(db, lookalike) is lookalike


def test_resolve_rereads_a_field_replaced_meanwhile(db, experiment) -> None:
    experiment_id, project_id = experiment
    _set(
        db,
        experiment_id,
        "log",
        store_field_value(db, experiment_id, project_id, "log", "a" * 300, limit=100),
    )
    stale = db["experiments"].find_one({"_id": experiment_id})
    _set(
        db,
        experiment_id,
        "log",
        store_field_value(db, experiment_id, project_id, "log", "b" * 300, limit=100),
    )

    assert resolve_large_fields(db, stale)["log"] == "b" * 300


def test_resolve_gives_none_for_a_missing_file(db, experiment, caplog) -> None:
    experiment_id, project_id = experiment
    ref = store_field_value(db, experiment_id, project_id, "log", "a" * 300, limit=100)
    db["fs.files"].delete_many({})

    with caplog.at_level(logging.WARNING, logger="tasks.fields"):
        resolved = resolve_large_fields(db, {"log": ref, "name": "n"})

    assert resolved == {"log": None, "name": "n"}
    assert "is gone" in caplog.text
