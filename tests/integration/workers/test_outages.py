"""Outages with real workers: Redis restarted or emptied, MongoDB unreachable for a while.

Each test ends with the experiments in their final state and checks that nothing was
lost or done twice. Redis outages use a redis-server of the test's own (the shared one
is never stopped or flushed); the MongoDB outage cuts a TCP proxy between the machine
worker and the suite's MongoDB.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from bson import ObjectId
from redis import Redis

from fglab.embedded.redis import answers
from fglab.extensions import services
from tasks.logs import log_key
from tests.integration.fleet import (
    SCHEMA,
    Fleet,
    experiment,
    implementation,
    ledger_empty,
    live,
    machine_name,
    process_alive,
    status_of,
    submit,
)
from tests.integration.tcpproxy import TcpProxy
from tests.waiting import wait_for


@dataclass
class RedisServer:
    """A redis-server of the test's own, with an append-only file so a restart keeps data."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            shutil.which("redis-server") or "redis-server", "--port", str(self.port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
            "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        wait_for(
            lambda: answers(self.url), timeout=15, what=f"redis-server to answer on {self.port}"
        )

    def shutdown(self) -> None:
        """SHUTDOWN: Redis writes its append-only file and exits."""
        client = Redis.from_url(self.url)
        try:
            client.shutdown()
        finally:
            client.close()
        assert self.process is not None
        self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(free_port(), folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, request):
    if "redis_server" in request.fixturenames:
        return settings.with_changes(redis_url=request.getfixturevalue("redis_server").url)
    return settings


@pytest.fixture
def app(app):
    yield app
    # Connections to a Redis that was restarted would otherwise be collected unclosed.
    services(app).redis.close()
    services(app).broker.close()


@pytest.fixture
def project_schema():
    return {
        **SCHEMA,
        "lines": {"type": "int", "default": 40},
        "launches": {"type": "string", "default": "none"},
    }


def read_log(client, experiment_id: str) -> tuple[str, str, str]:
    """(stdout, stderr, source of the last page) of an experiment, page by page."""
    out, err, after, source = [], [], None, ""
    while True:
        query = f"?after={after}" if after else ""
        page = client.get(f"/api/v1/experiments/{experiment_id}/logs{query}").json
        source = page["source"]
        for entry in page["entries"]:
            {"out": out, "err": err}.get(entry["s"], []).append(entry["t"])
        if not page["entries"]:
            return "".join(out), "".join(err), source
        after = page["last"]


def test_a_redis_restart_mid_experiment_loses_no_output(
    client, db, fleet, project, redis_server, tmp_path
):
    name = machine_name()
    fleet.start_machine(name, {str(project["_id"]): implementation(tmp_path)})
    wait_for(live(db, name), timeout=30, what="the machine to register")

    gate = tmp_path / "gate"
    first = submit(client, project, queue=False, mode="ticks", until=str(gate), lines=40)
    redis = Redis.from_url(redis_server.url)
    try:
        wait_for(
            lambda: redis.xlen(log_key(first)) > 0,
            timeout=30,
            what="the first lines to stream to Redis",
        )
    finally:
        redis.close()
    wait_for(lambda: status_of(db, first) == "running", timeout=30, what="the experiment to run")

    redis_server.shutdown()
    gate.touch()  # the second half is printed while Redis is down and after it is back
    redis_server.start()

    wait_for(
        lambda: status_of(db, first) == "success",
        timeout=60,
        what="the experiment to succeed across the Redis restart",
    )
    doc = experiment(db, first)
    assert doc["_exit"]["code"] == 0
    out, err, source = read_log(client, first)
    assert source == "kept"
    assert out == "".join(f"line {i}\n" for i in range(40))
    assert err == ""

    # The worker's broker connection came back: new work reaches it.
    second = submit(client, project, queue=False, mode="ticks", until=str(gate), lines=4)
    wait_for(
        lambda: status_of(db, second) == "success",
        timeout=60,
        what="an experiment sent after the restart to succeed",
    )
    assert read_log(client, second)[0] == "".join(f"line {i}\n" for i in range(4))


