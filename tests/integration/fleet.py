"""Real worker processes for integration tests: machines and FGLab's scheduler.

Also the helpers the tests under ``tests/integration/workers`` share: projects.json
entries for the test program, experiment and machine records, submissions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from config import Settings
from tasks import counts
from tasks.contract import SERVER_QUEUE, WEBHOOK_QUEUE

#: The experiment program the workers launch (its modes: ``--mode write``, ``sleep``...).
PROGRAM = Path(__file__).parent / "programs" / "experiment.py"
#: The options every test project has; tests add their own to it.
SCHEMA: dict[str, dict[str, Any]] = {
    "mode": {"type": "string", "default": "write"},
    "until": {"type": "string", "default": "none"},
}


def settings_env(settings: Settings, **extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FGLAB_")}
    env.update(
        {
            "MONGODB_URI": settings.mongodb_uri or "",
            "FGLAB_MONGODB_DB": settings.mongodb_db,
            "REDIS_URL": settings.redis,
            "FGLAB_LEASE_TTL": str(settings.lease_ttl),
            "FGLAB_HEARTBEAT": str(settings.heartbeat),
            "FGLAB_KILL_GRACE": str(settings.kill_grace),
            "FGLAB_LOG_MAX_BYTES": str(settings.log_max_bytes),
            "FGLAB_VISIBILITY_TIMEOUT": str(settings.visibility_timeout),
            "FGLAB_WEBHOOK_BACKOFF": str(settings.webhook_backoff),
            "FGLAB_DRAIN_AFTER_FAILURES": str(settings.drain_after_failures),
            "FGLAB_DRAIN_WINDOW": str(settings.drain_window),
            "FGLAB_MONGO_RETRY": str(settings.mongo_retry),
            "FGLAB_KEEP_RUNS_ON_STOP": str(settings.keep_runs_on_stop).lower(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Fleet:
    """Starts and stops the processes of a small fleet on this host."""

    settings: Settings
    root: Path
    processes: list[Process] = field(default_factory=list)

    def write_projects(self, machine: str, projects: Mapping[str, Any]) -> Path:
        path = self.root / machine / "projects.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(projects, indent=2))
        tmp.replace(path)
        return path

    def start_machine(
        self,
        machine: str,
        projects: Mapping[str, Any],
        *,
        gpus: int = 0,
        concurrency: int = 8,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        """A machine worker: ``celery -A worker worker -Q machine-<name>`` (with `env`
        added to its environment)."""
        path = self.write_projects(machine, projects)
        env = settings_env(
            self.settings,
            FGLAB_MACHINE=machine,
            FGLAB_PROJECTS_FILE=path,
            FGLAB_GPUS=gpus,
            FGLAB_WORKER_CONCURRENCY=concurrency,
            **(env or {}),
        )
        command = [
            sys.executable, "-m", "celery", "-A", "worker", "worker",
            "-Q", f"machine-{machine}", "-n", f"{machine}@%h", "--loglevel", "INFO",
            "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        return self._start(machine, command, env)

    def start_scheduler(self, beat: bool = True, webhooks: bool = True) -> Process:
        """FGLab's jobs worker (scheduler, sweep), with embedded beat; with `webhooks`, it
        delivers webhooks too (one process less to start than a deployment runs: see
        `start_webhooks`)."""
        queues = f"{SERVER_QUEUE},{WEBHOOK_QUEUE}" if webhooks else SERVER_QUEUE
        command = _jobs_worker(queues, f"fglab-{os.getpid()}", threads=4)
        if beat:
            command += ["-B", "-s", str(self.root / "beat-schedule")]
        return self._start("scheduler", command, settings_env(self.settings))

    def start_webhooks(self, **env: Any) -> Process:
        """FGLab's webhooks worker as the Procfile runs it (`env`: more variables)."""
        command = _jobs_worker(WEBHOOK_QUEUE, f"webhooks-{os.getpid()}", threads=8)
        return self._start("webhooks", command, settings_env(self.settings, **env))

    def start_web(self, port: int, password: str | None = None, **extra: Any) -> Process:
        """FGLab's web server as ``fglab web`` serves it (waitress), on 127.0.0.1:`port`;
        `extra` are more variables for its environment."""
        env = settings_env(self.settings, FGLAB_HOST="127.0.0.1", FGLAB_PORT=port, **extra)
        env.pop("PASSWORD", None)
        if password is not None:
            env["PASSWORD"] = password
        return self._start("web", [sys.executable, "-m", "fglab.cli", "web"], env)

    def start_flower(self, port: int, password: str | None = None) -> Process:
        """Flower as the Procfile starts it (``fglab flower``), on 127.0.0.1:`port`."""
        env = settings_env(self.settings, FGLAB_FLOWER_PORT=port)
        env.pop("PASSWORD", None)
        if password is not None:
            env["PASSWORD"] = password
        return self._start("flower", [sys.executable, "-m", "fglab.cli", "flower"], env)

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> Process:
        log = self.root / f"{name}-{len(self.processes)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.root
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def stop_all(self, timeout: float = 30) -> None:
        """TERM every process at once, then wait for each (KILL after `timeout`): each
        warm shutdown takes a second or two, and they need not take turns."""
        running = [process for process in reversed(self.processes) if process.alive()]
        for process in running:
            process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()

    def print_logs(self) -> None:
        """The tail of each process's log (pytest shows it only when the test failed)."""
        for process in self.processes:
            print(f"===== {process.name} =====\n{process.output()[-6000:]}")


