"""Lists of whole experiments, as the original answers them (a JSON array, oldest first),
paged on request and streamed otherwise, so neither FGLab nor MongoDB holds a huge list.

``?limit=<n>`` (1 to 1,000) with ``?offset=<m>`` gives one page; a page that is full says
where the next one is in a ``Link: <...>; rel="next"`` header. Without ``limit`` the whole
list is written out as it is read, one batch of documents at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response, current_app, jsonify, request, stream_with_context, url_for

from fglab.api.params import MAX_OFFSET, int_arg

#: The largest page ``?limit=`` asks for.
MAX_PAGE = 1000
#: ``limit`` and ``offset``, as the listing routes document them.
PAGE_PARAMETERS = [
    {
        "in": "query",
        "name": "limit",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        "description": "One page of at most this many (absent: every one, streamed)",
    },
    {
        "in": "query",
        "name": "offset",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        "description": "Skip this many first (with `limit`)",
    },
]


def page_args() -> tuple[int, int]:
    """``(offset, limit)`` from the query; limit 0 means the whole list."""
    limit = int_arg("limit", 0, 1, MAX_PAGE)
    offset = int_arg("offset", 0, 0, MAX_OFFSET)
    return offset, limit


def json_list(documents: Iterable[Any], offset: int, limit: int) -> Response:
    """The documents as a JSON array: a page (with a next link when full), or streamed."""
    if limit:
        page = list(documents)
        answer = jsonify(page)
        if len(page) == limit:
            args = {**(request.view_args or {}), **request.args.to_dict(), "offset": offset + limit}
            answer.headers["Link"] = f'<{url_for(str(request.endpoint), **args)}>; rel="next"'
        return answer
    return Response(stream_with_context(_array(documents)), mimetype="application/json")


def _array(documents: Iterable[Any]) -> Iterator[str]:
    dumps = current_app.json.dumps
    yield "["
    for n, doc in enumerate(documents):
        yield ("," if n else "") + dumps(doc)
    yield "]"
