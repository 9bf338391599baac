"""Draining machines (from the API, and by themselves) and why queued experiments wait."""

from __future__ import annotations

from types import SimpleNamespace

import fakeredis
import pytest

from config import Settings
from fglab.extensions import services
from fglab.scheduler import Scheduler
from fglab.store import now
from tasks.contract import RunRequest
from tests.integration.fleet import (
    implementation,
    ledger_empty,
    live,
    machine,
    machine_name,
    new_project,
    status_of,
    submit,
)
from tests.waiting import wait_for
from worker.machine import Machine, Running

DRAINED = "every machine that implements this project is drained"
FULL = "all capacity in use"


@pytest.fixture
def settings(settings):
    return settings.with_changes(drain_after_failures=2, drain_window=60.0)


def read(client, experiment_id: str) -> dict:
    answer = client.get(f"/api/v1/experiments/{experiment_id}")
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_drained_machine_finishes_its_work_and_takes_new_work_only_after_resume(
    client, db, fleet, project, ledger, tmp_path
):
    name = machine_name()
    fleet.start_scheduler()
    fleet.start_machine(name, {str(project["_id"]): implementation(tmp_path, capacity=0.5)})
    wait_for(live(db, name), timeout=30, what="the machine to register")
    gate = tmp_path / "gate"
    running = submit(client, project, queue=False, mode="sleep", until=str(gate))
    wait_for(lambda: status_of(db, running) == "running", timeout=30, what="the experiment to run")

    answer = client.post(f"/api/v1/machines/{name}/drain")
    assert answer.status_code == 200, answer.json
    assert answer.json["drained"] is True
    assert answer.json["drain_reason"] == "drained from the API"

    waiting = submit(client, project, mode="sleep", until=str(gate))
    doc = read(client, waiting)
    assert doc["_status"] == "queued"
    assert doc["_waiting"] == DRAINED
    assert status_of(db, running) == "running"

    gate.touch()
    wait_for(
        lambda: status_of(db, running) == "success",
        timeout=30,
        what="the running experiment to finish on the drained machine",
    )
    # Room freed (the machine's "finished" event dispatches too): the drain still holds.
    assert services(client.application).scheduler.dispatch_queued() == 0
    doc = read(client, waiting)
    assert (doc["_status"], doc["_waiting"], doc["_queue_position"]) == ("queued", DRAINED, 1)

    answer = client.post(f"/api/v1/machines/{name}/resume")
    assert answer.status_code == 200, answer.json
    assert answer.json["drained"] is False and answer.json["drain_reason"] is None
    wait_for(
        lambda: status_of(db, waiting) in {"dispatched", "claimed", "running", "success"},
        timeout=30,
        what="the resume to dispatch the waiting experiment",
    )
    wait_for(
        lambda: status_of(db, waiting) == "success",
        timeout=30,
        what="the waiting experiment to succeed after the resume",
    )
    assert read(client, waiting)["_machine_id"] == name
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")


def test_a_machine_that_cannot_start_programs_drains_itself(client, store, db, fleet, tmp_path):
    broken = new_project(store, prefix="broken")
    name = machine_name()
    impl = implementation(tmp_path, command="/nonexistent/fglab-trainer")
    fleet.start_machine(name, {str(broken["_id"]): impl})
    wait_for(live(db, name), timeout=30, what="the machine to register")

    def fail_to_start(count: int) -> None:
        failed = submit(client, broken, queue=False)
        wait_for(
            lambda: status_of(db, failed) == "fail",
            timeout=30,
            what=f"experiment {count} to fail to start",
        )
        reason = read(client, failed)["_exit"]["reason"]
        assert "could not start '/nonexistent/fglab-trainer'" in reason
        wait_for(
            lambda: len(machine(db, name).get("start_failures") or []) == count,
            timeout=30,
            what=f"the machine to count start failure {count}",
        )

    fail_to_start(1)
    assert machine(db, name).get("drained") is not True
    fail_to_start(2)

    record = client.get(f"/api/v1/machines/{name}").json
    assert record["drained"] is True
    reason = record["drain_reason"]
    assert reason.startswith("2 experiments failed to start within 60s; last: ")
    assert "could not start '/nonexistent/fglab-trainer'" in reason
    assert "No such file or directory" in reason

    third = submit(client, broken)
    doc = read(client, third)
    assert (doc["_status"], doc["_waiting"]) == ("queued", DRAINED)
    assert services(client.application).scheduler.dispatch_queued() == 0
    assert status_of(db, third) == "queued"
    assert client.post(
        f"/api/v1/projects/{broken['_id']}/experiment", json={"mode": "write", "until": "none"}
    ).json == {"error": "No machine capacity available"}


