"""Projects: schema upload, listing, and the effects of refused schemas."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from bson import ObjectId

from tests.integration.api.helpers import EXAMPLE_SCHEMA, counts, upload_schema


def test_schema_upload_creates_project_named_after_file(client, db) -> None:
    response = upload_schema(client, EXAMPLE_SCHEMA, "mnist.json")

    assert response.status_code == 201
    body = response.get_json()
    assert body["name"] == "mnist"
    assert body["schema"] == EXAMPLE_SCHEMA
    stored = db.projects.find_one({"_id": ObjectId(body["_id"])})
    assert stored["name"] == "mnist"
    assert stored["schema"] == EXAMPLE_SCHEMA
    assert list(stored["schema"]) == list(EXAMPLE_SCHEMA)  # field order kept for forms
    assert db.projects.count_documents({}) == 1


def test_schema_upload_keeps_names_without_json_suffix(client, db) -> None:
    response = upload_schema(client, EXAMPLE_SCHEMA, "cifar-schema")

    assert response.status_code == 201
    assert db.projects.find_one({"name": "cifar-schema"}) is not None


def test_schema_upload_normalises_whole_float_default_of_int(client, db) -> None:
    response = upload_schema(client, {"epochs": {"type": "int", "default": 10.0}}, "e.json")

    assert response.status_code == 201
    stored = db.projects.find_one({"name": "e"})
    assert stored["schema"]["epochs"] == {"type": "int", "default": 10}
    assert isinstance(stored["schema"]["epochs"]["default"], int)


BAD_SCHEMAS: list[tuple[str, bytes | dict | list, str]] = [
    ("not-json", b"{seed: int", "is not valid JSON"),
    ("not-utf8", b"\xff\xfe\x00", "is not valid JSON"),
    ("list", [{"seed": {"type": "int", "default": 1}}], "schema must be a JSON object"),
    ("string", b'"seed"', "schema must be a JSON object"),
    ("empty-object", {}, "schema is empty"),
    ("unknown-type", {"seed": {"type": "complex", "default": 1}}, "unknown type 'complex'"),
    ("no-type", {"seed": {"default": 1}}, "unknown type None"),
    ("spec-not-object", {"seed": 5}, "spec must be an object"),
    ("enum-without-values", {"opt": {"type": "enum", "default": "a"}}, "enum needs a non-empty"),
    ("enum-empty-values", {"opt": {"type": "enum", "default": "a", "values": []}}, "enum needs"),
    (
        "enum-default-not-a-value",
        {"opt": {"type": "enum", "default": "c", "values": ["a", "b"]}},
        "default 'c' is not a valid enum",
    ),
    ("int-default-string", {"seed": {"type": "int", "default": "1"}}, "is not a valid int"),
    ("int-default-fraction", {"seed": {"type": "int", "default": 1.5}}, "is not a valid int"),
    ("float-default-string", {"lr": {"type": "float", "default": "x"}}, "is not a valid float"),
    ("bool-default-string", {"L2": {"type": "bool", "default": "true"}}, "is not a valid bool"),
    ("string-default-empty", {"m": {"type": "string", "default": ""}}, "is not a valid string"),
    ("missing-default", {"seed": {"type": "int"}}, "missing 'default'"),
    ("reserved-id", {"_id": {"type": "string", "default": "x"}}, "'_id': names starting with '_'"),
    ("dotted-name", {"a.b": {"type": "int", "default": 1}}, "cannot contain '.' or '$'"),
]


@pytest.mark.parametrize(
    ("content", "message"),
    [pytest.param(content, message, id=name) for name, content, message in BAD_SCHEMAS],
)
def test_bad_schema_is_refused_and_stores_nothing(client, db, content: Any, message: str) -> None:
    before = counts(db)

    response = upload_schema(client, content, "bad.json")

    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert counts(db) == before


def test_schema_upload_without_file_is_refused(client, db) -> None:
    response = client.post("/api/v1/projects/schema", data={}, content_type="multipart/form-data")

    assert response.status_code == 400
    assert response.get_json() == {
        "error": "No schema file uploaded; send it as multipart field 'schema'"
    }
    assert db.projects.count_documents({}) == 0


def test_schema_upload_with_empty_name_is_refused(client, db) -> None:
    response = upload_schema(client, EXAMPLE_SCHEMA, ".json")

    assert response.status_code == 400
    assert "empty project name" in response.get_json()["error"]
    assert db.projects.count_documents({}) == 0


def test_duplicate_project_name_is_a_conflict(client, db, project) -> None:
    response = upload_schema(client, {"x": {"type": "int", "default": 1}}, "mnist.json")

    assert response.status_code == 409
    assert "'mnist' already exists" in response.get_json()["error"]
    assert db.projects.count_documents({}) == 1
    assert db.projects.find_one({"name": "mnist"})["schema"] == EXAMPLE_SCHEMA


def test_list_projects_sorted_by_name(client) -> None:
    for name in ("zeta", "alpha", "mid"):
        assert upload_schema(client, EXAMPLE_SCHEMA, f"{name}.json").status_code == 201

    response = client.get("/api/v1/projects")

    assert response.status_code == 200
    assert [p["name"] for p in response.get_json()] == ["alpha", "mid", "zeta"]


def test_get_project(client, project) -> None:
    response = client.get(f"/api/v1/projects/{project['_id']}")

    assert response.status_code == 200
    assert response.get_json()["_id"] == project["_id"]
    assert response.get_json()["schema"] == EXAMPLE_SCHEMA


@pytest.mark.parametrize("project_id", [str(ObjectId()), "not-an-id"])
def test_unknown_project_is_404(client, project_id: str) -> None:
    for method, path in (
        ("get", ""),
        ("get", "/experiments"),
        ("delete", "/experiments"),
        ("delete", "/experiments/files"),
    ):
        response = getattr(client, method)(f"/api/v1/projects/{project_id}{path}")
        assert response.status_code == 404, (method, path)
        assert response.get_json() == {"error": f"Project ID {project_id} does not exist"}


def test_project_experiments_lists_only_that_project(client, db, new_experiment) -> None:
    other = upload_schema(client, EXAMPLE_SCHEMA, "other.json").get_json()
    mine = [new_experiment(), new_experiment(seed=8)]
    new_experiment(other["_id"])
    project_id = db.projects.find_one({"name": "mnist"})["_id"]

    response = client.get(f"/api/v1/projects/{project_id}/experiments")

    assert response.status_code == 200
    assert [e["_id"] for e in response.get_json()] == mine  # oldest first
    assert all(e["_project_id"] == str(project_id) for e in response.get_json())


def test_schema_upload_reads_json_with_bom_free_utf8_names(client, db) -> None:
    schema = {"modèle": {"type": "string", "default": "réseau"}}
    raw = json.dumps(schema, ensure_ascii=False).encode()
    response = client.post(
        "/api/v1/projects/schema",
        data={"schema": (io.BytesIO(raw), "unicode.json")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 201
    assert db.projects.find_one({"name": "unicode"})["schema"] == schema
