"""A Redis for `fglab up` when REDIS_URL is not set: the local one, a child, or fakeredis.

:func:`start` tries, in order: a Redis already answering at ``redis://127.0.0.1:6379/0``;
a ``redis-server`` child on a free port (no persistence: Redis holds only what is
rebuilt or expires by itself); fakeredis' TCP server in a child process, which is slow
(about 80 ms a task) and meant only for trying FGLab out.

Run as ``python -m fglab.embedded.redis --port 0`` to serve fakeredis; it prints its
``redis://`` URL on the first line of stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.lifetime import die_with_parent

logger = logging.getLogger(__name__)

LOCAL_URL = "redis://127.0.0.1:6379/0"


class RedisStartError(RuntimeError):
    """No Redis could be found or started; the message says what to install or set."""


@dataclass
class RedisProcess:
    """The Redis `fglab up` uses: its URL, how it was found, and the child to stop (if any)."""

    url: str
    kind: str  # "local", "redis-server" or "fakeredis"
    process: subprocess.Popen[bytes] | None = None

    def stop(self, grace: float = 10.0) -> None:
        """Stop the child we started (TERM, then KILL after `grace` seconds); idempotent."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis at `url` answers PING."""
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def start(data_dir: Path, *, wait: float = 15.0, log: Path | None = None) -> RedisProcess:
    """Find or start a Redis for this host; see the module docstring for the order.

    `log`: the child's log file (default ``<data_dir>/redis-server.log`` for redis-server;
    fakeredis otherwise shares our stderr). Raises :class:`RedisStartError` when a child
    does not answer within `wait` seconds.
    """
    if answers(LOCAL_URL):
        logger.debug("Redis: using the local server at %s", LOCAL_URL)
        return RedisProcess(LOCAL_URL, "local")
    server = shutil.which("redis-server")
    if server is not None:
        return _start_redis_server(server, log or data_dir / "redis-server.log", data_dir, wait)
    logger.warning(
        "Redis: no Redis at %s and no redis-server installed; starting fakeredis, which is "
        "slow (about 80 ms a task) and only for trying FGLab out. Install Redis or set "
        "REDIS_URL for real work.",
        LOCAL_URL,
    )
    return _start_fakeredis(wait, log)


def _start_redis_server(server: str, log: Path, data_dir: Path, wait: float) -> RedisProcess:
    port = _free_port()
    command = [
        server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(data_dir), "--logfile", str(log),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        process_group=0,
        preexec_fn=die_with_parent,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + wait
    while not answers(url, timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            RedisProcess(url, "redis-server", process).stop(grace=2)
            raise RedisStartError(
                f"redis-server on port {port} did not answer (exit {process.returncode}); "
                f"see {log}, or set REDIS_URL to a running Redis"
            )
        time.sleep(0.1)
    logger.debug("Redis: started redis-server at %s (log %s)", url, log)
    return RedisProcess(url, "redis-server", process)


def _start_fakeredis(wait: float, log: Path | None) -> RedisProcess:
    command = [sys.executable, "-m", "fglab.embedded.redis", "--port", "0"]
    with contextlib.ExitStack() as files:
        stderr = files.enter_context(log.open("ab")) if log is not None else None
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            process_group=0,
            preexec_fn=die_with_parent,
        )
    assert process.stdout is not None
    line = process.stdout.readline().decode(errors="replace").strip()
    if not line.startswith("redis://") or not answers(line, timeout=wait):
        RedisProcess(line, "fakeredis", process).stop(grace=2)
        raise RedisStartError(
            f"fakeredis did not start (exit {process.returncode}); is fakeredis installed? "
            "Install Redis or set REDIS_URL"
        )
    return RedisProcess(line, "fakeredis", process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve fakeredis over TCP (for trying out)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from fakeredis import TcpFakeServer

    server = TcpFakeServer((args.host, args.port))
    host, port = server.server_address[:2]
    print(f"redis://{host!s}:{port}/0", flush=True)  # the parent reads this line
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    # In-memory only: nothing to flush, and closing would wait for every client thread.
    os._exit(0)


if __name__ == "__main__":
    main()
