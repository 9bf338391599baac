"""GPU and run telemetry from a faked NVML, through a real heartbeat, to the machine
record, the pages, the experiment, and the ledger (a GPU that errors takes no work)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from bson import ObjectId
from redis import Redis

from fglab.scheduler import Scheduler
from tasks import experiments
from tasks.contract import RunRequest
from tasks.ledger import Ledger
from tests.html import find, page, page_data, text
from tests.waiting import wait_for
from worker.machine import Machine, Running

GIB = 2**30


class FakeNVML:
    """pynvml's telemetry calls over two GPUs; `failing` GPUs raise as a lost GPU does."""

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        self.failing: set[int] = set()
        self.processes: dict[int, list[tuple[int, int]]] = {0: [], 1: []}

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index in self.failing or not 0 <= index < 2:
            raise self.NVMLError("GPU is lost")
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-0000000{handle}"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        used = sum(memory for _, memory in self.processes[handle])
        return SimpleNamespace(total=80 * GIB, used=used, free=80 * GIB - used)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=87 if self.processes[handle] else 0, memory=10)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return 61

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 312_500  # milliwatts

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in self.processes[handle]]


@pytest.fixture
def program() -> Iterator[subprocess.Popen[bytes]]:
    """A running "experiment": it holds memory and burns CPU until stopped."""
    code = "x = b'x' * (64 * 2**20)\nwhile True:\n    sum(range(10000))\n"
    process = subprocess.Popen([sys.executable, "-c", code])
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def redis_client(settings) -> Iterator[Redis]:
    client = Redis.from_url(settings.redis)
    yield client
    client.close()


