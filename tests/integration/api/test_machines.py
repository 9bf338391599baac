"""The machine registry: register, list, read, publish projects."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api.helpers import counts

SPEC: dict[str, Any] = {
    "hostname": "gpu-box-1",
    "address": "10.0.0.7",
    "os": {"type": "Linux", "platform": "linux", "arch": "x64", "release": "6.1.0"},
    "cpus": ["AMD EPYC 7742"] * 4,
    "mem": "251.80GB",
    "gpus": ["NVIDIA H100 80GB HBM3"],
}


def register(client, **changes: Any) -> Any:
    return client.post("/api/v1/machines", json={**SPEC, **changes})


def test_register_stores_the_machine_under_its_hostname(client, db) -> None:
    response = register(client)

    assert response.status_code == 201
    assert response.get_json() == {"_id": "gpu-box-1"}
    assert db.machines.find_one({"_id": "gpu-box-1"}) == {"_id": "gpu-box-1", **SPEC}


def test_register_again_updates_the_same_machine(client, db) -> None:
    register(client)

    response = register(client, mem="503.60GB", gpus=[])

    assert response.status_code == 201
    assert db.machines.count_documents({}) == 1
    stored = db.machines.find_one({"_id": "gpu-box-1"})
    assert stored["mem"] == "503.60GB"
    assert stored["gpus"] == []
    assert stored["address"] == "10.0.0.7"


def test_register_ignores_underscore_fields(client, db) -> None:
    response = register(client, _id="other", _status="x")

    assert response.status_code == 201
    stored = db.machines.find_one({"_id": "gpu-box-1"})
    assert "_status" not in stored
    assert db.machines.count_documents({}) == 1


@pytest.mark.parametrize(
    "hostname", [None, "", "   ", "gpu box", 7], ids=["missing", "empty", "blank", "space", "int"]
)
def test_register_needs_a_hostname(client, db, hostname: Any) -> None:
    body = {k: v for k, v in SPEC.items() if k != "hostname"}
    if hostname is not None:
        body["hostname"] = hostname

    response = client.post("/api/v1/machines", json=body)

    assert response.status_code == 400
    assert response.get_json() == {
        "error": "Field hostname must be a non-empty name without spaces"
    }
    assert db.machines.count_documents({}) == 0


@pytest.mark.parametrize("field", ["$where", "a.b"])
def test_register_refuses_operator_and_dotted_names(client, db, field: str) -> None:
    response = register(client, **{field: 1})

    assert response.status_code == 400
    assert response.get_json() == {"error": "Field names may not start with '$' or contain '.'"}
    assert db.machines.count_documents({}) == 0


def test_register_body_must_be_an_object(client, db) -> None:
    response = client.post("/api/v1/machines", json=[SPEC])

    assert response.status_code == 400
    assert response.get_json() == {"error": "Request body must be a JSON object"}
    assert db.machines.count_documents({}) == 0


def test_list_machines_sorted_by_hostname(client) -> None:
    for name in ("zulu", "alpha", "mike"):
        assert register(client, hostname=name).status_code == 201

    response = client.get("/api/v1/machines")

    assert response.status_code == 200
    assert [m["hostname"] for m in response.get_json()] == ["alpha", "mike", "zulu"]
    assert [m["_id"] for m in response.get_json()] == ["alpha", "mike", "zulu"]


def test_get_machine(client) -> None:
    register(client)

    response = client.get("/api/v1/machines/gpu-box-1")

    assert response.status_code == 200
    assert response.get_json() == {"_id": "gpu-box-1", **SPEC}


def test_publish_projects_stores_the_map(client, db) -> None:
    register(client)
    projects = {"5f2a0c1e9b1e8a3d4c6b7a90": {"capacity": 0.5}, "5f2a0c1e9b1e8a3d4c6b7a91": {}}

    response = client.post("/api/v1/machines/gpu-box-1/projects", json={"projects": projects})

    assert response.status_code == 200
    assert response.get_json()["projects"] == projects
    assert db.machines.find_one({"_id": "gpu-box-1"})["projects"] == projects


def test_publish_projects_replaces_the_old_map(client, db) -> None:
    register(client)
    client.post("/api/v1/machines/gpu-box-1/projects", json={"projects": {"a": {}, "b": {}}})

    response = client.post("/api/v1/machines/gpu-box-1/projects", json={"projects": {"c": {}}})

    assert response.status_code == 200
    assert db.machines.find_one({"_id": "gpu-box-1"})["projects"] == {"c": {}}


@pytest.mark.parametrize(
    "body",
    [{"projects": ["a"]}, {"projects": {"a.b": {}}}, {"projects": {"$x": {}}}],
    ids=["list", "dotted", "operator"],
)
def test_publish_projects_refuses_a_bad_map(client, db, body: dict) -> None:
    register(client)
    before = db.machines.find_one({"_id": "gpu-box-1"})

    response = client.post("/api/v1/machines/gpu-box-1/projects", json=body)

    assert response.status_code == 400
    assert response.get_json() == {
        "error": 'Body must be {"projects": {<project_id>: <implementation>}}'
    }
    assert db.machines.find_one({"_id": "gpu-box-1"}) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/machines/nowhere", None),
        ("post", "/api/v1/machines/nowhere/projects", {"projects": {"a": {}}}),
    ],
)
def test_unknown_machine_is_404(client, db, method: str, path: str, body: Any) -> None:
    before = counts(db)

    response = getattr(client, method)(path, json=body)

    assert response.status_code == 404
    assert response.get_json() == {"error": "Machine ID nowhere does not exist"}
    assert counts(db) == before
