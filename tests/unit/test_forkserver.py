"""The fork server: what a run does when it dies, when it cannot start, and when its
worker goes; supervisors it forked are found again after a restart like any other."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

import worker.supervision
from tests.integration.fleet import process_alive
from tests.waiting import wait_for
from worker.supervision import ForkServer, Supervised, found_in, supervise

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def run(tmp_path: Path, forkserver: ForkServer, name: str, code: str) -> Supervised:
    """Start `code` through `forkserver`; each start appends a line to ``launches``."""
    launches = tmp_path / "launches"
    counted = f"open({str(launches)!r}, 'a').write('x\\n')\n{code}"
    return supervise(
        [sys.executable, "-c", counted],
        tmp_path,
        ENV,
        tmp_path / name,
        grace=0.5,
        orphan_after=60,
        forkserver=forkserver,
    )


def ended(supervised: Supervised):
    return wait_for(supervised.ended, timeout=30, what="the run to end")


def forked_by_server(supervised: Supervised) -> bool:
    cmdline = " ".join(psutil.Process(supervised.pid).cmdline())
    return "forkserver.py" in cmdline


@pytest.fixture
def forkserver():
    server = ForkServer()
    server.start()
    yield server
    server.close()


def test_a_run_forked_by_the_server_ends_as_usual(tmp_path, forkserver):
    supervised = run(tmp_path, forkserver, "run", "print('hello', flush=True)")

    end = ended(supervised)
    assert (end.returncode, end.error) == (0, None)
    assert '"hello\\n"' in supervised.output.read_text()
    assert (tmp_path / "launches").read_text() == "x\n"


def test_a_fork_server_killed_mid_run_leaves_the_run_and_is_replaced(tmp_path, forkserver):
    gate = tmp_path / "gate"
    wait = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
    first = run(tmp_path, forkserver, "first", wait)
    dead = forkserver.pid
    assert dead is not None and forked_by_server(first)

    os.kill(dead, signal.SIGKILL)
    wait_for(lambda: not forkserver.alive(), timeout=10, what="the fork server to die")

    assert first.alive()  # a run in its own session: the server's death is not its own
    second = run(tmp_path, forkserver, "second", "")  # starts a new server first
    assert forkserver.pid not in (None, dead) and forkserver.alive()
    gate.touch()
    assert ended(first).returncode == 0
    assert ended(second).returncode == 0
    assert (tmp_path / "launches").read_text() == "x\nx\n"  # each launched once


def test_a_fork_server_that_cannot_run_leaves_runs_to_the_interpreter(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(worker.supervision, "FORK_SERVER", tmp_path / "missing.py")
    broken = ForkServer()
    try:
        supervised = run(tmp_path, broken, "run", "")
        assert ended(supervised).returncode == 0
    finally:
        broken.close()
    assert (tmp_path / "launches").read_text() == "x\n"
    assert "starting it directly" in caplog.text


def test_the_server_exits_when_its_worker_lets_go(forkserver):
    pid = forkserver.pid
    assert pid is not None and process_alive(pid)

    forkserver.close()  # a worker that exits closes its end the same way

    wait_for(lambda: not process_alive(pid), timeout=10, what="the fork server to exit")


def test_a_forked_supervisor_is_found_again_by_its_start_time(tmp_path, forkserver):
    gate = tmp_path / "gate"
    wait = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
    supervised = run(tmp_path, forkserver, "run", wait)

    found = found_in(supervised.run_dir)  # as a restarted worker sees it

    assert found is not None and found.pid == supervised.pid and found.alive()
    impostor = Supervised(found.run_dir, found.pid, found.program_pid, start=1)
    assert not impostor.alive()  # the same pid, another process
    gate.touch()
    found.wait(30)  # through its pidfd: returns as the supervisor exits
    assert not found.alive() and found.ended() is not None
