"""Counting what a system asks of its databases: MongoDB commands and Redis commands.

MongoDB: a TCP proxy (``tests/integration/tcpproxy.py``) that reads every message a client
sends, takes the command name of each OP_MSG and counts it; the bytes go on unchanged.
It runs in a child process of its own, so its parsing does not compete for the GIL of
the process that measures. Run it by hand from the repo root:

    .venv/bin/python -m bench.counting 127.0.0.1:27017

It prints the port it listens on, then answers lines on stdin: ``reset`` (zero the
counts), ``counts`` (one JSON object of name -> count) and ``stop``.

Redis: ``CONFIG RESETSTAT`` opens a window and ``INFO commandstats`` reads it. Those
figures are server-wide, so the window also names clients of other databases that sent
commands in it (their commands are in the counts too).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from redis import Redis

from tests.integration.tcpproxy import TcpProxy

REPO = Path(__file__).resolve().parents[1]

#: The opcode of OP_MSG, the only message modern drivers send (MongoDB 3.6+).
OP_MSG = 2013
#: messageLength, requestID, responseTo, opCode.
HEADER = struct.Struct("<iiii")
#: flagBits: a CRC-32C trails the sections.
CHECKSUM_PRESENT = 1

#: What drivers say to keep a connection up, find the server or log in: not the work.
CHATTER = frozenset(
    {
        "hello",
        "isMaster",
        "ismaster",
        "ping",
        "buildInfo",
        "buildinfo",
        "endSessions",
        "saslStart",
        "saslContinue",
        "authenticate",
        "getnonce",
        "getLastError",
        "getParameter",
        "serverStatus",
    }
)

#: With FGLAB_COUNT_DETAIL=1 each command is counted with its collection ("find:experiments").
DETAIL = os.environ.get("FGLAB_COUNT_DETAIL") == "1"

#: Redis commands of the counting itself.
OWN_REDIS = frozenset({"info", "config|resetstat", "client|list"})


# --- MongoDB --------------------------------------------------------------------------------


def command_name(message: bytes | bytearray) -> str | None:
    """The command an OP_MSG message carries: the first key of its kind-0 section.

    None for other opcodes (legacy OP_QUERY handshakes, compressed messages) and for a
    message without a kind-0 section.
    """
    length, _, _, opcode = HEADER.unpack_from(message)
    if opcode != OP_MSG:
        return None
    flags = int.from_bytes(message[16:20], "little")
    end = length - (4 if flags & CHECKSUM_PRESENT else 0)
    offset = 20
    while offset < end:
        kind = message[offset]
        offset += 1
        if kind == 0:
            # A BSON document: int32 size, then its first element: type byte, key, NUL.
            start = offset + 5
            key_end = message.index(0, start)
            name = bytes(message[start:key_end]).decode("utf-8", "replace")
            if DETAIL and message[offset + 4] == 0x02:  # a string: the collection's name
                size = int.from_bytes(message[key_end + 1 : key_end + 5], "little")
                value = bytes(message[key_end + 5 : key_end + 4 + size])
                name += ":" + value.decode("utf-8", "replace")
            return name
        # Kind 1, a document sequence: int32 size (itself included), identifier, documents.
        offset += int.from_bytes(message[offset : offset + 4], "little")
    return None


class MessageStream:
    """Cuts a client's byte stream into wire messages and reports each command's name."""

    def __init__(self, record: Callable[[str], None]) -> None:
        self._buffer = bytearray()
        self._record = record

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 16:
            length = int.from_bytes(buffer[:4], "little")
            if len(buffer) < length:
                return
            name = command_name(buffer)
            if name is not None and name not in CHATTER:
                self._record(name)
            del buffer[:length]


class _Tap:
    """A socket's ``recv`` that also feeds what it reads to a MessageStream."""

    def __init__(self, sock: socket.socket, stream: MessageStream) -> None:
        self._sock = sock
        self._stream = stream

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if data:
            self._stream.feed(data)
        return data


class CountingProxy(TcpProxy):
    """A TcpProxy that counts the MongoDB commands clients send through it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    def reset(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    def counts(self) -> Counter[str]:
        with self._counts_lock:
            return Counter(self._counts)

    def _record(self, name: str) -> None:
        with self._counts_lock:
            self._counts[name] += 1

    def _pump(self, pair: Any, source: Any, sink: Any) -> None:
        if source is pair.sockets[0]:  # client -> server: the commands
            source = _Tap(source, MessageStream(self._record))
        super()._pump(pair, source, sink)


def serve(target: str) -> None:
    """Child process: proxy to `target` (host:port) and answer control lines on stdin."""
    host, _, port = target.rpartition(":")
    proxy = CountingProxy(host, int(port))
    proxy.up()
    print(proxy.port, flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "reset":
                proxy.reset()
                print("ok", flush=True)
            elif command == "counts":
                print(json.dumps(proxy.counts()), flush=True)
            elif command == "stop":
                break
    finally:
        proxy.down()


@dataclass
class MongoCounter:
    """The counting proxy's child process, seen from the process that measures."""

    process: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls, target_uri: str) -> MongoCounter:
        """Start a proxy to the server of `target_uri` (a ``mongodb://host:port`` URI)."""
        target = urlparse(target_uri)
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.counting", f"{target.hostname}:{target.port}"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.isdigit():
            process.kill()
            process.wait()
            raise RuntimeError(f"the MongoDB counting proxy did not start: {line!r}")
        return cls(process, int(line))

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def _ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def reset(self) -> None:
        self._ask("reset")

    def counts(self) -> Counter[str]:
        return Counter(json.loads(self._ask("counts")))

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self._ask("stop")
                self.process.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


# --- Redis ----------------------------------------------------------------------------------


@dataclass
class RedisWindow:
    """Redis commands between ``open()`` and ``read()``, server-wide.

    `database` is the one the measured system uses: a client of another database that
    sent commands inside the window is named in `strangers`, since its commands are in
    the counts too (``INFO commandstats`` does not tell databases apart).
    """

    client: Redis
    database: int
    opened: float = 0.0
    strangers: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.client.config_resetstat()
        self.opened = time.monotonic()

    def read(self) -> Counter[str]:
        """Calls per command name since `open`, leaving out the counting's own commands."""
        stats = self.client.info("commandstats")
        window = time.monotonic() - self.opened
        counts: Counter[str] = Counter()
        for key, value in stats.items():
            name = key.removeprefix("cmdstat_")
            if name not in OWN_REDIS:
                counts[name] = int(value["calls"])
        self.strangers = [
            f"{entry.get('addr')} (db {entry.get('db')}, {entry.get('name') or 'no name'})"
            for entry in self.client.client_list()
            if int(entry.get("db", self.database)) != self.database
            and int(entry.get("idle", 0)) < window
        ]
        return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port of the MongoDB server")
    serve(parser.parse_args(argv).target)


if __name__ == "__main__":
    main()
