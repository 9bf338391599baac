"""projects.json parsing, validation, reloading and FGLab's "Add to machine" template."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from worker.projects import Implementation, ProjectsError, ProjectsFile, parse_projects

PID = "5f2a0c1e9b1e8a3d4c6b7a90"


def entry(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cwd": ".",
        "command": "python",
        "args": ["train.py"],
        "options": "double-dash",
        "boolean": "mandatory",
        "capacity": 0.5,
        "results": "results",
    }
    base.update(overrides)
    return base


def parse_one(base_dir: Path, **overrides: Any) -> Implementation:
    return parse_projects(json.dumps({PID: entry(**overrides)}), base_dir)[PID]


def write(path: Path, data: object, *, tick: int) -> None:
    """Write the file and give it a distinct mtime, so the test never depends on clock speed."""
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    stamp = 1_700_000_000_000_000_000 + tick * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


# --- parse_projects ---------------------------------------------------------------------


def test_all_fields(tmp_path: Path) -> None:
    impl = parse_one(
        tmp_path,
        cwd="/srv/mnist",
        args=["-nodisplay", "-r", "train"],
        options="function",
        boolean="optional",
        capacity=0.25,
        results="/data/mnist",
        gpu_capacity=0.5,
        gpu_command="-gpu",
        timeout=3600,
        kill_grace=10,
        comment="unknown keys are ignored",
    )
    assert impl == Implementation(
        project_id=PID,
        cwd=Path("/srv/mnist"),
        command="python",
        args=("-nodisplay", "-r", "train"),
        options="function",
        boolean="optional",
        capacity=0.25,
        results=Path("/data/mnist"),
        gpu_capacity=0.5,
        gpu_command="-gpu",
        timeout=3600.0,
        kill_grace=10.0,
    )
    assert impl.summary() == {
        "capacity": 0.25,
        "gpu_capacity": 0.5,
        "options": "function",
        "boolean": "optional",
        "timeout": 3600.0,
    }


def test_optional_fields_default(tmp_path: Path) -> None:
    data = {PID: {"command": "node", "capacity": 1, "results": "out"}}
    impl = parse_projects(json.dumps(data), tmp_path)[PID]
    assert impl.cwd == tmp_path
    assert impl.args == ()
    assert impl.options == "double-dash"
    assert impl.boolean == "mandatory"
    assert (impl.gpu_capacity, impl.gpu_command, impl.timeout, impl.kill_grace) == (
        None,
        None,
        None,
        None,
    )
    assert impl.summary()["gpu_capacity"] is None


def test_string_args_are_split(tmp_path: Path) -> None:
    impl = parse_one(tmp_path, args="train.py --config 'my config.yaml'")
    assert impl.args == ("train.py", "--config", "my config.yaml")


def test_numeric_strings(tmp_path: Path) -> None:
    impl = parse_one(tmp_path, capacity="0.3", gpu_capacity="1", timeout="60")
    assert (impl.capacity, impl.gpu_capacity, impl.timeout) == (0.3, 1.0, 60.0)


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    impl = parse_one(tmp_path, cwd="code/mnist", results="../results")
    assert impl.cwd == tmp_path / "code" / "mnist"
    assert impl.results == tmp_path / "../results"


def test_gpu_command_without_gpu_capacity_and_vice_versa(tmp_path: Path) -> None:
    assert parse_one(tmp_path, gpu_command="-gpu").gpu_capacity is None
    only_capacity = parse_one(tmp_path, gpu_capacity=0.5)
    assert only_capacity.gpu_command is None
    assert parse_one(tmp_path, gpu_command="").gpu_command is None


def test_kill_grace_zero_is_allowed(tmp_path: Path) -> None:
    assert parse_one(tmp_path, kill_grace=0).kill_grace == 0.0


def test_order_is_kept(tmp_path: Path) -> None:
    data = {"b": entry(), "a": entry(), "c": entry()}
    assert list(parse_projects(json.dumps(data), tmp_path)) == ["b", "a", "c"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"capacity": 1.5}, "has capacity 1.5; use a number in \\(0, 1\\]$"),
        ({"capacity": 0}, "has capacity 0; use a number in \\(0, 1\\] \\(0 would mean unlimited"),
        ({"capacity": -0.1}, "has capacity -0.1; use a number in"),
        ({"capacity": "half"}, "has capacity 'half'; use a number in"),
        ({"capacity": True}, "has capacity true; use a number in"),
        ({"capacity": None}, "has no capacity; add it"),
        ({"capacity": "NaN"}, "has capacity 'NaN'; use a number in"),
        ({"gpu_capacity": 2}, "has gpu_capacity 2; use a number in \\(0, 1\\]"),
        ({"gpu_capacity": 0}, "has gpu_capacity 0; use a number in"),
        ({"gpu_command": 3}, "has gpu_command 3; use a string such as '-gpu'"),
        ({"command": ""}, "has command ''; use a non-empty string"),
        ({"command": ["python"]}, 'has command \\["python"\\]; use a non-empty string'),
        ({"command": None}, "has no command; add it"),
        ({"cwd": 5}, "has cwd 5; use a non-empty string"),
        ({"results": ""}, "has results ''; use a non-empty string"),
        ({"results": None}, "has no results; add it"),
        ({"options": "dashes"}, "has options 'dashes'; use one of 'plain', 'single-dash'"),
        ({"boolean": True}, "has boolean true; use one of 'optional', 'mandatory'"),
        ({"args": [1, 2]}, "has args \\[1, 2\\]; use a list of strings or one string"),
        ({"args": "train 'oops"}, 'has args "train \'oops" that cannot be split'),
        ({"timeout": 0}, "has timeout 0; use a number of seconds above 0"),
        ({"timeout": "soon"}, "has timeout 'soon'; use a number of seconds"),
        ({"kill_grace": -1}, "has kill_grace -1; use a number of seconds, 0 or more"),
    ],
)
def test_bad_field(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    data = entry(**overrides)
    data = {k: v for k, v in data.items() if not (k in overrides and v is None)}
    with pytest.raises(ProjectsError, match=f"^projects.json: project '{PID}' .*{message}"):
        parse_projects(json.dumps({PID: data}), tmp_path)


def test_entry_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(ProjectsError, match=f"project '{PID}' is a string; use an object"):
        parse_projects(json.dumps({PID: "python train.py"}), tmp_path)


@pytest.mark.parametrize(("text", "kind"), [("[]", "list"), ('"x"', "string"), ("3", "number")])
def test_not_an_object(tmp_path: Path, text: str, kind: str) -> None:
    with pytest.raises(ProjectsError, match=f"top level is a {kind}; use an object keyed by"):
        parse_projects(text, tmp_path)


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    text = '{\n  "a": {\n    "command": "python"\n    "capacity": 1\n  }\n}'
    with pytest.raises(
        ProjectsError, match=r"invalid JSON at line 4 column 5: Expecting ',' delimiter; fix the"
    ):
        parse_projects(text, tmp_path)


def test_duplicate_project_id(tmp_path: Path) -> None:
    text = f'{{"{PID}": {json.dumps(entry())}, "{PID}": {json.dumps(entry())}}}'
    with pytest.raises(ProjectsError, match=f"key '{PID}' appears twice in one object; keep one"):
        parse_projects(text, tmp_path)


def test_empty_project_id(tmp_path: Path) -> None:
    with pytest.raises(ProjectsError, match="a project ID is empty"):
        parse_projects(json.dumps({"": entry()}), tmp_path)


def test_empty_object_is_no_projects(tmp_path: Path) -> None:
    assert parse_projects("{}", tmp_path) == {}


# --- ProjectsFile -----------------------------------------------------------------------


@pytest.fixture
def projects_path(tmp_path: Path) -> Path:
    return tmp_path / "projects.json"


def test_missing_file(projects_path: Path) -> None:
    projects = ProjectsFile(projects_path)
    assert projects.current() == {}
    assert projects.error == (
        f"projects.json not found at {projects_path}; create it or use FGLab's 'Add to machine'"
    )


def test_reads_and_resolves_against_its_folder(projects_path: Path) -> None:
    write(projects_path, {PID: entry(results="out")}, tick=1)
    projects = ProjectsFile(projects_path)
    current = projects.current()
    assert list(current) == [PID]
    assert current[PID].results == projects_path.parent / "out"
    assert projects.error is None


def test_reloads_on_change(projects_path: Path) -> None:
    write(projects_path, {PID: entry(capacity=0.5)}, tick=1)
    projects = ProjectsFile(projects_path)
    assert projects.current()[PID].capacity == 0.5
    write(projects_path, {PID: entry(capacity=0.25), "other": entry()}, tick=2)
    current = projects.current()
    assert current[PID].capacity == 0.25
    assert set(current) == {PID, "other"}


def test_unchanged_file_is_not_reparsed(
    projects_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(projects_path, {PID: entry()}, tick=1)
    projects = ProjectsFile(projects_path)
    first = projects.current()
    calls: list[str] = []
    monkeypatch.setattr("worker.projects.parse_projects", lambda *a: calls.append("parse") or {})
    assert projects.current() == first
    assert calls == []


def test_broken_file_keeps_last_good_then_recovers(
    projects_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(projects_path, {PID: entry(capacity=0.5)}, tick=1)
    projects = ProjectsFile(projects_path)
    good = projects.current()

    write(projects_path, {PID: entry(capacity=1.5)}, tick=2)
    with caplog.at_level(logging.WARNING, logger="worker.projects"):
        assert projects.current() == good
        assert projects.current() == good
    assert projects.error is not None
    assert "has capacity 1.5" in projects.error
    assert len(caplog.records) == 1  # one warning per distinct problem, not per call

    write(projects_path, "{ not json", tick=3)
    assert projects.current() == good
    assert projects.error is not None
    assert "invalid JSON at line 1" in projects.error

    write(projects_path, {PID: entry(capacity=0.75)}, tick=4)
    assert projects.current()[PID].capacity == 0.75
    assert projects.error is None


def test_deleted_file_means_no_projects(projects_path: Path) -> None:
    write(projects_path, {PID: entry()}, tick=1)
    projects = ProjectsFile(projects_path)
    assert projects.current()
    projects_path.unlink()
    assert projects.current() == {}
    assert projects.error is not None
    assert "not found" in projects.error
    write(projects_path, {PID: entry()}, tick=2)
    assert list(projects.current()) == [PID]
    assert projects.error is None


def test_current_returns_a_copy(projects_path: Path) -> None:
    write(projects_path, {PID: entry()}, tick=1)
    projects = ProjectsFile(projects_path)
    projects.current().clear()
    assert list(projects.current()) == [PID]


# --- add: the "Add to machine" template ---------------------------------------------------

TEMPLATE = {
    "cwd": ".",
    "command": "python",
    "args": [],
    "options": "double-dash",
    "boolean": "mandatory",
    "capacity": 1,
    "results": "results",
}


def test_add_template_creates_file(tmp_path: Path) -> None:
    path = tmp_path / "machine" / "projects.json"
    projects = ProjectsFile(path)
    assert projects.current() == {}
    projects.add(PID)
    assert json.loads(path.read_text(encoding="utf-8")) == {PID: TEMPLATE}
    impl = projects.current()[PID]
    assert (impl.command, impl.capacity, impl.results) == ("python", 1.0, path.parent / "results")
    assert projects.error is None
    assert [p.name for p in path.parent.iterdir()] == ["projects.json"]  # no temp file left


def test_add_template_extends_without_overwriting(projects_path: Path) -> None:
    mine = entry(command="th", capacity=0.2, comment="kept")
    write(projects_path, {PID: mine}, tick=1)
    projects = ProjectsFile(projects_path)

    projects.add("new-project")
    data = json.loads(projects_path.read_text(encoding="utf-8"))
    assert list(data) == [PID, "new-project"]
    assert data[PID] == mine
    assert data["new-project"] == TEMPLATE

    before = projects_path.read_bytes()
    projects.add(PID)
    assert projects_path.read_bytes() == before
    assert projects.current()[PID].command == "th"


def test_add_template_refuses_broken_file(projects_path: Path) -> None:
    write(projects_path, "{ broken", tick=1)
    projects = ProjectsFile(projects_path)
    with pytest.raises(ProjectsError, match=r"invalid JSON .*; fix the file before adding"):
        projects.add(PID)
    assert projects_path.read_text(encoding="utf-8") == "{ broken"


def test_add_template_refuses_non_object(projects_path: Path) -> None:
    write(projects_path, "[]", tick=1)
    with pytest.raises(ProjectsError, match="top level is a list; make it an object"):
        ProjectsFile(projects_path).add(PID)


def test_add_template_keeps_file_mode(projects_path: Path) -> None:
    write(projects_path, {}, tick=1)
    projects_path.chmod(0o640)
    ProjectsFile(projects_path).add(PID)
    assert projects_path.stat().st_mode & 0o777 == 0o640


def test_add_template_empty_id(projects_path: Path) -> None:
    with pytest.raises(ValueError, match="project ID '' must be a non-empty string"):
        ProjectsFile(projects_path).add("")


def test_pass_env_names_the_secrets_a_program_may_see(tmp_path: Path) -> None:
    from worker.argv import program_env

    assert parse_one(tmp_path).pass_env == ()
    impl = parse_one(tmp_path, pass_env=["REDIS_URL"])
    environ = {"PATH": "/bin", "PASSWORD": "p", "REDIS_URL": "redis://x", "MONGODB_URI": "m"}
    assert program_env(environ, impl.pass_env) == {"PATH": "/bin", "REDIS_URL": "redis://x"}
    with pytest.raises(ProjectsError, match="has pass_env 'REDIS_URL'; use a list of variable"):
        parse_one(tmp_path, pass_env="REDIS_URL")
