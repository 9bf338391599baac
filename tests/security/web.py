"""`fglab web` (waitress) in a subprocess, for attacks sent over real HTTP."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.integration.fleet import Fleet, Process
from tests.waiting import wait_for


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(fleet: Fleet, password: str | None = None, **env: Any) -> tuple[Process, str]:
    """Start `fglab web` on a free port (`env`: more variables for it); its process and
    base URL once it answers."""
    port = free_port()
    process = fleet.start_web(port, password=password, **env)
    url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: send(url + "/login").status > 0 or not process.alive(),
        30,
        f"the web server at {url} to answer",
    )
    assert process.alive(), f"the web server exited:\n{process.output()[-3000:]}"
    return process, url


def send(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """One HTTP request as a browser or a script would send it; status 0 when none answers.

    Redirects are not followed: an attack's answer is the one that counts.
    """
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=10) as answer:
            return Answer(answer.status, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as e:
        return Answer(e.code, dict(e.headers), e.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return Answer(0, {}, b"")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
