"""One typed settings object for the server, the workers and the tools.

Only entry points call :func:`load_settings` (which reads `.env`); everything below
them receives a :class:`Settings`. No other module reads a setting from ``os.environ``
(child processes inherit the environment as it is, with `Settings.to_env` on top).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def _text(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise SettingsError(f"{name} is empty; unset it or give a value")
    return value


def _int_in(low: int, high: int | None = None) -> Callable[[str, str], int]:
    bounds = f"{low}..{high}" if high is not None else f">= {low}"

    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(
                f"{name}={raw!r} is not a whole number; use a number {bounds}"
            ) from None
        if value < low or (high is not None and value > high):
            raise SettingsError(f"{name}={raw!r} is out of range; use a number {bounds}")
        return value

    return parse


def _any_text(name: str, raw: str) -> str:
    return raw.strip()


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise SettingsError(f"{name}={raw!r} must be greater than 0")
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _switch(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise SettingsError(f"{name}={raw!r} is not a switch; use 1 or 0")
    return value in _TRUE


def _url(*schemes: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        parsed = urlparse(value)
        if parsed.scheme not in schemes or not (parsed.netloc or parsed.path):
            raise SettingsError(f"{name}={raw!r} is not a URL starting with {' or '.join(schemes)}")
        return value

    return parse


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a yes/no value; use true or false")


#: A rate as Flask-Limiter reads one: "10 per minute", "5/second; 100/day".
_RATE = re.compile(r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*$", re.IGNORECASE)


def _rate(name: str, raw: str) -> str:
    parts = _text(name, raw).split(";")
    if not all(_RATE.match(part) for part in parts):
        raise SettingsError(
            f"{name} is {raw!r}; use a rate such as '10 per minute' or '5/second; 100/day'"
        )
    return raw.strip()


def _names(name: str, raw: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if not names:
        raise SettingsError(f"{name} is empty; name hosts, comma-separated (lab.example.org)")
    return names


def _path(name: str, raw: str) -> Path:
    return Path(_text(name, raw)).expanduser()


@dataclass(frozen=True)
class Settings:
    """Every setting of FGLab fleet, with the environment variable that sets it."""

    #: MongoDB connection string; None means "start the embedded wire server" (`fglab up`).
    mongodb_uri: str | None = None
    #: Database name; by default the URI's own database, else "fglab".
    mongodb_db: str = "fglab"
    #: Redis: Celery broker, live logs and the capacity ledger.
    redis_url: str | None = None
    #: Where people and webhooks reach FGLab.
    fglab_url: str = "http://localhost:5080"
    fglab_host: str = "127.0.0.1"
    fglab_port: int = 5080
    #: Flower's port under `fglab up`.
    flower_port: int = 5555
    #: Where people reach Flower; the machine pages link to it (`fglab up` sets it).
    flower_url: str | None = None
    #: With a password, every page and API call needs it.
    password: str | None = None
    #: `fglab web` listens beyond loopback without a password only when this is set.
    allow_open: bool = False
    #: Host names FGLab answers to (the Host header; against DNS rebinding); none: any.
    trusted_hosts: tuple[str, ...] = ()
    #: This machine's name; its queue is ``machine-<name>``.
    machine_name: str = ""
    #: Where embedded services, uploads in transit and default results live.
    data_dir: Path = Path("data")
    #: The machine's projects.json.
    projects_file: Path = Path("projects.json")
    #: GPU count to announce instead of asking NVML (machines or tests without NVML).
    gpu_count: int | None = None
    #: GPUs the fleet leaves alone: NVML indices or UUIDs, comma-separated.
    gpus_exclude: str | None = None
    #: The worker's own CUDA_VISIBLE_DEVICES: when set, only those GPUs take work.
    cuda_visible_devices: str | None = None
    #: Seconds a reservation lives without a heartbeat; a dead worker's leases expire after it.
    lease_ttl: float = 30.0
    #: Seconds between heartbeats of a worker (machine record and leases).
    heartbeat: float = 5.0
    #: Seconds between TERM and KILL when an experiment is stopped.
    kill_grace: float = 10.0
    #: Where each run's supervisor keeps its files (output, exit status, heartbeat).
    runs_dir: Path = Path("data/runs")
    #: A worker that stops leaves its runs to their supervisors, for the next worker to
    #: re-adopt (deploys); false makes a warm shutdown wait until its runs end.
    keep_runs_on_stop: bool = True
    #: Bytes of stdout+stderr kept with an experiment (the tail survives).
    log_max_bytes: int = 8 * 1024 * 1024
    #: Largest result file uploaded to GridFS, in bytes.
    max_file_bytes: int = 1024 * 1024 * 1024
    #: Largest request body FGLab accepts, in bytes.
    max_request_bytes: int = 256 * 1024 * 1024
    #: Celery pool size of a machine worker: the most experiments it may run at once.
    worker_concurrency: int = 16
    #: Broker visibility timeout in seconds (kept long; the ledger, not acks, guards launches).
    visibility_timeout: float = 3600.0
    #: Seconds a worker keeps retrying a MongoDB write (results, final status) before giving up.
    mongo_retry: float = 600.0
    #: A machine whose experiments fail to start this many times within `drain_window`
    #: seconds drains itself.
    drain_after_failures: int = 3
    drain_window: float = 600.0
    #: GPU memory (bytes) used by processes outside the fleet above which a GPU counts busy.
    gpu_busy_bytes: int = 512 * 1024 * 1024
    #: First delay in seconds between webhook delivery attempts (doubles each time).
    webhook_backoff: float = 2.0
    #: Seconds one delivery attempt may take in all (connect, send, answer).
    webhook_timeout: float = 10.0
    #: Most hooks one experiment may have.
    webhook_limit: int = 20
    #: Whether hooks may call private, loopback and link-local addresses (the original's
    #: behaviour); false refuses them, so hooks cannot probe FGLab's own network.
    webhook_allow_private: bool = True
    #: The key that signs session cookies; none: a random one kept in `data_dir/secret_key`.
    secret_key: str | None = None
    #: Wrong passwords or tokens one client address may send before it must wait.
    auth_rate_limit: str = "10 per minute"
    #: Days a login lasts (the browser must log in again after).
    session_days: float = 7.0
    #: Celery task events from the start (Flower turns them on anyway when it runs).
    task_events: bool = False
    #: Live log streams (Server-Sent Events) one client address may hold open at once.
    streams_per_client: int = 20
    #: Live log streams open at once in all; each holds one of waitress's threads.
    streams_max: int = 100
    #: Seconds a live log stream lasts before the browser is told to reconnect.
    stream_lifetime: int = 300

    def with_changes(self, **changes: Any) -> Settings:
        """Return a copy with some settings changed (tests and `fglab up`)."""
        return replace(self, **changes)

    def to_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (e.g. ``os.environ``) with every setting spelled as its variable.

        For starting child processes that must see exactly these settings; a setting
        that is None removes its variable.
        """
        env = dict(base or {})
        for variable, (field_name, _) in _VARIABLES.items():
            value = getattr(self, field_name)
            if value is None or value == ():
                env.pop(variable, None)
            elif isinstance(value, tuple):
                env[variable] = ",".join(value)
            else:
                env[variable] = str(value)
        return env

    @property
    def redis(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read settings from a mapping of environment variables.

        Raises :class:`SettingsError` naming the first variable with a bad value.
        """
        values: dict[str, Any] = {}
        for env_name, (field_name, parse) in _VARIABLES.items():
            raw = environ.get(env_name)
            if raw is None or (raw.strip() == "" and env_name not in _EMPTY_IS_A_VALUE):
                continue
            values[field_name] = parse(env_name, raw)
        uri = values.get("mongodb_uri")
        if "mongodb_db" not in values and uri:
            database = urlparse(uri).path.lstrip("/")
            if database:
                values["mongodb_db"] = database
        if not values.get("machine_name"):
            values["machine_name"] = socket.gethostname().split(".")[0] or "localhost"
        if "fglab_url" not in values and "fglab_port" in values:
            values["fglab_url"] = f"http://localhost:{values['fglab_port']}"
        return cls(**values)


_VARIABLES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "MONGODB_URI": ("mongodb_uri", _url("mongodb", "mongodb+srv")),
    "FGLAB_MONGODB_DB": ("mongodb_db", _text),
    "REDIS_URL": ("redis_url", _url("redis", "rediss", "unix")),
    "FGLAB_URL": ("fglab_url", _url("http", "https")),
    "FGLAB_HOST": ("fglab_host", _text),
    "FGLAB_PORT": ("fglab_port", _int_in(1, 65535)),
    "FGLAB_FLOWER_PORT": ("flower_port", _int_in(1, 65535)),
    "FGLAB_FLOWER_URL": ("flower_url", _url("http", "https")),
    "PASSWORD": ("password", _text),
    "FGLAB_ALLOW_OPEN": ("allow_open", _bool),
    "FGLAB_TRUSTED_HOSTS": ("trusted_hosts", _names),
    "FGLAB_MACHINE": ("machine_name", _text),
    "FGLAB_DATA_DIR": ("data_dir", _path),
    "FGLAB_PROJECTS_FILE": ("projects_file", _path),
    "FGLAB_GPUS": ("gpu_count", _int_in(0, 1024)),
    "FGLAB_GPUS_EXCLUDE": ("gpus_exclude", _text),
    "CUDA_VISIBLE_DEVICES": ("cuda_visible_devices", _any_text),
    "FGLAB_LEASE_TTL": ("lease_ttl", _positive_float),
    "FGLAB_HEARTBEAT": ("heartbeat", _positive_float),
    "FGLAB_KILL_GRACE": ("kill_grace", _positive_float),
    "FGLAB_RUNS_DIR": ("runs_dir", _path),
    "FGLAB_KEEP_RUNS_ON_STOP": ("keep_runs_on_stop", _bool),
    "FGLAB_LOG_MAX_BYTES": ("log_max_bytes", _int_in(1024)),
    "FGLAB_MAX_FILE_BYTES": ("max_file_bytes", _int_in(1)),
    "FGLAB_MAX_REQUEST_BYTES": ("max_request_bytes", _int_in(1024)),
    "FGLAB_WORKER_CONCURRENCY": ("worker_concurrency", _int_in(1, 4096)),
    "FGLAB_VISIBILITY_TIMEOUT": ("visibility_timeout", _positive_float),
    "FGLAB_MONGO_RETRY": ("mongo_retry", _positive_float),
    "FGLAB_DRAIN_AFTER_FAILURES": ("drain_after_failures", _int_in(1, 1000)),
    "FGLAB_DRAIN_WINDOW": ("drain_window", _positive_float),
    "FGLAB_GPU_BUSY_BYTES": ("gpu_busy_bytes", _int_in(0)),
    "FGLAB_WEBHOOK_BACKOFF": ("webhook_backoff", _positive_float),
    "FGLAB_WEBHOOK_TIMEOUT": ("webhook_timeout", _positive_float),
    "FGLAB_WEBHOOK_LIMIT": ("webhook_limit", _int_in(1, 10_000)),
    "FGLAB_WEBHOOK_ALLOW_PRIVATE": ("webhook_allow_private", _bool),
    "FGLAB_SECRET_KEY": ("secret_key", _text),
    "FGLAB_AUTH_RATE_LIMIT": ("auth_rate_limit", _rate),
    "FGLAB_SESSION_DAYS": ("session_days", _positive_float),
    "FGLAB_TASK_EVENTS": ("task_events", _switch),
    "FGLAB_STREAMS_PER_CLIENT": ("streams_per_client", _int_in(1)),
    "FGLAB_STREAMS_MAX": ("streams_max", _int_in(1, 1000)),
    "FGLAB_STREAM_LIFETIME": ("stream_lifetime", _int_in(1)),
}


#: Variables whose empty value says something: CUDA_VISIBLE_DEVICES="" hides every GPU.
_EMPTY_IS_A_VALUE = frozenset({"CUDA_VISIBLE_DEVICES"})


def load_settings(env_file: str | os.PathLike[str] | None = ".env") -> Settings:
    """Load `.env` (real environment variables win) and read the settings.

    Call only from entry points (CLI, Celery app modules).
    """
    if env_file is not None and Path(env_file).is_file():
        from dotenv import load_dotenv

        _check_env_file(Path(env_file))
        load_dotenv(env_file, override=False)
    return Settings.from_env(os.environ)


def _check_env_file(path: Path) -> None:
    """Raise :class:`SettingsError` for the first line of `path` python-dotenv cannot parse.

    python-dotenv itself only logs such a line and skips it, so a setting the user wrote
    would be silently missing.
    """
    from dotenv.parser import parse_stream

    with path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.error:
                line = binding.original.string.strip()
                raise SettingsError(
                    f"{path} line {binding.original.line}: cannot read {line!r}; "
                    "write NAME=value (quote values with spaces)"
                )
