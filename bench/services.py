"""The services a suite run shares, and the processes it starts, each stopped at the end.

One embedded MongoDB wire server (memory engine) behind the counting proxy, Redis in a
database of the suite's own (flushed at the start and at the end), a temporary folder.
The measured systems reach MongoDB through the proxy; the suite's own reads (is it
done yet?) go straight to the server, so they are never counted. Not run by itself:
``bench/suite.py`` uses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.database import Database
from redis import Redis

from bench.counting import MongoCounter, RedisWindow
from config import Settings
from fglab.embedded import mongo
from fglab.embedded.redis import answers
from tests.integration.fleet import Process
from tests.waiting import wait_for
from worker.launcher import stop_group

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Counts:
    """What one system asked of MongoDB and Redis inside one window."""

    mongo: Counter[str]
    redis: Counter[str]
    #: Clients of other Redis databases that were active in the window (see RedisWindow).
    strangers: tuple[str, ...] = ()


@dataclass
class Services:
    mongo_server: mongo.MongoProcess
    counter: MongoCounter
    #: The suite's own reads; never counted.
    direct: MongoClient
    #: For the systems measured inside this process (the Flask app, the scheduler).
    proxied: MongoClient
    redis: Redis
    redis_url: str
    root: Path
    redis_window: RedisWindow = field(init=False)

    def __post_init__(self) -> None:
        self.redis_window = RedisWindow(
            self.redis, self.redis.connection_pool.connection_kwargs.get("db", 0)
        )

    def database(self, prefix: str) -> tuple[Database, Database]:
        """A fresh database name: (proxied, direct) handles on it."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        return self.proxied[name], self.direct[name]

    def settings(self, database: str, root: Path) -> Settings:
        """FGLab's settings for a fleet in `root`, as the load test has them."""
        return Settings(
            mongodb_uri=self.counter.uri,
            mongodb_db=database,
            redis_url=self.redis_url,
            machine_name="bench",
            data_dir=root / "data",
            projects_file=root / "projects.json",
            lease_ttl=15.0,
            heartbeat=1.0,
            kill_grace=2.0,
        )

    @contextlib.contextmanager
    def window(self) -> Iterator[list[Counts]]:
        """Count MongoDB and Redis commands inside the block; the Counts land in the list.

        Use one window per system: the counts are of everything that talked to the proxy
        and to the Redis server meanwhile.
        """
        box: list[Counts] = []
        self.counter.reset()
        self.redis_window.open()
        yield box
        redis = self.redis_window.read()
        box.append(Counts(self.counter.counts(), redis, tuple(self.redis_window.strangers)))


@contextlib.contextmanager
def running_services(redis_url: str | None, root: Path) -> Iterator[Services]:
    """Start the MongoDB server and its proxy, connect, flush the suite's Redis database.

    With no `redis_url`, a redis-server of the run's own (database 13): no other client
    can add to its command counts.
    """
    with contextlib.ExitStack() as stack:
        if redis_url is None:
            redis_url = stack.enter_context(own_redis_server(root))
        server = mongo.start("memory")
        stack.callback(server.stop)
        counter = MongoCounter.start(server.uri)
        stack.callback(counter.stop)
        direct: MongoClient = MongoClient(server.uri, tz_aware=True)
        stack.callback(direct.close)
        proxied: MongoClient = MongoClient(
            counter.uri, tz_aware=True, serverSelectionTimeoutMS=5000
        )
        stack.callback(proxied.close)
        redis = Redis.from_url(redis_url)
        stack.callback(redis.close)
        redis.flushdb()
        stack.callback(redis.flushdb)
        yield Services(server, counter, direct, proxied, redis, redis_url, root)


@contextlib.contextmanager
def own_redis_server(root: Path, wait: float = 15.0) -> Iterator[str]:
    """A redis-server child on a free port, without persistence; yields its database 13."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not on PATH; install Redis or leave out --own-redis")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [
        server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(root),
    ]  # fmt: skip
    process = start_process("redis-server", command, os.environ, root, root / "redis-server.log")
    try:
        url = f"redis://127.0.0.1:{port}/13"
        wait_for(
            lambda: answers(url, timeout=0.5),
            timeout=wait,
            interval=0.1,
            what=f"redis-server on {port}",
        )
        yield url
    finally:
        process.stop()


def start_process(
    name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path
) -> Process:
    """A child process logging to `log`, stopped with `Process.stop` (TERM, then KILL)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(command), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    return Process(name, popen, log)


def run_group(
    command: Sequence[str],
    log: Path,
    timeout: float,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `command` in a process group of its own; on timeout or error end the whole group.

    Its children (a server it started) end with it, even when it cannot clean up itself.
    Returns the exit code; raises subprocess.TimeoutExpired after `timeout` seconds.
    """
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env or os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return popen.wait(timeout=timeout)
    finally:
        _end_group(popen)


def _end_group(popen: subprocess.Popen[bytes]) -> None:
    """TERM the group (the leader's children too), then KILL what is left after 10 s."""
    popen.poll()
    stop_group(popen.pid, grace=10.0, process=popen)
    popen.poll()
