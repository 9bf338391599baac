"""Webhook registration: the original's checks, messages and answer."""

from __future__ import annotations

from typing import Any

import pytest

HOOK: dict[str, Any] = {
    "url": "https://example.org/hook",
    "objects": "experiments",
    "object_id": "5f2a0c1e9d3b4a0012345678",
    "event": "finished",
}


@pytest.mark.parametrize("event", ["started", "finished"])
def test_register_stores_the_hook(client, db, event: str) -> None:
    body = {**HOOK, "event": event}

    response = client.post("/api/v1/webhooks", json=body)

    assert response.status_code == 201
    assert response.get_json() == {"status": "Registered", "options": body}
    stored = db.webhooks.find_one({}, {"_id": 0, "_created": 0, "deliveries": 0})
    assert stored == body
    assert db.webhooks.count_documents({}) == 1


def test_register_answers_the_whole_body_but_stores_only_the_hook(client, db) -> None:
    body = {**HOOK, "note": "extra"}

    response = client.post("/api/v1/webhooks", json=body)

    assert response.status_code == 201
    assert response.get_json() == {"status": "Registered", "options": body}
    assert "note" not in db.webhooks.find_one()


def _without(name: str) -> dict[str, Any]:
    return {k: v for k, v in HOOK.items() if k != name}


BAD_HOOKS = [
    ("no-url", _without("url"), "Invalid or empty URL"),
    ("empty-url", {**HOOK, "url": ""}, "Invalid or empty URL"),
    ("relative-url", {**HOOK, "url": "/hook"}, "Invalid or empty URL"),
    ("ftp-url", {**HOOK, "url": "ftp://example.org/hook"}, "Invalid or empty URL"),
    ("url-not-string", {**HOOK, "url": 5}, "Invalid or empty URL"),
    ("no-objects", _without("objects"), "Object is not 'experiments'"),
    ("other-objects", {**HOOK, "objects": "projects"}, "Object is not 'experiments'"),
    ("no-event", _without("event"), "Event is not 'started' or 'finished'"),
    ("other-event", {**HOOK, "event": "killed"}, "Event is not 'started' or 'finished'"),
    ("no-object-id", _without("object_id"), "No object ID provided"),
    ("empty-object-id", {**HOOK, "object_id": ""}, "No object ID provided"),
]


@pytest.mark.parametrize(
    ("body", "message"), [pytest.param(b, m, id=name) for name, b, m in BAD_HOOKS]
)
def test_bad_hook_is_refused_and_not_stored(client, db, body: dict, message: str) -> None:
    response = client.post("/api/v1/webhooks", json=body)

    assert response.status_code == 400
    assert response.get_json() == {"error": message}
    assert db.webhooks.count_documents({}) == 0


def test_hook_body_must_be_an_object(client, db) -> None:
    response = client.post("/api/v1/webhooks", json=[HOOK])

    assert response.status_code == 400
    assert response.get_json() == {"error": "Request body must be a JSON object"}
    assert db.webhooks.count_documents({}) == 0
