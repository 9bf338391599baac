"""The sweep API over a real MongoDB, no machines: trials are made and wait queued."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest
from bson import ObjectId

from fglab.scheduler import Scheduler
from fglab.sweeps.driver import SweepDriver
from fglab.sweeps.ended import EndedTrials
from tasks import history

GRID = {
    "batchSize": {"min": 32, "max": 128, "steps": 3},
    "optimiser": {"values": ["sgd", "adam"]},
}


def create(client, project, **body):
    return client.post(f"/api/v1/projects/{project['_id']}/sweeps", json=body)


def trials(db, sweep_id):
    return list(db["experiments"].find({"_sweep": ObjectId(sweep_id)}).sort("_trial", 1))


def test_a_grid_sweep_makes_its_first_trials_and_answers_its_shape(client, db, project):
    answer = create(client, project, method="grid", space=GRID, parallelism=2, seed=1)
    assert answer.status_code == 201, answer.json
    sweep = answer.json
    assert (sweep["method"], sweep["state"], sweep["budget"]) == ("grid", "running", 6)
    assert [t["trial"] for t in sweep["trials"]] == [0, 1]
    assert sweep["counts"] == {"queued": 2}
    assert sweep["best"] is None
    first = sweep["trials"][0]
    assert set(first) == {"trial", "experiment", "options", "objective", "status", "reason"}
    assert first["options"] == {
        "seed": 123, "model": "cnn.v2", "batchSize": 32, "optimiser": "sgd",
        "learningRate": 0.001, "L2": True,
    }  # fmt: skip
    assert [doc["_trial"] for doc in trials(db, sweep["_id"])] == [0, 1]
    assert client.get(f"/api/v1/sweeps/{sweep['_id']}").json["trials"] == sweep["trials"]
    listed = client.get(f"/api/v1/projects/{project['_id']}/sweeps").json
    assert [s["_id"] for s in listed] == [sweep["_id"]]


def test_a_sweeps_trials_queue_with_its_priority(client, db, project):
    answer = create(client, project, method="grid", space=GRID, parallelism=2, priority=7)
    assert answer.status_code == 201, answer.json
    assert answer.json["priority"] == 7
    assert [doc["_priority"] for doc in trials(db, answer.json["_id"])] == [7, 7]
    plain = create(client, project, method="grid", space=GRID, parallelism=1).json
    assert [doc["_priority"] for doc in trials(db, plain["_id"])] == [0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"method": "grid", "space": {"nope": {"values": [1]}}}, "space"),
        ({"method": "grid", "space": {"batchSize": {"min": 9, "max": 1}}}, "space"),
        ({"method": "bayes", "space": GRID, "budget": 4}, "objective"),
        (
            {"method": "bayes", "space": GRID, "budget": 4, "objective": {"score": "a.b"}},
            "objective.score",
        ),
        ({"method": "random", "space": GRID}, "budget"),
        ({"method": "grid", "space": GRID, "budget": 7}, "budget"),
        ({"method": "grid", "space": GRID, "parallelism": 0}, "parallelism"),
        ({"method": "grid", "space": GRID, "priority": 5000}, "priority"),
    ],
)
def test_a_bad_sweep_is_a_400_naming_the_field_and_stores_nothing(client, db, project, body, field):
    answer = create(client, project, **body)
    assert answer.status_code == 400
    assert answer.json["error"].startswith(field), answer.json
    assert db["sweeps"].count_documents({}) == 0
    assert db["experiments"].count_documents({}) == 0


def test_unknown_sweeps_and_projects_are_404s(client):
    assert client.get(f"/api/v1/sweeps/{ObjectId()}").status_code == 404
    assert client.post(f"/api/v1/sweeps/{ObjectId()}/pause").status_code == 404
    assert client.get(f"/api/v1/projects/{ObjectId()}/sweeps").status_code == 404


def test_pause_resume_and_cancel(client, db, project):
    sweep = create(client, project, method="grid", space=GRID, parallelism=2).json
    url = f"/api/v1/sweeps/{sweep['_id']}"
    assert client.post(f"{url}/pause").json["state"] == "paused"
    assert client.post(f"{url}/pause").status_code == 409
    assert client.post(f"{url}/resume").json["state"] == "running"
    cancelled = client.post(f"{url}/cancel").json
    assert cancelled["state"] == "cancelled"
    assert cancelled["counts"] == {"cancelled": 2}
    assert {doc["_status"] for doc in trials(db, sweep["_id"])} == {"cancelled"}
    assert client.post(f"{url}/resume").status_code == 409


def test_history_route_answers_the_points_oldest_first(client, db, experiment_id):
    oid = ObjectId(experiment_id)
    assert history.record(db, oid, 20, {"loss": 0.3})
    assert history.record(db, oid, 10, {"loss": 0.5})
    assert not history.record(db, oid, 10, {"loss": 0.4})  # the same step again
    points = client.get(f"/api/v1/experiments/{experiment_id}/history").json
    assert [(p["step"], p["scores"]) for p in points] == [(10, {"loss": 0.4}), (20, {"loss": 0.3})]
    assert all(p["at"] for p in points)
    assert client.get(f"/api/v1/experiments/{ObjectId()}/history").status_code == 404


def test_schedulers_racing_for_slots_never_exceed_parallelism_nor_repeat_a_trial(
    client, db, store, project
):
    sweep = create(client, project, method="grid", space=GRID, parallelism=3).json
    sweep_id = ObjectId(sweep["_id"])
    # The three trials end; four schedulers hear of it at once.
    for doc in trials(db, sweep_id):
        store.cancel(doc["_id"])
    drivers = [SweepDriver(Scheduler(store)) for _ in range(4)]
    threads = [threading.Thread(target=d.advance, args=(sweep_id,)) for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = trials(db, sweep_id)
    assert [doc["_trial"] for doc in made] == [0, 1, 2, 3, 4, 5]
    assert sum(doc["_status"] == "queued" for doc in made) == 3
    assert len(store.sweeps.get(sweep_id)["open"]) == 3


def test_a_claim_whose_experiment_was_never_made_is_made_by_the_next_pass(
    client, db, store, project
):
    sweep = create(client, project, method="grid", space=GRID, parallelism=1).json
    sweep_id = ObjectId(sweep["_id"])
    store.cancel(trials(db, sweep_id)[0]["_id"])
    store.sweeps.close(sweep_id, [0])
    claim = store.sweeps.claim(store.sweeps.get(sweep_id))  # then the scheduler died
    assert claim is not None and claim["trial"] == 1
    SweepDriver(Scheduler(store)).advance(sweep_id)
    made = trials(db, sweep_id)
    assert [(doc["_trial"], doc["_status"]) for doc in made] == [(0, "cancelled"), (1, "queued")]
    assert made[1]["_id"] == claim["experiment"]


def test_a_sweep_exports_its_trials_as_csv_and_json(client, db, project):
    sweep = create(
        client, project, method="grid", space=GRID, parallelism=2,
        objective={"score": "loss", "goal": "minimize"},
    ).json  # fmt: skip
    first, second = (ObjectId(t["experiment"]) for t in sweep["trials"])
    db["experiments"].update_one(
        {"_id": first}, {"$set": {"_status": "success", "_scores": {"loss": 0.25, "acc": 0.9}}}
    )
    db["experiments"].update_one(
        {"_id": second},
        {"$set": {"_status": "pruned", "_scores": {"loss": 2.0}, "_exit": {"reason": "slow"}}},
    )
    url = f"/api/v1/sweeps/{sweep['_id']}/experiments"

    answer = client.get(f"{url}.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="mnist-sweep-{sweep["_id"]}.csv"'
    )
    header, *lines = csv.reader(io.StringIO(answer.get_data(as_text=True)))
    assert header == [
        "trial", "_id", "status", "seed", "model", "batchSize", "optimiser", "learningRate",
        "L2", "loss", "acc", "duration", "tags", "reason",
    ]  # fmt: skip
    assert lines == [
        ["0", str(first), "success", "123", "cnn.v2", "32", "sgd", "0.001", "true", "0.25",
         "0.9", "", "", ""],
        ["1", str(second), "pruned", "123", "cnn.v2", "32", "adam", "0.001", "true", "2.0",
         "", "", "", "slow"],
    ]  # fmt: skip

    answer = client.get(f"{url}.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    rows = json.loads(answer.get_data(as_text=True))
    assert [(r["trial"], r["_id"], r["_status"], r["objective"], r["reason"]) for r in rows] == [
        (0, str(first), "success", 0.25, None),
        (1, str(second), "pruned", 2.0, "slow"),  # its last value, as the trials show
    ]
    assert rows[1]["_options"]["optimiser"] == "adam"
    assert rows[0]["_scores"] == {"loss": 0.25, "acc": 0.9}
    assert client.get(f"/api/v1/sweeps/{ObjectId()}/experiments.json").status_code == 404


def test_a_projects_score_names_are_listed_for_the_sweep_form(client, db, project):
    url = f"/api/v1/projects/{project['_id']}/scores"
    assert client.get(url).json == {"scores": []}
    sweep = create(client, project, method="grid", space=GRID, parallelism=1).json
    db["experiments"].update_one(
        {"_id": ObjectId(sweep["trials"][0]["experiment"])},
        {"$set": {"_scores": {"loss": 0.3, "accuracy": 0.9}}},
    )
    assert client.get(url).json == {"scores": ["loss", "accuracy"]}
    assert client.get(f"/api/v1/projects/{ObjectId()}/scores").status_code == 404


def test_a_judgement_reads_the_ended_trials_once_and_prunes_as_a_fresh_read_does(
    client, db, store, project, monkeypatch
):
    sweep = create(
        client, project, method="grid", space=GRID, parallelism=6,
        objective={"score": "loss", "goal": "minimize"},
        prune={"pruner": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
    ).json  # fmt: skip
    sweep_id = ObjectId(sweep["_id"])
    made = trials(db, sweep_id)
    for doc, final in zip(made[:4], (0.1, 0.2, 0.3, 0.4), strict=True):  # ended trials
        for step in (1, 2):
            history.record(db, doc["_id"], step, {"loss": final * step})
        db["experiments"].update_one(
            {"_id": doc["_id"]}, {"$set": {"_status": "success", "_scores": {"loss": final}}}
        )
    running = [doc["_id"] for doc in made[4:]]
    db["experiments"].update_many({"_id": {"$in": running}}, {"$set": {"_status": "running"}})
    good, bad = running
    history.record(db, good, 1, {"loss": 0.05})
    history.record(db, bad, 1, {"loss": 5.0})

    read = []
    sweep_trials = store.sweep_trials
    monkeypatch.setattr(
        store,
        "sweep_trials",
        lambda sweep_id, excluding=(): (
            read.append(len(excluding)) or sweep_trials(sweep_id, excluding)
        ),
    )
    ended = EndedTrials()
    driver = SweepDriver(Scheduler(store), ended)

    assert driver.judge(good, 1) is False
    assert driver.judge(good, 1) is False
    assert read == [0, 4]  # the four ended trials are read once
    assert set(ended.known(sweep_id)) == {doc["_id"] for doc in made[:4]}
    assert driver.judge(bad, 1) is True  # as a fresh read judges it:
    assert SweepDriver(Scheduler(store)).judge(good, 1) is False
    doc = db["experiments"].find_one({"_id": bad})
    assert doc["_prune"]["step"] == 1 and "worse than the median" in doc["_prune"]["reason"]
