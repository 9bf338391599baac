"""The output of `fglab up`'s children: all of it to each one's log file, to the console
only what a person needs.

Each child's stdout and stderr go, line by line, to ``<data>/logs/<name>.log``. The
console gets a child's warnings and errors (a log record at WARNING or above, a Python
warning, a traceback, with their continuation lines), or, with ``--verbose``, every line;
both prefixed with the child's name. Known noise (Celery's superuser warning) stays in
the file.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from pathlib import Path
from typing import IO

#: Where the lines for the console go (`fglab.console` prints them after the child's name).
logger = logging.getLogger("fglab.up.children")

#: The start of a log record: Celery's ``[2026-12-02 05:58:01,123: WARNING/...``,
#: logging's default ``2026-12-02 05:58:01,123 WARNING ...``, Flower's (tornado's)
#: ``[W 261202 05:58:01 ...``.
_RECORD = re.compile(r"^(\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d|\[[DIWEC] \d{6} )")
_LEVEL = re.compile(r"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b|^\[([DIWEC]) ")
_SERIOUS = {"WARNING", "WARN", "ERROR", "CRITICAL", "FATAL", "W", "E", "C"}
_PY_WARNING = re.compile(r"^\S+:\d+: \w*Warning: ")
_TRACEBACK = "Traceback (most recent call last)"
#: Warnings a person can do nothing about here (they stay in the log file): Celery as
#: root, Flower asking workers that are still starting.
_NOISE = ("running the worker with superuser privileges", "Inspect method ")


class LineFilter:
    """Says which lines of one child the console shows when not verbose.

    A line that starts a log record decides by its level; a traceback or a Python
    warning shows; a line that continues one of them (a frame, a wrapped message)
    follows it. A blank line ends a Python warning, so Celery's banner after it stays out.
    """

    def __init__(self) -> None:
        self._showing = False
        self._warning = False

    def shows(self, line: str) -> bool:
        if line.startswith(_TRACEBACK) or _PY_WARNING.match(line):
            self._showing = not _is_noise(line)
            self._warning = not line.startswith(_TRACEBACK)
        elif _RECORD.match(line):
            level = _LEVEL.search(line[:60])
            serious = level is not None and (level.group(1) or level.group(2)) in _SERIOUS
            self._showing = serious and not _is_noise(line)
            self._warning = False
        elif self._warning and not line.strip():
            self._showing = self._warning = False
        return self._showing


def _is_noise(line: str) -> bool:
    return any(noise in line for noise in _NOISE)


class ChildOutput:
    """Copies one child's output (a pipe) into its log file and, in part, to the console.

    A daemon thread reads until the child and everything it started close the pipe.
    """

    def __init__(self, name: str, stream: IO[bytes], path: Path, verbose: bool) -> None:
        self.name = name
        self.path = path
        self._stream = stream
        self._verbose = verbose
        self._filter = LineFilter()
        self._thread = threading.Thread(target=self._pump, name=f"log-{name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        with self._stream, self.path.open("ab") as log:
            for raw in iter(self._stream.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip()
                level = logging.WARNING if self._filter.shows(line) else logging.INFO
                if self._verbose or level == logging.WARNING:
                    logger.log(level, "%s", line, extra={"child": self.name})

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the last lines to be copied."""
        self._thread.join(timeout)


def tail(path: Path, lines: int = 15) -> list[str]:
    """The last `lines` lines of a log file (none when it does not exist)."""
    try:
        with path.open("rb") as f:
            return [raw.decode(errors="replace").rstrip() for raw in deque(f, maxlen=lines)]
    except OSError:
        return []
