"""The launcher: no shell between options and the program; the whole group stops."""

from __future__ import annotations

import json
import sys

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
