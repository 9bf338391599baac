"""Which code a run runs: the git state of its folder, its interpreter, its command line.

`describe` gathers it when a run starts (the experiment's ``_code``, stored by
`tasks.experiments.record_code`): for a git checkout the repository, commit, branch and
the uncommitted diff (``git diff HEAD``: tracked files; untracked ones are not in it),
and always the resolved command line, the host and, for a Python or Node program, the
interpreter's version. Where git is missing or the folder is no checkout there is no git
part, and nothing fails: a probe that finds nothing has not failed.

Each git call has a short timeout and takes no lock (``GIT_OPTIONAL_LOCKS=0``), so a
researcher's own git commands in the checkout never meet an ``index.lock`` of ours.
The runner calls `describe` off the launch's critical path (see `Probe`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds one git or ``--version`` call may take before it is given up on.
CALL_TIMEOUT = 5.0
#: Interpreters whose version is recorded, by the basename of argv[0].
_INTERPRETERS = {
    "python": re.compile(r"^(python|pypy)[0-9.]*(\.exe)?$"),
    "node": re.compile(r"^(node|nodejs)(\.exe)?$"),
}
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
#: Interpreter versions by executable path (an interpreter does not change under a
#: worker; a reinstall at the same path is seen at the worker's next start).
_versions: dict[str, str | None] = {}
_versions_lock = threading.Lock()


@dataclass(frozen=True)
class Code:
    """What `describe` found; `fields` is ``_code`` without the diff, which the record
    module stores itself (inline, or in GridFS when long)."""

    fields: dict[str, Any] = field(default_factory=dict)
    diff: str | None = None

    @property
    def commit(self) -> str | None:
        return self.fields.get("commit")


def describe(
    argv: Sequence[str], cwd: Path, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Code:
    """The code of a run of `argv` in `cwd`: git state, command, host, interpreter.

    The checkout is `cwd`'s, else that of the folder of the first of the project's
    `args` that names a file (``python /srv/code/train.py`` run in a data folder).
    """
    env = dict(os.environ if env is None else env)
    command = [resolve_executable(argv[0], cwd, env), *argv[1:]] if argv else []
    fields: dict[str, Any] = {"command": command, "host": socket.gethostname()}
    kind = interpreter(argv[0]) if argv else None
    if kind is not None:
        version = interpreter_version(command[0])
        if version is not None:
            fields[kind] = version
    diff = None
    for folder in _candidates(cwd, args):
        git = git_state(folder)
        if git is not None:
            diff = git.pop("diff")
            fields.update(git)
            break
    return Code(fields, diff)


def rerun_line(current: str | None, original: str | None) -> str | None:
    """The log line of a rerun whose code differs from its original's; None when equal."""
    if not original or current == original:
        return None
    now = f"commit {_short(current)}" if current else "no git commit (its folder is not a checkout)"
    return f"code: this rerun runs {now}, the original ran {_short(original)}\n"


def interpreter(executable: str) -> str | None:
    """ "python" or "node" when `executable`'s name is one of theirs, else None."""
    name = os.path.basename(executable)
    return next((kind for kind, pattern in _INTERPRETERS.items() if pattern.match(name)), None)


def resolve_executable(executable: str, cwd: Path, env: Mapping[str, str]) -> str:
    """The path `executable` runs from: through PATH for a bare name, else under `cwd`."""
    if os.sep not in executable:
        return shutil.which(executable, path=env.get("PATH")) or executable
    return str(Path(cwd, executable).absolute())


def interpreter_version(executable: str) -> str | None:
    """``3.13.1`` for a Python, ``20.11.0`` for a Node (``--version``), cached per path."""
    with _versions_lock:
        if executable in _versions:
            return _versions[executable]
    out = _call([executable, "--version"], None)
    version = None
    if out is not None:
        found = re.search(r"(\d+\.\d+[\w.+-]*)", out)
        version = found.group(1) if found else None
    with _versions_lock:
        _versions[executable] = version
    return version


def git_state(folder: Path) -> dict[str, Any] | None:
    """``repo``, ``commit``, ``branch``, ``dirty`` and ``diff`` of the checkout holding
    `folder`; None when it is none (or git is missing, or has no commit yet)."""
    found = _call(["git", "rev-parse", "--show-toplevel", "HEAD", "--abbrev-ref", "HEAD"], folder)
    lines = found.splitlines() if found else []
    if len(lines) != 3:
        return None
    top, commit, branch = lines
    origin = _call(["git", "config", "--get", "remote.origin.url"], folder)
    diff = _call(["git", "diff", "HEAD", "--no-color", "--no-ext-diff"], folder)
    return {
        "repo": origin.strip() if origin and origin.strip() else top,
        "commit": commit,
        "branch": None if branch == "HEAD" else branch,  # detached
        "dirty": bool(diff),
        "diff": diff or "",
    }


class Probe:
    """`describe` in a thread of its own, so the program starts without waiting on git;
    then `record` of what it found, unless the run ends first.

    A run that ends within `hold` seconds of the launch takes the code (`take`) and
    stores it with its end, one write fewer for short runs; a longer one has its code
    recorded as soon as the hold is over, so its page shows it while it runs.
    """

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path,
        args: Sequence[str],
        env: Mapping[str, str],
        record: Callable[[Code], None],
        hold: float = 0.0,
    ) -> None:
        self._result: Code | None = None
        self._found = threading.Event()
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._taken = False
        self._recording = False
        self._hold = hold
        self._thread = threading.Thread(
            target=self._run,
            args=(list(argv), cwd, list(args), dict(env), record),
            name="code-probe",
            daemon=True,
        )
        self._thread.start()

    def _run(
        self,
        argv: list[str],
        cwd: Path,
        args: list[str],
        env: dict[str, str],
        record: Callable[[Code], None],
    ) -> None:
        try:
            self._result = describe(argv, cwd, args, env)
        except Exception:  # a run without its _code still runs
            logger.exception("finding the code of %s failed", argv[:1])
            return
        finally:
            self._found.set()
        self._ended.wait(self._hold)
        with self._lock:
            if self._taken:
                return
            self._recording = True
        try:
            record(self._result)
        except Exception:
            logger.exception("recording the code of %s failed", argv[:1])

    def wait(self, timeout: float = 4 * CALL_TIMEOUT) -> Code | None:
        """What it found (None if it failed or ran out of time), recorded or not."""
        self._found.wait(timeout)
        return self._result

    def take(self, timeout: float = 4 * CALL_TIMEOUT) -> Code | None:
        """At the run's end: its code for the caller to store with the end, or None when
        the probe recorded it already (or found none). Waits for a record under way."""
        with self._lock:
            self._taken = True
            recording = self._recording
        self._ended.set()
        if recording:
            self._thread.join(timeout)
            return None
        self._found.wait(timeout)
        return self._result


def _candidates(cwd: Path, args: Sequence[str]) -> list[Path]:
    folders = [cwd]
    script = next(
        (Path(cwd, a) for a in args if not a.startswith("-") and Path(cwd, a).is_file()), None
    )
    if script is not None:
        folders.append(script.absolute().parent)
    return folders


def _short(commit: str) -> str:
    return commit[:7]


def _call(command: list[str], cwd: Path | None) -> str | None:
    """The command's stdout, or None when it cannot run, fails or takes too long."""
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, **_GIT_ENV},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=CALL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        logger.debug("%s: %s", command[:2], e)
        return None
    if done.returncode != 0:
        return None
    # Node prints its version on stdout, old Pythons on stderr.
    out = done.stdout or (done.stderr if command[-1] == "--version" else b"")
    return out.decode("utf-8", errors="replace")
