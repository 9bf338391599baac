"""Experiment logs: live from the Redis stream, from the kept GridFS log once it is gone.

Entry IDs are Redis stream IDs (``1712345678901-0``) while the stream exists, and kept-log
line numbers (``k-12``) after it expired; the two are different sequences, so an ID of
one kind read against the other starts from the beginning (the answer's ``source`` says
which one was read).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, request, stream_with_context
from flask_smorest import Blueprint
from redis import Redis, RedisError

from fglab.errors import BadRequest, NotFound, Unavailable
from fglab.extensions import services
from fglab.store import Store
from tasks.logs import END_MARK, META, decode_line, log_key
from tasks.states import TERMINAL

logger = logging.getLogger(__name__)

blp = Blueprint("logs", __name__, url_prefix="/api/v1", description="Experiment logs")

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
#: How long one XREAD waits for new entries, in milliseconds.
BLOCK_MS = 1000
#: Seconds of silence after which the event stream sends a comment, so proxies keep it.
KEEPALIVE_S = 15.0
#: Entries one XREAD returns at most while replaying.
REPLAY_BATCH = 500
#: What an EventSource waits before reconnecting after Redis failed, in milliseconds.
RETRY_MS = 5000

# Bounded: Redis stream IDs are two unsigned 64-bit numbers, and int() refuses huge digits.
_STREAM_ID = re.compile(r"^([0-9]{1,20})(?:-([0-9]{1,20}))?$")
_KEPT_ID = re.compile(r"^k-([0-9]{1,20})$")
_UINT64_MAX = 2**64 - 1

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
    after = request.args.get("after") or None
    live_after, kept_after = _parse_after(after)
    limit = _parse_limit(request.args.get("limit"))
    redis = services().redis
    key = log_key(str(experiment["_id"]))
    # Once the experiment ended, its kept log is the complete record (a live stream can
    # be trimmed, or restarted empty by a Redis restart); a reader already paging
    # through the live stream finishes there.
    prefer_kept = _kept_id(experiment) and (after is None or after.startswith("k-"))
    try:
        if not prefer_kept and redis is not None and redis.exists(key):
            return _live_page(redis, key, live_after, limit, after)
    except RedisError as error:
        if not _kept_id(experiment):
            logger.warning("Redis unreachable reading the log of %s: %s", experiment_id, error)
            raise Unavailable(
                "Redis is unreachable; the live log is unavailable, try again shortly"
            ) from error
    if _kept_id(experiment):
        entries, ended = _kept_page(store, experiment, kept_after, limit)
        last = entries[-1]["id"] if entries else (after if kept_after else None)
        return {"entries": entries, "last": last, "ended": ended, "source": "kept"}
    return {
        "entries": [],
        "last": after,
        "ended": experiment.get("_status") in TERMINAL,
        "source": "none",
    }


@blp.route("/experiments/<experiment_id>/logs/stream", methods=["GET"])
@blp.doc(parameters=[_AFTER])
@blp.response(
    200,
    content_type="text/event-stream",
    description='Server-Sent Events: `id: <entry id>`, `data: {"s", "t"}`; an `end` event '
    "closes the output (close the EventSource then); `Last-Event-ID` resumes",
)
@blp.alt_response(400, description="A bad `after` or `Last-Event-ID`")
@blp.alt_response(404, description="No such experiment")
def stream_logs(experiment_id: str) -> Any:
    """Follow an experiment's stdout/stderr live, from the beginning or a given entry."""
    store = services().store
    experiment = store.get_experiment(experiment_id)
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or None
    live_after, kept_after = _parse_after(after)
    events = _events(services().redis, store, experiment, live_after, kept_after)
    return Response(
        stream_with_context(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# Pages ------------------------------------------------------------------------------


def _live_page(redis: Redis, key: str, after: str, limit: int, asked: str | None) -> dict[str, Any]:
    rows = redis.xrange(key, min=f"({after}", max="+", count=limit)
    entries: list[dict[str, str]] = []
    last = asked
    ended = False
    for entry_id, fields in rows:
        last = _text(entry_id)
        stream, text = _entry(fields)
        if stream == END_MARK:
            ended = True
            break
        entries.append({"id": last, "s": stream, "t": text})
    if not rows:
        ended = _ended_before(redis, key, after)
    return {"entries": entries, "last": last, "ended": ended, "source": "live"}


def _kept_page(
    store: Store, experiment: dict[str, Any], after: int, limit: int | None
) -> tuple[list[dict[str, str]], bool]:
    """Entries of the kept log after line `after`; True when its end was reached."""
    entries: list[dict[str, str]] = []
    with store.open_file(_kept_id(experiment)) as kept:
        for number, line in enumerate(kept, start=1):
            if number <= after:
                continue
            if limit is not None and len(entries) >= limit:
                return entries, False
            entries.append({"id": f"k-{number}", **_decode(line)})
    return entries, True


# Events -----------------------------------------------------------------------------


def _events(
    redis: Redis | None, store: Store, experiment: dict[str, Any], after: str, kept_after: int
) -> Iterator[str]:
    """The event stream: replay, then follow until the end mark (or the client leaves)."""
    key = log_key(str(experiment["_id"]))
    if redis is None or (_kept_id(experiment) and not after.strip("0-")):
        yield from _kept_events(store, experiment, kept_after)
        return
    last = after
    quiet_since = time.monotonic()
    try:
        if not redis.exists(key):
            if _kept_id(experiment) or experiment.get("_status") in TERMINAL:
                yield from _kept_events(store, experiment, kept_after)
                return
        elif _ended_before(redis, key, last):
            yield _end_event(None)
            return
    except RedisError as error:
        yield from _redis_failed(error, store, experiment, kept_after)
        return
    while True:
        try:
            rows = _xread(redis, key, last)
        except RedisError as error:
            yield from _redis_failed(error, store, experiment, kept_after)
            return
        for entry_id, fields in rows:
            last = _text(entry_id)
            stream, text = _entry(fields)
            if stream == END_MARK:
                yield _end_event(last)
                return
            yield f"id: {last}\ndata: {json.dumps({'s': stream, 't': text})}\n\n"
        if rows:
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since >= KEEPALIVE_S:
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()
            # The stream may have expired while we waited; the kept log has the rest.
            try:
                current = store.get_experiment(experiment["_id"])
            except NotFound:
                yield _end_event(None)
                return
            try:
                gone = not redis.exists(key)
            except RedisError as error:
                yield from _redis_failed(error, store, current, kept_after)
                return
            if gone and (_kept_id(current) or current.get("_status") in TERMINAL):
                yield from _kept_events(store, current, kept_after)
                return


def _kept_events(store: Store, experiment: dict[str, Any], after: int) -> Iterator[str]:
    if _kept_id(experiment):
        entries, _ = _kept_page(store, experiment, after, None)
        for entry in entries:
            data = json.dumps({"s": entry["s"], "t": entry["t"]})
            yield f"id: {entry['id']}\ndata: {data}\n\n"
    yield _end_event(None)


def _redis_failed(
    error: RedisError, store: Store, experiment: dict[str, Any], kept_after: int
) -> Iterator[str]:
    """Serve the kept log, or tell the EventSource to come back later."""
    logger.warning("Redis unreachable streaming the log of %s: %s", experiment["_id"], error)
    if _kept_id(experiment):
        yield from _kept_events(store, experiment, kept_after)
        return
    message = json.dumps({"error": "Redis is unreachable; reconnecting"})
    yield f"retry: {RETRY_MS}\nevent: unavailable\ndata: {message}\n\n"


def _end_event(entry_id: str | None) -> str:
    head = f"id: {entry_id}\n" if entry_id else ""
    return f"{head}event: end\ndata: {{}}\n\n"


def _xread(redis: Redis, key: str, last: str) -> list[tuple[Any, Any]]:
    answer = redis.xread({key: last}, count=REPLAY_BATCH, block=BLOCK_MS)
    if not answer:
        return []
    if isinstance(answer, dict):  # RESP3
        return [row for rows in answer.values() for row in (rows[0] if rows else [])]
    return [row for _, rows in answer for row in rows]


# Helpers ----------------------------------------------------------------------------


def _parse_after(value: str | None) -> tuple[str, int]:
    """(stream ID, kept line) to read after; an ID of the other kind means the beginning."""
    if not value:
        return "0-0", 0
    if kept := _KEPT_ID.match(value):
        return "0-0", int(kept[1])
    if (live := _STREAM_ID.match(value)) and max(int(live[1]), int(live[2] or 0)) <= _UINT64_MAX:
        return f"{live[1]}-{live[2] or 0}", 0
    raise BadRequest(f"Log entry ID {value!r} is not valid; pass the `last` of a previous answer")


def _parse_limit(value: str | None) -> int:
    if not value:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit {value!r} is not usable; use an integer from 1 to {MAX_LIMIT}")
    return limit


def _ended_before(redis: Redis, key: str, after: str) -> bool:
    """True when the stream's end mark is at or before `after` (nothing more will come)."""
    newest = redis.xrevrange(key, count=1)
    if not newest:
        return False
    entry_id, fields = newest[0]
    return _entry(fields)[0] == END_MARK and _id_tuple(_text(entry_id)) <= _id_tuple(after)


def _id_tuple(entry_id: str) -> tuple[int, int]:
    first, _, second = entry_id.partition("-")
    return int(first), int(second or 0)


def _kept_id(experiment: dict[str, Any]) -> Any:
    summary = experiment.get("_log")
    return summary.get("file_id") if isinstance(summary, dict) else None


def _entry(fields: dict[Any, Any]) -> tuple[str, str]:
    stream = fields.get(b"s", fields.get("s", b""))
    text = fields.get(b"t", fields.get("t", b""))
    return _text(stream), _text(text)


def _decode(line: bytes) -> dict[str, str]:
    try:
        return decode_line(line)
    except ValueError:
        return {"s": META, "t": "[unreadable kept-log line]"}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
