"""Worker faults, with real worker processes, Redis and the MongoDB wire server.

A stopped worker that waits for its runs (killed workers, and stopped ones that leave
their runs to supervisors, are in test_worker_restarts.py), a restarted scheduler, a
redelivered or repeated message, a cancel that races its message, kill grace and
timeouts: each test checks the end state (status and reason, launches, process groups,
the ledger).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.app import create_celery
from tasks.contract import RUN_EXPERIMENT, RunRequest, machine_queue
from tests.integration.fleet import (
    Fleet,
    Process,
    experiment,
    implementation,
    ledger_empty,
    live,
    machine_name,
    new_project,
    process_alive,
    status_of,
    submit,
)
from tests.waiting import wait_for

#: Every option the program reads; a submission gives them all (FGLab's rule).
OPTIONS = {
    "mode": "sleep",
    "until": "none",
    "limit": "60",
    "pids": "none",
    "launches": "none",
    "checkpoint": "none",
}
SCHEMA = {name: {"type": "string", "default": value} for name, value in OPTIONS.items()}
LEASE_TTL = 3.0


@pytest.fixture
def settings(settings):
    return settings.with_changes(lease_ttl=LEASE_TTL)


@pytest.fixture
def fleet(fleet):
    yield fleet
    for process in fleet.processes:  # a stopped worker would ignore TERM
        if process.alive():
            process.popen.send_signal(signal.SIGCONT)


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    """After a failed test, no program of it keeps running (its cwd is under tmp_path)."""
    yield
    for stat in Path("/proc").glob("[0-9]*/cwd"):
        try:
            cwd = Path(os.readlink(stat))
        except OSError:
            continue
        if cwd == tmp_path and stat.parent.name != str(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


@pytest.fixture
def project_schema():
    return SCHEMA


def start_live(fleet: Fleet, db, name: str, projects, **kwargs) -> Process:
    process = fleet.start_machine(name, projects, **kwargs)
    wait_for(live(db, name), timeout=30, what=f"machine {name} to register")
    return process


def read_pids(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet, or half written
        return None


def all_pids(*paths: Path) -> list[int] | None:
    """The pids every program wrote, once all of them have."""
    found = [read_pids(path) for path in paths]
    return None if None in found else [pid for pids in found for pid in pids]


def launches(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def history(doc) -> dict:
    """What a repeated message must not change."""
    keys = ("_status", "_token", "_claimed", "_started", "_finished", "_exit", "_pid")
    return {key: doc.get(key) for key in keys}


def test_a_warm_shutdown_lets_the_experiment_finish_and_keeps_its_lease(
    client, db, fleet, project, ledger, tmp_path
):
    # By default a stopping worker leaves its runs to their supervisors
    # (test_worker_restarts.py); this setting makes it wait for them instead.
    fleet.settings = fleet.settings.with_changes(keep_runs_on_stop=False)
    name = machine_name()
    fleet.start_scheduler()
    worker = start_live(fleet, db, name, {str(project["_id"]): implementation(tmp_path)})
    gate = tmp_path / "gate"
    experiment_id = submit(client, project, mode="sleep", until=gate)
    wait_for(
        lambda: status_of(db, experiment_id) == "running", timeout=30, what="the experiment to run"
    )

    worker.popen.send_signal(signal.SIGTERM)
    wait_for(
        lambda: "Warm shutdown" in worker.output(),
        timeout=30,
        what="the worker to begin its warm shutdown",
    )
    shutdown = db["machines"].find_one({"_id": name})["_heartbeat"]
    # Past the point where an unrenewed lease would have expired, it still beats.
    wait_for(
        lambda: live(db, name)() > shutdown + timedelta(seconds=LEASE_TTL + 0.5),
        timeout=15,
        what="the machine to beat past a lease's life during the warm shutdown",
    )
    assert experiment_id in ledger.owners(name)
    assert status_of(db, experiment_id) == "running"
    assert worker.alive()

    gate.touch()
    worker.popen.wait(timeout=30)
    assert worker.popen.returncode == 0
    doc = experiment(db, experiment_id)
    assert doc["_status"] == "success"
    assert doc["_exit"]["code"] == 0
    assert "_kill_requested" not in doc
    assert ledger_empty(ledger, name)


def test_a_run_longer_than_the_visibility_timeout_launches_once(
    client, db, fleet, project, tmp_path
):
    fleet.settings = fleet.settings.with_changes(visibility_timeout=2.0)
    name = machine_name()
    fleet.start_scheduler()
    worker = start_live(fleet, db, name, {str(project["_id"]): implementation(tmp_path)})
    environ = Path(f"/proc/{worker.popen.pid}/environ").read_text().split("\0")
    assert "FGLAB_VISIBILITY_TIMEOUT=2.0" in environ

    counter = tmp_path / "launches"
    experiment_id = submit(client, project, mode="sleep", limit=8, launches=counter)
    wait_for(
        lambda: status_of(db, experiment_id) == "success",
        timeout=30,
        what="the long experiment to succeed",
    )
    assert len(launches(counter)) == 1
    elapsed = experiment(db, experiment_id)
    assert (elapsed["_finished"] - elapsed["_started"]).total_seconds() >= 8


def send_again(settings, doc) -> str:
    """The scheduler's RUN_EXPERIMENT message for `doc`, sent once more by hand."""
    request = RunRequest(
        experiment_id=str(doc["_id"]),
        project_id=str(doc["_project_id"]),
        machine=doc["_machine_id"],
        token=doc["_token"],
        gpu=doc.get("_gpu"),
    )
    celery = create_celery(settings, "test")
    try:
        result = celery.send_task(
            RUN_EXPERIMENT, kwargs=request.to_dict(), queue=machine_queue(request.machine)
        )
    finally:
        celery.close()
    return result.id


