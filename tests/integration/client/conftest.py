"""Client and CLI tests against a real stack: ``fglab web`` over HTTP, the scheduler and
one machine worker running ``tests/browser/program.py``.

The stack is the browser tests' (`tests.browser.conftest.stack`, package-scoped, so it
stops when this package's tests end); no browser is started here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fglab.cli import main
from fglab.client import Client
from tests.browser.conftest import Stack, password_url, project, stack

#: The fixtures this package uses as they are.
__all__ = ["password_url", "project", "stack"]


@dataclass(frozen=True)
class Run:
    """What one in-process ``fglab`` command did."""

    code: int
    out: str
    err: str


@pytest.fixture
def lab(stack: Stack) -> Client:
    """A client of the stack's FGLab."""
    return Client(stack.url)


@pytest.fixture
def fglab(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    """Runs ``fglab <args>`` in this process (FGLAB_URL is the stack's) and returns its
    exit code and what it printed."""
    monkeypatch.setenv("FGLAB_URL", stack.url)

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def stored(stack: Stack) -> Callable[[], dict[str, int]]:
    """How many experiments and sweeps the database holds (to check that nothing changed)."""

    def counts() -> dict[str, int]:
        return {name: stack.db[name].count_documents({}) for name in ("experiments", "sweeps")}

    return counts


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """When a test fails, show the tail of each stack process's log with it."""
    outcome = yield
    report = outcome.get_result()
    found: Any = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
    if report.failed and call.when in ("setup", "call") and isinstance(found, Stack):
        for process in found.fleet.processes:
            report.sections.append((f"{process.name} log", process.output()[-4000:]))
