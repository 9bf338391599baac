"""Security: with a PASSWORD every route needs it; bad input gets a clear error, stores nothing.

People log in (session cookie), scripts send HTTP basic auth or an API token. Routes are
read from the app's own url_map, so a route added later is covered without editing this.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from pymongo import MongoClient

from config import Settings
from fglab.app import create_app
from fglab.auth import OPEN_ENDPOINTS
from fglab.store import Store
from tests.html import find, page, text
from tests.integration.api.helpers import (
    EXAMPLE_SCHEMA,
    OPTIONS,
    counts,
    submit,
    upload_files,
    upload_schema,
)

PASSWORD = "s3cret"
#: A well-formed ObjectId that names nothing.
OID = "5f2a0c1e9d3b4a0012345678"
#: Path values that are not ObjectIds (and, for machines, name nothing).
BAD_IDS = ["nope", OID[:-1], OID + "9", "g" * 24, "é-ü"]
#: Endpoints whose path value is a file name, not an ID.
NOT_AN_ID = {"static", "pages.static"}


def _route_table() -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) of every route of the real app; no service is reached."""
    client: MongoClient = MongoClient("mongodb://127.0.0.1:9", connect=False)
    try:
        app = create_app(Settings(), store=Store(client["routes"]))
    finally:
        client.close()
    return sorted(
        (method, rule.rule, rule.endpoint)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


ROUTES = _route_table()
LOCKED = [r for r in ROUTES if r[2] not in OPEN_ENDPOINTS]
WITH_IDS = [r for r in ROUTES if "<" in r[1] and r[2] not in NOT_AN_ID]


def _ids(routes: list[tuple[str, str, str]]) -> list[str]:
    return [f"{method} {rule}" for method, rule, _ in routes]


def _path(app, method: str, endpoint: str, value: str = OID) -> str:
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    adapter = app.url_map.bind("localhost")
    return adapter.build(endpoint, dict.fromkeys(rule.arguments, value), method=method)


def _call(client, method: str, path: str, **kwargs: Any) -> Any:
    if method in {"POST", "PUT"}:
        kwargs.setdefault("json", {})
    return client.open(path, method=method, **kwargs)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _is_api(path: str) -> bool:
    return path.startswith("/api/")


def _to_login(response) -> bool:
    return response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


@pytest.fixture
def locked_app(settings, store):
    app = create_app(settings.with_changes(password=PASSWORD), store=store)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def locked_client(locked_app):
    return locked_app.test_client()


def _login(client, password: str = PASSWORD, next_: str | None = None) -> Any:
    data = {"password": password} if next_ is None else {"password": password, "next": next_}
    return client.post("/login", data=data)


def _new_token(client, name: str = "ci") -> dict[str, Any]:
    response = client.post("/api/v1/tokens", json={"name": name}, headers=_basic("x", PASSWORD))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# Without credentials ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "rule", "endpoint"), LOCKED, ids=_ids(LOCKED))
def test_every_route_refuses_without_credentials(
    locked_app, locked_client, db, method: str, rule: str, endpoint: str
) -> None:
    path = _path(locked_app, method, endpoint)
    before = counts(db)

    response = _call(locked_client, method, path)

    if _is_api(path):
        assert response.status_code == 401
        assert response.get_json() == {"error": "Authentication required"}
        assert response.headers["WWW-Authenticate"] == 'Basic realm="FGLab"'
    else:
        assert _to_login(response), (response.status_code, response.headers.get("Location"))
        assert parse_qs(urlsplit(response.headers["Location"]).query)["next"] == [path]
    assert counts(db) == before


def test_login_page_and_its_assets_are_open(locked_client) -> None:
    response = locked_client.get("/login")
    with locked_client.get("/assets/style.css") as css:
        assert css.status_code == 200

    assert response.status_code == 200
    login = page(response)
    assert login.find("input", type="password") is not None
    assert login.find("link", href="/assets/style.css") is not None


def test_page_redirect_keeps_the_query(locked_client) -> None:
    response = locked_client.get("/projects/abc?tab=charts&x=1")

    assert _to_login(response)
    assert parse_qs(urlsplit(response.headers["Location"]).query)["next"] == [
        "/projects/abc?tab=charts&x=1"
    ]


# With credentials -------------------------------------------------------------------


def _authenticate(client, how: str) -> dict[str, str]:
    """Headers for `how`; a session login leaves its cookie in `client`."""
    if how == "basic":
        return _basic("anyone", PASSWORD)
    if how == "bearer":
        return _bearer(_new_token(client)["token"])
    response = _login(client)
    assert response.status_code == 302
    return {}


@pytest.mark.parametrize("how", ["basic", "bearer", "session"])
def test_every_route_answers_with_credentials(locked_app, locked_client, how: str) -> None:
    headers = _authenticate(locked_client, how)
    refused = []
    for method, _rule, endpoint in LOCKED:
        if endpoint == "auth.logout_everywhere":
            continue  # it ends the session on purpose; its own tests are below
        path = _path(locked_app, method, endpoint)
        response = _call(locked_client, method, path, headers=headers)
        if response.status_code in {401, 403} or _to_login(response) or response.status_code >= 500:
            refused.append((method, path, response.status_code))
    assert refused == []


@pytest.mark.parametrize("how", ["basic", "bearer", "session"])
def test_credentials_read_and_write(locked_client, db, how: str) -> None:
    headers = _authenticate(locked_client, how)

    home = locked_client.get("/", headers=headers)
    listed = locked_client.get("/api/v1/projects", headers=headers)
    written = locked_client.post("/api/v1/machines", json={"hostname": "box"}, headers=headers)

    assert home.status_code == 200
    assert home.mimetype == "text/html"
    assert listed.status_code == 200
    assert written.status_code == 201
    assert db.machines.find_one({"_id": "box"}) is not None


@pytest.mark.parametrize(
    "headers",
    [
        _basic("anyone", "wrong"),
        _basic(PASSWORD, ""),
        _bearer(PASSWORD),
        _bearer("fglab_" + "A" * 43),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": f"Token {PASSWORD}"},
    ],
    ids=[
        "wrong-password",
        "password-as-user",
        "password-as-token",
        "unknown-token",
        "garbled",
        "other-scheme",
    ],
)
def test_wrong_credentials_are_refused(locked_client, db, headers: dict[str, str]) -> None:
    api = locked_client.post("/api/v1/machines", json={"hostname": "box"}, headers=headers)
    home = locked_client.get("/", headers=headers)

    assert api.status_code == 401
    assert api.get_json() == {"error": "Authentication required"}
    assert _to_login(home)
    assert db.machines.count_documents({}) == 0


def test_wrong_password_at_login_sets_no_session(locked_client) -> None:
    response = _login(locked_client, "wrong", "/machines/box")

    assert response.status_code == 401
    assert "Wrong password" in text(find(page(response), '[role="alert"]'))
    assert locked_client.get_cookie("fglab_session") is None
    assert _to_login(locked_client.get("/"))


def test_login_sets_a_strict_cookie_and_goes_back(locked_client) -> None:
    response = _login(locked_client, next_="/projects/abc?tab=charts")

    assert response.status_code == 302
    assert response.headers["Location"] == "/projects/abc?tab=charts"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("fglab_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert locked_client.get("/api/v1/projects").status_code == 200


def test_logout_ends_the_session(locked_client) -> None:
    _login(locked_client)
    assert locked_client.get("/").status_code == 200

    response = locked_client.get("/logout")

    assert _to_login(response)
    assert _to_login(locked_client.get("/"))
    assert locked_client.get("/api/v1/projects").status_code == 401


def test_session_survives_a_restart_but_not_a_new_password(settings, store, locked_client) -> None:
    _login(locked_client)
    cookie = locked_client.get_cookie("fglab_session")
    assert cookie is not None

    def client_of(password: str):
        app = create_app(settings.with_changes(password=password), store=store)
        client = app.test_client()
        client.set_cookie("fglab_session", cookie.value)
        return client

    assert client_of(PASSWORD).get("/").status_code == 200
    assert _to_login(client_of("another").get("/"))


def test_cross_origin_write_with_a_session_is_refused(locked_client, db) -> None:
    _login(locked_client)

    foreign = locked_client.post(
        "/api/v1/machines", json={"hostname": "box"}, headers={"Origin": "https://evil.example"}
    )
    own = locked_client.post(
        "/api/v1/machines", json={"hostname": "box"}, headers={"Origin": "http://localhost"}
    )

    assert foreign.status_code == 403
    assert "Cross-origin" in foreign.get_json()["error"]
    assert own.status_code == 201


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_login_never_redirects_off_site(locked_client, target: str) -> None:
    posted = _login(locked_client, next_=target)
    again = locked_client.get("/login?next=" + quote(target, safe=""))

    assert posted.status_code == 302
    assert posted.headers["Location"] == "/"
    assert again.status_code == 302
    assert again.headers["Location"] == "/"


# Tokens -----------------------------------------------------------------------------


def test_token_is_shown_once_and_stored_hashed(locked_client, db) -> None:
    made = _new_token(locked_client, "nightly sweep")

    assert made["name"] == "nightly sweep"
    stored = db.tokens.find_one()
    assert stored["hash"] == hashlib.sha256(made["token"].encode()).hexdigest()
    assert made["token"] not in json.dumps(stored, default=str)
    listed = locked_client.get("/api/v1/tokens", headers=_bearer(made["token"])).get_json()
    assert [t["name"] for t in listed] == ["nightly sweep"]
    assert [t["_id"] for t in listed] == [made["_id"]]
    assert all("token" not in t and "hash" not in t for t in listed)


def test_revoked_token_is_refused(locked_client) -> None:
    made = _new_token(locked_client)
    other = _new_token(locked_client, "other")
    assert locked_client.get("/api/v1/projects", headers=_bearer(made["token"])).status_code == 200

    revoked = locked_client.delete(f"/api/v1/tokens/{made['_id']}", headers=_bearer(other["token"]))

    assert revoked.status_code == 200
    assert revoked.get_json() == {"status": "Revoked", "_id": made["_id"]}
    assert locked_client.get("/api/v1/projects", headers=_bearer(made["token"])).status_code == 401
    assert locked_client.get("/api/v1/projects", headers=_bearer(other["token"])).status_code == 200
    again = locked_client.delete(f"/api/v1/tokens/{made['_id']}", headers=_basic("x", PASSWORD))
    assert again.status_code == 404


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "  "}, {"name": 3}, [], "x"])
def test_token_needs_a_name(locked_client, db, body: Any) -> None:
    response = locked_client.post("/api/v1/tokens", json=body, headers=_basic("x", PASSWORD))

    assert response.status_code == 400
    assert response.get_json()["error"]
    assert db.tokens.count_documents({}) == 0


