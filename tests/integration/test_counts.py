"""Each project's counts by status come from counters every move keeps: equal to a real
count after dispatches, kills, losses, cancels, reruns and deletes; the repair sets right
a counter that is off, and never overwrites a count added while it recounted."""

from __future__ import annotations

import pytest
from bson import ObjectId

import tasks.counts
from tasks import counts, experiments
from tasks.experiments import Reservation
from tasks.states import Status
from tests.integration.api.helpers import EXAMPLE_SCHEMA, OPTIONS, upload_schema


@pytest.fixture
def project(client) -> dict:
    response = upload_schema(client, EXAMPLE_SCHEMA, "mnist.json")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def real(db) -> dict:
    return counts.recount(db, "experiments")


def test_every_move_keeps_the_counters_equal_to_a_real_count(client, db, store, project):
    project_id = ObjectId(project["_id"])
    other_id = ObjectId(upload_schema(client, EXAMPLE_SCHEMA, "other.json").get_json()["_id"])
    ids = [experiments.insert(db, project_id, {**OPTIONS, "seed": n}) for n in range(4)]
    ids += experiments.insert_many(db, project_id, [{**OPTIONS, "seed": n} for n in range(4, 8)])
    experiments.insert(db, other_id, {**OPTIONS, "seed": 0})
    assert store.status_counts() == real(db)
    assert store.status_counts(project_id)[project_id] == {"queued": 8}

    tally = counts.Tally()  # a dispatch pass: counted at its end
    for experiment_id in ids[:6]:
        experiments.dispatch(db, experiment_id, Reservation("m", f"t{experiment_id}"), tally)
    tally.flush(db)
    assert store.status_counts() == real(db)

    for experiment_id in ids[:5]:
        experiments.claim(db, experiment_id, f"t{experiment_id}", worker_pid=1)
        experiments.start(db, experiment_id, pid=2, argv=["x"], results_dir="/r")
    exit = experiments.exit_record("done", code=0)
    experiments.finish(db, ids[0], Status.SUCCESS, exit)
    experiments.request_kill(db, ids[1])
    experiments.finish(db, ids[1], Status.KILLED, experiments.exit_record("killed on request"))
    experiments.lose(db, ids[2], "machine m stopped beating")
    experiments.finish(db, ids[2], Status.SUCCESS, exit)  # too late: lost won
    experiments.requeue(db, ids[5])
    experiments.cancel(db, ids[6])
    assert store.status_counts() == real(db)
    assert store.status_counts(project_id)[project_id] == {
        "success": 1, "killed": 1, "lost": 1, "running": 2, "queued": 2, "cancelled": 1,
    }  # fmt: skip

    rerun = client.post(f"/api/v1/experiments/{ids[1]}/rerun")
    assert rerun.status_code == 201
    assert client.delete(f"/api/v1/experiments/{ids[0]}").status_code in (200, 204)
    assert store.status_counts() == real(db)
    assert store.status_counts(project_id)[project_id]["queued"] == 3

    store.delete_project_experiments(project_id)
    assert store.status_counts() == real(db) == {other_id: {"queued": 1}}


def test_the_repair_sets_right_a_counter_that_is_off(db, store, project):
    project_id = ObjectId(project["_id"])
    ids = [experiments.insert(db, project_id, {**OPTIONS, "seed": n}) for n in range(3)]
    db["experiments"].update_one({"_id": ids[0]}, {"$set": {"_status": "fail"}})  # by hand
    db[counts.COLLECTION].update_one({"_id": project_id}, {"$inc": {"s.running": 5}})
    db[counts.COLLECTION].delete_many({"_id": {"$ne": project_id}})

    assert store.repair_counts() == []  # off once: perhaps only behind, so only marked
    assert store.status_counts() != real(db)
    assert store.repair_counts() == [project_id]  # off again with no write between

    assert store.status_counts() == real(db) == {project_id: {"queued": 2, "fail": 1}}
    assert store.repair_counts() == []  # nothing off any more


