"""The life of one experiment on its machine, from claim to final status.

    dispatched --claim--> claimed --start--> running --exit--> success | fail | killed | timeout
                              \\--cannot start--> fail        \\--worker away too long--> lost

Every move is a compare-and-set in MongoDB, and the claim also needs the reservation's
token to be live in the ledger, so a repeated or stale message launches nothing.

The program runs under a supervisor of its own (worker/supervisor.py), so a worker may
stop (a deploy) without ending it: the next worker on the machine re-adopts the run
(`resume_left_runs`) and records its real end.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bson import ObjectId
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from tasks import counts, experiments
from tasks.contract import FINISHED, PROGRESS, STARTED, ExperimentEvent, RunRequest
from tasks.states import ON_MACHINE, Status
from worker import provenance, supervision
from worker.argv import build_argv, gpu_env, program_env, results_env
from worker.changes import FileChanges
from worker.logs import LogSink
from worker.machine import Machine, Running
from worker.projects import Implementation
from worker.results import ResultsSync
from worker.supervision import RunEnd, Supervised, supervise

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds between checks of the program, the kill flag and the results folder (the
#: longest wait: inotify, the supervisor's pidfd and a kill request wake it at once).
TICK = 0.25
#: Seconds between uploads of the results folder while the program runs.
SYNC_EVERY = 1.0
#: Seconds at least between the passes over JSON results that their writes set off.
QUICK_SYNC_GAP = 0.02
#: A run that ends within this many seconds of its launch stores its ``_code`` with its
#: end (one write fewer); a longer one has it recorded when the hold is over.
CODE_HOLD = 1.0


@dataclass
class Outcome:
    status: Status
    reason: str
    code: int | None = None
    signal: str | None = None


def run_experiment(machine: Machine, request: RunRequest) -> dict[str, Any]:
    """Run one experiment to its end; returns a JSON-able summary for the task result.

    When the worker stops meanwhile (and keeps its runs), returns with the program still
    running under its supervisor; the next worker re-adopts it (`resume_left_runs`).
    """
    experiment_id = ObjectId(request.experiment_id)
    if not machine.ledger.confirm(machine.name, request.experiment_id, request.token):
        logger.info(
            "experiment %s: reservation %s is gone; not launching", experiment_id, request.token
        )
        return {"experiment": request.experiment_id, "launched": False, "why": "no reservation"}
    # The claim is counted with the start, in one write to the project's counter (for a
    # run that ends before it starts, in `finally` below).
    claimed = counts.Tally()
    doc = experiments.claim(machine.db, experiment_id, request.token, os.getpid(), claimed)
    if doc is None:
        _release_if_abandoned(machine, experiment_id, request)
        logger.info(
            "experiment %s: not dispatched with token %s; not launching",
            experiment_id,
            request.token,
        )
        return {"experiment": request.experiment_id, "launched": False, "why": "stale message"}

    implementation = machine.implementation(request.project_id)
    running = _running(doc, implementation, request.token, request.gpu)
    machine.add_running(running)
    outcome: Outcome | None = None
    ended: dict[str, Any] | None = None
    try:
        if implementation is None:
            outcome = Outcome(
                Status.FAIL,
                f"machine {machine.name} does not implement project {request.project_id}",
            )
            ended = _finish(machine, doc, outcome)
        else:
            outcome, ended = _run(machine, doc, implementation, running, request, claimed)
    finally:
        _persist(machine, "counting the claim", lambda: claimed.flush(machine.db))
        _let_go(machine, running, doc if outcome else None, ended)
    status = str(outcome.status) if outcome else str(Status.RUNNING)
    summary = {"experiment": request.experiment_id, "launched": True, "status": status}
    return summary if outcome else {**summary, "left_to_supervisor": True}


def resume_left_runs(machine: Machine) -> int:
    """After a (re)start: take over what an earlier worker of this machine left.

    A run whose supervisor is alive, or ended with its exit status written, is adopted:
    a thread follows it to its end as if this worker had launched it (leases renewed by
    the heartbeat, the live log resumed, results synced, the real end recorded). A run
    left without a supervisor is dealt with by `Machine.recover_unsupervised`. Returns
    how many runs were adopted.
    """
    adopted = 0
    for doc in experiments.left_on_machine(machine.db, machine.name):
        try:
            adopted += _take_over(machine, doc)
        except Exception:  # one bad record must not stop the worker's start
            logger.exception("experiment %r: left run not taken over; skipped", doc.get("_id"))
    return adopted


def _take_over(machine: Machine, doc: dict[str, Any]) -> bool:
    """Adopt one left run, or end it if its supervisor is gone; whether it was adopted.

    Its run folder is rebuilt from this machine's settings and the experiment ID: the
    paths in the document are never used, since people can write them (PUT).
    """
    if not isinstance(doc.get("_id"), ObjectId):
        logger.warning("experiment %r: left run with a malformed ID; skipped", doc.get("_id"))
        return False
    supervised = supervision.found_in(_run_dir(machine, doc["_id"]))
    if supervised is None or (supervised.ended() is None and not supervised.alive()):
        machine.recover_unsupervised(doc, supervised)
        return False
    thread = threading.Thread(
        target=_adopt, args=(machine, doc, supervised), name=f"adopted-{doc['_id']}"
    )
    machine.add_adopted(thread)
    thread.start()
    return True


def _running(
    doc: dict[str, Any], implementation: Implementation | None, token: Any, gpu: Any
) -> Running:
    """The run's share of the machine; a `token` or `gpu` read back of the wrong type
    (a document written by hand) counts as none."""
    return Running(
        experiment_id=str(doc["_id"]),
        token=token if isinstance(token, str) else "",
        cpu=implementation.capacity if implementation else 1.0,
        gpu_share=(implementation.gpu_capacity or 0.0) if implementation else 0.0,
        gpu=gpu if isinstance(gpu, int) and not isinstance(gpu, bool) and gpu >= 0 else None,
    )


def _let_go(
    machine: Machine,
    running: Running,
    ended_from: dict[str, Any] | None,
    ended: dict[str, Any] | None,
) -> None:
    """The run is no longer this worker's: if it ended, give its lease back and say so."""
    machine.remove_running(running.experiment_id)
    if ended_from is None:
        return  # left to its supervisor: the lease stays for the next worker
    try:
        machine.ledger.release(machine.name, running.experiment_id, running.token)
    except RedisError as e:  # the lease expires by itself
        logger.warning("experiment %s: lease not released: %s", running.experiment_id, e)
    hooks = experiments.hooked(ended or ended_from, "finished")
    # Whether it is a sweep's trial: the scheduler then need not read the experiment.
    trial = (ended or ended_from).get(experiments.SWEEP) is not None
    if hooks or trial:
        machine.notify(ExperimentEvent(running.experiment_id, FINISHED, hooks=hooks, trial=trial))
    else:
        machine.nudge()  # only room came free: a publish, not a message


