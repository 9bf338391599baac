"""The experiment record: its field names and every write of its status, in one place.

FGLab (submit, dispatch, cancel, the sweep) and the machines (claim, start, finish,
recovery) both write experiment documents. Every status move is a function here, and each
is a compare-and-set in MongoDB on the statuses :data:`tasks.states.MOVES` allows, so a
repeated message, a kill racing an exit or two schedulers cannot both win. The ``_exit``
reason is built by :func:`exit_record` alone. Nothing else writes ``_status``.

Document fields keep the original FGLab's names (``_project_id``, ``_options``, ``_status``,
``_files``, ``_scores``...); the fields below that the original did not have are ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database

from tasks import counts
from tasks.states import MOVES, ON_MACHINE, Status

COLLECTION = "experiments"

# The original FGLab's fields.
ID = "_id"
PROJECT = "_project_id"
MACHINE = "_machine_id"
OPTIONS = "_options"
STATUS = "_status"
STARTED = "_started"
FINISHED = "_finished"
FILES = "_files"
SCORES = "_scores"
NOTES = "_notes"
CHARTS = "_charts"
# Ours: the life of a run on the fleet.
CREATED = "_created"
DISPATCHED = "_dispatched"
CLAIMED = "_claimed"
TOKEN = "_token"  # the ledger reservation the run message carries
GPU = "_gpu"
WAITING = "_waiting"  # why a queued experiment waits
TIMEOUT = "_timeout"  # per-experiment wall-clock limit, seconds
KILL_REQUESTED = "_kill_requested"
WORKER_PID = "_worker_pid"
PID = "_pid"
PGID = "_pgid"
ARGV = "_argv"
RESULTS_DIR = "_results_dir"
RUN_DIR = "_run_dir"  # the supervisor's folder on the machine (output, exit status)
EXIT = "_exit"  # {"code", "signal", "reason"}
LOG = "_log"  # the kept log: {"file_id", "bytes", "cut_bytes"}
REAPED = "_reaped"  # a restarted worker dealt with the run's process group
RESULT_NOTES = "_result_notes"  # problems with the results folder
HOOKS = "_hooks"  # the events ("started", "finished") that have webhooks
SWEEP = "_sweep"  # the sweep this experiment is a trial of
TRIAL = "_trial"  # its trial number in that sweep, from 0
PRUNE = "_prune"  # a sweep's request to stop it early: {"reason", "step"}
STEP = "_step"  # the last step the program reported with its scores
TAGS = "_tags"  # the researcher's labels (fglab/tags.py)
PRIORITY = "_priority"  # an integer, 0 by default; higher leaves the queue first
QUEUE_AT = "_queue_at"  # the queue's sort key (see queue_at)
RESOURCES = "_resources"  # CPU, memory and GPU use of the run (peak, mean, last)
GAPS = "_gaps"  # times no worker watched the run: [{"from", "to", "seconds"}]
RESOURCE_SAMPLES = "_resource_samples"  # [t, cpu %, rss, gpu memory, gpu %], capped
CODE = "_code"  # the code the run ran: git state, command, host (see record_code)
RERUN_OF = "_rerun_of"  # the experiment this one reruns

#: Every field name of the record, pinned by the contract tests.
FIELDS = (
    ID, PROJECT, MACHINE, OPTIONS, STATUS, STARTED, FINISHED, FILES, SCORES, NOTES, CHARTS,
    CREATED, DISPATCHED, CLAIMED, TOKEN, GPU, WAITING, TIMEOUT, KILL_REQUESTED, WORKER_PID,
    PID, PGID, ARGV, RESULTS_DIR, EXIT, LOG, REAPED, RESULT_NOTES, HOOKS, SWEEP, TRIAL,
    PRUNE, STEP, PRIORITY, QUEUE_AT, RESOURCES, RESOURCE_SAMPLES,
    RUN_DIR, GAPS, CODE, RERUN_OF,
)  # fmt: skip

#: Fields only FGLab and the machines write; the API's PUT refuses them.
SYSTEM_FIELDS = frozenset(
    {ID, PROJECT, MACHINE, OPTIONS, STATUS, FILES, CREATED, SWEEP, TRIAL, PRUNE, PRIORITY, QUEUE_AT,
     CODE, RERUN_OF}
)  # fmt: skip
#: The ``_`` fields a user (the API's PUT) may set; every other ``_`` name is FGLab's.
USER_FIELDS = frozenset({NOTES, SCORES, CHARTS, TAGS})


def user_writable(name: str) -> bool:
    """Whether the API may set the top-level field `name`: the user's fields and plain
    custom names. An allow-list, so that a field FGLab adds later (a folder, a process
    group the worker acts on) is never settable by mistake."""
    return name in USER_FIELDS or not name.startswith("_")


def now() -> datetime:
    return datetime.now(UTC)


def exit_record(reason: str, *, code: int | None = None, signal: str | None = None) -> dict:
    """The ``_exit`` of an ended experiment: why it ended, with its exit code or signal."""
    return {"code": code, "signal": signal, "reason": reason}


def _experiments(db: Database) -> Collection:
    return db[COLLECTION]


def ensure_indexes(db: Database) -> None:
    """The indexes FGLab's reads of experiments rely on (idempotent)."""
    _experiments(db).create_index([(PROJECT, ASCENDING), (CREATED, ASCENDING)])
    # The queue read: queued experiments in QUEUE_ORDER (priority and age in one key).
    _experiments(db).create_index([(STATUS, ASCENDING), (QUEUE_AT, ASCENDING), (ID, ASCENDING)])
    _experiments(db).create_index([(MACHINE, ASCENDING), (STATUS, ASCENDING)])
    # MongoDB answers `{_status: s}` from the index above; the embedded server uses
    # single-field indexes only, and without this one every dispatch pass and sweep
    # read the whole collection (bench/bench_store_scale.py, docs/mongoeco-scaling.md).
    _experiments(db).create_index(STATUS)
    _experiments(db).create_index(SWEEP)
    _experiments(db).create_index([(PROJECT, ASCENDING), (TAGS, ASCENDING)])


