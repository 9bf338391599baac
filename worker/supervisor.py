"""The supervisor of one experiment: a small process of ours between the worker and the program.

    python -I -S worker/supervisor.py RUN_DIR --grace S --orphan-after S -- PROGRAM ARGS...

containerd's shim is the model. Started by the worker in a session of its own, it lives as
long as the program, whatever happens to the worker, so a worker can be restarted (a
deploy) and re-adopt the run. It

- marks itself a child subreaper, so descendants that leave the group or call ``setsid``
  are still its own, and starts the program in a new process group;
- writes the program's stdout/stderr, in order, to ``RUN_DIR/output.log`` as kept-log
  lines (``{"s": "out"|"err", "t": text}``, see ``tasks/logs.py``), which the worker tails;
- on SIGTERM (the worker's cancel or timeout), or when the worker has not touched
  ``RUN_DIR/heartbeat`` for ``--orphan-after`` seconds, stops the whole tree: TERM, then
  after ``--grace`` seconds KILL, to every descendant;
- when the program ends, stops what it left behind the same way, reaps, writes
  ``RUN_DIR/exit.json`` atomically and exits.

Standard library only, and run with ``-I -S``: it starts in tens of milliseconds and does
not depend on the worker's packages. Linux only (``prctl``, ``/proc``).
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import os
import select
import signal
import sys
import time

#: Files of a run folder; the worker's side (worker/supervision.py) reads the same names.
STATE_FILE = "supervisor.json"
OUTPUT_FILE = "output.log"
HEARTBEAT_FILE = "heartbeat"
EXIT_FILE = "exit.json"

_PR_SET_CHILD_SUBREAPER = 36
_libc: ctypes.CDLL | None = None
#: Seconds between looks at the heartbeat file while the program runs.
WATCH_EVERY = 0.5
#: Seconds between looks at the tree while it is being stopped.
STOP_POLL = 0.05
#: Seconds the last KILLs may take before the supervisor gives up on a process.
KILL_PATIENCE = 5.0
READ_SIZE = 65536


def main(argv: list[str] | None = None) -> int:
    run_dir, grace, orphan_after, program = _parse(sys.argv[1:] if argv is None else argv)
    Supervisor(run_dir, program, grace, orphan_after).run()
    return 0


def _parse(argv: list[str]) -> tuple[str, float, float, list[str]]:
    """``RUN_DIR --grace S --orphan-after S -- PROGRAM...``, by hand: argparse (and the
    ``re`` it imports) would add a sixth to the supervisor's start."""
    try:
        split = argv.index("--")
        run_dir, grace_flag, grace, orphan_flag, orphan_after = argv[:split]
        if (grace_flag, orphan_flag) != ("--grace", "--orphan-after") or split + 1 == len(argv):
            raise ValueError
        return run_dir, float(grace), float(orphan_after), argv[split + 1 :]
    except ValueError:
        sys.exit("usage: supervisor.py RUN_DIR --grace S --orphan-after S -- PROGRAM [ARGS...]")


