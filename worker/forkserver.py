"""The fork server: run supervisors without starting an interpreter for each.

    python -I -S worker/forkserver.py FD

Started by the worker (``worker/supervision.py``'s `ForkServer`) in a session of its own,
with one end of a ``SOCK_SEQPACKET`` socket pair as FD. Each message on it is one run's
request, a JSON object (``run_dir``, ``argv``, ``executable``, ``cwd``, ``env``,
``grace``, ``orphan_after``), with the write end of a pipe attached (``SCM_RIGHTS``). For each, the
server forks; the child starts a session of its own and becomes that run's supervisor
(`worker.supervisor.Supervisor`, already imported, so nothing is loaded per run), with the
pipe as its stdout: the supervisor's "ready" line reaches the worker through it, as it does
from a supervisor the worker started itself. A child is never waited on by the worker, and
the server ignores SIGCHLD, so the kernel reaps its children.

The server keeps no state about runs. When it dies, the supervisors it forked go on (they
are in their own sessions; init, or the nearest subreaper, inherits them), and the worker
starts the next runs with an interpreter of their own until it starts a new server. When
the worker's end of the socket closes (the worker exited, however), the server exits.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sys
import traceback

# Run by path with -I -S: the folder above worker/ goes after the stdlib's.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from worker import supervisor  # stdlib only, like this file

#: The largest request: an environment and a command line, with room to spare.
MAX_REQUEST = 1 << 20
#: Log of a child that could not become a supervisor, in its run folder.
SUPERVISOR_LOG = "supervisor.log"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        sys.exit("usage: forkserver.py FD (one end of a SOCK_SEQPACKET socket pair)")
    serve(socket.socket(fileno=int(args[0])))
    return 0


def serve(channel: socket.socket) -> None:
    """Fork one supervisor per request until the worker's end closes."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps our children
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    supervisor.preload()
    gc.freeze()  # what is loaded now stays shared with the children, not copied
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(channel, MAX_REQUEST, 1)
        except InterruptedError:
            continue
        if not data:
            return  # the worker is gone
        if not fds:
            print("forkserver: a request came without its reply pipe", file=sys.stderr)
            continue
        reply = fds[0]
        try:
            pid = os.fork()
        except OSError as e:
            print(f"forkserver: cannot fork: {e}", file=sys.stderr)
            os.close(reply)  # the worker reads EOF, finds no state, starts it itself
            continue
        if pid == 0:
            channel.close()
            _become_supervisor(data, reply)  # never returns
        os.close(reply)


def _become_supervisor(data: bytes, reply: int) -> None:
    """In the forked child: set the run's process up as a fresh start would, then run it."""
    code = 1
    try:
        request = json.loads(data)
        run_dir = request["run_dir"]
        os.setsid()
        for signum in (signal.SIGCHLD, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        log = os.open(
            os.path.join(run_dir, SUPERVISOR_LOG),
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
            0o644,
        )
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(reply, 1)
        os.dup2(log, 2)
        for fd in (null, reply, log):
            os.close(fd)
        os.chdir(request["cwd"])
        supervisor.Supervisor(
            run_dir,
            list(request["argv"]),
            float(request["grace"]),
            float(request["orphan_after"]),
            executable=request["executable"],
            env=dict(request["env"]),
        ).run()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