#: The most indexes FGLab gives the experiments collection (MongoDB allows 64): past it a
#: table sorted by a field without one runs unindexed (slower on big projects), not fails.
MAX_INDEXES = 50


def ensure_sort_index(db: Database, project_id: ObjectId, field: str) -> bool:
    """Make the (project, `field`) index a table sorted by `field` needs, when one of the
    project's experiments has `field` and the collection has room; whether it exists.

    Score, option and custom names are the researchers', so they cannot be indexed ahead;
    a name no experiment has gets none (a request cannot spend the collection's indexes),
    and the room is counted from the collection's real indexes, not a count kept here.
    """
    if _experiments(db).find_one({PROJECT: project_id, field: {"$exists": True}}, {ID: 1}) is None:
        return False
    indexes = _experiments(db).index_information()
    keys = [(PROJECT, ASCENDING), (field, ASCENDING)]
    if any(list(info.get("key", [])) == keys for info in indexes.values()):
        return True
    if len(indexes) >= MAX_INDEXES:
        return False
    _experiments(db).create_index(keys)
    return True


def list_file(db: Database, experiment_id: ObjectId, entry: Mapping[str, Any]) -> None:
    """List a stored file in the experiment's ``_files`` (`tasks.files`' entry), once a name.

    Replaced in place when the name is listed, else appended; the guard on the push
    keeps two concurrent writers of a new name from listing it twice. An experiment
    deleted meanwhile lists nothing.
    """
    name = entry["filename"]
    for _ in range(5):
        found = _experiments(db).update_one(
            {ID: experiment_id, f"{FILES}.filename": name}, {"$set": {f"{FILES}.$": dict(entry)}}
        )
        if found.matched_count:
            return
        pushed = _experiments(db).update_one(
            {ID: experiment_id, f"{FILES}.filename": {"$ne": name}},
            {"$push": {FILES: dict(entry)}},
        )
        if pushed.matched_count:
            return
        if _experiments(db).count_documents({ID: experiment_id}, limit=1) == 0:
            return
    raise RuntimeError(f"could not list file {name!r} on experiment {experiment_id}")


