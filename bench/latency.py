"""Latency on an idle worker: submit -> the program's first line, FGLab vs a direct Popen.

The program writes ``time.time()``, taken as its first statement, to a file named after
its ``--_id``; the clock starts just before the HTTP call (FGLab) or the ``Popen`` (direct),
so both figures hold the same interpreter start-up and the difference is FGLab's own
overhead. Also ``worker.launcher.launch()`` against a plain ``Popen``, both of ``true``.
Not run by itself: ``bench/suite.py`` uses it.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import ObjectId

from bench.systems import Ours
from tasks.states import TERMINAL
from tests.integration.fleet import status_of, submit
from tests.waiting import wait_for
from worker.launcher import launch
from worker.supervision import ForkServer, supervise

#: The program: record when it started in ``<argv[1]>/<its _id>`` (written whole, then moved).
STAMP = (
    "import os, sys, time; t = time.time(); "
    "p = os.path.join(sys.argv[1], sys.argv[-1].partition('=')[2]); "
    "open(p + '.tmp', 'w').write(repr(t)); os.replace(p + '.tmp', p)"
)
ENDED = frozenset(str(status) for status in TERMINAL)


@dataclass(frozen=True)
class Percentiles:
    """Nearest-rank percentiles, in seconds."""

    p50: float
    p99: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Percentiles:
        ordered = sorted(samples)

        def rank(share: float) -> float:
            return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

        return cls(rank(0.50), rank(0.99))


def stamp_args(stamps: Path) -> list[str]:
    """The program's arguments after the interpreter; its ``--_id=...`` goes last."""
    return ["-S", "-c", STAMP, str(stamps)]


#: The stages of one submit, between the record's timestamps (``before`` is the HTTP call).
STAGES = (
    ("HTTP submit: validate, place", "before", "_created"),
    ("store, send, worker takes it, claim", "_created", "_claimed"),
    ("confirm lease, launch, record start", "_claimed", "_started"),
    ("program start-up (as with Popen)", "_started", "stamp"),
)


def fglab_submit_to_start(
    ours: Ours, project: Mapping[str, Any], stamps: Path, runs: int
) -> tuple[list[float], dict[str, list[float]]]:
    """Seconds from before ``POST .../experiment`` to the program's start, one at a time,
    and the same time split into `STAGES` (seconds each, from the record's timestamps).

    Each experiment ends before the next is sent, so the worker is idle every time; one
    more run first warms up the route and the worker, and is not counted.
    """
    samples: list[float] = []
    stages: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    for index in range(runs + 1):
        before = time.time()
        experiment_id = submit(ours.client, project, queue=True)
        started = _stamp(stamps / experiment_id)
        wait_for(
            _ended(ours, experiment_id),
            timeout=60,
            interval=0.02,
            what=f"experiment {experiment_id} to end",
        )
        if index:
            samples.append(started - before)
            doc = ours.db["experiments"].find_one({"_id": ObjectId(experiment_id)})
            moments: dict[str, float | None] = {"before": before, "stamp": started}
            for field in ("_created", "_claimed", "_started"):
                moments[field] = _seconds(doc.get(field))
            for name, start, end in STAGES:
                if moments[start] is not None and moments[end] is not None:
                    stages[name].append(moments[end] - moments[start])
    return samples, stages


def _seconds(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _ended(ours: Ours, experiment_id: str) -> Callable[[], bool]:
    return lambda: status_of(ours.db, experiment_id) in ENDED


def direct_popen_to_start(stamps: Path, runs: int) -> list[float]:
    """Seconds from before a plain ``Popen`` of the same program to its start."""
    argv = [sys.executable, *stamp_args(stamps)]
    samples: list[float] = []
    for index in range(runs + 1):
        name = f"direct-{index}"
        before = time.time()
        process = subprocess.Popen([*argv, f"--_id={name}"])
        started = _stamp(stamps / name)
        process.wait()
        if index:
            samples.append(started - before)
    return samples


def _stamp(path: Path) -> float:
    """The start time the program wrote to `path`, once it has."""
    stamp = wait_for(
        lambda: _read_stamp(path), timeout=60, interval=0.002, what=f"{path.name} to start"
    )
    assert stamp is not None  # wait_for returns only what is truthy
    return stamp


def _read_stamp(path: Path) -> float | None:
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None


def resident_mib() -> float:
    """This process's resident memory: forking (which ``preexec_fn`` forces) grows with it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def spawn_seconds(runs: int, cwd: Path) -> tuple[list[float], list[float]]:
    """Seconds until ``launch(["true"])`` and ``Popen(["true"])`` return, interleaved.

    Interleaved so that drift in the machine's load hits both alike; the processes are
    waited for outside the timing.
    """
    true = shutil.which("true") or "/bin/true"
    env = dict(os.environ)
    launched: list[float] = []
    plain: list[float] = []
    for index in range(runs + 5):  # five warm-ups
        started = time.perf_counter()
        process = launch([true], cwd, env)
        took_launch = time.perf_counter() - started
        process.communicate()
        started = time.perf_counter()
        baseline = subprocess.Popen([true])
        took_plain = time.perf_counter() - started
        baseline.wait()
        if index >= 5:
            launched.append(took_launch)
            plain.append(took_plain)
    return launched, plain


def supervised_seconds(runs: int, cwd: Path, *, forked: bool = True) -> list[float]:
    """Seconds until ``supervise(["true"])`` returns: the supervisor is up and the program
    started (the worker's real launch since runs outlive their worker). `forked`: through
    a fork server, as a worker starts runs; else the interpreter start it falls back to."""
    true = shutil.which("true") or "/bin/true"
    env = dict(os.environ)
    forkserver = ForkServer() if forked else None
    took: list[float] = []
    try:
        if forkserver is not None:
            forkserver.start()
        for index in range(runs + 5):  # five warm-ups
            run_dir = cwd / "runs" / f"{'forked' if forked else 'started'}-{index}"
            started = time.perf_counter()
            supervised = supervise(
                [true], cwd, env, run_dir, grace=1.0, orphan_after=30.0, forkserver=forkserver
            )
            if index >= 5:
                took.append(time.perf_counter() - started)
            while supervised.ended() is None:
                supervised.wait(0.05)
    finally:
        if forkserver is not None:
            forkserver.close()
    return took