def test_an_emptied_redis_loses_no_experiment_and_runs_none_twice(
    client, db, fleet, project, redis_server, ledger, tmp_path
):
    """FLUSHALL with one experiment running, two dispatched and two queued.

    A one-thread worker keeps later run messages waiting in Redis, so the flush loses
    them along with every lease; MongoDB still knows every experiment.
    """
    name = machine_name()
    fleet.start_scheduler()
    fleet.start_machine(
        name, {str(project["_id"]): implementation(tmp_path, capacity=0.33)}, concurrency=1
    )
    wait_for(live(db, name), timeout=30, what="the machine to register")

    gate = tmp_path / "gate"
    launches = [tmp_path / f"launches-{i}" for i in range(5)]

    def start(i: int) -> str:
        return submit(client, project, mode="sleep", until=str(gate), launches=str(launches[i]))

    ids = [start(0)]
    wait_for(
        lambda: status_of(db, ids[0]) == "running", timeout=30, what="the first experiment to run"
    )
    ids += [start(i) for i in range(1, 5)]
    statuses = [status_of(db, i) for i in ids]
    assert statuses == ["running", "dispatched", "dispatched", "queued", "queued"]
    running = experiment(db, ids[0])
    tokens = {i: experiment(db, i)["_token"] for i in ids[1:3]}

    flusher = Redis.from_url(redis_server.url)
    try:
        flusher.flushall()
    finally:
        flusher.close()

    # The heartbeat takes the running experiment's reservation again, same token.
    lease = wait_for(
        lambda: next((x for x in ledger.usage(name).leases if x.owner == ids[0]), None),
        timeout=30,
        what="the heartbeat to take the running experiment's lease again",
    )
    assert lease.token == running["_token"]

    # What was dispatched before the flush goes back to the queue (and maybe out again).
    def requeued(i: str) -> bool:
        doc = experiment(db, i)
        return doc["_status"] == "queued" or doc.get("_token") != tokens[i]

    wait_for(
        lambda: all(requeued(i) for i in ids[1:3]),
        timeout=30,
        what="the two dispatched experiments to be requeued",
    )

    gate.touch()
    wait_for(
        lambda: all(status_of(db, i) == "success" for i in ids),
        timeout=90,
        what="all five experiments to succeed",
    )
    assert [path.read_text().count("\n") for path in launches] == [1] * 5
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")


def test_results_wait_out_a_mongodb_outage(client, db, fleet, project, settings, tmp_path):
    target = urlparse(settings.mongodb_uri)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 27017).up()
    try:
        name = machine_name()
        fleet.start_scheduler()
        through_proxy = Fleet(
            settings.with_changes(mongodb_uri=proxy.uri()), fleet.root, fleet.processes
        )
        worker = through_proxy.start_machine(name, {str(project["_id"]): implementation(tmp_path)})
        wait_for(live(db, name), timeout=30, what="the machine to register")

        gate = tmp_path / "gate"
        experiment_id = submit(client, project, queue=False, mode="outage", until=str(gate))
        folder = tmp_path / "results" / experiment_id
        wait_for(
            lambda: (
                status_of(db, experiment_id) == "running"
                and experiment(db, experiment_id).get("Phase") == "early"
            ),
            timeout=30,
            what="the experiment to run and store its early results",
        )

        proxy.down()
        gate.touch()
        pid = experiment(db, experiment_id)["_pid"]
        wait_for(
            lambda: not process_alive(pid),
            timeout=30,
            what="the program to exit while MongoDB is away",
        )
        wait_for(
            lambda: "retrying in" in worker.output(),
            timeout=30,
            what="the worker to retry its uploads",
        )
        assert status_of(db, experiment_id) == "running"
        assert (folder / "late.json").exists()  # kept until every upload landed
        proxy.up()

        wait_for(
            lambda: status_of(db, experiment_id) == "success",
            timeout=90,
            what="the experiment to succeed after the outage",
        )
        doc = client.get(f"/api/v1/experiments/{experiment_id}").json
        assert doc["Phase"] == "late" and doc["Epochs"] == 3
        assert doc["_scores"] == {"accuracy": 0.5}
        assert doc["_exit"]["code"] == 0
        names = [f["filename"] for f in doc["_files"]]
        assert sorted(names) == ["early.txt", "late.bin"]
        files = {f["filename"]: f["_id"] for f in doc["_files"]}
        assert client.get(f"/api/v1/files/{files['early.txt']}").data == b"early 1\nearly 2\n"
        assert client.get(f"/api/v1/files/{files['late.bin']}").data == bytes(range(256)) * 64
        # early.txt replaced, not stored twice; the program printed nothing, so no log file.
        # (The program's code diff, kept whole when long, is not counted: kind "code".)
        query = {"metadata.experiment": ObjectId(experiment_id), "metadata.kind": {"$ne": "code"}}
        assert db["fs.files"].count_documents(query) == 2
        wait_for(lambda: not folder.exists(), timeout=30, what="the results folder to be removed")
    finally:
        proxy.close()


def test_a_scheduler_killed_outright_takes_its_embedded_beat_with_it(fleet) -> None:
    """The beat `worker -B` forks must not outlive it: an orphan would keep the dead
    worker's broker connections (and their pending BRPOPs) and swallow messages."""
    import psutil

    scheduler = fleet.start_scheduler()
    wait_for(lambda: " ready." in scheduler.output(), timeout=30, what="the scheduler")
    children = wait_for(
        lambda: psutil.Process(scheduler.popen.pid).children(),
        timeout=30,
        what="the embedded beat to start",
    )
    scheduler.stop(sig=signal.SIGKILL)
    wait_for(
        lambda: not any(child.is_running() and child.status() != "zombie" for child in children),
        timeout=10,
        what="the beat to die with its worker",
    )