def forget_files(db: Database, query: Mapping[str, Any]) -> None:
    """Empty the ``_files`` list of the matching experiments (their files were deleted)."""
    _experiments(db).update_many(dict(query), {"$set": {FILES: []}})


def _move(
    db: Database,
    move: str,
    experiment_id: ObjectId,
    fields: Mapping[str, Any],
    tally: counts.Tally | None = None,
    **match: Any,
) -> dict[str, Any] | None:
    """Compare-and-set one move: apply `fields` only from the statuses `move` starts from,
    and count it on the project's counter (now, or in `tally` for a later write).

    Returns the document after the move, or None when the experiment is gone or no longer
    in a status the move starts from (someone else won).
    """
    sources, targets = MOVES[move]
    status = fields.get(STATUS)
    if status is not None and status not in targets:
        raise ValueError(f"move {move!r} cannot lead to status {status!r}")
    # The document before tells which status it left, for the project's counter; the one
    # after is that with `fields` set (top-level fields only).
    before = _experiments(db).find_one_and_update(
        {ID: experiment_id, STATUS: {"$in": sorted(str(s) for s in sources)}, **match},
        {"$set": dict(fields)},
        return_document=ReturnDocument.BEFORE,
    )
    if before is None:
        return None
    after = {**before, **fields}
    if tally is not None:
        tally.moved(before[PROJECT], before[STATUS], after[STATUS])
    else:
        counts.moved(db, before[PROJECT], before[STATUS], after[STATUS])
    return after


# Creating -----------------------------------------------------------------------------


#: Experiments one write of `insert_many` stores at most.
INSERT_CHUNK = 100

#: How much waiting one point of priority is worth: an experiment's effective priority
#: is ``priority + hours waited / AGING_HOURS``, so waiting work climbs past newer work
#: of higher priority and nothing starves.
AGING_HOURS = 24.0

#: The order queued experiments leave the queue in: smallest `queue_at` first (highest
#: effective priority); the IDs of one batch, stored in the same millisecond, keep the
#: order of the batch.
QUEUE_ORDER = ((QUEUE_AT, 1), (ID, 1))


def queue_at(created: datetime, priority: int) -> datetime:
    """The sort key that orders the queue by effective priority, fixed at submission.

    Ordering by ``priority + (t - created) / AGING_HOURS`` highest first is, at any time
    ``t``, ordering by ``created - priority * AGING_HOURS`` lowest first: one stored
    time, so the queue read stays one indexed sort and needs no periodic rewrite.
    """
    return created - timedelta(hours=AGING_HOURS * priority)


def _new(
    project_id: ObjectId,
    options: Mapping[str, Any],
    created: datetime,
    extra: Mapping[str, Any] | None,
    experiment_id: ObjectId | None = None,
    priority: int = 0,
) -> dict[str, Any]:
    return {
        ID: experiment_id or ObjectId(),
        PROJECT: project_id,
        OPTIONS: dict(options),
        STATUS: str(Status.QUEUED),
        CREATED: created,
        PRIORITY: priority,
        QUEUE_AT: queue_at(created, priority),
        MACHINE: None,
        FILES: [],
        **(extra or {}),
    }


def insert(
    db: Database,
    project_id: ObjectId,
    options: Mapping[str, Any],
    *,
    experiment_id: ObjectId | None = None,
    reservation: Reservation | None = None,
    extra: Mapping[str, Any] | None = None,
    priority: int = 0,
) -> ObjectId:
    """Store a new experiment: ``queued``, or ``dispatched`` under `reservation`."""
    doc = _new(project_id, options, now(), extra, experiment_id, priority)
    if reservation is not None:
        doc.update(_dispatch_fields(reservation))
    inserted = _experiments(db).insert_one(doc).inserted_id
    counts.add(db, project_id, {doc[STATUS]: 1})
    return inserted


