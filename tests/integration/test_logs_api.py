"""Logs end to end: a real program pumped by LogSink into real Redis, read back over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from bson import ObjectId

from fglab.api import logs as logs_api
from fglab.app import create_app
from tasks.logs import LOG_FILENAME, cut_notice, log_key
from tasks.states import Status
from worker.logs import LogSink

LINES = 2000
#: Prints LINES numbered lines to each of stdout and stderr, interleaved.
TWO_STREAMS = (
    "import sys\n"
    f"for i in range({LINES}):\n"
    "    print(f'out line {i}', flush=True)\n"
    "    print(f'err line {i}', file=sys.stderr, flush=True)\n"
)
FLOOD_BYTES = 50 * 1024 * 1024
#: Writes FLOOD_BYTES to stdout as fast as it can.
FLOOD = (
    "import sys\n"
    "block = (b'x' * 1023 + b'\\n') * 1024\n"
    f"for _ in range({FLOOD_BYTES // (1024 * 1024)}):\n"
    "    sys.stdout.buffer.write(block)\n"
)
EXPECTED_OUT = "".join(f"out line {i}\n" for i in range(LINES))
EXPECTED_ERR = "".join(f"err line {i}\n" for i in range(LINES))


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def app(settings, store, redis_client):
    app = create_app(settings, store=store, redis=redis_client)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def experiment(store, redis_client) -> Iterator[dict[str, Any]]:
    """A running experiment; its log stream is deleted afterwards."""
    project_id = store.create_project("logs", {})
    experiment_id = store.new_experiment(project_id, {}, status=Status.RUNNING)
    yield store.get_experiment(experiment_id)
    redis_client.delete(log_key(str(experiment_id)))


def run(program: str, sink: LogSink) -> None:
    """Run `program`, its output pumped by `sink`, until it exits and the pumps end."""
    with subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        sink.pump(proc.stdout, "out")
        sink.pump(proc.stderr, "err")
        assert proc.wait(timeout=120) == 0
        sink.join(timeout=120)


def finish(sink: LogSink, store, experiment: dict[str, Any]) -> dict[str, Any]:
    """What the worker does at the exit: close the sink and record the kept log."""
    summary = sink.close(store.db, experiment["_project_id"])
    store.set_fields(experiment["_id"], {"_log": summary, "_status": str(Status.SUCCESS)})
    return summary


def page_through(client, experiment_id: object, limit: int = 300) -> dict[str, Any]:
    """Every entry of the JSON route, page by page; returns entries and the last answer."""
    entries: list[dict[str, str]] = []
    after = None
    for _ in range(10_000):
        query = {"limit": limit, **({"after": after} if after else {})}
        response = client.get(f"/api/v1/experiments/{experiment_id}/logs", query_string=query)
        assert response.status_code == 200, response.get_json()
        answer = response.get_json()
        entries += answer["entries"]
        if answer["ended"] or not answer["entries"]:
            return {**answer, "entries": entries}
        after = answer["last"]
    raise AssertionError("the log never ended")


def read_events(response, timeout: float = 60.0) -> list[dict[str, str]]:
    """Parse Server-Sent Events until the server ends the response."""
    deadline = time.monotonic() + timeout
    events: list[dict[str, str]] = []
    buffer = ""
    for chunk in response.response:
        assert time.monotonic() < deadline, "the event stream did not end"
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event: dict[str, str] = {}
            for line in block.split("\n"):
                field, _, value = line.partition(": ")
                event[field] = value
            events.append(event)
    response.close()
    return events


def text_of(entries: list[dict[str, str]], stream: str) -> str:
    return "".join(entry["t"] for entry in entries if entry["s"] == stream)


def event_entries(events: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        {"id": e["id"], **json.loads(e["data"])} for e in events if "data" in e and "event" not in e
    ]


def test_live_then_kept_log_of_a_program(client, store, redis_client, experiment) -> None:
    experiment_id = experiment["_id"]
    sink = LogSink(redis_client, str(experiment_id), max_bytes=10 * 1024 * 1024)
    run(TWO_STREAMS, sink)

    running = page_through(client, experiment_id)
    assert running["ended"] is False
    assert running["source"] == "live"
    assert text_of(running["entries"], "out") == EXPECTED_OUT
    assert text_of(running["entries"], "err") == EXPECTED_ERR
    ids = [entry["id"] for entry in running["entries"]]
    assert len(set(ids)) == len(ids)

    summary = finish(sink, store, experiment)
    assert summary["bytes"] == len(EXPECTED_OUT) + len(EXPECTED_ERR)
    assert summary["cut_bytes"] == 0
    assert redis_client.ttl(log_key(str(experiment_id))) > 0

    # Once ended, the kept log is the complete record: both routes serve it from the start.
    ended = page_through(client, experiment_id)
    assert ended["ended"] is True and ended["source"] == "kept"
    assert text_of(ended["entries"], "out") == EXPECTED_OUT
    assert text_of(ended["entries"], "err") == EXPECTED_ERR
    # A reader that was paging through the live stream finishes there, with no repeats.
    again = client.get(
        f"/api/v1/experiments/{experiment_id}/logs", query_string={"after": running["last"]}
    ).get_json()
    assert again["entries"] == [] and again["ended"] is True

    events = read_events(
        client.get(f"/api/v1/experiments/{experiment_id}/logs/stream", buffered=False)
    )
    assert events[-1]["event"] == "end"
    assert event_entries(events) == ended["entries"]

    # The stream is gone (expired, or Redis emptied): both routes serve the kept log.
    redis_client.delete(log_key(str(experiment_id)))
    kept = page_through(client, experiment_id)
    assert kept["source"] == "kept" and kept["ended"] is True
    assert text_of(kept["entries"], "out") == EXPECTED_OUT
    assert text_of(kept["entries"], "err") == EXPECTED_ERR
    assert kept["entries"][0]["id"] == "k-1"

    events = read_events(
        client.get(f"/api/v1/experiments/{experiment_id}/logs/stream", buffered=False)
    )
    assert events[-1]["event"] == "end"
    assert event_entries(events) == kept["entries"]
    middle = len(kept["entries"]) // 2  # out and err make at least two entries
    resumed = read_events(
        client.get(
            f"/api/v1/experiments/{experiment_id}/logs/stream",
            headers={"Last-Event-ID": kept["entries"][middle - 1]["id"]},
            buffered=False,
        )
    )
    assert event_entries(resumed) == kept["entries"][middle:]


def test_kept_log_is_one_gridfs_file_outside_files(store, redis_client, experiment) -> None:
    sink = LogSink(redis_client, str(experiment["_id"]), max_bytes=1024)
    sink.write("meta", "could not start: no such file\n")
    first = finish(sink, store, experiment)
    sink = LogSink(redis_client, str(experiment["_id"]), max_bytes=1024)
    sink.write("err", "second run\n")
    second = finish(sink, store, experiment)

    stored = list(store.files.find({"metadata.experiment": experiment["_id"]}))
    assert [doc["_id"] for doc in stored] == [second["file_id"]] != [first["file_id"]]
    assert stored[0]["filename"] == LOG_FILENAME
    assert stored[0]["metadata"] == {
        "experiment": experiment["_id"],
        "project": experiment["_project_id"],
        "kind": "log",
        "contentType": "application/x-ndjson",
    }
    assert store.get_experiment(experiment["_id"])["_files"] == []
    assert store.open_file(second["file_id"]).read() == b'{"s": "err", "t": "second run\\n"}\n'


def test_event_stream_follows_a_running_program(
    client, store, redis_client, experiment, monkeypatch
) -> None:
    monkeypatch.setattr(logs_api, "KEEPALIVE_S", 0.5)
    response = client.get(f"/api/v1/experiments/{experiment['_id']}/logs/stream", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    sink = LogSink(redis_client, str(experiment["_id"]), max_bytes=10 * 1024 * 1024)

    def worker() -> None:
        run(TWO_STREAMS, sink)
        finish(sink, store, experiment)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    events = read_events(response)
    thread.join(timeout=60)

    entries = event_entries(events)
    assert events[-1]["event"] == "end"
    assert text_of(entries, "out") == EXPECTED_OUT
    assert text_of(entries, "err") == EXPECTED_ERR


def test_event_stream_keeps_quiet_connections_alive_and_stops_on_disconnect(
    client, experiment, monkeypatch
) -> None:
    monkeypatch.setattr(logs_api, "KEEPALIVE_S", 0.0)
    monkeypatch.setattr(logs_api, "BLOCK_MS", 20)
    response = client.get(f"/api/v1/experiments/{experiment['_id']}/logs/stream", buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b": keepalive\n\n"
    response.close()
    with pytest.raises(StopIteration):
        next(chunks)


def test_flood_is_drained_and_kept_bounded(client, store, redis_client, experiment) -> None:
    sink = LogSink(redis_client, str(experiment["_id"]), max_bytes=1024 * 1024)
    run(FLOOD, sink)
    assert sink.bytes_read == FLOOD_BYTES
    summary = finish(sink, store, experiment)
    assert summary["bytes"] == FLOOD_BYTES
    assert FLOOD_BYTES - 1024 * 1024 <= summary["cut_bytes"] < FLOOD_BYTES

    redis_client.delete(log_key(str(experiment["_id"])))
    kept = page_through(client, experiment["_id"], limit=10_000)
    notice, *rest = kept["entries"]
    assert (notice["s"], notice["t"]) == ("meta", cut_notice(summary["cut_bytes"]))
    kept_text = text_of(rest, "out")
    assert len(kept_text) + summary["cut_bytes"] == FLOOD_BYTES
    assert kept_text.endswith("x" * 1023 + "\n")


def test_unknown_experiment_and_bad_queries(client, experiment) -> None:
    missing = ObjectId()
    for path in ("logs", "logs/stream"):
        response = client.get(f"/api/v1/experiments/{missing}/logs" + path[4:])
        assert response.status_code == 404
        assert response.get_json() == {"error": f"Experiment ID {missing} does not exist"}
    logs_url = f"/api/v1/experiments/{experiment['_id']}/logs"
    response = client.get(logs_url, query_string={"after": "yesterday"})
    assert response.status_code == 400
    assert "Log entry ID 'yesterday' is not valid" in response.get_json()["error"]
    response = client.get(logs_url, query_string={"limit": "0"})
    assert response.status_code == 400
    assert "limit '0' is not usable" in response.get_json()["error"]


def test_a_program_without_output_yet_is_not_ended(client, store, experiment) -> None:
    url = f"/api/v1/experiments/{experiment['_id']}/logs"
    answer = client.get(url).get_json()
    assert answer == {"entries": [], "last": None, "ended": False, "source": "none"}
    store.set_fields(experiment["_id"], {"_status": str(Status.LOST)})
    assert client.get(url).get_json()["ended"] is True
    events = read_events(client.get(f"{url}/stream", buffered=False))
    assert events == [{"event": "end", "data": "{}"}]
