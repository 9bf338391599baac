"""pyproject.toml uses today's metadata forms, so installing prints no deprecation of ours."""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_license_is_an_spdx_string_and_setuptools_reads_it() -> None:
    data = tomllib.loads(PYPROJECT.read_text())
    assert data["project"]["license"] == "MIT"
    # A string license is PEP 639; setuptools reads it from 77 on (older ones reject it).
    assert "setuptools>=77" in data["build-system"]["requires"]
