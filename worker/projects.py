"""The machine's projects.json: which FGLab projects this machine runs, and how.

The format is FGMachine's: a JSON object keyed by FGLab project ID, each entry naming the
working directory, command, first args, option style, boolean mode, capacity and results
folder, plus the optional ``gpu_capacity``/``gpu_command`` and two new optional limits,
``timeout`` and ``kill_grace`` (seconds), and ``pass_env``: the names of FGLab's own
secrets (`worker.argv.SECRET_VARIABLES`) the program may see, which it is otherwise not
given. :func:`parse_projects` is pure;
:class:`ProjectsFile` adds the file: reload on change, keep the last good version when an
edit breaks it, and FGLab's "Add to machine" template.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.contract import PROJECT_TEMPLATE
from worker.argv import BOOLEAN_MODES, STYLES

logger = logging.getLogger(__name__)

#: Defaults for keys an entry may leave out; ``command``, ``capacity`` and ``results``
#: have none. ``boolean`` defaults to "mandatory", so a false flag is passed, not dropped.
DEFAULTS: dict[str, Any] = {
    "cwd": ".",
    "args": [],
    "options": "double-dash",
    "boolean": "mandatory",
}


class ProjectsError(ValueError):
    """projects.json cannot be used; the message names the project and field to fix."""


@dataclass(frozen=True)
class Implementation:
    """How this machine runs one FGLab project (one projects.json entry, validated).

    ``cwd`` and ``results`` are absolute or relative to projects.json's folder;
    ``timeout`` is the wall-clock limit and ``kill_grace`` the wait between TERM and KILL,
    both in seconds, None meaning no limit / the launcher's default.
    """

    project_id: str
    cwd: Path
    command: str
    args: tuple[str, ...]
    options: str
    boolean: str
    capacity: float
    results: Path
    gpu_capacity: float | None = None
    gpu_command: str | None = None
    timeout: float | None = None
    kill_grace: float | None = None
    #: FGLab secrets (`worker.argv.SECRET_VARIABLES`) the program is given all the same.
    pass_env: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """What FGLab's scheduler and option checks need; never paths or commands."""
        return {
            "capacity": self.capacity,
            "gpu_capacity": self.gpu_capacity,
            "options": self.options,
            "boolean": self.boolean,
            "timeout": self.timeout,
        }


def parse_projects(text: str, base_dir: Path) -> dict[str, Implementation]:
    """Validate projects.json's text; relative ``cwd``/``results`` resolve against base_dir.

    Entries keep the file's order. Unknown keys are ignored. ``args`` may be a list of
    strings or one string split like a shell would (no shell runs it). Numbers may be
    given as numeric strings ("0.3"), as FGMachine's template wrote them.

    Raises :class:`ProjectsError` at the first problem: invalid JSON (with line and
    column), a duplicate key, or a field that is missing or out of range.
    """
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise ProjectsError(
            f"projects.json: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}; "
            "fix the file"
        ) from e
    if not isinstance(data, dict):
        raise ProjectsError(
            f"projects.json: top level is a {_json_type(data)}; use an object keyed by "
            'project ID, e.g. {"<project_id>": {"command": ...}}'
        )
    return {
        project_id: _implementation(project_id, entry, base_dir)
        for project_id, entry in data.items()
    }


