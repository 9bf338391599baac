"""A run's code (``_code``) and the reporting helper, with real worker processes.

The worker records the git state of the program's checkout, its command line, host and
Python; a rerun at another commit says so in its log; the table filters by commit. A
program that reports through `fglab.report.Reporter` alone gets its scores, steps,
chart, note, field and file stored.
"""

from __future__ import annotations

import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tests.integration.fleet import (
    PROGRAM,
    experiment,
    implementation,
    live,
    machine_name,
    status_of,
    submit,
)
from tests.waiting import wait_for

REPORTING = Path(__file__).parents[1] / "programs" / "reporting.py"
ORIGIN = "https://git.example.org/lab/train.git"
CHANGE = "# an uncommitted change\n"


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=Lab", "-c", "user.email=lab@example.org"]
    done = subprocess.run([*command, *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def checkout(tmp_path: Path) -> Path:
    """A git checkout holding the test program, with one uncommitted change."""
    repo = tmp_path / "code"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", ORIGIN)
    shutil.copy(PROGRAM, repo / PROGRAM.name)
    git(repo, "add", PROGRAM.name)
    git(repo, "commit", "-q", "-m", "the program")
    with (repo / PROGRAM.name).open("a") as f:
        f.write(CHANGE)
    return repo


def runs(tmp_path: Path, folder: Path, program: Path = PROGRAM) -> dict:
    """A projects.json entry that runs `program` (copied into `folder`) from `folder`."""
    script = folder / program.name
    if not script.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(program, script)
    args = [str(script), "--results", str(tmp_path / "results")]
    return implementation(tmp_path, cwd=str(folder), args=args)


def finished(db, experiment_id: str) -> dict:
    wait_for(
        lambda: status_of(db, experiment_id) in {"success", "fail", "lost"},
        timeout=60,
        what=f"experiment {experiment_id} to end",
    )
    doc = experiment(db, experiment_id)
    assert doc["_status"] == "success", doc.get("_exit")
    return doc


def log_text(client, experiment_id: str) -> str:
    answer = client.get(f"/api/v1/experiments/{experiment_id}/logs").get_json()
    return "".join(entry["t"] for entry in answer["entries"])


def test_a_dirty_checkout_is_recorded_and_a_rerun_at_another_commit_says_so(
    client, db, fleet, project, tmp_path
):
    repo = checkout(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    name = machine_name()
    fleet.start_scheduler()
    fleet.start_machine(name, {str(project["_id"]): runs(tmp_path, repo)})
    wait_for(live(db, name), timeout=30, what="the machine to register")

    first = submit(client, project, queue=True)
    code = finished(db, first)["_code"]
    assert code["commit"] == head
    assert code["branch"] == "main"
    assert code["repo"] == ORIGIN
    assert code["dirty"] is True
    assert "+" + CHANGE.strip() in code["diff"]
    assert code["diff_truncated"] is False
    assert code["command"][:2] == [sys.executable, str(repo / PROGRAM.name)]
    assert f"--_id={first}" in code["command"]
    assert code["host"] == socket.gethostname()
    assert code["python"] == platform.python_version()

    # The API may not rewrite it.
    answer = client.put(f"/api/v1/experiments/{first}", json={"_code": {"commit": "0" * 40}})
    assert answer.status_code == 400
    assert "_code" in answer.get_json()["error"]
    assert experiment(db, first)["_code"]["commit"] == head

    git(repo, "commit", "-q", "-am", "the change")
    new_head = git(repo, "rev-parse", "HEAD")
    answer = client.post(f"/api/v1/experiments/{first}/rerun")
    assert answer.status_code == 201, answer.get_json()
    rerun = answer.get_json()["_id"]
    doc = finished(db, rerun)
    assert (doc["_code"]["commit"], doc["_code"]["dirty"]) == (new_head, False)
    assert str(doc["_rerun_of"]) == first
    line = f"code: this rerun runs commit {new_head[:7]}, the original ran {head[:7]}\n"
    log = log_text(client, rerun)
    assert line in log
    assert log.index(line) < log.index("done writing")  # before the program's output
    assert "code:" not in log_text(client, first)

    # The table finds each by its commit, whole or short.
    table = f"/api/v1/projects/{project['_id']}/experiments/table"
    for commit, expected in ((head[:7], [first]), (new_head, [rerun]), (head[:7] + "x", None)):
        answer = client.get(table, query_string={"filter": f"_code.commit={commit}"})
        if expected is None:
            assert answer.status_code == 200 and answer.get_json()["rows"] == []
            continue
        assert answer.status_code == 200, answer.get_json()
        assert [row["_id"] for row in answer.get_json()["rows"]] == expected


def test_a_program_outside_git_has_its_command_and_host_but_no_commit(
    client, db, fleet, project, tmp_path
):
    folder = tmp_path / "plain"
    name = machine_name()
    fleet.start_scheduler()
    fleet.start_machine(name, {str(project["_id"]): runs(tmp_path, folder)})
    wait_for(live(db, name), timeout=30, what="the machine to register")

    experiment_id = submit(client, project, queue=True)
    code = finished(db, experiment_id)["_code"]
    assert "commit" not in code and "diff" not in code
    assert code["command"][:2] == [sys.executable, str(folder / PROGRAM.name)]
    assert code["host"] == socket.gethostname()
    assert code["python"] == platform.python_version()


def test_a_program_reporting_through_reporter_gets_every_result_stored(
    client, db, fleet, project, tmp_path
):
    name = machine_name()
    fleet.start_scheduler()
    impl = runs(tmp_path, tmp_path / "plain", REPORTING)
    fleet.start_machine(name, {str(project["_id"]): impl})
    wait_for(live(db, name), timeout=30, what="the machine to register")

    experiment_id = submit(client, project, queue=True)
    finished(db, experiment_id)
    doc = client.get(f"/api/v1/experiments/{experiment_id}").get_json()
    assert doc["_scores"] == {"loss": 0.333, "accuracy": 0.9}
    assert doc["_step"] == 3
    history = client.get(f"/api/v1/experiments/{experiment_id}/history").get_json()
    assert [(p["step"], p["scores"]["loss"]) for p in history] == [(1, 1.0), (2, 0.5), (3, 0.333)]
    assert doc["_charts"]["columnNames"] == ["train", "step"]
    assert doc["_charts"]["data"]["columns"] == [[1.0, 0.5, 0.333], [1, 2, 3]]
    assert doc["_notes"] == "reported by Reporter"
    assert doc["model"] == {"layers": 2}
    files = {f["filename"]: f["_id"] for f in doc["_files"]}
    assert set(files) == {"weights.bin"}  # JSON files are fields; no temporary file
    assert client.get(f"/api/v1/files/{files['weights.bin']}").data == b"\x00\x01weights"
    charts = client.get(f"/api/v1/experiments/{experiment_id}/charts").get_json()
    assert charts[0]["data"]["columns"][0][:2] == ["train", 1.0]
