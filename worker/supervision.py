"""The worker's side of a run's supervisor (worker/supervisor.py): start it, find it again
after a restart, keep it company, stop it, read how the run ended.

A run folder holds the supervisor's files: ``supervisor.json`` (its pid and the
program's), ``output.log`` (the program's output as kept-log lines), ``heartbeat`` (touched
by the worker while it follows the run), ``exit.json`` (how the run ended; written last).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.launcher import find_program
from worker.supervisor import EXIT_FILE, HEARTBEAT_FILE, OUTPUT_FILE, STATE_FILE

#: The supervisor's program, run by path with ``-I -S`` (stdlib only, fast start).
SUPERVISOR = Path(__file__).with_name("supervisor.py")
#: The supervisor's own complaints (a traceback if it ever crashes).
SUPERVISOR_LOG = "supervisor.log"


@dataclass(frozen=True)
class RunEnd:
    """How a supervised run ended, as its supervisor wrote it in ``exit.json``."""

    #: Popen-style: the exit code, or minus the signal that ended the program.
    returncode: int | None
    signal: str | None
    #: Why the supervisor stopped the tree: "request" (the worker's cancel or timeout),
    #: "orphaned" (no worker for `orphan_after` seconds), "leftovers" (what the program
    #: left running when it exited), or None.
    stopped: str | None
    orphan_after: float | None = None
    #: Set when the program could not be started at all.
    error: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunEnd:
        return cls(
            returncode=data.get("returncode"),
            signal=data.get("signal"),
            stopped=data.get("stopped"),
            orphan_after=data.get("orphan_after"),
            error=data.get("error"),
        )


class Supervised:
    """One run's supervisor as a worker sees it: started by this worker or found again."""

    def __init__(
        self,
        run_dir: Path,
        pid: int,
        program_pid: int,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.pid = pid
        self.program_pid = program_pid
        self._process = process  # our child, when this worker started it

    @property
    def output(self) -> Path:
        return self.run_dir / OUTPUT_FILE

    def touch(self) -> None:
        """Say the worker is still here; a supervisor left alone too long stops the run."""
        os.utime(self.run_dir / HEARTBEAT_FILE)

    def last_touched(self) -> float | None:
        """When a worker last said it was here (seconds since the epoch), if ever."""
        try:
            return (self.run_dir / HEARTBEAT_FILE).stat().st_mtime
        except OSError:
            return None

    def ended(self) -> RunEnd | None:
        """How the run ended, once the supervisor wrote it; None while it runs."""
        end = read_end(self.run_dir)
        if end is not None and self._process is not None:
            # It exits right after writing the end: reap it, so it is no zombie.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        return end

    def alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return is_supervisor(self.pid, self.run_dir)

    def stop(self) -> None:
        """Ask the supervisor to stop the whole tree (TERM, its grace, KILL); returns at once."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the supervisor to exit (our child), or just wait."""
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=timeout)
        else:
            time.sleep(timeout)  # not our child: the caller polls `ended` each tick


def supervise(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    run_dir: Path,
    *,
    grace: float,
    orphan_after: float,
) -> Supervised:
    """Start `argv` under a supervisor of its own, in a session of its own.

    Returns once the program runs. Raises OSError when the program cannot be started
    (missing, not executable, bad cwd) or the supervisor does not come up.
    """
    find_program(argv[0], cwd, env)  # the error here, with exec's errno, not in a file
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (STATE_FILE, EXIT_FILE):
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / HEARTBEAT_FILE).touch()
    command = [
        sys.executable, "-I", "-S", str(SUPERVISOR), str(run_dir),
        "--grace", str(grace), "--orphan-after", str(orphan_after), "--", *argv,
    ]  # fmt: skip
    with (run_dir / SUPERVISOR_LOG).open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # not the worker's: a worker's stop must not reach it
            close_fds=True,
        )
    assert process.stdout is not None
    with process.stdout:
        ready = process.stdout.readline()  # one line once the program runs, EOF otherwise
    if ready:
        state = json.loads(ready)
        return Supervised(run_dir, state["pid"], state["program"], process)
    process.wait()
    end = read_end(run_dir)
    if end is not None and end.error:
        raise OSError(end.error)
    tail = (run_dir / SUPERVISOR_LOG).read_text(errors="replace")[-2000:]
    raise OSError(f"the run's supervisor exited with {process.returncode}: {tail.strip()}")


def found_in(run_dir: Path) -> Supervised | None:
    """The supervisor an earlier worker left in `run_dir`, running or ended; None if none."""
    state = _read_json(run_dir / STATE_FILE)
    if state is None:
        return None
    return Supervised(run_dir, int(state["pid"]), int(state["program"]))


def read_end(run_dir: Path) -> RunEnd | None:
    data = _read_json(run_dir / EXIT_FILE)
    return None if data is None else RunEnd.from_dict(data)


def is_supervisor(pid: int, run_dir: Path) -> bool:
    """Whether `pid` is a live supervisor of `run_dir` (not a zombie, not a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat[stat.rfind(")") + 2] in "ZX":
        return False
    return str(SUPERVISOR).encode() in cmdline and str(run_dir).encode() in cmdline


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent (written whole or not at all)
        return None
    return data if isinstance(data, dict) else None
