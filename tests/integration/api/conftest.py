"""API fixtures: a project made from the original's example schema, experiments in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.api.helpers import EXAMPLE_SCHEMA, OPTIONS, submit, upload_schema


@pytest.fixture
def project(client) -> dict[str, Any]:
    """The project `mnist`, created by uploading the example schema."""
    response = upload_schema(client, EXAMPLE_SCHEMA, "mnist.json")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def new_experiment(client, project) -> Callable[..., str]:
    """Submit a queued experiment (to `project` unless told) and return its ID."""

    def make(project_id: str | None = None, **changes: Any) -> str:
        response = submit(client, project_id or project["_id"], {**OPTIONS, **changes})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["_id"]

    return make


@pytest.fixture
def experiment_id(new_experiment) -> str:
    return new_experiment()
