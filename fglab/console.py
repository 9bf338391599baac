"""How `fglab up` writes to its terminal: short lines, its children's lines by name.

`fglab up`'s own lines read ``05:58:12 started ...`` (``WARNING`` or ``ERROR`` before the
message when it is one); a line passed on from a child reads ``worker    | ...``; a
record with ``extra={"bare": True}`` (the banner) is printed as it is.
"""

from __future__ import annotations

import logging
import sys


class ConsoleFormatter(logging.Formatter):
    """Formats `fglab up`'s records for a person watching the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        child = getattr(record, "child", None)
        if child is not None:
            return f"{child:<9} | {message}"
        if getattr(record, "bare", False):
            return message
        level = f"{record.levelname} " if record.levelno >= logging.WARNING else ""
        text = f"{self.formatTime(record, '%H:%M:%S')} {level}{message}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure() -> None:
    """Send every INFO-and-above record of this process to stdout, formatted as above."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
