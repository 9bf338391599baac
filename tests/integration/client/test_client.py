"""`fglab.client.Client` against the real stack: submit, wait, logs, files, kill, rerun,
the table as records, sweeps, and errors that carry the API's message."""

from __future__ import annotations

import pytest

from fglab.client import (
    BadRequest,
    Client,
    Conflict,
    NotFound,
    Unreachable,
    WaitTimeout,
)
from tests.browser.conftest import EXPERIMENT_TIMEOUT, Stack, free_port
from tests.waiting import wait_for


def test_submit_and_wait_until_success(lab: Client, project: dict) -> None:
    run = lab.submit(project["name"], {"mode": "quick", "lr": 0.25})
    assert run.status in {"queued", "dispatched", "claimed", "running", "success"}
    assert run.options == {"mode": "quick", "lr": 0.25, "epochs": 4, "until": "none",
                           "points": 100000}  # fmt: skip
    assert run.wait(timeout=EXPERIMENT_TIMEOUT, poll=0.1) is run
    assert run.status == "success"
    assert run.scores == {"accuracy": 0.75}
    assert lab.experiment(run.id).doc["_scores"] == {"accuracy": 0.75}
    assert lab.project(str(project["_id"]))["name"] == project["name"]


def test_a_failing_run_ends_as_fail_with_its_stderr(lab: Client, project: dict) -> None:
    run = lab.submit(project, {"mode": "fail"}).wait(timeout=EXPERIMENT_TIMEOUT, poll=0.1)
    assert run.status == "fail"
    assert not run.succeeded
    errors = "".join(entry.text for entry in run.logs() if entry.stream == "err")
    assert "failing on purpose" in errors


def test_follow_logs_until_the_end_then_download_a_file(
    lab: Client, project: dict, tmp_path
) -> None:
    run = lab.submit(project, {"mode": "report", "epochs": 3})
    text = "".join(entry.text for entry in run.logs(follow=True) if entry.stream == "out")
    assert text.index("epoch 1/3") < text.index("epoch 3/3") < text.index("done")
    run.wait(timeout=EXPERIMENT_TIMEOUT, poll=0.1)
    assert run.status == "success"
    assert "plot.png" in [f["filename"] for f in run.files()]
    path = run.download("plot.png", tmp_path)
    assert path == tmp_path / "plot.png"
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(NotFound, match=r"has no file 'nope\.txt'"):
        run.download("nope.txt", tmp_path)


def test_kill_a_running_experiment(lab: Client, project: dict, tmp_path) -> None:
    run = lab.submit(project, {"mode": "sleep", "until": str(tmp_path / "never")})
    wait_for(lambda: run.refresh().status == "running", EXPERIMENT_TIMEOUT, "the run to start")
    with pytest.raises(WaitTimeout, match=f"Experiment {run.id} is still running"):
        run.wait(timeout=0.2, poll=0.1)
    run.kill()
    assert run.wait(timeout=EXPERIMENT_TIMEOUT, poll=0.1).status == "killed"
    with pytest.raises(Conflict) as refused:
        run.kill()
    assert refused.value.status == 409


def test_rerun_submits_the_same_options(lab: Client, project: dict) -> None:
    first = lab.submit(project, {"mode": "quick", "lr": 0.5}).wait(timeout=EXPERIMENT_TIMEOUT)
    second = first.rerun()
    assert second.id != first.id
    assert second.wait(timeout=EXPERIMENT_TIMEOUT, poll=0.1).options == first.options
    assert second.status == "success"


