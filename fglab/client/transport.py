"""HTTP to FGLab's API with the standard library: JSON requests, raw streams, SSE events.

Every failure becomes one `fglab.client.errors` exception: an HTTP error answer carries
the API's ``{"error": message}`` and status; no answer at all is `Unreachable`, whose
message names the URL.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPResponse
from typing import Any

from fglab.client.errors import FGLabError, Unauthorized, Unreachable, error_for

#: The API's prefix under the server's URL.
API = "/api/v1"
#: Query parameters: a mapping (a list value repeats the name) or (name, value) pairs.
Query = Mapping[str, Any] | Sequence[tuple[str, Any]]


class Transport:
    """Sends requests to one FGLab, with its token as ``Authorization: Bearer``."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def json(self, method: str, path: str, query: Query | None = None, body: Any = None) -> Any:
        """The decoded JSON answer of `method` on the API `path` (``/projects`` ...)."""
        with self.open(method, path, query, body) as answer:
            data = answer.read()
        return json.loads(data) if data else None

    def open(
        self,
        method: str,
        path: str,
        query: Query | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HTTPResponse:
        """The raw answer, for the caller to read and close (exports, files, streams)."""
        url = self.url + API + path
        if query:
            url += "?" + urllib.parse.urlencode(_pairs(query), doseq=True)
        sent = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=sent, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            raise _answer_error(e) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise Unreachable(
                f"FGLab is unreachable at {self.url} ({reason}); start it with `fglab up`, "
                "or point FGLAB_URL or --url at it"
            ) from e


def _pairs(query: Query) -> list[tuple[str, Any]]:
    items = query.items() if isinstance(query, Mapping) else query
    return [(name, value) for name, value in items if value is not None]


def _answer_error(error: urllib.error.HTTPError) -> FGLabError:
    """The exception for an HTTP error answer, with the API's message when it sent one."""
    try:
        body = error.read()
    except OSError:
        body = b""
    finally:
        error.close()
    message = ""
    try:
        decoded = json.loads(body)
        if isinstance(decoded, dict):
            message = str(decoded.get("error") or decoded.get("message") or "")
    except ValueError:
        message = body.decode("utf-8", "replace").strip()[:200]
    message = message or f"HTTP {error.code} {error.reason}"
    if error.code == 401:
        return Unauthorized(
            f"{message}; FGLab has a PASSWORD: set FGLAB_TOKEN or --token "
            "(POST /api/v1/tokens makes one)",
            401,
        )
    return error_for(error.code, message)


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: its type ("message" unless named), data and ID."""

    event: str
    data: str
    id: str | None = None


def sse_events(lines: Iterable[bytes]) -> Iterator[Event]:
    """The events of a ``text/event-stream`` read line by line (comments skipped)."""
    event, last_id = "message", None
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data or event != "message":
                yield Event(event, "\n".join(data), last_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value
