"""`fglab up` as a new user runs it: one command, the demo experiment done within a minute.

Each test starts ``python -m fglab.cli up`` with no MONGODB_URI (so the embedded SQLite
wire server runs) on the suite's Redis, then talks to it over HTTP only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from config import Settings
from fglab.up import child_environment
from tests.waiting import wait_for

DEADLINE = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Up:
    """One running `fglab up` and what a test needs to talk to it."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    data_dir: Path
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes] | None:
        """(status, body) of GET `path`, or None while nothing answers."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def json(self, path: str) -> Any:
        answer = self.get(path)
        return json.loads(answer[1]) if answer and answer[0] == 200 else None

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@pytest.fixture
def start_up(redis_url: str, tmp_path: Path) -> Iterator[Any]:
    """Starts `fglab up` in `tmp_path`; `env` adds variables (None removes one)."""
    started: list[Up] = []

    def start(
        data_dir: Path, machine: str, *args: str, env: dict[str, str | None] | None = None
    ) -> Up:
        port = free_port()
        variables: dict[str, str | None] = {
            **os.environ,  # the autouse fixture has removed the developer's FGLab settings
            "FGLAB_PORT": str(port),
            "FGLAB_DATA_DIR": str(data_dir),
            "FGLAB_MACHINE": machine,
            "FGLAB_FLOWER_PORT": str(free_port()),
            "REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        if variables.get("FGLAB_PORT"):
            port = int(variables["FGLAB_PORT"] or port)
        out = tmp_path / f"up-{len(started)}.out"
        err = tmp_path / f"up-{len(started)}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            # cwd is tmp_path: no developer's .env or ./projects.json is picked up.
            process = subprocess.Popen(
                [sys.executable, "-m", "fglab.cli", "up", *args],
                env={k: v for k, v in variables.items() if v is not None},
                cwd=tmp_path,
                stdout=stdout,
                stderr=stderr,
            )
        up = Up(process, f"http://127.0.0.1:{port}", port, data_dir, out, err)
        started.append(up)
        return up

    yield start
    for up in started:
        if up.process.poll() is None:
            descendants = up.descendants()
            up.process.kill()
            up.process.wait()
            for child in descendants:
                child.kill()
        print(f"===== {up.stdout_path.name} =====\n{up.stdout()[-8000:]}")
        print(f"===== {up.stderr_path.name} =====\n{up.stderr()[-8000:]}")


def processes_of(data_dir: Path) -> list[psutil.Process]:
    """Every live process started for `fglab up` on `data_dir` (they carry FGLAB_DATA_DIR)."""
    names = {str(data_dir), str(data_dir.resolve())}
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("FGLAB_DATA_DIR") in names and alive(process):
                found.append(process)
        except psutil.Error:  # gone, or not ours to read
            continue
    return found


def demo_project(up: Up) -> dict[str, Any] | None:
    projects = up.json("/api/v1/projects") or []
    return next((p for p in projects if p["name"] == "demo"), None)


def finished_demo(up: Up, project_id: str) -> dict[str, Any] | None:
    experiments = up.json(f"/api/v1/projects/{project_id}/experiments") or []
    done = [e for e in experiments if e["_status"] == "success"]
    if not done:
        return None
    # The results folder is uploaded before the status changes; read the whole document.
    return up.json(f"/api/v1/experiments/{done[0]['_id']}")


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_child_environment_carries_every_resolved_setting():
    settings = Settings(
        mongodb_uri="mongodb://127.0.0.1:27018/",
        mongodb_db="lab",
        redis_url="redis://127.0.0.1:6380/3",
        fglab_url="http://lab.example:8080",
        fglab_host="0.0.0.0",
        fglab_port=8080,
        password="secret",
        machine_name="box-1",
        data_dir=Path("/srv/fglab"),
        projects_file=Path("/srv/fglab/projects.json"),
        gpu_count=2,
        lease_ttl=12.5,
        heartbeat=2.0,
        kill_grace=3.0,
        log_max_bytes=4096,
        max_file_bytes=1000,
        max_request_bytes=2048,
        worker_concurrency=4,
        visibility_timeout=99.0,
    )
    env = child_environment(settings, {"FGLAB_OTHER": "kept", "GPU": "x", "FGLAB_GPUS": "7"})
    assert Settings.from_env(env) == settings
    assert env["FGLAB_OTHER"] == "kept"
    assert "PASSWORD" not in child_environment(Settings(), {"PASSWORD": "old"})


def test_up_runs_the_demo_shows_a_short_console_and_stops_the_whole_tree(start_up, tmp_path):
    data_dir = tmp_path / "data"
    machine = f"up{uuid.uuid4().hex[:8]}"
    up = start_up(data_dir, machine)

    project = wait_for(
        lambda: demo_project(up), timeout=DEADLINE, what="the demo project to be listed"
    )
    assert set(project["schema"]) == {"learningRate", "epochs", "optimiser", "seed"}
    doc = wait_for(
        lambda: finished_demo(up, project["_id"]),
        timeout=DEADLINE,
        what="the demo experiment to succeed",
    )
    assert set(doc["_scores"]) == {"trainLoss", "validationLoss"}
    assert doc["_scores"]["validationLoss"] < 0.5
    chart = doc["_charts"]
    assert chart["columnNames"] == ["train", "validation", "epoch"]
    assert [len(column) for column in chart["data"]["columns"]] == [20, 20, 20]
    assert doc["_notes"].startswith("Demo run")
    assert doc["model"]["target"] == "3x - 1"
    png = next(f for f in doc["_files"] if f["filename"] == "loss.png")
    status, image = up.get(f"/api/v1/files/{png['_id']}")
    assert status == 200
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert up.get("/api/docs")[0] == 200
    projects = json.loads((data_dir / "projects.json").read_text())
    assert projects[project["_id"]]["results"] == str(data_dir.resolve() / "results")

    # The console: the banner, then one line as the experiment starts and one as it ends.
    experiment = doc["_id"]
    wait_for(
        lambda: f"success  {experiment}  project demo  on {machine}  after " in up.stdout(),
        timeout=10,
        what="the experiment's end line on the console",
    )
    console = up.stdout()
    home = f"http://localhost:{up.port}"
    for line in (
        "FGLab is up.",
        f"  FGLab     {home}",
        f"  API docs  {home}/api/docs",
        "  Flower    http://127.0.0.1:",
        f"  demo      {home}/projects/{project['_id']}",
        f"            first experiment {home}/experiments/{experiment}",
        f"  logs      {data_dir.resolve() / 'logs'}/<process>.log",
        "Stop with Ctrl+C.",
    ):
        assert f"\n{line}" in console
    started = console.index(f"started  {experiment}  project demo  on {machine}\n")
    assert console.index("FGLab is up.") < started < console.index(f"success  {experiment}")
    assert "celery@" not in console
    assert "-------------- " not in console
    assert "[queues]" not in console
    assert "sweep" not in console.lower()
    assert "superuser" not in console
    assert up.stderr() == ""
    # Each process's whole output is in its own file; the sweep's lines are DEBUG ones.
    logs = data_dir / "logs"
    assert {p.name for p in logs.iterdir()} >= {
        "mongodb.log", "worker.log", "scheduler.log", "webhooks.log", "flower.log", "web.log"
    }  # fmt: skip
    for name in ("worker", "scheduler", "webhooks"):
        text = (logs / f"{name}.log").read_text()
        assert " -------------- [queues]" in text and "v5." in text  # Celery's banner
    assert "fglab.sweep[" not in (logs / "scheduler.log").read_text()
    assert "Serving on" in (logs / "web.log").read_text()

    tree = up.descendants()
    names = " ".join(" ".join(p.cmdline()) for p in tree)
    for part in ("fglab.embedded.mongo", "-A worker worker", "-A fglab.jobs", "fglab.cli web"):
        assert part in names
    assert {p.pid for p in tree} <= {p.pid for p in processes_of(data_dir)}
    assert up.terminate() == 0
    left = wait_for(
        lambda: not [p for p in tree if alive(p)] or None,
        timeout=5,
        what="every child of fglab up to exit",
    )
    assert left
    assert "stopping everything" not in up.stdout().replace("received; stopping everything", "")


def test_a_restart_keeps_projects_and_experiments_and_adds_no_second_demo(start_up, tmp_path):
    data_dir = tmp_path / "data"
    machine = f"up{uuid.uuid4().hex[:8]}"
    first = start_up(data_dir, machine)
    project = wait_for(
        lambda: demo_project(first), timeout=DEADLINE, what="the demo project to be listed"
    )
    done = wait_for(
        lambda: finished_demo(first, project["_id"]),
        timeout=DEADLINE,
        what="the demo experiment to succeed",
    )
    assert first.terminate() == 0

    second = start_up(data_dir, machine)
    projects = wait_for(
        lambda: second.json("/api/v1/projects"),
        timeout=DEADLINE,
        what="the restarted web server to list the projects",
    )
    assert [(p["_id"], p["name"]) for p in projects] == [(project["_id"], "demo")]
    experiments = second.json(f"/api/v1/projects/{project['_id']}/experiments")
    assert [(e["_id"], e["_status"]) for e in experiments] == [(done["_id"], "success")]
    png = next(f for f in done["_files"] if f["filename"] == "loss.png")
    assert second.get(f"/api/v1/files/{png['_id']}")[1].startswith(b"\x89PNG")
    assert list(json.loads((data_dir / "projects.json").read_text())) == [project["_id"]]
    assert second.terminate() == 0


def test_a_child_that_dies_stops_everything_with_an_error(start_up, tmp_path):
    up = start_up(tmp_path / "data", f"up{uuid.uuid4().hex[:8]}", "--no-demo")
    assert wait_for(
        lambda: up.json("/api/v1/projects") == [],
        timeout=DEADLINE,
        what="the web server to answer with no projects",
    )
    tree = up.descendants()
    worker = next(p for p in tree if "-A worker worker" in " ".join(p.cmdline()))
    worker.kill()
    assert up.process.wait(timeout=60) == 1
    assert wait_for(
        lambda: not [p for p in tree if alive(p)],
        timeout=5,
        what="every child of fglab up to exit",
    )
    console = up.stdout()
    log = up.data_dir.resolve() / "logs" / "worker.log"
    assert (
        f"worker exited unexpectedly with code -9; stopping everything. Its last lines "
        f"(whole log: {log}):" in console
    )
    last = log.read_text().splitlines()[-1]
    assert f"\nworker    | {last}\n" in console


@pytest.mark.parametrize("installed", [True, False], ids=["redis-server", "fakeredis"])
def test_without_a_local_redis_one_is_started_and_stopped(installed, monkeypatch, tmp_path):
    from redis import Redis

    from fglab.embedded import redis as embedded

    monkeypatch.setattr(embedded, "LOCAL_URL", f"redis://127.0.0.1:{free_port()}/0")
    if not installed:
        monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    else:
        # The suite needs Redis anyway (.ci/run starts redis-server), so it is installed.
        assert embedded.shutil.which("redis-server"), "redis-server is not on PATH"
    server = embedded.start(tmp_path)
    try:
        assert server.kind == ("redis-server" if installed else "fakeredis")
        client = Redis.from_url(server.url)
        assert client.set("k", "v") and client.get("k") == b"v"
        client.close()
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode is not None
    assert not embedded.answers(server.url, timeout=0.2)


def test_verbose_streams_every_child_by_name(start_up, tmp_path):
    up = start_up(tmp_path / "data", f"up{uuid.uuid4().hex[:8]}", "--no-demo", "--verbose")
    assert wait_for(
        lambda: up.json("/api/v1/projects") == [],
        timeout=DEADLINE,
        what="the web server to answer with no projects",
    )
    wait_for(
        lambda: up.stdout().count("[queues]") == 3 and "Serving on" in up.stdout(),
        timeout=10,
        what="the workers' banners and the web server's line on the console",
    )
    lines = up.stdout().splitlines()
    assert any(line.startswith("worker    | ") and "[queues]" in line for line in lines)
    assert any(line.startswith("scheduler | ") and "[queues]" in line for line in lines)
    assert any(line.startswith("webhooks  | ") and "[queues]" in line for line in lines)
    assert any(line.startswith("web       | ") and "Serving on" in line for line in lines)
    assert up.terminate() == 0


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("fglab-port", "; stop what uses that port, or set FGLAB_PORT to a free one"),
        ("flower-port", "; stop what uses that port, or set FGLAB_FLOWER_PORT"),
        ("redis", "fglab: no Redis answers at REDIS_URL (redis://127.0.0.1:"),
        ("env-line", "fglab: .env line 2: cannot read 'this is not a setting'; write NAME=value"),
        ("env-value", "fglab: FGLAB_PORT='abc' is not a whole number; use a number 1..65535"),
    ],
)
def test_a_start_up_problem_is_one_line_and_leaves_nothing_running(
    case, message, start_up, tmp_path, taken_port
):
    env: dict[str, str | None] = {}
    if case == "fglab-port":
        env["FGLAB_PORT"] = str(taken_port)
    elif case == "flower-port":
        env["FGLAB_FLOWER_PORT"] = str(taken_port)
    elif case == "redis":
        env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    elif case == "env-line":
        (tmp_path / ".env").write_text("FGLAB_MACHINE=box\nthis is not a setting\n")
    else:
        (tmp_path / ".env").write_text("FGLAB_PORT=abc\n")
        env["FGLAB_PORT"] = None  # the environment would win over .env
    data_dir = tmp_path / "data"
    up = start_up(data_dir, f"up{uuid.uuid4().hex[:8]}", env=env)

    assert up.process.wait(timeout=30) != 0
    said = [line for line in (up.stdout() + up.stderr()).splitlines() if line.strip()]
    assert len(said) == 1, said
    assert message in said[0]
    assert said[0].startswith("fglab: ")
    assert processes_of(data_dir) == []