def _run_dir(machine: Machine, experiment_id: ObjectId) -> Path:
    return (machine.settings.runs_dir / str(experiment_id)).absolute()


def _grace(machine: Machine, implementation: Implementation | None) -> float:
    if implementation is not None and implementation.kill_grace is not None:
        return implementation.kill_grace
    return machine.settings.kill_grace


def _run(
    machine: Machine,
    doc: dict[str, Any],
    implementation: Implementation,
    running: Running,
    request: RunRequest,
    claimed: counts.Tally,
) -> tuple[Outcome | None, dict[str, Any] | None]:
    """Launch the program under its supervisor and follow it; the outcome and the
    document after its end (None, None when it was left running to its supervisor).
    The start is counted with the claim `claimed` holds, in one write."""
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
    run_dir = _run_dir(machine, experiment_id)
    sink = LogSink(machine.redis, str(experiment_id), max_bytes=machine.settings.log_max_bytes)
    env = {
        **program_env(os.environ, implementation.pass_env),
        **gpu_env(request.gpu),
        **results_env(str(folder.absolute())),
    }
    probe = _code_probe(machine, doc, argv, implementation, env)
    if doc.get(experiments.RERUN_OF) is not None:
        _say_if_code_differs(machine, doc, probe, sink)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        supervised = supervise(
            argv,
            implementation.cwd,
            env,
            run_dir,
            grace=_grace(machine, implementation),
            orphan_after=machine.settings.lease_ttl,
            forkserver=machine.forkserver,
            results=folder,
        )
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else e
        reason = f"could not start {argv[0]!r} in {implementation.cwd}: {why}"
        sink.write("meta", reason + "\n")
        outcome = Outcome(Status.FAIL, reason)
        log = _persist(
            machine, "storing the log", lambda: sink.close(machine.db, doc["_project_id"])
        )
        ended = _finish(machine, doc, outcome, log=log, code=_taken_code(machine, doc, probe))
        _persist(machine, "counting a start failure", lambda: machine.record_start_failure(reason))
        shutil.rmtree(run_dir, ignore_errors=True)
        return outcome, ended

    running.supervised = supervised
    sink.follow(supervised.output)
    started = _persist(
        machine,
        f"marking {experiment_id} running",
        lambda: experiments.start(
            machine.db,
            experiment_id,
            pid=supervised.program_pid,
            argv=argv,
            results_dir=str(folder),
            run_dir=str(run_dir),
            tally=claimed,
        ),
    )
    _persist(machine, "counting the start", lambda: claimed.flush(machine.db))
    if experiments.hooked(started, "started"):
        machine.notify(ExperimentEvent(str(experiment_id), STARTED))
    timeout = _timeout(doc) or implementation.timeout
    return _follow(machine, doc, running, supervised, sink, folder, timeout, probe=probe)


