"""Issue 17, item 1 (the worker's half): a restarted worker takes over what an earlier one
left without trusting the paths or the process group in MongoDB, and one bad record never
stops it starting. Real workers, supervisors and programs; the experiment's document is
written straight to MongoDB, as the refused PUT would have written it.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from tasks import experiments
from tests.integration.fleet import (
    experiment,
    implementation,
    live,
    machine_name,
    process_alive,
    status_of,
    submit,
)
from tests.integration.workers.test_fleet import read_log
from tests.integration.workers.test_worker_faults import read_pids, start_live
from tests.integration.workers.test_worker_restarts import LEASE_TTL, SCHEMA
from tests.waiting import wait_for


@pytest.fixture
def settings(settings):
    return settings.with_changes(lease_ttl=LEASE_TTL)


@pytest.fixture
def project_schema():
    return SCHEMA


@pytest.fixture
def bystander():
    """A process of the same user in a group of its own: what a forged `_pgid` aims at."""
    with subprocess.Popen(["sleep", "120"], start_new_session=True) as process:
        yield process
        process.kill()


def canary(tmp_path, name: str):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "secret.txt").write_text("not FGLab's to upload or delete\n")
    return folder


def untouched(folder) -> bool:
    return (folder / "secret.txt").read_text() == "not FGLab's to upload or delete\n"


def test_a_forged_results_folder_run_folder_and_pgid_are_not_used_on_readoption(
    client, db, fleet, project, bystander, tmp_path
):
    name = machine_name()
    projects = {str(project["_id"]): implementation(tmp_path)}
    fleet.start_scheduler()
    worker = start_live(fleet, db, name, projects)
    gate, pids = tmp_path / "gate", tmp_path / "pids.json"
    experiment_id = submit(client, project, mode="escape", until=gate, pids=pids)
    wait_for(lambda: read_pids(pids), timeout=30, what="the program's pids")
    results, runs = canary(tmp_path, "home"), canary(tmp_path, "other-runs")
    forged = {"_results_dir": str(results), "_run_dir": str(runs), "_pgid": bystander.pid}

    refused = client.put(f"/api/v1/experiments/{experiment_id}", json=forged)
    assert refused.status_code == 400
    assert "is kept by FGLab" in refused.json["error"]
    assert experiment(db, experiment_id)["_results_dir"] != str(results)

    worker.stop()
    db["experiments"].update_one({"_id": ObjectId(experiment_id)}, {"$set": forged})
    restarted = fleet.start_machine(name, projects)
    wait_for(lambda: "re-adopted" in restarted.output(), LEASE_TTL - 2, "the re-adoption")
    gate.touch()
    wait_for(lambda: status_of(db, experiment_id) == "success", 30, "the run to succeed")

    doc = experiment(db, experiment_id)
    assert doc["_scores"] == {"accuracy": 1.0}  # uploaded from its real results folder
    assert untouched(results) and untouched(runs)
    assert db["fs.files"].count_documents({"filename": {"$regex": "secret"}}) == 0
    assert process_alive(bystander.pid)
    assert not (tmp_path / "results" / experiment_id).exists()  # its own folder cleaned
    assert read_log(client, experiment_id)[0].startswith("line 0\n")


def test_a_left_run_without_supervisor_never_signals_the_pgid_in_its_record(
    db, fleet, project, bystander, tmp_path
):
    name = machine_name()
    experiment_id = experiments.insert(db, ObjectId(project["_id"]), {})
    db["experiments"].update_one(
        {"_id": experiment_id},
        {"$set": {"_status": "running", "_machine_id": name, "_pgid": bystander.pid}},
    )
    process = start_live(fleet, db, name, {str(project["_id"]): implementation(tmp_path)})

    wait_for(lambda: status_of(db, str(experiment_id)) == "lost", 30, "the run to be lost")
    assert process_alive(bystander.pid)
    assert "is not its supervisor's process group" in process.output()
    reason = experiment(db, str(experiment_id))["_exit"]["reason"]
    assert reason == "its worker stopped while it ran"


BAD_RECORDS = [
    {"_pgid": "x"},
    {"_pgid": [1]},
    {"_run_dir": 5, "_results_dir": {"a": 1}},
    {"_gpu": "x", "_token": 7, "_timeout": "soon"},
    {"_status": "claimed", "_pgid": -1},
]


def test_bad_records_left_on_a_machine_do_not_stop_its_worker_starting(
    client, db, fleet, project, tmp_path
):
    name = machine_name()
    project_id = ObjectId(project["_id"])
    ids = []
    for fields in BAD_RECORDS:
        experiment_id = experiments.insert(db, project_id, {})
        db["experiments"].update_one(
            {"_id": experiment_id},
            {"$set": {"_status": "running", "_machine_id": name, **fields}},
        )
        ids.append(experiment_id)
    db["experiments"].insert_one(  # not even an ObjectId
        {"_id": "../../x", "_project_id": project_id, "_status": "running", "_machine_id": name}
    )
    fleet.start_scheduler()
    process = start_live(fleet, db, name, {str(project_id): implementation(tmp_path)})

    wait_for(lambda: "malformed ID" in process.output(), 30, "the bad ID to be skipped")
    skipped = datetime.now(UTC)
    wait_for(
        lambda: live(db, name)().replace(tzinfo=UTC) > skipped, 30, "a heartbeat after the start"
    )
    for experiment_id in ids:
        wait_for(lambda i=experiment_id: status_of(db, str(i)) == "lost", 30, "each to be lost")
    fresh = submit(client, project, mode="env")
    wait_for(lambda: status_of(db, fresh) == "success", 30, "a new run to succeed")
    assert process.alive()
