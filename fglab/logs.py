"""Reading an experiment's logs: the live Redis stream, or the kept GridFS log once it is gone.

Entry IDs are Redis stream IDs (``1712345678901-0``) while the stream exists, and kept-log
line numbers (``k-12``) after it expired; the two are different sequences, so an ID of
one kind read against the other starts from the beginning (an answer's ``source`` says
which one was read). `read_page` serves the JSON route a page at a time; `follow` is the
Server-Sent Events engine of the streaming route.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from redis import Redis, RedisError

from fglab.errors import BadRequest, NotFound, Unavailable
from fglab.store import Store
from tasks.logs import END_MARK, META, decode_line, log_key
from tasks.states import TERMINAL

logger = logging.getLogger(__name__)

#: How long one XREAD waits for new entries, in milliseconds.
BLOCK_MS = 1000
#: Seconds of silence after which the event stream sends a comment, so proxies keep it.
KEEPALIVE_S = 15.0
#: Entries one XREAD returns at most while replaying.
REPLAY_BATCH = 500
#: What an EventSource waits before reconnecting after Redis failed, in milliseconds.
RETRY_MS = 5000
#: What an EventSource waits before reconnecting after a stream's lifetime, in milliseconds.
RECONNECT_MS = 1000
#: Log entries `stderr_tail` looks back through (entries hold up to a few KiB each).
TAIL_SCAN = 200

# Bounded: Redis stream IDs are two unsigned 64-bit numbers, and int() refuses huge digits.
_STREAM_ID = re.compile(r"^([0-9]{1,20})(?:-([0-9]{1,20}))?$")
_KEPT_ID = re.compile(r"^k-([0-9]{1,20})$")
_UINT64_MAX = 2**64 - 1


def read_page(
    redis: Redis | None, store: Store, experiment: dict[str, Any], after: str | None, limit: int
) -> dict[str, Any]:
    """Entries after `after` (or from the beginning), at most `limit` of them, as
    ``{"entries": [{"id", "s", "t"}], "last", "ended", "source"}``.

    Raises BadRequest for a malformed `after`, Unavailable when Redis is unreachable and
    no kept log exists.
    """
    live_after, kept_after = parse_after(after)
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
            logger.warning("Redis unreachable reading the log of %s: %s", experiment["_id"], error)
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


def follow(
    redis: Redis | None,
    store: Store,
    experiment: dict[str, Any],
    after: str | None,
    *,
    lifetime: float | None = None,
    client_gone: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """Server-Sent Events from after `after`: replay, then follow until the end mark.

    After `lifetime` seconds of following, the stream ends with a ``retry:`` line (the
    EventSource reconnects with Last-Event-ID and resumes); it ends silently once
    `client_gone()` says the client left. Both are checked at least every `BLOCK_MS`.
    Raises BadRequest (before yielding) for a malformed `after`.
    """
    live_after, kept_after = parse_after(after)
    return _events(redis, store, experiment, live_after, kept_after, lifetime, client_gone)


def stderr_tail(
    redis: Redis | None, store: Store, experiment: dict[str, Any], lines: int = 20
) -> str:
    """The last `lines` lines the program wrote to stderr ("" when none, or unreadable).

    Reads the kept log once there is one (it holds the whole tail), else the newest
    `TAIL_SCAN` entries of the live stream. For a page: a failure here is logged, not raised.
    """
    chunks: list[str] = []
    try:
        if _kept_id(experiment):
            with store.open_file(_kept_id(experiment)) as kept:
                recent: deque[str] = deque(maxlen=TAIL_SCAN)
                for line in kept:
                    entry = _decode(line)
                    if entry["s"] == "err":
                        recent.append(entry["t"])
                chunks = list(recent)
        elif redis is not None:
            rows = redis.xrevrange(log_key(str(experiment["_id"])), count=TAIL_SCAN)
            chunks = [
                text
                for stream, text in map(_entry, (f for _, f in reversed(rows)))
                if stream == "err"
            ]
    except (RedisError, NotFound, OSError) as error:
        logger.warning("could not read the stderr of %s: %s", experiment["_id"], error)
        return ""
    text = "".join(chunks).rstrip("\n")
    return "\n".join(text.split("\n")[-lines:]) if text else ""


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
    redis: Redis | None,
    store: Store,
    experiment: dict[str, Any],
    after: str,
    kept_after: int,
    lifetime: float | None,
    client_gone: Callable[[], bool] | None,
) -> Iterator[str]:
    """The event stream: replay, then follow until the end mark, the lifetime's end or
    the client leaving."""
    key = log_key(str(experiment["_id"]))
    deadline = None if lifetime is None else time.monotonic() + lifetime
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
    # At once: waitress sends the headers with the first bytes, and the EventSource opens
    # (or a script sees its answer) without waiting for the program's first line.
    yield ": keepalive\n\n"
    while True:
        if client_gone is not None and client_gone():
            return
        if deadline is not None and time.monotonic() >= deadline:
            # No `end` event: the EventSource reconnects and resumes after `last`, and
            # this request thread is free for someone else meanwhile.
            yield f"retry: {RECONNECT_MS}\n\n"
            return
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


def parse_after(value: str | None) -> tuple[str, int]:
    """(stream ID, kept line) to read after; an ID of the other kind means the beginning."""
    if not value:
        return "0-0", 0
    if kept := _KEPT_ID.match(value):
        return "0-0", int(kept[1])
    if (live := _STREAM_ID.match(value)) and max(int(live[1]), int(live[2] or 0)) <= _UINT64_MAX:
        return f"{live[1]}-{live[2] or 0}", 0
    raise BadRequest(f"Log entry ID {value!r} is not valid; pass the `last` of a previous answer")


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
