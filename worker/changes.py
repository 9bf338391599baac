"""Files being written, heard as it happens (inotify), so nothing waits for a poll.

A run's output file and its results folder are watched: the live log gets a line within
a few milliseconds of the supervisor writing it, and a trial's new ``_step`` reaches the
pruner at once. Where inotify is not there (another OS, or the per-user limit of inotify
instances is reached) `FileChanges.open` returns None and the callers poll as before.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Iterable
from pathlib import Path

from inotify_simple import INotify, flags

logger = logging.getLogger(__name__)

#: A file written and closed, moved into place (``os.replace``), a folder made, or (for a
#: file that stays open, like a run's output) more bytes.
WRITTEN = flags.CLOSE_WRITE | flags.MOVED_TO | flags.CREATE | flags.MODIFY

_warned = False


class FileChanges:
    """One inotify instance over some folders (and the folders made inside them)."""

    def __init__(self, inotify: INotify) -> None:
        self._inotify = inotify
        self._folders: dict[int, Path] = {}

    @classmethod
    def open(cls, *folders: Path) -> FileChanges | None:
        """Watch `folders` (each one that exists); None when inotify is not available."""
        global _warned
        try:
            changes = cls(INotify(nonblocking=True))
        except OSError as e:
            if not _warned:
                _warned = True
                logger.warning("inotify not available (%s): runs are followed by polling", e)
            return None
        for folder in folders:
            changes.add(folder)
        return changes

    def add(self, folder: Path) -> None:
        """Watch `folder` and, as they appear, the folders below it."""
        try:
            wd = self._inotify.add_watch(folder, WRITTEN)
        except OSError:
            return  # not there (yet), or gone: the callers' periodic pass still sees it
        self._folders[wd] = Path(folder)
        try:
            below = [entry.path for entry in os.scandir(folder) if entry.is_dir()]
        except OSError:
            below = []
        for path in below:
            self.add(Path(path))

    def fileno(self) -> int:
        return self._inotify.fileno()

    def wait(self, timeout: float, also: Iterable[int] = ()) -> list[Path]:
        """Wait up to `timeout` seconds for writes (or for one of the `also` fds to be
        readable); the paths written since the last call, in order, without repeats."""
        select.select([self.fileno(), *also], [], [], timeout)
        return self.take()

    def take(self) -> list[Path]:
        """The paths written since the last call, without waiting."""
        written: dict[Path, None] = {}
        try:
            events = self._inotify.read(timeout=0)
        except (BlockingIOError, OSError):
            return []
        for event in events:
            folder = self._folders.get(event.wd)
            if folder is None or not event.name:
                continue
            path = folder / event.name
            if event.mask & flags.ISDIR:
                if event.mask & (flags.CREATE | flags.MOVED_TO):
                    self.add(path)
                continue
            written[path] = None
        return list(written)

    def close(self) -> None:
        self._inotify.close()

    def __enter__(self) -> FileChanges:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WakingEvent(threading.Event):
    """An event that also makes a file descriptor readable when set, so a loop waiting in
    ``select`` on other files (a run's results, its supervisor's end) hears it at once."""

    def __init__(self) -> None:
        super().__init__()
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def set(self) -> None:
        super().set()
        os.eventfd_write(self._fd, 1)

    def fileno(self) -> int:
        return self._fd

    def __del__(self) -> None:
        os.close(self._fd)
