"""FGLab's gateway to MongoDB and GridFS: pages, routes, the scheduler and the sweeps call
its methods and its records, never pymongo.

It writes nothing itself. Each collection has one writer: the records FGLab alone keeps
(``store.projects``, ``store.webhooks``, ``store.tokens``: `fglab.records`; ``store.sweeps``:
`fglab.sweeps.record`) and the records it shares with the machines (`tasks.experiments`,
`tasks.machines`, `tasks.history`, `tasks.counts`, `tasks.files`), which the Store hands
its database. The Store reads experiments and machines for the pages. Documents keep
the original FGLab's field names (``_project_id``, ``_options``, ``_status``, ``_files``
...). IDs are ObjectIds except machines', whose ``_id`` is the machine name.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import GridFSBucket, GridOut
from gridfs.errors import NoFile
from pymongo import ASCENDING, DESCENDING
from pymongo.cursor import Cursor
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fglab.errors import BadRequest, Conflict, NotFound
from fglab.records.projects import ProjectRecord
from fglab.records.sessions import SessionRecord
from fglab.records.tokens import TokenRecord
from fglab.records.webhooks import WebhookRecord
from fglab.sweeps.record import SweepRecord
from tasks import counts, experiments, files, history, machines
from tasks.experiments import Reservation
from tasks.fields import LARGE_REF_KEY, resolve_large_fields
from tasks.states import ACTIVE, Status

#: What a row of the experiments table shows.
ROW_FIELDS = (
    "_id", "_status", "_options", "_scores", "_created", "_started", "_finished", "_notes",
    "_machine_id", "_tags",
)  # fmt: skip


def now() -> datetime:
    return datetime.now(UTC)


def object_id(value: object, what: str = "ID") -> ObjectId:
    """Parse an ObjectId from a URL or body, or raise a 400 naming the bad value."""
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        raise BadRequest(f"{what} {value!r} is not a valid ObjectId (24 hex digits)") from None


#: Documents a listing reads from MongoDB at a time.
LIST_BATCH = 200


class Store:
    """Typed access to FGLab's collections; callers pass and get plain documents."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._experiments = db[experiments.COLLECTION]
        self._machines = db[machines.COLLECTION]
        self._files = db["fs.files"]
        self._bucket = GridFSBucket(db)
        self._sort_indexes: set[str] = {"_created"}
        #: The records of the collections only FGLab writes, each in its own module.
        self.projects = ProjectRecord(db)
        self.webhooks = WebhookRecord(db)
        self.tokens = TokenRecord(db)
        self.sessions = SessionRecord(db)
        self.sweeps = SweepRecord(db)

    def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        self.projects.ensure_indexes()
        experiments.ensure_indexes(self._db)
        self.sweeps.ensure_indexes()
        history.ensure_indexes(self._db)
        self.webhooks.ensure_indexes()
        files.ensure_indexes(self._db)
        self.tokens.ensure_indexes()
        experiments.backfill_queue_at(self._db)

    # Experiments --------------------------------------------------------------------

    def new_experiment(
        self,
        project_id: ObjectId,
        options: Mapping[str, Any],
        *,
        experiment_id: ObjectId | None = None,
        reservation: Reservation | None = None,
        extra: Mapping[str, Any] | None = None,
        priority: int = 0,
    ) -> ObjectId:
        """Store a queued experiment, or a dispatched one under `reservation`."""
        return experiments.insert(
            self._db,
            project_id,
            options,
            experiment_id=experiment_id,
            reservation=reservation,
            extra=extra,
            priority=priority,
        )

    def new_experiments(
        self,
        project_id: ObjectId,
        option_sets: list[dict[str, Any]],
        *,
        extra: Mapping[str, Any] | None = None,
        priority: int = 0,
    ) -> list[ObjectId]:
        """Store queued experiments in one write; the dispatcher places them."""
        return experiments.insert_many(
            self._db, project_id, option_sets, extra=extra, priority=priority
        )

    def experiment_count(self) -> int:
        """How many experiments there are, from the collection's metadata (cheap)."""
        return self._experiments.estimated_document_count()

    def list_experiments(
        self, project_id: ObjectId | None = None, *, offset: int = 0, limit: int = 0
    ) -> Cursor:
        """Experiments oldest first (every one, or a project's), read in batches as the
        caller iterates: a list of millions never sits whole in memory. Ordered by
        ``_id`` (always indexed, and unique: pages by offset neither skip nor repeat);
        `limit` 0 means no limit."""
        query = {} if project_id is None else {"_project_id": project_id}
        cursor = self._experiments.find(query).sort("_id", ASCENDING).skip(offset)
        return cursor.limit(limit).batch_size(LIST_BATCH)

    def experiment_rows(
        self,
        project_id: ObjectId,
        *,
        sort: str = "_created",
        descending: bool = False,
        statuses: Collection[str] = (),
        where: Mapping[str, Any] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page of a project's experiments table: (how many match, the page's rows).

        Rows carry only what the table shows (`ROW_FIELDS`), never charts, logs or
        custom fields; a `limit` of 0 means every row. `sort` is a field path
        (``_scores.loss``, ``_options.lr``...); the index it needs is made on first use
        (`_sort_index`). `where` is a filter document (`fglab.table_query`) that
        replaces the project and `statuses` filter; it must name the project itself.
        """
        query = self._rows_query(project_id, statuses, where)
        cursor = self._rows_cursor(project_id, query, sort, descending)
        rows = list(cursor.skip(offset).limit(limit))
        # A first page that is not full holds every match: no count needed (the rows a
        # page polls by ID always are such a page).
        whole = not offset and (not limit or len(rows) < limit)
        if whole:
            total = len(rows)
        elif query == {"_project_id": project_id}:
            total = counts.total(self._db, project_id)  # the whole project: its counter
        else:
            total = self._experiments.count_documents(query)
        return total, rows

    def iter_experiment_rows(
        self,
        project_id: ObjectId,
        *,
        sort: str = "_created",
        descending: bool = False,
        where: Mapping[str, Any] | None = None,
        batch_size: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Every matching row, `ROW_FIELDS` only, read `batch_size` at a time from one
        cursor (for exports: memory stays flat whatever the count)."""
        query = self._rows_query(project_id, (), where)
        yield from self._rows_cursor(project_id, query, sort, descending).batch_size(batch_size)

    def score_names(
        self, project_id: ObjectId, where: Mapping[str, Any] | None = None, newest: int = 10_000
    ) -> list[str]:
        """The score names the `newest` matching experiments have, in order of first
        appearance (oldest experiment first, then the order within its scores).

        One aggregation that reads only ``_scores``; bounded by `newest` (through the
        ``_project_id, _created`` index) so a huge project costs a fixed amount. Scores
        kept in GridFS (too large for the document) are left out.
        """
        query = {
            "$and": [
                self._rows_query(project_id, (), where),
                {"_scores": {"$type": "object"}},
                {f"_scores.{LARGE_REF_KEY}": {"$exists": False}},
            ]
        }
        pipeline: list[dict[str, Any]] = [
            {"$match": query},
            {"$sort": {"_created": DESCENDING}},
            {"$limit": newest},
            {"$project": {"_created": 1, "k": {"$objectToArray": "$_scores"}}},
            {"$unwind": {"path": "$k", "includeArrayIndex": "i"}},
            {"$group": {"_id": "$k.k", "t": {"$min": "$_created"}, "i": {"$min": "$i"}}},
        ]
        found = list(self._experiments.aggregate(pipeline))
        found.sort(key=lambda doc: (doc.get("t") or now(), doc.get("i") or 0, str(doc["_id"])))
        return [str(doc["_id"]) for doc in found]

    def tag_counts(self, project_id: ObjectId, newest: int = 10_000) -> list[tuple[str, int]]:
        """The tags of the `newest` experiments of the project with how many have each,
        the most used first (then by name); bounded like `score_names`."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"_project_id": project_id, experiments.TAGS: {"$type": "array"}}},
            {"$sort": {"_created": DESCENDING}},
            {"$limit": newest},
            {"$unwind": "$" + experiments.TAGS},
            {"$group": {"_id": "$" + experiments.TAGS, "n": {"$sum": 1}}},
        ]
        found = [(str(d["_id"]), int(d["n"])) for d in self._experiments.aggregate(pipeline)]
        return sorted(found, key=lambda item: (-item[1], item[0]))

    def status_counts(self, project_id: ObjectId | None = None) -> dict[ObjectId, dict[str, int]]:
        """How many experiments each project (or just `project_id`) has in each status:
        its counter (`tasks.counts`), one small read whatever the number of experiments."""
        return counts.read(self._db, project_id)

    def repair_counts(self) -> list[ObjectId]:
        """Recount every project's experiments and set right the counters that are off."""
        return counts.repair(self._db, experiments.COLLECTION)

    def _rows_query(
        self,
        project_id: ObjectId,
        statuses: Collection[str],
        where: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if where is not None:
            return dict(where)
        query: dict[str, Any] = {"_project_id": project_id}
        if statuses:
            query["_status"] = {"$in": sorted(statuses)}
        return query

    def _rows_cursor(
        self, project_id: ObjectId, query: Mapping[str, Any], sort: str, descending: bool
    ) -> Cursor:
        self._sort_index(project_id, sort)
        direction = DESCENDING if descending else ASCENDING
        return self._experiments.find(query, dict.fromkeys(ROW_FIELDS, 1)).sort(
            [(sort, direction), ("_id", direction)]
        )

    def _sort_index(self, project_id: ObjectId, field: str) -> None:
        """Make the (project, field) index a table sorted by `field` needs, once a process
        (`tasks.experiments.ensure_sort_index`: only for a field the project has)."""
        if field in self._sort_indexes:
            return
        if experiments.ensure_sort_index(self._db, project_id, field):
            self._sort_indexes.add(field)

    def get_experiment(
        self, experiment_id: object, fields: Collection[str] | None = None
    ) -> dict[str, Any]:
        """The experiment (only `fields`, and ``_id``, when given); NotFound when missing."""
        oid = object_id(experiment_id, "Experiment ID")
        projection = None if fields is None else dict.fromkeys(fields, 1)
        doc = self._experiments.find_one({"_id": oid}, projection)
        if doc is None:
            raise NotFound(f"Experiment ID {experiment_id} does not exist")
        return doc

    def resolve_large_fields(self, doc: dict[str, Any]) -> dict[str, Any]:
        """`doc` with every field kept in GridFS (see `tasks.fields`) read back whole."""
        return resolve_large_fields(self._db, doc)

    def queue_position(self, doc: Mapping[str, Any]) -> int:
        """Where a queued experiment stands in the whole queue: 1 for the next one out."""
        key = doc.get("_queue_at") or doc["_created"]
        ahead = [
            {"_queue_at": {"$lt": key}},
            {"_queue_at": key, "_id": {"$lt": doc["_id"]}},
        ]
        return 1 + self._experiments.count_documents({"_status": str(Status.QUEUED), "$or": ahead})

    def move_to_front(self, experiment_id: object) -> dict[str, Any]:
        """Put a queued experiment first in the queue; Conflict when it is not queued."""
        oid = object_id(experiment_id, "Experiment ID")
        doc = experiments.move_to_front(self._db, oid)
        if doc is None:
            status = self.get_experiment(oid, ["_status"]).get("_status")
            raise Conflict(
                f"Experiment {experiment_id} is {status}, not queued; only a queued "
                "experiment can move to the front"
            )
        return doc

    def queued(self, skip_projects: Collection[ObjectId], limit: int) -> list[dict[str, Any]]:
        """The queued experiments that leave the queue first (ID, project, waiting
        reason), leaving out `skip_projects`."""
        query: dict[str, Any] = {"_status": str(Status.QUEUED)}
        if skip_projects:
            query["_project_id"] = {"$nin": list(skip_projects)}
        cursor = self._experiments.find(query, {"_project_id": 1, "_waiting": 1})
        return list(cursor.sort(list(experiments.QUEUE_ORDER)).limit(limit))

    def active_experiments(self) -> list[dict[str, Any]]:
        """Experiments holding a reservation: status, machine and dispatch time only.

        One equality query a status rather than one ``$in``: each is an index lookup on
        every server, where an ``$in`` reads the whole collection on the embedded one.
        """
        fields = {"_status": 1, "_machine_id": 1, "_dispatched": 1}
        return [
            doc
            for status in sorted(str(s) for s in ACTIVE)
            for doc in self._experiments.find({"_status": status}, fields)
        ]

    def experiments_moved_since(self, since: datetime) -> list[dict[str, Any]]:
        """Experiments that started or finished at `since` or later: project, machine,
        status and the two times only (`fglab up`'s console follows them)."""
        query = {"$or": [{"_started": {"$gte": since}}, {"_finished": {"$gte": since}}]}
        fields = {"_project_id": 1, "_machine_id": 1, "_status": 1, "_started": 1, "_finished": 1}
        return list(self._experiments.find(query, fields))

    def machine_experiments(self, machine_id: str) -> list[dict[str, Any]]:
        """The experiments a machine holds a reservation for, oldest first."""
        query = {"_machine_id": machine_id, "_status": {"$in": sorted(str(s) for s in ACTIVE)}}
        fields = dict.fromkeys((*ROW_FIELDS, "_project_id", "_gpu", "_dispatched"), 1)
        return list(self._experiments.find(query, fields).sort("_created", ASCENDING))

    def queued_for(
        self, project_ids: Collection[ObjectId], limit: int = 50
    ) -> tuple[int, list[dict[str, Any]]]:
        """The queued experiments of these projects in the order they leave the queue:
        (how many, the first `limit`), with ID, project, creation time, priority and
        waiting reason."""
        if not project_ids:
            return 0, []
        query = {"_status": str(Status.QUEUED), "_project_id": {"$in": list(project_ids)}}
        fields = {"_project_id": 1, "_created": 1, "_waiting": 1, "_priority": 1}
        cursor = self._experiments.find(query, fields).sort(list(experiments.QUEUE_ORDER))
        rows = list(cursor.limit(limit))
        total = len(rows) if len(rows) < limit else self._experiments.count_documents(query)
        return total, rows

    def set_fields(self, experiment_id: object, fields: Mapping[str, Any]) -> dict[str, Any]:
        """`$set` top-level fields (the original's PUT); returns the updated document."""
        oid = object_id(experiment_id, "Experiment ID")
        if not fields:
            return self.get_experiment(oid)
        doc = experiments.set_fields(self._db, oid, fields)
        if doc is None:
            raise NotFound(f"Experiment ID {experiment_id} does not exist")
        return doc

    def delete_experiment(self, experiment_id: object) -> None:
        oid = object_id(experiment_id, "Experiment ID")
        files.delete_files(self._db, {"metadata.experiment": oid})
        history.delete(self._db, [oid])
        if not experiments.delete(self._db, oid):
            raise NotFound(f"Experiment ID {experiment_id} does not exist")

    def delete_project_experiments(self, project_id: ObjectId) -> int:
        files.delete_files(self._db, {"metadata.project": project_id})
        return experiments.delete_project(self._db, project_id)

    # Sweeps' trials and progress ----------------------------------------------------

    def new_trial(
        self,
        project_id: ObjectId,
        options: Mapping[str, Any],
        experiment_id: ObjectId,
        sweep_id: ObjectId,
        number: int,
        priority: int = 0,
        tags: list[str] | None = None,
    ) -> bool:
        """Store a sweep's trial, queued with the sweep's `priority`, under the ID its
        claim chose; False when it already exists (made by another pass), so making a
        trial twice is harmless."""
        extra: dict[str, Any] = {experiments.SWEEP: sweep_id, experiments.TRIAL: number}
        if tags:
            extra[experiments.TAGS] = list(tags)
        try:
            experiments.insert(
                self._db,
                project_id,
                options,
                experiment_id=experiment_id,
                extra=extra,
                priority=priority,
            )
        except DuplicateKeyError:
            return False
        return True

    def sweep_trials(
        self, sweep_id: ObjectId, excluding: Collection[ObjectId] = ()
    ) -> list[dict[str, Any]]:
        """A sweep's trials (but those `excluding` names), by trial number: what the
        sweep's views and decisions read."""
        fields = dict.fromkeys(
            (
                "_trial", "_options", "_status", "_scores", "_exit", "_waiting", "_prune",
                "_project_id", "_started", "_finished", "_tags",
            ),
            1,
        )  # fmt: skip
        query: dict[str, Any] = {experiments.SWEEP: sweep_id}
        if excluding:
            query[experiments.ID] = {"$nin": list(excluding)}
        cursor = self._experiments.find(query, fields)
        return sorted(cursor, key=lambda doc: doc["_trial"])

    def history(self, experiment_id: object) -> list[dict[str, Any]]:
        """An experiment's reported (step, scores) points, oldest step first."""
        return history.points(self._db, object_id(experiment_id, "Experiment ID"))

    def histories(self, experiment_ids: Collection[ObjectId]) -> dict[ObjectId, list[dict]]:
        return history.points_of(self._db, experiment_ids)

    def request_prune(self, experiment_id: ObjectId, reason: str, step: int) -> dict | None:
        return experiments.request_prune(self._db, experiment_id, reason, step)

    # Status moves (the rules live in tasks.experiments) ------------------------------

    def dispatch(
        self, experiment_id: ObjectId, reservation: Reservation, tally: counts.Tally | None = None
    ) -> dict | None:
        return experiments.dispatch(self._db, experiment_id, reservation, tally)

    def flush_counts(self, tally: counts.Tally) -> None:
        tally.flush(self._db)

    def requeue(self, experiment_id: ObjectId) -> bool:
        return experiments.requeue(self._db, experiment_id)

    def cancel(self, experiment_id: ObjectId) -> dict | None:
        return experiments.cancel(self._db, experiment_id)

    def request_kill(self, experiment_id: ObjectId) -> dict | None:
        return experiments.request_kill(self._db, experiment_id)

    def lose(self, experiment_id: ObjectId, reason: str) -> dict | None:
        return experiments.lose(self._db, experiment_id, reason)

    def set_waiting(self, project_id: ObjectId, reason: str) -> int:
        return experiments.set_waiting(self._db, project_id, reason)

    # Files --------------------------------------------------------------------------

    def put_file(
        self,
        experiment: Mapping[str, Any],
        filename: str,
        data: IO[bytes],
        content_type: str | None,
    ) -> ObjectId:
        return files.put_experiment_file(
            self._db, experiment["_id"], experiment.get("_project_id"), filename, data, content_type
        )

    def delete_experiment_files(self, experiment_id: ObjectId) -> int:
        count = files.delete_files(self._db, {"metadata.experiment": experiment_id})
        experiments.forget_files(self._db, {experiments.ID: experiment_id})
        return count

    def delete_project_files(self, project_id: ObjectId) -> int:
        count = files.delete_files(self._db, {"metadata.project": project_id})
        experiments.forget_files(self._db, {experiments.PROJECT: project_id})
        return count

    def open_file(self, file_id: object) -> GridOut:
        oid = object_id(file_id, "File ID")
        try:
            return self._bucket.open_download_stream(oid)
        except NoFile:
            raise NotFound(f"File ID {file_id} does not exist") from None

    # Machines -----------------------------------------------------------------------

    def list_machines(self) -> list[dict[str, Any]]:
        return list(self._machines.find().sort("hostname", ASCENDING))

    def get_machine(self, machine_id: str) -> dict[str, Any]:
        doc = self.find_machine(machine_id)
        if doc is None:
            raise NotFound(f"Machine ID {machine_id} does not exist")
        return doc

    def find_machine(self, machine_id: str) -> dict[str, Any] | None:
        return self._machines.find_one({"_id": machine_id})

    def machine_gpu_history(self, machine_id: str) -> list[dict[str, Any]]:
        """The machine's kept GPU telemetry points (its last hour), oldest first."""
        return machines.gpu_history(self._db, machine_id)

    def machines_serving(self, project_id: ObjectId, since: datetime) -> list[dict[str, Any]]:
        """Machines that beat after `since` and implement the project, by name."""
        query = {"_heartbeat": {"$gt": since}, f"projects.{project_id}": {"$exists": True}}
        return list(self._machines.find(query).sort("_id", ASCENDING))

    def upsert_machine(self, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return machines.upsert(self._db, name, fields)

    def set_machine_fields(self, machine_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        doc = machines.set_fields(self._db, machine_id, fields)
        if doc is None:
            raise NotFound(f"Machine ID {machine_id} does not exist")
        return doc

    def drain_machine(self, machine_id: str, reason: str) -> dict[str, Any]:
        doc = machines.drain(self._db, machine_id, reason)
        if doc is None:
            raise NotFound(f"Machine ID {machine_id} does not exist")
        return doc

    def resume_machine(self, machine_id: str) -> dict[str, Any]:
        doc = machines.resume(self._db, machine_id)
        if doc is None:
            raise NotFound(f"Machine ID {machine_id} does not exist")
        return doc

    # Webhooks -----------------------------------------------------------------------

    def add_webhook(self, hook: Mapping[str, Any]) -> ObjectId:
        """Keep a hook, and mark its experiment so that its machine reports the event."""
        hook_id = self.webhooks.add(hook)
        experiment_id = _maybe_object_id(hook["object_id"])
        if experiment_id is not None:
            experiments.note_hook(self._db, experiment_id, hook["event"])
        return hook_id


def _maybe_object_id(value: object) -> ObjectId | None:
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        return None
