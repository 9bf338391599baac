"""Experiment logs: live from the Redis stream, from the kept GridFS log once it is gone.

Reading lives in `fglab.logs`; these routes parse the request and shape its answers.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request, stream_with_context
from flask_limiter.util import get_remote_address
from flask_smorest import Blueprint

from fglab.api.params import int_arg
from fglab.extensions import services
from fglab.logs import follow, read_page
from fglab.streams import stream_slots

blp = Blueprint("logs", __name__, url_prefix="/api/v1", description="Experiment logs")

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000

_AFTER = {
    "name": "after",
    "in": "query",
    "schema": {"type": "string"},
    "description": "Return entries after this ID (the `last` of a previous answer); "
    "default: from the beginning",
}
_LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    "description": "Most entries to return",
}


@blp.route("/experiments/<experiment_id>/logs", methods=["GET"])
@blp.doc(parameters=[_AFTER, _LIMIT])
@blp.response(
    200,
    description='`{"entries": [{"id", "s", "t"}], "last", "ended", "source"}`; `s` is '
    '"out", "err" or "meta"; pass `last` as `after` for the next page; `ended` once the '
    "experiment's output is complete",
)
@blp.alt_response(400, description="A bad `after` or `limit`")
@blp.alt_response(404, description="No such experiment")
@blp.alt_response(503, description="Redis is unreachable and no kept log exists")
def get_logs(experiment_id: str) -> Any:
    """Read an experiment's stdout/stderr, a page at a time."""
    store = services().store
    experiment = store.get_experiment(experiment_id)
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    after = request.args.get("after") or None
    return read_page(services().redis, store, experiment, after, limit)


@blp.route("/experiments/<experiment_id>/logs/stream", methods=["GET"])
@blp.doc(parameters=[_AFTER])
@blp.response(
    200,
    content_type="text/event-stream",
    description='Server-Sent Events: `id: <entry id>`, `data: {"s", "t"}`; an `end` event '
    "closes the output (close the EventSource then); `Last-Event-ID` resumes. A stream "
    "ends after `FGLAB_STREAM_LIFETIME` seconds with a `retry:` line and no `end` event: "
    "reconnect (an EventSource does so itself)",
)
@blp.alt_response(400, description="A bad `after` or `Last-Event-ID`")
@blp.alt_response(404, description="No such experiment")
@blp.alt_response(
    429, description="This client has `FGLAB_STREAMS_PER_CLIENT` streams open (`Retry-After`)"
)
@blp.alt_response(503, description="`FGLAB_STREAMS_MAX` streams are open (`Retry-After`)")
def stream_logs(experiment_id: str) -> Any:
    """Follow an experiment's stdout/stderr live, from the beginning or a given entry."""
    store = services().store
    experiment = store.get_experiment(experiment_id)
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or None
    events = follow(
        services().redis,
        store,
        experiment,
        after,
        lifetime=services().settings.stream_lifetime,
        # Only waitress (with channel_request_lookahead) notices a client that left.
        client_gone=request.environ.get("waitress.client_disconnected"),
    )
    # Last, once nothing else can refuse the request: the slot is released by the response.
    slot = stream_slots().admit(get_remote_address())
    return Response(
        slot.hold(stream_with_context(events)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
