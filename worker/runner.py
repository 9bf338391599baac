"""The life of one experiment on its machine, from claim to final status.

    dispatched --claim--> claimed --start--> running --exit--> success | fail | killed | timeout
                              \\--cannot start--> fail

Every move is a compare-and-set in MongoDB, and the claim also needs the reservation's
token to be live in the ledger, so a repeated or stale message launches nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bson import ObjectId
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from tasks import experiments
from tasks.contract import RunRequest
from tasks.states import Status
from worker.argv import build_argv, gpu_env
from worker.launcher import launch, stop_group
from worker.logs import LogSink
from worker.machine import Machine, Running
from worker.projects import Implementation
from worker.results import ResultsSync

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds between checks of the program, the kill flag and the results folder.
TICK = 0.25
#: Seconds between uploads of the results folder while the program runs.
SYNC_EVERY = 1.0


@dataclass
class Outcome:
    status: Status
    reason: str
    code: int | None = None
    signal: str | None = None


def run_experiment(machine: Machine, request: RunRequest) -> dict[str, Any]:
    """Run one experiment to its end; returns a JSON-able summary for the task result."""
    experiment_id = ObjectId(request.experiment_id)
    if not machine.ledger.confirm(machine.name, request.experiment_id, request.token):
        logger.info(
            "experiment %s: reservation %s is gone; not launching", experiment_id, request.token
        )
        return {"experiment": request.experiment_id, "launched": False, "why": "no reservation"}
    doc = experiments.claim(machine.db, experiment_id, request.token, os.getpid())
    if doc is None:
        _release_if_abandoned(machine, experiment_id, request)
        logger.info(
            "experiment %s: not dispatched with token %s; not launching",
            experiment_id,
            request.token,
        )
        return {"experiment": request.experiment_id, "launched": False, "why": "stale message"}

    implementation = machine.implementation(request.project_id)
    running = Running(
        experiment_id=request.experiment_id,
        token=request.token,
        cpu=implementation.capacity if implementation else 1.0,
        gpu_share=(implementation.gpu_capacity or 0.0) if implementation else 0.0,
        gpu=request.gpu,
    )
    machine.add_running(running)
    ended: dict[str, Any] | None = None
    try:
        if implementation is None:
            outcome = Outcome(
                Status.FAIL,
                f"machine {machine.name} does not implement project {request.project_id}",
            )
            ended = _finish(machine, doc, outcome)
        else:
            outcome, ended = _run(machine, doc, implementation, running, request)
    finally:
        machine.remove_running(request.experiment_id)
        try:
            machine.ledger.release(machine.name, request.experiment_id, request.token)
        except RedisError as e:  # the lease expires by itself
            logger.warning("experiment %s: lease not released: %s", experiment_id, e)
        hooks = experiments.hooked(ended or doc, "finished")
        machine.notify("finished", {"experiment_id": request.experiment_id, "hooks": hooks})
    return {"experiment": request.experiment_id, "launched": True, "status": str(outcome.status)}


def _run(
    machine: Machine,
    doc: dict[str, Any],
    implementation: Implementation,
    running: Running,
    request: RunRequest,
) -> tuple[Outcome, dict[str, Any] | None]:
    """Launch, watch and end the program; the outcome and the document after its end."""
    experiment_id: ObjectId = doc["_id"]
    options = {**doc.get("_options", {}), "_id": str(experiment_id)}
    argv = build_argv(
        implementation.command,
        implementation.args,
        options,
        style=implementation.options,
        boolean=implementation.boolean,
        gpu_command=implementation.gpu_command,
        gpu=request.gpu,
    )
    folder = implementation.results / str(experiment_id)
    project_id = doc["_project_id"]
    sink = LogSink(machine.redis, str(experiment_id), max_bytes=machine.settings.log_max_bytes)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        process = launch(argv, implementation.cwd, {**os.environ, **gpu_env(request.gpu)})
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else e
        reason = f"could not start {argv[0]!r} in {implementation.cwd}: {why}"
        sink.write("meta", reason + "\n")
        outcome = Outcome(Status.FAIL, reason)
        log = _persist(machine, "storing the log", lambda: sink.close(machine.db, project_id))
        ended = _finish(machine, doc, outcome, log=log)
        _persist(machine, "counting a start failure", lambda: machine.record_start_failure(reason))
        return outcome, ended

    assert process.stdout is not None and process.stderr is not None
    sink.pump(process.stdout, "out")  # the sink closes the pipes at EOF
    sink.pump(process.stderr, "err")
    started = _persist(
        machine,
        f"marking {experiment_id} running",
        lambda: experiments.start(
            machine.db, experiment_id, pid=process.pid, argv=argv, results_dir=str(folder)
        ),
    )
    if experiments.hooked(started, "started"):
        machine.notify("started", {"experiment_id": str(experiment_id)})
    results = ResultsSync(
        machine.db,
        folder,
        experiment_id,
        doc["_project_id"],
        max_file_bytes=machine.settings.max_file_bytes,
    )
    timeout = doc.get("_timeout") or implementation.timeout
    grace = (
        implementation.kill_grace
        if implementation.kill_grace is not None
        else machine.settings.kill_grace
    )
    on_step = _progress_notice(machine, doc)
    outcome = _watch(running, process, results, timeout, grace, on_step)

    sink.join(timeout=30)
    if outcome.status in {Status.FAIL}:
        tail = sink.tail("err")
        if tail:
            outcome.reason += f"\n--- last lines of stderr ---\n{tail}"
    log = _persist(machine, "storing the log", lambda: sink.close(machine.db, project_id))
    landed = _final_upload(results, machine.settings.mongo_retry)
    ended = _finish(machine, doc, outcome, log=log)
    if landed:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        logger.warning(
            "experiment %s: results kept in %s until they are stored", experiment_id, folder
        )
    return outcome, ended


def _watch(
    running: Running,
    process: subprocess.Popen[bytes],
    results: ResultsSync,
    timeout: float | None,
    grace: float,
    on_step: Callable[[int], None] | None = None,
) -> Outcome:
    """Wait for the exit, the timeout or a kill request, syncing results meanwhile.

    `on_step` hears the last new step of each sync that recorded one.
    """
    started = time.monotonic()
    last_sync = started
    while True:
        code = process.poll()
        if code is not None:
            return _exit_outcome(code)
        now = time.monotonic()
        if timeout and now - started > timeout:
            stop_group(process.pid, grace, process)
            process.wait()
            return Outcome(
                Status.TIMEOUT, f"ran past its timeout of {timeout:g}s; stopped", process.returncode
            )
        if running.kill.is_set():
            stop_group(process.pid, grace, process)
            process.wait()
            return Outcome(Status.KILLED, "killed on request", process.returncode)
        if now - last_sync >= SYNC_EVERY:
            report = results.sync()
            last_sync = now
            if report.steps and on_step is not None:
                on_step(report.steps[-1])
        # Not a plain sleep: a short program's slot comes free as soon as it exits.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=TICK)


def _progress_notice(machine: Machine, doc: dict[str, Any]) -> Callable[[int], None] | None:
    """For a sweep's trial: tell FGLab of each new step, so its pruner can judge it.

    Other experiments keep their history without a message per step.
    """
    if doc.get(experiments.SWEEP) is None:
        return None
    experiment_id = str(doc["_id"])

    def notice(step: int) -> None:
        machine.notify("progress", {"experiment_id": experiment_id, "step": step})

    return notice


def _exit_outcome(code: int) -> Outcome:
    if code == 0:
        return Outcome(Status.SUCCESS, "exited with code 0", 0)
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (perhaps the out-of-memory killer)" if -code == signal.SIGKILL else ""
        return Outcome(Status.FAIL, f"killed by {name}{hint}", code, name)
    return Outcome(Status.FAIL, f"exited with code {code}", code)


def _final_upload(results: ResultsSync, patience: float) -> bool:
    """The last pass after exit, retried with backoff for `patience` seconds.

    Each pass uploads only what has not landed yet (by name, size and mtime), so the
    retries are idempotent.
    """
    deadline = time.monotonic() + patience
    delay = 0.2
    while True:
        report = results.sync(final=True)
        if report.all_landed:
            return True
        if time.monotonic() + delay > deadline:
            return False
        logger.warning(
            "final upload: %d result(s) pending (%s); retrying in %.1fs",
            len(report.pending),
            ", ".join(report.pending[:3]),
            delay,
        )
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


def _finish(
    machine: Machine, doc: dict[str, Any], outcome: Outcome, log: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Store the end; returns the document after, None when the sweep had lost it."""
    exit = experiments.exit_record(outcome.reason, code=outcome.code, signal=outcome.signal)
    ended = _persist(
        machine,
        f"storing the end of {doc['_id']}",
        lambda: experiments.finish(machine.db, doc["_id"], outcome.status, exit, log=log),
    )
    logger.info(
        "experiment %s: %s (%s)", doc["_id"], outcome.status, outcome.reason.splitlines()[0]
    )
    return ended


def _release_if_abandoned(machine: Machine, experiment_id: ObjectId, request: RunRequest) -> None:
    """A stale message whose experiment ended or was cancelled gives its lease back."""
    doc = experiments.get(machine.db, experiment_id, ["_status", "_token"])
    if (
        doc is None
        or doc.get("_token") != request.token
        or doc.get("_status") not in {str(Status.CLAIMED), str(Status.RUNNING)}
    ):
        machine.ledger.release(machine.name, request.experiment_id, request.token)


def _persist(machine: Machine, what: str, write: Callable[[], T]) -> T | None:
    """Run a MongoDB write, retrying with backoff while MongoDB is unreachable.

    Bounded by the ``mongo_retry`` setting; when it runs out the error is logged and
    None returned: the results folder stays on disk, so nothing is lost.
    """
    deadline = time.monotonic() + machine.settings.mongo_retry
    delay = 0.2
    while True:
        try:
            return write()
        except PyMongoError as e:
            if time.monotonic() + delay > deadline:
                logger.error("gave up on %s after %.0fs: %s", what, machine.settings.mongo_retry, e)
                return None
            logger.warning("%s failed (%s); retrying in %.1fs", what, e, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
