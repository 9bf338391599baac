"""The launcher: no shell between options and the program; the whole group stops."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.fleet import process_alive
from tests.waiting import wait_for
from worker.argv import build_argv
from worker.launcher import group_alive, launch, stop_group

PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


def test_an_option_that_looks_like_shell_arrives_as_one_argv_item(tmp_path) -> None:
    hostile = "; rm -rf ~ && echo $HOME `id` > /tmp/pwned"
    argv = build_argv(
        sys.executable,
        ["-c", PRINT_ARGV],
        {"model": hostile, "_id": "abc"},
        style="double-dash",
        boolean="mandatory",
    )
    process = launch(argv, tmp_path, {"PATH": "/usr/bin:/bin"})
    out, err = process.communicate(timeout=30)

    assert process.returncode == 0, err
    assert json.loads(out) == [f"--model={hostile}", "--_id=abc"]
    assert not (tmp_path / "pwned").exists()


def test_stop_group_ends_the_program_and_its_children(tmp_path) -> None:
    spawner = (
        "import subprocess, sys, time\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
        "children = [subprocess.Popen(sleeper) for _ in range(2)]\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = launch([sys.executable, "-c", spawner], tmp_path, {"PATH": "/usr/bin:/bin"})
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    assert group_alive(process.pid)

    stop_group(process.pid, grace=2.0, process=process)

    assert process.wait(timeout=5) is not None
    assert not group_alive(process.pid)
    process.stdout.close()
    process.stderr.close()


def test_a_missing_or_unrunnable_program_is_an_oserror_before_anything_runs(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        launch(["/nonexistent/fglab-trainer"], tmp_path, {"PATH": "/usr/bin:/bin"})
    with pytest.raises(FileNotFoundError):
        launch(["fglab-no-such-program"], tmp_path, {"PATH": "/usr/bin:/bin"})
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(PermissionError):
        launch(["./train.sh"], tmp_path, {"PATH": "/usr/bin:/bin"})


def test_the_program_dies_with_the_worker_that_launched_it(tmp_path) -> None:
    # A stand-in worker: launches a sleeper, says its pid, then waits to be killed.
    worker = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from worker.launcher import launch\n"
        "p = launch([sys.executable, '-c', 'import time; time.sleep(60)'], Path('.'), {})\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        [sys.executable, "-c", worker], cwd=root, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        program = int(parent.stdout.readline())
        assert process_alive(program)
        # setpriv arms the parent death signal, then execs: kill the parent after that.
        wait_for(lambda: _execed(program), 10, "setpriv to exec the program")
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: not process_alive(program), 10, "the program to die with its worker")


def _execed(pid: int) -> bool:
    """Whether `pid` runs its program itself, no longer setpriv."""
    try:
        first = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return bool(first) and not first.endswith(b"setpriv")
