"""Experiments: submission (single, queued, batch), reading, `$set`, stamps, deletion."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from tests.integration.api.helpers import (
    OPTIONS,
    assert_no_orphans,
    counts,
    options,
    submit,
    upload_files,
    upload_schema,
)

# Submission ---------------------------------------------------------------------------


def test_submit_without_capacity_is_501_and_stores_nothing(client, db, project) -> None:
    before = counts(db)

    response = submit(client, project["_id"], OPTIONS, queue=False)

    assert response.status_code == 501
    assert response.get_json() == {"error": "No machine capacity available"}
    assert counts(db) == before


@pytest.mark.parametrize("queue", ["false", "0", ""])
def test_submit_with_queue_not_true_is_still_501(client, db, project, queue: str) -> None:
    response = client.post(
        f"/api/v1/projects/{project['_id']}/experiment?queue={queue}", json=OPTIONS
    )

    assert response.status_code == 501
    assert db.experiments.count_documents({}) == 0


def test_submit_to_missing_project_is_400(client, db) -> None:
    missing = str(ObjectId())

    response = submit(client, missing, OPTIONS)

    assert response.status_code == 400
    assert response.get_json() == {"error": f"Project ID {missing} does not exist"}
    assert db.experiments.count_documents({}) == 0


def test_submit_to_non_objectid_project_is_400(client, db) -> None:
    response = submit(client, "mnist", OPTIONS)

    assert response.status_code == 400
    assert response.get_json() == {"error": "Project ID mnist does not exist"}
    assert db.experiments.count_documents({}) == 0


def test_batch_to_missing_project_is_400(client, db) -> None:
    missing = str(ObjectId())

    response = client.post(f"/api/v1/projects/{missing}/batch", json=[OPTIONS])

    assert response.status_code == 400
    assert response.get_json() == {"error": f"Project ID {missing} does not exist"}
    assert db.experiments.count_documents({}) == 0


def test_queued_submit_keeps_a_queued_experiment(client, db, project) -> None:
    response = submit(client, project["_id"], options(seed=3.0), queue=True)

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"_id"}
    stored = db.experiments.find_one({"_id": ObjectId(body["_id"])})
    assert stored["_status"] == "queued"
    assert stored["_project_id"] == ObjectId(project["_id"])
    assert stored["_options"] == options(seed=3)
    assert isinstance(stored["_options"]["seed"], int)  # 3.0 is the whole number 3
    assert list(stored["_options"]) == list(project["schema"])  # schema order
    assert stored["_files"] == []
    assert stored["_machine_id"] is None
    assert db.experiments.count_documents({}) == 1


BAD_OPTIONS: list[tuple[str, Any, str]] = [
    (
        "missing-field",
        {k: v for k, v in OPTIONS.items() if k != "batchSize"},
        "Field batchSize missing",
    ),
    ("int-string", options(seed="7"), "Field seed of type int is invalid"),
    ("int-fraction", options(seed=7.5), "Field seed of type int is invalid"),
    ("int-bool", options(batchSize=True), "Field batchSize of type int is invalid"),
    ("float-string", options(learningRate="fast"), "Field learningRate of type float is invalid"),
    ("float-null", options(learningRate=None), "Field learningRate of type float is invalid"),
    ("bool-string", options(L2="true"), "Field L2 of type bool is invalid"),
    ("bool-int", options(L2=1), "Field L2 of type bool is invalid"),
    ("string-empty", options(model=""), "Field model of type string is invalid"),
    ("string-number", options(model=5), "Field model of type string is invalid"),
    ("enum-other", options(optimiser="adagrad"), "Field optimiser of type enum is invalid"),
    ("unknown-name", options(momentum=0.9), "Field momentum is not in the project schema"),
    ("reserved-id", options(_id="x"), "Field _id is not in the project schema"),
    ("list-body", [OPTIONS], "Options must be a JSON object"),
    ("string-body", "seed=7", "Options must be a JSON object"),
    ("empty-object", {}, "Field seed missing"),
]


@pytest.mark.parametrize(
    ("body", "message"),
    [pytest.param(body, message, id=name) for name, body, message in BAD_OPTIONS],
)
def test_bad_options_are_refused_and_store_nothing(
    client, db, project, body: Any, message: str
) -> None:
    before = counts(db)

    response = submit(client, project["_id"], body, queue=True)

    assert response.status_code == 400
    assert response.get_json() == {"error": message}
    assert counts(db) == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "Request body is empty; send JSON"),
        (b"   ", "Request body is empty; send JSON"),
        (b"{seed: 1", "Request body is not valid JSON"),
    ],
    ids=["empty", "blank", "not-json"],
)
def test_unreadable_body_is_refused(client, db, project, data: bytes, message: str) -> None:
    response = client.post(
        f"/api/v1/projects/{project['_id']}/experiment?queue=true",
        data=data,
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.get_json()["error"].startswith(message)
    assert db.experiments.count_documents({}) == 0


def test_batch_queues_every_option_set(client, db, project) -> None:
    sets = [options(seed=s) for s in (1, 2, 3)]

    response = client.post(f"/api/v1/projects/{project['_id']}/batch?retry=5", json=sets)

    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "Started"
    assert len(body["_ids"]) == 3
    stored = {str(d["_id"]): d for d in db.experiments.find()}
    assert set(stored) == set(body["_ids"])
    assert [stored[i]["_options"]["seed"] for i in body["_ids"]] == [1, 2, 3]
    assert all(d["_status"] == "queued" for d in stored.values())
    assert all(d["_project_id"] == ObjectId(project["_id"]) for d in stored.values())


def test_batch_validates_everything_first(client, db, project) -> None:
    before = counts(db)
    sets = [options(seed=1), options(L2="yes"), options(seed="x"), options(seed=4)]

    response = client.post(f"/api/v1/projects/{project['_id']}/batch", json=sets)

    assert response.status_code == 400
    assert response.get_json() == {"error": "Field L2 of type bool is invalid"}
    assert counts(db) == before


@pytest.mark.parametrize("body", [[], {"seed": 1}, "x"], ids=["empty-list", "object", "string"])
def test_batch_body_must_be_a_non_empty_list(client, db, project, body: Any) -> None:
    response = client.post(f"/api/v1/projects/{project['_id']}/batch", json=body)

    assert response.status_code == 400
    assert response.get_json() == {
        "error": "Batch body must be a non-empty JSON list of option sets"
    }
    assert db.experiments.count_documents({}) == 0


# Reading --------------------------------------------------------------------------------


def test_list_and_read_experiments(client, db, new_experiment) -> None:
    first, second = new_experiment(seed=1), new_experiment(seed=2)

    listed = client.get("/api/v1/experiments")
    one = client.get(f"/api/v1/experiments/{second}")

    assert listed.status_code == 200
    assert [e["_id"] for e in listed.get_json()] == [first, second]
    assert one.status_code == 200
    body = one.get_json()
    assert body["_id"] == second
    assert body["_options"] == options(seed=2)
    assert body["_status"] == "queued"
    created = db.experiments.find_one({"_id": ObjectId(second)})["_created"]
    assert datetime.fromisoformat(body["_created"]) == created


def test_lists_come_in_pages_on_request(client, project, new_experiment) -> None:
    ids = [new_experiment(seed=n) for n in range(5)]
    for base in ("/api/v1/experiments", f"/api/v1/projects/{project['_id']}/experiments"):
        first = client.get(f"{base}?limit=2")
        assert [e["_id"] for e in first.get_json()] == ids[:2]
        next_page = first.headers["Link"]
        assert next_page.endswith('>; rel="next"') and "offset=2" in next_page
        second = client.get(next_page[1 : next_page.index(">")])
        last = client.get(f"{base}?limit=2&offset=4")

        assert [e["_id"] for e in second.get_json()] == ids[2:4]
        assert [e["_id"] for e in last.get_json()] == ids[4:]
        assert "Link" not in last.headers
        whole = client.get(base)  # streamed: the same array as the original's
        assert whole.is_streamed and whole.mimetype == "application/json"
        assert [e["_id"] for e in whole.get_json()] == ids
        for bad in ("limit=0", "limit=1001", "limit=x", "offset=-1"):
            answer = client.get(f"{base}?{bad}")
            assert answer.status_code == 400, bad
            assert answer.get_json()["error"].startswith(bad.split("=")[0] + " is ")


# Setting fields ------------------------------------------------------------------------


def test_put_sets_notes_and_custom_fields(client, db, experiment_id) -> None:
    before = db.experiments.find_one({"_id": ObjectId(experiment_id)})
    fields = {"_notes": "Best at epoch 55", "_scores": {"acc": 0.98}, "accuracy": [0.5, 0.9]}

    response = client.put(f"/api/v1/experiments/{experiment_id}", json=fields)

    assert response.status_code == 200
    assert response.get_json()["_notes"] == "Best at epoch 55"
    after = db.experiments.find_one({"_id": ObjectId(experiment_id)})
    assert after == {**before, **fields}


def test_put_replaces_a_field_it_set_before(client, db, experiment_id) -> None:
    client.put(f"/api/v1/experiments/{experiment_id}", json={"_notes": "first"})

    response = client.put(f"/api/v1/experiments/{experiment_id}", json={"_notes": "second"})

    assert response.status_code == 200
    assert db.experiments.find_one({"_id": ObjectId(experiment_id)})["_notes"] == "second"


@pytest.mark.security
@pytest.mark.parametrize(
    "field",
    [
        "_id", "_project_id", "_machine_id", "_options", "_status", "_files", "_created",
        "_results_dir", "_run_dir", "_pgid", "_pid", "_token", "_step", "_exit", "_log",
        "_started", "_future_field",
    ],
)  # fmt: skip
def test_put_refuses_system_fields(client, db, experiment_id, field: str) -> None:
    before = db.experiments.find_one({"_id": ObjectId(experiment_id)})

    response = client.put(f"/api/v1/experiments/{experiment_id}", json={"_notes": "n", field: "x"})

    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"Field {field} is kept by FGLab and cannot")
    assert db.experiments.find_one({"_id": ObjectId(experiment_id)}) == before


@pytest.mark.parametrize("field", ["$set", "$where", "a.b", "_scores.acc", ""])
def test_put_refuses_operator_and_dotted_names(client, db, experiment_id, field: str) -> None:
    before = db.experiments.find_one({"_id": ObjectId(experiment_id)})

    response = client.put(f"/api/v1/experiments/{experiment_id}", json={field: {"_status": "x"}})

    assert response.status_code == 400
    assert response.get_json()["error"] == (
        f"Field name {field!r} is not allowed; use a plain name without '.' or '$'"
    )
    assert db.experiments.find_one({"_id": ObjectId(experiment_id)}) == before


@pytest.mark.parametrize("body", [["_notes"], "note", 3], ids=["list", "string", "number"])
def test_put_body_must_be_an_object(client, db, experiment_id, body: Any) -> None:
    before = db.experiments.find_one({"_id": ObjectId(experiment_id)})

    response = client.put(f"/api/v1/experiments/{experiment_id}", json=body)

    assert response.status_code == 400
    assert response.get_json() == {"error": "Request body must be a JSON object"}
    assert db.experiments.find_one({"_id": ObjectId(experiment_id)}) == before


def test_put_empty_object_changes_nothing(client, db, experiment_id) -> None:
    before = db.experiments.find_one({"_id": ObjectId(experiment_id)})

    response = client.put(f"/api/v1/experiments/{experiment_id}", json={})

    assert response.status_code == 200
    assert db.experiments.find_one({"_id": ObjectId(experiment_id)}) == before


@pytest.mark.parametrize("event", ["started", "finished"])
def test_stamps(client, db, experiment_id, event: str) -> None:
    low = datetime.now(UTC).replace(microsecond=0)

    response = client.put(f"/api/v1/experiments/{experiment_id}/{event}")

    high = datetime.now(UTC)
    assert response.status_code == 200
    stamp = db.experiments.find_one({"_id": ObjectId(experiment_id)})[f"_{event}"]
    assert low <= stamp <= high  # BSON keeps milliseconds
    answered = response.get_json()[f"_{event}"]
    assert answered.endswith("Z")
    assert datetime.fromisoformat(answered) == stamp


# Deleting ------------------------------------------------------------------------------


def test_delete_removes_the_experiment_and_its_files(client, db, new_experiment) -> None:
    doomed, kept = new_experiment(seed=1), new_experiment(seed=2)
    assert (
        upload_files(
            client,
            doomed,
            (b"a" * 10, "a.txt", "text/plain"),
            (b"b" * 300_000, "b.bin", "application/x-data"),
        ).status_code
        == 200
    )
    assert upload_files(client, kept, (b"k", "k.txt", "text/plain")).status_code == 200

    response = client.delete(f"/api/v1/experiments/{doomed}")

    assert response.status_code == 200
    assert response.get_json() == {"status": "Deleted", "_id": doomed}
    assert db.experiments.find_one({"_id": ObjectId(doomed)}) is None
    assert db["fs.files"].count_documents({"metadata.experiment": ObjectId(doomed)}) == 0
    assert db["fs.files"].count_documents({"metadata.experiment": ObjectId(kept)}) == 1
    assert_no_orphans(db)
    assert client.get(f"/api/v1/experiments/{doomed}").status_code == 404


def test_delete_project_experiments(client, db, project, new_experiment) -> None:
    other_project = upload_schema(client, {"x": {"type": "int", "default": 1}}, "other.json")
    other_project = other_project.get_json()
    mine = [new_experiment(seed=1), new_experiment(seed=2)]
    theirs = client.post(
        f"/api/v1/projects/{other_project['_id']}/experiment?queue=true", json={"x": 2}
    ).get_json()["_id"]
    for experiment in [*mine, theirs]:
        assert (
            upload_files(client, experiment, (b"data", "out.txt", "text/plain")).status_code == 200
        )

    response = client.delete(f"/api/v1/projects/{project['_id']}/experiments")

    assert response.status_code == 200
    assert response.get_json() == {"deleted": 2}
    assert [str(d["_id"]) for d in db.experiments.find()] == [theirs]
    assert db["fs.files"].count_documents({}) == 1
    assert db["fs.files"].find_one()["metadata"]["experiment"] == ObjectId(theirs)
    assert db.projects.count_documents({}) == 2  # the projects themselves stay
    assert_no_orphans(db)


# IDs ----------------------------------------------------------------------------------

ROUTES = [
    ("get", ""),
    ("put", ""),
    ("delete", ""),
    ("put", "/started"),
    ("put", "/finished"),
    ("put", "/files"),
    ("delete", "/files"),
]


@pytest.mark.parametrize(("method", "suffix"), ROUTES)
def test_bad_experiment_id_is_400(client, db, method: str, suffix: str) -> None:
    kwargs = {"json": {"_notes": "x"}} if (method, suffix) == ("put", "") else {}

    response = getattr(client, method)(f"/api/v1/experiments/not-an-id{suffix}", **kwargs)

    assert response.status_code == 400
    assert response.get_json() == {
        "error": "Experiment ID 'not-an-id' is not a valid ObjectId (24 hex digits)"
    }
    assert counts(db)["experiments"] == 0


@pytest.mark.parametrize(("method", "suffix"), ROUTES)
def test_unknown_experiment_is_404(client, db, method: str, suffix: str) -> None:
    missing = str(ObjectId())
    kwargs: dict[str, Any] = {}
    if (method, suffix) == ("put", ""):
        kwargs = {"json": {"_notes": "x"}}
    elif (method, suffix) == ("put", "/files"):
        kwargs = {
            "data": {"_files": [(io.BytesIO(b"x"), "x.txt")]},
            "content_type": "multipart/form-data",
        }

    response = getattr(client, method)(f"/api/v1/experiments/{missing}{suffix}", **kwargs)

    assert response.status_code == 404
    assert response.get_json() == {"error": f"Experiment ID {missing} does not exist"}
    assert counts(db) == dict.fromkeys(counts(db), 0)


def test_a_batch_over_the_cap_is_a_413_that_stores_nothing(client, db, project) -> None:
    stored = counts(db)
    answer = client.post(f"/api/v1/projects/{project['_id']}/batch", json=[{}] * 10_001)
    assert answer.status_code == 413
    assert answer.get_json()["error"].startswith(
        "Batch of 10,001 option sets is over the cap of 10,000"
    )
    assert counts(db) == stored
