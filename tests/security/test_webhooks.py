"""Issue 17, item 6: whoever registers a webhook chooses where FGLab connects. Slow
endpoints hold only the webhooks worker, each attempt ends at one deadline, redirects are
not followed, an experiment has a bounded number of hooks, and with private addresses
refused neither registration nor delivery reaches FGLab's own network (nor tells open
ports from closed ones). Real workers, real sockets.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from bson import ObjectId

from tests.integration.fleet import implementation, machine_name, status_of, submit
from tests.security.web import send, serve
from tests.tcp import listen
from tests.waiting import wait_for

#: FGLAB_WEBHOOK_TIMEOUT for the webhooks workers here, in seconds.
DEADLINE = 2.0
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(settings):
    return settings.with_changes(webhook_backoff=120.0)  # one attempt per hook here


@dataclass
class Trickler:
    """A server that reads each request, then sends a valid answer a byte every 0.3 s
    for as long as the client reads: each read is quick, the answer never ends."""

    url: str = ""
    durations: list[float] = field(default_factory=list)  # seconds each connection lasted
    open: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def trickler() -> Iterator[Trickler]:
    found = Trickler()

    def handle(conn: socket.socket) -> None:
        opened = time.monotonic()
        with found.lock:
            found.open += 1
        with conn:
            conn.recv(65536)
            try:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 100_000:
                    conn.sendall(bytes([byte]))
                    time.sleep(0.3)
            except OSError:
                pass  # FGLab hung up
        with found.lock:
            found.open -= 1
            found.durations.append(time.monotonic() - opened)

    listener = listen(handle)
    found.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    yield found
    listener.close()


@dataclass
class Recorder:
    url: str = ""
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """An HTTP server that answers 302 to /redirect (to /target) and 200 to the rest,
    recording each path it was asked for."""
    found = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            found.paths.append(self.path)
            self.send_response(302 if self.path == "/redirect" else 200)
            self.send_header("Location", f"{found.url}/target")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def register(client, url: str, experiment_id: str, event: str = "finished") -> Any:
    body = {"url": url, "objects": "experiments", "object_id": experiment_id, "event": event}
    return client.post("/api/v1/webhooks", json=body)


def first_attempts(db, experiment_id: str) -> list[dict[str, Any]] | None:
    hooks = list(db.webhooks.find({"object_id": experiment_id}))
    if not all(hook["deliveries"] for hook in hooks):
        return None
    return [hook["deliveries"][0] for hook in hooks]


def test_slow_endpoints_never_delay_dispatch_and_each_attempt_ends_at_its_deadline(
    client, db, fleet, project, trickler, tmp_path
):
    fleet.start_scheduler(webhooks=False)
    fleet.start_webhooks(FGLAB_WEBHOOK_TIMEOUT=DEADLINE)
    hooked = submit(client, project)
    for i in range(16):  # twice the webhooks worker's threads, half of them on "started"
        event = "started" if i % 2 else "finished"
        assert register(client, f"{trickler.url}/{i}", hooked, event).status_code == 201
    others = [submit(client, project) for _ in range(3)]

    fleet.start_machine(machine_name(), {str(project["_id"]): implementation(tmp_path)})
    wait_for(
        lambda: all(status_of(db, e) == "success" for e in [hooked, *others]),
        timeout=60,
        what="the hooked experiment and the three after it (one at a time) to succeed",
    )

    attempts = wait_for(
        lambda: first_attempts(db, hooked),
        timeout=60,
        what="a first attempt of every slow hook",
    )
    assert len(attempts) == 16
    assert {a.get("error") for a in attempts} == {"timed out"}
    assert all("status" not in a for a in attempts)
    wait_for(lambda: trickler.open == 0, timeout=10, what="FGLab to hang up every connection")
    assert len(trickler.durations) == 16
    # Cut at the deadline in all, though a byte came every 0.3 s (a read timeout never fires).
    assert max(trickler.durations) < DEADLINE + 2.0, trickler.durations


def test_a_redirect_is_not_followed_and_the_hook_is_given_up_at_once(
    client, db, fleet, project, recorder, tmp_path
):
    fleet.start_scheduler()
    experiment_id = submit(client, project)
    assert register(client, f"{recorder.url}/redirect", experiment_id).status_code == 201
    fleet.start_machine(machine_name(), {str(project["_id"]): implementation(tmp_path)})

    hook = wait_for(
        lambda: db.webhooks.find_one({"object_id": experiment_id, "gave_up": {"$exists": 1}}),
        timeout=60,
        what="the redirected hook to be given up",
    )
    assert [{k: d[k] for k in ("attempt", "status", "error")} for d in hook["deliveries"]] == [
        {"attempt": 1, "status": 302, "error": "redirect not followed (status 302)"}
    ]
    assert hook["gave_up_after"] == 1
    assert "delivered" not in hook
    assert recorder.paths == ["/redirect"]  # never /target
    assert status_of(db, experiment_id) == "success"


def test_an_experiment_takes_at_most_the_cap_of_hooks(client, db, project):
    experiment_id = submit(client, project)
    for i in range(20):
        assert register(client, f"https://example.org/{i}", experiment_id).status_code == 201

    refused = register(client, "https://example.org/21", experiment_id, "started")

    assert refused.status_code == 409
    assert refused.json["error"] == (
        f"Experiment {experiment_id} has 20 webhooks, the most allowed (FGLAB_WEBHOOK_LIMIT)"
    )
    assert db.webhooks.count_documents({"object_id": experiment_id}) == 20
    assert register(client, "https://example.org/other", "another-object").status_code == 201


def test_registrations_racing_past_the_cap_never_keep_one_too_many(app, db, project):
    experiment_id = str(ObjectId())
    for i in range(15):
        assert (
            register(app.test_client(), f"https://example.org/{i}", experiment_id).status_code
            == 201
        )
    start = threading.Barrier(12)
    answers: list[int] = []

    def race(i: int) -> None:
        client = app.test_client()
        start.wait()
        answers.append(register(client, f"https://example.org/race-{i}", experiment_id).status_code)

    racers = [threading.Thread(target=race, args=(i,)) for i in range(12)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()

    kept = db.webhooks.count_documents({"object_id": experiment_id})
    assert kept <= 20
    assert sorted(set(answers)) in ([201, 409], [409])
    assert kept == 15 + answers.count(201)


PRIVATE_URLS = [
    "http://127.0.0.1:6379/",  # this host's Redis
    "http://10.0.0.5/hook",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[::1]:5080/",
    "http://[::ffff:10.0.0.1]/",
    "http://localhost:27017/",
    "http://0.0.0.0/",
]


def test_with_private_addresses_refused_none_can_be_registered(fleet, db):
    _, base = serve(fleet, FGLAB_WEBHOOK_ALLOW_PRIVATE="false")

    for url in PRIVATE_URLS:
        body = {"url": url, "objects": "experiments", "object_id": "x" * 24, "event": "finished"}
        answer = send(base + "/api/v1/webhooks", "POST", json.dumps(body).encode(), JSON)
        assert answer.status == 400, (url, answer)
        error = answer.json()["error"]
        assert error.startswith("Webhook URL refused: address "), url
        assert error.endswith(" is private (FGLAB_WEBHOOK_ALLOW_PRIVATE is false)"), url

    assert db.webhooks.count_documents({}) == 0
    assert send(base + "/api/v1/projects").status == 200  # still answers


def test_with_private_addresses_refused_a_delivery_tells_no_open_port_from_a_closed_one(
    client, db, fleet, project, recorder, tmp_path
):
    """Hooks kept from before the setting changed (or a name that resolves to a private
    address at delivery) are refused where FGLab connects, the same for every port."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    fleet.start_scheduler(webhooks=False)
    fleet.start_webhooks(FGLAB_WEBHOOK_ALLOW_PRIVATE="false")
    experiment_id = submit(client, project)
    for url in (f"{recorder.url}/open", f"http://127.0.0.1:{closed_port}/closed"):
        assert register(client, url, experiment_id).status_code == 201  # this app allows them
    fleet.start_machine(machine_name(), {str(project["_id"]): implementation(tmp_path)})

    wait_for(
        lambda: (
            db.webhooks.count_documents({"object_id": experiment_id, "gave_up": {"$exists": 1}})
            == 2
        ),
        timeout=60,
        what="both hooks to be given up",
    )
    for hook in db.webhooks.find({"object_id": experiment_id}):
        assert [(d["attempt"], d["error"]) for d in hook["deliveries"]] == [
            (1, "refused: address 127.0.0.1 is private")
        ]
    assert recorder.paths == []
