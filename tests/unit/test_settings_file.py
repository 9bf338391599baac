"""A `.env` that cannot be read stops the entry point with its line, instead of python-dotenv
skipping the line and FGLab running without the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import SettingsError, load_settings


def test_an_unparseable_line_names_the_file_and_line(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("FGLAB_MACHINE=box-1\nthis is not a setting\n")
    with pytest.raises(SettingsError, match=r"\.env line 2: cannot read 'this is not a setting'"):
        load_settings(env)


def test_a_bad_value_names_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FGLAB_PORT", "abc")
    says = r"FGLAB_PORT='abc' is not a whole number; use a number 1\.\.65535"
    with pytest.raises(SettingsError, match=says):
        load_settings(tmp_path / "absent.env")


@pytest.mark.parametrize(("raw", "on"), [("1", True), ("yes", True), ("0", False), ("off", False)])
def test_task_events_is_a_switch(raw: str, on: bool) -> None:
    from config import Settings

    settings = Settings.from_env({"FGLAB_TASK_EVENTS": raw})
    assert settings.task_events is on
    assert Settings.from_env(settings.to_env()).task_events is on  # survives a child's env


def test_a_switch_that_is_not_one_says_so() -> None:
    from config import Settings

    with pytest.raises(SettingsError, match=r"FGLAB_TASK_EVENTS='maybe' is not a switch"):
        Settings.from_env({"FGLAB_TASK_EVENTS": "maybe"})


def test_task_events_are_off_unless_asked_for() -> None:
    from config import Settings
    from tasks.app import create_celery

    assert create_celery(Settings(), "t").conf.worker_send_task_events is False
    on = create_celery(Settings(task_events=True), "t").conf
    assert on.worker_send_task_events is True and on.task_send_sent_event is True
