"""What the client hands back: an `Experiment`, a `Sweep`, and `Experiments`, a query
over a project's table. Each holds the `Transport` it was read through."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from fglab.client.errors import FGLabError, NotFound, WaitTimeout
from fglab.client.records import to_record
from fglab.client.transport import Transport, sse_events
from tasks.states import TERMINAL, Status

#: An experiment in one of these statuses never changes again.
ENDED = frozenset(str(status) for status in TERMINAL)
#: A sweep in one of these states makes no more trials (``fglab.sweeps.record``'s).
SWEEP_ENDED = frozenset({"finished", "cancelled"})
#: Log entries one page of ``GET .../logs`` returns at most.
LOG_PAGE = 1000
#: Rows one page of the table route returns at most (the route's own limit).
TABLE_PAGE = 500
#: Seconds an idle log stream may stay silent: the server sends a comment every 15.
STREAM_TIMEOUT = 60.0


@dataclass(frozen=True)
class LogEntry:
    """A chunk of a run's output: `stream` is "out", "err" or "meta" (FGLab's own notes);
    `text` keeps its newlines."""

    stream: str
    text: str
    id: str | None = None


class _Remote:
    """Something FGLab keeps at ``<COLLECTION>/<id>``; `doc` is its document as last read
    (read on first use; `refresh` reads it again)."""

    COLLECTION = ""

    def __init__(self, transport: Transport, id: str, doc: dict[str, Any] | None = None) -> None:
        self._transport = transport
        self.id = str(id)
        self._doc = doc

    @property
    def doc(self) -> dict[str, Any]:
        if self._doc is None:
            self.refresh()
        assert self._doc is not None
        return self._doc

    def refresh(self) -> Self:
        """Read the whole document again; returns self."""
        self._doc = self._transport.json("GET", f"{self.COLLECTION}/{self.id}")
        return self


class Experiment(_Remote):
    """One experiment."""

    COLLECTION = "/experiments"

    def __repr__(self) -> str:
        return f"<Experiment {self.id} {self.status}>"

    @property
    def status(self) -> str | None:
        return self.doc.get("_status")

    @property
    def options(self) -> dict[str, Any]:
        return self.doc.get("_options") or {}

    @property
    def scores(self) -> dict[str, Any]:
        return self.doc.get("_scores") or {}

    @property
    def ended(self) -> bool:
        """Whether the status is terminal (success, fail, killed, timeout...)."""
        return self.status in ENDED

    @property
    def succeeded(self) -> bool:
        return self.status == Status.SUCCESS

    def wait(
        self,
        timeout: float | None = None,
        poll: float = 1.0,
        progress: Callable[[Experiment], None] | None = None,
    ) -> Experiment:
        """Block until the experiment ends, polling its status every `poll` seconds;
        returns self with the final document. `progress` is called after each poll.

        Raises WaitTimeout after `timeout` seconds (None: no limit); the run goes on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            fields = self._transport.json(
                "GET", f"/experiments/{self.id}", {"fields": "_status,_started,_finished"}
            )
            if self._doc is None:
                self._doc = {}
            self._doc.update(fields)
            if progress is not None:
                progress(self)
            if self.ended:
                return self.refresh()
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"Experiment {self.id} is still {self.status} after {timeout} s "
                    "(it goes on running)"
                )
            pause = poll if deadline is None else min(poll, deadline - time.monotonic())
            time.sleep(max(0.0, pause))

    def kill(self) -> Experiment:
        """Cancel it while it waits, or ask its machine to kill it; returns self.

        Raises Conflict when it has already ended.
        """
        self._doc = self._transport.json("POST", f"/experiments/{self.id}/kill")
        return self

    def rerun(self) -> Experiment:
        """Submit a new experiment with the same options, time limit and tags."""
        answer = self._transport.json("POST", f"/experiments/{self.id}/rerun")
        return Experiment(self._transport, answer["_id"]).refresh()

    def logs(self, follow: bool = False) -> Iterator[LogEntry]:
        """The run's output so far; with `follow`, live from the event stream until the
        run's output ends."""
        return self._stream() if follow else self._pages()

    def _pages(self) -> Iterator[LogEntry]:
        after = None
        while True:
            page = self._transport.json(
                "GET", f"/experiments/{self.id}/logs", {"after": after, "limit": LOG_PAGE}
            )
            for entry in page["entries"]:
                yield LogEntry(entry["s"], entry["t"], entry["id"])
            if len(page["entries"]) < LOG_PAGE:
                return
            after = page["last"]

    def _stream(self) -> Iterator[LogEntry]:
        with self._transport.open(
            "GET",
            f"/experiments/{self.id}/logs/stream",
            headers={"Accept": "text/event-stream"},
            timeout=STREAM_TIMEOUT,
        ) as answer:
            for event in sse_events(answer):
                if event.event == "end":
                    return
                if event.event == "unavailable":
                    raise FGLabError(json.loads(event.data).get("error", event.data), 503)
                if event.event == "message" and event.data:
                    data = json.loads(event.data)
                    yield LogEntry(data["s"], data["t"], event.id)

    def files(self) -> list[dict[str, Any]]:
        """The stored files, each ``{"_id", "filename", "mimetype"}`` (as last read)."""
        return list(self.doc.get("_files") or [])

    def download(self, name: str, dest: str | Path = ".") -> Path:
        """Save the stored file `name` to `dest` (a folder, or the file's path); the path.

        Raises NotFound when the experiment has no file of that name.
        """
        entry = next((f for f in self.refresh().files() if f.get("filename") == name), None)
        if entry is None:
            names = ", ".join(f.get("filename", "?") for f in self.files()) or "none"
            raise NotFound(f"Experiment {self.id} has no file {name!r} (its files: {names})", 404)
        target = Path(dest)
        if target.is_dir():
            target = target / Path(name).name
        with (
            self._transport.open("GET", f"/files/{entry['_id']}") as answer,
            target.open("wb") as out,
        ):
            shutil.copyfileobj(answer, out)
        return target