class ProjectsFile:
    """Reloads projects.json when it changes (mtime+size check on each call); a broken file
    keeps the last good one and exposes the error.

    Safe to share between the worker's threads. A missing file means no projects.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._projects: dict[str, Implementation] = {}
        self._error: str | None = None

    @property
    def error(self) -> str | None:
        """The last parse error, or None when the file is good."""
        return self._error

    def current(self) -> dict[str, Implementation]:
        """The projects as of now; rereads the file only when its stat has changed."""
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._signature = None
                self._projects = {}
                self._set_error(
                    f"projects.json not found at {self.path}; create it or use FGLab's "
                    "'Add to machine'"
                )
                return {}
            except OSError as e:
                self._set_error(f"projects.json at {self.path} cannot be read: {e}")
                return dict(self._projects)
            # The inode catches an atomic replace that keeps size and mtime granularity.
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            if signature != self._signature:
                self._signature = signature
                self._reload()
            return dict(self._projects)

    def add(self, project_id: str, entry: dict[str, Any] | None = None) -> None:
        """Add `entry` for project_id, FGLab's "Add to machine" template when None,
        creating the file if needed.

        An existing entry is never overwritten (nothing is written then). The file is
        replaced atomically, so a reader never sees half of it. Raises
        :class:`ProjectsError` when the existing file is not valid JSON (it is left as is:
        fix it first) and :class:`ValueError` for an empty project_id.
        """
        if not isinstance(project_id, str) or not project_id:
            raise ValueError(f"project ID {project_id!r} must be a non-empty string")
        with self._lock:
            data = self._read_for_update()
            if project_id in data:
                logger.info("projects.json already has project %s; left unchanged", project_id)
                return
            data[project_id] = dict(PROJECT_TEMPLATE if entry is None else entry)
            self._write(data)
            logger.info("projects.json: added project %s at %s", project_id, self.path)

    def _reload(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
            projects = parse_projects(text, self.path.parent)
        except ProjectsError as e:
            self._set_error(str(e))
        except (OSError, UnicodeDecodeError) as e:
            self._set_error(f"projects.json at {self.path} cannot be read: {e}")
        else:
            if self._error is not None:
                logger.info("projects.json at %s is good again", self.path)
            self._projects = projects
            self._error = None

    def _set_error(self, message: str) -> None:
        # Log once per distinct problem: current() runs often and the file rarely changes.
        if message != self._error:
            kept = f" (keeping {len(self._projects)} project(s) from the last good version)"
            logger.warning("%s%s", message, kept if self._projects else "")
        self._error = message

    def _read_for_update(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise ProjectsError(
                f"projects.json at {self.path}: invalid JSON at line {e.lineno} column "
                f"{e.colno}: {e.msg}; fix the file before adding a project"
            ) from e
        if not isinstance(data, dict):
            raise ProjectsError(
                f"projects.json at {self.path}: top level is a {_json_type(data)}; "
                "make it an object before adding a project"
            )
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        fd, tmp = tempfile.mkstemp(prefix=".projects.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, ensure_ascii=False)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads hook: a repeated key would silently drop an entry, so refuse it."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ProjectsError(f"projects.json: key {key!r} appears twice in one object; keep one")
        result[key] = value
    return result


def _implementation(project_id: str, entry: object, base_dir: Path) -> Implementation:
    where = f"projects.json: project {project_id!r}"
    if not project_id:
        raise ProjectsError("projects.json: a project ID is empty; use the ID FGLab shows")
    if not isinstance(entry, dict):
        raise ProjectsError(
            f"{where} is a {_json_type(entry)}; use an object with command, capacity, results, ..."
        )
    fields = {**DEFAULTS, **entry}

    def text(key: str) -> str:
        value = fields.get(key)
        if value is None:
            raise ProjectsError(f"{where} has no {key}; add it")
        if not isinstance(value, str) or not value.strip():
            raise ProjectsError(f"{where} has {key} {_show(value)}; use a non-empty string")
        return value

    def choice(key: str, allowed: tuple[str, ...]) -> str:
        value = fields.get(key)
        if value not in allowed:
            names = ", ".join(repr(a) for a in allowed)
            raise ProjectsError(f"{where} has {key} {_show(value)}; use one of {names}")
        return str(value)

    def path(key: str) -> Path:
        p = Path(text(key)).expanduser()
        return p if p.is_absolute() else base_dir / p

    def fraction(key: str) -> float | None:
        value = _number(where, key, fields.get(key), _FRACTION)
        if value is not None and not 0 < value <= 1:
            # FGMachine allowed 0, but it would let the machine run unlimited instances.
            hint = " (0 would mean unlimited instances)" if value == 0 else ""
            raise ProjectsError(f"{where} has {key} {_show(fields[key])}; {_FRACTION}{hint}")
        return value

    def seconds(key: str, *, zero_ok: bool) -> float | None:
        use = _SECONDS_OR_ZERO if zero_ok else _SECONDS
        value = _number(where, key, fields.get(key), use)
        if value is not None and (value < 0 or (value == 0 and not zero_ok)):
            raise ProjectsError(f"{where} has {key} {_show(fields[key])}; {use}")
        return value

    capacity = fraction("capacity")
    if capacity is None:
        raise ProjectsError(f"{where} has no capacity; add it ({_FRACTION})")
    gpu_command = fields.get("gpu_command")
    if gpu_command is not None and not isinstance(gpu_command, str):
        raise ProjectsError(
            f"{where} has gpu_command {_show(gpu_command)}; use a string such as '-gpu'"
        )
    return Implementation(
        project_id=project_id,
        cwd=path("cwd"),
        command=text("command"),
        args=_args(where, fields.get("args")),
        options=choice("options", STYLES),
        boolean=choice("boolean", BOOLEAN_MODES),
        capacity=capacity,
        results=path("results"),
        gpu_capacity=fraction("gpu_capacity"),
        gpu_command=gpu_command or None,
        timeout=seconds("timeout", zero_ok=False),
        kill_grace=seconds("kill_grace", zero_ok=True),
        pass_env=_names(where, fields.get("pass_env")),
    )


_FRACTION = "use a number in (0, 1]"
_SECONDS = "use a number of seconds above 0, or leave it out for no limit"
_SECONDS_OR_ZERO = "use a number of seconds, 0 or more"


def _number(where: str, key: str, value: object, use: str) -> float | None:
    """A finite number from a JSON number or numeric string; None when absent or null."""
    if value is None:
        return None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            result = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(result):
                return result
    raise ProjectsError(f"{where} has {key} {_show(value)}; {use}")


def _names(where: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(n, str) and n for n in value):
        return tuple(value)
    raise ProjectsError(
        f'{where} has pass_env {_show(value)}; use a list of variable names, e.g. ["REDIS_URL"]'
    )


def _args(where: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as e:
            raise ProjectsError(
                f"{where} has args {_show(value)} that cannot be split ({e}); "
                "fix the quoting or use a list of strings"
            ) from e
    if isinstance(value, list) and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise ProjectsError(f"{where} has args {_show(value)}; use a list of strings or one string")


def _show(value: object) -> str:
    """A value as the file spells it, strings quoted: 1.5, 'dash', true, null."""
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _json_type(value: object) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
