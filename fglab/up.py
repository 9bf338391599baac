"""`fglab up`: every process of FGLab fleet on this host, as one process tree.

The tree: an embedded MongoDB wire server (without MONGODB_URI), a Redis (without
REDIS_URL, see :mod:`fglab.embedded.redis`), this host's machine worker, FGLab's jobs
worker with beat (scheduler, sweep), its webhooks worker, Flower when installed, and the
web server (``fglab web``). Every child gets the resolved settings as environment variables. One
SIGINT or SIGTERM stops them all (TERM, then KILL after a grace); a child that dies on its
own stops them all too (its last lines shown), and `run` returns 1.

The console stays short (`mlflow ui` is the model): a banner once FGLab (and Flower)
answer, a line as each experiment starts or ends (:mod:`fglab.activity`), and warnings
and errors. Each child's whole output goes to ``<data>/logs/<name>.log``
(:mod:`fglab.childlog`). What would fail halfway (a port taken, REDIS_URL silent) is
checked before anything starts.

With the demo on, a first start creates the project "demo", adds its implementation
(:mod:`fglab.demo.train`) to this machine's projects.json and queues one experiment, so a
new user sees a finished experiment within a minute.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from bson import ObjectId
from pymongo.errors import PyMongoError

from config import Settings
from fglab.activity import Activity
from fglab.childlog import ChildOutput, tail
from fglab.childlog import logger as children_logger
from fglab.embedded import mongo as embedded_mongo
from fglab.embedded import redis as embedded_redis
from fglab.monitor import FLOWER_USER, FlowerConfigError, flower_command, flower_environment
from tasks.contract import WEBHOOK_QUEUE
from tasks.lifetime import die_with_parent

logger = logging.getLogger(__name__)

#: Seconds a child gets between TERM and KILL.
GRACE = 10.0
#: Seconds between two looks at the children.
POLL = 0.2
#: Seconds between two looks for experiments that started or ended.
LOOK = 1.0
#: Flower listens on this host only.
FLOWER_HOST = "127.0.0.1"

#: Experiments the embedded MongoDB serves well; `fglab up` warns past this.
EMBEDDED_COMFORT = 5_000

DEMO_NAME = "demo"
DEMO_DIR = Path(__file__).parent / "demo"


def child_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with every setting `fglab up` resolved spelled as its variable."""
    env = settings.to_env(base)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class StartError(RuntimeError):
    """`fglab up` cannot start; the message says what to do. Nothing was started."""


def run(settings: Settings, demo: bool = True, verbose: bool = False) -> int:
    """Run FGLab fleet on this host until SIGINT/SIGTERM (returns 0) or a child dies (1).

    Raises :class:`StartError`, before anything starts, when a port is taken or the Redis
    at REDIS_URL does not answer. Each child's output goes to ``<data>/logs/<name>.log``;
    the console gets the banner, experiments' starts and ends, and warnings and errors
    (`verbose`: every child's line too).
    """
    data_dir = settings.data_dir.expanduser().resolve()
    flower = importlib.util.find_spec("flower") is not None
    check_can_start(settings, flower)
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signals = _Signals()
    tree = _Tree(signals, logs, verbose)
    try:
        with signals:
            try:
                return _run(settings, data_dir, demo, flower, tree, signals)
            except (
                RuntimeError,  # embedded MongoDB or Redis did not start
                PyMongoError,
                embedded_redis.RedisStartError,
                OSError,
            ) as e:
                logger.error("%s; stopping (logs in %s)", e, logs)
                return 1
            finally:
                tree.stop()
    finally:
        logger.info("fglab up: stopped")


def check_can_start(settings: Settings, flower: bool) -> None:
    """Raise :class:`StartError` for what would stop `fglab up` halfway through starting."""
    host, port = settings.fglab_host, settings.fglab_port
    problem = _bind_problem(host, port)
    if problem is not None:
        raise StartError(
            f"cannot serve FGLab on {host}:{port} ({problem}); "
            "stop what uses that port, or set FGLAB_PORT to a free one"
        )
    if flower:
        try:
            flower_environment(settings, {})
        except FlowerConfigError as e:
            raise StartError(str(e)) from None
        problem = _bind_problem(FLOWER_HOST, settings.flower_port)
        if problem is not None:
            raise StartError(
                f"cannot serve Flower on {FLOWER_HOST}:{settings.flower_port} ({problem}); "
                "stop what uses that port, or set FGLAB_FLOWER_PORT (or --flower-port) "
                "to a free one"
            )
    if settings.redis_url and not embedded_redis.answers(settings.redis_url, timeout=2.0):
        raise StartError(
            f"no Redis answers at REDIS_URL ({_without_password(settings.redis_url)}); "
            "start that Redis, or unset REDIS_URL and fglab up starts one"
        )