def _code_probe(
    machine: Machine,
    doc: dict[str, Any],
    argv: list[str],
    implementation: Implementation,
    env: dict[str, str],
) -> provenance.Probe:
    """Find and record the run's code (``_code``) in a thread: git calls take
    milliseconds the program's start need not wait for."""

    def record(code: provenance.Code) -> None:
        _persist(
            machine,
            f"recording the code of {doc['_id']}",
            lambda: experiments.record_code(
                machine.db, doc["_id"], doc["_project_id"], code.fields, code.diff
            ),
        )

    return provenance.Probe(
        argv, implementation.cwd, implementation.args, env, record, hold=CODE_HOLD
    )


def _taken_code(
    machine: Machine, doc: dict[str, Any], probe: provenance.Probe
) -> dict[str, Any] | None:
    """At the run's end: its ``_code`` to store with the end, None when the probe
    recorded it already (a run longer than `CODE_HOLD`) or found none."""
    code = probe.take()
    if code is None:
        return None
    return _persist(
        machine,
        f"storing the code diff of {doc['_id']}",
        lambda: experiments.code_record(
            machine.db, doc["_id"], doc["_project_id"], code.fields, code.diff
        ),
    )


def _say_if_code_differs(
    machine: Machine, doc: dict[str, Any], probe: provenance.Probe, sink: LogSink
) -> None:
    """A rerun whose checkout is at another commit than its original's says so in its
    log, before the program runs (the one case that waits on the code probe)."""
    original = _persist(
        machine,
        "reading the original's code",
        lambda: experiments.get(machine.db, doc[experiments.RERUN_OF], [experiments.CODE]),
    )
    commit = ((original or {}).get(experiments.CODE) or {}).get("commit")
    code = probe.wait()
    line = provenance.rerun_line(code.commit if code else None, commit)
    if line:
        sink.write("meta", line)


def _adopt(machine: Machine, doc: dict[str, Any], supervised: Supervised) -> None:
    """Follow a run an earlier worker left, to its end (a thread of its own)."""
    experiment_id: ObjectId = doc["_id"]
    implementation = machine.implementation(str(doc["_project_id"]))
    running = _running(doc, implementation, doc.get("_token") or "", doc.get("_gpu"))
    running.supervised = supervised
    if doc.get(experiments.KILL_REQUESTED):
        running.kill.set()
    machine.add_running(running)
    away_since = supervised.last_touched()
    supervised.touch()
    if away_since is not None:
        since = datetime.fromtimestamp(away_since, UTC)
        _persist(
            machine,
            "noting the time without a worker",
            lambda: experiments.note_gap(machine.db, experiment_id, since, experiments.now()),
        )
    outcome: Outcome | None = None
    ended: dict[str, Any] | None = None
    asked: Outcome | None = None
    try:
        if doc["_status"] == str(Status.LOST):
            # Given up by the sweep while its worker was away: nothing of it may run on.
            stopped = "its supervisor still ran and the restarted worker stopped the run"
            asked = Outcome(Status.LOST, stopped)
            supervised.stop()
        elif doc["_status"] == str(Status.CLAIMED):
            doc = (
                experiments.start(
                    machine.db,
                    experiment_id,
                    pid=supervised.program_pid,
                    argv=[],
                    results_dir=str(_results_folder(machine, doc, implementation, supervised)),
                    run_dir=str(supervised.run_dir),
                )
                or doc
            )
        logger.warning("experiment %s: re-adopted from an earlier worker", experiment_id)
        sink = LogSink(machine.redis, str(experiment_id), max_bytes=machine.settings.log_max_bytes)
        sink.follow(supervised.output, publish_from=sink.streamed_offset())
        timeout = _timeout(doc) or (implementation.timeout if implementation else None)
        folder = _results_folder(machine, doc, implementation, supervised)
        outcome, ended = _follow(machine, doc, running, supervised, sink, folder, timeout, asked)
    except Exception:
        logger.exception("experiment %s: following the re-adopted run failed", experiment_id)
    finally:
        _let_go(machine, running, doc if outcome else None, ended)


