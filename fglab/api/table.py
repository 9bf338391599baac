"""The experiments table: one sorted, filtered page of a project's experiments at a time,
the whole filtered set as CSV or JSON, and the score names the table's columns show.

The original's ``GET /projects/{id}/experiments`` answers every whole document; a
project with tens of thousands of experiments needs the server to sort, filter and page,
and to send only what a row shows. Which experiments match is `fglab.table_query`'s
decision; both routes read the same parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import request
from flask_smorest import Blueprint

from fglab.api.downloads import download
from fglab.api.params import MAX_OFFSET, int_arg
from fglab.csv_export import csv_lines, json_array
from fglab.errors import BadRequest
from fglab.extensions import services
from fglab.table_query import (
    MAX_IDS,
    PLAIN_FIELDS,
    QueryError,
    TableQuery,
    check_field,
    check_text,
    parse_condition,
    parse_ids,
    text_options,
)
from fglab.tags import TagError, parse_tags
from tasks.states import Status

blp = Blueprint("table", __name__, url_prefix="/api/v1", description="Experiments table")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Fields a table sorts by as they are; scores and options by ``_scores.<name>`` etc.
SORTABLE = PLAIN_FIELDS

_FILTERS = [
    {
        "in": "query",
        "name": "status",
        "schema": {"type": "array", "items": {"type": "string"}},
        "explode": True,
        "description": "Only these statuses (repeat the parameter for several)",
    },
    {
        "in": "query",
        "name": "tag",
        "schema": {"type": "array", "items": {"type": "string"}},
        "explode": True,
        "description": "Only experiments with every one of these tags (repeat the parameter, "
        "or comma-separate)",
    },
    {
        "in": "query",
        "name": "q",
        "schema": {"type": "string", "maxLength": 200},
        "description": "Free text: case-insensitive, in string and enum options and notes "
        "(or the experiment ID)",
    },
    {
        "in": "query",
        "name": "filter",
        "schema": {"type": "array", "items": {"type": "string"}},
        "explode": True,
        "description": "Conditions, all of which must hold: `<field><op><value>` with op "
        "`=`, `!=`, `<`, `<=`, `>`, `>=` or `~` (contains, case-insensitive); field "
        "`_scores.<name>`, `_options.<name>`, a custom field, `_machine_id`...; the value "
        "is read as JSON when it is JSON (`_options.L2=true`, `_scores.loss<0.5`)",
    },
    {
        "in": "query",
        "name": "ids",
        "schema": {"type": "array", "items": {"type": "string"}},
        "explode": True,
        "description": f"Only these experiments (repeated or comma-separated, at most "
        f"{MAX_IDS}): a page refreshing the rows it shows",
    },
    {
        "in": "query",
        "name": "sort",
        "schema": {"type": "string", "default": "_created"},
        "description": "Field to sort by: `_created`, `_started`, `_finished`, `_status`, "
        "`_machine_id`, a score or option as `_scores.<name>`, `_options.<name>`, or a "
        "custom field",
    },
    {
        "in": "query",
        "name": "order",
        "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
    },
]
_PAGING = [
    {
        "in": "query",
        "name": "offset",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
    },
    {
        "in": "query",
        "name": "limit",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
]


@blp.route("/projects/<project_id>/experiments/table", methods=["GET"])
@blp.doc(parameters=[*_FILTERS, *_PAGING])
@blp.response(
    200,
    description='`{"total", "offset", "limit", "rows": [...]}`: rows carry `_id`, `_status`, '
    "`_options`, `_scores`, `_created`, `_started`, `_finished`, `_notes`, `_machine_id`",
)
@blp.alt_response(400, description="A bad sort field, order, status, filter, ID, offset or limit")
@blp.alt_response(404, description="No such project")
def experiments_table(project_id: str) -> Any:
    """Read one sorted, filtered page of a project's experiments."""
    store = services().store
    project = store.projects.get(project_id)
    query, sort, descending = _read_query(project)
    offset = int_arg("offset", 0, 0, MAX_OFFSET)
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    total, rows = store.experiment_rows(
        project["_id"],
        sort=sort,
        descending=descending,
        where=query.to_mongo(project["_id"]),
        offset=offset,
        limit=limit,
    )
    return {"total": total, "offset": offset, "limit": limit, "rows": rows}