def test_tokens_need_credentials(locked_client, db) -> None:
    response = locked_client.post("/api/v1/tokens", json={"name": "sneaky"})

    assert response.status_code == 401
    assert db.tokens.count_documents({}) == 0


def test_without_a_password_everything_is_open(client) -> None:
    made = client.post("/api/v1/tokens", json={"name": "ci"})

    assert client.get("/").status_code == 200
    assert client.get("/api/v1/projects").status_code == 200
    assert made.status_code == 201
    assert client.get("/api/v1/tokens").get_json()[0]["name"] == "ci"
    assert client.delete(f"/api/v1/tokens/{made.get_json()['_id']}").status_code == 200
    assert client.get("/login?next=/machines/box").headers["Location"] == "/machines/box"


# Bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "rule", "endpoint"), WITH_IDS, ids=_ids(WITH_IDS))
def test_ids_that_are_not_object_ids_get_a_clear_error(
    app, client, db, method: str, rule: str, endpoint: str
) -> None:
    before = counts(db)
    for bad in BAD_IDS:
        path = _path(app, method, endpoint, bad)

        response = _call(client, method, path)

        assert response.status_code in {400, 404}, (bad, response.status_code, response.data)
        if _is_api(path):
            error = response.get_json()["error"]
            assert bad in error, error
        else:
            assert response.mimetype == "text/html"
    assert counts(db) == before