def insert_many(
    db: Database,
    project_id: ObjectId,
    option_sets: Sequence[Mapping[str, Any]],
    *,
    extra: Mapping[str, Any] | None = None,
    priority: int = 0,
) -> list[ObjectId]:
    """Store queued experiments in the order given (see QUEUE_ORDER), `INSERT_CHUNK` a write.

    Chunks, because a MongoDB server's cost for one huge insert need not be linear (the
    embedded server's grows with the square of the batch).
    """
    created = now()
    docs = [_new(project_id, options, created, extra, None, priority) for options in option_sets]
    for start in range(0, len(docs), INSERT_CHUNK):
        chunk = docs[start : start + INSERT_CHUNK]
        _experiments(db).insert_many(chunk, ordered=True)
        counts.add(db, project_id, {str(Status.QUEUED): len(chunk)})
    return [doc[ID] for doc in docs]


def delete(db: Database, experiment_id: ObjectId) -> bool:
    """Delete one experiment's document (its files and history are the caller's)."""
    gone = _experiments(db).find_one_and_delete({ID: experiment_id}, projection=[PROJECT, STATUS])
    if gone is None:
        return False
    counts.add(db, gone[PROJECT], {gone[STATUS]: -1})
    return True


def delete_project(db: Database, project_id: ObjectId) -> int:
    """Delete every experiment of a project, and its counter."""
    deleted = _experiments(db).delete_many({PROJECT: project_id}).deleted_count
    counts.forget(db, [project_id])
    return deleted


@dataclass(frozen=True)
class Reservation:
    """Where a dispatched experiment goes: the machine, the ledger token, the GPU index."""

    machine: str
    token: str
    gpu: int | None = None


def _dispatch_fields(reservation: Reservation) -> dict[str, Any]:
    return {
        STATUS: str(Status.DISPATCHED),
        MACHINE: reservation.machine,
        TOKEN: reservation.token,
        GPU: reservation.gpu,
        DISPATCHED: now(),
        WAITING: None,
    }


# FGLab's moves ------------------------------------------------------------------------


def dispatch(
    db: Database,
    experiment_id: ObjectId,
    reservation: Reservation,
    tally: counts.Tally | None = None,
) -> dict | None:
    """queued -> dispatched: reserved on a machine; the run message is sent next."""
    return _move(db, "dispatch", experiment_id, _dispatch_fields(reservation), tally)


def requeue(db: Database, experiment_id: ObjectId) -> bool:
    """dispatched -> queued: its message was lost or refused; it waits again."""
    fields = {STATUS: str(Status.QUEUED), MACHINE: None, TOKEN: None, GPU: None}
    return _move(db, "requeue", experiment_id, fields) is not None


def cancel(db: Database, experiment_id: ObjectId) -> dict | None:
    """queued or dispatched -> cancelled; a message on its way finds it and launches nothing.

    The returned document keeps ``_machine_id`` and ``_token``, so the caller can give a
    dispatched experiment's reservation back.
    """
    fields = {
        STATUS: str(Status.CANCELLED),
        FINISHED: now(),
        EXIT: exit_record("cancelled before it started"),
    }
    return _move(db, "cancel", experiment_id, fields)


def request_kill(db: Database, experiment_id: ObjectId) -> dict | None:
    """Ask the worker running a claimed or running experiment to stop it (no status move)."""
    return _experiments(db).find_one_and_update(
        {ID: experiment_id, STATUS: {"$in": sorted(ON_MACHINE)}},
        {"$set": {KILL_REQUESTED: now()}},
        return_document=ReturnDocument.AFTER,
    )


