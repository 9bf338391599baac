"""Tests with real worker processes: FGLab's scheduler and machine workers on this host.

Leases and heartbeats are short here (for the app, the ledger and every worker alike), so
expiry, sweeps and restarts take seconds; a test module changes more where it needs to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis

from tasks.ledger import Ledger
from tests.integration.fleet import SCHEMA, Fleet, new_project


@pytest.fixture
def settings(settings):
    return settings.with_changes(lease_ttl=4.0, heartbeat=0.5, kill_grace=2.0)


@pytest.fixture
def fleet(settings, tmp_path) -> Iterator[Fleet]:
    fleet = Fleet(settings, tmp_path / "fleet")
    yield fleet
    fleet.stop_all()
    fleet.print_logs()


@pytest.fixture
def project_schema() -> dict[str, Any]:
    """The schema of `project`; a module with more options overrides this."""
    return SCHEMA


@pytest.fixture
def project(store, project_schema) -> dict[str, Any]:
    return new_project(store, project_schema)


@pytest.fixture
def ledger(settings) -> Iterator[Ledger]:
    client = Redis.from_url(settings.redis)
    yield Ledger(client, ttl=settings.lease_ttl)
    client.close()
