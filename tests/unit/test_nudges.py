"""A machine with room again nudges the scheduler through pub/sub: one dispatch for a
burst, and a dispatch task instead when no scheduler listens."""

from __future__ import annotations

import threading

import fakeredis
import pytest

from config import Settings
from fglab.nudges import listen_for_nudges
from tasks.contract import dispatch_channel
from tests.waiting import wait_for
from worker.machine import Machine

CHANNEL = dispatch_channel("fglab_test")


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def machine(redis, tmp_path) -> tuple[Machine, list[object]]:
    sent: list[object] = []
    settings = Settings(mongodb_db="fglab_test", machine_name="nudger", data_dir=tmp_path)
    box = Machine(settings, db=object(), redis=redis, notify=sent.append)  # type: ignore[arg-type]
    return box, sent


def test_with_no_scheduler_listening_the_machine_sends_a_dispatch_task(redis, tmp_path):
    box, sent = machine(redis, tmp_path)

    box.nudge()

    assert sent == [None]  # no event: only "dispatch what waits"


def test_a_listening_scheduler_dispatches_once_for_a_burst(redis, tmp_path):
    dispatched: list[int] = []
    first = threading.Event()

    def dispatch() -> None:
        dispatched.append(1)
        first.wait(10)  # the burst arrives while this dispatch runs

    stop = threading.Event()
    listener = threading.Thread(target=listen_for_nudges, args=(redis, CHANNEL, dispatch, stop))
    listener.start()
    try:
        wait_for(lambda: redis.pubsub_numsub(CHANNEL)[0][1], 10, "the listener to subscribe")
        box, sent = machine(redis, tmp_path)

        box.nudge()
        wait_for(lambda: dispatched, 10, "the first dispatch")
        for _ in range(5):
            box.nudge()
        first.set()
        wait_for(lambda: len(dispatched) == 2, 10, "one more dispatch for the burst")

        assert sent == []  # heard: no dispatch task
        assert redis.publish(dispatch_channel("another_fleet"), "x") == 0  # fleets apart
    finally:
        stop.set()
        listener.join(10)
    assert len(dispatched) == 2
