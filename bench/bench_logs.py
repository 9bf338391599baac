"""How fast LogSink drains a program that floods stdout, live to a real Redis.

    python bench/bench_logs.py [--mb 200] [--max-bytes 1048576] [--redis redis://...]

Runs a child that writes --mb MB to stdout as fast as it can, twice: once read by a
bare ``os.read`` loop (the ceiling: what the pipe and the child allow) and once pumped by
a LogSink (decode, kept tail, XADD to Redis). Prints MB/s for both, and how much output
did not reach the stream live. The stream key is deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid

import redis

from worker.logs import READ_SIZE, LogSink

MB = 1024 * 1024


def _child(total_mb: int) -> list[str]:
    program = (
        "import sys\n"
        "block = (b'x' * 1023 + b'\\n') * 1024\n"
        f"for _ in range({total_mb}):\n"
        "    sys.stdout.buffer.write(block)\n"
    )
    return [sys.executable, "-c", program]


def bare(total_mb: int) -> float:
    """Seconds to drain the child with nothing but os.read."""
    started = time.perf_counter()
    with subprocess.Popen(_child(total_mb), stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while os.read(fd, READ_SIZE):
            pass
        proc.wait()
    return time.perf_counter() - started


def sink(total_mb: int, client: redis.Redis, max_bytes: int) -> tuple[float, LogSink]:
    """Seconds to drain the child through a LogSink, up to everything being in Redis."""
    log = LogSink(client, f"bench-{uuid.uuid4().hex}", max_bytes=max_bytes)
    started = time.perf_counter()
    with subprocess.Popen(_child(total_mb), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        log.pump(proc.stdout, "out")
        log.pump(proc.stderr, "err")
        proc.wait()
        log.join()
    elapsed = time.perf_counter() - started
    client.delete(log.key)
    return elapsed, log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="MB the child writes")
    parser.add_argument("--max-bytes", type=int, default=MB, help="the kept tail's cap")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"))
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    client.ping()

    ceiling = bare(args.mb)
    elapsed, log = sink(args.mb, client, args.max_bytes)
    client.close()
    assert log.bytes_read == args.mb * MB, (log.bytes_read, args.mb * MB)
    print(f"bare os.read : {args.mb / ceiling:8.1f} MB/s ({ceiling:.2f} s)")
    print(f"LogSink+Redis: {args.mb / elapsed:8.1f} MB/s ({elapsed:.2f} s)")
    print(
        f"kept {log.total_bytes - log.cut_bytes} B (cap {args.max_bytes}), "
        f"cut {log.cut_bytes} B, not streamed live {log.unstreamed_bytes} B"
    )


if __name__ == "__main__":
    main()
