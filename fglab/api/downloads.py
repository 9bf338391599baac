"""Exports as streamed attachments, so a large export never sits whole in memory."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response, stream_with_context


def download(chunks: Iterator[str], mimetype: str, filename: str) -> Response:
    """A streamed attachment; the filename keeps only safe characters."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
    return Response(
        stream_with_context(chunks),
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "X-Accel-Buffering": "no",
        },
    )
