"""Integration fixtures: FGLab over a real MongoDB wire server."""

from __future__ import annotations

import pytest

from fglab.app import create_app
from fglab.store import Store


@pytest.fixture
def store(db) -> Store:
    store = Store(db)
    store.ensure_indexes()
    return store


@pytest.fixture
def app(settings, store):
    app = create_app(settings, store=store)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()
