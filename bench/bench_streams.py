"""Pages while live log streams are open: the time `fglab web` takes to answer the login
page, the home page, a project page and the projects API, p50 of N requests each, with no
stream open (the baseline, same run) and then with S streams held open on a queued
experiment; and what the S+1st stream and the 20 after it are answered.

    .venv/bin/python bench/bench_streams.py [--streams 100] [--requests 20]
        [--redis redis://localhost:6379/14]

Starts the embedded MongoDB (memory engine) and `fglab web` (waitress, as deployed) with
FGLAB_STREAMS_PER_CLIENT and FGLAB_STREAMS_MAX set to S, behind a password; the Redis
database given is flushed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import Settings
from fglab.embedded import mongo
from fglab.store import Store
from tests.integration.fleet import Fleet, new_project
from tests.security.web import free_port, send
from tests.waiting import wait_for

#: The pages need a password to answer 200 (without one, /login sends people on).
PASSWORD = "bench-streams"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"x:{PASSWORD}".encode()).decode()}


def page_times(url: str, paths: list[str], requests: int) -> dict[str, float]:
    """p50 seconds of `requests` GETs of each path (each must answer 200)."""
    times: dict[str, float] = {}
    for path in paths:
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            answer = send(url + path, headers=AUTH)
            samples.append(time.perf_counter() - started)
            if answer.status != 200:
                raise SystemExit(f"{path} answered {answer.status}")
        times[path] = statistics.median(samples)
    return times


def open_stream(port: int, experiment_id: object) -> http.client.HTTPResponse:
    """A stream's answer; keep it to keep the stream open (its socket closes with it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", f"/api/v1/experiments/{experiment_id}/logs/stream", headers=AUTH)
    answer = connection.getresponse()
    if answer.status == 200:
        answer.readline()  # the first keepalive: the stream is open
    else:
        answer.read()
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--redis", default="redis://localhost:6379/14")
    args = parser.parse_args()
    redis.Redis.from_url(args.redis).flushdb()
    server = mongo.start("memory")
    root = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    fleet = None
    streams: list[http.client.HTTPResponse] = []
    try:
        settings = Settings(
            mongodb_uri=server.uri, mongodb_db="bench_streams", redis_url=args.redis
        )
        store = Store(MongoClient(server.uri, tz_aware=True)[settings.mongodb_db])
        store.ensure_indexes()
        project = new_project(store, {"x": {"type": "int", "default": 1}})
        [experiment_id] = store.new_experiments(project["_id"], [{"x": 1}])  # stays queued
        fleet = Fleet(settings, root / "fleet")
        port = free_port()
        fleet.start_web(
            port,
            password=PASSWORD,
            FGLAB_STREAMS_PER_CLIENT=args.streams,
            FGLAB_STREAMS_MAX=args.streams,
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: send(url + "/login").status == 200, 30, "fglab web to answer")
        paths = ["/login", "/", f"/projects/{project['_id']}", "/api/v1/projects"]

        baseline = page_times(url, paths, args.requests)
        for _ in range(args.streams):
            streams.append(open_stream(port, experiment_id))
            if streams[-1].status != 200:
                raise SystemExit(f"stream {len(streams)} answered {streams[-1].status}")
        loaded = page_times(url, paths, args.requests)
        past = Counter(open_stream(port, experiment_id).status for _ in range(21))

        print(f"p50 of {args.requests} requests each, {args.streams} streams open vs none:")
        for path in paths:
            ratio = loaded[path] / baseline[path]
            print(
                f"  {path:<40} {loaded[path] * 1000:7.1f} ms vs {baseline[path] * 1000:7.1f} ms"
                f"  (x{ratio:.2f})"
            )
        print(f"21 streams past the cap answered: {dict(past)}")
    finally:
        for stream in streams:
            stream.close()
        if fleet is not None:
            fleet.stop_all()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
