"""The ``fglab`` client commands against the real stack, in this process through
`fglab.cli.main` (and once as a real ``fglab`` process): human output, ``--json`` that
parses, exit codes, and bad input refused with one line and nothing stored."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fglab.auth import create_token
from fglab.client import Client
from tests.browser.conftest import EXPERIMENT_TIMEOUT, Stack, free_port
from tests.waiting import wait_for

FGLAB = Path(sys.executable).parent / "fglab"


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_submit_and_wait_prints_the_outcome(fglab, project: dict) -> None:
    run = fglab("submit", project["name"], "-o", "mode=quick", "-o", "lr=0.5", "--wait")
    assert run.code == 0, run.err
    submitted, outcome = run.out.splitlines()
    assert re.fullmatch(
        rf"submitted [0-9a-f]{{24}} to {project['name']} \((queued|dispatched|claimed|running)\)",
        submitted,
    ), submitted
    experiment_id = submitted.split()[1]
    assert outcome.startswith(f"{experiment_id} success in ")
    assert outcome.endswith(": accuracy=0.5")


def test_submit_json_is_the_document(fglab, project: dict, stack: Stack) -> None:
    run = fglab("submit", str(project["_id"]), "-o", "lr=0.2", "--priority", "3", "--json")
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert doc["_options"]["lr"] == 0.2
    assert stack.experiment(doc["_id"])["_priority"] == 3


def test_a_waited_run_that_fails_exits_non_zero(fglab, project: dict) -> None:
    run = fglab("submit", project["name"], "-o", "mode=fail", "--wait", "--json")
    assert run.code == 3
    assert json.loads(run.out)["_status"] == "fail"


def test_the_wait_shows_a_progress_line_on_a_terminal(
    fglab, project: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    run = fglab("submit", project["name"], "-o", "mode=quick", "--wait")
    assert run.code == 0
    assert " success [" in run.err or " running [" in run.err or " queued [" in run.err


def test_follow_prints_the_output_then_the_outcome(fglab, project: dict) -> None:
    run = fglab("submit", project["name"], "-o", "mode=report", "-o", "epochs=3", "--follow")
    assert run.code == 0, run.err
    out = run.out
    assert out.index("epoch 1/3") < out.index("epoch 3/3") < out.index("done")
    assert " success in " in out.splitlines()[-1]


def test_logs_show_and_their_json(fglab, lab: Client, project: dict) -> None:
    done = lab.submit(project, {"mode": "report", "epochs": 2}).wait(timeout=EXPERIMENT_TIMEOUT)
    logs = fglab("logs", done.id)
    assert logs.code == 0
    assert "epoch 2/2" in logs.out
    followed = fglab("logs", done.id, "-f", "--json")
    entries = json.loads(followed.out)
    assert "epoch 1/2" in "".join(e["text"] for e in entries if e["stream"] == "out")
    show = fglab("show", done.id)
    assert show.code == 0
    assert "status      success" in show.out
    assert "files       plot.png" in show.out
    assert json.loads(fglab("show", done.id, "--json").out)["_id"] == done.id


def test_kill_a_running_experiment_and_refuse_a_second_kill(
    fglab, lab: Client, project: dict, tmp_path
) -> None:
    run = lab.submit(project, {"mode": "sleep", "until": str(tmp_path / "never")})
    wait_for(lambda: run.refresh().status == "running", EXPERIMENT_TIMEOUT, "the run to start")
    killed = fglab("kill", run.id)
    assert killed.code == 0, killed.err
    assert killed.out.strip() == f"{run.id}: kill requested (running)"
    assert run.wait(timeout=EXPERIMENT_TIMEOUT, poll=0.1).status == "killed"
    again = fglab("kill", run.id, "--json")
    assert again.code == 1
    assert again.out == ""
    assert "has already ended" in one_line(again.err) or "ended" in one_line(again.err)


def test_rerun_waits_for_the_new_experiment(fglab, lab: Client, project: dict) -> None:
    first = lab.submit(project, {"mode": "quick", "lr": 0.3}).wait(timeout=EXPERIMENT_TIMEOUT)
    run = fglab("rerun", first.id, "--wait", "--json")
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert doc["_id"] != first.id
    assert doc["_status"] == "success"
    assert doc["_options"] == first.options


def test_ls_filters_sorts_and_limits(fglab, lab: Client, project: dict) -> None:
    runs = lab.batch(project, [{"mode": "quick", "lr": lr} for lr in (0.1, 0.2, 0.3)])
    runs.append(lab.submit(project, {"mode": "fail"}))
    for run in runs:
        run.wait(timeout=EXPERIMENT_TIMEOUT, poll=0.1)
    name = project["name"]
    listed = fglab("ls", name, "--status", "success", "--sort", "_options.lr", "--desc",
                   "--limit", "2")  # fmt: skip
    assert listed.code == 0, listed.err
    header, *rows = listed.out.splitlines()
    assert header.split()[:3] == ["ID", "STATUS", "mode"]
    assert "accuracy" in header.split()
    assert [row.split()[1] for row in rows] == ["success", "success"]
    assert [row.split()[3] for row in rows] == ["0.3", "0.2"]
    records = json.loads(fglab("ls", name, "--status", "fail", "--json").out)
    assert [r["status"] for r in records] == ["fail"]
    assert len(json.loads(fglab("ls", name, "--json").out)) == 4


def test_export_csv_and_json(fglab, lab: Client, project: dict) -> None:
    for run in lab.batch(project, [{"mode": "quick", "lr": lr} for lr in (0.1, 0.4)]):
        run.wait(timeout=EXPERIMENT_TIMEOUT, poll=0.1)
    exported = fglab("export", project["name"], "--csv", "--sort", "_options.lr")
    assert exported.code == 0, exported.err
    table = list(csv.DictReader(io.StringIO(exported.out)))
    assert [row["lr"] for row in table] == ["0.1", "0.4"]
    assert [row["accuracy"] for row in table] == ["0.9", "0.6"]
    rows = json.loads(fglab("export", project["name"], "--json").out)
    assert sorted(row["_options"]["lr"] for row in rows) == [0.1, 0.4]


def test_sweep_create_and_show(fglab, project: dict, tmp_path) -> None:
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"mode": {"values": ["curve"]}, "lr": {"min": 0.1, "max": 1}}))
    created = fglab("sweep", "create", project["name"], "--method", "bayes", "--space",
                    str(space), "--objective", "loss:min", "--budget", "2", "--json")  # fmt: skip
    assert created.code == 0, created.err
    sweep = json.loads(created.out)
    assert sweep["method"] == "bayes"
    assert sweep["objective"] == {"score": "loss", "goal": "minimize"}
    assert sweep["budget"] == 2
    finished = wait_for(
        lambda: (
            (doc := json.loads(fglab("sweep", "show", sweep["_id"], "--json").out))["state"]
            == "finished"
            and doc
        ),
        2 * EXPERIMENT_TIMEOUT,
        "the sweep to finish",
    )
    assert len(finished["trials"]) == 2
    shown = fglab("sweep", "show", sweep["_id"])
    assert shown.out.startswith(f"sweep {sweep['_id']}: bayes, finished, budget 2")
    assert "objective loss (minimize)" in shown.out
    assert "TRIAL" in shown.out and "best      trial " in shown.out
    human = fglab("sweep", "create", project["name"], "--method", "grid", "--space", str(space))
    assert re.fullmatch(r"sweep [0-9a-f]{24}: grid, budget 1, running\n", human.out)


def test_a_sweep_fglab_refuses_is_one_line_and_nothing_stored(
    fglab, project: dict, stored, tmp_path
) -> None:
    space = tmp_path / "space.json"
    space.write_text('{"lr": {"min": 0.1, "max": 1}}')
    before = stored()
    run = fglab("sweep", "create", project["name"], "--method", "bayes", "--space", str(space))
    assert run.code == 2  # FGLab's 400: bayes needs an objective
    assert "objective" in one_line(run.err)
    assert stored() == before


def test_projects_lists_them(fglab, project: dict) -> None:
    assert project["name"] in fglab("projects").out
    assert project["name"] in [p["name"] for p in json.loads(fglab("projects", "--json").out)]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-o", "nope=1"], 2, "fglab: Field nope is not in the project schema"),
        (["-o", "lr=fast"], 2, "fglab: Field lr of type float is invalid"),
        (["-o", "lr"], 2, "fglab: option 'lr' is not NAME=VALUE; write e.g. -o lr=0.1"),
        (["-o", "=1"], 2, "fglab: option '=1' is not NAME=VALUE; write e.g. -o lr=0.1"),
    ],
)
def test_bad_options_are_one_line_and_nothing_stored(
    fglab, project: dict, stored, args: list[str], code: int, message: str
) -> None:
    before = stored()
    run = fglab("submit", project["name"], *args, "--wait")
    assert (run.code, one_line(run.err), run.out) == (code, message, "")
    assert stored() == before


def test_an_unknown_project_is_one_line(fglab, stored) -> None:
    before = stored()
    for command in (["submit", "no-such-project", "-o", "lr=1"], ["ls", "no-such-project"],
                    ["export", "no-such-project", "--csv"]):  # fmt: skip
        run = fglab(*command)
        assert run.code == 1
        assert one_line(run.err).startswith("fglab: Project 'no-such-project' does not exist")
        assert run.out == ""
    assert stored() == before


def test_an_unreachable_fglab_is_one_line_naming_the_url(fglab, stored) -> None:
    before = stored()
    url = f"http://127.0.0.1:{free_port()}"
    for command in (["submit", "demo", "-o", "lr=1", "--wait"], ["show", "0" * 24],
                    ["sweep", "show", "0" * 24, "--json"]):  # fmt: skip
        run = fglab(*command, "--url", url)
        assert run.code == 1
        assert one_line(run.err).startswith(f"fglab: FGLab is unreachable at {url} (")
    assert stored() == before


def test_bad_sweep_input_is_one_line_and_nothing_stored(
    fglab, project: dict, stored, tmp_path
) -> None:
    before = stored()
    space = tmp_path / "space.json"
    space.write_text('{"lr": {"min": 0.1, "max": 1}}')
    bad_goal = fglab("sweep", "create", project["name"], "--method", "bayes", "--space",
                     str(space), "--objective", "loss:up", "--budget", "2")  # fmt: skip
    assert bad_goal.code == 2
    assert one_line(bad_goal.err).startswith("fglab: objective 'loss:up' is not usable")
    missing = fglab("sweep", "create", project["name"], "--method", "bayes", "--space",
                    str(tmp_path / "none.json"), "--objective", "loss:min")  # fmt: skip
    assert missing.code == 2
    assert "cannot be read" in one_line(missing.err)
    assert stored() == before


def test_a_password_wants_a_token_and_takes_one(
    fglab, stack: Stack, password_url: str, project: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = fglab("ls", project["name"], "--url", password_url)
    assert refused.code == 1
    assert one_line(refused.err).startswith("fglab: Authentication required; ")
    assert "FGLAB_TOKEN" in refused.err
    token = create_token(stack.store, "client tests")["token"]
    listed = fglab("ls", project["name"], "--url", password_url, "--token", token, "--json")
    assert (listed.code, json.loads(listed.out)) == (0, [])
    monkeypatch.setenv("FGLAB_TOKEN", token)
    assert project["name"] in [p["name"] for p in Client(password_url).projects()]


def test_the_installed_command_submits_waits_and_lists(stack: Stack, project: dict) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FGLAB_")}
    env["FGLAB_URL"] = stack.url

    def fglab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FGLAB), *args], env=env, capture_output=True, text=True, timeout=120
        )

    submitted = fglab("submit", project["name"], "-o", "mode=quick", "--wait", "--json")
    assert submitted.returncode == 0, submitted.stderr
    doc = json.loads(submitted.stdout)
    assert doc["_status"] == "success"
    listed = json.loads(fglab("ls", project["name"], "--json").stdout)
    assert [r["_id"] for r in listed] == [doc["_id"]]
    failed = fglab("submit", project["name"], "-o", "mode=fail", "--wait")
    assert failed.returncode == 3
    unknown = fglab("submit", "no-such-project")
    assert unknown.returncode == 1
    assert one_line(unknown.stderr).startswith("fglab: Project 'no-such-project'")
