"""The dispatcher: one pass at a time, no request for a pass is lost or waits, and what
waits leaves the queue by priority, then age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis

from fglab import scheduler as scheduler_module
from fglab.errors import Conflict
from fglab.scheduler import Scheduler
from tasks import experiments
from tasks.contract import RunRequest
from tasks.experiments import AGING_HOURS
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
    project = store.projects.get(store.projects.create("dispatch", {}))
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


# Priorities --------------------------------------------------------------------------


@pytest.fixture
def one_slot(db, store, machine) -> tuple[str, dict[str, Any]]:
    """The machine, now with room for one experiment of the project at a time."""
    name, project = machine
    db["machines"].update_one(
        {"_id": name}, {"$set": {f"projects.{project['_id']}": {"capacity": 1.0}}}
    )
    return name, project


def finish_and_dispatch(scheduler: Scheduler, name: str, sent: list[RunRequest]) -> str:
    """End the run that holds the slot (its lease goes back) and let the dispatcher
    place what waits; returns the ID of the experiment placed next."""
    ended = sent[-1]
    scheduler.ledger.release(name, ended.experiment_id)
    assert scheduler.dispatch_queued() == 1
    assert sent[-1] is not ended
    return sent[-1].experiment_id


def test_with_one_slot_and_ten_queued_a_higher_priority_submit_runs_next(
    store, one_slot, scheduler, sent
) -> None:
    name, project = one_slot
    running = scheduler.submit(project, {"n": 0}, queue=True)
    assert [r.experiment_id for r in sent] == [str(running)]
    waiting = store.new_experiments(project["_id"], [{"n": i} for i in range(1, 11)])

    urgent = scheduler.submit(project, {"n": "urgent"}, queue=True, priority=1)

    assert store.get_experiment(urgent)["_status"] == "queued"
    assert store.queue_position(store.get_experiment(urgent)) == 1
    assert finish_and_dispatch(scheduler, name, sent) == str(urgent)
    # Then the others, oldest first, as before priorities.
    assert finish_and_dispatch(scheduler, name, sent) == str(waiting[0])
    assert finish_and_dispatch(scheduler, name, sent) == str(waiting[1])
    scheduler.ledger.release(name, sent[-1].experiment_id)


def test_moving_an_experiment_to_the_front_places_it_next(store, one_slot, scheduler, sent) -> None:
    name, project = one_slot
    scheduler.submit(project, {}, queue=True)
    waiting = store.new_experiments(project["_id"], [{"n": i} for i in range(5)])
    store.new_experiments(project["_id"], [{"n": "high"}], priority=2)
    last = waiting[-1]

    moved = store.move_to_front(last)

    assert store.queue_position(moved) == 1
    assert [store.queue_position(store.get_experiment(i)) for i in waiting[:2]] == [3, 4]
    assert finish_and_dispatch(scheduler, name, sent) == str(last)
    with pytest.raises(Conflict, match="is dispatched, not queued"):
        store.move_to_front(last)
    scheduler.ledger.release(name, sent[-1].experiment_id)


@pytest.mark.parametrize(
    ("waited_hours", "first"), [(AGING_HOURS - 1, "urgent"), (AGING_HOURS + 1, "old")]
)
def test_waiting_weighs_like_priority_so_nothing_starves(
    store, one_slot, scheduler, sent, monkeypatch, waited_hours, first
) -> None:
    """A point of priority is worth AGING_HOURS of waiting: older work overtakes it."""
    name, project = one_slot
    scheduler.submit(project, {}, queue=True)
    then = datetime.now(UTC) - timedelta(hours=waited_hours)
    monkeypatch.setattr(experiments, "now", lambda: then)
    old = store.new_experiments(project["_id"], [{"n": "old"}])[0]
    monkeypatch.undo()
    urgent = store.new_experiments(project["_id"], [{"n": "urgent"}], priority=1)[0]

    placed = finish_and_dispatch(scheduler, name, sent)

    assert placed == str({"old": old, "urgent": urgent}[first])
    scheduler.ledger.release(name, sent[-1].experiment_id)


def test_queued_experiments_from_before_priorities_get_their_place(db, store) -> None:
    project_id = store.projects.create("legacy", {})
    created = datetime(2024, 1, 1, tzinfo=UTC)
    db["experiments"].insert_one(
        {"_project_id": project_id, "_status": "queued", "_created": created}
    )

    store.ensure_indexes()

    doc = db["experiments"].find_one({"_project_id": project_id})
    assert (doc["_priority"], doc["_queue_at"]) == (0, created)
    assert store.queue_position(doc) == 1
