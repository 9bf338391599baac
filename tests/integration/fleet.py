"""Real worker processes for integration tests: machines and FGLab's scheduler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from config import Settings

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


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
        self, machine: str, projects: Mapping[str, Any], *, gpus: int = 0, concurrency: int = 8
    ) -> Process:
        """A machine worker: ``celery -A worker worker -Q machine-<name>``."""
        path = self.write_projects(machine, projects)
        env = settings_env(
            self.settings,
            FGLAB_MACHINE=machine,
            FGLAB_PROJECTS_FILE=path,
            FGLAB_GPUS=gpus,
            FGLAB_WORKER_CONCURRENCY=concurrency,
        )
        command = [
            sys.executable, "-m", "celery", "-A", "worker", "worker",
            "-Q", f"machine-{machine}", "-n", f"{machine}@%h", "--loglevel", "INFO",
            "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        return self._start(machine, command, env)

    def start_scheduler(self, beat: bool = True) -> Process:
        """FGLab's jobs worker (scheduler, sweep, webhooks), with embedded beat."""
        command = [
            sys.executable, "-m", "celery", "-A", "fglab.jobs", "worker", "-Q", "fglab",
            "-n", f"fglab-{os.getpid()}@%h", "--pool", "threads", "-c", "4",
            "--loglevel", "INFO", "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        if beat:
            command += ["-B", "-s", str(self.root / "beat-schedule")]
        return self._start("scheduler", command, settings_env(self.settings))

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

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