def request_prune(db: Database, experiment_id: ObjectId, reason: str, step: int) -> dict | None:
    """Ask the worker to stop a trial its sweep prunes (no status move yet).

    The worker stops it as it stops a kill (TERM, grace, KILL); :func:`finish` then
    records ``pruned`` with `reason` instead of ``killed``. Returns the document after,
    or None when the experiment no longer runs or a prune was already asked for.
    """
    return _experiments(db).find_one_and_update(
        {
            ID: experiment_id,
            STATUS: {"$in": sorted(ON_MACHINE)},
            PRUNE: None,
        },
        {"$set": {PRUNE: {"reason": reason, "step": step}, KILL_REQUESTED: now()}},
        return_document=ReturnDocument.AFTER,
    )


def move_to_front(db: Database, experiment_id: ObjectId) -> dict[str, Any] | None:
    """Put a queued experiment ahead of every other queued one (no status move).

    Its `queue_at` becomes a millisecond before the first's, so the next dispatch pass
    places it first. Returns the document after, or None when it is not queued.
    """
    first = _experiments(db).find_one(
        {STATUS: str(Status.QUEUED)}, {QUEUE_AT: 1}, sort=list(QUEUE_ORDER)
    )
    key = now() if first is None or first.get(QUEUE_AT) is None else first[QUEUE_AT]
    return _experiments(db).find_one_and_update(
        {ID: experiment_id, STATUS: str(Status.QUEUED)},
        {"$set": {QUEUE_AT: key - timedelta(milliseconds=1)}},
        return_document=ReturnDocument.AFTER,
    )


def backfill_queue_at(db: Database) -> int:
    """Give queued experiments stored before priorities their `queue_at` (their creation
    time, priority 0); returns how many changed. Idempotent."""
    changed = 0
    for doc in _experiments(db).find({STATUS: str(Status.QUEUED), QUEUE_AT: None}, {CREATED: 1}):
        created = doc.get(CREATED) or now()
        fields = {PRIORITY: 0, QUEUE_AT: created}
        changed += _experiments(db).update_one({ID: doc[ID]}, {"$set": fields}).modified_count
    return changed


def set_waiting(db: Database, project_id: ObjectId, reason: str) -> int:
    """Say why a project's queued experiments wait; returns how many changed."""
    changed = _experiments(db).update_many(
        {STATUS: str(Status.QUEUED), PROJECT: project_id, WAITING: {"$ne": reason}},
        {"$set": {WAITING: reason}},
    )
    return changed.modified_count


# The machines' moves ------------------------------------------------------------------


def claim(
    db: Database,
    experiment_id: ObjectId,
    token: str,
    worker_pid: int,
    tally: counts.Tally | None = None,
) -> dict[str, Any] | None:
    """dispatched -> claimed, only under the reservation `token` the message carries.

    With `tally`, the move is counted there (the runner counts it with the start, in one
    write) instead of on the project's counter at once.
    """
    fields = {STATUS: str(Status.CLAIMED), CLAIMED: now(), WORKER_PID: worker_pid}
    return _move(db, "claim", experiment_id, fields, tally, **{TOKEN: token})


def start(
    db: Database,
    experiment_id: ObjectId,
    *,
    pid: int,
    argv: Sequence[str],
    results_dir: str,
    run_dir: str | None = None,
    tally: counts.Tally | None = None,
) -> dict[str, Any] | None:
    """claimed -> running: the program runs as `pid`, in its own process group, under the
    supervisor whose files are in `run_dir` (a restarted worker finds it there).

    With `tally`, counted there, beside the claim, for one write. Returns the document
    after (its ``_hooks`` say whether a "started" webhook waits).
    """
    fields = {
        RUN_DIR: run_dir,
        STATUS: str(Status.RUNNING),
        STARTED: now(),
        PID: pid,
        PGID: pid,
        ARGV: list(argv),
        RESULTS_DIR: results_dir,
    }
    return _move(db, "start", experiment_id, fields, tally)


