"""Live log streams cannot hang the server (issue 17, item 5): they are capped per client
address (429) and in all (503), both with Retry-After; each ends after
`FGLAB_STREAM_LIFETIME` seconds with a ``retry:`` line, so the browser reconnects and
resumes; and `fglab web` has threads for pages on top of every stream it admits."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from redis import Redis

from tasks.logs import END_MARK, log_key
from tests.security.web import send, serve
from tests.waiting import wait_for

PASSWORD = "s3cret-for-streams"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"x:{PASSWORD}".encode()).decode()}


class Stream:
    """One event stream held open on its own connection until `close`."""

    def __init__(self, url: str, experiment_id: object, headers: dict[str, str] | None = None):
        address = urlparse(url)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        self.connection.request(
            "GET",
            f"/api/v1/experiments/{experiment_id}/logs/stream",
            headers={"Accept": "text/event-stream", **(headers or {})},
        )
        self.response = self.connection.getresponse()
        self.status = self.response.status

    def first_line(self) -> bytes:
        """The first line of the body (the server's first bytes once it is open)."""
        return self.response.readline()

    def read_to_end(self) -> list[dict[str, str]]:
        """Every event (comments left out) until the server ends the stream."""
        events: list[dict[str, str]] = []
        for block in self.response.read().decode().split("\n\n"):
            fields = [line.partition(": ") for line in block.split("\n") if line]
            event = {name: value for name, _, value in fields if name}
            if event:
                events.append(event)
        return events

    def close(self) -> None:
        """Close the connection (the response holds the socket too)."""
        self.response.close()
        self.connection.close()


@pytest.fixture
def queued(store, project, redis_url: str) -> Iterator[Any]:
    """A queued experiment's ID (no machine runs it); its log stream is deleted after."""
    (experiment_id,) = store.new_experiments(project["_id"], [{}])
    yield experiment_id
    client = Redis.from_url(redis_url)
    client.delete(log_key(str(experiment_id)))
    client.close()


def _opens(url: str, experiment_id: object) -> bool:
    stream = Stream(url, experiment_id)
    stream.close()
    return stream.status == 200


def test_a_client_past_its_cap_waits_and_its_slot_comes_back(fleet, queued) -> None:
    _, url = serve(fleet, FGLAB_STREAMS_PER_CLIENT=2)
    first, second = Stream(url, queued), Stream(url, queued)
    assert (first.status, second.status) == (200, 200)
    assert first.first_line() == b": keepalive\n"

    third = Stream(url, queued)
    assert third.status == 429
    assert third.response.getheader("Retry-After") == "5"
    assert json.loads(third.response.read()) == {
        "error": "Too many open log streams from 127.0.0.1: the cap is 2 per client "
        "(FGLAB_STREAMS_PER_CLIENT); close one or try again in 5 s"
    }
    third.close()
    # Pages do not count against the cap.
    assert send(url + "/api/v1/projects").status == 200

    first.close()  # the client leaves: the server notices and gives its slot back
    wait_for(lambda: _opens(url, queued), 10, "a stream to open once one was closed")
    second.close()


def test_past_the_cap_in_all_streams_are_refused(fleet, queued) -> None:
    _, url = serve(fleet, FGLAB_STREAMS_MAX=2)
    held = [Stream(url, queued), Stream(url, queued)]
    assert [stream.status for stream in held] == [200, 200]

    refused = Stream(url, queued)
    assert refused.status == 503
    assert refused.response.getheader("Retry-After") == "5"
    assert json.loads(refused.response.read()) == {
        "error": "Too many open log streams: the cap is 2 in all (FGLAB_STREAMS_MAX); "
        "try again in 5 s"
    }
    refused.close()
    for stream in held:
        stream.close()


def test_a_stream_ends_after_its_lifetime_and_resumes_with_last_event_id(
    fleet, queued, redis_url: str
) -> None:
    _, url = serve(fleet, FGLAB_STREAM_LIFETIME=2)
    quiet = Stream(url, queued)
    assert quiet.status == 200
    started = time.monotonic()
    assert quiet.read_to_end() == [{"retry": "1000"}]  # no `end`: the browser reconnects
    assert 1.5 <= time.monotonic() - started < 10
    quiet.close()

    redis = Redis.from_url(redis_url)
    key = log_key(str(queued))
    first_id = redis.xadd(key, {"s": "out", "t": "first line\n"}).decode()
    stream = Stream(url, queued)
    assert stream.read_to_end() == [
        {"id": first_id, "data": json.dumps({"s": "out", "t": "first line\n"})},
        {"retry": "1000"},
    ]
    stream.close()

    second_id = redis.xadd(key, {"s": "out", "t": "second line\n"}).decode()
    end_id = redis.xadd(key, {"s": END_MARK, "t": ""}).decode()
    redis.close()
    # What the EventSource sends when it reconnects: only what came after, then the end.
    resumed = Stream(url, queued, {"Last-Event-ID": first_id})
    assert resumed.read_to_end() == [
        {"id": second_id, "data": json.dumps({"s": "out", "t": "second line\n"})},
        {"id": end_id, "event": "end", "data": "{}"},
    ]
    resumed.close()


def test_pages_answer_while_a_hundred_streams_are_open(fleet, project, queued) -> None:
    _, url = serve(fleet, password=PASSWORD, FGLAB_STREAMS_PER_CLIENT=100)
    streams: list[Stream] = []
    try:
        for _ in range(100):
            streams.append(Stream(url, queued, AUTH))
            assert streams[-1].status == 200
            assert streams[-1].first_line() == b": keepalive\n"

        # A page waiting for a thread would wait for a stream to end (minutes): `send`
        # gives up after 10 s with status 0.
        for path in ("/login", "/", f"/projects/{project['_id']}", "/api/v1/projects"):
            answer = send(url + path, headers=AUTH)
            assert answer.status == 200, (path, answer.status)
        # The 101st stream is refused at once, not queued for a thread.
        refused = Stream(url, queued, AUTH)
        assert refused.status == 429
        refused.close()
    finally:
        for stream in streams:
            stream.close()