def handled(worker: Process, task_id: str):
    """The worker's log line for a finished task, or None while it is not there."""
    for line in worker.output().splitlines():
        if f"[{task_id}] succeeded" in line:
            return line
    return None


def test_the_same_run_message_twice_launches_once(
    client, db, fleet, project, ledger, settings, tmp_path
):
    name = machine_name()
    fleet.start_scheduler()
    worker = start_live(fleet, db, name, {str(project["_id"]): implementation(tmp_path)})
    gate, counter = tmp_path / "gate", tmp_path / "launches"
    experiment_id = submit(client, project, mode="sleep", until=gate, launches=counter)
    wait_for(
        lambda: status_of(db, experiment_id) == "running", timeout=30, what="the experiment to run"
    )
    wait_for(lambda: launches(counter), timeout=30, what="the program to record its launch")

    before = experiment(db, experiment_id)
    task_id = send_again(settings, before)
    line = wait_for(
        lambda: handled(worker, task_id),
        timeout=30,
        what="the worker to handle the repeated message while the experiment runs",
    )
    assert "'launched': False" in line
    assert history(experiment(db, experiment_id)) == history(before)
    assert experiment_id in ledger.owners(name)

    gate.touch()
    wait_for(
        lambda: status_of(db, experiment_id) == "success",
        timeout=30,
        what="the experiment to succeed",
    )
    ended = experiment(db, experiment_id)
    task_id = send_again(settings, ended)
    line = wait_for(
        lambda: handled(worker, task_id),
        timeout=30,
        what="the worker to handle the repeated message after the end",
    )
    assert "'launched': False" in line
    assert history(experiment(db, experiment_id)) == history(ended)
    assert len(launches(counter)) == 1
    assert ledger_empty(ledger, name)


def test_a_cancel_wins_over_a_message_still_on_its_way(
    client, db, fleet, project, ledger, tmp_path
):
    name = machine_name()
    fleet.start_scheduler()
    worker = start_live(fleet, db, name, {str(project["_id"]): implementation(tmp_path)})
    worker.popen.send_signal(signal.SIGSTOP)
    counter = tmp_path / "launches"
    try:
        experiment_id = submit(client, project, mode="sleep", until=tmp_path, launches=counter)
        doc = experiment(db, experiment_id)
        assert (doc["_status"], doc["_machine_id"]) == ("dispatched", name)
        answer = client.post(f"/api/v1/experiments/{experiment_id}/kill")
        assert answer.status_code == 200, answer.json
        assert answer.json["_status"] == "cancelled"
    finally:
        worker.popen.send_signal(signal.SIGCONT)

    wait_for(
        lambda: "'why': 'no reservation'" in worker.output(),
        timeout=30,
        what="the late message to be refused for want of a reservation",
    )
    assert status_of(db, experiment_id) == "cancelled"
    assert not launches(counter)
    assert not (tmp_path / "results" / experiment_id).exists()
    assert ledger_empty(ledger, name)


def test_a_cancelled_queued_experiment_never_starts_when_a_machine_appears(
    client, db, fleet, project, tmp_path
):
    fleet.start_scheduler()
    counter = tmp_path / "launches"
    cancelled = submit(client, project, mode="sleep", until=tmp_path, launches=counter)
    assert status_of(db, cancelled) == "queued"
    answer = client.post(f"/api/v1/experiments/{cancelled}/kill")
    assert (answer.status_code, answer.json["_status"]) == (200, "cancelled")

    name = machine_name()
    start_live(fleet, db, name, {str(project["_id"]): implementation(tmp_path)})
    later = submit(client, project, mode="sleep", until=tmp_path)
    wait_for(
        lambda: status_of(db, later) == "success",
        timeout=30,
        what="the new machine to run a later experiment",
    )
    assert status_of(db, cancelled) == "cancelled"
    assert not launches(counter)
    assert not (tmp_path / "results" / cancelled).exists()


