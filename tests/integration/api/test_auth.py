"""With PASSWORD set, every page and call needs HTTP basic auth with that password."""

from __future__ import annotations

import base64

import pytest

from fglab.app import create_app
from tests.integration.api.helpers import EXAMPLE_SCHEMA, upload_schema


@pytest.fixture
def locked_client(settings, store):
    app = create_app(settings.with_changes(password="s3cret"), store=store)
    app.config["TESTING"] = True
    return app.test_client()


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


GOOD = _basic("anyone", "s3cret")

PAGES = [
    ("get", "/api/v1/projects"),
    ("get", "/api/v1/experiments"),
    ("get", "/api/v1/machines"),
    ("get", "/api/openapi.json"),
    ("get", "/api/docs"),
]


@pytest.mark.parametrize(
    "headers",
    [{}, _basic("anyone", "wrong"), _basic("s3cret", ""), {"Authorization": "Bearer s3cret"}],
    ids=["none", "wrong", "password-as-user", "bearer"],
)
@pytest.mark.parametrize(("method", "path"), PAGES)
def test_without_the_password_is_401(locked_client, headers, method: str, path: str) -> None:
    response = getattr(locked_client, method)(path, headers=headers)

    assert response.status_code == 401
    assert response.get_json() == {"error": "Authentication required"}
    assert response.headers["WWW-Authenticate"] == 'Basic realm="FGLab"'


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_with_the_password_succeeds(locked_client, method: str, path: str) -> None:
    response = getattr(locked_client, method)(path, headers=GOOD)

    assert response.status_code == 200


def test_refused_write_stores_nothing(locked_client, db) -> None:
    response = locked_client.post(
        "/api/v1/machines", json={"hostname": "box"}, headers=_basic("u", "nope")
    )

    assert response.status_code == 401
    assert db.machines.count_documents({}) == 0


def test_write_with_the_password_is_stored(locked_client, db) -> None:
    response = locked_client.post("/api/v1/machines", json={"hostname": "box"}, headers=GOOD)

    assert response.status_code == 201
    assert db.machines.find_one({"_id": "box"})["hostname"] == "box"


def test_schema_upload_with_the_password(locked_client, db) -> None:
    assert upload_schema(locked_client, EXAMPLE_SCHEMA).status_code == 401
    assert db.projects.count_documents({}) == 0

    locked_client.environ_base["HTTP_AUTHORIZATION"] = GOOD["Authorization"]
    response = upload_schema(locked_client, EXAMPLE_SCHEMA)

    assert response.status_code == 201
    assert db.projects.find_one({"name": "mnist"}) is not None


def test_without_password_setting_no_auth_is_needed(client) -> None:
    assert client.get("/api/v1/projects").status_code == 200