def _run(
    settings: Settings,
    data_dir: Path,
    demo: bool,
    flower: bool,
    tree: _Tree,
    signals: _Signals,
) -> int:
    started_at = datetime.now(UTC)
    mongo_note = "from MONGODB_URI"
    if not settings.mongodb_uri:
        path = data_dir / "mongo.sqlite3"
        logger.warning(
            "MongoDB: MONGODB_URI is not set, so FGLab starts its embedded MongoDB wire server "
            "(a Python server over SQLite, at %s). It is for trying FGLab out and small "
            "single-host use: one process, slower than MongoDB, and replies over 48 MB fail. "
            "For a fleet, run a real MongoDB and set MONGODB_URI.",
            path,
        )
        server = embedded_mongo.start("sqlite", path, log=tree.log_path("mongodb"))
        tree.adopt("mongodb", server.process, server.stop)
        settings = settings.with_changes(mongodb_uri=server.uri)
        warn_if_embedded_is_outgrown(settings)
        mongo_note = f"embedded, {path}"
    if signals.received:
        return 0
    redis_note = "from REDIS_URL"  # never the URL itself: it may hold a password
    if not settings.redis_url:
        redis = embedded_redis.start(data_dir, log=tree.log_path("redis"))
        if redis.process is not None:
            tree.adopt("redis", redis.process, redis.stop)
        settings = settings.with_changes(redis_url=redis.url)
        redis_note = f"{redis.kind} at {redis.url}"
    if signals.received:
        return 0
    settings = settings.with_changes(
        data_dir=data_dir, projects_file=projects_file(settings, data_dir)
    )
    if settings.projects_file == data_dir / "projects.json" and not settings.projects_file.exists():
        # Ours to make: an empty one, so the worker does not warn about a missing file.
        settings.projects_file.write_text("{}\n")
    shown = install_demo(settings) if demo else None
    env = child_environment(settings, os.environ)
    machine = settings.machine_name
    celery = [sys.executable, "-m", "celery"]
    quiet = ["--without-mingle", "--without-gossip"]
    tree.spawn(
        "worker",
        [*celery, "-A", "worker", "worker", "--loglevel", "INFO", "-n", f"{machine}@%h", *quiet],
        env,
    )
    scheduler = [
        *celery, "-A", "fglab.jobs", "worker", "-Q", "fglab", "--pool", "threads", "-c", "4",
        "-B", "-s", str(data_dir / "celerybeat-schedule"), "--loglevel", "INFO",
        "-n", f"fglab-{machine}@%h", *quiet,
    ]  # fmt: skip
    tree.spawn("scheduler", scheduler, env)
    webhooks = [
        *celery, "-A", "fglab.jobs", "worker", "-Q", WEBHOOK_QUEUE, "--pool", "threads",
        "-c", "8", "--loglevel", "INFO", "-n", f"webhooks-{machine}@%h", *quiet,
    ]  # fmt: skip
    tree.spawn("webhooks", webhooks, env)
    flower_url = None
    if flower:
        flower_env = flower_environment(settings, env)
        tree.spawn("flower", flower_command(settings, FLOWER_HOST), flower_env)
        flower_url = f"http://{FLOWER_HOST}:{settings.flower_port}"
    web_env = dict(env)
    if flower_url and not settings.flower_url:
        web_env["FGLAB_FLOWER_URL"] = flower_url  # the machine pages link to it
    tree.spawn("web", [sys.executable, "-m", "fglab.cli", "web"], web_env)

    from fglab.store import Store
    from tasks.database import mongo_client

    client = mongo_client(settings)
    try:
        activity = Activity(Store(client[settings.mongodb_db]), since=started_at)
        ready = False
        next_look = 0.0
        while not signals.received:
            dead = tree.dead()
            if dead is not None:
                if signals.received:  # it got the same Ctrl-C as we did
                    break
                tree.report_death(dead)
                return 1
            if (
                not ready
                and _accepts(settings.fglab_host, settings.fglab_port)
                and (flower_url is None or _accepts(FLOWER_HOST, settings.flower_port))
            ):
                ready = True
                lines = banner(
                    settings.fglab_url.rstrip("/"), flower_url, data_dir, tree.logs,
                    shown, mongo_note, redis_note, machine, bool(settings.password),
                )  # fmt: skip
                logger.info("\n".join(lines), extra={"bare": True})
            if ready and time.monotonic() >= next_look:
                next_look = time.monotonic() + LOOK
                _print_moves(activity)
            time.sleep(POLL)
    finally:
        client.close()
    return 0


