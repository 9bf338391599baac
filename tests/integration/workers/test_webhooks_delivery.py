"""Webhooks delivered by FGLab's jobs worker: the original's body, retries, a history."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

import pytest
from bson import ObjectId

from tests.integration.fleet import implementation, machine_name, status_of, submit
from tests.waiting import wait_for

#: The endpoint answers 500 to this many POSTs on each path before it answers 200.
FAILURES = 2


@dataclass
class Endpoint:
    """What the local endpoint received: (path, headers, body) per POST, in order."""

    url: str
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [body for p, _, body in self.requests if p == path]

    def headers(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [headers for p, headers, _ in self.requests if p == path]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """An HTTP server on 127.0.0.1 that fails the first FAILURES POSTs of each path."""
    received = Endpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with received.lock:
                seen = sum(p == self.path for p, _, _ in received.requests)
                received.requests.append((self.path, dict(self.headers), json.loads(raw)))
            self.send_response(500 if seen < FAILURES else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield received
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def dead_url() -> str:
    """A URL on a port nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/dead"


@pytest.fixture
def settings(settings):
    return settings.with_changes(webhook_backoff=0.2)


def register(client, url: str, experiment_id: str, event: str) -> dict[str, str]:
    body = {"url": url, "objects": "experiments", "object_id": experiment_id, "event": event}
    answer = client.post("/api/v1/webhooks", json=body)
    assert answer.status_code == 201, answer.json
    return body


def hooks(client, experiment_id: str) -> dict[str, dict[str, Any]]:
    """The experiment's hooks from the API, by URL."""
    answer = client.get(f"/api/v1/webhooks?object_id={experiment_id}")
    assert answer.status_code == 200, answer.json
    return {hook["url"]: hook for hook in answer.json}


def all_delivered(client, experiment_id: str, urls: list[str]) -> dict[str, dict] | None:
    found = hooks(client, experiment_id)
    return found if all(found[url].get("delivered") for url in urls) else None


def attempts(client, experiment_id: str, url: str, at_least: int) -> list[dict] | None:
    deliveries = hooks(client, experiment_id)[url]["deliveries"]
    return deliveries if len(deliveries) >= at_least else None


def at(delivery: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(delivery["at"])


def test_hooks_are_retried_with_backoff_until_delivered_and_a_dead_one_costs_nothing(
    client, db, fleet, project, endpoint, dead_url, tmp_path
):
    fleet.start_scheduler()
    experiment_id = submit(client, project)
    assert status_of(db, experiment_id) == "queued"
    started = register(client, f"{endpoint.url}/started", experiment_id, "started")
    finished = register(client, f"{endpoint.url}/finished", experiment_id, "finished")
    dead = register(client, dead_url, experiment_id, "finished")
    other = register(client, f"{endpoint.url}/other", str(ObjectId()), "finished")

    fleet.start_machine(machine_name(), {str(project["_id"]): implementation(tmp_path)})
    wait_for(
        lambda: status_of(db, experiment_id) == "success",
        timeout=60,
        what="the experiment to succeed",
    )
    good = wait_for(
        lambda: all_delivered(client, experiment_id, [started["url"], finished["url"]]),
        timeout=30,
        what="both good hooks to be delivered",
    )

    assert endpoint.bodies("/finished") == [finished] * (FAILURES + 1)
    assert endpoint.bodies("/started") == [started] * (FAILURES + 1)
    assert all(h["Content-Type"] == "application/json" for h in endpoint.headers("/finished"))
    for body in (started, finished):
        deliveries = good[body["url"]]["deliveries"]
        assert [d["attempt"] for d in deliveries] == [1, 2, 3]
        assert [d["status"] for d in deliveries] == [500, 500, 200]
        assert ["error" in d for d in deliveries] == [True, True, False]
        assert good[body["url"]]["delivered"] == deliveries[-1]["at"]
        assert "gave_up" not in good[body["url"]]
        # Declared backoff: 0.2 s, then 0.4 s (a little slack for clock rounding).
        first, second = (at(b) - at(a) for a, b in pairwise(deliveries))
        assert first.total_seconds() >= 0.18
        assert second.total_seconds() >= 0.38

    failing = wait_for(
        lambda: attempts(client, experiment_id, dead_url, at_least=2),
        timeout=30,
        what="two failed attempts to deliver the dead hook",
    )
    assert [d["attempt"] for d in failing[:2]] == [1, 2]
    assert all("error" in d and "status" not in d for d in failing)
    dead_hook = hooks(client, experiment_id)[dead_url]
    assert "delivered" not in dead_hook
    assert {k: dead_hook[k] for k in dead} == dead
    assert status_of(db, experiment_id) == "success"

    assert endpoint.bodies("/other") == []
    (unrelated,) = client.get(f"/api/v1/webhooks?object_id={other['object_id']}").json
    assert unrelated["deliveries"] == []
    assert len(client.get("/api/v1/webhooks").json) == 4