@pytest.fixture
def small_client(settings, store):
    app = create_app(settings.with_changes(max_request_bytes=4096), store=store)
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture
def experiment(small_client) -> str:
    assert upload_schema(small_client, EXAMPLE_SCHEMA).status_code == 201
    project_id = small_client.get("/api/v1/projects").get_json()[0]["_id"]
    response = submit(small_client, project_id, OPTIONS)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["_id"]


TOO_LARGE = {"error": "Request body is over the limit of 4096 bytes"}


def test_huge_json_body_is_413_and_stores_nothing(small_client, db) -> None:
    body = {"hostname": "box", "notes": "x" * 8192}

    response = small_client.post("/api/v1/machines", json=body)

    assert response.status_code == 413
    assert response.get_json() == TOO_LARGE
    assert db.machines.count_documents({}) == 0


def test_huge_body_without_a_length_is_413(small_client, db) -> None:
    raw = json.dumps({"hostname": "box", "notes": "x" * 8192}).encode()

    response = small_client.post(
        "/api/v1/machines",
        input_stream=io.BytesIO(raw),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == 413
    assert response.get_json() == TOO_LARGE
    assert db.machines.count_documents({}) == 0


def test_huge_field_update_is_413_and_changes_nothing(small_client, db, experiment) -> None:
    before = db.experiments.find_one()

    response = small_client.put(f"/api/v1/experiments/{experiment}", json={"big": "x" * 8192})

    assert response.status_code == 413
    assert response.get_json() == TOO_LARGE
    assert db.experiments.find_one() == before


def test_huge_upload_is_413_and_stores_nothing(small_client, db, experiment) -> None:
    before = counts(db)

    response = upload_files(small_client, experiment, (b"\0" * 8192, "big.bin", "application/x"))

    assert response.status_code == 413
    assert response.get_json() == TOO_LARGE
    assert counts(db) == before
    assert db.experiments.find_one()["_files"] == []


def test_huge_schema_upload_is_413_and_stores_nothing(small_client, db) -> None:
    schema = {f"option{i}": {"type": "int", "default": i} for i in range(300)}

    response = upload_schema(small_client, schema, "huge.json")

    assert response.status_code == 413
    assert response.get_json() == TOO_LARGE
    assert db.projects.count_documents({}) == 0