def finish(
    db: Database,
    experiment_id: ObjectId,
    status: Status,
    exit: Mapping[str, Any],
    *,
    log: Mapping[str, Any] | None = None,
    code: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """claimed or running -> success, fail, killed, timeout or pruned, with its ``_exit``
    (and its ``_code`` when a short run stores it with its end: `code_record`).

    A kill that a sweep asked for (:func:`request_prune`) ends as ``pruned``, its reason
    the pruner's. Returns the document after, or None when another move won (the
    maintenance sweep lost it).
    """
    exit = dict(exit)
    if status == Status.KILLED:
        prune = (get(db, experiment_id, [PRUNE]) or {}).get(PRUNE)
        if prune:
            status = Status.PRUNED
            exit["reason"] = prune["reason"]
    fields: dict[str, Any] = {STATUS: str(status), FINISHED: now(), EXIT: exit}
    if log is not None:
        fields[LOG] = dict(log)
    if code is not None:
        fields[CODE] = dict(code)
    return _move(db, "finish", experiment_id, fields)


def hooked(doc: Mapping[str, Any] | None, event: str) -> bool:
    """Whether a webhook waits for `event` of this experiment (see `note_hook`)."""
    return doc is not None and event in (doc.get(HOOKS) or [])


def lose(
    db: Database,
    experiment_id: ObjectId,
    reason: str,
    *,
    reaped: bool = False,
    log: Mapping[str, Any] | None = None,
) -> dict | None:
    """claimed or running -> lost: its worker or machine went away, and why.

    `reaped` says the run's process group was dealt with (by a restarted worker), so no
    later restart signals a group ID the system has since handed out again. `log` is the
    kept log, when a restarted worker could still keep it.
    """
    fields: dict[str, Any] = {STATUS: str(Status.LOST), FINISHED: now(), EXIT: exit_record(reason)}
    if reaped:
        fields[REAPED] = now()
    if log is not None:
        fields[LOG] = dict(log)
    return _move(db, "lose", experiment_id, fields)


def note_reaped(db: Database, experiment_id: ObjectId, reason: str | None = None) -> None:
    """A lost experiment's process group was dealt with; `reason`, when given, replaces
    the ``_exit`` reason (to say the restarted worker stopped what still ran).

    The status stays ``lost``.
    """
    fields: dict[str, Any] = {REAPED: now()}
    if reason:
        fields[f"{EXIT}.reason"] = reason
    _experiments(db).update_one({ID: experiment_id, STATUS: str(Status.LOST)}, {"$set": fields})


def note_gap(db: Database, experiment_id: ObjectId, since: datetime, until: datetime) -> None:
    """A re-adopted run had no worker from `since` (its last heartbeat) to `until`.

    The status does not move: the run went on under its supervisor meanwhile.
    """
    gap = {"from": since, "to": until, "seconds": round((until - since).total_seconds(), 1)}
    _experiments(db).update_one({ID: experiment_id}, {"$push": {GAPS: gap}})


# Reading and annotating ---------------------------------------------------------------


def get(db: Database, experiment_id: ObjectId, fields: Iterable[str] | None = None) -> dict | None:
    """The experiment (only `fields` when given), or None."""
    projection = None if fields is None else dict.fromkeys(fields, 1)
    return _experiments(db).find_one({ID: experiment_id}, projection)


def kill_requested(db: Database, experiment_id: ObjectId) -> bool:
    """Whether someone asked to stop this experiment."""
    return experiment_id in kill_requests(db, [experiment_id])


def kill_requests(db: Database, experiment_ids: Iterable[ObjectId]) -> set[ObjectId]:
    """Which of these experiments someone asked to stop (one query for them all)."""
    query = {ID: {"$in": list(experiment_ids)}, KILL_REQUESTED: {"$ne": None}}
    return {doc[ID] for doc in _experiments(db).find(query, {ID: 1})}


def note_hook(db: Database, experiment_id: ObjectId, event: str) -> None:
    """Mark that a webhook waits for `event`, so the machine says when it happens."""
    _experiments(db).update_one({ID: experiment_id}, {"$addToSet": {HOOKS: event}})


def left_on_machine(db: Database, machine: str) -> list[dict[str, Any]]:
    """What a previous worker of `machine` may have left: its claimed or running
    experiments, and lost ones whose process group no restarted worker has dealt with."""
    return list(
        _experiments(db).find(
            {
                MACHINE: machine,
                "$or": [
                    {STATUS: {"$in": sorted(ON_MACHINE)}},
                    {STATUS: str(Status.LOST), PGID: {"$ne": None}, REAPED: {"$exists": False}},
                ],
            }
        )
    )


def set_fields(
    db: Database, experiment_id: ObjectId, fields: Mapping[str, Any]
) -> dict[str, Any] | None:
    """``$set`` top-level fields that are not the status (notes, scores, results).

    Returns the document after, or None when there is no such experiment. Raises
    ValueError for ``_status``: only the moves above change it.
    """
    if STATUS in fields:
        raise ValueError("the status changes only through the moves of tasks.experiments")
    return _experiments(db).find_one_and_update(
        {ID: experiment_id}, {"$set": dict(fields)}, return_document=ReturnDocument.AFTER
    )


def record_resources(
    db: Database,
    experiment_id: ObjectId,
    summary: Mapping[str, Any],
    point: Sequence[Any],
    keep: int,
) -> None:
    """Store a run's resource use so far and add one chart point (the last `keep` kept)."""
    _experiments(db).update_one(
        {ID: experiment_id},
        {
            "$set": {RESOURCES: dict(summary)},
            "$push": {RESOURCE_SAMPLES: {"$each": [list(point)], "$slice": -keep}},
        },
    )


#: The most bytes of a run's diff ``_code`` holds; a longer one is kept whole in GridFS.
CODE_DIFF_INLINE = 64 * 1024


def code_record(
    db: Database,
    experiment_id: ObjectId,
    project_id: ObjectId | None,
    code: Mapping[str, Any],
    diff: str | None = None,
    *,
    inline: int = CODE_DIFF_INLINE,
) -> dict[str, Any]:
    """``_code`` as stored, the code a run ran: ``command``, ``host``, ``python``/``node``,
    and for a git checkout ``repo``, ``commit``, ``branch``, ``dirty`` and ``diff``.

    A diff longer than `inline` bytes is kept whole as the experiment's unlisted GridFS
    file ``code.diff`` (``diff_file``), and ``diff`` holds its start, with
    ``diff_truncated: true``.
    """
    record = dict(code)
    if diff is not None:
        data = diff.encode("utf-8", errors="replace")
        record["diff"] = diff
        record["diff_truncated"] = len(data) > inline
        if record["diff_truncated"]:
            from tasks.files import put_code_diff  # tasks.files imports this module

            record["diff"] = data[:inline].decode("utf-8", errors="ignore")
            record["diff_file"] = put_code_diff(db, experiment_id, project_id, data)
            record["diff_bytes"] = len(data)
    return record


def record_code(
    db: Database,
    experiment_id: ObjectId,
    project_id: ObjectId | None,
    code: Mapping[str, Any],
    diff: str | None = None,
    *,
    inline: int = CODE_DIFF_INLINE,
) -> dict[str, Any]:
    """Store ``_code`` (`code_record`) on a running experiment; returns what was stored."""
    record = code_record(db, experiment_id, project_id, code, diff, inline=inline)
    set_code(db, experiment_id, record)
    return record


def set_code(db: Database, experiment_id: ObjectId, record: Mapping[str, Any]) -> None:
    """Store a prepared ``_code`` (`code_record`)."""
    _experiments(db).update_one({ID: experiment_id}, {"$set": {CODE: dict(record)}})


def add_result_notes(db: Database, experiment_id: ObjectId, notes: Sequence[str]) -> None:
    """Record problems with the results folder (each once)."""
    _experiments(db).update_one(
        {ID: experiment_id}, {"$addToSet": {RESULT_NOTES: {"$each": list(notes)}}}
    )