def _jobs_worker(queues: str, name: str, threads: int) -> list[str]:
    """``celery -A fglab.jobs worker`` on `queues`, as the Procfile starts one."""
    return [
        sys.executable, "-m", "celery", "-A", "fglab.jobs", "worker", "-Q", queues,
        "-n", f"{name}@%h", "--pool", "threads", "-c", str(threads),
        "--loglevel", "INFO", "--without-mingle", "--without-gossip",
    ]  # fmt: skip


def new_project(store: Any, schema: Mapping[str, Any] = SCHEMA, prefix: str = "p") -> dict:
    """A project with `schema` and a fresh name, as stored."""
    return store.projects.get(store.projects.create(f"{prefix}-{uuid.uuid4().hex[:6]}", schema))


def implementation(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A projects.json entry running PROGRAM in `tmp_path`, with `changes`."""
    return {
        "cwd": str(tmp_path),
        "command": sys.executable,
        "args": [str(PROGRAM), "--results", str(tmp_path / "results")],
        "options": "double-dash",
        "boolean": "mandatory",
        "capacity": 1,
        "results": str(tmp_path / "results"),
        **changes,
    }


def machine_name() -> str:
    return f"m{uuid.uuid4().hex[:8]}"


def machine(db: Database, name: str) -> dict:
    """The machine record, or {} while there is none."""
    return db["machines"].find_one({"_id": name}) or {}


def live(db: Database, name: str) -> Callable[[], Any]:
    """A condition for `wait_for`: the machine's last heartbeat, once it has one."""
    return lambda: machine(db, name).get("_heartbeat")


def serves(db: Database, name: str, project: Mapping[str, Any]) -> Callable[[], bool]:
    """A condition for `wait_for`: the machine publishes `project` (projects.json was read)."""
    return lambda: str(project["_id"]) in machine(db, name).get("projects", {})


def experiment(db: Database, experiment_id: str) -> dict:
    """The experiment record, or {} while there is none."""
    return db["experiments"].find_one({"_id": ObjectId(experiment_id)}) or {}


def status_of(db: Database, experiment_id: str) -> str | None:
    return experiment(db, experiment_id).get("_status")


def submit(client: Any, project: Mapping[str, Any], queue=True, query="", **options) -> str:
    """Submit one experiment of `project` through the API; its ID.

    The body has every option of the project's schema (FGLab wants them all): its default,
    or the value given here, spelled as a string where the schema says "string" (so paths
    and numbers may be given as they are). `query` adds to the URL's query string.
    """
    schema = project["schema"]
    body = {name: spec["default"] for name, spec in schema.items()}
    for name, value in options.items():
        body[name] = str(value) if schema.get(name, {}).get("type") == "string" else value
    args = "&".join(part for part in ("queue=true" if queue else "", query) if part)
    answer = client.post(
        f"/api/v1/projects/{project['_id']}/experiment{'?' + args if args else ''}", json=body
    )
    assert answer.status_code == 201, answer.json
    return answer.json["_id"]


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def counts_agree(db: Database) -> bool:
    """Every project's counters by status equal a real count of its experiments."""
    kept = {project: by for project, by in counts.read(db).items() if by}
    return kept == counts.recount(db, "experiments")


def ledger_empty(ledger: Any, name: str, gpus: int = 0) -> bool:
    """No lease of the machine is left, and nothing of its CPU or GPUs is taken."""
    usage = ledger.usage(name, gpus)
    return usage.cpu_used == 0 and not usage.leases and not any(usage.gpu_used)