class Sweep(_Remote):
    """One sweep as the API shows it: settings, `state`, `counts`, `best`, `trials`."""

    COLLECTION = "/sweeps"

    def __repr__(self) -> str:
        return f"<Sweep {self.id} {self.state}>"

    @property
    def state(self) -> str | None:
        """running, paused, finished or cancelled."""
        return self.doc.get("state")

    @property
    def ended(self) -> bool:
        return self.state in SWEEP_ENDED

    @property
    def best(self) -> dict[str, Any] | None:
        """The best completed trial ``{trial, experiment, options, objective}``, or None."""
        return self.doc.get("best")

    def trials(self) -> list[dict[str, Any]]:
        """Every trial ``{trial, experiment, options, objective, status, reason}``."""
        return list(self.doc.get("trials") or [])

    def experiments(self) -> list[Experiment]:
        """The trials' experiments (read one by one)."""
        return [Experiment(self._transport, t["experiment"]) for t in self.trials()]

    def wait(
        self,
        timeout: float | None = None,
        poll: float = 2.0,
        progress: Callable[[Sweep], None] | None = None,
    ) -> Sweep:
        """Block until the sweep is finished or cancelled; returns self.

        Raises WaitTimeout after `timeout` seconds (None: no limit); the sweep goes on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh()
            if progress is not None:
                progress(self)
            if self.ended:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"Sweep {self.id} is still {self.state} after {timeout} s")
            pause = poll if deadline is None else min(poll, deadline - time.monotonic())
            time.sleep(max(0.0, pause))

    def kill(self) -> Sweep:
        """Cancel the sweep: queued trials are cancelled, running ones killed."""
        self._doc = self._move("cancel")
        return self

    def pause(self) -> Sweep:
        self._doc = self._move("pause")
        return self

    def resume(self) -> Sweep:
        self._doc = self._move("resume")
        return self

    def _move(self, move: str) -> dict[str, Any]:
        return self._transport.json("POST", f"/sweeps/{self.id}/{move}")


class Experiments:
    """A project's experiments matching a query, read a page at a time as iterated."""

    def __init__(
        self,
        transport: Transport,
        project_id: str,
        query: list[tuple[str, Any]],
        limit: int | None = None,
    ) -> None:
        self._transport = transport
        self._path = f"/projects/{project_id}/experiments/table"
        self._query = query
        self._limit = limit

    def __iter__(self) -> Iterator[Experiment]:
        for row in self.rows():
            yield Experiment(self._transport, row["_id"], row)

    def rows(self) -> Iterator[dict[str, Any]]:
        """The table's rows (``_id``, ``_status``, ``_options``, ``_scores``, times...)."""
        offset, left = 0, self._limit
        while left is None or left > 0:
            size = TABLE_PAGE if left is None else min(left, TABLE_PAGE)
            page = self._transport.json(
                "GET", self._path, [*self._query, ("offset", offset), ("limit", size)]
            )
            yield from page["rows"]
            offset += len(page["rows"])
            if left is not None:
                left -= len(page["rows"])
            if len(page["rows"]) < size or offset >= page["total"]:
                return

    @property
    def total(self) -> int:
        """How many experiments match (the limit aside)."""
        return int(self._transport.json("GET", self._path, [*self._query, ("limit", 1)])["total"])

    def to_records(self) -> list[dict[str, Any]]:
        """Every row as a flat dict (``options.lr``, ``scores.loss``...) for
        ``pandas.DataFrame(records)``."""
        return [to_record(row) for row in self.rows()]
