"""`worker.provenance`: a run's git state, interpreter and command, found with local git."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from worker import provenance


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=Lab", "-c", "user.email=lab@example.org"]
    return subprocess.run([*command, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "code"
    (repo / "src").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "src" / "train.py").write_text("print('hi')\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.mark.parametrize(
    ("executable", "kind"),
    [
        ("python", "python"),
        ("/usr/bin/python3.13", "python"),
        (".venv/bin/python3", "python"),
        ("pypy3", "python"),
        ("node", "node"),
        ("/opt/node/bin/nodejs", "node"),
        ("matlab", None),
        ("python-config", None),
        ("./train.sh", None),
    ],
)
def test_the_interpreter_is_told_by_the_executables_name(executable: str, kind: str | None) -> None:
    assert provenance.interpreter(executable) == kind


def test_a_clean_checkout_has_its_commit_branch_and_top_level_as_repo(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    state = provenance.git_state(repo / "src")
    assert state == {
        "repo": str(repo),
        "commit": head,
        "branch": "main",
        "dirty": False,
        "diff": "",
    }


def test_a_changed_checkout_is_dirty_with_its_diff_and_origin(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "git@example.org:lab/code.git")
    (repo / "src" / "train.py").write_text("print('changed')\n")
    git(repo, "checkout", "-q", "--detach")
    state = provenance.git_state(repo)
    assert state is not None
    assert (state["repo"], state["branch"], state["dirty"]) == (
        "git@example.org:lab/code.git",
        None,
        True,
    )
    assert "-print('hi')\n+print('changed')\n" in state["diff"]
    assert not (repo / ".git" / "index.lock").exists()


def test_no_checkout_or_no_commit_yet_has_no_git_state(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path) is None
    git(tmp_path, "init", "-q")
    assert provenance.git_state(tmp_path) is None


def test_describe_finds_the_scripts_checkout_when_the_cwd_is_none(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    script = str(repo / "src" / "train.py")
    code = provenance.describe([sys.executable, script, "--_id=x"], data, [script])
    assert code.commit == git(repo, "rev-parse", "HEAD").strip()
    assert code.diff == ""
    assert code.fields["command"] == [sys.executable, script, "--_id=x"]
    assert code.fields["host"] == socket.gethostname()
    assert code.fields["python"] == platform.python_version()
    assert "diff" not in code.fields  # stored by the record module, inline or in GridFS


def test_describe_outside_git_has_command_and_host_only(tmp_path: Path) -> None:
    code = provenance.describe(["sh", "-c", "true"], tmp_path, [])
    assert code.commit is None and code.diff is None
    assert code.fields["command"][0].endswith("/sh")
    assert set(code.fields) == {"command", "host"}


def test_a_missing_interpreter_has_no_version() -> None:
    assert provenance.interpreter_version("/nonexistent/python3") is None


def test_a_rerun_line_only_when_the_commits_differ() -> None:
    a, b = "a" * 40, "b" * 40
    assert provenance.rerun_line(a, a) is None
    assert provenance.rerun_line(a, None) is None
    assert provenance.rerun_line(b, a) == (
        "code: this rerun runs commit bbbbbbb, the original ran aaaaaaa\n"
    )
    assert provenance.rerun_line(None, a) == (
        "code: this rerun runs no git commit (its folder is not a checkout), "
        "the original ran aaaaaaa\n"
    )


def test_a_run_that_ends_within_the_hold_takes_its_code_unrecorded(repo: Path) -> None:
    recorded: list[provenance.Code] = []
    probe = provenance.Probe(["sh", "-c", "true"], repo, [], {}, recorded.append, hold=30)
    assert probe.wait() is not None  # found, held back

    code = probe.take()

    assert code is not None and code.commit == git(repo, "rev-parse", "HEAD").strip()
    assert recorded == []  # the caller stores it with the run's end


def test_a_run_longer_than_the_hold_has_its_code_recorded_by_the_probe(repo: Path) -> None:
    import threading

    done = threading.Event()
    recorded: list[provenance.Code] = []

    def record(code: provenance.Code) -> None:
        recorded.append(code)
        done.set()

    probe = provenance.Probe(["sh", "-c", "true"], repo, [], {}, record, hold=0)
    assert done.wait(20)

    assert probe.take() is None  # already stored: nothing for the end to write
    assert len(recorded) == 1
