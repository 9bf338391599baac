"""Flower's command and environment: protected exactly when FGLab is."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config import Settings
from fglab.monitor import FlowerConfigError, flower_command, flower_environment

ROOT = Path(__file__).resolve().parents[2]


def test_with_a_password_flower_asks_for_it_as_user_fglab() -> None:
    base = {"PATH": "/bin", "FLOWER_UNAUTHENTICATED_API": "true"}
    env = flower_environment(Settings(password="s3cret:x"), base)

    assert env["FLOWER_BASIC_AUTH"] == "fglab:s3cret:x"
    assert "FLOWER_UNAUTHENTICATED_API" not in env  # a stray one cannot open it
    assert env["PATH"] == "/bin"


def test_without_a_password_flower_is_open_like_fglab_and_its_api_usable() -> None:
    env = flower_environment(Settings(), {"FLOWER_BASIC_AUTH": "old:one"})

    assert env["FLOWER_UNAUTHENTICATED_API"] == "true"
    assert "FLOWER_BASIC_AUTH" not in env


def test_a_password_flower_cannot_take_is_refused_by_name() -> None:
    with pytest.raises(FlowerConfigError, match="PASSWORD contains ','"):
        flower_environment(Settings(password="a,b"), {})


def test_the_command_keeps_the_password_off_the_command_line_and_events_on() -> None:
    command = flower_command(Settings(password="s3cret", flower_port=5600), "0.0.0.0")

    assert command[1:6] == ["-m", "celery", "-A", "worker", "flower"]
    assert {"--port=5600", "--address=0.0.0.0", "--enable-events"} <= set(command)
    assert not any("s3cret" in part for part in command)


def test_procfile_and_compose_start_flower_through_fglab_flower() -> None:
    procfile = dict(
        line.split(": ", 1)
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    )
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    assert procfile["flower"] == "fglab flower"
    assert compose["flower"]["command"].startswith("fglab flower ")
