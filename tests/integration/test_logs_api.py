"""Logs end to end: a real program pumped by LogSink into real Redis, read back over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from bson import ObjectId

from fglab import logs as log_reader
from fglab.app import create_app
from tasks import experiments
from tasks.experiments import Reservation
from tasks.logs import LOG_FILENAME, cut_notice, log_key
from tasks.states import Status
from tests.waiting import wait_for
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
def experiment(store, db, redis_client) -> Iterator[dict[str, Any]]:
    """A running experiment; its log stream is deleted afterwards."""
    project_id = store.projects.create("logs", {})
    experiment_id = experiments.insert(db, project_id, {}, reservation=Reservation("m", "t"))
    experiments.claim(db, experiment_id, "t", worker_pid=0)
    experiments.start(db, experiment_id, pid=0, argv=["program"], results_dir="results")
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


def finish(sink: LogSink, store, db, experiment: dict[str, Any]) -> dict[str, Any]:
    """What the worker does at the exit: close the sink and record the kept log.

    `db` is the database `store` wraps; the sink keeps the log in its GridFS.
    """
    summary = sink.close(db, experiment["_project_id"])
    exit = experiments.exit_record("exited with code 0", code=0)
    experiments.finish(db, experiment["_id"], Status.SUCCESS, exit, log=summary)
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
    """Parse Server-Sent Events until the server ends the response.

    Each poll reads one chunk (the server sends keepalives while it has nothing else);
    the stream has ended when there is no chunk left.
    """
    chunks = iter(response.response)
    text: list[str] = []

    def ended() -> bool:
        chunk = next(chunks, None)
        if chunk is None:
            return True
        text.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        return False

    wait_for(ended, timeout=timeout, what="the event stream to end", interval=0)
    response.close()
    events: list[dict[str, str]] = []
    *blocks, _rest = "".join(text).split("\n\n")
    for block in blocks:
        event: dict[str, str] = {}
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            event[field] = value
        events.append(event)
    return events


def text_of(entries: list[dict[str, str]], stream: str) -> str:
    return "".join(entry["t"] for entry in entries if entry["s"] == stream)


def event_entries(events: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        {"id": e["id"], **json.loads(e["data"])} for e in events if "data" in e and "event" not in e
    ]


def test_live_then_kept_log_of_a_program(client, store, db, redis_client, experiment) -> None:
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

    summary = finish(sink, store, db, experiment)
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


def test_kept_log_is_one_gridfs_file_outside_files(store, db, redis_client, experiment) -> None:
    sink = LogSink(redis_client, str(experiment["_id"]), max_bytes=1024)
    sink.write("meta", "could not start: no such file\n")
    first = finish(sink, store, db, experiment)
    sink = LogSink(redis_client, str(experiment["_id"]), max_bytes=1024)
    sink.write("err", "second run\n")
    second = finish(sink, store, db, experiment)

    stored = list(db["fs.files"].find({"metadata.experiment": experiment["_id"]}))
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


def test_a_run_that_printed_nothing_keeps_no_file_and_reads_as_ended(
    client, store, db, redis_client, experiment
) -> None:
    sink = LogSink(redis_client, str(experiment["_id"]), max_bytes=1024)
    run("pass", sink)
    summary = finish(sink, store, db, experiment)

    assert summary == {"file_id": None, "bytes": 0, "cut_bytes": 0}
    assert db["fs.files"].count_documents({"metadata.experiment": experiment["_id"]}) == 0
    redis_client.delete(log_key(str(experiment["_id"])))  # the live stream expired
    answer = client.get(f"/api/v1/experiments/{experiment['_id']}/logs").get_json()
    assert (answer["entries"], answer["ended"]) == ([], True)
    events = read_events(
        client.get(f"/api/v1/experiments/{experiment['_id']}/logs/stream", buffered=False)
    )
    assert event_entries(events) == [] and events[-1]["event"] == "end"


def test_event_stream_follows_a_running_program(
    client, store, db, redis_client, experiment, monkeypatch
) -> None:
    monkeypatch.setattr(log_reader, "KEEPALIVE_S", 0.5)
    response = client.get(f"/api/v1/experiments/{experiment['_id']}/logs/stream", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    sink = LogSink(redis_client, str(experiment["_id"]), max_bytes=10 * 1024 * 1024)

    def worker() -> None:
        run(TWO_STREAMS, sink)
        finish(sink, store, db, experiment)

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
    monkeypatch.setattr(log_reader, "KEEPALIVE_S", 0.0)
    monkeypatch.setattr(log_reader, "BLOCK_MS", 20)
    response = client.get(f"/api/v1/experiments/{experiment['_id']}/logs/stream", buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b": keepalive\n\n"
    response.close()
    with pytest.raises(StopIteration):
        next(chunks)


def test_flood_is_drained_and_kept_bounded(client, store, db, redis_client, experiment) -> None:
    sink = LogSink(redis_client, str(experiment["_id"]), max_bytes=1024 * 1024)
    run(FLOOD, sink)
    assert sink.bytes_read == FLOOD_BYTES
    summary = finish(sink, store, db, experiment)
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
    assert "limit is '0'; use a whole number from 1 to 10000" in response.get_json()["error"]


def test_a_program_without_output_yet_is_not_ended(client, db, experiment) -> None:
    url = f"/api/v1/experiments/{experiment['_id']}/logs"
    answer = client.get(url).get_json()
    assert answer == {"entries": [], "last": None, "ended": False, "source": "none"}
    experiments.lose(db, experiment["_id"], "its machine stopped beating")
    assert client.get(url).get_json()["ended"] is True
    events = read_events(client.get(f"{url}/stream", buffered=False))
    assert events == [{"event": "end", "data": "{}"}]
