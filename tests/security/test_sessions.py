"""Guessing and stolen cookies (issue 17, item 9): wrong passwords and tokens are rate
limited per client address; the cookie key is random (not derived from the password);
"log out everywhere" and a new password end every session; tokens may expire and are
listed and revoked on a page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time

from itsdangerous import BadSignature, URLSafeTimedSerializer

from tests.security.web import send, serve
from tests.waiting import wait_for

PASSWORD = "s3cret-for-sessions"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"x:{password}".encode()).decode()}


def _login(url: str, password: str = PASSWORD) -> str:
    """Log in as a browser does; the session cookie (`name=value`)."""
    answer = send(url + "/login", "POST", f"password={password}".encode(), {**FORM, "Origin": url})
    assert answer.status == 302, answer
    return answer.headers["Set-Cookie"].split(";", 1)[0]


def _opens(url: str, cookie: str) -> bool:
    return send(url + "/api/v1/projects", headers={"Cookie": cookie}).status == 200


def test_guessing_is_slowed_per_address_and_the_right_password_waits_too(fleet) -> None:
    _, url = serve(fleet, password=PASSWORD, FGLAB_AUTH_RATE_LIMIT="3 per minute")
    for _ in range(3):
        assert send(url + "/api/v1/projects", headers=_basic("guess")).status == 401
    limited = send(url + "/api/v1/projects", headers=_basic("guess"))
    assert limited.status == 429
    assert limited.json()["error"].startswith("Too many wrong passwords or tokens from 127.0.0.1")
    assert 0 < int(limited.headers["Retry-After"]) <= 61  # the window's end, whole seconds
    # Even the right password waits, at the form as over basic auth.
    assert send(url + "/api/v1/projects", headers=_basic(PASSWORD)).status == 429
    form = send(url + "/login", "POST", f"password={PASSWORD}".encode(), {**FORM, "Origin": url})
    assert form.status == 429
    assert b"Too many wrong passwords" in form.body
    assert "Set-Cookie" not in form.headers


def test_right_credentials_are_never_counted(fleet) -> None:
    _, url = serve(fleet, password=PASSWORD, FGLAB_AUTH_RATE_LIMIT="2 per minute")
    for _ in range(10):
        assert send(url + "/api/v1/projects", headers=_basic(PASSWORD)).status == 200


def test_the_cookie_key_is_random_and_kept_private(fleet) -> None:
    process, url = serve(fleet, password=PASSWORD)
    cookie = _login(url)
    key_file = fleet.root / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    value = cookie.split("=", 1)[1]
    # The old key, an HMAC of the password, no longer signs cookies: a stolen cookie is
    # no test of a password guess.
    old_key = hmac.new(PASSWORD.encode(), b"fglab session key v1", hashlib.sha256).digest()
    for key in (old_key, PASSWORD.encode()):
        serializer = URLSafeTimedSerializer(
            key,
            salt="cookie-session",
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
        )
        try:
            serializer.loads(value)
        except BadSignature:
            pass
        else:
            raise AssertionError("the cookie verifies with a key made from the password")
    # The same key after a restart: the session survives it.
    process.stop()
    _, url = serve(fleet, password=PASSWORD)
    assert _opens(url, cookie)


def test_log_out_everywhere_ends_every_session(fleet) -> None:
    _, url = serve(fleet, password=PASSWORD)
    mine, theirs = _login(url), _login(url)
    assert _opens(url, mine) and _opens(url, theirs)

    out = send(url + "/logout/everywhere", "POST", b"", {"Cookie": mine, "Origin": url})

    assert out.status == 302 and out.headers["Location"].endswith("/login")
    assert not _opens(url, mine)
    assert not _opens(url, theirs)
    assert _opens(url, _login(url))  # a new login works
    # Nobody else can log everyone out.
    stranger = send(url + "/logout/everywhere", "POST", b"", {"Origin": url})
    assert stranger.status == 302 and "/login?next=" in stranger.headers["Location"]


def test_a_new_password_ends_the_old_sessions(fleet) -> None:
    process, url = serve(fleet, password=PASSWORD)
    cookie = _login(url)
    process.stop()
    _, url = serve(fleet, password="another one")
    assert not _opens(url, cookie)


def test_tokens_expire_and_revoked_ones_are_refused(fleet, db) -> None:
    _, url = serve(fleet, password=PASSWORD)
    made = send(
        url + "/api/v1/tokens",
        "POST",
        json.dumps({"name": "brief", "days": 2 / 86400}).encode(),
        {**_basic(PASSWORD), **JSON},
    ).json()
    bearer = {"Authorization": f"Bearer {made['token']}"}
    assert "_expires" in made
    assert send(url + "/api/v1/projects", headers=bearer).status == 200
    started = time.monotonic()
    wait_for(
        lambda: send(url + "/api/v1/projects", headers=bearer).status == 401,
        30,
        "the token to expire",
        interval=0.25,
    )
    assert time.monotonic() - started < 30

    lasting = send(
        url + "/api/v1/tokens", "POST", b'{"name": "ci"}', {**_basic(PASSWORD), **JSON}
    ).json()
    assert "_expires" not in lasting
    page = send(url + "/tokens", headers=_basic(PASSWORD))
    assert page.status == 200 and b"ci" in page.body and lasting["token"].encode() not in page.body
    revoked = send(url + f"/api/v1/tokens/{lasting['_id']}", "DELETE", headers=_basic(PASSWORD))
    assert revoked.status == 200
    assert (
        send(
            url + "/api/v1/projects", headers={"Authorization": f"Bearer {lasting['token']}"}
        ).status
        == 401
    )
    for bad in (0, -1, "7", True, 1e9):
        answer = send(
            url + "/api/v1/tokens",
            "POST",
            json.dumps({"name": "x", "days": bad}).encode(),
            {**_basic(PASSWORD), **JSON},
        )
        assert answer.status == 400, bad
        assert answer.json()["error"].startswith("days is ")
    assert db.tokens.count_documents({"name": {"$ne": "brief"}}) == 0
