"""Cross-site writes (issue 17, item 3): a page elsewhere cannot make a visitor's browser
write to FGLab, whether the browser holds a session cookie, cached basic credentials, or
nothing at all (an FGLab without a password on localhost).

Browsers name the page behind every write in `Origin` (or `Referer`), and can send a form
or a `text/plain` body cross-site without asking, but never `application/json` or an
`Authorization: Bearer` header. So: every unsafe request that is not Bearer-authenticated
must come from FGLab's own origin, and every JSON route wants `application/json`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.security.web import send, serve

PASSWORD = "s3cret-for-csrf"
EVIL = "https://evil.example"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"x:{PASSWORD}".encode()).decode()}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TEXT = {"Content-Type": "text/plain;charset=UTF-8"}
JSON = {"Content-Type": "application/json"}


def _attacks(project: dict[str, Any], experiment_id: str) -> list[tuple[str, bytes, dict]]:
    """(path, body, headers) of the writes a cross-site page would send."""
    batch = json.dumps([{"mode": "write", "until": "none"}]).encode()
    hook = json.dumps(
        {
            "url": "https://evil.example/steal",
            "objects": "experiments",
            "object_id": experiment_id,
            "event": "finished",
        }
    ).encode()
    return [
        (f"/api/v1/experiments/{experiment_id}/kill", b"", FORM),
        (f"/api/v1/projects/{project['_id']}/batch", batch, TEXT),
        ("/api/v1/webhooks", hook, TEXT),
        ("/api/v1/webhooks", b"url=https://evil.example/steal", FORM),
        ("/api/v1/tokens", b'{"name": "stolen"}', TEXT),
    ]


def _state(db: Any, experiment_id: str) -> tuple:
    from bson import ObjectId

    return (
        db.experiments.count_documents({}),
        db.experiments.find_one({"_id": ObjectId(experiment_id)})["_status"],
        db.webhooks.count_documents({}),
        db.tokens.count_documents({}),
    )


@pytest.fixture
def queued(store, project) -> str:
    """A queued experiment (no machine takes it): what a kill would end."""
    [experiment_id] = store.new_experiments(project["_id"], [{"mode": "write", "until": "none"}])
    return str(experiment_id)


@pytest.mark.parametrize(
    "credentials",
    [pytest.param(BASIC, id="cached-basic-credentials"), pytest.param({}, id="no-password")],
)
def test_a_page_elsewhere_cannot_write(fleet, db, project, queued, credentials) -> None:
    _, url = serve(fleet, password=PASSWORD if credentials else None)
    before = _state(db, queued)
    for path, body, headers in _attacks(project, queued):
        for where in ({"Origin": EVIL}, {"Origin": "null"}, {"Referer": f"{EVIL}/page"}):
            answer = send(url + path, "POST", body, {**credentials, **headers, **where})
            assert answer.status == 403, (path, where, answer)
            assert "Cross-origin request refused" in answer.json()["error"]
    assert _state(db, queued) == before
    assert send(url + "/api/v1/projects", headers=credentials).status == 200  # still answers


def test_a_logged_in_browser_session_cannot_be_ridden(fleet, db, project, queued) -> None:
    _, url = serve(fleet, password=PASSWORD)
    login = send(
        url + "/login",
        "POST",
        f"password={PASSWORD}&next=/".encode(),
        {**FORM, "Origin": url},
    )
    assert login.status == 302
    cookie = login.headers["Set-Cookie"].split(";", 1)[0]
    before = _state(db, queued)
    for path, body, headers in _attacks(project, queued):
        answer = send(url + path, "POST", body, {"Cookie": cookie, **headers, "Origin": EVIL})
        assert answer.status == 403, (path, answer)
    assert _state(db, queued) == before
    # The same session from FGLab's own page works.
    own = send(
        url + f"/api/v1/experiments/{queued}/kill", "POST", b"", {"Cookie": cookie, "Origin": url}
    )
    assert own.status == 200, own


def test_json_routes_want_json_even_from_our_own_origin(fleet, db, project, queued) -> None:
    _, url = serve(fleet, password=PASSWORD)
    before = _state(db, queued)
    for path, body, headers in _attacks(project, queued):
        if not body:
            continue  # the kill takes no body
        answer = send(url + path, "POST", body, {**BASIC, **headers, "Origin": url})
        assert answer.status == 415, (path, answer)
        assert "send JSON with Content-Type: application/json" in answer.json()["error"]
    assert _state(db, queued) == before

    sent = send(
        url + f"/api/v1/projects/{project['_id']}/batch",
        "POST",
        json.dumps([{"mode": "write", "until": "none"}]).encode(),
        {**BASIC, **JSON, "Origin": url},
    )
    assert sent.status == 201, sent
    assert db.experiments.count_documents({}) == before[0] + 1


def test_scripts_without_a_browser_still_write(fleet, db, store, project, queued) -> None:
    """curl and the CLI send no Origin or Referer; a Bearer token passes from anywhere."""
    from fglab.auth import create_token

    _, url = serve(fleet, password=PASSWORD)
    token = create_token(store, "script")["token"]
    batch = json.dumps([{"mode": "write", "until": "none"}]).encode()
    path = f"/api/v1/projects/{project['_id']}/batch"

    assert send(url + path, "POST", batch, {**BASIC, **JSON}).status == 201
    bearer = {"Authorization": f"Bearer {token}", **JSON, "Origin": EVIL}
    assert send(url + path, "POST", batch, bearer).status == 201
    assert db.experiments.count_documents({}) == 3