def banner(
    url: str,
    flower_url: str | None,
    data_dir: Path,
    logs: Path,
    demo: DemoShown | None,
    mongo_note: str,
    redis_note: str,
    machine: str,
    flower_protected: bool = False,
) -> list[str]:
    """The lines `fglab up` prints once everything answers."""
    flower_login = f" (user {FLOWER_USER}, FGLab's PASSWORD)" if flower_protected else ""
    lines = [
        "",
        "FGLab is up.",
        f"  FGLab     {url}",
        f"  API docs  {url}/api/docs",
        f"  Flower    {flower_url or 'not running (pip install flower)'}"
        + (flower_login if flower_url else ""),
    ]
    if demo is not None:
        lines.append(f"  demo      {url}/projects/{demo.project_id}")
        if demo.experiment_id is not None:
            lines.append(f"            first experiment {url}/experiments/{demo.experiment_id}")
    lines += [
        f"  data      {data_dir}",
        f"            MongoDB {mongo_note}; Redis {redis_note}; machine {machine}",
        f"  logs      {logs}/<process>.log (fglab up --verbose shows them here too)",
        "Stop with Ctrl+C. Experiments that start or end show below.",
        "",
    ]
    return lines


def _print_moves(activity: Activity) -> None:
    try:
        moves = activity.poll()
    except PyMongoError as e:  # a blip: the next look reaches back far enough
        logger.debug("experiments not read: %s", e)
        return
    for move in moves:
        logger.info("%s", move.line())


def _without_password(url: str) -> str:
    parsed = urlsplit(url)
    if parsed.password is None:
        return url
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host
    return parsed._replace(netloc=netloc).geturl()


# Demo ---------------------------------------------------------------------------------


def projects_file(settings: Settings, data_dir: Path) -> Path:
    """This machine's projects.json: FGLAB_PROJECTS_FILE, ./projects.json, else data_dir's."""
    path = settings.projects_file.expanduser()
    if path == Path("projects.json") and not path.exists():
        return data_dir / "projects.json"
    return path.resolve()


def demo_implementation(data_dir: Path) -> dict[str, Any]:
    """The projects.json entry that runs the demo program with this Python."""
    return {
        "cwd": str(data_dir),
        "command": sys.executable,
        "args": [str(DEMO_DIR / "train.py")],
        "options": "double-dash",
        "boolean": "mandatory",
        "capacity": 0.5,
        "results": str(data_dir / "results"),
    }


def warn_if_embedded_is_outgrown(settings: Settings) -> int:
    """Warn when the embedded MongoDB holds more experiments than it serves well.

    Its queries that read a whole collection (counts by status, a sorted first page)
    grow with it (README, "Embedded mode is for trying out"). Returns the count.
    """
    from fglab.store import Store
    from tasks.database import mongo_client

    client = mongo_client(settings)
    try:
        count = Store(client[settings.mongodb_db]).experiment_count()
    finally:
        client.close()
    if count >= EMBEDDED_COMFORT:
        logger.warning(
            "MongoDB: the embedded server holds %d experiments; past %d its tables and "
            "counts slow down (about 0.2 s for a first page at 10,000, seconds at 100,000). "
            "Move to a real MongoDB (set MONGODB_URI) before it gets slower.",
            count,
            EMBEDDED_COMFORT,
        )
    return count


@dataclass(frozen=True)
class DemoShown:
    """The demo project, and the experiment queued for it by this start (if any)."""

    project_id: ObjectId
    experiment_id: ObjectId | None


