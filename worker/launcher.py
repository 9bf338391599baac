"""Starting and stopping an experiment's program: its own process group, never a shell.

The program must die with the worker thread that started it (Linux's parent death
signal). Setting that in a ``preexec_fn`` forces Python's slow fork path (tens of
milliseconds for a big worker); util-linux's ``setpriv --pdeathsig`` sets it and execs
the program, so the worker keeps the fast vfork path. Without setpriv the launcher falls
back to the ``preexec_fn``.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tasks.lifetime import die_with_parent

logger = logging.getLogger(__name__)

#: util-linux's setpriv, when installed.
SETPRIV = shutil.which("setpriv")


def launch(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group with piped output.

    The program gets SIGKILL if the worker thread that started it dies. Raises OSError
    (missing program, not executable, bad cwd) for the caller to report.
    """
    command = list(argv)
    preexec = None
    if SETPRIV is not None:
        # Found here, so a missing program is this OSError, not setpriv's exit code.
        command = [SETPRIV, "--pdeathsig", "KILL", "--", find_program(command[0], cwd, env)]
        command += list(argv[1:])
    elif os.name == "posix":
        preexec = die_with_parent
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
        close_fds=True,
        preexec_fn=preexec,
    )


def find_program(program: str, cwd: Path, env: Mapping[str, str]) -> str:
    """The executable `program` names, as exec would find it: a path (relative to `cwd`)
    when it holds a slash, else the first match on the ``PATH`` of `env`.

    Raises FileNotFoundError or PermissionError, with the errno exec would give.
    """
    if "/" in program:
        path = Path(cwd) / program
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if path.is_dir() or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        return str(path)
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found


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
