"""Upload what a running experiment writes into its results folder.

The program writes into ``<results>/<experiment id>/``; `ResultsSync.sync` is called
every second or so while it runs and once more, with ``final=True``, after it exits:

- ``*.json`` files holding a JSON object set top-level fields on the experiment (values
  too large for the document go to GridFS, see `tasks.fields`); they are not stored as
  files. Fields starting with ``_`` are FGLab's, except ``_scores``, ``_notes``,
  ``_charts`` and ``_step``. A file with a whole-number ``_step`` and a ``_scores``
  object also adds that point to the experiment's history (`tasks.history`).
- Every other file goes to GridFS under its path relative to the folder ("/"-separated),
  replacing the earlier version; ``_files`` lists each name once.
- Problems (bad JSON on the final pass, a reserved field, a file over the size limit, a
  symbolic link) are recorded once each in the experiment's ``_result_notes``.

A file is read and uploaded again only when its size or mtime changed. MongoDB errors
leave the file pending for the next pass; they never escape `sync`. The folder is left
in place: the runner removes it once a final pass reports `SyncReport.all_landed`.
"""

from __future__ import annotations

import io
import json
import logging
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bson import ObjectId
from bson.errors import InvalidDocument
from pymongo.database import Database
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError

from tasks import experiments, history
from tasks.fields import LARGE_FIELD_BYTES, is_large_ref, store_field_value
from tasks.files import DEFAULT_CONTENT_TYPE, put_experiment_file

logger = logging.getLogger(__name__)

#: Fields starting with "_" that result files may set; the others belong to FGLab.
WRITABLE_RESERVED_FIELDS = frozenset({"_scores", "_notes", "_charts", "_step"})

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)

Signature = tuple[int, int]  # (size in bytes, mtime in ns)


@dataclass(frozen=True)
class SyncReport:
    """What one pass over the results folder did."""

    #: Relative names uploaded to GridFS or applied as fields in this pass.
    uploaded: tuple[str, ...] = ()
    #: Names that could not land yet (MongoDB error, JSON still being written); retried.
    pending: tuple[str, ...] = ()
    #: Notes recorded on the experiment in this pass.
    notes: tuple[str, ...] = ()
    #: Steps whose (step, scores) point was new to the history in this pass.
    steps: tuple[int, ...] = ()

    @property
    def all_landed(self) -> bool:
        """Whether nothing is pending, so the folder may be removed after a final pass."""
        return not self.pending


class _Pending(Exception):
    """A file that could not land in this pass; the message says why."""


