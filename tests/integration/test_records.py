"""The experiment and machine records in MongoDB: each move is a compare-and-set."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bson import ObjectId

from tasks import experiments, machines
from tasks.experiments import Reservation
from tasks.states import Status

PROJECT = ObjectId()
RESERVED = Reservation("m1", "token-1", gpu=0)


def status(db, experiment_id: ObjectId) -> str:
    return db["experiments"].find_one({"_id": experiment_id})["_status"]


@pytest.fixture
def queued(db) -> ObjectId:
    return experiments.insert(db, PROJECT, {"lr": 0.1})


def test_a_new_experiment_is_queued_with_the_original_fields(db, queued) -> None:
    doc = db["experiments"].find_one({"_id": queued})
    assert doc["_status"] == "queued"
    assert doc["_project_id"] == PROJECT
    assert doc["_options"] == {"lr": 0.1}
    assert doc["_files"] == []
    assert doc["_machine_id"] is None


def test_a_reserved_experiment_is_stored_dispatched(db) -> None:
    experiment_id = experiments.insert(db, PROJECT, {}, reservation=RESERVED)
    doc = db["experiments"].find_one({"_id": experiment_id})
    assert (doc["_status"], doc["_machine_id"], doc["_token"], doc["_gpu"]) == (
        "dispatched", "m1", "token-1", 0,
    )  # fmt: skip


def test_the_path_of_a_run(db, queued) -> None:
    assert experiments.dispatch(db, queued, RESERVED)["_status"] == "dispatched"
    assert experiments.claim(db, queued, "wrong-token", worker_pid=1) is None
    assert experiments.claim(db, queued, "token-1", worker_pid=1)["_status"] == "claimed"
    assert experiments.start(db, queued, pid=42, argv=["python"], results_dir="/r")
    exit = experiments.exit_record("exited with code 0", code=0)
    assert experiments.finish(db, queued, Status.SUCCESS, exit, log={"file_id": None})
    doc = db["experiments"].find_one({"_id": queued})
    assert (doc["_status"], doc["_pid"], doc["_pgid"], doc["_exit"]) == ("success", 42, 42, exit)
    assert doc["_started"] <= doc["_finished"]


def test_each_move_happens_once(db, queued) -> None:
    assert experiments.dispatch(db, queued, RESERVED) is not None
    assert experiments.dispatch(db, queued, RESERVED) is None
    assert experiments.claim(db, queued, "token-1", worker_pid=1) is not None
    assert experiments.claim(db, queued, "token-1", worker_pid=2) is None
    assert experiments.lose(db, queued, "machine m1 stopped beating") is not None
    exit = experiments.exit_record("exited with code 0", code=0)
    assert not experiments.finish(db, queued, Status.SUCCESS, exit)  # lost won the race
    assert status(db, queued) == "lost"


def test_cancel_wins_over_a_late_claim_and_keeps_the_reservation_to_release(db, queued) -> None:
    experiments.dispatch(db, queued, RESERVED)
    doc = experiments.cancel(db, queued)
    assert (doc["_status"], doc["_machine_id"], doc["_token"]) == ("cancelled", "m1", "token-1")
    assert doc["_exit"]["reason"] == "cancelled before it started"
    assert experiments.claim(db, queued, "token-1", worker_pid=1) is None
    assert experiments.cancel(db, queued) is None


def test_a_running_experiment_is_asked_to_stop_not_cancelled(db, queued) -> None:
    experiments.dispatch(db, queued, RESERVED)
    experiments.claim(db, queued, "token-1", worker_pid=1)
    assert experiments.cancel(db, queued) is None
    assert not experiments.kill_requested(db, queued)
    assert experiments.request_kill(db, queued)["_status"] == "claimed"
    assert experiments.kill_requested(db, queued)


def test_requeue_clears_the_reservation(db, queued) -> None:
    experiments.dispatch(db, queued, RESERVED)
    assert experiments.requeue(db, queued)
    doc = db["experiments"].find_one({"_id": queued})
    assert (doc["_status"], doc["_machine_id"], doc["_token"]) == ("queued", None, None)
    assert not experiments.requeue(db, queued)


def test_a_move_cannot_lead_where_the_graph_does_not(db, queued) -> None:
    with pytest.raises(ValueError, match="move 'finish' cannot lead to status 'queued'"):
        experiments.finish(db, queued, Status.QUEUED, experiments.exit_record("no"))


def test_fields_are_set_but_never_the_status(db, queued) -> None:
    doc = experiments.set_fields(db, queued, {"_notes": "best so far"})
    assert doc["_notes"] == "best so far"
    with pytest.raises(ValueError, match="the status changes only through the moves"):
        experiments.set_fields(db, queued, {"_status": "success"})
    assert experiments.set_fields(db, ObjectId(), {"_notes": "x"}) is None


def test_a_restarted_worker_finds_what_its_predecessor_left(db) -> None:
    running = experiments.insert(db, PROJECT, {}, reservation=RESERVED)
    experiments.claim(db, running, "token-1", worker_pid=1)
    lost = experiments.insert(db, PROJECT, {}, reservation=RESERVED)
    experiments.claim(db, lost, "token-1", worker_pid=1)
    experiments.start(db, lost, pid=7, argv=["x"], results_dir="/r")
    experiments.lose(db, lost, "machine m1 stopped beating")
    left = {doc["_id"] for doc in experiments.left_on_machine(db, "m1")}
    assert left == {running, lost}
    experiments.note_reaped(db, lost, "machine m1 stopped beating; group stopped")
    assert {doc["_id"] for doc in experiments.left_on_machine(db, "m1")} == {running}
    assert db["experiments"].find_one({"_id": lost})["_exit"]["reason"].endswith("group stopped")


def test_set_waiting_touches_only_queued_experiments_of_the_project(db, queued) -> None:
    other = experiments.insert(db, ObjectId(), {})
    dispatched = experiments.insert(db, PROJECT, {}, reservation=RESERVED)
    assert experiments.set_waiting(db, PROJECT, "all capacity in use") == 1
    assert experiments.set_waiting(db, PROJECT, "all capacity in use") == 0
    waiting = {d["_id"]: d.get("_waiting") for d in db["experiments"].find()}
    assert waiting == {queued: "all capacity in use", other: None, dispatched: None}


def test_the_machine_record(db) -> None:
    machines.register(db, "m1", {"hostname": "m1", "gpus": []})
    machines.beat(db, "m1", {"gpu_busy": [1]}, within=5)
    doc = db["machines"].find_one({"_id": "m1"})
    assert doc["gpu_busy"] == [1] and isinstance(doc["_heartbeat"], datetime)
    assert doc["_registered"] <= doc["_heartbeat"]
    now = datetime.now(UTC).timestamp()
    assert machines.record_start_failure(db, "m1", now, keep=2) == [now]
    assert machines.record_start_failure(db, "m1", now + 1, keep=2) == [now, now + 1]
    assert machines.record_start_failure(db, "m1", now + 2, keep=2) == [now + 1, now + 2]
    assert machines.drain(db, "m1", "disk full")["drained"] is True
    resumed = machines.resume(db, "m1")
    assert (resumed["drained"], resumed["drain_reason"], resumed["start_failures"]) == (
        False, None, [],
    )  # fmt: skip
    assert machines.drain(db, "nobody", "x") is None
