"""The experiments table: one sorted, filtered page of a project's experiments at a time.

The original's ``GET /projects/{id}/experiments`` answers every whole document; a
project with tens of thousands of experiments needs the server to sort, filter and page,
and to send only what a row shows.
"""

from __future__ import annotations

import re
from typing import Any

from flask import request
from flask_smorest import Blueprint

from fglab.api.params import int_arg
from fglab.errors import BadRequest
from fglab.extensions import services
from tasks.states import Status

blp = Blueprint("table", __name__, url_prefix="/api/v1", description="Experiments table")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Fields a table sorts by as they are; scores and options by ``_scores.<name>`` etc.
SORTABLE = ("_created", "_started", "_finished", "_status", "_id")
_NESTED = re.compile(r"^_(scores|options)\.[^.$\0]{1,200}$")

_PARAMETERS = [
    {
        "in": "query",
        "name": "sort",
        "schema": {"type": "string", "default": "_created"},
        "description": "Field to sort by: `_created`, `_started`, `_finished`, `_status`, "
        "or a score or option as `_scores.<name>`, `_options.<name>`",
    },
    {
        "in": "query",
        "name": "order",
        "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
    },
    {
        "in": "query",
        "name": "status",
        "schema": {"type": "array", "items": {"type": "string"}},
        "explode": True,
        "description": "Only these statuses (repeat the parameter for several)",
    },
    {"in": "query", "name": "offset", "schema": {"type": "integer", "minimum": 0}},
    {
        "in": "query",
        "name": "limit",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
]


@blp.route("/projects/<project_id>/experiments/table", methods=["GET"])
@blp.doc(parameters=_PARAMETERS)
@blp.response(
    200,
    description='`{"total", "offset", "limit", "rows": [...]}`: rows carry `_id`, `_status`, '
    "`_options`, `_scores`, `_created`, `_started`, `_finished`, `_notes`, `_machine_id`",
)
@blp.alt_response(400, description="A bad sort field, order, status, offset or limit")
@blp.alt_response(404, description="No such project")
def experiments_table(project_id: str) -> Any:
    """Read one sorted, filtered page of a project's experiments."""
    store = services().store
    project = store.get_project(project_id)
    sort = request.args.get("sort") or "_created"
    if sort not in SORTABLE and not _NESTED.match(sort):
        raise BadRequest(
            f"sort is {sort!r}; use one of {', '.join(SORTABLE)}, _scores.<name> or _options.<name>"
        )
    order = request.args.get("order") or "asc"
    if order not in {"asc", "desc"}:
        raise BadRequest(f"order is {order!r}; use 'asc' or 'desc'")
    statuses = request.args.getlist("status")
    unknown = sorted(set(statuses) - {str(s) for s in Status})
    if unknown:
        raise BadRequest(f"status {unknown[0]!r} is unknown; use one of {', '.join(Status)}")
    offset = int_arg("offset", 0, 0, 10**9)
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    total, rows = store.experiment_rows(
        project["_id"],
        sort=sort,
        descending=order == "desc",
        statuses=statuses,
        offset=offset,
        limit=limit,
    )
    return {"total": total, "offset": offset, "limit": limit, "rows": rows}