class ResultsSync:
    """Keeps one experiment's results folder uploaded; one instance per experiment run."""

    def __init__(
        self,
        db: Database,
        folder: Path,
        experiment_id: ObjectId,
        project_id: ObjectId | None,
        *,
        max_file_bytes: int,
        field_limit: int = LARGE_FIELD_BYTES,
    ) -> None:
        self._db = db
        self._folder = Path(folder)
        self._experiment_id = experiment_id
        self._project_id = project_id
        self._max_file_bytes = max_file_bytes
        self._field_limit = field_limit
        self._landed: dict[str, Signature] = {}
        self._oversized: set[str] = set()
        self._recorded_notes: set[str] = set()
        # Notes not yet recorded on the experiment, with the name they are about.
        self._unrecorded_notes: dict[str, str] = {}
        self._new_steps: list[int] = []
        #: Field -> whether its last stored value went to GridFS. A field not in it may
        #: have a large value from an earlier worker: its first store looks for one.
        self._large: dict[str, bool] = {}

    @property
    def folder(self) -> Path:
        return self._folder

    def sync(self, *, final: bool = False, json_only: bool = False) -> SyncReport:
        """Upload what is new or changed since the last pass; never raises MongoDB errors.

        With ``final=True`` a ``*.json`` file that is not a JSON object is kept as a file
        (with a note) instead of being waited on as possibly half-written. `json_only`
        looks at the ``*.json`` files alone (a quick pass for a reported step).
        """
        uploaded: list[str] = []
        pending: list[str] = []
        # Once MongoDB cannot be reached the rest of the pass would only wait out one
        # server-selection timeout per file: they stay pending for the next pass.
        unreachable = False
        for name, path, entry in self._walk():
            if json_only and not name.lower().endswith(".json"):
                continue
            if entry is None:
                self._note(name, f"{name}: symbolic link not followed")
                continue
            if unreachable:
                if self._unlanded(name, entry):
                    pending.append(name)
                continue
            try:
                if self._sync_file(name, path, entry, final=final):
                    uploaded.append(name)
            except _Pending as e:
                if e.args:
                    logger.warning(
                        "experiment %s: result %r not uploaded yet: %s",
                        self._experiment_id,
                        name,
                        e.args[0],
                    )
                pending.append(name)
                unreachable = isinstance(e.__cause__, ServerSelectionTimeoutError)
        notes = () if unreachable else self._record_notes()
        pending.extend(n for n in sorted(set(self._unrecorded_notes.values())) if n not in pending)
        steps, self._new_steps = tuple(self._new_steps), []
        return SyncReport(tuple(uploaded), tuple(pending), notes, steps)

    # Walking -------------------------------------------------------------------------

    def _walk(self) -> list[tuple[str, str, os.DirEntry[str] | None]]:
        """(relative name, path, entry) of each regular file by name; entry None for a link."""
        found: list[tuple[str, str, os.DirEntry[str] | None]] = []
        stack: list[tuple[str, str]] = [(str(self._folder), "")]
        while stack:
            directory, prefix = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except FileNotFoundError:
                continue  # not created yet, or removed while we walk
            except OSError as e:
                logger.warning(
                    "experiment %s: cannot list %s: %s", self._experiment_id, directory, e
                )
                continue
            subdirs: list[tuple[str, str]] = []
            for entry in entries:
                name = prefix + entry.name
                try:
                    if entry.is_symlink():
                        found.append((name, entry.path, None))
                    elif entry.is_dir(follow_symlinks=False):
                        subdirs.append((entry.path, name + "/"))
                    elif entry.is_file(follow_symlinks=False):
                        found.append((name, entry.path, entry))
                    # FIFOs, sockets and devices are no results; skip them quietly.
                except OSError:
                    continue  # removed while we looked
            stack.extend(subdirs)
        return sorted(found, key=lambda item: item[0])

    # One file ------------------------------------------------------------------------

    def _unlanded(self, name: str, entry: os.DirEntry[str]) -> bool:
        """Whether a file changed since it last landed (and is not over the limit)."""
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return False
        unchanged = self._landed.get(name) == (st.st_size, st.st_mtime_ns)
        return not unchanged and st.st_size <= self._max_file_bytes

    def _sync_file(self, name: str, path: str, entry: os.DirEntry[str], *, final: bool) -> bool:
        """Upload or apply one file if it changed; True when something landed."""
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return False
        if self._landed.get(name) == (st.st_size, st.st_mtime_ns):
            return False
        if st.st_size > self._max_file_bytes:
            self._note_oversized(name, st.st_size)
            return False
        read = self._read(name, path)
        if read is None:
            return False
        data, signature = read
        if signature[0] > self._max_file_bytes:
            self._note_oversized(name, signature[0])
            return False
        if name.lower().endswith(".json"):
            landed = self._apply_json(name, data, final=final)
        else:
            self._put(name, data)
            landed = True
        if landed:
            self._landed[name] = signature
        return landed

    def _read(self, name: str, path: str) -> tuple[bytes, Signature] | None:
        """The file's bytes and the signature they belong to; None when it vanished."""
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as e:
            # ELOOP: replaced by a link since the walk (O_NOFOLLOW refused it).
            if os.path.islink(path):
                self._note(name, f"{name}: symbolic link not followed")
            else:
                self._note(name, f"{name}: could not be read ({e.strerror}); not uploaded")
            return None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            # Reading one byte past the limit tells a file that grew since fstat.
            data = f.read(self._max_file_bytes + 1)
        return data, (max(st.st_size, len(data)), st.st_mtime_ns)

    def _put(self, name: str, data: bytes) -> None:
        content_type = mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE
        try:
            put_experiment_file(
                self._db,
                self._experiment_id,
                self._project_id,
                name,
                io.BytesIO(data),
                content_type,
            )
        except PyMongoError as e:
            raise _Pending(f"MongoDB error: {e}") from e

    def _apply_json(self, name: str, data: bytes, *, final: bool) -> bool:
        """Set the fields of a JSON object file; False when it must be waited on."""
        problem: str | None
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as e:
            problem = str(e) or type(e).__name__
        else:
            problem = None if isinstance(value, dict) else f"top level is {_json_kind(value)}"
        if problem is not None:
            if not final:
                # Possibly still being written: try again next pass, quietly.
                raise _Pending()
            self._put(name, data)
            self._note(name, f"{name}: not a JSON object ({problem}); kept as a file")
            return True
        fields: dict[str, Any] = {}
        for key, field_value in value.items():
            refusal = _refusal(key)
            if refusal is not None:
                self._note(name, f"{name}: field {key!r} {refusal}; ignored")
                continue
            try:
                fields[key] = store_field_value(
                    self._db,
                    self._experiment_id,
                    self._project_id,
                    key,
                    field_value,
                    limit=self._field_limit,
                    was_large=self._large.get(key, True),
                )
            except (InvalidDocument, OverflowError) as e:
                self._note(
                    name, f"{name}: field {key!r} cannot be stored in MongoDB ({e}); ignored"
                )
            except PyMongoError as e:
                raise _Pending(f"MongoDB error: {e}") from e
        if fields:
            try:
                experiments.set_fields(self._db, self._experiment_id, fields)
                self._large.update((key, is_large_ref(v)) for key, v in fields.items())
                self._record_point(value)
            except PyMongoError as e:
                raise _Pending(f"MongoDB error: {e}") from e
        return True

    def _record_point(self, value: dict[str, Any]) -> None:
        """Add a reported (step, scores) point to the history when the file holds one."""
        step = history.read_step(value.get("_step"))
        scores = value.get("_scores")
        if step is None or not isinstance(scores, dict):
            return
        if history.record(self._db, self._experiment_id, step, scores):
            self._new_steps.append(step)

    # Notes ---------------------------------------------------------------------------

    def _note(self, name: str, note: str) -> None:
        if note not in self._recorded_notes:
            self._unrecorded_notes.setdefault(note, name)

    def _note_oversized(self, name: str, size: int) -> None:
        # Once per name: a file that keeps growing would otherwise add a note every pass.
        if name not in self._oversized:
            self._oversized.add(name)
            self._note(
                name,
                f"{name}: {size} bytes is over the upload limit of "
                f"{self._max_file_bytes} bytes; not uploaded",
            )

    def _record_notes(self) -> tuple[str, ...]:
        """Add the notes not yet on the experiment; on a MongoDB error keep them for later."""
        if not self._unrecorded_notes:
            return ()
        notes = list(self._unrecorded_notes)
        try:
            experiments.add_result_notes(self._db, self._experiment_id, notes)
        except PyMongoError as e:
            logger.warning(
                "experiment %s: %d result notes not recorded yet: %s",
                self._experiment_id,
                len(notes),
                e,
            )
            return ()
        self._recorded_notes.update(notes)
        self._unrecorded_notes.clear()
        return tuple(notes)


def _refusal(key: str) -> str | None:
    """Why a result file may not set field `key`, or None when it may."""
    if key.startswith("_") and key not in WRITABLE_RESERVED_FIELDS:
        return "is reserved for FGLab"
    if not key or key.startswith("$") or "." in key:
        return "is not a valid field name (it may not be empty, start with '$' or hold '.')"
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
