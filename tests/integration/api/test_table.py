"""The experiments table route: sorted, filtered and paged by the server, rows projected."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
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


@pytest.mark.security
def test_a_sort_by_a_name_no_experiment_has_makes_no_index(client, db, project, scored) -> None:
    before = len(db["experiments"].index_information())
    for n in range(5):
        table(client, project, sort=f"_scores.x{n}")
        table(client, project, sort=f"custom{n}")
    assert len(db["experiments"].index_information()) == before


@pytest.mark.security
def test_past_the_index_cap_a_sort_runs_unindexed(client, db, project, scored, monkeypatch) -> None:
    import tasks.experiments

    monkeypatch.setattr(
        tasks.experiments, "MAX_INDEXES", len(db["experiments"].index_information())
    )
    db["experiments"].update_many({}, {"$set": {"depth": 3}})
    answer = table(client, project, sort="depth")
    assert answer["total"] == 6
    keys = [list(spec["key"]) for spec in db["experiments"].index_information().values()]
    assert not any(field == "depth" for key in keys for field, _ in key)


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


# Filters, free text, IDs -------------------------------------------------------------


@pytest.fixture
def varied(client, db, project) -> list[str]:
    """Four experiments: models, optimisers, notes, losses and a custom field differ."""
    bodies = [
        options(seed=0, model="cnn.v2", optimiser="adam"),
        options(seed=1, model="CNN-big", optimiser="sgd"),
        options(seed=2, model="rnn", optimiser="adam"),
        options(seed=3, model="mlp", optimiser="rmsprop"),
    ]
    ids = client.post(f"/api/v1/projects/{project['_id']}/batch", json=bodies).get_json()["_ids"]
    extra: list[dict[str, Any]] = [
        {"_scores": {"loss": 0.4}, "epochs": 10},
        {"_scores": {"loss": 0.2}, "epochs": 30, "_notes": "the best so far"},
        {"_scores": {"loss": 0.9}, "epochs": 20, "_notes": "diverged"},
        {"epochs": 5},
    ]
    for experiment_id, fields in zip(ids, extra, strict=True):
        db["experiments"].update_one({"_id": ObjectId(experiment_id)}, {"$set": fields})
    return ids


def _ids(answer: dict[str, Any]) -> list[str]:
    return [row["_id"] for row in answer["rows"]]


def test_free_text_searches_string_options_and_notes(client, project, varied) -> None:
    assert _ids(table(client, project, q="cnn")) == [varied[0], varied[1]]  # any case
    assert _ids(table(client, project, q="BEST")) == [varied[1]]  # notes
    assert _ids(table(client, project, q="rmsprop")) == [varied[3]]  # an enum option
    assert _ids(table(client, project, q="cnn.")) == [varied[0]]  # "." is no wildcard
    assert _ids(table(client, project, q=varied[2])) == [varied[2]]  # an ID
    assert table(client, project, q="nothing like it")["total"] == 0


def test_filters_by_scores_options_and_custom_fields(client, project, varied) -> None:
    def where(*conditions: str, **query: Any) -> list[str]:
        url = f"/api/v1/projects/{project['_id']}/experiments/table"
        answer = client.get(url, query_string={"filter": list(conditions), **query})
        assert answer.status_code == 200, answer.get_json()
        return _ids(answer.get_json())

    assert where("_scores.loss<0.5") == [varied[0], varied[1]]
    assert where("_scores.loss >= 0.4", "_options.optimiser=adam") == [varied[0], varied[2]]
    assert where("_options.optimiser!=adam") == [varied[1], varied[3]]
    assert where("_options.seed=2") == [varied[2]]  # a number, read as JSON
    assert where("_options.L2=false") == varied  # a bool, read as JSON
    assert where("_options.model~CNN") == [varied[0], varied[1]]
    assert where("epochs>15", sort="epochs", order="desc") == [varied[1], varied[2]]


def test_sorts_by_an_option_and_a_custom_field(client, project, varied) -> None:
    by_model = table(client, project, sort="_options.model")
    by_epochs = table(client, project, sort="epochs", order="desc")

    assert [row["_options"]["model"] for row in by_model["rows"]] == [
        "CNN-big", "cnn.v2", "mlp", "rnn",
    ]  # fmt: skip
    assert _ids(by_epochs) == [varied[1], varied[2], varied[0], varied[3]]
    assert "epochs" not in by_epochs["rows"][0]  # sorted by, not sent


def test_ids_answer_only_those_rows(client, db, project, varied) -> None:
    db["experiments"].update_one({"_id": ObjectId(varied[2])}, {"$set": {"_status": "running"}})
    url = f"/api/v1/projects/{project['_id']}/experiments/table"

    comma = client.get(f"{url}?ids={varied[2]},{varied[0]}").get_json()
    repeated = client.get(f"{url}?ids={varied[3]}&ids={varied[2]}&status=running").get_json()
    other = client.get(f"{url}?ids={ObjectId()}").get_json()

    assert (comma["total"], _ids(comma)) == (2, [varied[0], varied[2]])
    assert [row["_status"] for row in comma["rows"]] == ["queued", "running"]
    assert _ids(repeated) == [varied[2]]  # IDs combine with the other filters
    assert other["total"] == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"filter": "_scores.loss"}, "filter is '_scores.loss'; write <field><op><value>"),
        ({"filter": "$where=1"}, "filter field is '$where'"),
        ({"filter": "_charts=1"}, "filter field is '_charts'"),
        ({"ids": "123"}, "ID '123' is not a valid ObjectId"),
        ({"ids": ",".join(str(ObjectId()) for _ in range(501))}, "ask for at most 500"),
        ({"q": "x" * 201}, "q has 201 characters; use at most 200"),
        ({"sort": "_options."}, "sort is '_options.'"),
    ],
)
def test_a_bad_filter_is_a_400(client, project, query, message) -> None:
    for route in ("experiments/table", "experiments.csv"):
        answer = client.get(f"/api/v1/projects/{project['_id']}/{route}", query_string=query)
        assert answer.status_code == 400
        assert message in answer.get_json()["error"]


# CSV ---------------------------------------------------------------------------------


def _csv(client, project: dict[str, Any], **query: Any) -> list[list[str]]:
    answer = client.get(f"/api/v1/projects/{project['_id']}/experiments.csv", query_string=query)
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert answer.is_streamed
    assert answer.headers["Content-Disposition"] == 'attachment; filename="mnist-experiments.csv"'
    return list(csv.reader(io.StringIO(answer.get_data(as_text=True))))


def test_csv_streams_the_whole_filtered_set(client, db, project, varied) -> None:
    start = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    db["experiments"].update_one(
        {"_id": ObjectId(varied[1])},
        {"$set": {"_started": start, "_finished": start + timedelta(seconds=90.5)}},
    )

    lines = _csv(client, project, sort="_scores.loss", order="desc", filter="_scores.loss<0.95")

    assert lines[0] == [
        "_id", "status", "seed", "model", "batchSize", "optimiser", "learningRate", "L2",
        "loss", "duration", "tags",
    ]  # fmt: skip
    assert [line[0] for line in lines[1:]] == [varied[2], varied[0], varied[1]]
    assert lines[3] == [varied[1], "queued", "1", "CNN-big", "64", "sgd", "0.01", "false", "0.2",
                        "90.500", ""]  # fmt: skip
    assert lines[1][-2] == ""  # not finished: no duration


def test_csv_is_every_row_not_one_page(client, project) -> None:
    bodies = [options(seed=seed) for seed in range(120)]
    client.post(f"/api/v1/projects/{project['_id']}/batch", json=bodies)

    lines = _csv(client, project, status="queued")

    assert len(lines) == 121
    assert [int(line[2]) for line in lines[1:]] == list(range(120))


def test_csv_cells_cannot_become_formulas(client, db, project) -> None:
    answer = client.post(
        f"/api/v1/projects/{project['_id']}/experiment?queue=true",
        json=options(model='=HYPERLINK("http://x")', seed=-3),
    )
    experiment_id = answer.get_json()["_id"]
    db["experiments"].update_one(
        {"_id": ObjectId(experiment_id)}, {"$set": {"_scores": {"model": "@sum", "f1": -0.5}}}
    )

    header, row = _csv(client, project)

    # a score named as an option is told apart
    assert header[-5:] == ["L2", "_scores.model", "f1", "duration", "tags"]
    assert row[2:4] == ["-3", '\'=HYPERLINK("http://x")']
    assert row[-4:-2] == ["'@sum", "-0.5"]


def test_json_export_is_every_filtered_row_in_the_tables_shape(client, project, scored) -> None:
    answer = client.get(
        f"/api/v1/projects/{project['_id']}/experiments.json",
        query_string={"sort": "_scores.loss", "order": "desc", "filter": "_scores.loss<0.8"},
    )

    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.is_streamed
    assert answer.headers["Content-Disposition"] == 'attachment; filename="mnist-experiments.json"'
    rows = json.loads(answer.get_data(as_text=True))
    assert [row["_id"] for row in rows] == [scored[5], scored[0], scored[4], scored[1]]
    assert [row["_scores"]["loss"] for row in rows] == [0.7, 0.5, 0.3, 0.1]
    assert "_charts" not in rows[0] and "big" not in rows[0]
    assert rows[0]["_options"]["seed"] == 5
    assert rows[-1]["_status"] == "success"


@pytest.mark.security
def test_a_filter_integer_beyond_64_bits_is_a_400_naming_it(client, project) -> None:
    answer = client.get(
        f"/api/v1/projects/{project['_id']}/experiments/table",
        query_string={"filter": "_scores.loss=99999999999999999999"},
    )
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(
        "filter value 99999999999999999999 in '_scores.loss=99999999999999999999' is beyond"
    )