@blp.route("/projects/<project_id>/experiments.csv", methods=["GET"])
@blp.doc(parameters=_FILTERS)
@blp.response(
    200,
    content_type="text/csv",
    description="Every matching experiment, one line each, streamed: `_id`, `status`, a "
    "column per option, a column per score, `duration` (seconds), `tags` (comma-separated)",
)
@blp.alt_response(400, description="A bad sort field, order, status, filter or ID")
@blp.alt_response(404, description="No such project")
def experiments_csv(project_id: str) -> Any:
    """Export a project's experiments (the same filters as the table) as CSV."""
    store = services().store
    project = store.projects.get(project_id)
    query, sort, descending = _read_query(project)
    where = query.to_mongo(project["_id"])
    options = list(project["schema"])

    def lines() -> Iterator[str]:
        scores = store.score_names(project["_id"], where)
        rows = store.iter_experiment_rows(
            project["_id"], sort=sort, descending=descending, where=where
        )
        yield from csv_lines(rows, options, scores)

    return download(lines(), "text/csv", f"{project['name']}-experiments.csv")


@blp.route("/projects/<project_id>/experiments.json", methods=["GET"])
@blp.doc(parameters=_FILTERS)
@blp.response(
    200,
    content_type="application/json",
    description="Every matching experiment as a JSON array, streamed: the table's rows "
    "(`_id`, `_status`, `_options`, `_scores`, `_created`, `_started`, `_finished`, "
    "`_notes`, `_machine_id`, `_tags`)",
)
@blp.alt_response(400, description="A bad sort field, order, status, filter or ID")
@blp.alt_response(404, description="No such project")
def experiments_json(project_id: str) -> Any:
    """Export a project's experiments (the same filters as the table) as JSON."""
    store = services().store
    project = store.projects.get(project_id)
    query, sort, descending = _read_query(project)
    rows = store.iter_experiment_rows(
        project["_id"], sort=sort, descending=descending, where=query.to_mongo(project["_id"])
    )
    return download(json_array(rows), "application/json", f"{project['name']}-experiments.json")


@blp.route("/projects/<project_id>/scores", methods=["GET"])
@blp.response(200, description='`{"scores": [names]}`, in order of first appearance')
@blp.alt_response(404, description="No such project")
def score_names(project_id: str) -> Any:
    """List the score names a project's experiments reported so far (a sweep's objective
    is one of them)."""
    store = services().store
    project = store.projects.get(project_id)
    return {"scores": store.score_names(project["_id"])}


@blp.route("/projects/<project_id>/tags", methods=["GET"])
@blp.response(200, description='`{"tags": [{"tag": t, "count": n}]}`, the most used first')
@blp.alt_response(404, description="No such project")
def tag_counts(project_id: str) -> Any:
    """List the tags of a project's experiments, each with how many experiments have it
    (the table's tag chips; `?tag=` filters by them)."""
    store = services().store
    project = store.projects.get(project_id)
    return {"tags": [{"tag": t, "count": n} for t, n in store.tag_counts(project["_id"])]}


def _read_query(project: dict[str, Any]) -> tuple[TableQuery, str, bool]:
    """The filters, sort field and direction of this request; BadRequest names a bad one."""
    try:
        sort = check_field(request.args.get("sort") or "_created", "sort")
        order = request.args.get("order") or "asc"
        if order not in {"asc", "desc"}:
            raise QueryError(f"order is {order!r}; use 'asc' or 'desc'")
        statuses = request.args.getlist("status")
        unknown = sorted(set(statuses) - {str(s) for s in Status})
        if unknown:
            raise QueryError(f"status {unknown[0]!r} is unknown; use one of {', '.join(Status)}")
        ids = request.args.getlist("ids")
        try:
            tags = parse_tags(request.args.getlist("tag"))
        except TagError as e:
            raise QueryError(str(e)) from None
        query = TableQuery(
            statuses=statuses,
            text=check_text(request.args.get("q") or ""),
            conditions=[parse_condition(c) for c in request.args.getlist("filter")],
            ids=parse_ids(ids) if ids else None,
            tags=tags,
            text_options=text_options(project["schema"]),
        )
    except QueryError as e:
        raise BadRequest(str(e)) from None
    return query, sort, order == "desc"
