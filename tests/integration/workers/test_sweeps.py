"""Sweeps on a real fleet: a scheduler, a machine worker, a program that reports steps."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from tests.integration.fleet import implementation, live, machine_name
from tests.waiting import wait_for

CURVE = Path(__file__).parents[1] / "programs" / "curve.py"


@pytest.fixture
def project_schema() -> dict[str, Any]:
    return {
        "final": {"type": "float", "default": 0.5},
        "steps": {"type": "int", "default": 5},
        "delay": {"type": "float", "default": 0.05},
    }


@pytest.fixture
def machine(db, fleet, project, tmp_path) -> str:
    """A machine with room for four trials at once, and the scheduler."""
    name = machine_name()
    entry = implementation(
        tmp_path, args=[str(CURVE), "--results", str(tmp_path / "results")], capacity=0.25
    )
    entry["command"] = sys.executable
    fleet.start_scheduler()
    fleet.start_machine(name, {str(project["_id"]): entry})
    wait_for(live(db, name), timeout=30, what="the machine to register")
    return name


def create(client, project, **body) -> str:
    answer = client.post(f"/api/v1/projects/{project['_id']}/sweeps", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json["_id"]


def sweep_state(client, sweep_id: str, state: str):
    def check():
        sweep = client.get(f"/api/v1/sweeps/{sweep_id}").json
        return sweep if sweep["state"] == state else None

    return check


def trials(db, sweep_id: str) -> list[dict]:
    return list(db["experiments"].find({"_sweep": ObjectId(sweep_id)}).sort("_trial", 1))


def most_at_once(docs: list[dict]) -> int:
    """The most trials that ran at the same time, from their start and finish times."""
    events = sorted(
        [(doc["_started"], 1) for doc in docs] + [(doc["_finished"], -1) for doc in docs],
        key=lambda event: (event[0], event[1]),
    )
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


LOSS = {"score": "loss", "goal": "minimize"}


def test_a_grid_sweep_of_six_runs_six_trials_two_at_a_time(client, db, project, machine):
    space = {"final": {"min": 0, "max": 3, "steps": 3}, "steps": {"min": 2, "max": 4, "steps": 2}}
    sweep_id = create(client, project, method="grid", space=space, parallelism=2, objective=LOSS)
    sweep = wait_for(sweep_state(client, sweep_id, "finished"), 120, "the sweep to finish")
    docs = trials(db, sweep_id)
    assert [doc["_trial"] for doc in docs] == [0, 1, 2, 3, 4, 5]
    assert {(d["_options"]["final"], d["_options"]["steps"]) for d in docs} == {
        (f, s) for f in (0.0, 1.0, 2.0) for s in (2, 3)
    }
    assert {doc["_status"] for doc in docs} == {"success"}
    assert most_at_once(docs) <= 2
    assert sweep["counts"] == {"success": 6}
    assert sweep["best"]["options"]["final"] == 0.0 and sweep["best"]["options"]["steps"] == 3
    assert sweep["best"]["objective"] == pytest.approx(1 / 3)


def test_a_bayes_sweep_spends_its_budget_and_names_the_best(client, db, project, machine):
    space = {"final": {"min": 0, "max": 4}}
    sweep_id = create(
        client, project, method="bayes", space=space, budget=8, parallelism=3,
        objective=LOSS, seed=4,
    )  # fmt: skip
    sweep = wait_for(sweep_state(client, sweep_id, "finished"), 120, "the sweep to finish")
    docs = trials(db, sweep_id)
    assert [doc["_trial"] for doc in docs] == list(range(8))
    assert all(0 <= doc["_options"]["final"] < 4 for doc in docs)
    values = [t["objective"] for t in sweep["trials"]]
    assert sweep["best"]["objective"] == min(values)
    assert most_at_once(docs) <= 3
    points = client.get(f"/api/v1/experiments/{docs[0]['_id']}/history").json
    assert points and points[-1]["step"] == 5


def test_median_pruning_stops_a_bad_trial_says_why_and_starts_the_next(
    client, db, project, machine
):
    # One at a time, in grid order: two good trials, then two clearly bad ones.
    space = {
        "final": {"min": 0.1, "max": 8.1, "steps": 4},
        "steps": {"min": 20, "max": 21},
        "delay": {"min": 0.2, "max": 0.3},
    }
    sweep_id = create(
        client, project, method="grid", space=space, parallelism=1, objective=LOSS,
        prune={"pruner": "median", "n_startup_trials": 2},
    )  # fmt: skip
    sweep = wait_for(sweep_state(client, sweep_id, "finished"), 180, "the sweep to finish")
    docs = trials(db, sweep_id)
    assert [doc["_status"] for doc in docs] == ["success", "success", "pruned", "pruned"]
    pattern = (
        r"pruned at step (\d+): loss [\d.]+ is worse than the median [\d.]+ "
        r"of 2 trials at that step"
    )
    for doc in docs[2:]:
        match = re.fullmatch(pattern, doc["_exit"]["reason"])
        assert match, doc["_exit"]
        assert int(match.group(1)) < 20
        steps = [p["step"] for p in client.get(f"/api/v1/experiments/{doc['_id']}/history").json]
        assert max(steps) < 20  # stopped before its last step
    assert docs[3]["_started"] >= docs[2]["_finished"]
    assert [t["reason"] for t in sweep["trials"][2:]] == [d["_exit"]["reason"] for d in docs[2:]]
    assert sweep["best"]["trial"] == 0


def test_a_restarted_scheduler_goes_on_without_running_a_trial_twice(
    client, db, fleet, project, machine
):
    space = {"final": {"min": 0, "max": 4}, "delay": {"min": 0.1, "max": 0.2}}
    sweep_id = create(
        client, project, method="bayes", space=space, budget=8, parallelism=2,
        objective=LOSS, seed=2,
    )  # fmt: skip
    wait_for(
        lambda: sum(doc["_status"] == "success" for doc in trials(db, sweep_id)) >= 2,
        60,
        "two trials to succeed",
    )
    scheduler = next(p for p in fleet.processes if p.name == "scheduler")
    scheduler.stop(sig=9)
    fleet.start_scheduler()
    sweep = wait_for(sweep_state(client, sweep_id, "finished"), 120, "the sweep to finish")
    docs = trials(db, sweep_id)
    assert [doc["_trial"] for doc in docs] == list(range(8))
    assert {doc["_status"] for doc in docs} == {"success"}
    assert sweep["counts"] == {"success": 8}


def test_a_grid_of_3_by_2_by_2_makes_exactly_its_12_option_sets(client, db, project, machine):
    space = {
        "final": {"min": 0, "max": 3, "steps": 3},
        "steps": {"min": 2, "max": 4, "steps": 2},
        "delay": {"min": 0.01, "max": 0.03, "steps": 2},
    }
    sweep_id = create(client, project, method="grid", space=space, parallelism=4, objective=LOSS)
    sweep = wait_for(sweep_state(client, sweep_id, "finished"), 120, "the sweep to finish")
    docs = trials(db, sweep_id)
    sets = [(d["_options"]["final"], d["_options"]["steps"], d["_options"]["delay"]) for d in docs]
    assert len(docs) == 12 == db["experiments"].count_documents({"_project_id": project["_id"]})
    assert sorted(sets) == [
        (f, s, d) for f in (0.0, 1.0, 2.0) for s in (2, 3) for d in (0.01, 0.02)
    ]
    assert sweep["counts"] == {"success": 12}
    assert most_at_once(docs) <= 4


def test_random_trials_stay_in_every_range_and_draw_log_scales_in_the_exponent(
    client, db, project, machine
):
    space = {
        "final": {"min": 0.001, "max": 10, "scale": "log", "base": 10},
        "steps": {"min": 2, "max": 5},
        "delay": {"min": 0.01, "max": 0.02},
    }
    sweep_id = create(
        client, project, method="random", space=space, budget=20, parallelism=4,
        objective=LOSS, seed=11,
    )  # fmt: skip
    wait_for(sweep_state(client, sweep_id, "finished"), 180, "the sweep to finish")
    docs = trials(db, sweep_id)
    assert [doc["_trial"] for doc in docs] == list(range(20))
    finals = [doc["_options"]["final"] for doc in docs]
    assert all(0.001 <= f < 10 for f in finals)
    assert all(
        isinstance(d["_options"]["steps"], int) and 2 <= d["_options"]["steps"] < 5 for d in docs
    )
    assert all(0.01 <= d["_options"]["delay"] < 0.02 for d in docs)
    # Uniform in the exponent: three quarters fall below 1 (a linear draw: one in ten),
    # and every decade [10^k, 10^(k+1)) gets some.
    assert sum(f < 1 for f in finals) >= 10
    assert {math.floor(math.log10(f)) for f in finals} == {-3, -2, -1, 0}
    assert len(set(finals)) == 20


def test_pause_lets_running_trials_finish_resume_goes_on_and_cancel_kills(
    client, db, project, machine
):
    space = {
        "final": {"min": 0, "max": 4, "steps": 4},
        "steps": {"min": 30, "max": 31},
        "delay": {"min": 0.1, "max": 0.11},
    }
    sweep_id = create(client, project, method="grid", space=space, parallelism=2, objective=LOSS)
    url = f"/api/v1/sweeps/{sweep_id}"

    def statuses() -> list[str]:
        return [doc["_status"] for doc in trials(db, sweep_id)]

    wait_for(lambda: statuses() == ["running", "running"], 60, "two trials to run")
    assert client.post(f"{url}/pause").json["state"] == "paused"
    wait_for(lambda: statuses() == ["success", "success"], 60, "the running trials to finish")
    # Their slots were freed (the end events were handled) and no trial was made.
    wait_for(lambda: db["sweeps"].find_one({"_id": ObjectId(sweep_id)})["open"] == [], 30,
             "the ended trials' slots to be freed")  # fmt: skip
    assert statuses() == ["success", "success"]

    assert client.post(f"{url}/resume").json["state"] == "running"
    wait_for(lambda: statuses()[2:] == ["running", "running"], 60, "the next two trials to run")
    cancelled = client.post(f"{url}/cancel").json
    assert cancelled["state"] == "cancelled"
    wait_for(lambda: statuses()[2:] == ["killed", "killed"], 60, "the running trials to be killed")
    docs = trials(db, sweep_id)
    assert len(docs) == 4
    for doc in docs[2:]:
        steps = [p["step"] for p in client.get(f"/api/v1/experiments/{doc['_id']}/history").json]
        assert max(steps, default=0) < 30  # stopped before its last step
    assert client.get(url).json["counts"] == {"success": 2, "killed": 2}