def _results_folder(
    machine: Machine,
    doc: dict[str, Any],
    implementation: Implementation | None,
    supervised: Supervised,
) -> Path:
    """A taken-over run's results folder: as its launching worker noted it in the run
    folder, else as projects.json makes it now; never the document's ``_results_dir``.

    With neither (a run from before the note, whose project this machine dropped), an
    empty folder inside the run folder: nothing is uploaded, nothing else removed.
    """
    noted = supervised.results_folder()
    if noted is not None and noted.name == str(doc["_id"]):
        return noted
    if implementation is not None:
        return implementation.results / str(doc["_id"])
    logger.warning("experiment %s: its results folder is unknown; none uploaded", doc["_id"])
    return supervised.run_dir / "results"


def _timeout(doc: dict[str, Any]) -> float | None:
    """The experiment's own time limit, when it is a positive number."""
    value = doc.get("_timeout")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _follow(
    machine: Machine,
    doc: dict[str, Any],
    running: Running,
    supervised: Supervised,
    sink: LogSink,
    folder: Path,
    timeout: float | None,
    asked: Outcome | None = None,
    probe: provenance.Probe | None = None,
) -> tuple[Outcome | None, dict[str, Any] | None]:
    """Watch a supervised run to its end and record it; (None, None) when the worker
    stops first and leaves the run to its supervisor. The run's code (`probe`) is
    recorded before its end."""
    experiment_id: ObjectId = doc["_id"]
    results = ResultsSync(
        machine.db,
        folder,
        experiment_id,
        doc["_project_id"],
        max_file_bytes=machine.settings.max_file_bytes,
    )
    started = doc.get(experiments.STARTED)
    began = _aware(started).timestamp() if started else time.time()
    on_step = _progress_notice(machine, doc)
    outcome = _watch(machine, running, supervised, results, began, timeout, asked, on_step)
    if outcome is None:
        sink.stop_following()
        sink.join(timeout=5)  # what the stream got is where the next worker goes on
        logger.info("experiment %s: left running to its supervisor", experiment_id)
        return None, None

    sink.stop_following()
    sink.join(timeout=30)
    if outcome.status in {Status.FAIL}:
        tail = sink.tail("err")
        if tail:
            outcome.reason += f"\n--- last lines of stderr ---\n{tail}"
    log = _persist(machine, "storing the log", lambda: sink.close(machine.db, doc["_project_id"]))
    landed = _final_upload(results, machine.settings.mongo_retry)
    code = _taken_code(machine, doc, probe) if probe is not None else None
    if outcome.status == Status.LOST or doc["_status"] == str(Status.LOST):
        if code is not None:
            _persist(
                machine,
                f"recording the code of {doc['_id']}",
                lambda: experiments.set_code(machine.db, doc["_id"], code),
            )
        ended = _lose(machine, doc, outcome.reason, log)
    else:
        ended = _finish(machine, doc, outcome, log=log, code=code)
    if landed:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(supervised.run_dir, ignore_errors=True)
    else:
        logger.warning(
            "experiment %s: results kept in %s until they are stored", experiment_id, folder
        )
    return outcome, ended


