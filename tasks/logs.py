"""How an experiment's stdout/stderr travel: a Redis stream live, a GridFS file kept.

The machine's log sink writes, FGLab's log routes read; both follow this module.

Live: the Redis stream ``log_key(experiment_id)`` holds entries with two fields, ``s``
(the stream: ``out``, ``err``, ``meta`` for notices such as a cut, ``end``) and ``t``
(text). It is capped at about ``STREAM_MAXLEN`` entries (``XADD ... MAXLEN ~``), closed by
one entry ``{"s": END_MARK, "t": ""}``, and expires a day after that. Output of a
supervised run also carries ``o`` (``OFFSET``): the byte offset in the run's output file
after that entry, so a worker that re-adopts the run resumes the stream where it stopped.

Kept: when the experiment ends, the tail of its output (a bounded number of bytes) goes to
GridFS as ``LOG_FILENAME``, JSON lines ``{"s": ..., "t": ...}``, with ``LOG_METADATA``
plus ``experiment`` and ``project``; it is not listed in ``_files``. When output was cut,
the first line is a ``meta`` entry ``cut_notice(n)``. The experiment's ``_log`` field is
``{"file_id", "bytes", "cut_bytes"}``.
"""

from __future__ import annotations

import json
from typing import Any

STREAM_MAXLEN = 10_000
#: The ``s`` of the entry that closes a stream.
END_MARK = "end"
#: The field of a live entry that holds its end offset in the run's output file.
OFFSET = "o"
#: The ``s`` of worker notices (a cut, a failed start), as opposed to the program's output.
META = "meta"
LOG_FILENAME = "fglab-log.jsonl"
LOG_CONTENT_TYPE = "application/x-ndjson"
#: GridFS metadata of a kept log, besides ``experiment`` and ``project``.
LOG_METADATA: dict[str, Any] = {"kind": "log", "contentType": LOG_CONTENT_TYPE}
#: How long a closed stream stays in Redis, in seconds.
STREAM_TTL_S = 24 * 3600


def log_key(experiment_id: str, prefix: str = "fglab") -> str:
    """The Redis stream that carries one experiment's output live."""
    return f"{prefix}:log:{experiment_id}"


def cut_notice(cut_bytes: int) -> str:
    """The text of the ``meta`` entry that marks output dropped by the cap."""
    return f"[... {cut_bytes} bytes cut ...]"


def encode_line(stream: str, text: str) -> bytes:
    """One kept-log line."""
    return json.dumps({"s": stream, "t": text}, ensure_ascii=False).encode() + b"\n"


def decode_line(line: bytes | str) -> dict[str, str]:
    """One kept-log line as ``{"s": ..., "t": ...}``; raises ValueError when malformed."""
    entry = json.loads(line)
    if not isinstance(entry, dict) or not isinstance(entry.get("s"), str):
        raise ValueError(f"kept log line {line!r} is not an object with a string 's'")
    return {"s": entry["s"], "t": str(entry.get("t", ""))}
