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
