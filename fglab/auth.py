"""Who may use FGLab: with PASSWORD set, every page and API route needs it.

People log in at ``/login`` (a session cookie: HttpOnly, SameSite=Lax); scripts send the
password with HTTP basic auth (any user name) or an API token as ``Authorization: Bearer
<token>``. Tokens are made by ``POST /api/v1/tokens`` (or on the ``/tokens`` page), may
expire, and are kept only as SHA-256 hashes in the ``tokens`` collection.

Cookies are signed with a random key (`FGLAB_SECRET_KEY`, else one made once and kept in
the data folder), not one derived from the password, so a stolen cookie tells nothing
about the password. A session holds the sessions' version and a fingerprint of the
password: a new password, or "log out everywhere" (which bumps the version), ends every
session made before at its next request.

Wrong passwords and tokens are counted per client address (`fglab.ratelimit`). Writes a
browser sends must come from FGLab's own pages, with or without a password.

Without a password everything is open, as in the original FGLab.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bson import ObjectId
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from config import Settings
from fglab.errors import NotFound
from fglab.extensions import services
from fglab.store import Store, object_id

#: Endpoints anyone may reach: the login form itself, and the CSS/JS it needs.
OPEN_ENDPOINTS = frozenset({"auth.login", "auth.logout", "pages.static"})
#: Marks an authenticated session.
SESSION_FIELD = "fglab_auth"
#: The session's version (see `fglab.records.sessions`) and password fingerprint.
VERSION_FIELD = "v"
PASSWORD_FIELD = "pw"
TOKEN_PREFIX = "fglab_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The file in the data folder that keeps the generated session key.
SECRET_KEY_FILE = "secret_key"

auth = Blueprint("auth", __name__, template_folder="web/templates")


def install_auth(app: Flask, settings: Settings) -> None:
    """Register ``/login`` and ``/logout``; refuse cross-site writes; with a password,
    check every request."""
    password = settings.password or None
    app.extensions["fglab_password"] = password
    app.register_blueprint(auth)
    app.before_request(_same_origin_or_refuse)
    if not password:
        return
    app.secret_key = secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME="fglab_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=settings.session_days),
    )
    if settings.fglab_url.startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True

    @app.before_request
    def _require_password() -> Any:
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        if session_valid(password):
            return None
        if _credentials_valid(password):
            return None
        if _is_api(request.path):
            return _unauthorized()
        return redirect(url_for("auth.login", next=_here()))


def secret_key(settings: Settings) -> bytes:
    """The key that signs cookies: FGLAB_SECRET_KEY, else a random one made once and kept
    (owner-only) in the data folder, so sessions survive a restart."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / SECRET_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def session_valid(password: str) -> bool:
    """Whether this request's cookie is a login made under the current password and
    sessions' version; a stale one is cleared."""
    if session.get(SESSION_FIELD) is not True:
        return False
    fingerprint = session.get(PASSWORD_FIELD)
    if (
        isinstance(fingerprint, str)
        and hmac.compare_digest(fingerprint, _fingerprint(password))
        and session.get(VERSION_FIELD) == services().store.sessions.version()
    ):
        return True
    session.clear()
    return False


def _fingerprint(password: str) -> str:
    """Says whether the password changed, and nothing about it (keyed by the secret)."""
    key = current_app.secret_key
    key_bytes = key if isinstance(key, bytes) else str(key).encode()
    return hmac.new(key_bytes, password.encode(), hashlib.sha256).hexdigest()


# Tokens -----------------------------------------------------------------------------


def create_token(store: Store, name: str, days: float | None = None) -> dict[str, Any]:
    """Make an API token, valid for `days` (None: until revoked); the answer's ``token``
    is the only copy of the secret."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = None if days is None else datetime.now(UTC) + timedelta(days=days)
    doc = store.tokens.add(name, _hash(secret), expires)
    answer = {"_id": doc["_id"], "name": name, "_created": doc["_created"], "token": secret}
    if expires is not None:
        answer["_expires"] = expires
    return answer


def list_tokens(store: Store) -> list[dict[str, Any]]:
    """Every token's ID, name, creation and expiry times (never the secret or its hash)."""
    return store.tokens.all()


