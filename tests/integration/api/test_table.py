"""The experiments table route: sorted, filtered and paged by the server, rows projected."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from tests.integration.api.helpers import options


@pytest.fixture
def scored(client, db, project) -> list[str]:
    """Six experiments with a loss each (the third has none), two of them `success`."""
    bodies = [options(seed=seed) for seed in range(6)]
    answer = client.post(f"/api/v1/projects/{project['_id']}/batch", json=bodies)
    assert answer.status_code == 201, answer.get_json()
    ids = answer.get_json()["_ids"]
    losses = [0.5, 0.1, None, 0.9, 0.3, 0.7]
    for experiment_id, loss in zip(ids, losses, strict=True):
        fields: dict[str, Any] = {"_charts": {"data": {"columns": [[1, 2, 3]]}}, "big": "x" * 1000}
        if loss is not None:
            fields["_scores"] = {"loss": loss}
        db["experiments"].update_one({"_id": ObjectId(experiment_id)}, {"$set": fields})
    for experiment_id in ids[:2]:
        db["experiments"].update_one(
            {"_id": ObjectId(experiment_id)}, {"$set": {"_status": "success"}}
        )
    return ids


def table(client, project: dict[str, Any], **query: Any) -> dict[str, Any]:
    answer = client.get(f"/api/v1/projects/{project['_id']}/experiments/table", query_string=query)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def test_rows_are_sorted_by_a_score_and_paged(client, project, scored) -> None:
    first = table(client, project, sort="_scores.loss", order="desc", limit=2)
    second = table(client, project, sort="_scores.loss", order="desc", limit=2, offset=2)

    assert (first["total"], first["offset"], first["limit"]) == (6, 0, 2)
    losses = [row["_scores"]["loss"] for row in first["rows"] + second["rows"]]
    assert losses == [0.9, 0.7, 0.5, 0.3]
    assert [row["_id"] for row in first["rows"]] == [scored[3], scored[5]]


def test_rows_carry_only_what_the_table_shows(client, project, scored) -> None:
    rows = table(client, project)["rows"]

    assert [row["_id"] for row in rows] == scored  # oldest first, batch order kept
    assert set(rows[0]) <= {
        "_id", "_status", "_options", "_scores", "_created", "_started", "_finished",
        "_notes", "_machine_id",
    }  # fmt: skip
    assert rows[0]["_options"]["seed"] == 0


def test_rows_are_filtered_by_status(client, project, scored) -> None:
    done = table(client, project, status="success")
    assert done["total"] == 2
    assert {row["_id"] for row in done["rows"]} == set(scored[:2])
    both = client.get(
        f"/api/v1/projects/{project['_id']}/experiments/table?status=success&status=queued"
    ).get_json()
    assert both["total"] == 6


def test_sorting_by_a_score_makes_its_index(client, db, project, scored) -> None:
    table(client, project, sort="_scores.loss")

    keys = [list(spec["key"]) for spec in db["experiments"].index_information().values()]
    assert [("_project_id", 1), ("_scores.loss", 1)] in [
        [(field, int(direction)) for field, direction in key] for key in keys
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"sort": "_charts"}, "sort is '_charts'; use one of"),
        ({"sort": "_scores.$where"}, "sort is '_scores.$where'"),
        ({"order": "up"}, "order is 'up'; use 'asc' or 'desc'"),
        ({"status": "done"}, "status 'done' is unknown"),
        ({"limit": "0"}, "limit is '0'; use a whole number from 1 to 500"),
        ({"offset": "-1"}, "offset is '-1'; use a whole number from 0"),
    ],
)
def test_a_bad_query_is_a_400(client, project, query, message) -> None:
    answer = client.get(f"/api/v1/projects/{project['_id']}/experiments/table", query_string=query)
    assert answer.status_code == 400
    assert message in answer.get_json()["error"]


def test_an_unknown_project_is_a_404(client) -> None:
    missing = str(ObjectId())
    answer = client.get(f"/api/v1/projects/{missing}/experiments/table")
    assert answer.status_code == 404
    assert answer.get_json() == {"error": f"Project ID {missing} does not exist"}


def test_a_batch_is_queued_in_the_order_given(client, project) -> None:
    bodies = [options(seed=seed) for seed in range(30)]
    ids = client.post(f"/api/v1/projects/{project['_id']}/batch", json=bodies).get_json()["_ids"]

    positions = [client.get(f"/api/v1/experiments/{i}").get_json() for i in ids]
    assert [doc["_queue_position"] for doc in positions] == list(range(1, 31))
    assert [doc["_options"]["seed"] for doc in positions] == list(range(30))
