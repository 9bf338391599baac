"""The worker's side of a run's supervisor (worker/supervisor.py): start it, find it again
after a restart, keep it company, stop it, read how the run ended.

A run folder holds the supervisor's files: ``supervisor.json`` (its pid and the
program's), ``output.log`` (the program's output as kept-log lines), ``heartbeat`` (touched
by the worker while it follows the run), ``exit.json`` (how the run ended; written last),
and ``results-folder`` (where the program writes its results, noted by the worker that
launched it).

A worker that takes a run over trusts only these files and its own settings, never the
paths and process group in the experiment's MongoDB document: people and programs can
write fields there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.launcher import find_program
from worker.supervisor import EXIT_FILE, HEARTBEAT_FILE, OUTPUT_FILE, STATE_FILE, start_time

logger = logging.getLogger(__name__)

#: The supervisor's program, run by path with ``-I -S`` (stdlib only, fast start).
SUPERVISOR = Path(__file__).with_name("supervisor.py")
#: The fork server's program, the same way: it forks supervisors (worker/forkserver.py).
FORK_SERVER = Path(__file__).with_name("forkserver.py")
#: The supervisor's own complaints (a traceback if it ever crashes).
SUPERVISOR_LOG = "supervisor.log"
#: The run's results folder, absolute, as the worker that launched it chose it.
RESULTS_FILE = "results-folder"


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
        start: int | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.pid = pid
        self.program_pid = program_pid
        self._process = process  # our child, when this worker started it itself
        self._start = start  # its start time (clock ticks), which tells it from a reused pid
        self._pidfd: int | None = None
        self._gone = False

    @property
    def output(self) -> Path:
        return self.run_dir / OUTPUT_FILE

    def results_folder(self) -> Path | None:
        """The results folder the launching worker noted in the run folder, if any."""
        try:
            noted = (self.run_dir / RESULTS_FILE).read_text().strip()
        except OSError:
            return None
        return Path(noted) if noted.startswith("/") else None

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
        return is_supervisor(self.pid, self.run_dir, self._start)

    def stop(self) -> None:
        """Ask the supervisor to stop the whole tree (TERM, its grace, KILL); returns at once."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the supervisor to exit."""
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=timeout)
            return
        fd = self.fileno()
        if fd is not None:
            select.select([fd], [], [], timeout)

    def fileno(self) -> int | None:
        """A pidfd of the supervisor, readable once it has exited (for ``select`` with
        other files); None when it is gone already.

        Our child or not (forked by the fork server, left by an earlier worker).
        """
        if self._pidfd is None and not self._gone:
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except ProcessLookupError:
                self._gone = True
                return None
            if self._process is None and not self.alive():  # the pid was reused
                self.close()
                self._gone = True
        return self._pidfd

    def close(self) -> None:
        """Let go of the pidfd, if one was opened."""
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __del__(self) -> None:
        self.close()


