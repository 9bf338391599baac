"""An experiment's stdout/stderr: streamed live to Redis, kept as a bounded tail in GridFS.

A program may print hundreds of MB without pause, so the pipes are drained by threads
that never wait on Redis: they only decode and append in memory. One publisher thread
per sink sends what accumulated to the Redis stream (one XADD per coalesced chunk of up
to 64 KiB); when Redis is slow or down, live output is dropped (counted, and a ``meta``
notice marks the gap once Redis answers again) while the kept tail still gets it all.

A supervised run's output comes from its supervisor's output file instead of pipes
(`follow`); each live entry then carries its offset in that file, so a worker that
re-adopts the run goes on from where the stream stopped (`streamed_offset`).
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from bson import ObjectId
from pymongo.database import Database
from redis import Redis, RedisError

from tasks.files import put_kept_log
from tasks.logs import (
    END_MARK,
    META,
    OFFSET,
    STREAM_MAXLEN,
    STREAM_TTL_S,
    cut_notice,
    decode_line,
    encode_line,
    log_key,
)
from worker.changes import FileChanges, WakingEvent

logger = logging.getLogger(__name__)

#: Bytes one ``os.read`` asks for, and the most text one XADD carries.
READ_SIZE = 65536
#: Text waiting for the publisher beyond this is dropped from the live view (not from
#: the kept tail), so a stalled Redis costs bounded memory.
PENDING_LIMIT = 8 * 1024 * 1024
#: How long ``close`` waits for the publisher to send what is pending, in seconds.
CLOSE_FLUSH_S = 30.0
#: Seconds between looks at a followed output file for more.
FOLLOW_EVERY = 0.02
#: Seconds a follower with inotify waits without a write before it reads anyway.
FOLLOW_IDLE = 1.0

#: A pending or kept chunk: stream, text, UTF-8 size, offset in the followed file (or None).
Chunk = tuple[str, str, int, int | None]


def _size(text: str) -> int:
    """UTF-8 size of `text`, without encoding the common all-ASCII case."""
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="replace"))


class LogSink:
    """Collects one experiment's output: live to a Redis stream, kept as a bounded tail.

    Use: ``pump()`` each pipe, ``join()`` after the program exits, then ``close()``.
    Thread-safe; output from all pumps keeps one order, in Redis and in the kept log.
    """

    def __init__(
        self, redis: Redis, experiment_id: str, *, max_bytes: int, prefix: str = "fglab"
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"LogSink: max_bytes is {max_bytes!r}; use a positive byte count")
        self.experiment_id = str(experiment_id)
        self.key = log_key(self.experiment_id, prefix)
        self.max_bytes = max_bytes
        #: Raw bytes the pumps read (all of it, whatever happened next).
        self.bytes_read = 0
        #: UTF-8 bytes of text appended (program output and worker notices).
        self.total_bytes = 0
        #: Bytes the cap dropped from the front of the kept tail.
        self.cut_bytes = 0
        #: Bytes that never reached the Redis stream (Redis failed or lagged).
        self.unstreamed_bytes = 0
        self._redis = redis
        self._changed = threading.Condition(threading.Lock())
        self._kept: deque[tuple[str, str, int]] = deque()
        self._kept_bytes = 0
        self._pending: deque[Chunk] = deque()
        self._pending_bytes = 0
        self._gap = 0  # bytes missing from the stream since the last XADD that landed
        self._publisher: threading.Thread | None = None
        self._busy = False  # a batch is being sent
        self._pumps: list[threading.Thread] = []
        self._open_pumps = 0
        self._closed = False
        self._warned = False
        self._followed_all = WakingEvent()

    # Feeding -------------------------------------------------------------------------

    def pump(self, fd_or_file: int | IO[Any], stream: str) -> threading.Thread:
        """Drain a pipe into stream `stream` ("out", "err") on a daemon thread.

        The sink owns the descriptor or file from now on and closes it at EOF. Returns
        the started thread; ``join()`` waits for all of them.
        """
        self._check_stream(stream)
        if isinstance(fd_or_file, int):
            fd = fd_or_file

            def release() -> None:
                os.close(fd)

        else:
            fd = fd_or_file.fileno()
            release = fd_or_file.close
        thread = threading.Thread(
            target=self._drain,
            args=(fd, release, stream),
            name=f"log-{stream}-{self.experiment_id}",
            daemon=True,
        )
        with self._changed:
            self._open_pumps += 1
            self._pumps.append(thread)
        thread.start()
        return thread

    def follow(self, path: Path, *, publish_from: int = 0) -> threading.Thread:
        """Tail a supervisor's output file (kept-log lines) on a daemon thread.

        Lines that end at or before byte `publish_from` only refill the kept tail (a
        previous worker streamed them already); later ones are streamed live too. Reads
        until `stop_following()`, then to the end of the file. Returns the thread;
        ``join()`` waits for it like for a pump.
        """
        thread = threading.Thread(
            target=self._follow,
            args=(path, publish_from),
            name=f"log-follow-{self.experiment_id}",
            daemon=True,
        )
        with self._changed:
            self._open_pumps += 1
            self._pumps.append(thread)
        thread.start()
        return thread

    def stop_following(self) -> None:
        """The file is complete (the run ended): followers read to its end and stop."""
        self._followed_all.set()

    def streamed_offset(self) -> int:
        """How far into the followed file the live stream got (0 when it has nothing)."""
        try:
            entries = self._redis.xrevrange(self.key, count=100)
        except RedisError as error:
            logger.warning("Live log of %s: offset not read: %s", self.experiment_id, error)
            return 0
        for _, fields in entries:
            offset = fields.get(OFFSET.encode()) or fields.get(OFFSET)
            if offset is not None:
                return int(offset)
        return 0

    def write(self, stream: str, text: str) -> None:
        """Append a worker message (stream "meta", e.g. "could not start: ...")."""
        self._check_stream(stream)
        if text:
            self._append(stream, text, 0)

    def join(self, timeout: float | None = None) -> None:
        """Wait until every pump reached EOF and the live stream has what they read.

        With a timeout, returns when it runs out even if a pump is still open (a child
        the program left behind may hold the pipe). Sending to Redis is waited for at most
        CLOSE_FLUSH_S even without a timeout, so a stalled Redis cannot hang the caller.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._pumps):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        flush_by = time.monotonic() + CLOSE_FLUSH_S
        self._wait_sent(flush_by if deadline is None else min(deadline, flush_by))

    # Reading -------------------------------------------------------------------------

    def tail(self, stream: str, lines: int = 20) -> str:
        """The last `lines` lines of one stream, from the kept tail (no final newline)."""
        if lines <= 0:
            return ""
        parts: list[str] = []
        newlines = 0
        with self._changed:
            for name, text, _ in reversed(self._kept):
                if name != stream:
                    continue
                parts.append(text)
                newlines += text.count("\n")
                if newlines > lines:
                    break
        text = "".join(reversed(parts)).rstrip("\n")
        return "\n".join(text.split("\n")[-lines:]) if text else ""

    def kept_log(self) -> bytes:
        """The kept log as JSON lines; first a ``meta`` cut notice when the cap dropped output."""
        with self._changed:
            kept = list(self._kept)
            cut = self.cut_bytes
        lines = [encode_line(META, cut_notice(cut))] if cut else []
        lines.extend(encode_line(stream, text) for stream, text, _ in kept)
        return b"".join(lines)

    # Closing -------------------------------------------------------------------------

    def close(self, db: Database, project_id: ObjectId | str | None) -> dict[str, Any]:
        """End the live stream and keep the log in GridFS; returns the ``_log`` summary.

        A run that printed nothing keeps no file (``file_id`` None).

        Writes the END_MARK entry, lets the stream expire after a day, uploads the kept
        log as LOG_FILENAME (replacing an earlier one of this experiment, never listed in
        ``_files``) and returns ``{"file_id", "bytes", "cut_bytes"}``: bytes is all the
        output seen, so ``bytes - cut_bytes`` were kept. Call ``join()`` first; output
        that arrives later is drained and dropped. A Redis failure here is logged, not
        raised: the kept log matters more. MongoDB errors propagate.
        """
        self._wait_sent(time.monotonic() + CLOSE_FLUSH_S)
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            # A batch taken before the close must land before the end mark.
            self._changed.wait_for(lambda: not self._busy, CLOSE_FLUSH_S)
            self._pending.clear()
            self._pending_bytes = 0
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(
                    self.key, {"s": END_MARK, "t": ""}, maxlen=STREAM_MAXLEN, approximate=True
                )
                pipe.expire(self.key, STREAM_TTL_S)
                pipe.execute()
        except RedisError as error:
            logger.warning(
                "Live log of experiment %s: could not write its end to Redis: %s",
                self.experiment_id,
                error,
            )
        kept = self.kept_log()
        if not kept:
            # Nothing was printed: no file to keep, and five MongoDB round trips saved
            # (GridFS's index checks, the insert, the look for an older log).
            return {"file_id": None, "bytes": self.total_bytes, "cut_bytes": self.cut_bytes}
        file_id = put_kept_log(
            db, _maybe_object_id(self.experiment_id), _maybe_object_id(project_id), kept
        )
        return {"file_id": file_id, "bytes": self.total_bytes, "cut_bytes": self.cut_bytes}

    # Internals -----------------------------------------------------------------------

    @staticmethod
    def _check_stream(stream: str) -> None:
        if not stream or stream == END_MARK:
            raise ValueError(f"LogSink: stream {stream!r} is reserved; use 'out', 'err' or 'meta'")

    def _drain(self, fd: int, release: Any, stream: str) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while data := os.read(fd, READ_SIZE):
                self._append(stream, decoder.decode(data), len(data))
            self._append(stream, decoder.decode(b"", final=True), 0)
        except OSError as error:
            logger.warning(
                "Log of experiment %s: reading %s failed: %s", self.experiment_id, stream, error
            )
        finally:
            with contextlib.suppress(OSError):  # already closed by its owner
                release()
            self._pump_ended()

    def _follow(self, path: Path, publish_from: int) -> None:
        offset = 0
        partial = b""
        # Each write to the file wakes the follower (inotify), as does stop_following;
        # without inotify it looks again every FOLLOW_EVERY seconds.
        changes = FileChanges.open(path)
        try:
            with path.open("rb") as output:
                finishing = False
                while True:
                    data = output.read(READ_SIZE)
                    if not data:
                        if finishing:
                            return
                        if changes is not None:
                            changes.wait(FOLLOW_IDLE, also=[self._followed_all.fileno()])
                            finishing = self._followed_all.is_set()
                        else:
                            finishing = self._followed_all.wait(FOLLOW_EVERY)
                        continue
                    *lines, partial = (partial + data).split(b"\n")
                    for line in lines:
                        offset += len(line) + 1
                        self._take_line(line, offset, publish=offset > publish_from)
        except OSError as error:
            logger.warning(
                "Log of experiment %s: reading %s failed: %s", self.experiment_id, path, error
            )
        finally:
            if changes is not None:
                changes.close()
            self._pump_ended()

    def _take_line(self, line: bytes, offset: int, publish: bool) -> None:
        try:
            entry = decode_line(line)
        except ValueError:
            logger.warning("Log of experiment %s: unreadable line skipped", self.experiment_id)
            return
        self._append(entry["s"], entry["t"], len(line) + 1, offset=offset, publish=publish)

    def _pump_ended(self) -> None:
        with self._changed:
            self._open_pumps -= 1
            self._changed.notify_all()

    def _append(
        self, stream: str, text: str, raw: int, offset: int | None = None, publish: bool = True
    ) -> None:
        size = _size(text)
        with self._changed:
            self.bytes_read += raw
            if self._closed or not text:
                return
            self.total_bytes += size
            self._keep(stream, text, size)
            if not publish:
                return
            self._pending.append((stream, text, size, offset))
            self._pending_bytes += size
            while self._pending_bytes > PENDING_LIMIT and self._pending:
                _, _, dropped, _ = self._pending.popleft()
                self._pending_bytes -= dropped
                self._lost(dropped)
            if self._publisher is None:
                self._publisher = threading.Thread(
                    target=self._publish, name=f"log-publish-{self.experiment_id}", daemon=True
                )
                self._publisher.start()
            else:
                self._changed.notify_all()

    def _keep(self, stream: str, text: str, size: int) -> None:
        """Add to the kept tail, dropping from the front beyond max_bytes (lock held)."""
        if size > self.max_bytes:
            # One chunk over the cap: keep its end, cut on a character boundary.
            tail = text.encode("utf-8", errors="replace")[-self.max_bytes :]
            text = tail.decode("utf-8", errors="ignore")
            self.cut_bytes += size - _size(text)
            size = _size(text)
        self._kept.append((stream, text, size))
        self._kept_bytes += size
        while self._kept_bytes > self.max_bytes:
            _, _, dropped = self._kept.popleft()
            self._kept_bytes -= dropped
            self.cut_bytes += dropped

    def _lost(self, size: int) -> None:
        """Count output that will not be streamed live (lock held)."""
        self.unstreamed_bytes += size
        self._gap += size

    def _wait_sent(self, deadline: float | None) -> bool:
        """Wait until nothing is pending or being sent; False when the deadline passed."""
        with self._changed:
            while self._pending or self._busy:
                if self._publisher is None:
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def _publish(self) -> None:
        """The publisher thread: send pending output until the pumps end or the sink closes."""
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._pending or self._closed or self._open_pumps == 0
                )
                if self._closed or not self._pending:
                    self._publisher = None
                    self._changed.notify_all()
                    return
                batch = list(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
                gap = self._gap
                self._busy = True
            try:
                self._send(_coalesce(batch), gap)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _send(self, entries: list[Chunk], gap: int) -> None:
        """XADD each entry; on the first Redis error count the rest as not streamed."""
        for index, (stream, text, _, offset) in enumerate(entries):
            try:
                if gap:
                    self._xadd(META, f"[... {gap} bytes not streamed live ...]")
                    with self._changed:
                        self._gap -= gap
                    gap = 0
                self._xadd(stream, text, offset)
            except RedisError as error:
                with self._changed:
                    for _, _, size, _ in entries[index:]:
                        self._lost(size)
                    warn, self._warned = not self._warned, True
                if warn:
                    logger.warning(
                        "Live log of experiment %s: Redis failed (%s); output is still kept "
                        "and the live view resumes when Redis answers",
                        self.experiment_id,
                        error,
                    )
                return

    def _xadd(self, stream: str, text: str, offset: int | None = None) -> None:
        fields: dict[str, str | int] = {"s": stream, "t": text}
        if offset is not None:
            fields[OFFSET] = offset
        self._redis.xadd(self.key, fields, maxlen=STREAM_MAXLEN, approximate=True)


def _coalesce(batch: list[Chunk]) -> list[Chunk]:
    """Join neighbouring chunks of the same stream, up to READ_SIZE bytes an entry (the
    joined entry carries the offset of its last chunk)."""
    merged: list[tuple[str, list[str], int, int | None]] = []
    for stream, text, size, offset in batch:
        if merged and merged[-1][0] == stream and merged[-1][2] + size <= READ_SIZE:
            last = merged[-1]
            last[1].append(text)
            merged[-1] = (
                stream,
                last[1],
                last[2] + size,
                offset if offset is not None else last[3],
            )
        else:
            merged.append((stream, [text], size, offset))
    return [(stream, "".join(parts), size, offset) for stream, parts, size, offset in merged]


def _maybe_object_id(value: object) -> Any:
    """An ObjectId when `value` spells one; other values (None, test names) unchanged."""
    if isinstance(value, str) and ObjectId.is_valid(value):
        return ObjectId(value)
    return value