class Supervisor:
    """Runs one program to its end and leaves nothing of its tree behind."""

    def __init__(
        self,
        run_dir: str,
        program: list[str],
        grace: float,
        orphan_after: float,
        *,
        executable: str | None = None,
        env: dict[str, str] | None = None,
    ):
        """`executable` is the file `program[0]` names, already found (else PATH is
        searched); `env` the program's environment (else this process's)."""
        self.run_dir = run_dir
        self.program = program
        self.executable = executable
        self.env = env
        self.grace = grace
        self.orphan_after = orphan_after
        self.pid = 0
        self.status: int | None = None  # the program's wait status once it ended
        self.stop_reason: str | None = None  # "request", "orphaned", "leftovers"
        self.stop_deadline = 0.0
        self.killed = False
        self.gave_up = False
        self.started = time.time()
        self._pipes: dict[int, tuple[str, codecs.IncrementalDecoder]] = {}

    def run(self) -> None:
        _become_subreaper()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, _noted)
        output = os.open(
            os.path.join(self.run_dir, OUTPUT_FILE),
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
        )
        try:
            self.pid = self._spawn()
        except OSError as e:
            self._write_exit({"error": f"could not start {self.program[0]!r}: {e.strerror or e}"})
            return
        # The start time tells this supervisor from a later process given the same pid.
        state: dict[str, object] = {
            "pid": os.getpid(),
            "program": self.pid,
            "start": start_time(os.getpid()),
        }
        _write_json(os.path.join(self.run_dir, STATE_FILE), state)
        _say_ready(state)
        next_watch = time.monotonic() + WATCH_EVERY
        while not self._done():
            timeout = STOP_POLL if self.stop_reason else WATCH_EVERY
            readable, _, _ = select.select([wake_r, *self._pipes], [], [], timeout)
            if wake_r in readable:
                self._hear_signals(wake_r)
            for fd in readable:
                if fd in self._pipes:
                    self._relay(fd, output)
            self._reap()
            now = time.monotonic()
            if self.stop_reason is None and now >= next_watch:
                next_watch = now + WATCH_EVERY
                if self._worker_away():
                    self._begin_stop("orphaned")
            if self.status is not None and self.stop_reason is None and _descendants():
                self._begin_stop("leftovers")
            if self.stop_reason:
                self._press_stop()
        for fd in list(self._pipes):  # the tree is gone: what is left in the pipes
            self._relay(fd, output, until_eof=True)
        os.close(output)
        self._write_exit(self._ending())

    # The program -----------------------------------------------------------------------

    def _spawn(self) -> int:
        streams = {"out": os.pipe2(os.O_CLOEXEC), "err": os.pipe2(os.O_CLOEXEC)}
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, streams["out"][1], 1),
            (os.POSIX_SPAWN_DUP2, streams["err"][1], 2),
        ]
        try:
            spawn = os.posix_spawn if self.executable else os.posix_spawnp
            pid = spawn(
                self.executable or self.program[0],
                self.program,
                os.environ if self.env is None else self.env,
                file_actions=actions,
                setpgroup=0,
                setsigmask=(),
                # Python ignores SIGPIPE and SIGXFSZ; the program starts with the defaults.
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP, signal.SIGINT),
            )
        finally:
            for _, write_end in streams.values():
                os.close(write_end)
        for name, (read_end, _) in streams.items():
            os.set_blocking(read_end, False)
            self._pipes[read_end] = (name, codecs.getincrementaldecoder("utf-8")("replace"))
        return pid

    def _relay(self, fd: int, output: int, until_eof: bool = False) -> None:
        """Copy what the pipe holds to the output file as kept-log lines."""
        stream, decoder = self._pipes[fd]
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                if not until_eof:
                    return
                select.select([fd], [], [], 1.0)
                continue
            text = decoder.decode(data, final=not data)
            if text:
                import json  # after the program started (see _write_json)

                line = json.dumps({"s": stream, "t": text}, ensure_ascii=False) + "\n"
                os.write(output, line.encode())
            if not data:
                os.close(fd)
                del self._pipes[fd]
                return

    def _reap(self) -> None:
        """Collect every ended child (the program and reparented descendants)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status

    def _done(self) -> bool:
        """The program ended and nothing of its tree is left (or cannot be killed)."""
        return self.status is not None and (self.gave_up or not _descendants())

    # Stopping the tree -------------------------------------------------------------------

    def _hear_signals(self, wake_r: int) -> None:
        try:
            signums = os.read(wake_r, 512)
        except BlockingIOError:
            return
        if {signal.SIGTERM, signal.SIGINT} & set(signums) and self.stop_reason in (
            None,
            "leftovers",
        ):
            self._begin_stop("request")

    def _worker_away(self) -> bool:
        try:
            touched = os.stat(os.path.join(self.run_dir, HEARTBEAT_FILE)).st_mtime
        except OSError:
            touched = self.started
        return time.time() - max(touched, self.started) > self.orphan_after

    def _begin_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.stop_deadline = time.monotonic() + self.grace
        self._signal_tree(signal.SIGTERM)

    def _press_stop(self) -> None:
        """KILL what outlived the grace, once; then wait (bounded) for it to go."""
        now = time.monotonic()
        if not self.killed and now >= self.stop_deadline and _descendants():
            self.killed = True
            self._signal_tree(signal.SIGKILL)
        elif self.killed and _descendants():
            self._signal_tree(signal.SIGKILL)  # something forked meanwhile
            if now >= self.stop_deadline + KILL_PATIENCE:
                # Unkillable (stuck in the kernel): say so rather than wait forever.
                print(f"supervisor: gave up on {sorted(_descendants())}", file=sys.stderr)
                self.gave_up = True
                self._pipes.clear()
                if self.status is None:
                    self.status = -1

    def _signal_tree(self, signum: int) -> None:
        """Signal the program's group at once, and each descendant outside it.

        Once each: a program that saves a checkpoint on TERM and exits must not get a
        second TERM while it exits (Python's default handler is back by then).
        """
        group = None
        if self.status is None:
            group = self.pid
            _quiet_kill(lambda: os.killpg(self.pid, signum))
        for pid, pgid in _descendants().items():
            if pgid != group:
                _quiet_kill(lambda pid=pid: os.kill(pid, signum))

    # The end ----------------------------------------------------------------------------

    def _ending(self) -> dict[str, object]:
        status = self.status if self.status is not None else -1
        code: int | None = None
        signame: str | None = None
        returncode: int | None = None
        if status >= 0 and os.WIFEXITED(status):
            code = returncode = os.WEXITSTATUS(status)
        elif status >= 0 and os.WIFSIGNALED(status):
            signame = signal.Signals(os.WTERMSIG(status)).name
            returncode = -os.WTERMSIG(status)
        return {
            "returncode": returncode,
            "code": code,
            "signal": signame,
            "stopped": self.stop_reason,
            "killed": self.killed,
            "orphan_after": self.orphan_after,
        }

    def _write_exit(self, ending: dict[str, object]) -> None:
        _write_json(os.path.join(self.run_dir, EXIT_FILE), {"finished": time.time(), **ending})


def _say_ready(state: dict[str, object]) -> None:
    """Tell the worker that started us (a line on stdout), then let go of stdout."""
    import json

    try:
        os.write(1, (json.dumps(state) + "\n").encode())
    except OSError as e:  # that worker is gone: the next one finds the state file
        print(f"supervisor: could not say we are ready: {e}", file=sys.stderr)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (``/proc/PID/stat``); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    return int(raw[raw.rfind(b")") + 2 :].split()[19])


def _noted(signum: int, frame: object) -> None:
    """A handler that only wakes the loop (through the wakeup fd)."""


def _become_subreaper() -> None:
    global _libc
    if _libc is None:  # loaded once: a fork server's children find it loaded
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        number = ctypes.get_errno()
        print(f"supervisor: not a subreaper: {os.strerror(number)}", file=sys.stderr)


def preload() -> None:
    """What each run would otherwise load again: for a process that forks supervisors."""
    global _libc
    import json  # noqa: F401  (see _write_json)

    _libc = ctypes.CDLL(None, use_errno=True)


def _descendants() -> dict[int, int]:
    """Live (non-zombie) processes below this one, with their process groups (/proc)."""
    children: dict[int, list[int]] = {}
    groups: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X"):
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        groups[pid] = int(fields[2])
    found: dict[int, int] = {}
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = groups[child]
            todo.append(child)
    return found


def _quiet_kill(send: object) -> None:
    try:
        send()  # type: ignore[operator]
    except OSError as e:
        if e.errno not in (errno.ESRCH, errno.EPERM):
            raise


def _write_json(path: str, value: dict[str, object]) -> None:
    """Write whole or not at all: a reader never sees half a file."""
    # Imported here, once the program runs: json (and the re it imports) is a fifth of
    # the supervisor's start, which the program would otherwise wait for.
    import json

    tmp = path + ".tmp"
    with open(tmp, "w") as out:
        out.write(json.dumps(value))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