def test_kill_gives_the_program_its_grace_then_kills_the_group(
    client, db, fleet, project, ledger, tmp_path
):
    name = machine_name()
    impl = implementation(tmp_path, capacity=0.5, kill_grace=1)
    fleet.start_scheduler()
    start_live(fleet, db, name, {str(project["_id"]): impl})
    checkpoint = tmp_path / "checkpoint"
    trap_pids, stubborn_pids = tmp_path / "trap.json", tmp_path / "stubborn.json"
    trap = submit(client, project, mode="trap", pids=trap_pids, checkpoint=checkpoint)
    stubborn = submit(client, project, mode="stubborn", pids=stubborn_pids)
    pids = wait_for(
        lambda: all_pids(trap_pids, stubborn_pids),
        timeout=30,
        what="both programs to write their pids",
    )
    wait_for(
        lambda: {status_of(db, trap), status_of(db, stubborn)} == {"running"},
        timeout=30,
        what="both experiments to run",
    )

    for experiment_id in (trap, stubborn):
        answer = client.post(f"/api/v1/experiments/{experiment_id}/kill")
        assert answer.status_code == 200, answer.json
    wait_for(
        lambda: {status_of(db, trap), status_of(db, stubborn)} == {"killed"},
        timeout=30,
        what="both experiments to be killed",
    )
    saved, forced = experiment(db, trap), experiment(db, stubborn)
    assert checkpoint.read_text() == "saved"
    assert saved["_exit"]["code"] == 0  # it left on TERM, by itself
    assert forced["_exit"]["code"] == -signal.SIGKILL
    assert (forced["_finished"] - forced["_kill_requested"]).total_seconds() >= 1
    assert not [pid for pid in pids if process_alive(pid)]
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")


def test_queued_work_survives_a_scheduler_restart(client, db, fleet, project, tmp_path):
    name = machine_name()
    scheduler = fleet.start_scheduler()
    start_live(fleet, db, name, {str(project["_id"]): implementation(tmp_path)})
    gate = tmp_path / "gate"
    first = submit(client, project, mode="sleep", until=gate)
    wait_for(
        lambda: status_of(db, first) == "running", timeout=30, what="the first experiment to run"
    )

    # A worker that has not finished starting dies of TERM instead of shutting down warm.
    wait_for(lambda: " ready." in scheduler.output(), timeout=60, what="the scheduler to be ready")
    scheduler.stop()
    assert scheduler.popen.returncode == 0
    queued = [submit(client, project, mode="sleep", until=tmp_path) for _ in range(2)]
    assert [status_of(db, i) for i in queued] == ["queued", "queued"]
    gate.touch()
    wait_for(
        lambda: status_of(db, first) == "success",
        timeout=30,
        what="the running experiment to end while the scheduler is down",
    )
    assert [status_of(db, i) for i in queued] == ["queued", "queued"]

    fleet.start_scheduler()
    wait_for(
        lambda: all(status_of(db, i) == "success" for i in queued),
        timeout=30,
        what="the queued experiments to succeed after the scheduler's restart",
    )


def test_a_program_past_its_timeout_is_stopped(client, store, db, fleet, project, ledger, tmp_path):
    limited = new_project(store, SCHEMA, prefix="t")
    name = machine_name()
    fleet.start_scheduler()
    start_live(
        fleet,
        db,
        name,
        {
            str(project["_id"]): implementation(tmp_path, capacity=0.5),
            str(limited["_id"]): implementation(tmp_path, capacity=0.5, timeout=1.5),
        },
    )
    by_project = submit(client, limited, mode="tree", pids=tmp_path / "a.json")
    by_submit = submit(client, project, query="timeout=1.5", mode="tree", pids=tmp_path / "b.json")
    pids = wait_for(
        lambda: all_pids(tmp_path / "a.json", tmp_path / "b.json"),
        timeout=30,
        what="both program trees to write their pids",
    )
    wait_for(
        lambda: {status_of(db, by_project), status_of(db, by_submit)} == {"timeout"},
        timeout=30,
        what="both experiments to time out",
    )
    for experiment_id in (by_project, by_submit):
        reason = experiment(db, experiment_id)["_exit"]["reason"]
        assert reason == "ran past its timeout of 1.5s; stopped"
    assert not [pid for pid in pids if process_alive(pid)]
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")


def test_a_kill_request_the_channel_missed_is_found_by_the_heartbeat(
    client, db, fleet, project, ledger, tmp_path
):
    name = machine_name()
    fleet.start_scheduler()
    start_live(fleet, db, name, {str(project["_id"]): implementation(tmp_path, kill_grace=1)})
    experiment_id = submit(client, project, mode="sleep", until=str(tmp_path / "never"))
    wait_for(lambda: status_of(db, experiment_id) == "running", timeout=30, what="the run")

    # As if the kill channel's message was lost: only MongoDB holds the request.
    db["experiments"].update_one(
        {"_id": experiment(db, experiment_id)["_id"]},
        {"$set": {"_kill_requested": datetime.now(UTC)}},
    )
    wait_for(
        lambda: status_of(db, experiment_id) == "killed",
        timeout=30,
        what="the heartbeat to find the kill request",
    )
    assert experiment(db, experiment_id)["_exit"]["reason"] == "killed on request"
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")