def test_the_repair_leaves_a_counter_that_moved_while_it_recounted(db, store, project, monkeypatch):
    project_id = ObjectId(project["_id"])
    experiments.insert(db, project_id, {**OPTIONS, "seed": 0})
    db[counts.COLLECTION].update_one({"_id": project_id}, {"$inc": {"s.queued": 7}})  # off
    recount = tasks.counts.recount

    def recount_while_one_more_arrives(database, collection):
        found = recount(database, collection)
        experiments.insert(db, project_id, {**OPTIONS, "seed": 1})  # counted after the recount read
        return found

    monkeypatch.setattr(tasks.counts, "recount", recount_while_one_more_arrives)
    assert store.repair_counts() == []  # the counter moved meanwhile: not overwritten
    monkeypatch.undo()

    assert store.repair_counts() == []  # found off: marked
    assert store.repair_counts() == [project_id]
    assert store.status_counts() == real(db) == {project_id: {"queued": 2}}


def test_the_repair_leaves_a_counter_only_behind_and_right_once_its_count_lands(db, store, project):
    project_id = ObjectId(project["_id"])
    ids = [experiments.insert(db, project_id, {**OPTIONS, "seed": n}) for n in range(2)]
    tally = counts.Tally()  # a dispatch page placed, its count not yet written
    experiments.dispatch(db, ids[0], Reservation("m", "t0"), tally)

    assert store.repair_counts() == []
    tally.flush(db)
    assert store.repair_counts() == []
    assert store.status_counts() == real(db)


def test_a_claim_is_counted_with_its_start_or_with_an_end_before_it(db, store, project):
    """The runner counts claim and start in one write; a run that ends before it starts
    (a program that cannot be launched) still has its claim counted."""
    project_id = ObjectId(project["_id"])
    ids = [experiments.insert(db, project_id, {**OPTIONS, "seed": n}) for n in range(2)]
    for experiment_id in ids:
        experiments.dispatch(db, experiment_id, Reservation("m", f"t{experiment_id}"))
    writes = db[counts.COLLECTION].find_one({"_id": project_id})["v"]

    started = counts.Tally()
    experiments.claim(db, ids[0], f"t{ids[0]}", worker_pid=1, tally=started)
    experiments.start(db, ids[0], pid=2, argv=["x"], results_dir="/r", tally=started)
    started.flush(db)
    assert db[counts.COLLECTION].find_one({"_id": project_id})["v"] == writes + 1
    assert store.status_counts() == real(db)

    failed = counts.Tally()
    experiments.claim(db, ids[1], f"t{ids[1]}", worker_pid=1, tally=failed)
    experiments.finish(db, ids[1], Status.FAIL, experiments.exit_record("could not start"))
    failed.flush(db)
    assert store.status_counts() == real(db)
    assert store.status_counts(project_id)[project_id] == {"running": 1, "fail": 1}


def test_a_whole_project_table_totals_from_its_counter_a_filtered_one_counts(db, store, project):
    project_id = ObjectId(project["_id"])
    ids = experiments.insert_many(db, project_id, [{**OPTIONS, "seed": n} for n in range(5)])
    tally = counts.Tally()  # a dispatch pass not yet flushed: the sum is still right
    experiments.dispatch(db, ids[0], Reservation("m", "t0"), tally)
    assert store.experiment_rows(project_id, limit=2)[0] == 5

    db[counts.COLLECTION].update_one({"_id": project_id}, {"$inc": {"s.queued": 10}})  # off
    assert store.experiment_rows(project_id, limit=2)[0] == 15  # read from the counter
    assert store.experiment_rows(project_id, statuses=["queued"], limit=2)[0] == 4  # counted
    assert store.experiment_rows(project_id, limit=10)[0] == 5  # a page not full: its rows
    store.repair_counts()
    store.repair_counts()  # the second finding sets it right
    assert store.experiment_rows(project_id, limit=2)[0] == 5
