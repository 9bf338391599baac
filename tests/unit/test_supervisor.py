"""The run supervisor with real programs: output in order, the exit status, and no process
of the tree left after an exit, a stop request or a worker that stays away."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.fleet import process_alive
from tests.waiting import wait_for
from worker.supervision import ForkServer, RunEnd, Supervised, read_end, supervise

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
#: Leaves a sleeper in a session of its own (through a child that exits), says its pid.
ESCAPE = (
    "import subprocess, sys, time\n"
    'spawner = (\'import subprocess, sys; p = subprocess.Popen([sys.executable, "-c", '
    '"import time; time.sleep(60)"], start_new_session=True, stdout=subprocess.DEVNULL); '
    "print(p.pid)')\n"
    "escaped = int(subprocess.run([sys.executable, '-c', spawner], stdout=subprocess.PIPE)"
    ".stdout)\n"
    "print(escaped, flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture(scope="module")
def running_forkserver() -> Iterator[ForkServer]:
    forkserver = ForkServer()
    forkserver.start()
    yield forkserver
    forkserver.close()


@pytest.fixture(params=["interpreter", "forkserver"])
def via(request) -> ForkServer | None:
    """Each test twice: the supervisor started by an interpreter, and forked by the server."""
    return request.getfixturevalue("running_forkserver") if request.param == "forkserver" else None


@pytest.fixture
def start(tmp_path: Path, via: ForkServer | None) -> Callable[..., Supervised]:
    def start(code: str, *, orphan_after: float = 60.0) -> Supervised:
        return supervise(
            [sys.executable, "-c", code],
            tmp_path,
            ENV,
            tmp_path / "run",
            grace=0.5,
            orphan_after=orphan_after,
            forkserver=via,
        )

    return start


def output(supervised: Supervised) -> list[tuple[str, str]]:
    lines = supervised.output.read_text().splitlines()
    return [(entry["s"], entry["t"]) for entry in map(json.loads, lines)]


def ended(supervised: Supervised) -> RunEnd:
    return wait_for(supervised.ended, timeout=30, what="the supervisor to write the end")


def escaped_pid(supervised: Supervised) -> int:
    return int(wait_for(lambda: output(supervised), 30, "the escaped pid")[0][1])


def test_output_and_the_exit_code_are_written(start) -> None:
    code = "import sys\nprint('one', flush=True)\nprint('two', file=sys.stderr, flush=True)\n"
    supervised = start(code + "print('three', flush=True)\nsys.exit(3)\n")

    end = ended(supervised)
    assert (end.returncode, end.signal, end.stopped, end.error) == (3, None, None, None)
    # Each stream keeps its order; across the two pipes, as they are read.
    entries = output(supervised)
    assert "".join(t for s, t in entries if s == "out") == "one\nthree\n"
    assert "".join(t for s, t in entries if s == "err") == "two\n"
    assert not supervised.alive()


def test_a_stop_request_ends_the_tree_including_a_setsid_grandchild(start) -> None:
    supervised = start(ESCAPE)
    grandchild = escaped_pid(supervised)
    assert process_alive(grandchild) and process_alive(supervised.program_pid)

    supervised.stop()

    end = ended(supervised)
    assert (end.returncode, end.signal, end.stopped) == (-15, "SIGTERM", "request")
    assert not process_alive(grandchild)
    assert not process_alive(supervised.program_pid)


def test_what_the_program_leaves_behind_is_stopped_when_it_exits(start) -> None:
    leaves = ESCAPE.replace("time.sleep(60)\n", "", 1).replace(
        "print(escaped, flush=True)\n", "print(escaped, flush=True)\nsys.exit(0)\n"
    )
    supervised = start(leaves)

    end = ended(supervised)
    assert (end.returncode, end.stopped) == (0, "leftovers")
    assert not process_alive(escaped_pid(supervised))


def test_a_supervisor_whose_worker_stays_away_stops_the_run(start) -> None:
    supervised = start(ESCAPE, orphan_after=1.0)
    grandchild = escaped_pid(supervised)

    end = ended(supervised)  # nobody touches the heartbeat file
    assert (end.stopped, end.orphan_after) == ("orphaned", 1.0)
    assert not process_alive(grandchild)
    assert read_end(supervised.run_dir) == end


def test_a_program_that_cannot_start_is_an_oserror(tmp_path, via) -> None:
    with pytest.raises(FileNotFoundError):
        supervise(
            ["fglab-no-such-program"], tmp_path, ENV, tmp_path / "run", grace=1, orphan_after=5
        )
    with pytest.raises(FileNotFoundError):
        supervise(
            [sys.executable],
            tmp_path / "no-such-dir",
            ENV,
            tmp_path / "run",
            grace=1,
            orphan_after=5,
        )
    not_a_program = tmp_path / "not-a-program"
    not_a_program.write_bytes(b"\x00\x01 no interpreter line\n")
    not_a_program.chmod(0o755)
    with pytest.raises(OSError, match="could not start"):
        supervise(
            [str(not_a_program)],
            tmp_path,
            ENV,
            tmp_path / "run",
            grace=1,
            orphan_after=5,
            forkserver=via,
        )
