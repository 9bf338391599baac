"""Attacks sent to a real stack (issue 17): each test shows the attack refused, with a clear
error, and nothing changed (files, processes, documents, other pages still answering).

The fixtures are the integration suite's: a real MongoDB wire server, real Redis, FGLab's
app and, where an attack needs one, a fleet of real worker processes. Every test here is
marked ``security``, as are the few attacks tested beside what they attack (a PUT of a
system field, an open listen address, an untrusted Host, index sprawl, a 64-bit filter, a
program's inherited secrets), so ``pytest -m security`` sends every attack of issue 17
and nothing else.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import app, client, store
from tests.integration.workers.conftest import fleet, ledger, project, project_schema

__all__ = ["app", "client", "fleet", "ledger", "project", "project_schema", "store"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/security/" in item.nodeid:
            item.add_marker(pytest.mark.security)