def test_telemetry_reaches_record_pages_and_experiment_and_a_failing_gpu_leaves_the_ledger(
    db, store, client, settings, redis_client, program, tmp_path
) -> None:
    project = store.projects.get(store.projects.create("telemetry", {}))
    name = f"gpu-box-{ObjectId()}"
    settings = settings.with_changes(machine_name=name, heartbeat=0.5)
    settings.projects_file.write_text(
        json.dumps(
            {
                str(project["_id"]): {
                    "cwd": str(tmp_path), "command": sys.executable, "args": [],
                    "options": "double-dash", "capacity": 0.25, "gpu_capacity": 1,
                    "results": str(tmp_path / "results"),
                }
            }
        )
    )  # fmt: skip
    nvml = FakeNVML()
    box = Machine(settings, db=db, redis=redis_client, nvml=nvml)
    box.register()
    ledger = Ledger(redis_client, ttl=settings.lease_ttl)
    sent: list[RunRequest] = []
    scheduler = Scheduler(store, ledger, sent.append, settings=settings, redis=redis_client)

    # One experiment runs on GPU 0, as the scheduler and the runner leave it.
    running = scheduler.submit(project, {}, queue=True)
    assert sent[-1].gpu == 0
    assert experiments.claim(db, running, sent[-1].token, 1)
    assert experiments.start(db, running, pid=program.pid, argv=["x"], results_dir="r")
    box.add_running(Running(str(running), sent[-1].token, 0.25, 1.0, 0))
    nvml.processes[0] = [(program.pid, 3 * GIB)]
    box.beat()
    wait_for(lambda: program.poll() is None and box.beat() is None and _cpu(db, running) > 0,
             timeout=30, what="a beat that measures the program's CPU and memory")  # fmt: skip

    # The machine record: every GPU with its telemetry; the history holds points.
    record = db["machines"].find_one({"_id": name})
    gpu0 = record["gpu_details"][0]
    assert (gpu0["name"], gpu0["memory_total"], gpu0["memory_used"]) == (
        "NVIDIA H100 80GB HBM3", 80 * GIB, 3 * GIB,
    )  # fmt: skip
    assert (gpu0["utilization"], gpu0["temperature"], gpu0["power"]) == (87, 61, 312.5)
    assert gpu0["processes"] == [{"pid": program.pid, "memory": 3 * GIB}]
    assert record["gpu_down"] == []
    assert len(store.machine_gpu_history(name)) >= 2

    # The machine page: the GPU table and the last hour's charts.
    machine_page = page(client.get(f"/machines/{name}"))
    row = find(machine_page, '#gpus tr[data-gpu="0"]')
    assert "87%" in text(row) and "61 °C" in text(row) and "312.5 W" in text(row)
    assert f"{program.pid}: 3.0 GiB" in text(row)
    charts = page_data(machine_page)["gpu_charts"]
    assert [c["data"]["columns"][1][0] for c in charts] == [
        "GPU 0 memory (MiB)", "GPU 0 utilisation (%)",
    ]  # fmt: skip
    assert charts[0]["data"]["columns"][1][-1] == 3 * 1024

    # The experiment: its GPU, the memory its processes held, its tree's CPU and memory.
    doc = experiments.get(db, running)
    resources = doc["_resources"]
    assert resources["gpu"] == 0
    assert resources["gpu_memory"]["peak"] == resources["gpu_memory"]["last"] == 3 * GIB
    assert resources["gpu_utilization"]["peak"] == 87
    assert resources["rss"]["peak"] >= 64 * 2**20
    assert resources["cpu"]["peak"] > 0
    assert doc["_resource_samples"]
    experiment_page = page(client.get(f"/experiments/{running}"))
    assert text(find(experiment_page, "#resources-gpu-memory")) == "peak 3.0 GiB, last 3.0 GiB"
    assert text(find(experiment_page, "#resources-gpu")) == "0"
    assert page_data(experiment_page)["resource_charts"]

    # GPU 1 starts erroring: it leaves the ledger, so a GPU run waits, and says why.
    nvml.failing.add(1)
    box.beat()
    assert db["machines"].find_one({"_id": name})["gpu_down"] == [1]
    waiting = scheduler.submit(project, {}, queue=True)
    assert store.get_experiment(waiting)["_status"] == "queued"
    assert "down or excluded" in store.get_experiment(waiting)["_waiting"]
    assert scheduler.dispatch_queued() == 0
    down_page = page(client.get(f"/machines/{name}"))
    assert "takes no new work" in text(find(down_page, '#gpus tr[data-gpu="1"]'))

    # It recovers: back in the ledger, the waiting run goes there.
    nvml.failing.clear()
    box.beat()
    assert db["machines"].find_one({"_id": name})["gpu_down"] == []
    assert scheduler.dispatch_queued() == 1
    assert (sent[-1].experiment_id, sent[-1].gpu) == (str(waiting), 1)
    assert store.get_experiment(waiting)["_status"] == "dispatched"
    for request in sent:
        ledger.release(name, request.experiment_id)


def _cpu(db: Any, experiment_id: ObjectId) -> float:
    doc = experiments.get(db, experiment_id, ["_resources"]) or {}
    resources = doc.get("_resources") or {}
    if ((resources.get("rss") or {}).get("peak") or 0) < 64 * 2**20:
        return 0.0  # the program has not touched its memory yet
    return float((resources.get("cpu") or {}).get("peak") or 0)


def test_excluded_and_invisible_gpus_take_no_work(db, settings, redis_client) -> None:
    nvml = FakeNVML()
    for changes, down in (
        ({"gpus_exclude": "1"}, [1]),
        ({"gpus_exclude": "GPU-00000000"}, [0]),
        ({"cuda_visible_devices": "1"}, [0]),
        ({"cuda_visible_devices": ""}, [0, 1]),
    ):
        name = f"excluding-{ObjectId()}"
        box = Machine(
            settings.with_changes(machine_name=name, **changes),
            db=db,
            redis=redis_client,
            nvml=nvml,
        )
        box.register()
        record = db["machines"].find_one({"_id": name})
        assert record["gpu_down"] == down, changes
        assert record["gpu_count"] == 2


def test_no_datetime_is_needed_for_history_points(db) -> None:
    from tasks import machines

    machines.record_gpu_history(db, "h", {"t": datetime.now(UTC).timestamp(), "gpus": []}, keep=2)
    for _ in range(3):
        machines.record_gpu_history(db, "h", {"t": 1.0, "gpus": []}, keep=2)
    assert len(machines.gpu_history(db, "h")) == 2