def test_experiments_page_filter_sort_and_flatten(lab: Client, project: dict) -> None:
    runs = lab.batch(project, [{"mode": "quick", "lr": lr} for lr in (0.1, 0.2, 0.3)])
    runs.append(lab.submit(project, {"mode": "fail"}))
    for run in runs:
        run.wait(timeout=EXPERIMENT_TIMEOUT, poll=0.1)
    done = lab.experiments(project, status="success", sort="_options.lr", descending=True)
    assert [e.options["lr"] for e in done] == [0.3, 0.2, 0.1]
    assert done.total == 3
    records = done.to_records()
    assert [r["options.lr"] for r in records] == [0.3, 0.2, 0.1]
    assert records[0]["scores.accuracy"] == pytest.approx(0.7)
    assert {r["status"] for r in records} == {"success"}
    assert all(not isinstance(v, dict) for r in records for v in r.values())  # DataFrame-ready
    assert {"_id", "created", "started", "finished", "machine"} <= set(records[0])
    assert len(lab.experiments(project, limit=2).to_records()) == 2
    assert len(list(lab.experiments(project, filter="_options.lr>0.15"))) == 2
    assert [e.status for e in lab.experiments(project, status=["fail"])] == ["fail"]


def test_a_random_search_is_a_list_of_experiments(lab: Client, project: dict) -> None:
    runs = lab.search(project, "grid", {"lr": {"min": 0.1, "max": 0.3, "steps": 2}})
    assert sorted(run.options["lr"] for run in runs) == pytest.approx([0.1, 0.2])


def test_a_sweep_runs_its_budget_and_names_the_best(lab: Client, project: dict) -> None:
    sweep = lab.sweep(
        project,
        method="random",
        space={"mode": {"values": ["curve"]}, "lr": {"min": 0.1, "max": 0.5}},
        objective="loss:min",
        budget=2,
        parallelism=2,
        seed=1,
    )
    assert sweep.state == "running"
    assert sweep.doc["objective"] == {"score": "loss", "goal": "minimize"}
    sweep.wait(timeout=2 * EXPERIMENT_TIMEOUT, poll=0.2)
    assert sweep.state == "finished"
    trials = sweep.trials()
    assert len(trials) == 2
    best = min(trials, key=lambda t: t["objective"])
    assert sweep.best is not None
    assert sweep.best["experiment"] == best["experiment"]
    assert lab.get_sweep(sweep.id).state == "finished"
    assert [s.id for s in lab.sweeps(project)] == [sweep.id]


def test_cancel_a_sweep(lab: Client, project: dict, tmp_path) -> None:
    sweep = lab.sweep(
        project,
        method="grid",
        space={"mode": {"values": ["sleep"]}, "until": {"values": [str(tmp_path / "never")]}},
    )
    assert sweep.kill().state == "cancelled"
    wait_for(
        lambda: all(t["status"] in {"cancelled", "killed"} for t in sweep.refresh().trials()),
        EXPERIMENT_TIMEOUT,
        "the sweep's trial to end",
    )


def test_refusals_carry_the_api_message_and_store_nothing(
    lab: Client, project: dict, stack: Stack, stored
) -> None:
    before = stored()
    with pytest.raises(BadRequest, match="Field nope is not in the project schema") as refused:
        lab.submit(project, {"nope": 1})
    assert refused.value.status == 400
    with pytest.raises(BadRequest, match="Field lr of type float is invalid"):
        lab.batch(project, [{"lr": 0.1}, {"lr": "fast"}])
    with pytest.raises(NotFound, match="Project 'no-such-project' does not exist"):
        lab.submit("no-such-project", {})
    with pytest.raises(NotFound, match="does not exist"):
        lab.experiment("0123456789abcdef01234567")
    with pytest.raises(ValueError, match="objective 'loss:up' is not usable"):
        lab.sweep(project, "bayes", {"lr": {"min": 0.1, "max": 1}}, "loss:up", budget=2)
    assert stored() == before


def test_an_unreachable_fglab_is_one_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable, match=f"FGLab is unreachable at {url}"):
        Client(url).projects()


def test_the_url_comes_from_the_environment(stack: Stack, monkeypatch, project: dict) -> None:
    monkeypatch.setenv("FGLAB_URL", stack.url)
    assert project["name"] in [p["name"] for p in Client().projects()]