def install_demo(settings: Settings) -> DemoShown:
    """Create the demo project and queue its first experiment unless it exists; ask this
    machine's worker to add the demo to its projects.json.

    An existing project (a restart) gets no new experiment. The worker writes the entry
    when it starts (it never overwrites one that is there), as it does for "Add to machine".
    """
    from fglab.broker import Broker
    from fglab.errors import Conflict
    from fglab.schema import defaults, validate_schema
    from fglab.store import Store
    from tasks.app import create_celery
    from tasks.database import mongo_client

    client = mongo_client(settings)
    try:
        store = Store(client[settings.mongodb_db])
        store.ensure_indexes()
        project = store.projects.find_by_name(DEMO_NAME)
        experiment_id: ObjectId | None = None
        if project is None:
            schema = validate_schema(json.loads((DEMO_DIR / "schema.json").read_text()))
            try:
                project_id = store.projects.create(DEMO_NAME, schema)
            except Conflict:  # another `fglab up` on the same database was quicker
                project = store.projects.find_by_name(DEMO_NAME)
                assert project is not None
                project_id = project["_id"]
            else:
                experiment_id = store.new_experiment(project_id, defaults(schema))
        else:
            project_id = project["_id"]
    finally:
        client.close()
    broker = Broker(create_celery(settings, "fglab-up"))
    broker.add_project(
        settings.machine_name, str(project_id), demo_implementation(settings.data_dir)
    )
    return DemoShown(project_id, experiment_id)


# The process tree ---------------------------------------------------------------------


class _Signals:
    """SIGINT and SIGTERM set `received` instead of interrupting; restored on exit."""

    def __init__(self) -> None:
        self.received = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self.received == 1:
            logger.info("%s received; stopping everything", signal.Signals(signum).name)
        else:
            logger.info("%s again; killing what is left", signal.Signals(signum).name)


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[Any]
    #: Where its output goes.
    log: Path
    #: Stops a service we did not spawn ourselves (embedded MongoDB, Redis).
    stopper: Callable[[], None] | None = None
    #: Spawned in its own process group (pgid = pid), so KILL reaches its helpers too.
    group: bool = False
    #: Copies its output to `log` (children we spawned).
    output: ChildOutput | None = None


@dataclass
class _Tree:
    """The children of `fglab up`, started in order and stopped in reverse."""

    signals: _Signals
    #: The folder of the children's log files.
    logs: Path
    #: Every line of every child to the console too.
    verbose: bool = False
    children: list[_Child] = field(default_factory=list)

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def adopt(self, name: str, process: subprocess.Popen[Any], stop: Callable[[], None]) -> None:
        self.children.append(_Child(name, process, self.log_path(name), stop))

    def spawn(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        # Own process group: a terminal's Ctrl-C reaches only us, and we stop the children
        # in order (the web and workers before the databases they write to).
        process = subprocess.Popen(
            command,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent,
        )
        assert process.stdout is not None
        output = ChildOutput(name, process.stdout, self.log_path(name), self.verbose)
        self.children.append(_Child(name, process, output.path, group=True, output=output))
        logger.debug("started %s (pid %d), log %s", name, process.pid, output.path)

    def report_death(self, child: _Child) -> None:
        """Say, in the console, which child died, its last lines and where its log is."""
        if child.output is not None:
            child.output.join(timeout=2.0)
        logger.error(
            "%s exited unexpectedly with code %s; stopping everything. Its last lines "
            "(whole log: %s):",
            child.name,
            child.process.returncode,
            child.log,
        )
        for line in tail(child.log):
            children_logger.error("%s", line, extra={"child": child.name})

    def dead(self) -> _Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self) -> None:
        """TERM our own children together, KILL them after GRACE; then stop the services."""
        spawned = [c for c in reversed(self.children) if c.stopper is None]
        for child in spawned:
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + GRACE
        while any(c.process.poll() is None for c in spawned):
            if time.monotonic() > deadline or self.signals.received > 1:
                break
            time.sleep(0.05)
        for child in spawned:
            if child.process.poll() is None:
                logger.warning("fglab up: %s did not stop in %.0f s; killing it", child.name, GRACE)
                _kill(child)
            child.process.wait()
        for child in reversed(self.children):
            if child.stopper is not None:
                child.stopper()
        self.children.clear()


def _kill(child: _Child) -> None:
    try:
        if child.group:
            os.killpg(child.process.pid, signal.SIGKILL)
        else:
            child.process.kill()
    except ProcessLookupError:
        pass


# Ports ----------------------------------------------------------------------------------


def _bind_problem(host: str, port: int) -> str | None:
    """Why (host, port) cannot be served on, or None when it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"host {host!r} does not resolve: {e}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does
        try:
            s.bind(address)
        except OSError as e:
            return e.strerror or str(e)
    return None


def _accepts(host: str, port: int) -> bool:
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False
