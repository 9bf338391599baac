"""`Client`: FGLab's API from Python, over HTTP with the standard library only."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from fglab.client.errors import NotFound
from fglab.client.objects import Experiment, Experiments, Sweep
from fglab.client.records import parse_objective
from fglab.client.transport import Transport

#: Where ``fglab up`` serves FGLab by default (``FGLAB_PORT``'s default, 5080).
DEFAULT_URL = "http://127.0.0.1:5080"
#: Bytes read at a time from an export.
CHUNK = 64 * 1024

_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")

#: A project given by name, by ID, or as the document `Client.project` returned.
ProjectRef = str | Mapping[str, Any]


class Client:
    """FGLab at `url` (default ``FGLAB_URL``, else http://127.0.0.1:5080), sending `token`
    (default ``FGLAB_TOKEN``) as ``Authorization: Bearer`` when FGLab has a PASSWORD.

    Every method raises a `fglab.client.errors.FGLabError` subclass carrying the API's
    message and status; `Unreachable` when nothing answers at the URL.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 30.0
    ) -> None:
        url = url or os.environ.get("FGLAB_URL") or DEFAULT_URL
        token = token or os.environ.get("FGLAB_TOKEN") or None
        self._transport = Transport(url, token, timeout)

    @property
    def url(self) -> str:
        return self._transport.url

    def __repr__(self) -> str:
        return f"<Client {self.url}>"

    # Projects ---------------------------------------------------------------------------

    def projects(self) -> list[dict[str, Any]]:
        """Every project (``_id``, ``name``, ``schema``), sorted by name."""
        return list(self._transport.json("GET", "/projects"))

    def project(self, project: ProjectRef) -> dict[str, Any]:
        """A project by name or ID. Raises NotFound naming it when there is none."""
        if isinstance(project, Mapping):
            return dict(project)
        if _OBJECT_ID.match(project):
            try:
                return dict(self._transport.json("GET", f"/projects/{project}"))
            except NotFound:
                pass  # a 24-hex-digit name is still a name
        for doc in self.projects():
            if doc.get("name") == project:
                return dict(doc)
        raise NotFound(f"Project {project!r} does not exist; `fglab projects` lists them", 404)

    # Submitting ---------------------------------------------------------------------------

    def submit(
        self,
        project: ProjectRef,
        options: Mapping[str, Any] | None = None,
        priority: int | None = None,
        timeout: float | None = None,
        tags: Sequence[str] | None = None,
    ) -> Experiment:
        """Submit one experiment; it waits in the queue until a machine has room.

        Options left out take the schema's defaults; FGLab validates the rest (a
        BadRequest names the first bad field, and nothing is stored). `timeout` is the
        run's wall-clock limit in seconds.
        """
        doc = self.project(project)
        answer = self._transport.json(
            "POST",
            f"/projects/{doc['_id']}/experiment",
            _submission(priority, timeout, tags, queue="true"),
            _with_defaults(doc, options or {}),
        )
        return Experiment(self._transport, answer["_id"]).refresh()

    def batch(
        self,
        project: ProjectRef,
        option_sets: Iterable[Mapping[str, Any]],
        priority: int | None = None,
        timeout: float | None = None,
        tags: Sequence[str] | None = None,
    ) -> list[Experiment]:
        """Submit several experiments in one request: all are stored, or none (the
        first invalid set is named)."""
        doc = self.project(project)
        body = [_with_defaults(doc, options) for options in option_sets]
        return self._submit_many(doc, "batch", _submission(priority, timeout, tags), body)

    def search(
        self,
        project: ProjectRef,
        method: str,
        spec: Mapping[str, Any] | None = None,
        evaluations: int | None = None,
        seed: int | None = None,
        priority: int | None = None,
        tags: Sequence[str] | None = None,
    ) -> list[Experiment]:
        """Submit a grid or random search (`method` "grid" or "random"); `spec` per
        field: numbers ``{min, max, steps, scale, base}``, others ``{values}``."""
        doc = self.project(project)
        body: dict[str, Any] = {"method": method, "spec": dict(spec or {})}
        if evaluations is not None:
            body["evaluations"] = evaluations
        if seed is not None:
            body["seed"] = seed
        return self._submit_many(doc, "search", _submission(priority, None, tags), body)

    def _submit_many(
        self, project: Mapping[str, Any], route: str, query: list[tuple[str, Any]], body: Any
    ) -> list[Experiment]:
        """POST to a project's `route` (batch, search); the experiments it made."""
        answer = self._transport.json("POST", f"/projects/{project['_id']}/{route}", query, body)
        return [Experiment(self._transport, i) for i in answer["_ids"]]

    def sweep(
        self,
        project: ProjectRef,
        method: str,
        space: Mapping[str, Any],
        objective: str | Mapping[str, Any] | None = None,
        budget: int | None = None,
        parallelism: int | None = None,
        seed: int | None = None,
        prune: Mapping[str, Any] | None = None,
        priority: int | None = None,
        tags: Sequence[str] | None = None,
    ) -> Sweep:
        """Start a sweep (`method` grid, random or bayes) over `space`; `objective` as
        ``"loss:min"`` or ``{"score": "loss", "goal": "minimize"}``.

        Raises ValueError for an objective text it cannot read, BadRequest for what
        FGLab refuses (nothing is stored either way).
        """
        doc = self.project(project)
        body: dict[str, Any] = {"method": method, "space": dict(space)}
        if objective is not None:
            body["objective"] = parse_objective(objective)
        for name, value in (
            ("budget", budget), ("parallelism", parallelism), ("seed", seed),
            ("prune", prune), ("priority", priority),
        ):  # fmt: skip
            if value is not None:
                body[name] = value
        if tags:
            body["tags"] = list(tags)
        answer = self._transport.json("POST", f"/projects/{doc['_id']}/sweeps", body=body)
        return Sweep(self._transport, answer["_id"]).refresh()

    # Reading ------------------------------------------------------------------------------

    def experiment(self, experiment_id: str) -> Experiment:
        """One experiment, read now. Raises NotFound when there is none."""
        return Experiment(self._transport, experiment_id).refresh()

    def get_sweep(self, sweep_id: str) -> Sweep:
        """One sweep, read now. Raises NotFound when there is none."""
        return Sweep(self._transport, sweep_id).refresh()

    def sweeps(self, project: ProjectRef) -> list[Sweep]:
        """A project's sweeps, newest first."""
        doc = self.project(project)
        views = self._transport.json("GET", f"/projects/{doc['_id']}/sweeps")
        return [Sweep(self._transport, view["_id"], view) for view in views]

    def experiments(
        self,
        project: ProjectRef,
        status: str | Sequence[str] | None = None,
        filter: str | Sequence[str] | None = None,
        sort: str | None = None,
        descending: bool = False,
        tags: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> Experiments:
        """A project's experiments, read a page at a time as iterated; ``.to_records()``
        gives flat dicts for ``pandas.DataFrame``.

        `filter` conditions are the table's (``_scores.loss<0.5``, ``_options.lr=0.1``);
        `sort` a field such as ``_created`` or ``_scores.loss``; `limit` stops after
        that many rows.
        """
        doc = self.project(project)
        return Experiments(
            self._transport,
            doc["_id"],
            _table_query(status, filter, sort, descending, tags),
            limit,
        )

    def export(
        self,
        project: ProjectRef,
        format: str = "csv",
        status: str | Sequence[str] | None = None,
        filter: str | Sequence[str] | None = None,
        sort: str | None = None,
        descending: bool = False,
        tags: Sequence[str] | None = None,
    ) -> Iterator[bytes]:
        """The project's export (`format` "csv" or "json") as it streams, in chunks."""
        if format not in {"csv", "json"}:
            raise ValueError(f"format is {format!r}; use 'csv' or 'json'")
        doc = self.project(project)
        answer = self._transport.open(
            "GET",
            f"/projects/{doc['_id']}/experiments.{format}",
            _table_query(status, filter, sort, descending, tags),
        )
        return _chunks(answer)


def _chunks(answer: Any) -> Iterator[bytes]:
    with answer:
        while chunk := answer.read(CHUNK):
            yield chunk


def _with_defaults(project: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's defaults, overridden by `options` (FGLab wants every field)."""
    schema = project.get("schema") or {}
    merged = {name: spec["default"] for name, spec in schema.items() if "default" in spec}
    merged.update(options)
    return merged


def _submission(
    priority: int | None, timeout: float | None, tags: Sequence[str] | None, **more: str
) -> list[tuple[str, Any]]:
    query: list[tuple[str, Any]] = [(name, value) for name, value in more.items()]
    query += [("priority", priority), ("timeout", timeout)]
    query += [("tag", tag) for tag in tags or ()]
    return query


def _table_query(
    status: str | Sequence[str] | None,
    filter: str | Sequence[str] | None,
    sort: str | None,
    descending: bool,
    tags: Sequence[str] | None,
) -> list[tuple[str, Any]]:
    query: list[tuple[str, Any]] = [("status", s) for s in _listed(status)]
    query += [("filter", condition) for condition in _listed(filter)]
    query += [("tag", tag) for tag in tags or ()]
    if sort:
        query.append(("sort", sort))
    if descending:
        query.append(("order", "desc"))
    return query


def _listed(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