def _watch(
    machine: Machine,
    running: Running,
    supervised: Supervised,
    results: ResultsSync,
    began: float,
    timeout: float | None,
    asked: Outcome | None,
    on_step: Callable[[int], None] | None = None,
) -> Outcome | None:
    """Wait for the end, the timeout or a kill request, syncing results meanwhile.

    None when the worker stops first (and keeps its runs). A stop asks the supervisor,
    which stops the whole tree (TERM, grace, KILL) and then writes the end; `asked` is
    the outcome of a stop already asked for; `on_step` hears the last new step of each
    sync that recorded one (a sweep's trial).
    """
    last_sync = time.monotonic()
    last_quick = 0.0
    json_written = False  # a JSON result was written since the last pass
    changes = FileChanges.open(results.folder)
    try:
        while True:
            end = supervised.ended()
            if end is not None:
                return _end_outcome(end, asked)
            if not supervised.alive() and supervised.ended() is None:
                return Outcome(Status.LOST, "its supervisor died without saying how the run ended")
            if machine.detaching.is_set():
                return None
            if asked is None and timeout and time.time() - began > timeout:
                asked = Outcome(Status.TIMEOUT, f"ran past its timeout of {timeout:g}s; stopped")
                supervised.stop()
            elif asked is None and running.kill.is_set():
                asked = Outcome(Status.KILLED, "killed on request")
                supervised.stop()
            now = time.monotonic()
            report = None
            if now - last_sync >= SYNC_EVERY:
                report = results.sync()
                last_sync, json_written = now, False
            elif json_written and now - last_quick >= QUICK_SYNC_GAP:
                report = results.sync(json_only=True)  # a trial's step, for its pruner
                last_quick, json_written = now, False
            if report is not None and report.steps and on_step is not None:
                on_step(report.steps[-1])
            if changes is None:
                # Not a plain sleep: a short program's slot comes free as soon as it exits.
                supervised.wait(TICK)
                continue
            wake = [supervised.fileno()] + ([running.kill.fileno()] if asked is None else [])
            wait = QUICK_SYNC_GAP - (now - last_quick) if json_written else TICK
            written = changes.wait(max(wait, 0.0), also=[fd for fd in wake if fd is not None])
            json_written = json_written or any(p.suffix.lower() == ".json" for p in written)
    finally:
        if changes is not None:
            changes.close()


def _end_outcome(end: RunEnd, asked: Outcome | None) -> Outcome:
    if end.error:
        return Outcome(Status.FAIL, end.error)
    code = end.returncode if end.returncode is not None else -1
    if end.stopped == "orphaned":
        how = _exit_outcome(code).reason
        return Outcome(
            Status.LOST,
            f"its worker was away for more than {end.orphan_after or 0:g}s, so its "
            f"supervisor stopped the run ({how})",
            code,
            end.signal,
        )
    if asked is not None and end.stopped == "request":
        return Outcome(asked.status, asked.reason, code, end.signal)
    return _exit_outcome(code)


def _progress_notice(machine: Machine, doc: dict[str, Any]) -> Callable[[int], None] | None:
    """For a sweep's trial: tell FGLab of each new step, so its pruner can judge it.

    Other experiments keep their history without a message per step.
    """
    if doc.get(experiments.SWEEP) is None:
        return None
    experiment_id = str(doc["_id"])

    def notice(step: int) -> None:
        machine.notify(ExperimentEvent(experiment_id, PROGRESS, step=step))

    return notice


def _exit_outcome(code: int) -> Outcome:
    if code == 0:
        return Outcome(Status.SUCCESS, "exited with code 0", 0)
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (perhaps the out-of-memory killer)" if -code == signal.SIGKILL else ""
        return Outcome(Status.FAIL, f"killed by {name}{hint}", code, name)
    return Outcome(Status.FAIL, f"exited with code {code}", code)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
    machine: Machine,
    doc: dict[str, Any],
    outcome: Outcome,
    log: dict[str, Any] | None = None,
    code: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Store the end (with the run's `code` when it is not stored yet); returns the
    document after, None when the sweep had lost it."""
    exit = experiments.exit_record(outcome.reason, code=outcome.code, signal=outcome.signal)
    ended = _persist(
        machine,
        f"storing the end of {doc['_id']}",
        lambda: experiments.finish(
            machine.db, doc["_id"], outcome.status, exit, log=log, code=code
        ),
    )
    logger.info(
        "experiment %s: %s (%s)", doc["_id"], outcome.status, outcome.reason.splitlines()[0]
    )
    return ended


def _lose(
    machine: Machine, doc: dict[str, Any], reason: str, log: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Record a run that ended without its worker; one the sweep lost keeps its status,
    its reason gains what the supervisor did."""
    ended = _persist(
        machine,
        f"storing the loss of {doc['_id']}",
        lambda: experiments.lose(machine.db, doc["_id"], reason, reaped=True, log=log),
    )
    if ended is None:
        before = (doc.get("_exit") or {}).get("reason") or "lost"
        _persist(
            machine,
            f"noting the stop of {doc['_id']}",
            lambda: experiments.note_reaped(machine.db, doc["_id"], f"{before}; {reason}"),
        )
    logger.warning("experiment %s: lost (%s)", doc["_id"], reason)
    return ended


def _release_if_abandoned(machine: Machine, experiment_id: ObjectId, request: RunRequest) -> None:
    """A stale message whose experiment ended or was cancelled gives its lease back."""
    doc = experiments.get(machine.db, experiment_id, ["_status", "_token"])
    if doc is None or doc.get("_token") != request.token or doc.get("_status") not in ON_MACHINE:
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
