"""LogSink over fakeredis: pipes drained in order, UTF-8 kept whole, the cap, Redis failures."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable

import fakeredis
import pytest
import redis

from tasks.logs import END_MARK, cut_notice, encode_line, log_key
from tests.waiting import wait_for
from worker import logs
from worker.logs import LogSink

EXPERIMENT = "65f0c0ffee0000000000abcd"


@pytest.fixture
def fake() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def feed(chunks: Iterable[bytes]) -> tuple[int, threading.Thread]:
    """A pipe whose writer thread writes `chunks` and closes; returns (read end, writer)."""
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as pipe:
            for chunk in chunks:
                pipe.write(chunk)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return read_fd, writer


def live(fake: fakeredis.FakeRedis) -> list[tuple[str, str]]:
    return [
        (fields[b"s"].decode(), fields[b"t"].decode())
        for _, fields in fake.xrange(log_key(EXPERIMENT))
    ]


def kept(sink: LogSink) -> list[tuple[str, str]]:
    return [(e["s"], e["t"]) for e in map(json.loads, sink.kept_log().splitlines())]


def text_of(entries: list[tuple[str, str]], stream: str) -> str:
    return "".join(text for name, text in entries if name == stream)


def numbered(name: str, count: int) -> list[bytes]:
    return [f"{name} line {i:05d}\n".encode() for i in range(count)]


def test_pumps_keep_every_line_in_order(fake) -> None:
    sink = LogSink(fake, EXPERIMENT, max_bytes=10 * 1024 * 1024)
    out, err = numbered("out", 3000), numbered("err", 3000)
    read_out, write_out = os.pipe()
    read_err, write_err = os.pipe()

    def interleave() -> None:
        for line_out, line_err in zip(out, err, strict=True):
            os.write(write_out, line_out)
            os.write(write_err, line_err)
        os.close(write_out)
        os.close(write_err)

    threads = [sink.pump(read_out, "out"), sink.pump(read_err, "err")]
    writer = threading.Thread(target=interleave, daemon=True)
    writer.start()
    sink.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    for entries in (live(fake), kept(sink)):
        assert text_of(entries, "out") == b"".join(out).decode()
        assert text_of(entries, "err") == b"".join(err).decode()
    total = sum(map(len, out + err))
    assert sink.bytes_read == sink.total_bytes == total
    assert sink.cut_bytes == sink.unstreamed_bytes == 0
    assert sink.tail("err", 2) == "err line 02998\nerr line 02999"


def test_pump_takes_a_file_object_and_closes_it(fake) -> None:
    read_fd, _ = feed([b"hello\n"])
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    sink = LogSink(fake, EXPERIMENT, max_bytes=1024)
    sink.pump(pipe, "out")
    sink.join(timeout=10)
    assert pipe.closed
    assert live(fake) == [("out", "hello\n")]


def test_multibyte_characters_split_across_reads_survive(fake) -> None:
    read_fd, write_fd = os.pipe()
    sink = LogSink(fake, EXPERIMENT, max_bytes=1024)
    sink.pump(read_fd, "out")
    # "café €" with each multi-byte character cut between two reads.
    sent = 0
    for part in (b"caf\xc3", b"\xa9 \xe2\x82", b"\xac \xff\n"):
        os.write(write_fd, part)
        sent += len(part)
        wait_for(
            lambda sent=sent: sink.bytes_read >= sent,
            timeout=10,
            what=f"the sink to read the first {sent} bytes",
            interval=0.002,
        )
    os.close(write_fd)
    sink.join(timeout=10)
    assert text_of(live(fake), "out") == "café € \ufffd\n"
    assert text_of(kept(sink), "out") == "café € \ufffd\n"


def test_a_truncated_character_at_eof_becomes_a_replacement(fake) -> None:
    read_fd, _ = feed([b"end\xe2\x82"])
    sink = LogSink(fake, EXPERIMENT, max_bytes=1024)
    sink.pump(read_fd, "err")
    sink.join(timeout=10)
    assert text_of(live(fake), "err") == "end\ufffd"


def test_cap_keeps_the_tail_and_marks_the_cut(fake) -> None:
    lines = numbered("out", 2000)
    read_fd, _ = feed(lines)
    sink = LogSink(fake, EXPERIMENT, max_bytes=1000)
    sink.pump(read_fd, "out")
    sink.join(timeout=10)

    everything = b"".join(lines).decode()
    notice, *rest = kept(sink)
    kept_text = text_of(rest, "out")
    assert notice == ("meta", cut_notice(sink.cut_bytes))
    assert len(kept_text.encode()) <= 1000
    assert everything.endswith(kept_text)
    assert sink.cut_bytes == len(everything) - len(kept_text) > 0
    assert sink.total_bytes == len(everything)
    assert sink.tail("out", 2) == "out line 01998\nout line 01999"
    # The live stream is not capped by max_bytes.
    assert text_of(live(fake), "out") == everything


def test_one_chunk_over_the_cap_keeps_its_end_on_a_character_boundary(fake) -> None:
    sink = LogSink(fake, EXPERIMENT, max_bytes=101)
    sink.write("meta", "é" * 1000)
    (notice, (stream, text)) = kept(sink)
    assert notice == ("meta", cut_notice(2000 - 100))
    assert (stream, text) == ("meta", "é" * 50)


def test_a_failing_redis_never_stops_the_pipe(fake, monkeypatch, caplog) -> None:
    def refuse(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(fake, "xadd", refuse)
    chunks = [bytes([65 + i % 26]) * 65536 for i in range(80)]  # 5 MiB
    read_fd, writer = feed(chunks)
    sink = LogSink(fake, EXPERIMENT, max_bytes=1024 * 1024)
    with caplog.at_level(logging.WARNING, logger="worker.logs"):
        sink.pump(read_fd, "out")
        sink.join(timeout=30)

    total = 80 * 65536
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert sink.bytes_read == sink.total_bytes == sink.unstreamed_bytes == total
    notice, *rest = kept(sink)
    assert notice == ("meta", cut_notice(sink.cut_bytes))
    assert b"".join(chunks).decode().endswith(text_of(rest, "out"))
    assert sink.cut_bytes + len(text_of(rest, "out")) == total
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Redis failed" in warnings[0].getMessage()

    # Redis answers again: the next chunk goes live, after a notice of the gap.
    monkeypatch.undo()
    sink.write("meta", "back")
    sink.join(timeout=10)
    assert live(fake) == [("meta", f"[... {total} bytes not streamed live ...]"), ("meta", "back")]


def test_a_stalled_redis_costs_bounded_memory_and_never_blocks_the_pipe(fake, monkeypatch) -> None:
    released = threading.Event()
    real_xadd = fake.xadd

    def stalled(*args, **kwargs):
        released.wait(30)
        return real_xadd(*args, **kwargs)

    monkeypatch.setattr(fake, "xadd", stalled)
    monkeypatch.setattr(logs, "PENDING_LIMIT", 1024 * 1024)
    chunks = [b"x" * 65535 + b"\n"] * 64  # 4 MiB, four times the pending limit
    read_fd, writer = feed(chunks)
    sink = LogSink(fake, EXPERIMENT, max_bytes=64 * 1024)
    sink.pump(read_fd, "out")

    writer.join(timeout=30)
    assert not writer.is_alive(), "the program was blocked by a stalled Redis"
    wait_for(
        lambda: sink.bytes_read == 64 * 65536,
        timeout=10,
        what="the sink to read all 4 MiB while Redis stalls",
        interval=0.002,
    )
    released.set()
    sink.join(timeout=30)

    entries = live(fake)
    streamed = sum(len(text) for stream, text in entries if stream == "out")
    assert sink.unstreamed_bytes > 0
    assert streamed + sink.unstreamed_bytes == 64 * 65536
    # One notice, or several when the publisher took a batch while output was still
    # being dropped: together they account for every byte not streamed.
    notices = [
        re.fullmatch(r"\[\.\.\. (\d+) bytes not streamed live \.\.\.\]", text)
        for stream, text in entries
        if stream == "meta"
    ]
    assert notices and all(notices)
    assert sum(int(n[1]) for n in notices if n) == sink.unstreamed_bytes


def test_small_chunks_are_coalesced_per_stream_keeping_the_last_offset() -> None:
    batch = [("out", "a", 1, 10), ("out", "b", 1, 20), ("err", "c", 1, 30), ("out", "d", 1, None)]
    assert logs._coalesce(batch) == [
        ("out", "ab", 2, 20),
        ("err", "c", 1, 30),
        ("out", "d", 1, None),
    ]
    big = [("out", "x" * 40000, 40000, None), ("out", "y" * 40000, 40000, None)]
    assert [size for _, _, size, _ in logs._coalesce(big)] == [40000, 40000]


def test_tail_of_a_stream_without_output_is_empty(fake) -> None:
    sink = LogSink(fake, EXPERIMENT, max_bytes=1024)
    sink.write("out", "only out\n")
    assert sink.tail("err") == ""
    assert sink.tail("out", 0) == ""
    assert sink.tail("out") == "only out"


def test_reserved_stream_and_bad_cap_are_refused(fake) -> None:
    with pytest.raises(ValueError, match="max_bytes is 0"):
        LogSink(fake, EXPERIMENT, max_bytes=0)
    sink = LogSink(fake, EXPERIMENT, max_bytes=10)
    with pytest.raises(ValueError, match=f"stream '{END_MARK}' is reserved"):
        sink.write(END_MARK, "x")


def test_a_followed_file_resumes_the_live_stream_where_it_stopped(fake, tmp_path) -> None:
    path = tmp_path / "output.log"
    first = [encode_line("out", f"line {i}\n") for i in range(3)]
    path.write_bytes(b"".join(first))
    sink = LogSink(fake, EXPERIMENT, max_bytes=1 << 20)
    sink.follow(path)
    wait_for(
        lambda: text_of(live(fake), "out") == "line 0\nline 1\nline 2\n",
        timeout=10,
        what="the first lines to stream",
    )
    assert sink.streamed_offset() == path.stat().st_size
    sink.stop_following()  # its worker goes
    sink.join()

    # A later worker: the kept tail gets everything, the stream only what is new.
    with path.open("ab") as out:
        out.write(encode_line("err", "line 3\n") + encode_line("out", "line 4\n")[:5])
    resumed = LogSink(fake, EXPERIMENT, max_bytes=1 << 20)
    resumed.follow(path, publish_from=resumed.streamed_offset())
    with path.open("ab") as out:
        out.write(encode_line("out", "line 4\n")[5:])  # the rest of a half-written line
    resumed.stop_following()
    resumed.join()

    # Each line once, in order (neighbours of one stream may share an entry).
    assert "".join(text for _, text in live(fake)) == "".join(f"line {i}\n" for i in range(5))
    assert text_of(live(fake), "err") == "line 3\n"
    assert text_of(kept(resumed), "out") == "line 0\nline 1\nline 2\nline 4\n"
    assert text_of(kept(resumed), "err") == "line 3\n"
    assert resumed.streamed_offset() == path.stat().st_size
