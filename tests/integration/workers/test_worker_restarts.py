"""Runs outlive their worker, and nothing outlives its run: real workers, supervisors and
programs that leave a grandchild in a session of its own (``--mode escape``).

A worker stopped (TERM) or killed (KILL) mid-run and started again finishes the run with
its whole log and results, launched once. A worker killed for good leaves nothing
running once a lease's life (and the grace) has passed: its supervisor stops the tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from redis import Redis

from tasks.logs import log_key
from tests.integration.fleet import (
    Fleet,
    counts_agree,
    experiment,
    implementation,
    ledger_empty,
    machine_name,
    process_alive,
    status_of,
    submit,
)
from tests.integration.workers.test_fleet import read_log
from tests.integration.workers.test_worker_faults import launches, read_pids, start_live
from tests.waiting import wait_for

OPTIONS = {"mode": "escape", "until": "none", "limit": "60", "pids": "none", "launches": "none"}
SCHEMA = {name: {"type": "string", "default": value} for name, value in OPTIONS.items()}
#: Long enough for a worker to start again on a busy box before its runs are given up.
LEASE_TTL = 12.0
#: Every line the program prints (``--lines`` defaults to 20).
ALL_LINES = "".join(f"line {i}\n" for i in range(20))


@pytest.fixture
def settings(settings):
    return settings.with_changes(lease_ttl=LEASE_TTL)


@pytest.fixture
def project_schema():
    return SCHEMA


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    """After a failed test, nothing of it keeps running (programs and supervisors run in
    tmp_path)."""
    yield
    for link in Path("/proc").glob("[0-9]*/cwd"):
        with contextlib.suppress(OSError):
            if Path(os.readlink(link)) == tmp_path and link.parent.name != str(os.getpid()):
                os.kill(int(link.parent.name), signal.SIGKILL)


def supervisor_pid(fleet: Fleet, experiment_id: str) -> int:
    state = fleet.root / "data" / "runs" / experiment_id / "supervisor.json"
    return json.loads(state.read_text())["pid"]


def none_alive(pids: list[int]) -> bool:
    return not [pid for pid in pids if process_alive(pid)]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_a_worker_restarted_mid_run_finishes_it_with_all_its_output(
    stop, client, db, fleet, project, ledger, settings, tmp_path
):
    name = machine_name()
    projects = {str(project["_id"]): implementation(tmp_path)}
    fleet.start_scheduler()
    worker = start_live(fleet, db, name, projects)
    gate, pids_file, counter = tmp_path / "gate", tmp_path / "pids.json", tmp_path / "launches"
    experiment_id = submit(
        client, project, mode="escape", until=gate, pids=pids_file, launches=counter
    )
    pids = wait_for(lambda: read_pids(pids_file), timeout=30, what="the program's pids")
    wait_for(
        lambda: "line 9\n" in read_log(client, experiment_id)[0],
        timeout=30,
        what="the first half of the output to stream",
    )

    [forkserver] = [
        child
        for child in psutil.Process(worker.popen.pid).children()
        if "forkserver.py" in " ".join(child.cmdline())
    ]
    supervisor = psutil.Process(supervisor_pid(fleet, experiment_id))
    assert supervisor.ppid() == forkserver.pid  # forked, not an interpreter start

    worker.stop(stop)
    if stop == signal.SIGTERM:
        assert worker.popen.returncode == 0  # a warm shutdown that did not wait for the run
    wait_for(
        lambda: not process_alive(forkserver.pid),
        timeout=10,
        what="the fork server to follow its worker out",
    )
    assert supervisor.is_running()
    assert all(process_alive(pid) for pid in pids)
    assert status_of(db, experiment_id) == "running"

    restarted = fleet.start_machine(name, projects)
    wait_for(
        lambda: "re-adopted" in restarted.output(),
        timeout=LEASE_TTL - 2,
        what="the restarted worker to re-adopt the run",
    )
    assert status_of(db, experiment_id) == "running"
    gate.touch()
    wait_for(
        lambda: status_of(db, experiment_id) == "success",
        timeout=30,
        what="the re-adopted run to succeed",
    )

    doc = experiment(db, experiment_id)
    assert doc["_exit"] == {"code": 0, "signal": None, "reason": "exited with code 0"}
    [gap] = doc["_gaps"]  # the time without a worker, shown on the page
    assert gap["from"] < gap["to"] and gap["seconds"] > 0
    page = client.get(f"/experiments/{experiment_id}").get_data(as_text=True)
    assert "Without a worker" in page and "re-adopted" in page
    assert (doc["Phase"], doc["_scores"]) == ("first", {"accuracy": 1.0})
    assert read_log(client, experiment_id) == (ALL_LINES, "")  # live: each line once
    Redis.from_url(settings.redis).delete(log_key(experiment_id))
    assert read_log(client, experiment_id) == (ALL_LINES, "")  # kept
    assert len(launches(counter)) == 1
    assert none_alive(pids)  # the escaped grandchild too, once the program ended
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")
    wait_for(lambda: counts_agree(db), timeout=10, what="the counters to equal a real count")


def test_a_worker_killed_for_good_leaves_nothing_of_its_run(
    client, db, fleet, project, ledger, settings, tmp_path
):
    name = machine_name()
    projects = {str(project["_id"]): implementation(tmp_path)}
    fleet.start_scheduler()
    worker = start_live(fleet, db, name, projects)
    pids_file = tmp_path / "pids.json"
    doomed = submit(client, project, mode="escape", until=tmp_path / "never", pids=pids_file)
    pids = wait_for(lambda: read_pids(pids_file), timeout=30, what="the program's pids")
    wait_for(lambda: status_of(db, doomed) == "running", timeout=30, what="the run")
    pids.append(supervisor_pid(fleet, doomed))

    worker.stop(signal.SIGKILL)
    waiting = submit(client, project, mode="sleep", until=tmp_path)  # the gate exists
    wait_for(
        lambda: none_alive(pids),
        timeout=LEASE_TTL + settings.kill_grace + 5,
        what="the supervisor to stop the whole tree, the setsid grandchild too",
    )
    wait_for(lambda: status_of(db, doomed) == "lost", timeout=20, what="the sweep to lose it")
    assert f"machine {name} stopped beating" in experiment(db, doomed)["_exit"]["reason"]
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the capacity to come back")

    fleet.start_machine(name, projects)
    wait_for(
        lambda: status_of(db, waiting) == "success",
        timeout=30,
        what="the waiting experiment to succeed on the restarted worker",
    )
    wait_for(
        lambda: "supervisor stopped the run" in experiment(db, doomed)["_exit"]["reason"],
        timeout=30,
        what="the restarted worker to record what the supervisor did",
    )
    doc = experiment(db, doomed)
    assert doc["_status"] == "lost"
    assert "_reaped" in doc
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")
    wait_for(lambda: counts_agree(db), timeout=10, what="the counters to equal a real count")


def test_a_cancel_stops_a_grandchild_that_left_the_session(
    client, db, fleet, project, ledger, tmp_path
):
    name = machine_name()
    fleet.start_scheduler()
    start_live(fleet, db, name, {str(project["_id"]): implementation(tmp_path, kill_grace=1)})
    pids_file = tmp_path / "pids.json"
    experiment_id = submit(client, project, mode="escape", until=tmp_path / "never", pids=pids_file)
    pids = wait_for(lambda: read_pids(pids_file), timeout=30, what="the program's pids")
    wait_for(lambda: status_of(db, experiment_id) == "running", timeout=30, what="the run")
    pids.append(supervisor_pid(fleet, experiment_id))

    answer = client.post(f"/api/v1/experiments/{experiment_id}/kill")
    assert answer.status_code == 200, answer.json
    wait_for(lambda: status_of(db, experiment_id) == "killed", timeout=30, what="the kill")
    assert experiment(db, experiment_id)["_exit"]["reason"] == "killed on request"
    assert none_alive(pids)
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")
