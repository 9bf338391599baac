"""Open live log streams are counted, so they cannot take every request thread.

Each Server-Sent Events stream holds one of waitress's threads for as long as it is
open. `StreamSlots` admits a stream only while its client address has fewer than
`FGLAB_STREAMS_PER_CLIENT` open (else 429) and the server fewer than `FGLAB_STREAMS_MAX`
(else 503); `fglab web` runs that many threads more than pages need. A slot is given
back when its response is closed, whether it was read to the end or never read at all.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator

from flask import Flask, current_app

from config import Settings
from fglab.errors import TooManyRequests, Unavailable

#: What a refused client is told to wait, in seconds (a slot frees when any stream ends).
RETRY_AFTER_S = 5

_EXTENSION = "fglab_streams"


class StreamSlots:
    """Thread-safe counts of open streams, per client address and in total."""

    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total = total
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self._in_all = 0

    def admit(self, client: str) -> Slot:
        """Take a slot for `client`; raises TooManyRequests (its cap) or Unavailable (the
        cap in all), both with `retry_after`."""
        with self._lock:
            if self._open[client] >= self.per_client:
                raise TooManyRequests(
                    f"Too many open log streams from {client}: the cap is {self.per_client} "
                    f"per client (FGLAB_STREAMS_PER_CLIENT); close one or try again in "
                    f"{RETRY_AFTER_S} s",
                    retry_after=RETRY_AFTER_S,
                )
            if self._in_all >= self.total:
                raise Unavailable(
                    f"Too many open log streams: the cap is {self.total} in all "
                    f"(FGLAB_STREAMS_MAX); try again in {RETRY_AFTER_S} s",
                    retry_after=RETRY_AFTER_S,
                )
            self._open[client] += 1
            self._in_all += 1
        return Slot(self, client)

    def open(self, client: str | None = None) -> int:
        """Streams open now, of `client` or in all."""
        with self._lock:
            return self._open[client] if client is not None else self._in_all

    def _release(self, client: str) -> None:
        with self._lock:
            self._open[client] -= 1
            self._in_all -= 1
            if self._open[client] <= 0:
                del self._open[client]


class Slot:
    """One admitted stream; `release` gives the slot back (once, however often called)."""

    def __init__(self, slots: StreamSlots, client: str) -> None:
        self._slots = slots
        self._client = client
        self._held = True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._slots._release(self._client)

    def hold(self, events: Iterable[str]) -> Iterator[str]:
        """`events`, releasing this slot when they end or are closed (read or not)."""
        return _Held(iter(events), self)


class _Held(Iterator[str]):
    """An iterator, not a generator: a generator closed before its first `next` never
    runs its ``finally``, and a response may be closed before it is read."""

    def __init__(self, events: Iterator[str], slot: Slot) -> None:
        self._events = events
        self._slot = slot

    def __next__(self) -> str:
        try:
            return next(self._events)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            self._slot.release()


def install_stream_slots(app: Flask, settings: Settings) -> StreamSlots:
    """Keep this app's stream counts in ``app.extensions``."""
    slots = StreamSlots(settings.streams_per_client, settings.streams_max)
    app.extensions[_EXTENSION] = slots
    return slots


def stream_slots(app: Flask | None = None) -> StreamSlots:
    return (app or current_app).extensions[_EXTENSION]
