"""The charts route (``_charts`` as C3 configs) and the search route (grid/random batches)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from bson import ObjectId

from tasks.fields import is_large_ref, store_field_value
from tests.examples import SEED_CHART


def _search(client, project: dict[str, Any], body: Any) -> Any:
    return client.post(f"/api/v1/projects/{project['_id']}/search", json=body)


def _options_of(store, ids: list[str]) -> list[dict[str, Any]]:
    return [store.get_experiment(i)["_options"] for i in ids]


# Charts -----------------------------------------------------------------------------


def test_seed_chart_becomes_a_c3_config(client, store, experiment_id) -> None:
    store.set_fields(experiment_id, {"_charts": SEED_CHART})

    response = client.get(f"/api/v1/experiments/{experiment_id}/charts")

    assert response.status_code == 200
    (chart,) = response.get_json()
    assert chart["data"]["columns"] == [
        ["train", 1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.0],
        ["val", 1.0, 0.9, 0.6, 0.4, 0.3],
        ["x1", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        ["x2", 2, 6, 8, 9, 11],
    ]
    assert chart["data"]["xs"] == {"train": "x1", "val": "x2"}
    assert "columnNames" not in chart
    assert chart["axis"] == SEED_CHART["axis"]
    assert chart["point"] == {"show": False}
    assert chart["zoom"] == {"enabled": True}


def test_a_list_of_charts_keeps_its_order_and_settings(client, store, experiment_id) -> None:
    second = {
        "columnNames": ["acc"],
        "data": {"columns": [[0.1, 0.5]], "type": "bar"},
        "point": {"show": True},
    }
    store.set_fields(experiment_id, {"_charts": [SEED_CHART, second]})

    charts = client.get(f"/api/v1/experiments/{experiment_id}/charts").get_json()

    assert len(charts) == 2
    assert charts[1]["data"] == {"columns": [["acc", 0.1, 0.5]], "type": "bar"}
    assert charts[1]["point"] == {"show": True}


def test_no_charts_is_an_empty_list(client, experiment_id) -> None:
    response = client.get(f"/api/v1/experiments/{experiment_id}/charts")

    assert response.status_code == 200
    assert response.get_json() == []


def test_large_chart_is_read_from_gridfs_and_downsampled(client, store, db, experiment_id) -> None:
    points = 100_000
    charts = {
        "columnNames": ["loss", "step"],
        "data": {
            "x": "step",
            "columns": [[math.sin(i / 500) for i in range(points)], list(range(points))],
        },
    }
    doc = store.get_experiment(experiment_id)
    stored = store_field_value(db, doc["_id"], doc["_project_id"], "_charts", charts)
    assert is_large_ref(stored)
    store.set_fields(experiment_id, {"_charts": stored})

    default = client.get(f"/api/v1/experiments/{experiment_id}/charts").get_json()
    fewer = client.get(f"/api/v1/experiments/{experiment_id}/charts?points=300").get_json()

    for chart, limit in ((default[0], 1000), (fewer[0], 300)):
        columns = {column[0]: column[1:] for column in chart["data"]["columns"]}
        assert len(columns["loss"]) == len(columns["step"]) == limit
        assert columns["step"][0] == 0
        assert columns["step"][-1] == points - 1
        assert chart["data"]["xs"] == {"loss": "step"}


@pytest.mark.parametrize("points", ["many", "2", "1000001"])
def test_bad_points_is_400(client, store, experiment_id, points: str) -> None:
    store.set_fields(experiment_id, {"_charts": SEED_CHART})

    response = client.get(f"/api/v1/experiments/{experiment_id}/charts?points={points}")

    assert response.status_code == 400
    assert f"points is {points}" in response.get_json()["error"].replace("'", "")


def test_malformed_charts_are_400_with_the_reason(client, store, experiment_id) -> None:
    store.set_fields(experiment_id, {"_charts": [SEED_CHART, {"columnNames": ["a"], "data": {}}]})

    response = client.get(f"/api/v1/experiments/{experiment_id}/charts")

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith(
        f"Experiment {experiment_id} has _charts that cannot be drawn: chart 1:"
    )
    assert "'data.columns' must be a list of numeric lists" in error


def test_charts_of_an_unknown_experiment_is_404(client) -> None:
    response = client.get(f"/api/v1/experiments/{ObjectId()}/charts")

    assert response.status_code == 404
    assert "does not exist" in response.get_json()["error"]


# Search -----------------------------------------------------------------------------

GRID = {
    "batchSize": {"min": 32, "max": 128, "steps": 3},
    "optimiser": {"values": ["sgd", "rmsprop"]},
    "L2": {"values": [True, False]},
}


def test_grid_search_submits_every_combination(client, store, db, project) -> None:
    response = _search(client, project, {"method": "grid", "spec": GRID})

    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert answer["status"] == "Started"
    assert answer["count"] == len(answer["_ids"]) == 3 * 2 * 2
    stored = list(db["experiments"].find({"_project_id": ObjectId(project["_id"])}))
    assert len(stored) == 12
    assert {doc["_status"] for doc in stored} == {"queued"}  # no machines in the tests
    options = _options_of(store, answer["_ids"])
    assert {(o["batchSize"], o["optimiser"], o["L2"]) for o in options} == {
        (b, opt, l2) for b in (32, 64, 96) for opt in ("sgd", "rmsprop") for l2 in (True, False)
    }
    # Fields left out of the spec keep their defaults.
    assert {(o["seed"], o["model"], o["learningRate"]) for o in options} == {(123, "cnn.v2", 0.001)}


def test_random_search_with_a_seed_repeats(client, store, db, project) -> None:
    body = {
        "method": "random",
        "spec": {
            "learningRate": {"min": 0.0001, "max": 0.1, "scale": "log", "base": 10},
            "seed": {"min": 0, "max": 1000},
            "model": {"values": "cnn.v2, cnn.v3 , mlp"},
        },
        "evaluations": 6,
        "seed": 42,
    }

    first = _search(client, project, body)
    second = _search(client, project, body)

    assert first.status_code == second.status_code == 201
    assert first.get_json()["count"] == 6
    runs = [_options_of(store, r.get_json()["_ids"]) for r in (first, second)]
    assert runs[0] == runs[1]
    for options in runs[0]:
        assert 0.0001 <= options["learningRate"] < 0.1
        assert isinstance(options["seed"], int)
        assert 0 <= options["seed"] < 1000
        assert options["model"] in {"cnn.v2", "cnn.v3", "mlp"}
    assert db["experiments"].count_documents({}) == 12


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"method": "grid", "spec": {"batchSize": {"min": 64, "max": 32}}},
            "search spec for 'batchSize': min 64 must be below max 32 (max is exclusive)",
        ),
        (
            {"method": "grid", "spec": {"dropout": {"values": [0.1]}}},
            "search spec names 'dropout', which is not in the project schema",
        ),
        (
            {"method": "grid", "spec": {"optimiser": {"values": ["adagrad"]}}},
            "search spec for 'optimiser': 'adagrad' is not allowed",
        ),
        ({"method": "random", "spec": {}}, "evaluations is None; use a whole number"),
        ({"method": "random", "spec": {}, "evaluations": 2, "seed": "x"}, "seed is 'x'"),
        ({"method": "anneal", "spec": {}}, "method is 'anneal'; use 'grid' or 'random'"),
        ({"method": "grid", "spec": {}, "steps": 3}, "Unknown search setting(s) ['steps']"),
        ([GRID], "Request body must be a JSON object"),
    ],
)
def test_bad_search_is_400_and_submits_nothing(client, db, project, body, message) -> None:
    response = _search(client, project, body)

    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert db["experiments"].count_documents({}) == 0


def test_search_in_an_unknown_project_is_404(client) -> None:
    response = client.post(f"/api/v1/projects/{ObjectId()}/search", json={"method": "grid"})

    assert response.status_code == 404


def test_search_routes_are_documented(client) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]

    assert "post" in paths["/api/v1/projects/{project_id}/search"]
    assert "get" in paths["/api/v1/experiments/{experiment_id}/charts"]
