"""Starting and stopping an experiment's program: its own process group, never a shell."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tasks.lifetime import die_with_parent

logger = logging.getLogger(__name__)


def launch(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session (its own process group) with piped output.

    The program gets SIGKILL if the worker thread that started it dies. Raises OSError
    (missing program, not executable, bad cwd) for the caller to report.
    """
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
        preexec_fn=die_with_parent if os.name == "posix" else None,
    )


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process of the group still exists.

    ``killpg(pgid, 0)`` also counts zombies, which an init that does not reap (as in
    some containers) keeps forever; /proc tells them apart where it exists.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            return True
    return False


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to every process of the group; False if the group is gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def stop_group(pgid: int, grace: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """TERM the whole group, wait up to `grace` seconds, then KILL what is left.

    Waits (bounded) until no process of the group remains, reaping our own child.
    """
    if not signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process is not None:
            process.poll()
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    logger.info("process group %d outlived %.1fs of grace; sending KILL", pgid, grace)
    signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if process is not None:
            process.poll()
        if not group_alive(pgid):
            return
        time.sleep(0.02)
