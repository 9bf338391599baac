"""What recording a run's code (``_code``) adds to its start: submit -> the program's
first statement, p50 of N runs on an idle worker, for a program in a dirty git checkout
and the same program with git hidden from the worker (no git probe can run).

    .venv/bin/python bench/bench_code.py [--runs 30] [--redis redis://localhost:6379/14]

Starts the embedded MongoDB (memory engine), one machine worker and FGLab's scheduler;
the Redis database given is flushed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import redis
from pymongo import MongoClient
from pymongo.database import Database

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.latency import Percentiles, fglab_submit_to_start, stamp_args
from config import Settings
from fglab.app import create_app
from fglab.embedded import mongo
from fglab.store import Store
from tests.integration.fleet import Fleet, live, new_project
from tests.waiting import wait_for


def checkout(root: Path) -> Path:
    """A git checkout with a few files and an uncommitted change."""
    repo = root / "code"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    for i in range(50):
        (repo / f"module{i}.py").write_text("x = 1\n" * 200)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "code"], check=True)
    (repo / "module0.py").write_text("x = 2\n" * 200)
    return repo


def measure(settings: Settings, root: Path, runs: int, *, hide_git: bool) -> Percentiles:
    db: Database = MongoClient(settings.mongodb_uri, tz_aware=True)[settings.mongodb_db]
    store = Store(db)
    store.ensure_indexes()
    app = create_app(settings, store=store)
    round_dir = root / uuid.uuid4().hex[:6]
    round_dir.mkdir()
    fleet = Fleet(settings, round_dir / "fleet")
    repo = checkout(round_dir)
    stamps = fleet.root / "stamps"
    stamps.mkdir(parents=True)
    project = new_project(store, {})
    name = f"b{uuid.uuid4().hex[:6]}"
    impl = {
        "cwd": str(repo),
        "command": sys.executable,
        "args": stamp_args(stamps),
        "options": "double-dash",
        "boolean": "mandatory",
        "capacity": 1,
        "results": str(fleet.root / "results"),
    }
    path = os.environ["PATH"]
    if hide_git:  # a PATH without git: every git call fails at once
        bin_dir = fleet.root / "bin"
        bin_dir.mkdir()
        os.environ["PATH"] = str(bin_dir)
    try:
        fleet.start_scheduler(beat=False)
        fleet.start_machine(name, {str(project["_id"]): impl})
    finally:
        os.environ["PATH"] = path
    try:
        wait_for(live(db, name), timeout=60, what="the machine to register")
        ours = SimpleNamespace(client=app.test_client(), db=db)  # what the measure reads
        samples, _ = fglab_submit_to_start(ours, project, stamps, runs)  # type: ignore[arg-type]
    finally:
        fleet.stop_all()
    return Percentiles.of(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--redis", default="redis://localhost:6379/14")
    args = parser.parse_args()
    redis.Redis.from_url(args.redis).flushdb()
    server = mongo.start("memory")
    root = Path(tempfile.mkdtemp(prefix="bench-code-"))
    try:
        settings = Settings(
            mongodb_uri=server.uri, mongodb_db="bench_code", redis_url=args.redis
        ).with_changes(lease_ttl=10.0, heartbeat=1.0)
        for hide_git in (True, False, True, False):
            key = "git hidden" if hide_git else "dirty checkout"
            got = measure(settings, root, args.runs, hide_git=hide_git)
            print(f"{key}: p50 {got.p50 * 1000:.1f} ms, p99 {got.p99 * 1000:.1f} ms", flush=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