def revoke_token(store: Store, token_id: object) -> ObjectId:
    """Delete a token; raises NotFound when there is none with that ID."""
    oid = object_id(token_id, "Token ID")
    if not store.tokens.revoke(oid):
        raise NotFound(f"Token ID {token_id} does not exist")
    return oid


def token_valid(store: Store, secret: str) -> bool:
    if not secret.startswith(TOKEN_PREFIX):
        return False
    wanted = _hash(secret)
    stored = store.tokens.find_hash(wanted)
    return stored is not None and hmac.compare_digest(stored, wanted)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Login ------------------------------------------------------------------------------


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    password = _password()
    target = safe_next(request.values.get("next"))
    if not password:
        return redirect(target)
    if request.method == "GET":
        if session_valid(password):
            return redirect(target)
        return render_template("login.html", next=target, error=None)
    given = request.form.get("password", "")
    if not hmac.compare_digest(given.encode(), password.encode()):
        g.fglab_auth_failed = True
        return render_template("login.html", next=target, error="Wrong password"), 401
    session.clear()
    session.permanent = True
    session[SESSION_FIELD] = True
    session[VERSION_FIELD] = services().store.sessions.version()
    session[PASSWORD_FIELD] = _fingerprint(password)
    return redirect(target)


@auth.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    if _password():
        session.clear()
    return redirect(url_for("auth.login") if _password() else url_for("pages.home"))


@auth.route("/logout/everywhere", methods=["POST"])
def logout_everywhere() -> Any:
    """End every browser's session, this one's too (tokens stay: revoke those one by one)."""
    if _password():
        services().store.sessions.bump()
        session.clear()
    return redirect(url_for("auth.login") if _password() else url_for("pages.home"))


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this site, else the home page (no open redirects)."""
    home = url_for("pages.home")
    if not target or not target.startswith("/") or target.startswith("//"):
        return home
    # Browsers read "\" as "/" and drop tabs and newlines, so "/\evil.org" leaves the site.
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return home
    return target


# Helpers ----------------------------------------------------------------------------


def _password() -> str | None:
    return current_app.extensions.get("fglab_password")


def _credentials_valid(password: str) -> bool:
    """Whether the request's basic password or Bearer token is right; a wrong one that
    was sent is marked for the rate limit."""
    given = request.authorization
    if given is None:
        return False
    valid = False
    if given.type == "basic":
        sent = given.password or ""
        valid = hmac.compare_digest(sent.encode(), password.encode())
    elif given.type == "bearer" and given.token:
        valid = token_valid(services().store, given.token)
    if not valid:
        g.fglab_auth_failed = True
    return valid


def _same_origin_or_refuse() -> Response | None:
    """A write sent by a browser must come from FGLab's own pages (CSRF).

    Browsers name the page behind a request in ``Origin`` (``Referer`` where an old one
    leaves it out), and a page elsewhere cannot remove them; the browser's session cookie
    and cached basic credentials ride along by themselves, so every unsafe request is
    checked, with a password or without one (a localhost FGLab is reachable from any
    page). A request with neither header is not a browser's: scripts and the CLI pass.
    A Bearer token is never sent by a browser on its own, so it passes too.
    """
    if request.method in SAFE_METHODS:
        return None
    given = request.authorization
    if given is not None and given.type == "bearer":
        return None
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if referer is None:
            return None
        origin = referer
    allowed = {request.host.lower(), urlsplit(services().settings.fglab_url).netloc.lower()}
    try:
        sent = urlsplit(origin).netloc.lower()
    except ValueError:
        sent = ""
    if sent and sent in allowed:
        return None
    return Response(
        '{"error": "Cross-origin request refused; use FGLab\'s own pages or an API token"}',
        403,
        {"Content-Type": "application/json"},
    )


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _here() -> str:
    query = request.query_string.decode("utf-8", errors="replace")
    return request.path + ("?" + query if query else "")


def _unauthorized() -> Response:
    return Response(
        '{"error": "Authentication required"}',
        401,
        {"WWW-Authenticate": 'Basic realm="FGLab"', "Content-Type": "application/json"},
    )