class ForkServer:
    """The worker's fork server (worker/forkserver.py): supervisors without an interpreter
    start each, about a millisecond instead of tens.

    Started on first use; when it has died, the next request starts a new one. Whatever
    goes wrong with it, `request` returns None and the caller starts the supervisor the
    slow way: a run is never held up, or launched twice, by the fork server.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channel: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (once its predecessor, if any, is gone). Raises OSError."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self.alive():
            return
        if self._process is not None:
            logger.warning(
                "the fork server (pid %d) exited with %s; starting a new one",
                self._process.pid,
                self._process.returncode,
            )
        self._close_locked()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(FORK_SERVER), str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # like the supervisors: a worker's stop misses it
                close_fds=True,
            )
        self._channel = ours

    def request(self, payload: dict[str, Any]) -> int | None:
        """Ask for a supervisor; the read end of the pipe its ready line comes through.

        None when the fork server is not there to ask (it could not be started, it died,
        the request does not fit in one message).
        """
        data = json.dumps(payload).encode()
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            with self._lock:
                self._start_locked()
                assert self._channel is not None
                socket.send_fds(self._channel, [data], [write_end])
        except OSError as e:
            logger.warning("the fork server cannot take a run (%s); starting it directly", e)
            os.close(read_end)
            return None
        finally:
            os.close(write_end)
        return read_end

    def close(self) -> None:
        """Stop the server (its end of the socket closes; it exits). Supervisors stay."""
        with self._lock:
            self._close_locked()
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=5)

    def _close_locked(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def supervise(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    run_dir: Path,
    *,
    grace: float,
    orphan_after: float,
    forkserver: ForkServer | None = None,
    results: Path | None = None,
) -> Supervised:
    """Start `argv` under a supervisor of its own, in a session of its own.

    Through `forkserver` when there is one and it answers, else with an interpreter start
    of the supervisor. Returns once the program runs. `results`, the run's results
    folder, is noted in `run_dir` for a worker that takes the run over. Raises OSError
    when the program cannot be started (missing, not executable, bad cwd) or the
    supervisor does not come up.
    """
    executable = find_program(argv[0], cwd, env)  # the error here, with exec's errno
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (STATE_FILE, EXIT_FILE, RESULTS_FILE):
        (run_dir / name).unlink(missing_ok=True)
    if results is not None:
        (run_dir / RESULTS_FILE).write_text(str(results.absolute()))
    (run_dir / HEARTBEAT_FILE).touch()
    if forkserver is not None:
        supervised = _forked(forkserver, argv, executable, cwd, env, run_dir, grace, orphan_after)
        if supervised is not None:
            return supervised
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
        return Supervised(run_dir, state["pid"], state["program"], process, state.get("start"))
    process.wait()
    _raise_start_error(run_dir)
    tail = (run_dir / SUPERVISOR_LOG).read_text(errors="replace")[-2000:]
    raise OSError(f"the run's supervisor exited with {process.returncode}: {tail.strip()}")


def _forked(
    forkserver: ForkServer,
    argv: Sequence[str],
    executable: str,
    cwd: Path,
    env: Mapping[str, str],
    run_dir: Path,
    grace: float,
    orphan_after: float,
) -> Supervised | None:
    """A supervisor from the fork server; None when it gave none and launched nothing."""
    request = {
        "run_dir": str(run_dir),
        "argv": list(argv),
        "executable": executable,
        "cwd": str(cwd),
        "env": dict(env),
        "grace": grace,
        "orphan_after": orphan_after,
    }
    reply = forkserver.request(request)
    if reply is None:
        return None
    with os.fdopen(reply, "rb") as pipe:
        ready = pipe.readline()  # one line once the program runs, EOF otherwise
    if ready:
        state = json.loads(ready)
        return Supervised(run_dir, state["pid"], state["program"], start=state.get("start"))
    _raise_start_error(run_dir)
    # No word and no end: the server died with the request, or its child before the
    # program started (the state file says whether it did: then the run is followed).
    found = found_in(run_dir)
    if found is not None:
        return found
    logger.warning("the fork server gave no supervisor for %s; starting it directly", run_dir)
    return None


def _raise_start_error(run_dir: Path) -> None:
    end = read_end(run_dir)
    if end is not None and end.error:
        raise OSError(end.error)


def found_in(run_dir: Path) -> Supervised | None:
    """The supervisor an earlier worker left in `run_dir`, running or ended; None if none."""
    state = _read_json(run_dir / STATE_FILE)
    if state is None:
        return None
    try:
        pid, program, start = int(state["pid"]), int(state["program"]), state.get("start")
        return Supervised(run_dir, pid, program, start=int(start) if start else None)
    except (KeyError, TypeError, ValueError):
        logger.warning("%s: not a supervisor's record; ignored", run_dir / STATE_FILE)
        return None


def read_end(run_dir: Path) -> RunEnd | None:
    data = _read_json(run_dir / EXIT_FILE)
    return None if data is None else RunEnd.from_dict(data)


def is_supervisor(pid: int, run_dir: Path, start: int | None = None) -> bool:
    """Whether `pid` is a live supervisor of `run_dir` (not a zombie, not a reused pid).

    With its recorded `start` time that is exact; without one (a state file written before
    supervisors recorded it) the command line says, as a supervisor started by path has it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat[stat.rfind(")") + 2] in "ZX":
        return False
    if start is not None:
        return start_time(pid) == start
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(SUPERVISOR).encode() in cmdline and str(run_dir).encode() in cmdline


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent (written whole or not at all)
        return None
    return data if isinstance(data, dict) else None
