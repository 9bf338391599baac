"""`fglab web` warns, in one line, when it listens beyond loopback without a PASSWORD."""

from __future__ import annotations

import logging

import pytest

from fglab.cli import _warn_if_open


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "gpu-box-1.example.org"])
def test_open_host_without_password_warns_once(caplog, host: str) -> None:
    with caplog.at_level(logging.WARNING, logger="fglab"):
        _warn_if_open(host, None)

    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "\n" not in message
    assert f"FGLab listens on {host} without a PASSWORD" in message
    assert "set PASSWORD" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"])
def test_loopback_without_password_is_quiet(caplog, host: str) -> None:
    with caplog.at_level(logging.DEBUG, logger="fglab"):
        _warn_if_open(host, None)

    assert caplog.records == []


def test_open_host_with_password_is_quiet(caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="fglab"):
        _warn_if_open("0.0.0.0", "s3cret")

    assert caplog.records == []
