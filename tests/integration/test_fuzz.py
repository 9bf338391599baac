"""The OpenAPI document, fuzzed with schemathesis through the WSGI app: no route answers 5xx.

The document is read once, at collection, from an app that reaches no service; each
operation's cases then run against a fresh app and database. Generated IDs rarely name
anything, so part of the cases are pointed at real objects (a project, an experiment with
a file, a machine, a token) to get past the lookups into the body handling. The scheduler
has no machines here: submissions queue, or answer 501.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from pymongo import MongoClient
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from config import Settings
from fglab.app import create_app
from fglab.store import Store
from tests.integration.api.helpers import EXAMPLE_SCHEMA, OPTIONS, submit, upload_schema

#: Examples per operation and phase; the whole fuzz stays under a minute.
MAX_EXAMPLES = 25
#: 501 is a documented answer (no machine capacity and `queue` not asked), not a failure.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "501"]}}}
)


def _load_schema() -> Any:
    client: MongoClient = MongoClient("mongodb://127.0.0.1:9", connect=False)
    try:
        app = create_app(Settings(), store=Store(client["openapi"]))
        return schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=CONFIG)
    finally:
        client.close()


schema = _load_schema()


@dataclass(frozen=True)
class Target:
    app: Flask
    #: Real IDs by path parameter name.
    real: dict[str, str]

    def aim(self, path_parameters: dict[str, Any]) -> dict[str, Any]:
        """Every other case names real objects (decided by the generated value, so replayable)."""
        return {
            name: self.real.get(name, value) if len(str(value)) % 2 == 0 else value
            for name, value in path_parameters.items()
        }


@pytest.fixture
def target(app, client) -> Target:
    project = upload_schema(client, EXAMPLE_SCHEMA).get_json()
    experiment_id = submit(client, project["_id"], OPTIONS).get_json()["_id"]
    # Ended, so its log stream ends at once (a waiting experiment's stream follows forever).
    assert client.post(f"/api/v1/experiments/{experiment_id}/kill").status_code == 200
    uploaded = client.put(
        f"/api/v1/experiments/{experiment_id}/files",
        data={"_files": [(io.BytesIO(b"1,2\n"), "scores.csv", "text/csv")]},
        content_type="multipart/form-data",
    ).get_json()
    assert client.post("/api/v1/machines", json={"hostname": "box"}).status_code == 201
    token = client.post("/api/v1/tokens", json={"name": "fuzz"}).get_json()
    return Target(
        app,
        {
            "project_id": project["_id"],
            "experiment_id": experiment_id,
            "file_id": uploaded["_files"][0]["_id"],
            "machine_id": "box",
            "token_id": token["_id"],
        },
    )


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_no_route_answers_a_server_error(case, target: Target) -> None:
    if case.path_parameters:
        case.path_parameters = target.aim(case.path_parameters)
    case.call_and_validate(app=target.app, checks=[not_a_server_error])
