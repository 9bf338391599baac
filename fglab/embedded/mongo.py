"""An embedded MongoDB wire server (mongoeco), for trying FGLab out and for the tests.

Run as ``python -m fglab.embedded.mongo --engine sqlite --path data/fglab.sqlite``; it
prints its ``mongodb://`` URI on the first line of stdout once it accepts connections.
Production uses a real MongoDB: nothing else in FGLab knows this server exists.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tasks.lifetime import die_with_parent


def _engine(kind: str, path: str | None):
    """The storage engine, without mongoeco's default cap of 50,000 documents through a
    ``$group`` or a count (past it MongoDB answers; mongoeco asks for allowDiskUse, which
    ``count_documents`` cannot pass, so a 100,000-experiment project could not be counted).
    """
    from fglab.embedded import patches

    patches.apply()
    if kind == "memory":
        from mongoeco.engines.memory import MemoryEngine

        return MemoryEngine(aggregation_materialization_limit=None)
    from mongoeco.engines.sqlite import SQLiteEngine

    if not path:
        raise SystemExit("--path is needed with --engine sqlite")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SQLiteEngine(path, aggregation_materialization_limit=None)


async def _serve(host: str, port: int, kind: str, path: str | None) -> None:
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

    server = AsyncMongoEcoProxyServer(engine=_engine(kind, path), host=host, port=port)
    address = await server.start()
    print(address.uri, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--engine", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--path", help="SQLite file (engine sqlite)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.engine, args.path))


@dataclass
class MongoProcess:
    """A running embedded server: its process and the URI it serves."""

    process: subprocess.Popen[str]
    uri: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()  # else an unclosed pipe warns when collected


def start(
    engine: str = "memory",
    path: str | os.PathLike[str] | None = None,
    port: int = 0,
    log: Path | None = None,
) -> MongoProcess:
    """Start the server in a child process and wait until it accepts connections.

    `log`: a file its stderr is appended to (else it shares ours).
    """
    command = [
        sys.executable,
        "-m",
        "fglab.embedded.mongo",
        "--engine",
        engine,
        "--port",
        str(port),
    ]
    if path is not None:
        command += ["--path", str(path)]
    with contextlib.ExitStack() as files:
        stderr = files.enter_context(log.open("ab")) if log is not None else None
        # Own process group: a terminal's Ctrl-C reaches only our parent, which stops this
        # server after the processes that write to it (else they fail while stopping).
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            process_group=0,
            preexec_fn=die_with_parent,
        )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("mongodb://"):
        process.kill()
        where = f"see {log}; " if log is not None else ""
        raise RuntimeError(
            f"embedded MongoDB did not start (exit {process.wait()}); "
            f"{where}is mongoeco[wire] installed (Python >= 3.13)?"
        )
    return MongoProcess(process, line)


if __name__ == "__main__":
    main()
