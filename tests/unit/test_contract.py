"""The wire contract between FGLab and its machines, pinned: renaming one breaks a test.

Task and queue names travel in broker messages, status and field names live in MongoDB
documents that both sides (and every client of the API) read. Changing one is a
migration, not a refactoring.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from config import Settings
from fglab.sweeps import record
from tasks import contract, experiments, history, machines
from tasks.app import create_celery
from tasks.states import ACTIVE, ENDINGS, MOVES, TERMINAL, Status, next_statuses


def test_task_names() -> None:
    assert {
        "run": contract.RUN_EXPERIMENT,
        "dispatch": contract.DISPATCH,
        "sweep": contract.SWEEP,
        "event": contract.EXPERIMENT_EVENT,
        "webhook": contract.DELIVER_WEBHOOK,
        "add_project": contract.ADD_PROJECT,
    } == {
        "run": "fglab.run_experiment",
        "dispatch": "fglab.dispatch",
        "sweep": "fglab.sweep",
        "event": "fglab.experiment_event",
        "webhook": "fglab.deliver_webhook",
        "add_project": "fglab.add_project",
    }


def test_queue_names() -> None:
    assert contract.SERVER_QUEUE == "fglab"
    assert contract.WEBHOOK_QUEUE == "fglab-webhooks"
    assert contract.machine_queue("gpu-box-1") == "machine-gpu-box-1"
    assert contract.kill_channel("gpu-box-1") == "fglab:kill:gpu-box-1"


def test_run_request_keys() -> None:
    request = contract.RunRequest("e", "p", "m", "t", 1)
    assert request.to_dict() == {
        "experiment_id": "e",
        "project_id": "p",
        "machine": "m",
        "token": "t",
        "gpu": 1,
    }
    assert [f.name for f in dataclasses.fields(contract.RunRequest)] == list(request.to_dict())
    assert contract.RunRequest.from_dict(request.to_dict()) == request


def test_status_names() -> None:
    assert [str(s) for s in Status] == [
        "queued", "dispatched", "claimed", "running", "success", "fail", "killed",
        "timeout", "cancelled", "lost", "pruned",
    ]  # fmt: skip
    assert {Status.DISPATCHED, Status.CLAIMED, Status.RUNNING} == ACTIVE
    assert {Status.SUCCESS, Status.FAIL, Status.KILLED, Status.TIMEOUT, Status.PRUNED} == ENDINGS
    assert ENDINGS | {Status.CANCELLED, Status.LOST} == TERMINAL


def test_the_status_graph() -> None:
    moves = {
        name: (sorted(map(str, sources)), sorted(map(str, targets)))
        for name, (sources, targets) in MOVES.items()
    }
    assert moves == {
        "dispatch": (["queued"], ["dispatched"]),
        "requeue": (["dispatched"], ["queued"]),
        "cancel": (["dispatched", "queued"], ["cancelled"]),
        "claim": (["dispatched"], ["claimed"]),
        "start": (["claimed"], ["running"]),
        "finish": (["claimed", "running"], ["fail", "killed", "pruned", "success", "timeout"]),
        "lose": (["claimed", "running"], ["lost"]),
    }
    for status in TERMINAL:
        assert next_statuses(status) == frozenset(), status
    assert next_statuses(Status.RUNNING) == ENDINGS | {Status.LOST}


def test_experiment_field_names() -> None:
    assert experiments.COLLECTION == "experiments"
    assert experiments.FIELDS == (
        "_id", "_project_id", "_machine_id", "_options", "_status", "_started", "_finished",
        "_files", "_scores", "_notes", "_charts", "_created", "_dispatched", "_claimed",
        "_token", "_gpu", "_waiting", "_timeout", "_kill_requested", "_worker_pid", "_pid",
        "_pgid", "_argv", "_results_dir", "_exit", "_log", "_reaped", "_result_notes",
        "_hooks", "_sweep", "_trial", "_prune", "_step", "_priority", "_queue_at",
        "_resources", "_resource_samples", "_run_dir", "_gaps", "_code", "_rerun_of",
    )  # fmt: skip
    assert experiments.exit_record("why", code=1, signal=None) == {
        "code": 1,
        "signal": None,
        "reason": "why",
    }


def test_history_and_sweep_names() -> None:
    assert (history.COLLECTION, history.EXPERIMENT, history.STEP, history.SCORES, history.AT) == (
        "history", "experiment", "step", "scores", "at",
    )  # fmt: skip
    assert record.COLLECTION == "sweeps"
    assert record.STATES == ("running", "paused", "finished", "cancelled")
    assert record.MOVES == {
        "pause": (("running",), "paused"),
        "resume": (("paused",), "running"),
        "cancel": (("running", "paused"), "cancelled"),
        "finish": (("running",), "finished"),
    }


def test_the_queue_key_weighs_a_point_of_priority_as_a_day_of_waiting() -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    assert experiments.AGING_HOURS == 24.0
    assert experiments.QUEUE_ORDER == (("_queue_at", 1), ("_id", 1))
    assert experiments.queue_at(at, 0) == at
    assert experiments.queue_at(at, 1) == at - timedelta(days=1)
    assert experiments.queue_at(at, -2) == at + timedelta(days=2)
    assert {"_priority", "_queue_at"} <= experiments.SYSTEM_FIELDS


def test_machine_field_names() -> None:
    assert machines.COLLECTION == "machines"
    assert machines.FIELDS == (
        "_id", "hostname", "address", "os", "cpus", "mem", "gpus", "projects", "gpu_count",
        "gpu_details", "gpu_busy", "_registered", "_heartbeat", "projects_error", "drained",
        "drain_reason", "start_failures", "gpu_down",
    )  # fmt: skip
    assert (machines.HISTORY_COLLECTION, machines.SAMPLES) == ("machine_history", "samples")
    assert machines.unavailable_gpus({"gpu_busy": [2], "gpu_down": [0, 2]}) == [0, 2]


# Liveness: one definition for the pages, the scheduler and the sweep -------------------


def test_a_machine_is_live_for_a_lease_lifetime_or_three_heartbeats() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    default = Settings()
    slow = Settings(heartbeat=20.0, lease_ttl=30.0)
    assert machines.liveness_window(default) == timedelta(seconds=30)
    assert machines.liveness_window(slow) == timedelta(seconds=60)
    beat_45s_ago = {"_heartbeat": at - timedelta(seconds=45)}
    assert not machines.is_live(beat_45s_ago, default, at)
    assert machines.is_live(beat_45s_ago, slow, at)


def test_a_machine_without_a_readable_heartbeat_is_not_live() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert not machines.is_live({}, Settings(), at)
    assert not machines.is_live({"_heartbeat": "yesterday"}, Settings(), at)
    naive = {"_heartbeat": datetime(2026, 1, 1) - timedelta(seconds=5)}
    assert machines.is_live(naive, Settings(), at)


def test_the_api_may_set_only_the_users_fields_and_plain_custom_names() -> None:
    assert all(experiments.user_writable(n) for n in ("_notes", "_scores", "_charts", "acc"))
    for name in (
        "_results_dir", "_run_dir", "_pgid", "_token", "_status", "_code", "_rerun_of",
        "_anything_new",
    ):  # fmt: skip
        assert not experiments.user_writable(name)
    assert not experiments.SYSTEM_FIELDS & experiments.USER_FIELDS


def test_an_experiment_event_travels_as_the_tasks_keyword_arguments() -> None:
    from tasks.contract import FINISHED, PROGRESS, ExperimentEvent

    event = ExperimentEvent("6b15", PROGRESS, step=3)
    assert event.to_dict() == {
        "experiment_id": "6b15", "event": "progress", "hooks": True, "step": 3, "trial": True,
    }  # fmt: skip
    assert ExperimentEvent.from_dict(event.to_dict()) == event
    # A message from an older worker carries only what it knew.
    old = ExperimentEvent.from_dict({"experiment_id": "6b15", "event": "finished"})
    assert (old.event, old.hooks, old.trial) == (FINISHED, True, True)
    with pytest.raises(ValueError, match="event 'paused' is not one of"):
        ExperimentEvent("6b15", "paused")


def test_webhook_deliveries_travel_on_their_own_queue() -> None:
    router = create_celery(Settings(), "test").amqp.router
    queue_of = {name: router.route({}, name)["queue"].name for name in ALL_SERVER_TASKS}
    assert queue_of == {
        contract.DISPATCH: "fglab",
        contract.SWEEP: "fglab",
        contract.EXPERIMENT_EVENT: "fglab",
        contract.DELIVER_WEBHOOK: "fglab-webhooks",
    }


ALL_SERVER_TASKS = (
    contract.DISPATCH,
    contract.SWEEP,
    contract.EXPERIMENT_EVENT,
    contract.DELIVER_WEBHOOK,
)