def test_queued_experiments_say_why_they_wait_and_where_they_stand(
    client, store, db, fleet, project, ledger, tmp_path
):
    fleet.start_scheduler()
    gate = tmp_path / "gate"
    first = submit(client, project, mode="sleep", until=str(gate))
    doc = read(client, first)
    assert doc["_status"] == "queued"
    assert doc["_waiting"] == "no live machine implements this project"
    assert doc["_queue_position"] == 1

    name = machine_name()
    fleet.start_machine(name, {str(project["_id"]): implementation(tmp_path)})
    wait_for(
        lambda: status_of(db, first) == "running",
        timeout=30,
        what="the first experiment to run on the new machine",
    )
    assert read(client, first)["_waiting"] is None

    waiting = [submit(client, project, mode="sleep", until=str(gate)) for _ in range(3)]
    docs = [read(client, i) for i in waiting]
    assert [(d["_status"], d["_waiting"]) for d in docs] == [("queued", FULL)] * 3
    assert [d["_queue_position"] for d in docs] == [1, 2, 3]
    assert "_queue_position" not in read(client, first)

    gate.touch()
    ids = [first, *waiting]
    wait_for(
        lambda: all(status_of(db, i) == "success" for i in ids),
        timeout=30,
        what="all four experiments to succeed",
    )
    started = [store.get_experiment(i)["_started"] for i in ids]
    assert started == sorted(started)  # first in, first out
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")


def gpu_machine(db, project, gpu_busy: list[int]) -> str:
    """A machine record with two GPUs, as a worker's heartbeat would write it."""
    name = machine_name()
    db["machines"].insert_one(
        {
            "_id": name,
            "hostname": name,
            "gpu_count": 2,
            "gpu_busy": gpu_busy,
            "_heartbeat": now(),
            "projects": {str(project["_id"]): {"capacity": 0.1, "gpu_capacity": 0.5}},
        }
    )
    return name


def test_gpu_memory_taken_outside_the_fleet_is_named_and_avoided(
    client, store, db, project, ledger, settings
):
    name = gpu_machine(db, project, gpu_busy=[0, 1])
    doc = read(client, submit(client, project))
    assert doc["_status"] == "queued"
    assert doc["_waiting"] == (
        f"all capacity in use; GPU memory on {name} is taken by processes outside the fleet"
    )
    assert ledger_empty(ledger, name)

    # One GPU still free: the share goes there, never to the busy one.
    db["machines"].update_one({"_id": name}, {"$set": {"gpu_busy": [0]}})
    sent: list[RunRequest] = []
    scheduler = Scheduler(store, ledger, sent.append, settings=settings)
    experiment_id = scheduler.submit(project, {"mode": "write", "until": "none"}, queue=True)
    try:
        placed = store.get_experiment(experiment_id)
        assert (placed["_status"], placed["_machine_id"], placed["_gpu"]) == (
            "dispatched",
            name,
            1,
        )
        assert [(r.machine, r.gpu) for r in sent] == [(name, 1)]
    finally:
        ledger.release(name, str(experiment_id))


class FakeNvml:
    """Stands in for pynvml: memory used on each GPU, in bytes."""

    class NVMLError(Exception):
        pass

    def __init__(self, used: list[int]) -> None:
        self.used = used
        self.asked: list[int] = []

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index >= len(self.used):
            raise self.NVMLError(f"no GPU {index}")
        self.asked.append(index)
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=self.used[handle], total=16 * 1024**3)


def test_busy_gpus_are_those_held_by_processes_outside_the_fleet(tmp_path):
    mib = 1024 * 1024
    nvml = FakeNvml([2048 * mib, 4096 * mib, 100 * mib, 600 * mib])
    settings = Settings(
        machine_name="gpu-box", projects_file=tmp_path / "projects.json", gpu_busy_bytes=512 * mib
    )
    redis = fakeredis.FakeRedis()
    box = Machine(settings, db=object(), redis=redis, nvml=nvml)  # type: ignore[arg-type]
    box.gpu_count = 5  # the fifth is not found by NVML: unknown, so not busy
    box.add_running(Running("e1", "t1", cpu=0.1, gpu_share=0.5, gpu=1))

    assert box.busy_gpus() == [0, 3]
    assert nvml.asked == [0, 2, 3]  # GPU 1 runs our own experiment: not measured

    # Simulated GPUs (FGLAB_GPUS) have nothing to measure.
    full = FakeNvml([4096 * mib, 4096 * mib])
    simulated_settings = settings.with_changes(gpu_count=2)
    simulated = Machine(simulated_settings, db=object(), redis=redis, nvml=full)  # type: ignore[arg-type]
    simulated.gpu_count = 2
    assert simulated.busy_gpus() == []
    assert full.asked == []
    redis.close()
