"""The dispatcher: one pass at a time, and no request for a pass is lost or waits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from redis import Redis

from fglab import scheduler as scheduler_module
from fglab.scheduler import Scheduler
from tasks.contract import RunRequest
from tasks.ledger import Ledger


@pytest.fixture
def redis_client(settings):
    client = Redis.from_url(settings.redis)
    client.delete(scheduler_module._LOCK_KEY, scheduler_module._AGAIN_KEY)
    yield client
    client.delete(scheduler_module._LOCK_KEY, scheduler_module._AGAIN_KEY)
    client.close()


@pytest.fixture
def machine(db, store) -> tuple[str, dict[str, Any]]:
    """A live machine (as its heartbeat writes it) that runs two of the project at once."""
    project = store.get_project(store.create_project("dispatch", {}))
    name = f"dispatch-{project['_id']}"
    db["machines"].insert_one(
        {
            "_id": name,
            "hostname": name,
            "_heartbeat": datetime.now(UTC),
            "projects": {str(project["_id"]): {"capacity": 0.5}},
        }
    )
    return name, project


@pytest.fixture
def sent() -> list[RunRequest]:
    return []


@pytest.fixture
def scheduler(store, redis_client, settings, sent) -> Scheduler:
    ledger = Ledger(redis_client, ttl=settings.lease_ttl)
    return Scheduler(store, ledger, sent.append, settings=settings, redis=redis_client)


def statuses(db) -> list[str]:
    return [doc["_status"] for doc in db["experiments"].find().sort("_created", 1)]


def test_a_busy_dispatcher_is_not_waited_for_and_passes_again(
    db, store, machine, scheduler, redis_client, sent
) -> None:
    name, project = machine
    store.new_experiments(project["_id"], [{}, {}, {}])
    other = redis_client.lock(scheduler_module._LOCK_KEY, timeout=60)
    assert other.acquire(blocking=False)

    assert scheduler.dispatch_queued() == 0  # returns at once: another one holds the lock
    assert statuses(db) == ["queued"] * 3
    assert redis_client.exists(scheduler_module._AGAIN_KEY)

    other.release()
    assert scheduler.dispatch_queued() == 2  # two fit; the third waits
    assert statuses(db) == ["dispatched", "dispatched", "queued"]
    assert [request.machine for request in sent] == [name, name]
    assert not redis_client.exists(scheduler_module._AGAIN_KEY)
    for request in sent:
        scheduler.ledger.release(name, request.experiment_id)


def test_a_request_that_comes_during_a_pass_gets_a_pass_of_its_own(
    store, machine, scheduler, monkeypatch
) -> None:
    _, project = machine
    store.new_experiments(project["_id"], [{}])
    passes: list[int] = []
    one_pass = scheduler._dispatch_queued

    def pass_and_be_asked_again(limit: int) -> int:
        passes.append(limit)
        if len(passes) == 1:  # someone asks while this pass runs: they do not wait
            assert Scheduler.dispatch_queued(scheduler) == 0
        return one_pass(limit)

    monkeypatch.setattr(scheduler, "_dispatch_queued", pass_and_be_asked_again)
    assert scheduler.dispatch_queued() == 1
    assert len(passes) == 2
